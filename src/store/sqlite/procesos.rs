//! `procesos` and the campaigns' leases on SQLite (see `crate::store::procesos`). SQLite serves
//! one process (the service locks the file), but the statements are the same as on MySQL so the
//! lease loop runs unchanged; times are `strftime` text, compared as text.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::RunQueryDsl;

use super::SqliteStore;
use crate::store::procesos::{Beat, Lease, LeaseRow, OwnerRow, Peer};
use crate::store::StoreError;

const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
/// Alive: a heartbeat at or after this (bound: the modifier `-<seconds> seconds`).
const CUTOFF: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now', ?)";

fn modifier(caduca: Duration) -> String {
    format!("-{:.3} seconds", caduca.as_secs_f64())
}

impl SqliteStore {
    pub(in crate::store) async fn heartbeat(&self, b: &Beat<'_>) -> Result<(), StoreError> {
        let q = diesel::sql_query(format!(
            "INSERT INTO procesos (id, host, pid, api, socket, inicio, latido, demanda) \
             VALUES (?, ?, ?, ?, ?, {NOW}, {NOW}, ?) \
             ON CONFLICT(id) DO UPDATE SET latido = excluded.latido, demanda = excluded.demanda, \
             api = excluded.api, socket = excluded.socket"
        ))
        .bind::<Text, _>(b.id.to_owned())
        .bind::<Text, _>(b.host.to_owned())
        .bind::<BigInt, _>(i64::from(b.pid))
        .bind::<Text, _>(b.api.to_owned())
        .bind::<Text, _>(b.socket.to_owned())
        .bind::<Text, _>(b.demanda.to_owned());
        self.write(move |c| Ok(q.execute(c).map(|_| ())?)).await
    }

    pub(in crate::store) async fn live_peers(
        &self,
        me: &str,
        caduca: Duration,
    ) -> Result<Vec<Peer>, StoreError> {
        let q = diesel::sql_query(format!(
            "SELECT id, demanda FROM procesos WHERE id <> ? AND latido >= {CUTOFF}"
        ))
        .bind::<Text, _>(me.to_owned())
        .bind::<Text, _>(modifier(caduca));
        self.run(move |c| Ok(q.load(c)?)).await
    }

    pub(in crate::store) async fn leases(
        &self,
        nombre: Option<&str>,
        caduca: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let base = format!(
            "SELECT b.nombre, b.proceso, (p.id IS NOT NULL) AS vivo FROM bases b \
             LEFT JOIN procesos p ON p.id = b.proceso AND p.latido >= {CUTOFF}"
        );
        let m = modifier(caduca);
        let rows: Vec<LeaseRow> = match nombre {
            Some(n) => {
                let q = diesel::sql_query(format!("{base} WHERE b.nombre = ?"))
                    .bind::<Text, _>(m)
                    .bind::<Text, _>(n.to_owned());
                self.run(move |c| Ok(q.load(c)?)).await?
            }
            None => {
                let q = diesel::sql_query(base).bind::<Text, _>(m);
                self.run(move |c| Ok(q.load(c)?)).await?
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
        let update = diesel::sql_query(format!(
            "UPDATE bases SET proceso = ? WHERE nombre = ? AND (proceso IS NULL OR proceso = ? \
             OR proceso NOT IN (SELECT id FROM procesos WHERE latido >= {CUTOFF}))"
        ))
        .bind::<Text, _>(me.to_owned())
        .bind::<Text, _>(n.to_owned())
        .bind::<Text, _>(me.to_owned())
        .bind::<Text, _>(modifier(caduca));
        let read = diesel::sql_query("SELECT proceso FROM bases WHERE nombre = ?")
            .bind::<Text, _>(n.to_owned());
        let me = me.to_owned();
        self.write(move |c| {
            c.immediate_transaction(|c| {
                update.execute(c)?;
                let owner: Option<OwnerRow> = read.load::<OwnerRow>(c)?.pop();
                Ok::<bool, diesel::result::Error>(
                    owner.and_then(|o| o.proceso).as_deref() == Some(me.as_str()),
                )
            })
            .map_err(StoreError::from)
        })
        .await
    }

    pub(in crate::store) async fn leave(&self, me: &str) -> Result<(), StoreError> {
        let release = diesel::sql_query("UPDATE bases SET proceso = NULL WHERE proceso = ?")
            .bind::<Text, _>(me.to_owned());
        let delete =
            diesel::sql_query("DELETE FROM procesos WHERE id = ?").bind::<Text, _>(me.to_owned());
        self.write(move |c| {
            c.immediate_transaction(|c| {
                release.execute(c)?;
                delete.execute(c)?;
                Ok::<(), diesel::result::Error>(())
            })
            .map_err(StoreError::from)
        })
        .await
    }
}
