//! The do-not-call list on SQLite.

use std::collections::HashSet;

use chrono::Utc;
use diesel::prelude::*;

use super::SqliteStore;
use crate::domain::PhoneNumber;
use crate::store::rows::to_naive;
use crate::store::schema::dnc;
use crate::store::{StoreError, DNC_CHUNK};

impl SqliteStore {
    pub(in crate::store) async fn dnc_contains(
        &self,
        telefonos: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let telefonos: Vec<String> = telefonos.iter().map(|t| (*t).to_owned()).collect();
        self.run(move |c| {
            let mut found = HashSet::new();
            for chunk in telefonos.chunks(DNC_CHUNK) {
                let rows: Vec<String> = dnc::table
                    .select(dnc::telefono)
                    .filter(dnc::telefono.eq_any(chunk))
                    .load(c)?;
                found.extend(rows);
            }
            Ok(found)
        })
        .await
    }

    pub(in crate::store) async fn add_dnc(
        &self,
        telefonos: &[PhoneNumber],
    ) -> Result<u64, StoreError> {
        let now = to_naive(Utc::now());
        let telefonos: Vec<String> = telefonos.iter().map(|t| t.as_str().to_owned()).collect();
        // One statement (one short write) per chunk: a list of a million numbers must not hold the
        // write lock, which the dialer's claims and results need, for the whole upload.
        self.write(move |c| {
            let mut added = 0u64;
            for chunk in telefonos.chunks(DNC_CHUNK) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|t| (dnc::telefono.eq(t.as_str()), dnc::creado.eq(now)))
                    .collect();
                added += diesel::insert_or_ignore_into(dnc::table)
                    .values(rows)
                    .execute(c)? as u64;
            }
            Ok(added)
        })
        .await
    }
}
