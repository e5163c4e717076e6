//! Pages of rows as stored, out of and into MySQL: the two halves of `discador copy`.

use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::MysqlStore;
use crate::domain::TableName;
use crate::store::rows::{AttemptCopyRow, CdrRow, DncRow, NumberRow};
use crate::store::schema::{dnc, intentos_telefono, llamadas};
use crate::store::{sql, StoreError};

impl MysqlStore {
    pub(in crate::store) async fn number_rows(
        &self,
        t: &TableName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<NumberRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::number_rows::<Mysql>(t, after, limit)
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn insert_number_rows(
        &self,
        t: &TableName,
        rows: &[NumberRow],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(sql::insert_number_rows::<Mysql>(t, rows)
            .execute(&mut conn)
            .await? as u64)
    }

    pub(in crate::store) async fn cdr_rows(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(llamadas::table
            .filter(llamadas::id.gt(after))
            .order(llamadas::id.asc())
            .limit(i64::from(limit))
            .select(CdrRow::as_select())
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn insert_cdr_rows(
        &self,
        rows: &[CdrRow],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(diesel::insert_or_ignore_into(llamadas::table)
            .values(rows)
            .execute(&mut conn)
            .await? as u64)
    }

    pub(in crate::store) async fn dnc_rows(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<DncRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(dnc::table
            .filter(dnc::telefono.gt(after))
            .order(dnc::telefono.asc())
            .limit(i64::from(limit))
            .select(DncRow::as_select())
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn insert_dnc_rows(
        &self,
        rows: &[DncRow],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(diesel::insert_or_ignore_into(dnc::table)
            .values(rows)
            .execute(&mut conn)
            .await? as u64)
    }

    pub(in crate::store) async fn attempt_rows(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AttemptCopyRow>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(intentos_telefono::table
            .filter(intentos_telefono::id.gt(after))
            .order(intentos_telefono::id.asc())
            .limit(i64::from(limit))
            .select(AttemptCopyRow::as_select())
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn insert_attempt_rows(
        &self,
        rows: &[AttemptCopyRow],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(diesel::insert_or_ignore_into(intentos_telefono::table)
            .values(rows)
            .execute(&mut conn)
            .await? as u64)
    }
}
