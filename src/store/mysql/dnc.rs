//! The do-not-call list on MySQL.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::MysqlStore;
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
}
