//! The calling rules' reads and writes on MySQL: attempts for the caps, abandon counts.

use chrono::{DateTime, Utc};
use diesel::mysql::Mysql;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::MysqlStore;
use crate::domain::CampaignName;
use crate::store::rows::{to_naive, AbandonRow, AttemptRow};
use crate::store::{sql, Attempt, StoreError};

impl MysqlStore {
    pub(in crate::store) async fn attempts_since(
        &self,
        phones: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<Attempt>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<AttemptRow> = sql::attempts_since::<Mysql>(phones, to_naive(since))
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().map(Attempt::from).collect())
    }

    pub(in crate::store) async fn record_attempts(
        &self,
        rows: &[(&str, &str, String)],
        at: DateTime<Utc>,
        purge_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let insert = sql::record_attempts::<Mysql>(rows, to_naive(at));
        let purge = purge_before.map(|t| sql::purge_attempts::<Mysql>(to_naive(t)));
        let mut conn = self.conn().await?;
        conn.transaction::<(), StoreError, _>(async move |conn| {
            insert.execute(conn).await?;
            if let Some(purge) = purge {
                purge.execute(conn).await?;
            }
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn abandon_counts(
        &self,
        n: &CampaignName,
        since: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn().await?;
        let r: AbandonRow = sql::abandon_counts::<Mysql>(n, to_naive(since))
            .get_result(&mut conn)
            .await?;
        Ok(r.counts())
    }
}
