//! Several discador processes on one database: each one's heartbeat row in `procesos` and the
//! owner of each campaign's lease (`bases.proceso`), see `crate::procesos`.
//!
//! Liveness is always judged by the **database's** clock (`NOW(3)` on MySQL, `strftime(.., 'now')`
//! on SQLite) in the statement itself: the hosts' clocks never meet, so a skewed host can neither
//! look dead to its peers nor keep a dead peer alive. (This is the one place where the store uses
//! the database's clock; every other time is bound from chrono.)

use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::{Backend, Store, StoreError};
use crate::domain::CampaignName;

/// What a process writes at every heartbeat.
#[derive(Debug, Clone)]
pub struct Beat<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub pid: u32,
    /// Where its API listens.
    pub api: &'a str,
    /// Where its outbound-socket controller listens (as FreeSWITCH reaches it).
    pub socket: &'a str,
    /// What it publishes to its peers (JSON, see `crate::procesos::Demanda`).
    pub demanda: &'a str,
}

/// A live peer and what it published at its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Peer {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub demanda: Option<String>,
}

/// Who holds a campaign's lease, and whether that process is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub nombre: String,
    /// The owner's id; `None`: nobody.
    pub proceso: Option<String>,
    /// The owner's heartbeat is younger than `caduca` (false when there is no owner).
    pub vivo: bool,
}

#[derive(QueryableByName)]
pub(super) struct LeaseRow {
    #[diesel(sql_type = Text)]
    pub(super) nombre: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(super) proceso: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub(super) vivo: i64,
}

impl From<LeaseRow> for Lease {
    fn from(r: LeaseRow) -> Self {
        Lease {
            nombre: r.nombre,
            proceso: r.proceso,
            vivo: r.vivo != 0,
        }
    }
}

#[derive(QueryableByName)]
pub(super) struct OwnerRow {
    #[diesel(sql_type = Nullable<Text>)]
    pub(super) proceso: Option<String>,
}

/// A duration in microseconds for SQL (saturating: a configured expiry is small).
pub(super) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Store {
    /// Upserts this process's row: `latido` = the database's now, and what it publishes.
    pub async fn heartbeat(&self, beat: &Beat<'_>) -> Result<(), StoreError> {
        on_backend!(self.heartbeat(beat))
    }

    /// The live processes other than `me` (heartbeat younger than `caduca`, by the database's clock).
    pub async fn live_peers(&self, me: &str, caduca: Duration) -> Result<Vec<Peer>, StoreError> {
        on_backend!(self.live_peers(me, caduca))
    }

    /// Every campaign's lease: its owner and whether the owner is alive.
    pub async fn leases(&self, caduca: Duration) -> Result<Vec<Lease>, StoreError> {
        on_backend!(self.leases(None, caduca))
    }

    /// One campaign's lease (`None`: no such campaign).
    pub async fn lease(
        &self,
        n: &CampaignName,
        caduca: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut v = on_backend!(self.leases(Some(n.as_str()), caduca))?;
        Ok(v.pop())
    }

    /// Takes the campaign's lease for `me` if nobody holds it, its holder is dead (no heartbeat for
    /// `caduca`) or it is `me` already: one conditional UPDATE, so two processes can never both win.
    /// Returns whether `me` holds it now.
    pub async fn take_lease(
        &self,
        n: &str,
        me: &str,
        caduca: Duration,
    ) -> Result<bool, StoreError> {
        on_backend!(self.take_lease(n, me, caduca))
    }

    /// A clean exit: gives back every lease of `me` and deletes its row, so that peers take its
    /// campaigns at their next heartbeat instead of after `caduca`.
    pub async fn leave(&self, me: &str) -> Result<(), StoreError> {
        on_backend!(self.leave(me))
    }
}
