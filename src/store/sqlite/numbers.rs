//! The per-campaign numbers tables on SQLite: loading, counting, claiming.

use chrono::{DateTime, Utc};
use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

use super::SqliteStore;
use crate::domain::{CampaignName, NumberState, TableName};
use crate::store::rows::{
    to_naive, ClaimRow, DispositionRow, IdRow, InFlightRow, StatsRow, ZoneRow,
};
use crate::store::{
    sql, sql::GiveBack, ClaimedNumber, DispositionCounts, InFlight, NewNumber, NumberStats,
    StoreError,
};

impl SqliteStore {
    /// Returns how many rows were inserted (`INSERT OR IGNORE` skips duplicates).
    pub(in crate::store) async fn insert_numbers(
        &self,
        t: &TableName,
        batch: &[NewNumber],
    ) -> Result<u64, StoreError> {
        let q = sql::insert_numbers::<Sqlite>(t, batch);
        self.write(move |c| Ok(q.execute(c)? as u64)).await
    }

    pub(in crate::store) async fn has_numbers_in(
        &self,
        t: &TableName,
        states: &[NumberState],
    ) -> Result<bool, StoreError> {
        let q = sql::has_numbers_in::<Sqlite>(t, states);
        self.run(move |c| Ok(q.get_result::<IdRow>(c)?.id != 0))
            .await
    }

    pub(in crate::store) async fn stats(&self, t: &TableName) -> Result<NumberStats, StoreError> {
        let q = sql::stats::<Sqlite>(t);
        self.run(move |c| Ok(q.get_result::<StatsRow>(c)?.into()))
            .await
    }

    pub(in crate::store) async fn disposition_counts(
        &self,
        n: &CampaignName,
    ) -> Result<DispositionCounts, StoreError> {
        let q = sql::disposition_counts::<Sqlite>(n);
        self.run(move |c| Ok(q.get_result::<DispositionRow>(c)?.into()))
            .await
    }

    /// Select (never tried, then due retries), mark, read back under the write lock (`BEGIN IMMEDIATE`): no other writer runs
    /// meanwhile, so two claimers never share a row.
    pub(in crate::store) async fn claim_due(
        &self,
        t: &TableName,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNumber>, StoreError> {
        let t = t.clone();
        let now = to_naive(now);
        let rows = self
            .write(move |c| {
                c.immediate_transaction(|c| {
                    let mut ids: Vec<IdRow> =
                        sql::never_tried_ids::<Sqlite>(&t, limit, "").load(c)?;
                    let left = limit.saturating_sub(ids.len() as u32);
                    if left > 0 {
                        ids.extend(
                            sql::due_retry_ids::<Sqlite>(&t, now, left, "").load::<IdRow>(c)?,
                        );
                    }
                    let ids: Vec<i64> = ids.into_iter().map(|r| r.id).collect();
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    sql::mark_claimed::<Sqlite>(&t, &ids).execute(c)?;
                    sql::claimed::<Sqlite>(&t, &ids).load::<ClaimRow>(c)
                })
                .map_err(StoreError::from)
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
        let forget = sql::forget_attempts::<Sqlite>(t, &back.ids());
        let update = back.update::<Sqlite>(t);
        self.write(move |c| {
            c.immediate_transaction(|c| {
                forget.execute(c)?;
                update.execute(c).map(drop)
            })
            .map_err(StoreError::from)
        })
        .await
    }

    pub(in crate::store) async fn pending_zones(
        &self,
        t: &TableName,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let q = sql::pending_zones::<Sqlite>(t);
        let rows: Vec<ZoneRow> = self.run(move |c| Ok(q.load(c)?)).await?;
        Ok(rows.into_iter().map(|r| r.zona_horaria).collect())
    }

    pub(in crate::store) async fn in_flight(
        &self,
        t: &TableName,
    ) -> Result<Vec<InFlight>, StoreError> {
        let q = sql::in_flight::<Sqlite>(t);
        let rows: Vec<InFlightRow> = self.run(move |c| Ok(q.load(c)?)).await?;
        rows.into_iter().map(InFlight::try_from).collect()
    }
}
