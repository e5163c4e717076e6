//! A campaign's CDRs for the export and the charts, on MySQL (the statements are in `sql`).

use chrono::NaiveDateTime;
use diesel::mysql::Mysql;
use diesel_async::RunQueryDsl;

use super::MysqlStore;
use crate::domain::CampaignName;
use crate::store::rows::{BucketRow, CdrRow, ResultCountRow, SpanRow};
use crate::store::{sql, StoreError};

impl MysqlStore {
    pub(in crate::store) async fn cdr_page(
        &self,
        n: &CampaignName,
        hasta: NaiveDateTime,
        after: (NaiveDateTime, i64),
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::cdr_page::<Mysql>(n, hasta, after, limit)
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn cdr_span(&self, n: &CampaignName) -> Result<SpanRow, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::cdr_span::<Mysql>(n).get_result(&mut conn).await?)
    }

    pub(in crate::store) async fn cdr_buckets(
        &self,
        n: &CampaignName,
        origin: NaiveDateTime,
        width_s: i64,
    ) -> Result<Vec<BucketRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::cdr_buckets::<Mysql>(n, origin, width_s)
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn result_counts(
        &self,
        n: &CampaignName,
    ) -> Result<Vec<ResultCountRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::result_counts::<Mysql>(n).load(&mut conn).await?)
    }
}
