//! Per-campaign counters for `GET /discador/estado/{nombre}`, served from memory: the numbers
//! table's per-state counts and the dispositions counted over the campaign's CDRs.
//!
//! Counting a 1,000,000-row table takes 100+ ms, far over the 20 ms p99 target, and a dashboard polls
//! it. So counts are cached per numbers table with stale-while-revalidate: a value younger than
//! [`FRESH`] is served as is; an older one is still served while one background task refreshes it
//! (never two at once); only a first read, or a value older than [`MAX_STALE`] (e.g. after idling),
//! waits for the database. Writers that change counts in bulk (a number upload) invalidate the entry,
//! and so does a change of the campaign's state: the first read that sees FINALIZADA (or PAUSADA)
//! gets the counts as of that moment, not the last ones of the run.
//! Result: counts are at most about one second (plus one query) old while someone is watching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{CampaignState, TableName};
use crate::store::{Campaign, DispositionCounts, NumberStats, Store, StoreError};

const FRESH: Duration = Duration::from_secs(1);
const MAX_STALE: Duration = Duration::from_secs(10);

/// What estado shows of one campaign, read together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub numeros: NumberStats,
    pub disposiciones: DispositionCounts,
}

#[derive(Clone, Copy)]
struct Entry {
    stats: CampaignCounts,
    /// The campaign's state when these counts were read.
    estado: CampaignState,
    at: Instant,
    refreshing: bool,
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct StatsCache {
    store: Store,
    entries: Arc<Mutex<HashMap<TableName, Entry>>>,
}

impl StatsCache {
    pub fn new(store: Store) -> Self {
        StatsCache {
            store,
            entries: Arc::default(),
        }
    }

    /// Counts of `c`, at most ~[`FRESH`] old while polled.
    pub async fn get(&self, c: &Campaign) -> Result<CampaignCounts, StoreError> {
        let now = Instant::now();
        let cached = {
            let mut map = self.lock();
            match map.get_mut(&c.tabla) {
                Some(e) if e.estado != c.estado => None,
                Some(e) if now.duration_since(e.at) <= FRESH => return Ok(e.stats),
                Some(e) if now.duration_since(e.at) <= MAX_STALE => {
                    let start = !e.refreshing;
                    e.refreshing = true;
                    Some((e.stats, start))
                }
                _ => None,
            }
        };
        match cached {
            Some((stats, start_refresh)) => {
                if start_refresh {
                    let this = self.clone();
                    let c = c.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.refresh(&c).await {
                            tracing::warn!(campana = %c.nombre, error = %e, "no se pudieron actualizar las estadísticas");
                            if let Some(e) = this.lock().get_mut(&c.tabla) {
                                e.refreshing = false;
                            }
                        }
                    });
                }
                Ok(stats)
            }
            None => self.refresh(c).await,
        }
    }

    /// Forgets `tabla`'s counts: the next read waits for fresh ones.
    pub fn invalidate(&self, tabla: &TableName) {
        self.lock().remove(tabla);
    }

    async fn refresh(&self, c: &Campaign) -> Result<CampaignCounts, StoreError> {
        let (numeros, disposiciones) = tokio::try_join!(
            self.store.stats(c),
            self.store.disposition_counts(&c.nombre)
        )?;
        let stats = CampaignCounts {
            numeros,
            disposiciones,
        };
        self.lock().insert(
            c.tabla.clone(),
            Entry {
                stats,
                estado: c.estado,
                at: Instant::now(),
                refreshing: false,
            },
        );
        Ok(stats)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TableName, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is simply taken over.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
