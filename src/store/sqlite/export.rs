//! A campaign's CDRs for the export and the charts, on SQLite (the statements are in `sql`).
//! Reads only: they run on the pool beside the writer (WAL), never behind it.

use chrono::NaiveDateTime;
use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

use super::SqliteStore;
use crate::domain::CampaignName;
use crate::store::rows::{BucketRow, CdrRow, ResultCountRow, SpanRow};
use crate::store::{sql, StoreError};

impl SqliteStore {
    pub(in crate::store) async fn cdr_page(
        &self,
        n: &CampaignName,
        hasta: NaiveDateTime,
        after: (NaiveDateTime, i64),
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        let q = sql::cdr_page::<Sqlite>(n, hasta, after, limit);
        self.run(move |c| Ok(q.load(c)?)).await
    }

    pub(in crate::store) async fn cdr_span(&self, n: &CampaignName) -> Result<SpanRow, StoreError> {
        let q = sql::cdr_span::<Sqlite>(n);
        self.run(move |c| Ok(q.get_result(c)?)).await
    }

    pub(in crate::store) async fn cdr_buckets(
        &self,
        n: &CampaignName,
        origin: NaiveDateTime,
        width_s: i64,
    ) -> Result<Vec<BucketRow>, StoreError> {
        let q = sql::cdr_buckets::<Sqlite>(n, origin, width_s);
        self.run(move |c| Ok(q.load(c)?)).await
    }

    pub(in crate::store) async fn result_counts(
        &self,
        n: &CampaignName,
    ) -> Result<Vec<ResultCountRow>, StoreError> {
        let q = sql::result_counts::<Sqlite>(n);
        self.run(move |c| Ok(q.load(c)?)).await
    }
}
