//! The embedded SQLite backend: one database file, nothing to install.
//!
//! diesel's SQLite connection is synchronous, so every store operation runs as ONE closure on a
//! blocking thread ([`SqliteStore::run`]): a transaction never spans an `.await`, and a cancelled
//! request cannot leave one open. Concurrency comes from SQLite itself:
//! - WAL mode: readers (estado, the API) never wait for the writer, nor the writer for them;
//! - one writer at a time: every read-modify-write runs in `BEGIN IMMEDIATE`, which takes the write
//!   lock up front, so two claimers can never pick the same rows (what `SKIP LOCKED` does on MySQL)
//!   and no transaction fails half-way on a lock upgrade;
//! - this process's writes queue in order on an async mutex ([`SqliteStore::write`]) before they
//!   take a connection, so waiting writers neither hold pool connections that reads need nor starve
//!   each other in SQLite's polling busy handler; only another process holding the file's lock
//!   (a backup, an operator's `sqlite3` shell) makes a writer wait in SQLite, up to
//!   [`BUSY_TIMEOUT_MS`], after which it reports a transient error that the dialer retries;
//! - `synchronous = FULL`: a result acknowledged by a commit survives a power cut, not only a crash.

mod calls;
mod campaigns;
mod copy;
mod dnc;
mod export;
mod nodes;
mod numbers;
mod procesos;
mod rules;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures::FutureExt;

use super::StoreError;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Connections kept by the pool: readers run in parallel in WAL mode; writers queue on the lock.
const POOL_SIZE: usize = 8;
/// How long an operation waits for a connection before answering 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a writer waits for another writer's transaction before giving up (transient error).
const BUSY_TIMEOUT_MS: u32 = 5_000;

type Conn = SyncConnectionWrapper<SqliteConnection>;

#[derive(Clone)]
pub(super) struct SqliteStore {
    pool: Pool<Conn>,
    path: String,
    /// Held by each write of this process for its whole run (see the module doc).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Opens the file (creating it if missing) and sets up the connection.
fn open(path: &str) -> diesel::ConnectionResult<SqliteConnection> {
    let mut conn = SqliteConnection::establish(path)?;
    // busy_timeout first: switching to WAL needs the lock if another connection holds it.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
         PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = FULL;"
    ))
    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl SqliteStore {
    /// Builds the pool; opens nothing yet.
    pub(super) fn new(path: String) -> Result<SqliteStore, StoreError> {
        let mut config = ManagerConfig::<Conn>::default();
        // A local file does not drop connections: no ping on every checkout.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|path| {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || open(&path).map(SyncConnectionWrapper::new))
                .map(|joined| {
                    joined.unwrap_or_else(|e| {
                        Err(diesel::ConnectionError::BadConnection(e.to_string()))
                    })
                })
                .boxed()
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path.clone(), config);
        let pool = super::pool(Pool::builder(manager), POOL_SIZE, POOL_TIMEOUT)?;
        Ok(SqliteStore {
            pool,
            path,
            writer: Default::default(),
        })
    }

    /// Creates the file if missing and applies pending migrations; returns how many ran. Then
    /// brings the numbers tables of older campaigns up to date (see `add_disposition_columns`).
    pub(super) async fn prepare(&self) -> Result<usize, StoreError> {
        let path = self.path.clone();
        self.write(move |conn| {
            let applied = conn
                .run_pending_migrations(MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| StoreError::Database(format!("migraciones ({path}): {e}")))?;
            campaigns::add_disposition_columns(conn)?;
            Ok(applied)
        })
        .await
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| Ok(conn.batch_execute("SELECT 1")?)).await
    }

    /// [`SqliteStore::run`] for a write: waits its turn behind this process's other writes first
    /// (FIFO), without holding a connection meanwhile.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
    {
        let _turn = self.writer.lock().await;
        self.run(f).await
    }

    /// Runs `f` on a pooled connection, on a blocking thread. The whole closure runs even if the
    /// caller stops waiting, so a transaction inside it always ends.
    async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
    {
        let mut conn = self.pool.get().await?;
        conn.spawn_blocking(move |c| {
            // A panic must not poison the connection's lock for whoever uses it next: it becomes an
            // error here, and a transaction it left open marks the connection broken, so the pool
            // discards it.
            let run = std::panic::AssertUnwindSafe(|| f(c));
            Ok(std::panic::catch_unwind(run).unwrap_or_else(|_| {
                Err(StoreError::Database(
                    "pánico en una operación de la base".into(),
                ))
            }))
        })
        .await?
    }
}
