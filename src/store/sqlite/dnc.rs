//! The do-not-call list on SQLite.

use std::collections::HashSet;

use diesel::prelude::*;

use super::SqliteStore;
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
}
