//! The do-not-call list on MySQL.

use std::collections::HashSet;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::MysqlStore;
use crate::domain::PhoneNumber;
use crate::store::rows::to_naive;
use crate::store::schema::dnc;
use crate::store::{StoreError, DNC_CHUNK};

impl MysqlStore {
    pub(in crate::store) async fn dnc_contains(
        &self,
        telefonos: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        let mut conn = self.conn().await?;
        for chunk in telefonos.chunks(DNC_CHUNK) {
            let rows: Vec<String> = dnc::table
                .select(dnc::telefono)
                .filter(dnc::telefono.eq_any(chunk))
                .load(&mut conn)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    pub(in crate::store) async fn add_dnc(
        &self,
        telefonos: &[PhoneNumber],
    ) -> Result<u64, StoreError> {
        let now = to_naive(Utc::now());
        let mut conn = self.conn().await?;
        let mut added = 0u64;
        for chunk in telefonos.chunks(DNC_CHUNK) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|t| (dnc::telefono.eq(t.as_str()), dnc::creado.eq(now)))
                .collect();
            added += diesel::insert_or_ignore_into(dnc::table)
                .values(rows)
                .execute(&mut conn)
                .await? as u64;
        }
        Ok(added)
    }
}
