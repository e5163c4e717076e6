//! The statements on numbers tables and on `llamadas` that both backends run, written once.
//!
//! A numbers table has a name chosen at run time, so these are `sql_query` texts: the table name is
//! the only thing spliced (a validated [`TableName`], quoted), every value is bound. The little that
//! differs between MySQL and SQLite in them is in [`Dialect`].

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::mysql::Mysql;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::rows::{to_i32, to_naive};
use super::{CallRecord, NewNumber, NumberUpdate};
use crate::domain::{CallResult, CampaignName, NumberState, TableName, Wait};

/// A statement with its bound values, ready to run on a connection of backend `DB`.
pub(super) type Query<DB> = BoxedSqlQuery<'static, DB, SqlQuery>;

/// What differs between the backends in the shared statements, and the binding of the few value
/// types they use.
pub(super) trait Dialect: diesel::backend::Backend + Sized + 'static {
    /// `INSERT IGNORE` (MySQL) / `INSERT OR IGNORE` (SQLite): skip rows that hit a unique key.
    const INSERT_IGNORE: &'static str;
    /// The integer type of `CAST(… AS …)`.
    const INT: &'static str;
    /// Which bucket of `?` seconds after the instant `?` a CDR's `inicio` falls in (binds: the
    /// origin, then the width). Whole seconds, counted in SQL: no session time zone is involved
    /// (MySQL's `TIMESTAMPDIFF` on two `DATETIME`s, SQLite's `strftime('%s')` on UTC text).
    const BUCKET: &'static str;
    /// `llamadas` as the export's pages read it: on MariaDB with `FORCE INDEX`, because for
    /// `campana = ? AND inicio >= ? … ORDER BY inicio, id LIMIT ?` its optimizer prefers `ref` on the
    /// campaign alone over the range on `(campana, inicio)` of the same index, and then scans the
    /// campaign's entries from its first CDR on every page (measured on 1,000,000 CDRs: 207 ms for
    /// a page in the middle instead of 24 ms; the whole export O(n²)). SQLite takes the range.
    const CDR_PAGES_FROM: &'static str;

    fn id(q: Query<Self>, v: i64) -> Query<Self>;
    fn int(q: Query<Self>, v: i32) -> Query<Self>;
    fn text(q: Query<Self>, v: String) -> Query<Self>;
    fn opt_text(q: Query<Self>, v: Option<String>) -> Query<Self>;
    fn time(q: Query<Self>, v: NaiveDateTime) -> Query<Self>;
    fn opt_time(q: Query<Self>, v: Option<NaiveDateTime>) -> Query<Self>;
}

macro_rules! dialect {
    ($db:ty, insert_ignore = $ii:literal, int = $int:literal, bucket = $bucket:literal,
     cdr_pages_from = $from:literal) => {
        impl Dialect for $db {
            const INSERT_IGNORE: &'static str = $ii;
            const INT: &'static str = $int;
            const BUCKET: &'static str = $bucket;
            const CDR_PAGES_FROM: &'static str = $from;
            fn id(q: Query<Self>, v: i64) -> Query<Self> {
                q.bind::<BigInt, _>(v)
            }
            fn int(q: Query<Self>, v: i32) -> Query<Self> {
                q.bind::<Integer, _>(v)
            }
            fn text(q: Query<Self>, v: String) -> Query<Self> {
                q.bind::<Text, _>(v)
            }
            fn opt_text(q: Query<Self>, v: Option<String>) -> Query<Self> {
                q.bind::<Nullable<Text>, _>(v)
            }
            fn time(q: Query<Self>, v: NaiveDateTime) -> Query<Self> {
                q.bind::<Timestamp, _>(v)
            }
            fn opt_time(q: Query<Self>, v: Option<NaiveDateTime>) -> Query<Self> {
                q.bind::<Nullable<Timestamp>, _>(v)
            }
        }
    };
}

dialect!(
    Mysql,
    insert_ignore = "INSERT IGNORE",
    int = "SIGNED",
    bucket = "TIMESTAMPDIFF(SECOND, ?, inicio) DIV ?",
    cdr_pages_from = "llamadas FORCE INDEX (idx_llamadas_campana_inicio)"
);
dialect!(
    Sqlite,
    insert_ignore = "INSERT OR IGNORE",
    int = "INTEGER",
    bucket = "(CAST(strftime('%s', inicio) AS INTEGER) - CAST(strftime('%s', ?) AS INTEGER)) / ?",
    cdr_pages_from = "llamadas"
);

fn query<DB: Dialect>(sql: String) -> Query<DB> {
    diesel::sql_query(sql).into_boxed::<DB>()
}

/// `?, ?, ?` for an `IN (…)` list of `n` bound values.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn bind_ids<DB: Dialect>(mut q: Query<DB>, ids: &[i64]) -> Query<DB> {
    for id in ids {
        q = DB::id(q, *id);
    }
    q
}

/// `CASE id WHEN ? THEN ? … END`: one column's new values for many rows of one statement.
fn case_by_id(n: usize) -> String {
    let mut sql = String::with_capacity(16 + n * 14);
    sql.push_str("CASE id");
    for _ in 0..n {
        sql.push_str(" WHEN ? THEN ?");
    }
    sql.push_str(" END");
    sql
}

/// Inserts a batch of numbers; those already in the table (unique `telefono`) are skipped, so the
/// affected-row count is the number inserted.
pub(super) fn insert_numbers<DB: Dialect>(t: &TableName, batch: &[NewNumber]) -> Query<DB> {
    let mut sql = format!(
        "{} INTO {} (telefono, datos, zona_horaria) VALUES ",
        DB::INSERT_IGNORE,
        t.quoted()
    );
    sql.push_str(&vec!["(?, ?, ?)"; batch.len()].join(", "));
    let mut q = query::<DB>(sql);
    for n in batch {
        q = DB::text(q, n.telefono.as_str().to_owned());
        q = DB::opt_text(q, n.datos.as_ref().map(|d| d.to_string()));
        q = DB::opt_text(q, n.zona.map(|z| z.name().to_owned()));
    }
    q
}

/// `SELECT … AS id`: 1 if any number is in one of `states`, else 0. An index probe (`estado` leads
/// the index), not a count. The states are our own constants, spliced as quoted literals.
pub(super) fn has_numbers_in<DB: Dialect>(t: &TableName, states: &[NumberState]) -> Query<DB> {
    let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    query(format!(
        "SELECT CAST(EXISTS(SELECT 1 FROM {} WHERE estado IN ({})) AS {}) AS id",
        t.quoted(),
        list.join(", "),
        DB::INT
    ))
}

/// `COUNT(*) AS n` of rows without a telephone: an adopted table must have none (a claim could not
/// dial them and the campaign would never finish).
pub(super) fn blank_phones<DB: Dialect>(t: &TableName) -> Query<DB> {
    query(format!(
        "SELECT COUNT(*) AS n FROM {} WHERE telefono IS NULL",
        t.quoted()
    ))
}

/// Per-state counts in one statement (one consistent snapshot), read as [`super::rows::StatsRow`].
pub(super) fn stats<DB: Dialect>(t: &TableName) -> Query<DB> {
    let sum =
        |cond: &str, name: &str| format!("CAST(COALESCE(SUM({cond}), 0) AS {}) AS {name}", DB::INT);
    query(format!(
        "SELECT COUNT(*) AS total, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM {}",
        sum("estado = 'PENDIENTE'", "pendientes"),
        sum(
            "estado = 'PENDIENTE' AND espera = 'HORARIO'",
            "esperan_horario"
        ),
        sum(
            "estado = 'PENDIENTE' AND espera = 'TOPE_DIARIO'",
            "esperan_tope_diario"
        ),
        sum("estado = 'MARCANDO'", "marcando"),
        sum("estado = 'CONTESTADO'", "contestados"),
        sum("estado = 'COMPLETADO'", "completados"),
        sum("estado = 'ERROR'", "errores"),
        sum("resultado = 'HUMANO'", "humanos"),
        sum("resultado = 'MAQUINA'", "maquinas"),
        t.quoted()
    ))
}

/// How one campaign's calls ended, from its CDRs, in one statement (read as
/// [`super::rows::DispositionRow`]): an index range of `(campana, resultado, disposicion)`, which
/// covers the query.
pub(super) fn disposition_counts<DB: Dialect>(n: &CampaignName) -> Query<DB> {
    let sum =
        |cond: &str, name: &str| format!("CAST(COALESCE(SUM({cond}), 0) AS {}) AS {name}", DB::INT);
    let q = query::<DB>(format!(
        "SELECT {}, {}, {}, {}, {}, {} FROM llamadas WHERE campana = ?",
        sum("disposicion = 'ESCUCHO'", "escucharon"),
        sum("disposicion = 'TRANSFERIDA'", "transferidos"),
        sum("disposicion = 'ABANDONADA'", "abandonados"),
        sum("disposicion = 'BAJA'", "bajas"),
        sum("disposicion = 'MENSAJE_DEJADO'", "mensajes_dejados"),
        sum("resultado = 'HUMANO'", "atendidas_por_persona"),
    ));
    DB::text(q, n.as_str().to_owned())
}

/// Ids of up to `limit` numbers never tried yet (PENDIENTE, `proximo_intento` NULL), by id.
/// `lock` is appended as is (MySQL: `FOR UPDATE SKIP LOCKED`).
///
/// A claim takes these first, then [`due_retry_ids`]: together the order of
/// `ORDER BY proximo_intento, id` (NULL first on both backends), each half one bounded range of
/// the `(estado, proximo_intento, id)` index. A single `proximo_intento IS NULL OR … <= ?` is not a
/// range bound for SQLite: near a campaign's end, with most numbers waiting for a later retry, it
/// read every one of them (≈25 ms per 300,000) on each claim, under the write lock.
pub(super) fn never_tried_ids<DB: Dialect>(t: &TableName, limit: u32, lock: &str) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT id FROM {} WHERE estado = 'PENDIENTE' AND proximo_intento IS NULL \
         ORDER BY id LIMIT ? {lock}",
        t.quoted()
    ));
    DB::id(q, i64::from(limit))
}

/// Ids of up to `limit` retries due by `now` (PENDIENTE, `proximo_intento` ≤ `now`), oldest due
/// first. See [`never_tried_ids`].
pub(super) fn due_retry_ids<DB: Dialect>(
    t: &TableName,
    now: NaiveDateTime,
    limit: u32,
    lock: &str,
) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT id FROM {} WHERE estado = 'PENDIENTE' AND proximo_intento <= ? \
         ORDER BY proximo_intento, id LIMIT ? {lock}",
        t.quoted()
    ));
    DB::id(DB::time(q, now), i64::from(limit))
}

/// Moves claimed rows to MARCANDO, each with a fresh attempt UUID (the call's
/// `origination_uuid`) and `ultimo_intento` NULL until its originate is sent (`sent`).
pub(super) fn mark_claimed<DB: Dialect>(t: &TableName, ids: &[i64]) -> Query<DB> {
    let mut q = query::<DB>(format!(
        "UPDATE {} SET estado = 'MARCANDO', ultimo_intento = NULL, espera = NULL, uuid = {} \
         WHERE id IN ({})",
        t.quoted(),
        case_by_id(ids.len()),
        placeholders(ids.len())
    ));
    for id in ids {
        q = DB::text(DB::id(q, *id), uuid::Uuid::new_v4().to_string());
    }
    bind_ids(q, ids)
}

/// The claimed rows as [`super::rows::ClaimRow`], in claim order.
pub(super) fn claimed<DB: Dialect>(t: &TableName, ids: &[i64]) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT id, telefono, intentos, uuid, datos, zona_horaria FROM {} WHERE id IN ({}) \
         ORDER BY proximo_intento, id",
        t.quoted(),
        placeholders(ids.len())
    ));
    bind_ids(q, ids)
}

/// Claims given back without an attempt counted: as they are ([`unclaim`]), or due later with the
/// reason they wait ([`defer`]). Either way their recorded attempts go too ([`forget_attempts`]).
pub(super) enum GiveBack<'a> {
    Unclaim(&'a [i64]),
    Defer(&'a [(i64, DateTime<Utc>, Wait)]),
}

impl GiveBack<'_> {
    pub(super) fn ids(&self) -> Vec<i64> {
        match self {
            GiveBack::Unclaim(ids) => ids.to_vec(),
            GiveBack::Defer(rows) => rows.iter().map(|r| r.0).collect(),
        }
    }

    /// The update of the numbers table.
    pub(super) fn update<DB: Dialect>(&self, t: &TableName) -> Query<DB> {
        match self {
            GiveBack::Unclaim(ids) => unclaim(t, ids),
            GiveBack::Defer(rows) => defer(t, rows),
        }
    }
}

/// MARCANDO → PENDIENTE without counting an attempt.
pub(super) fn unclaim<DB: Dialect>(t: &TableName, ids: &[i64]) -> Query<DB> {
    let q = query::<DB>(format!(
        "UPDATE {} SET estado = 'PENDIENTE', uuid = NULL \
         WHERE estado = 'MARCANDO' AND id IN ({})",
        t.quoted(),
        placeholders(ids.len())
    ));
    bind_ids(q, ids)
}

/// Deletes the attempts recorded for the caps (`intentos_telefono`) of claims about to be given
/// back: they never reached FreeSWITCH, so they are not attempts. Run before the rows lose their
/// claim `uuid` ([`unclaim`], [`defer`]).
pub(super) fn forget_attempts<DB: Dialect>(t: &TableName, ids: &[i64]) -> Query<DB> {
    let q = query::<DB>(format!(
        "DELETE FROM intentos_telefono WHERE uuid IN (SELECT uuid FROM {} \
         WHERE estado = 'MARCANDO' AND uuid IS NOT NULL AND id IN ({}))",
        t.quoted(),
        placeholders(ids.len())
    ));
    bind_ids(q, ids)
}

/// Claimed numbers that may not be dialed yet back to PENDIENTE, each due at its own time, with
/// the reason they wait (`espera`); no attempt counted.
pub(super) fn defer<DB: Dialect>(t: &TableName, rows: &[(i64, DateTime<Utc>, Wait)]) -> Query<DB> {
    let n = rows.len();
    let case = case_by_id(n);
    let mut q = query::<DB>(format!(
        "UPDATE {t} SET estado = 'PENDIENTE', uuid = NULL, proximo_intento = {case}, \
         espera = {case} WHERE estado = 'MARCANDO' AND id IN ({ids})",
        t = t.quoted(),
        ids = placeholders(n),
    ));
    for (id, until, _) in rows {
        q = DB::time(DB::id(q, *id), to_naive(*until));
    }
    for (id, _, why) in rows {
        q = DB::text(DB::id(q, *id), why.as_str().to_owned());
    }
    for (id, _, _) in rows {
        q = DB::id(q, *id);
    }
    q
}

/// The zones of the numbers still to dial (NULL: the campaign's), as
/// [`super::rows::ZoneRow`]: a loose scan of the `(estado, zona_horaria)` index.
pub(super) fn pending_zones<DB: Dialect>(t: &TableName) -> Query<DB> {
    query(format!(
        "SELECT DISTINCT zona_horaria FROM {} WHERE estado = 'PENDIENTE'",
        t.quoted()
    ))
}

/// The attempts recorded for the caps since `since` (exclusive) of these numbers, as
/// [`super::rows::AttemptRow`]: one range of `(telefono, momento)` per number.
pub(super) fn attempts_since<DB: Dialect>(phones: &[&str], since: NaiveDateTime) -> Query<DB> {
    let mut q = query::<DB>(format!(
        "SELECT telefono, campana, momento FROM intentos_telefono \
         WHERE momento > ? AND telefono IN ({})",
        placeholders(phones.len())
    ));
    q = DB::time(q, since);
    for p in phones {
        q = DB::text(q, (*p).to_owned());
    }
    q
}

/// Records attempts handed to FreeSWITCH: `(telefono, campana, claim uuid)` at `momento`.
pub(super) fn record_attempts<DB: Dialect>(
    rows: &[(&str, &str, String)],
    momento: NaiveDateTime,
) -> Query<DB> {
    let mut q = query::<DB>(format!(
        "INSERT INTO intentos_telefono (telefono, campana, uuid, momento) VALUES {}",
        vec!["(?, ?, ?, ?)"; rows.len()].join(", ")
    ));
    for (telefono, campana, uuid) in rows {
        q = DB::text(q, (*telefono).to_owned());
        q = DB::text(q, (*campana).to_owned());
        q = DB::text(q, uuid.clone());
        q = DB::time(q, momento);
    }
    q
}

/// Attempts older than any cap looks at.
pub(super) fn purge_attempts<DB: Dialect>(before: NaiveDateTime) -> Query<DB> {
    DB::time(
        query("DELETE FROM intentos_telefono WHERE momento <= ?".to_owned()),
        before,
    )
}

/// Attempts that never reached FreeSWITCH (refused without a channel), by their claim `uuid`.
pub(super) fn forget_attempts_by_uuid<DB: Dialect>(uuids: &[&str]) -> Query<DB> {
    let mut q = query::<DB>(format!(
        "DELETE FROM intentos_telefono WHERE uuid IN ({})",
        placeholders(uuids.len())
    ));
    for u in uuids {
        q = DB::text(q, (*u).to_owned());
    }
    q
}

/// A campaign's abandoned calls and calls answered by a person since `since`, as
/// [`super::rows::AbandonRow`]: a range of the `(campana, inicio)` index.
pub(super) fn abandon_counts<DB: Dialect>(n: &CampaignName, since: NaiveDateTime) -> Query<DB> {
    let sum =
        |cond: &str, name: &str| format!("CAST(COALESCE(SUM({cond}), 0) AS {}) AS {name}", DB::INT);
    let q = query::<DB>(format!(
        "SELECT {}, {} FROM llamadas WHERE campana = ? AND inicio >= ?",
        sum("disposicion = 'ABANDONADA'", "abandonados"),
        sum("resultado = 'HUMANO'", "atendidas"),
    ));
    DB::time(DB::text(q, n.as_str().to_owned()), since)
}

/// Numbers in MARCANDO or CONTESTADO as [`super::rows::InFlightRow`].
pub(super) fn in_flight<DB: Dialect>(t: &TableName) -> Query<DB> {
    query(format!(
        "SELECT id, telefono, estado, uuid, intentos, ultimo_intento, resultado FROM {} \
         WHERE estado IN ('MARCANDO', 'CONTESTADO') ORDER BY id",
        t.quoted()
    ))
}

/// MARCANDO → CONTESTADO for these ids.
pub(super) fn answered<DB: Dialect>(t: &TableName, ids: &[i64]) -> Query<DB> {
    let q = query::<DB>(format!(
        "UPDATE {} SET estado = 'CONTESTADO' WHERE estado = 'MARCANDO' AND id IN ({})",
        t.quoted(),
        placeholders(ids.len())
    ));
    bind_ids(q, ids)
}

/// `ultimo_intento` of attempts whose originate is being sent (see `NumberUpdate::Sent`), on rows
/// still on that attempt (its UUID).
pub(super) fn sent<DB: Dialect>(t: &TableName, rows: &[(i64, &str, NaiveDateTime)]) -> Query<DB> {
    let n = rows.len();
    let case = case_by_id(n);
    let mut q = query::<DB>(format!(
        "UPDATE {t} SET ultimo_intento = {case} WHERE id IN ({ids}) AND uuid = {case}",
        t = t.quoted(),
        ids = placeholders(n),
    ));
    for (id, _, at) in rows {
        q = DB::time(DB::id(q, *id), *at);
    }
    for (id, _, _) in rows {
        q = DB::id(q, *id);
    }
    for (id, uuid, _) in rows {
        q = DB::text(DB::id(q, *id), (*uuid).to_owned());
    }
    q
}

/// Refused originates back to PENDIENTE, each due at its own time, no attempt counted: only rows
/// still MARCANDO on that attempt (its UUID) are touched.
pub(super) fn requeue<DB: Dialect>(
    t: &TableName,
    rows: &[(i64, &str, NaiveDateTime)],
) -> Query<DB> {
    let n = rows.len();
    let case = case_by_id(n);
    let mut q = query::<DB>(format!(
        "UPDATE {t} SET estado = 'PENDIENTE', uuid = NULL, proximo_intento = {case} \
         WHERE estado = 'MARCANDO' AND id IN ({ids}) AND uuid = {case}",
        t = t.quoted(),
        ids = placeholders(n),
    ));
    for (id, _, due) in rows {
        q = DB::time(DB::id(q, *id), *due);
    }
    for (id, _, _) in rows {
        q = DB::id(q, *id);
    }
    for (id, uuid, _) in rows {
        q = DB::text(DB::id(q, *id), (*uuid).to_owned());
    }
    q
}

/// Records the result of calls handed to their destination on rows still in flight on that attempt
/// (a row the same batch already finished is left alone).
pub(super) fn delivered<DB: Dialect>(t: &TableName, rows: &[(i64, &str, CallResult)]) -> Query<DB> {
    let n = rows.len();
    let case = case_by_id(n);
    let mut q = query::<DB>(format!(
        "UPDATE {t} SET resultado = {case} \
         WHERE estado IN ('MARCANDO', 'CONTESTADO') AND id IN ({ids}) AND uuid = {case}",
        t = t.quoted(),
        ids = placeholders(n),
    ));
    for (id, _, r) in rows {
        q = DB::text(DB::id(q, *id), r.as_str().to_owned());
    }
    for (id, _, _) in rows {
        q = DB::id(q, *id);
    }
    for (id, uuid, _) in rows {
        q = DB::text(DB::id(q, *id), (*uuid).to_owned());
    }
    q
}

/// The final state of many attempts of one table in one statement. Only the attempt a row is on is
/// written (its claim's UUID, or none for a row recovered without one): a late record of an older
/// attempt must not overwrite a newer one. (Its CDR row is written all the same.) `disposicion` is
/// the attempt's (NULL for one without: not answered, or no script followed it).
pub(super) fn finish<DB: Dialect>(t: &TableName, rows: &[&CallRecord]) -> Query<DB> {
    let n = rows.len();
    let case = case_by_id(n);
    let mut q = query::<DB>(format!(
        "UPDATE {t} SET estado = {case}, intentos = {case}, resultado = {case}, causa = {case}, \
         duracion = {case}, proximo_intento = {case}, uuid = {case}, disposicion = {case} \
         WHERE id IN ({ids}) AND (uuid IS NULL OR uuid = {case})",
        t = t.quoted(),
        ids = placeholders(n),
    ));
    for r in rows {
        q = DB::text(DB::id(q, r.numero_id), r.estado.as_str().to_owned());
    }
    for r in rows {
        q = DB::int(DB::id(q, r.numero_id), to_i32(r.intento));
    }
    for r in rows {
        q = DB::text(DB::id(q, r.numero_id), r.resultado.as_str().to_owned());
    }
    for r in rows {
        q = DB::opt_text(DB::id(q, r.numero_id), r.causa.clone());
    }
    for r in rows {
        q = DB::int(DB::id(q, r.numero_id), to_i32(r.duracion));
    }
    for r in rows {
        q = DB::opt_time(DB::id(q, r.numero_id), r.proximo_intento.map(to_naive));
    }
    for r in rows {
        q = DB::text(DB::id(q, r.numero_id), r.uuid.clone());
    }
    for r in rows {
        let d = r
            .disposicion
            .as_ref()
            .map(|d| d.disposicion.as_str().to_owned());
        q = DB::opt_text(DB::id(q, r.numero_id), d);
    }
    for r in rows {
        q = DB::id(q, r.numero_id);
    }
    for r in rows {
        q = DB::text(DB::id(q, r.numero_id), r.uuid.clone());
    }
    q
}

/// What one batch of [`NumberUpdate`]s does to one numbers table.
pub(super) struct TableWrites<'a> {
    pub(super) tabla: &'a TableName,
    /// Answered calls that the same batch does not also finish.
    pub(super) answered: Vec<i64>,
    /// The last record of each number finished in the batch (a number's last attempt wins).
    pub(super) finished: Vec<&'a CallRecord>,
    /// Refused originates to put back: (id, attempt uuid, due).
    pub(super) requeued: Vec<(i64, &'a str, NaiveDateTime)>,
    /// Calls handed to their destination: (id, attempt uuid, result).
    pub(super) delivered: Vec<(i64, &'a str, CallResult)>,
    /// Originates being sent: (id, attempt uuid, when). Written first.
    pub(super) sent: Vec<(i64, &'a str, NaiveDateTime)>,
}

/// Groups a batch by table, in first-seen order, so each table costs a few statements whatever the
/// batch size.
pub(super) fn plan(updates: &[NumberUpdate]) -> Vec<TableWrites<'_>> {
    let mut tables: Vec<TableWrites<'_>> = Vec::new();
    let mut slot = |t| match tables.iter().position(|w: &TableWrites<'_>| w.tabla == t) {
        Some(i) => i,
        None => {
            tables.push(TableWrites {
                tabla: t,
                answered: Vec::new(),
                finished: Vec::new(),
                requeued: Vec::new(),
                delivered: Vec::new(),
                sent: Vec::new(),
            });
            tables.len() - 1
        }
    };
    let mut answered: Vec<(usize, i64)> = Vec::new();
    let mut finished: Vec<(usize, &CallRecord)> = Vec::new();
    let mut requeued: Vec<(usize, (i64, &str, NaiveDateTime))> = Vec::new();
    let mut delivered: Vec<(usize, (i64, &str, CallResult))> = Vec::new();
    let mut sent: Vec<(usize, (i64, &str, NaiveDateTime))> = Vec::new();
    for u in updates {
        match u {
            NumberUpdate::Sent {
                tabla,
                id,
                uuid,
                at,
            } => sent.push((slot(tabla), (*id, uuid.as_str(), to_naive(*at)))),
            NumberUpdate::Answered { tabla, id } => answered.push((slot(tabla), *id)),
            NumberUpdate::Finished(r) => {
                let i = slot(&r.tabla);
                finished.retain(|(j, old)| !(*j == i && old.numero_id == r.numero_id));
                finished.push((i, r));
            }
            NumberUpdate::Requeued {
                tabla,
                id,
                uuid,
                proximo,
            } => {
                requeued.push((slot(tabla), (*id, uuid.as_str(), to_naive(*proximo))));
            }
            NumberUpdate::Delivered {
                tabla,
                id,
                uuid,
                resultado,
            } => delivered.push((slot(tabla), (*id, uuid.as_str(), *resultado))),
        }
    }
    for (i, r) in finished {
        tables[i].finished.push(r);
    }
    for (i, r) in requeued {
        tables[i].requeued.push(r);
    }
    for (i, r) in delivered {
        tables[i].delivered.push(r);
    }
    for (i, r) in sent {
        tables[i].sent.push(r);
    }
    for (i, id) in answered {
        if !tables[i].finished.iter().any(|r| r.numero_id == id) {
            tables[i].answered.push(id);
        }
    }
    tables
}

/// The CDR rows of a batch, in batch order, one per attempt (UUID): if a batch carries two records
/// of one attempt, the last one is kept, as for the number's own row (see [`plan`]).
pub(super) fn calls(updates: &[NumberUpdate]) -> Vec<&CallRecord> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let records: Vec<&CallRecord> = updates
        .iter()
        .filter_map(|u| match u {
            NumberUpdate::Finished(r) => Some(r),
            NumberUpdate::Answered { .. }
            | NumberUpdate::Requeued { .. }
            | NumberUpdate::Delivered { .. }
            | NumberUpdate::Sent { .. } => None,
        })
        .collect();
    for (i, r) in records.iter().enumerate() {
        last.insert(r.uuid.as_str(), i);
    }
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.uuid.as_str()) == Some(i))
        .map(|(_, r)| *r)
        .collect()
}

/// Every column of `llamadas`, in [`super::rows::CdrRow`]'s order.
const CDR_ROW: &str = "id, campana, numero_id, telefono, intento, uuid, nodo, estado, resultado, \
                       causa, amd_resultado, amd_causa, inicio, contestada, fin, billsec, \
                       duracion, disposicion, mensaje_ms, teclas, accion, transferida_a, \
                       agente_contesto, tras_beep_ms, amd_inicial";

/// One page of a campaign's CDRs with `desde <= inicio < hasta`, in `(inicio, id)` order, after
/// the cursor `(after_inicio, after_id)` (the last row of the previous page; the first page
/// passes `(desde, i64::MIN)`). Keyset pagination: each page is one range of the
/// `(campana, inicio)` index starting where the last one stopped (the index carries `id` as its
/// last part on both engines, so the order needs no sort), whatever the page's depth; `OFFSET`
/// would re-read every earlier row on each page. `inicio >= after_inicio` is the range bound,
/// `(inicio > … OR id > …)` skips the rows of that instant already sent.
pub(super) fn cdr_page<DB: Dialect>(
    n: &CampaignName,
    hasta: NaiveDateTime,
    after: (NaiveDateTime, i64),
    limit: u32,
) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT {CDR_ROW} FROM {} WHERE campana = ? AND inicio >= ? AND inicio < ? \
         AND (inicio > ? OR id > ?) ORDER BY inicio, id LIMIT ?",
        DB::CDR_PAGES_FROM
    ));
    let q = DB::time(DB::text(q, n.as_str().to_owned()), after.0);
    let q = DB::time(DB::time(q, hasta), after.0);
    DB::id(DB::id(q, after.1), i64::from(limit))
}

/// The first and last `inicio` of a campaign's CDRs (NULL without any), as
/// [`super::rows::SpanRow`]: the two ends of its `(campana, inicio)` index range.
pub(super) fn cdr_span<DB: Dialect>(n: &CampaignName) -> Query<DB> {
    DB::text(
        query(
            "SELECT MIN(inicio) AS desde, MAX(inicio) AS hasta FROM llamadas WHERE campana = ?"
                .to_owned(),
        ),
        n.as_str().to_owned(),
    )
}

/// Attempts and answered calls per bucket of `width_s` seconds from `origin`, as
/// [`super::rows::BucketRow`], empty buckets omitted: the chart's points, counted in the database
/// (one pass over the campaign's index range) so that a campaign of millions of CDRs sends only
/// its few hundred points.
pub(super) fn cdr_buckets<DB: Dialect>(
    n: &CampaignName,
    origin: NaiveDateTime,
    width_s: i64,
) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT CAST({} AS {int}) AS punto, COUNT(*) AS intentos, \
         CAST(COALESCE(SUM(CASE WHEN contestada IS NOT NULL THEN 1 ELSE 0 END), 0) AS {int}) \
         AS contestadas FROM llamadas WHERE campana = ? GROUP BY punto ORDER BY punto",
        DB::BUCKET,
        int = DB::INT
    ));
    DB::text(DB::id(DB::time(q, origin), width_s), n.as_str().to_owned())
}

/// CDRs per `resultado` of one campaign, as [`super::rows::ResultCountRow`]: a covering range of
/// the `(campana, resultado, disposicion)` index.
pub(super) fn result_counts<DB: Dialect>(n: &CampaignName) -> Query<DB> {
    DB::text(
        query(
            "SELECT resultado, COUNT(*) AS n FROM llamadas WHERE campana = ? \
             GROUP BY resultado ORDER BY resultado"
                .to_owned(),
        ),
        n.as_str().to_owned(),
    )
}

/// The columns of a numbers table that a copy carries, in [`super::rows::NumberRow`]'s order.
const NUMBER_ROW: &str = "id, telefono, estado, intentos, proximo_intento, ultimo_intento, \
                          resultado, causa, uuid, duracion, datos, disposicion, zona_horaria, \
                          espera";

/// Up to `limit` rows with `id > after`, by id: one page of a copy.
pub(super) fn number_rows<DB: Dialect>(t: &TableName, after: i64, limit: u32) -> Query<DB> {
    let q = query::<DB>(format!(
        "SELECT {NUMBER_ROW} FROM {} WHERE id > ? ORDER BY id LIMIT ?",
        t.quoted()
    ));
    DB::id(DB::id(q, after), i64::from(limit))
}

/// Inserts rows as they are, ids included; rows whose id or `telefono` is already there are skipped,
/// so a copy can be run again.
pub(super) fn insert_number_rows<DB: Dialect>(
    t: &TableName,
    rows: &[super::rows::NumberRow],
) -> Query<DB> {
    let mut q = query::<DB>(format!(
        "{} INTO {} ({NUMBER_ROW}) VALUES {}",
        DB::INSERT_IGNORE,
        t.quoted(),
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ")
    ));
    for r in rows {
        q = DB::text(DB::id(q, r.id), r.telefono.clone());
        q = DB::int(DB::text(q, r.estado.clone()), r.intentos);
        q = DB::opt_time(DB::opt_time(q, r.proximo_intento), r.ultimo_intento);
        q = DB::opt_text(DB::opt_text(q, r.resultado.clone()), r.causa.clone());
        q = DB::int(DB::opt_text(q, r.uuid.clone()), r.duracion);
        q = DB::opt_text(DB::opt_text(q, r.datos.clone()), r.disposicion.clone());
        q = DB::opt_text(DB::opt_text(q, r.zona_horaria.clone()), r.espera.clone());
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_list() {
        assert_eq!(placeholders(3), "?, ?, ?");
        assert_eq!(case_by_id(2), "CASE id WHEN ? THEN ? WHEN ? THEN ? END");
    }
}
