//! Every database access of discador, behind one type that speaks domain types.
//!
//! Two backends sit behind [`Store`], chosen by `DATABASE_URL`: MySQL/MariaDB (`mysql::`, the
//! production backend, async over `mysql_async`) and an embedded SQLite file (`sqlite::`, zero
//! setup, run on blocking threads). Callers never see SQL, diesel or the backend. What they share is
//! written once: the rows and their conversions (`rows`), the statements on numbers tables and
//! `llamadas` (`sql`), the schema of the fixed tables (`schema`). Rules kept by every query:
//! - dynamic table names come only from [`CampaignName`] / [`TableName`], always quoted;
//!   every value is bound (`sql_query(..).bind(..)`), never spliced;
//! - all times are UTC, millisecond precision, bound from chrono; `NOW()` is never used, so the
//!   database's time zone and clock do not matter — except for the processes' heartbeats
//!   (`procesos`), where the database's clock is the one clock every process shares;
//! - connection and pool failures become [`StoreError::Unavailable`] (HTTP 503): the pool reconnects by
//!   itself when the database comes back, the process never exits for it.

mod model;
mod mysql;
mod rows;
mod schema;
mod sql;
mod sqlite;

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

use crate::domain::{CampaignName, CampaignState, NumberState, PhoneNumber, TableName, Wait};
use crate::secret::Secret;

pub use rows::{AttemptCopyRow, CdrRow, DncRow, NumberRow};

pub use model::{
    Attempt, CallRecord, Campaign, CampaignPatch, ClaimedNumber, DispositionCounts, InFlight,
    InsertCounts, NewCampaign, NewNumber, NumberStats, NumberUpdate,
};

/// Errors of the store. Messages are Spanish (they reach API clients) and never contain the URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, lost, pool timeout).
    #[error("base de datos no disponible: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    /// Already exists, duplicate, or a state change that is not allowed now.
    #[error("{0}")]
    Conflict(String),
    /// The request or the existing data cannot be used (e.g. an adopted table without `telefono`).
    #[error("{0}")]
    Invalid(String),
    /// InnoDB chose this transaction as a deadlock victim, or it timed out waiting for a row lock:
    /// claims, releases and result writes touch the same rows concurrently. The same statement
    /// may succeed if tried again. (SQLite's busy write lock is an outage: `Unavailable`.)
    #[error("base de datos ocupada: {0}")]
    Busy(String),
    /// A table to be created exists already (`CREATE TABLE` refused).
    #[error("{0}")]
    TableExists(String),
    #[error("error de base de datos: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether the same statement may succeed if simply tried again (the database is unreachable
    /// or busy). The writer drops an update only when this is false, so the kinds are decided once,
    /// in `From<DieselError>`.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(format!("ya existe: {}", info.message()))
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                StoreError::Unavailable(e.to_string())
            }
            DieselError::DatabaseError(_, info) if is_connection_failure(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            DieselError::DatabaseError(_, info) if is_sqlite_outage(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            DieselError::DatabaseError(_, info) if is_lock_conflict(info.message()) => {
                StoreError::Busy(info.message().to_owned())
            }
            // MySQL 1050 "Table 'x' already exists", SQLite "table x already exists".
            DieselError::DatabaseError(_, info) if info.message().contains("already exists") => {
                StoreError::TableExists(info.message().to_owned())
            }
            DieselError::NotFound => StoreError::NotFound("no encontrado".into()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// diesel-async reports mysql_async's I/O and driver errors as `DatabaseErrorKind::Unknown` with the
/// driver's text, so the connection failures are recognized by that text (server errors carry the
/// server's own message, which never starts like these).
fn is_connection_failure(msg: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "Input/output error",
        "Driver error",
        "Connection refused",
        "broken pipe",
        "Server shutdown",
        "Connection was killed",
    ];
    MARKERS
        .iter()
        .any(|m| msg.to_ascii_lowercase().contains(&m.to_ascii_lowercase()))
}

/// MySQL/MariaDB 1213 ("Deadlock found when trying to get lock") and 1205 ("Lock wait timeout
/// exceeded"): diesel passes only the server's message, not its code.
fn is_lock_conflict(msg: &str) -> bool {
    msg.contains("Deadlock found") || msg.contains("Lock wait timeout")
}

/// SQLite conditions that stop writes for a while without anything being wrong with the request:
/// another writer held the lock past the busy timeout, the disk is full or failing, the file became
/// read-only. Like a lost MySQL connection they answer 503 and the dialer keeps its results queued
/// and retries, so none is lost. When such an error strikes inside a transaction SQLite rolls it back
/// by itself, and diesel then reports its own failed `ROLLBACK` ("cannot rollback - no transaction
/// is active") instead of the cause: that is an outage too (we never use `ON CONFLICT ROLLBACK`, the
/// only other way to get it).
fn is_sqlite_outage(msg: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "database is locked",
        "database or disk is full",
        "disk I/O error",
        "unable to open database file",
        "attempt to write a readonly database",
        "cannot rollback - no transaction is active",
    ];
    MARKERS.iter().any(|m| msg.contains(m))
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        StoreError::Unavailable(match e {
            PoolError::Timeout(_) => "tiempo de espera agotado".to_owned(),
            PoolError::Backend(inner) => inner.to_string(),
            other => other.to_string(),
        })
    }
}

impl From<diesel::ConnectionError> for StoreError {
    fn from(e: diesel::ConnectionError) -> Self {
        match e {
            // The URL itself is never echoed: it may hold the password.
            diesel::ConnectionError::InvalidConnectionUrl(_) => {
                StoreError::Invalid("DATABASE_URL inválida".into())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `mysql://user:pass@host:port/db`: the server URL without the database (so the database
    /// can be created before connecting to it) and the validated database name.
    Mysql {
        server_url: Secret,
        database: String,
    },
    /// `sqlite://discador.db` (relative to the working directory) or `sqlite:///var/lib/x.db`.
    Sqlite { path: String },
}

impl Location {
    /// Parses `DATABASE_URL`. The URL itself never appears in an error: it may hold a password.
    pub fn parse(url: &Secret) -> Result<Location, StoreError> {
        let invalid = |why: &str| StoreError::Invalid(format!("DATABASE_URL inválida: {why}"));
        let raw = url.expose();
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains('?') || path.contains('\0') || path == ":memory:" {
                return Err(invalid(
                    "sqlite:// debe seguir de la ruta del archivo (sqlite://discador.db)",
                ));
            }
            return Ok(Location::Sqlite {
                path: path.to_owned(),
            });
        }
        let mut parsed = url::Url::parse(raw).map_err(|_| invalid("no es una URL"))?;
        if parsed.scheme() != "mysql" {
            return Err(invalid("el esquema debe ser mysql:// o sqlite://"));
        }
        let db = parsed.path().trim_start_matches('/').to_owned();
        let ok = !db.is_empty()
            && db.len() <= 64
            && db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(invalid(
                "falta el nombre de la base de datos o no es [A-Za-z0-9_]{1,64}",
            ));
        }
        parsed.set_path("");
        Ok(Location::Mysql {
            server_url: Secret::new(parsed.to_string()),
            database: db,
        })
    }

    /// `mysql` or `sqlite`, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Mysql { .. } => "mysql",
            Location::Sqlite { .. } => "sqlite",
        }
    }
}

/// The database of discador: MySQL/MariaDB or an embedded SQLite file, chosen by `DATABASE_URL`.
/// Every method means the same on both. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Mysql(mysql::MysqlStore),
    Sqlite(sqlite::SqliteStore),
}

/// Runs the same method on whichever backend this store uses.
macro_rules! on_backend {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Mysql(b) => b.$method($($arg),*).await,
            Backend::Sqlite(b) => b.$method($($arg),*).await,
        }
    };
}

mod export;
pub use export::{CallSeries, CdrRange, SeriesPoint, MAX_POINTS};
mod procesos;
pub use procesos::{Beat, Lease, Peer};

impl Store {
    /// Creates the database if missing, runs the embedded migrations and opens the pool.
    pub async fn connect(url: &Secret) -> Result<Store, StoreError> {
        let store = Store::connect_lazy(url)?;
        store.prepare().await?;
        Ok(store)
    }

    /// Opens the pool without touching the database: requests answer 503 until it is reachable.
    /// Used by `serve` when MariaDB is down at start-up; [`Store::prepare`] then runs in the
    /// background until it succeeds.
    pub fn connect_lazy(url: &Secret) -> Result<Store, StoreError> {
        let backend = match Location::parse(url)? {
            Location::Mysql {
                server_url,
                database,
            } => Backend::Mysql(mysql::MysqlStore::new(url, server_url, database)?),
            Location::Sqlite { path } => Backend::Sqlite(sqlite::SqliteStore::new(path)?),
        };
        Ok(Store { backend })
    }

    /// Where the data is, for the start-up log: the SQLite file's absolute path, or the MySQL
    /// database's name (never the URL: it may hold a password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Mysql(b) => format!("mysql, base {}", b.database()),
            Backend::Sqlite(b) => {
                let path = std::path::Path::new(b.path());
                let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                format!("sqlite, archivo {}", shown.display())
            }
        }
    }

    /// `mysql` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Mysql(_) => "mysql",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Creates the database if missing and applies pending migrations. Idempotent.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        let applied = on_backend!(self.prepare())?;
        if applied > 0 {
            tracing::info!(
                migraciones = applied,
                base = self.backend(),
                "migraciones aplicadas"
            );
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self.ping())
    }

    // --- campaigns (`bases`) ---

    /// Creates the campaign and its numbers table, or adopts `c.tabla` if it already exists.
    /// All-or-nothing: a table created here is dropped again if the campaign cannot be recorded.
    pub async fn create_campaign(&self, c: &NewCampaign) -> Result<Campaign, StoreError> {
        let tabla = c
            .tabla
            .clone()
            .unwrap_or_else(|| TableName::from(&c.nombre));
        let campaign = c.created(tabla, rows::now_ms());
        let adopt = c.tabla.is_some();
        on_backend!(self.create_campaign(&campaign, adopt))?;
        tracing::info!(campana = %campaign.nombre, tabla = %campaign.tabla, adoptada = adopt, "campaña creada");
        Ok(campaign)
    }

    /// Records a campaign exactly as given (state and times included) with a new, empty numbers
    /// table `c.tabla`: the first step of copying a campaign from another database.
    pub async fn restore_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
        on_backend!(self.create_campaign(c, false))
    }

    /// Writes every field of an existing campaign exactly as given (state and times included): the
    /// last step of copying a campaign.
    pub async fn put_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
        on_backend!(self.put_campaign(c))
    }

    /// Opens an existing database without creating or migrating anything: for reading it (the
    /// source of `discador copy`). A missing SQLite file is an error, not a new empty database.
    pub async fn open_existing(url: &Secret) -> Result<Store, StoreError> {
        if let Location::Sqlite { path } = Location::parse(url)? {
            if !std::path::Path::new(&path).is_file() {
                return Err(StoreError::NotFound(format!("no existe el archivo {path}")));
            }
        }
        let store = Store::connect_lazy(url)?;
        store.campaigns().await?;
        Ok(store)
    }

    pub async fn campaign(&self, n: &CampaignName) -> Result<Option<Campaign>, StoreError> {
        on_backend!(self.campaign(n))
    }

    /// All campaigns, by name.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        on_backend!(self.campaigns())
    }

    /// Changes settings; returns the campaign as stored. Row-locked (MySQL) or under the write lock
    /// (SQLite), so concurrent patches do not lose each other's fields. A patch that leaves the
    /// campaign's script inconsistent (a menu without `mensaje_humano`) is refused as `Invalid`
    /// naming the field, and nothing is changed.
    pub async fn update_campaign(
        &self,
        n: &CampaignName,
        p: &CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        on_backend!(self.update_campaign(n, p))
    }

    /// Records a state unconditionally (the dialer's own transitions, e.g. FINALIZADA).
    pub async fn set_campaign_state(
        &self,
        n: &CampaignName,
        s: CampaignState,
    ) -> Result<(), StoreError> {
        on_backend!(self.set_campaign_state(n, s))
    }

    /// Compare-and-set of the state: moves to `to` only from one of `from`, else `Conflict` naming the
    /// current state. Two concurrent requests cannot both win. `motivo` is recorded with the new
    /// state: why the service itself made the change, `None` for an operator's.
    pub async fn transition_campaign_state(
        &self,
        n: &CampaignName,
        from: &[CampaignState],
        to: CampaignState,
        motivo: Option<&str>,
    ) -> Result<Campaign, StoreError> {
        on_backend!(self.transition_campaign_state(n, from, to, motivo))
    }

    // --- numbers tables ---

    /// Inserts a batch; numbers already in the campaign (or twice in the batch) are counted as
    /// duplicates and left untouched.
    pub async fn insert_numbers(
        &self,
        c: &Campaign,
        batch: &[NewNumber],
    ) -> Result<InsertCounts, StoreError> {
        if batch.is_empty() {
            return Ok(InsertCounts::default());
        }
        let inserted = on_backend!(self.insert_numbers(&c.tabla, batch))?;
        Ok(InsertCounts {
            inserted,
            duplicates: batch.len() as u64 - inserted.min(batch.len() as u64),
        })
    }

    /// Whether any number is PENDIENTE (due now or later): an index probe, not a count.
    pub async fn has_pending(&self, c: &Campaign) -> Result<bool, StoreError> {
        on_backend!(self.has_numbers_in(&c.tabla, &[NumberState::Pendiente]))
    }

    /// Whether anything is left to do: a number PENDIENTE (due now or later) or still in flight
    /// (MARCANDO, CONTESTADO). The runner finishes a campaign when this is false.
    pub async fn has_open_numbers(&self, c: &Campaign) -> Result<bool, StoreError> {
        on_backend!(self.has_numbers_in(
            &c.tabla,
            &[
                NumberState::Pendiente,
                NumberState::Marcando,
                NumberState::Contestado,
            ]
        ))
    }

    /// Per-state counts in one statement (one consistent snapshot). A full scan of the table: the
    /// API serves it from a cache refreshed in the background, not per request.
    pub async fn stats(&self, c: &Campaign) -> Result<NumberStats, StoreError> {
        on_backend!(self.stats(&c.tabla))
    }

    /// Atomically moves up to `limit` due numbers (PENDIENTE and `proximo_intento` NULL or ≤ `now`)
    /// to MARCANDO with a fresh `uuid` and `ultimo_intento` NULL (set when its originate is sent,
    /// see `NumberUpdate::Sent`), oldest due first. Two claimers
    /// never share a row (MySQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time).
    pub async fn claim_due(
        &self,
        c: &Campaign,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNumber>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        on_backend!(self.claim_due(&c.tabla, now, limit))
    }

    /// Gives claimed numbers back (MARCANDO → PENDIENTE) without counting an attempt: e.g. the
    /// window closed or the campaign was paused between claim and originate.
    pub async fn unclaim(&self, c: &Campaign, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        on_backend!(self.give_back(&c.tabla, &sql::GiveBack::Unclaim(ids)))
    }

    /// Gives claimed numbers back that may not be dialed yet (outside their window, over a cap):
    /// PENDIENTE again, due at `until`, with the reason (`espera`) estado counts; no attempt
    /// counted, and their recorded attempts (for the caps) deleted.
    pub async fn defer(
        &self,
        c: &Campaign,
        rows: &[(i64, DateTime<Utc>, Wait)],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_backend!(self.give_back(&c.tabla, &sql::GiveBack::Defer(rows)))
    }

    /// The distinct zones of the campaign's PENDIENTE numbers (`None`: the campaign's own).
    pub async fn pending_zones(&self, c: &Campaign) -> Result<Vec<Option<String>>, StoreError> {
        on_backend!(self.pending_zones(&c.tabla))
    }

    /// The attempts recorded after `since` (exclusive) for these numbers, any campaign.
    pub async fn attempts_since(
        &self,
        phones: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<Attempt>, StoreError> {
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for chunk in phones.chunks(DNC_CHUNK) {
            all.extend(on_backend!(self.attempts_since(chunk, since))?);
        }
        Ok(all)
    }

    /// Records attempts `(telefono, campana, claim uuid)` handed to FreeSWITCH at `at`; with
    /// `purge_before`, also deletes those recorded at or before it (no cap looks that far back).
    pub async fn record_attempts(
        &self,
        rows: &[(&str, &str, String)],
        at: DateTime<Utc>,
        purge_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_backend!(self.record_attempts(rows, at, purge_before))
    }

    /// A campaign's `(abandoned calls, calls answered by a person)` started since `since`.
    pub async fn abandon_counts(
        &self,
        n: &CampaignName,
        since: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        on_backend!(self.abandon_counts(n, since))
    }

    /// Numbers in MARCANDO or CONTESTADO: the calls to reconcile after a restart.
    pub async fn in_flight(&self, c: &Campaign) -> Result<Vec<InFlight>, StoreError> {
        on_backend!(self.in_flight(&c.tabla))
    }

    /// How the campaign's answered calls ended, counted over its CDRs in one statement (an index
    /// range of `llamadas`, see migration `guion`).
    pub async fn disposition_counts(
        &self,
        n: &CampaignName,
    ) -> Result<DispositionCounts, StoreError> {
        on_backend!(self.disposition_counts(n))
    }

    // --- results ---

    /// Applies a batch of updates (any mix of campaigns) in ONE transaction: either every number and
    /// CDR of the batch is written or none is, so the writer can retry the same batch after an outage.
    /// Retrying a batch that was in fact committed changes nothing: the number updates are guarded
    /// by the attempt's UUID and CDRs are unique per attempt UUID (inserted "or ignore").
    ///
    /// A few statements per campaign table, whatever the batch size (see [`sql::plan`]).
    pub async fn apply(&self, updates: &[NumberUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        on_backend!(self.apply(updates))
    }

    // --- FreeSWITCH nodes ---

    /// The nodes an operator drained or activated (`true`: drained). A node without a row is
    /// not drained.
    pub async fn drained_nodes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        on_backend!(self.drained_nodes())
    }

    /// Records that node `nombre` is drained (no new calls) or active again, for every process
    /// sharing this database.
    pub async fn set_node_drained(&self, nombre: &str, drenado: bool) -> Result<(), StoreError> {
        let now = chrono::Utc::now().naive_utc();
        on_backend!(self.set_node_drained(nombre, drenado, now))
    }

    // --- do-not-call list ---

    /// Which of these numbers (normalized form) are on the DNC list.
    pub async fn dnc_contains(
        &self,
        telefonos: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if telefonos.is_empty() {
            return Ok(Default::default());
        }
        on_backend!(self.dnc_contains(telefonos))
    }

    /// Adds numbers to the DNC list; returns how many were new.
    /// One statement per [`DNC_CHUNK`] numbers: a long list never holds the database (SQLite's
    /// write lock) for the whole upload.
    pub async fn add_dnc(&self, telefonos: &[PhoneNumber]) -> Result<u64, StoreError> {
        let creado = rows::to_naive(Utc::now());
        let mut added = 0;
        for chunk in telefonos.chunks(DNC_CHUNK) {
            let rows: Vec<DncRow> = chunk
                .iter()
                .map(|t| DncRow {
                    telefono: t.as_str().to_owned(),
                    creado,
                })
                .collect();
            added += self.insert_dnc_rows(&rows).await?;
        }
        Ok(added)
    }
}

/// Pages of rows as stored, for `discador copy` (see `crate::copy`): read by key, written as they
/// are (keys included), skipping rows the destination already has, so a copy can be run again.
impl Store {
    /// Up to `limit` rows of a numbers table with `id > after`, by id.
    pub async fn number_rows(
        &self,
        c: &Campaign,
        after: i64,
        limit: u32,
    ) -> Result<Vec<NumberRow>, StoreError> {
        on_backend!(self.number_rows(&c.tabla, after, limit))
    }

    /// Inserts numbers-table rows; returns how many were new.
    pub async fn insert_number_rows(
        &self,
        c: &Campaign,
        rows: &[NumberRow],
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_backend!(self.insert_number_rows(&c.tabla, rows))
    }

    /// Up to `limit` CDRs with `id > after`, by id.
    pub async fn cdr_rows(&self, after: i64, limit: u32) -> Result<Vec<CdrRow>, StoreError> {
        on_backend!(self.cdr_rows(after, limit))
    }

    /// Inserts CDRs; returns how many were new.
    pub async fn insert_cdr_rows(&self, rows: &[CdrRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_backend!(self.insert_cdr_rows(rows))
    }

    /// Up to `limit` attempts recorded for the caps with `id > after`, by id.
    pub async fn attempt_rows(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AttemptCopyRow>, StoreError> {
        on_backend!(self.attempt_rows(after, limit))
    }

    /// Inserts recorded attempts as they are, ids included; returns how many were new.
    pub async fn insert_attempt_rows(&self, rows: &[AttemptCopyRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_backend!(self.insert_attempt_rows(rows))
    }

    /// Up to `limit` do-not-call entries after `after`, by number.
    pub async fn dnc_rows(&self, after: &str, limit: u32) -> Result<Vec<DncRow>, StoreError> {
        on_backend!(self.dnc_rows(after, limit))
    }

    /// Inserts do-not-call entries; returns how many were new.
    pub async fn insert_dnc_rows(&self, rows: &[DncRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_backend!(self.insert_dnc_rows(rows))
    }
}

/// Builds a connection pool with discador's limits: at most `size` connections, and `timeout` to get
/// one, to establish one and to recycle one, after which the caller gets 503.
fn pool<M: deadpool::managed::Manager>(
    builder: deadpool::managed::PoolBuilder<M>,
    size: usize,
    timeout: std::time::Duration,
) -> Result<deadpool::managed::Pool<M>, StoreError> {
    builder
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Invalid(format!("pool: {e}")))
}

/// Values per DNC statement: keeps `IN (…)` lists and multi-row inserts well under both backends'
/// limits on bound values.
const DNC_CHUNK: usize = 1000;

fn already_exists(e: &StoreError) -> bool {
    matches!(e, StoreError::TableExists(_))
}

/// The error for a campaign that exists already (its name is taken).
fn campaign_exists(n: &CampaignName) -> StoreError {
    StoreError::Conflict(format!("la campaña {n} ya existe"))
}

/// Refuses to adopt a table with `blank` rows that have no telephone (see [`sql::blank_phones`]).
fn check_blank_phones(t: &TableName, blank: i64) -> Result<(), StoreError> {
    if blank > 0 {
        return Err(StoreError::Invalid(format!(
            "la tabla {t} tiene {blank} filas sin teléfono (NULL): complételas o bórrelas antes de \
             adoptarla"
        )));
    }
    Ok(())
}

/// Applies a settings patch to the stored campaign, then checks the rules between its fields.
fn patched(c: &mut Campaign, p: &CampaignPatch) -> Result<(), StoreError> {
    p.apply_to(c);
    c.guion
        .check()
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Why the `disposicion` column could not be added to a campaign's numbers table when the store
/// opened: logged, never fatal (the campaign's table may have been dropped by hand).
fn warn_numbers_table(tabla: &str, why: &str) {
    tracing::warn!(
        tabla,
        motivo = why,
        "tabla de números sin la columna disposicion; la campaña no podrá registrar resultados"
    );
}

fn campaign_missing(n: &CampaignName) -> StoreError {
    StoreError::NotFound(format!("no existe la campaña {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind of a database error is decided once, here; the writer keeps (and retries) an
    /// update exactly when the kind is transient.
    #[test]
    fn database_errors_get_their_kind_once() {
        let db = |kind, msg: &str| {
            StoreError::from(DieselError::DatabaseError(kind, Box::new(msg.to_owned())))
        };
        let unknown = DatabaseErrorKind::Unknown;
        let cases = [
            (
                db(
                    unknown,
                    "Deadlock found when trying to get lock; try restarting transaction",
                ),
                "Busy",
                true,
            ),
            (
                db(
                    unknown,
                    "Lock wait timeout exceeded; try restarting transaction",
                ),
                "Busy",
                true,
            ),
            (
                db(unknown, "Input/output error: broken pipe"),
                "Unavailable",
                true,
            ),
            (db(unknown, "database is locked"), "Unavailable", true),
            (
                db(unknown, "Table 'x' already exists"),
                "TableExists",
                false,
            ),
            (db(unknown, "table x already exists"), "TableExists", false),
            (
                db(
                    DatabaseErrorKind::UniqueViolation,
                    "Duplicate entry '1' for key 'PRIMARY'",
                ),
                "Conflict",
                false,
            ),
            (
                db(unknown, "Unknown column 'x' in 'field list'"),
                "Database",
                false,
            ),
            (StoreError::from(DieselError::NotFound), "NotFound", false),
        ];
        for (e, kind, transient) in cases {
            assert!(format!("{e:?}").starts_with(kind), "{e:?} is not {kind}");
            assert_eq!(e.is_transient(), transient, "{e:?}");
        }
    }

    #[test]
    fn mysql_url_split_keeps_credentials_and_checks_name() {
        let loc = Location::parse(&Secret::new("mysql://u:p@h:3307/discador_x")).unwrap(); // valid
        assert_eq!(
            loc,
            Location::Mysql {
                server_url: Secret::new("mysql://u:p@h:3307"),
                database: "discador_x".into()
            }
        );
        for bad in [
            "mysql://h/",
            "mysql://h/a-b",
            "postgres://h/x",
            "nope",
            "mysql://h/x`y",
            "sqlite://",
            "sqlite://x.db?mode=memory",
            "sqlite://:memory:",
        ] {
            let err = Location::parse(&Secret::new(bad)).unwrap_err().to_string(); // invalid by construction
            assert!(!err.contains("h/"), "URL leaked: {err}");
            assert!(err.starts_with("DATABASE_URL inválida"), "{err}");
        }
    }

    /// The two migration sets are kept in step: the same versions, each with up and down.
    #[test]
    fn migrations_exist_for_both_backends() {
        let versions = |backend: &str| -> Vec<String> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut v: Vec<String> = std::fs::read_dir(&dir)
                .expect("migrations dir")
                .map(|e| e.expect("entry").path())
                .inspect(|p| {
                    assert!(
                        p.join("up.sql").is_file() && p.join("down.sql").is_file(),
                        "{p:?}"
                    )
                })
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let mysql = versions("mysql");
        assert!(!mysql.is_empty());
        assert_eq!(mysql, versions("sqlite"));
    }

    #[test]
    fn sqlite_url_is_a_path() {
        let rel = Location::parse(&Secret::new("sqlite://discador.db")).unwrap(); // valid
        assert_eq!(
            rel,
            Location::Sqlite {
                path: "discador.db".into()
            }
        );
        let abs = Location::parse(&Secret::new("sqlite:///var/lib/d/x.db")).unwrap(); // valid
        assert_eq!(
            abs,
            Location::Sqlite {
                path: "/var/lib/d/x.db".into()
            }
        );
        assert_eq!(abs.backend(), "sqlite");
    }
}
