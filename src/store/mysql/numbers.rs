//! The per-campaign numbers tables on MySQL: loading, counting, claiming.

use chrono::{DateTime, Utc};
use diesel::mysql::Mysql;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::MysqlStore;
use crate::domain::{CampaignName, NumberState, TableName};
use crate::store::rows::{
    to_naive, ClaimRow, DispositionRow, IdRow, InFlightRow, StatsRow, ZoneRow,
};
use crate::store::{
    sql, sql::GiveBack, ClaimedNumber, DispositionCounts, InFlight, NewNumber, NumberStats,
    StoreError,
};

impl MysqlStore {
    /// Returns how many rows were inserted (`INSERT IGNORE` skips duplicates).
    pub(in crate::store) async fn insert_numbers(
        &self,
        t: &TableName,
        batch: &[NewNumber],
    ) -> Result<u64, StoreError> {
        let q = sql::insert_numbers::<Mysql>(t, batch);
        let mut conn = self.conn().await?;
        Ok(q.execute(&mut conn).await? as u64)
    }

    pub(in crate::store) async fn has_numbers_in(
        &self,
        t: &TableName,
        states: &[NumberState],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let r: IdRow = sql::has_numbers_in::<Mysql>(t, states)
            .get_result(&mut conn)
            .await?;
        Ok(r.id != 0)
    }

    pub(in crate::store) async fn stats(&self, t: &TableName) -> Result<NumberStats, StoreError> {
        let mut conn = self.conn().await?;
        let r: StatsRow = sql::stats::<Mysql>(t).get_result(&mut conn).await?;
        Ok(r.into())
    }

    pub(in crate::store) async fn disposition_counts(
        &self,
        n: &CampaignName,
    ) -> Result<DispositionCounts, StoreError> {
        let mut conn = self.conn().await?;
        let r: DispositionRow = sql::disposition_counts::<Mysql>(n)
            .get_result(&mut conn)
            .await?;
        Ok(r.into())
    }

    /// Select (never tried, then due retries) with `FOR UPDATE SKIP LOCKED`, mark, read back, in
    /// one transaction: rows locked by a concurrent claimer are skipped, so two claimers never share
    /// a row.
    pub(in crate::store) async fn claim_due(
        &self,
        t: &TableName,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNumber>, StoreError> {
        let t = t.clone();
        let now = to_naive(now);
        let mut conn = self.conn().await?;
        let rows: Vec<ClaimRow> = conn
            .transaction::<Vec<ClaimRow>, StoreError, _>(async move |conn| {
                const LOCK: &str = "FOR UPDATE SKIP LOCKED";
                let mut ids: Vec<IdRow> = sql::never_tried_ids::<Mysql>(&t, limit, LOCK)
                    .load(conn)
                    .await?;
                let left = limit.saturating_sub(ids.len() as u32);
                if left > 0 {
                    let retries: Vec<IdRow> = sql::due_retry_ids::<Mysql>(&t, now, left, LOCK)
                        .load(conn)
                        .await?;
                    ids.extend(retries);
                }
                let ids: Vec<i64> = ids.into_iter().map(|r| r.id).collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                sql::mark_claimed::<Mysql>(&t, &ids).execute(conn).await?;
                Ok(sql::claimed::<Mysql>(&t, &ids).load(conn).await?)
            })
            .await?;
        rows.into_iter().map(ClaimedNumber::try_from).collect()
    }

    /// Gives claims back, in one transaction with the deletion of their recorded attempts (they
    /// never reached FreeSWITCH).
    pub(in crate::store) async fn give_back(
        &self,
        t: &TableName,
        back: &GiveBack<'_>,
    ) -> Result<(), StoreError> {
        let forget = sql::forget_attempts::<Mysql>(t, &back.ids());
        let update = back.update::<Mysql>(t);
        let mut conn = self.conn().await?;
        conn.transaction::<(), StoreError, _>(async move |conn| {
            forget.execute(conn).await?;
            update.execute(conn).await?;
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn pending_zones(
        &self,
        t: &TableName,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<ZoneRow> = sql::pending_zones::<Mysql>(t).load(&mut conn).await?;
        Ok(rows.into_iter().map(|r| r.zona_horaria).collect())
    }

    pub(in crate::store) async fn in_flight(
        &self,
        t: &TableName,
    ) -> Result<Vec<InFlight>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<InFlightRow> = sql::in_flight::<Mysql>(t).load(&mut conn).await?;
        rows.into_iter().map(InFlight::try_from).collect()
    }
}
