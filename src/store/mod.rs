//! Every database access of discador, behind one type that speaks domain types.
//!
//! Callers never see SQL, diesel or MySQL: a second backend (SQLite) can be added behind the same
//! methods. Rules kept by every query here:
//! - dynamic table names come only from [`CampaignName`] / [`TableName`], always backtick-quoted;
//!   every value is bound (`sql_query(..).bind(..)`), never spliced;
//! - all times are UTC `DATETIME(3)` values bound from chrono; `NOW()` is never used, so the database's
//!   time zone and clock do not matter;
//! - connection and pool failures become [`StoreError::Unavailable`] (HTTP 503): the pool reconnects by
//!   itself when MariaDB comes back, the process never exits for it.

mod calls;
mod campaigns;
mod dnc;
mod model;
mod numbers;
mod schema;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Secret;

pub use model::{
    CallRecord, Campaign, CampaignPatch, ClaimedNumber, InFlight, InsertCounts, NewCampaign,
    NewNumber, NumberStats, NumberUpdate,
};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Connections kept by the pool. Small: the API's queries are short and the dialer batches writes.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (or for MariaDB to accept one) before answering 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);

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
    #[error("error de base de datos: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether the same statement may succeed if simply tried again: the database is unreachable,
    /// or InnoDB chose this transaction as a deadlock victim / timed out waiting for a row lock
    /// (claims, releases and result writes touch the same rows concurrently).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(msg) => {
                msg.contains("Deadlock found") || msg.contains("Lock wait timeout")
            }
            _ => false,
        }
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

/// The database of discador. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool<AsyncMysqlConnection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl Store {
    /// Creates the database named in `url` if missing, runs the embedded migrations and opens the
    /// pool.
    pub async fn connect(url: &Secret) -> Result<Store, StoreError> {
        let store = Store::connect_lazy(url)?;
        store.prepare(url).await?;
        Ok(store)
    }

    /// Opens the pool without touching the database: requests answer 503 until it is reachable.
    /// Used by `serve` when MariaDB is down at start-up; [`Store::prepare`] then runs in the
    /// background until it succeeds.
    pub fn connect_lazy(url: &Secret) -> Result<Store, StoreError> {
        split_url(url)?;
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url.expose());
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Invalid(format!("pool: {e}")))?;
        Ok(Store { pool })
    }

    /// Creates the database if missing and applies pending migrations. Idempotent.
    pub async fn prepare(&self, url: &Secret) -> Result<(), StoreError> {
        let (server_url, db) = split_url(url)?;
        let mut server = AsyncMysqlConnection::establish(&server_url).await?;
        diesel::sql_query(format!(
            "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"
        ))
        .execute(&mut server)
        .await?;
        drop(server);
        let conn = AsyncMysqlConnection::establish(url.expose()).await?;
        // diesel's migration harness is synchronous; on a blocking thread it works on any tokio
        // runtime flavor (calling it from a current-thread runtime's task would panic).
        let applied = tokio::task::spawn_blocking(move || {
            let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
            harness
                .run_pending_migrations(MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| StoreError::Database(format!("migraciones: {e}")))?
        .map_err(|e| StoreError::Database(format!("migraciones: {e}")))?;
        if applied > 0 {
            tracing::info!(migraciones = applied, "migraciones aplicadas");
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    async fn conn(&self) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        Ok(self.pool.get().await?)
    }
}

/// Splits `mysql://user:pass@host:port/db` into the server URL (no database) and a validated
/// database name, so that the database can be created before connecting to it.
fn split_url(url: &Secret) -> Result<(String, String), StoreError> {
    let invalid = |why: &str| StoreError::Invalid(format!("DATABASE_URL inválida: {why}"));
    let mut parsed = url::Url::parse(url.expose()).map_err(|_| invalid("no es una URL"))?;
    if parsed.scheme() != "mysql" {
        return Err(invalid("el esquema debe ser mysql://"));
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
    Ok((parsed.to_string(), db))
}

fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

fn from_naive(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// `?, ?, ?` for an `IN (…)` list of `n` bound values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn to_u32(field: &str, v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Database(format!("{field} negativo en la base: {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_split_keeps_credentials_and_checks_name() {
        let (server, db) = split_url(&Secret::new("mysql://u:p@h:3307/discador_x")).unwrap(); // valid
        assert_eq!(db, "discador_x");
        assert_eq!(server, "mysql://u:p@h:3307");
        for bad in [
            "mysql://h/",
            "mysql://h/a-b",
            "postgres://h/x",
            "nope",
            "mysql://h/x`y",
        ] {
            let err = split_url(&Secret::new(bad)).unwrap_err().to_string(); // invalid by construction
            assert!(!err.contains("h/"), "URL leaked: {err}");
        }
    }

    #[test]
    fn placeholders_list() {
        assert_eq!(placeholders(3), "?, ?, ?");
    }
}
