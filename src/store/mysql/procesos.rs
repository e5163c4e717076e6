//! `procesos` and the campaigns' leases on MySQL (see `crate::store::procesos`).

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::MysqlStore;
use crate::store::procesos::{micros, Beat, Lease, LeaseRow, OwnerRow, Peer};
use crate::store::StoreError;

/// Alive: a heartbeat at or after this (the database's now minus `caduca`, bound in microseconds).
const CUTOFF: &str = "NOW(3) - INTERVAL ? MICROSECOND";

impl MysqlStore {
    pub(in crate::store) async fn heartbeat(&self, b: &Beat<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "INSERT INTO procesos (id, host, pid, api, socket, inicio, latido, demanda) \
             VALUES (?, ?, ?, ?, ?, NOW(3), NOW(3), ?) \
             ON DUPLICATE KEY UPDATE latido = NOW(3), demanda = VALUES(demanda), \
             api = VALUES(api), socket = VALUES(socket)",
        )
        .bind::<Text, _>(b.id)
        .bind::<Text, _>(b.host)
        .bind::<BigInt, _>(i64::from(b.pid))
        .bind::<Text, _>(b.api)
        .bind::<Text, _>(b.socket)
        .bind::<Text, _>(b.demanda)
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn live_peers(
        &self,
        me: &str,
        caduca: Duration,
    ) -> Result<Vec<Peer>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(diesel::sql_query(format!(
            "SELECT id, demanda FROM procesos WHERE id <> ? AND latido >= {CUTOFF}"
        ))
        .bind::<Text, _>(me)
        .bind::<BigInt, _>(micros(caduca))
        .load(&mut conn)
        .await?)
    }

    pub(in crate::store) async fn leases(
        &self,
        nombre: Option<&str>,
        caduca: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut conn = self.conn().await?;
        let base = format!(
            "SELECT b.nombre, b.proceso, CAST(p.id IS NOT NULL AS SIGNED) AS vivo FROM bases b \
             LEFT JOIN procesos p ON p.id = b.proceso AND p.latido >= {CUTOFF}"
        );
        let rows: Vec<LeaseRow> = match nombre {
            Some(n) => {
                diesel::sql_query(format!("{base} WHERE b.nombre = ?"))
                    .bind::<BigInt, _>(micros(caduca))
                    .bind::<Text, _>(n)
                    .load(&mut conn)
                    .await?
            }
            None => {
                diesel::sql_query(base)
                    .bind::<BigInt, _>(micros(caduca))
                    .load(&mut conn)
                    .await?
            }
        };
        Ok(rows.into_iter().map(Lease::from).collect())
    }

    pub(in crate::store) async fn take_lease(
        &self,
        n: &str,
        me: &str,
        caduca: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let (n, me) = (n.to_owned(), me.to_owned());
        conn.transaction::<bool, StoreError, _>(async move |conn| {
            diesel::sql_query(format!(
                "UPDATE bases SET proceso = ? WHERE nombre = ? AND (proceso IS NULL OR proceso = ? \
                 OR proceso NOT IN (SELECT id FROM procesos WHERE latido >= {CUTOFF}))"
            ))
            .bind::<Text, _>(&me)
            .bind::<Text, _>(&n)
            .bind::<Text, _>(&me)
            .bind::<BigInt, _>(micros(caduca))
            .execute(conn)
            .await?;
            // Affected rows do not tell "taken" from "mine already" (MySQL counts changed rows):
            // the owner is read back in the same transaction.
            let owner: Option<OwnerRow> =
                diesel::sql_query("SELECT proceso FROM bases WHERE nombre = ?")
                    .bind::<Text, _>(&n)
                    .load::<OwnerRow>(conn)
                    .await?
                    .pop();
            Ok(owner.and_then(|o| o.proceso).as_deref() == Some(me.as_str()))
        })
        .await
    }

    pub(in crate::store) async fn leave(&self, me: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let me = me.to_owned();
        conn.transaction::<(), StoreError, _>(async move |conn| {
            diesel::sql_query("UPDATE bases SET proceso = NULL WHERE proceso = ?")
                .bind::<Text, _>(&me)
                .execute(conn)
                .await?;
            diesel::sql_query("DELETE FROM procesos WHERE id = ?")
                .bind::<Text, _>(&me)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }
}
