//! The drained FreeSWITCH nodes on MySQL/MariaDB.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::MysqlStore;
use crate::store::schema::nodos;
use crate::store::StoreError;

impl MysqlStore {
    pub(in crate::store) async fn drained_nodes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(nodos::table
            .select((nodos::nombre, nodos::drenado))
            .load(&mut conn)
            .await?)
    }

    pub(in crate::store) async fn set_node_drained(
        &self,
        nombre: &str,
        drenado: bool,
        now: chrono::NaiveDateTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::replace_into(nodos::table)
            .values((
                nodos::nombre.eq(nombre),
                nodos::drenado.eq(drenado),
                nodos::cambiado.eq(Some(now)),
            ))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}
