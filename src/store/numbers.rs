//! The per-campaign numbers tables: loading, counting, claiming.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::mysql::Mysql;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Datetime, Integer, Nullable, Text, Unsigned};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{
    from_naive, placeholders, to_naive, to_u32, Campaign, ClaimedNumber, InFlight, InsertCounts,
    NewNumber, NumberStats, Store, StoreError,
};
use crate::domain::NumberState;

type Boxed<'f> = BoxedSqlQuery<'f, Mysql, SqlQuery>;

/// Binds a list of ids for `IN (…)`.
fn bind_ids<'f>(mut q: Boxed<'f>, ids: &[i64]) -> Boxed<'f> {
    for id in ids {
        q = q.bind::<BigInt, _>(*id);
    }
    q
}

#[derive(QueryableByName)]
struct StatsRow {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    pendientes: i64,
    #[diesel(sql_type = BigInt)]
    marcando: i64,
    #[diesel(sql_type = BigInt)]
    contestados: i64,
    #[diesel(sql_type = BigInt)]
    completados: i64,
    #[diesel(sql_type = BigInt)]
    errores: i64,
    #[diesel(sql_type = BigInt)]
    humanos: i64,
    #[diesel(sql_type = BigInt)]
    maquinas: i64,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    telefono: String,
    #[diesel(sql_type = Integer)]
    intentos: i32,
    #[diesel(sql_type = Nullable<Text>)]
    uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    datos: Option<String>,
}

#[derive(QueryableByName)]
struct InFlightRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    telefono: String,
    #[diesel(sql_type = Text)]
    estado: String,
    #[diesel(sql_type = Nullable<Text>)]
    uuid: Option<String>,
    #[diesel(sql_type = Integer)]
    intentos: i32,
    #[diesel(sql_type = Nullable<Datetime>)]
    ultimo_intento: Option<NaiveDateTime>,
}

/// `datos` is JSON text; a hand-edited value that is not JSON is passed on as a JSON string.
fn parse_datos(raw: Option<String>) -> Option<serde_json::Value> {
    raw.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Inserts a batch; numbers already in the campaign (or twice in the batch) are counted as
    /// duplicates and left untouched (`INSERT IGNORE` on the unique `telefono`).
    pub async fn insert_numbers(
        &self,
        c: &Campaign,
        batch: &[NewNumber],
    ) -> Result<InsertCounts, StoreError> {
        if batch.is_empty() {
            return Ok(InsertCounts::default());
        }
        let mut sql = format!(
            "INSERT IGNORE INTO {} (telefono, datos) VALUES ",
            c.tabla.quoted()
        );
        sql.push_str(&vec!["(?, ?)"; batch.len()].join(", "));
        let mut q = diesel::sql_query(sql).into_boxed::<Mysql>();
        for n in batch {
            let datos = n.datos.as_ref().map(|d| d.to_string());
            q = q
                .bind::<Text, _>(n.telefono.as_str().to_owned())
                .bind::<Nullable<Text>, _>(datos);
        }
        let mut conn = self.conn().await?;
        let inserted = q.execute(&mut conn).await? as u64;
        Ok(InsertCounts {
            inserted,
            duplicates: batch.len() as u64 - inserted.min(batch.len() as u64),
        })
    }

    /// Whether any number is PENDIENTE (due now or later): an index probe, not a count.
    pub async fn has_pending(&self, c: &Campaign) -> Result<bool, StoreError> {
        self.has_numbers_in(c, &[NumberState::Pendiente]).await
    }

    /// Whether anything is left to do: a number PENDIENTE (due now or later) or still in flight
    /// (MARCANDO, CONTESTADO). The runner finishes a campaign when this is false.
    pub async fn has_open_numbers(&self, c: &Campaign) -> Result<bool, StoreError> {
        self.has_numbers_in(
            c,
            &[
                NumberState::Pendiente,
                NumberState::Marcando,
                NumberState::Contestado,
            ],
        )
        .await
    }

    /// Whether any number is in one of `states`: an index probe (`estado` leads the index), not a
    /// count. The states are our own constants, spliced as quoted literals.
    async fn has_numbers_in(
        &self,
        c: &Campaign,
        states: &[NumberState],
    ) -> Result<bool, StoreError> {
        let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "SELECT CAST(EXISTS(SELECT 1 FROM {} WHERE estado IN ({})) AS SIGNED) AS id",
            c.tabla.quoted(),
            list.join(", ")
        );
        let mut conn = self.conn().await?;
        let r: IdRow = diesel::sql_query(sql).get_result(&mut conn).await?;
        Ok(r.id != 0)
    }

    /// Per-state counts in one statement (one consistent snapshot). A full scan of the table: the
    /// API serves it from a cache refreshed in the background, not per request.
    pub async fn stats(&self, c: &Campaign) -> Result<NumberStats, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS total, \
             CAST(COALESCE(SUM(estado = 'PENDIENTE'), 0) AS SIGNED) AS pendientes, \
             CAST(COALESCE(SUM(estado = 'MARCANDO'), 0) AS SIGNED) AS marcando, \
             CAST(COALESCE(SUM(estado = 'CONTESTADO'), 0) AS SIGNED) AS contestados, \
             CAST(COALESCE(SUM(estado = 'COMPLETADO'), 0) AS SIGNED) AS completados, \
             CAST(COALESCE(SUM(estado = 'ERROR'), 0) AS SIGNED) AS errores, \
             CAST(COALESCE(SUM(resultado = 'HUMANO'), 0) AS SIGNED) AS humanos, \
             CAST(COALESCE(SUM(resultado = 'MAQUINA'), 0) AS SIGNED) AS maquinas \
             FROM {}",
            c.tabla.quoted()
        );
        let mut conn = self.conn().await?;
        let r: StatsRow = diesel::sql_query(sql).get_result(&mut conn).await?;
        Ok(NumberStats {
            total: count(r.total),
            pendientes: count(r.pendientes),
            marcando: count(r.marcando),
            contestados: count(r.contestados),
            completados: count(r.completados),
            errores: count(r.errores),
            humanos: count(r.humanos),
            maquinas: count(r.maquinas),
        })
    }

    /// Atomically moves up to `limit` due numbers (PENDIENTE and `proximo_intento` NULL or ≤ `now`)
    /// to MARCANDO with a fresh `uuid` and `ultimo_intento = now`, oldest due first. Rows locked by a
    /// concurrent claimer are skipped (`FOR UPDATE SKIP LOCKED`), so two claimers never share a row.
    pub async fn claim_due(
        &self,
        c: &Campaign,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNumber>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let t = c.tabla.quoted();
        let now = to_naive(now);
        let mut conn = self.conn().await?;
        let rows: Vec<ClaimRow> = conn
            .transaction::<Vec<ClaimRow>, StoreError, _>(async move |conn| {
                let ids: Vec<IdRow> = diesel::sql_query(format!(
                    "SELECT id FROM {t} WHERE estado = 'PENDIENTE' \
                     AND (proximo_intento IS NULL OR proximo_intento <= ?) \
                     ORDER BY proximo_intento, id LIMIT ? FOR UPDATE SKIP LOCKED"
                ))
                .bind::<Datetime, _>(now)
                .bind::<Unsigned<Integer>, _>(limit)
                .load(conn)
                .await?;
                let ids: Vec<i64> = ids.into_iter().map(|r| r.id).collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let update = diesel::sql_query(format!(
                    "UPDATE {t} SET estado = 'MARCANDO', uuid = UUID(), ultimo_intento = ? \
                     WHERE id IN ({})",
                    placeholders(ids.len())
                ))
                .into_boxed::<Mysql>()
                .bind::<Datetime, _>(now);
                bind_ids(update, &ids).execute(conn).await?;
                let select = diesel::sql_query(format!(
                    "SELECT id, telefono, intentos, uuid, datos FROM {t} WHERE id IN ({}) \
                     ORDER BY proximo_intento, id",
                    placeholders(ids.len())
                ))
                .into_boxed::<Mysql>();
                Ok(bind_ids(select, &ids).load(conn).await?)
            })
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ClaimedNumber {
                    id: r.id,
                    telefono: r.telefono,
                    intentos: to_u32("intentos", r.intentos)?,
                    uuid: r.uuid.unwrap_or_default(),
                    datos: parse_datos(r.datos),
                })
            })
            .collect()
    }

    /// Gives claimed numbers back (MARCANDO → PENDIENTE) without counting an attempt: e.g. the
    /// window closed or the campaign was paused between claim and originate.
    pub async fn unclaim(&self, c: &Campaign, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let q = diesel::sql_query(format!(
            "UPDATE {} SET estado = 'PENDIENTE', uuid = NULL \
             WHERE estado = 'MARCANDO' AND id IN ({})",
            c.tabla.quoted(),
            placeholders(ids.len())
        ))
        .into_boxed::<Mysql>();
        let mut conn = self.conn().await?;
        bind_ids(q, ids).execute(&mut conn).await?;
        Ok(())
    }

    /// Numbers in MARCANDO or CONTESTADO: the calls to reconcile after a restart.
    pub async fn in_flight(&self, c: &Campaign) -> Result<Vec<InFlight>, StoreError> {
        let sql = format!(
            "SELECT id, telefono, estado, uuid, intentos, ultimo_intento FROM {} \
             WHERE estado IN ('MARCANDO', 'CONTESTADO') ORDER BY id",
            c.tabla.quoted()
        );
        let mut conn = self.conn().await?;
        let rows: Vec<InFlightRow> = diesel::sql_query(sql).load(&mut conn).await?;
        rows.into_iter()
            .map(|r| {
                Ok(InFlight {
                    id: r.id,
                    telefono: r.telefono,
                    estado: NumberState::parse(&r.estado)
                        .map_err(|e| StoreError::Database(e.to_string()))?,
                    uuid: r.uuid,
                    intentos: to_u32("intentos", r.intentos)?,
                    ultimo_intento: r.ultimo_intento.map(from_naive),
                })
            })
            .collect()
    }
}
