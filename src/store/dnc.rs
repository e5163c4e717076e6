//! The do-not-call list.

use std::collections::HashSet;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::dnc;
use super::{to_naive, Store, StoreError};
use crate::domain::PhoneNumber;

/// Values per statement: keeps `IN (…)` lists and multi-row inserts well under MySQL's limits.
const CHUNK: usize = 1000;

impl Store {
    /// Which of these numbers (normalized form) are on the DNC list.
    pub async fn dnc_contains(&self, telefonos: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        if telefonos.is_empty() {
            return Ok(found);
        }
        let mut conn = self.conn().await?;
        for chunk in telefonos.chunks(CHUNK) {
            let rows: Vec<String> = dnc::table
                .select(dnc::telefono)
                .filter(dnc::telefono.eq_any(chunk))
                .load(&mut conn)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Adds numbers to the DNC list; returns how many were new.
    pub async fn add_dnc(&self, telefonos: &[PhoneNumber]) -> Result<u64, StoreError> {
        let now = to_naive(Utc::now());
        let mut conn = self.conn().await?;
        let mut added = 0u64;
        for chunk in telefonos.chunks(CHUNK) {
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
