//! The MySQL/MariaDB backend: async over `mysql_async`, a deadpool of connections.
//!
//! Row locks do the concurrency work here: campaign read-modify-writes lock their `bases` row
//! (`FOR UPDATE`), claims skip rows another claimer holds (`FOR UPDATE SKIP LOCKED`).

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

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;
use crate::secret::Secret;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Connections kept by the pool. Small: the API's queries are short and the dialer batches writes.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (or for MariaDB to accept one) before answering 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub(super) struct MysqlStore {
    pool: Pool<AsyncMysqlConnection>,
    /// The full URL (with the database), for the migration connection.
    url: Secret,
    /// The server without a database, to create it.
    server_url: Secret,
    database: String,
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlStore")
            .field("database", &self.database)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl MysqlStore {
    /// Builds the pool; connects nothing yet.
    pub(super) fn new(
        url: &Secret,
        server_url: Secret,
        database: String,
    ) -> Result<MysqlStore, StoreError> {
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url.expose());
        let pool = super::pool(Pool::builder(manager), POOL_SIZE, POOL_TIMEOUT)?;
        Ok(MysqlStore {
            pool,
            url: url.clone(),
            server_url,
            database,
        })
    }

    /// Creates the database if missing and applies pending migrations; returns how many ran. Then
    /// brings the numbers tables of older campaigns up to date (see `add_disposition_columns`).
    pub(super) async fn prepare(&self) -> Result<usize, StoreError> {
        let mut server = AsyncMysqlConnection::establish(self.server_url.expose()).await?;
        // The name is validated `[A-Za-z0-9_]{1,64}` (see `Location::parse`).
        diesel::sql_query(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            self.database
        ))
        .execute(&mut server)
        .await?;
        drop(server);
        let conn = AsyncMysqlConnection::establish(self.url.expose()).await?;
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
        self.add_disposition_columns().await?;
        Ok(applied)
    }

    pub(super) fn database(&self) -> &str {
        &self.database
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    async fn conn(&self) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        Ok(self.pool.get().await?)
    }
}
