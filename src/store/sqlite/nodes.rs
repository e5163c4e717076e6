//! The drained FreeSWITCH nodes on SQLite.

use diesel::prelude::*;

use super::SqliteStore;
use crate::store::schema::nodos;
use crate::store::StoreError;

impl SqliteStore {
    pub(in crate::store) async fn drained_nodes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        self.run(move |c| {
            Ok(nodos::table
                .select((nodos::nombre, nodos::drenado))
                .load(c)?)
        })
        .await
    }

    pub(in crate::store) async fn set_node_drained(
        &self,
        nombre: &str,
        drenado: bool,
        now: chrono::NaiveDateTime,
    ) -> Result<(), StoreError> {
        let nombre = nombre.to_owned();
        self.write(move |c| {
            diesel::replace_into(nodos::table)
                .values((
                    nodos::nombre.eq(&nombre),
                    nodos::drenado.eq(drenado),
                    nodos::cambiado.eq(Some(now)),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
    }
}
