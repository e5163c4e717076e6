//! The calling rules' reads and writes on SQLite: attempts for the caps, abandon counts.

use chrono::{DateTime, Utc};
use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

use super::SqliteStore;
use crate::domain::CampaignName;
use crate::store::rows::{to_naive, AbandonRow, AttemptRow};
use crate::store::{sql, Attempt, StoreError};

impl SqliteStore {
    pub(in crate::store) async fn attempts_since(
        &self,
        phones: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<Attempt>, StoreError> {
        let q = sql::attempts_since::<Sqlite>(phones, to_naive(since));
        let rows: Vec<AttemptRow> = self.run(move |c| Ok(q.load(c)?)).await?;
        Ok(rows.into_iter().map(Attempt::from).collect())
    }

    pub(in crate::store) async fn record_attempts(
        &self,
        rows: &[(&str, &str, String)],
        at: DateTime<Utc>,
        purge_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let insert = sql::record_attempts::<Sqlite>(rows, to_naive(at));
        let purge = purge_before.map(|t| sql::purge_attempts::<Sqlite>(to_naive(t)));
        self.write(move |c| {
            c.immediate_transaction(|c| {
                insert.execute(c)?;
                if let Some(purge) = purge {
                    purge.execute(c)?;
                }
                Ok::<(), diesel::result::Error>(())
            })
            .map_err(StoreError::from)
        })
        .await
    }

    pub(in crate::store) async fn abandon_counts(
        &self,
        n: &CampaignName,
        since: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let q = sql::abandon_counts::<Sqlite>(n, to_naive(since));
        let r: AbandonRow = self.run(move |c| Ok(q.get_result(c)?)).await?;
        Ok(r.counts())
    }
}
