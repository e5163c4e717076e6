//! Live figures of a running campaign that the database cannot give: calls in flight right now and
//! the achieved originate rate (`llamadas_activas`, `cps_real` in `GET /discador/estado/{nombre}`).
//! The same facts move the campaign's Prometheus series ([`crate::metrics::CampaignHandles`]) at
//! the same moment, so estado and `/metrics` never disagree.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::metrics::CampaignHandles;

/// `cps_real` is the originate count over this trailing window.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Bound on the timestamps kept for `cps_real` (1,000 CPS × 10 s).
const MAX_SAMPLES: usize = 10_000;

#[derive(Debug, Default)]
pub struct CampaignMetrics {
    activas: AtomicUsize,
    originadas: AtomicU64,
    recent: Mutex<VecDeque<Instant>>,
    /// The pace the pacer is set to (`cps` times what the abandon rate allows), f64 bits.
    cps_efectivo: AtomicU64,
    /// The abandon rate of the last 30 days as last read, percent, f64 bits.
    tasa_abandono: AtomicU64,
    /// The campaign's series in the service's Prometheus registry.
    prometheus: CampaignHandles,
}

impl CampaignMetrics {
    /// Live figures that also move the campaign's Prometheus series `prometheus`.
    pub fn new(prometheus: CampaignHandles) -> Self {
        CampaignMetrics {
            prometheus,
            ..CampaignMetrics::default()
        }
    }

    /// Records one originate sent now.
    pub fn originated(&self) {
        self.originadas.fetch_add(1, Ordering::Relaxed);
        self.prometheus.originadas.inc();
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.push_back(now);
        trim(&mut recent, now);
    }

    /// Originates per second over the last ten seconds (or since the first, if more recent).
    pub fn cps_real(&self) -> f64 {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        trim(&mut recent, now);
        match recent.front() {
            None => 0.0,
            Some(first) => {
                let span = now
                    .saturating_duration_since(*first)
                    .max(Duration::from_secs(1));
                let span = span.min(RATE_WINDOW);
                recent.len() as f64 / span.as_secs_f64()
            }
        }
    }

    /// Calls of this campaign in flight (from just before the originate to the final state).
    pub fn activas(&self) -> usize {
        self.activas.load(Ordering::Relaxed)
    }

    pub fn originadas(&self) -> u64 {
        self.originadas.load(Ordering::Relaxed)
    }

    pub fn set_cps_efectivo(&self, cps: f64) {
        self.cps_efectivo.store(cps.to_bits(), Ordering::Relaxed);
        self.prometheus.cps_configurado.set(cps);
    }

    /// Copies the achieved rate into the Prometheus gauge (a sliding-window figure: it is
    /// computed when it is read, at every scrape); a runner that is gone reads 0.
    pub fn export_cps_real(&self, running: bool) {
        let real = if running { self.cps_real() } else { 0.0 };
        self.prometheus.cps_real.set(real);
        if !running {
            self.prometheus.cps_configurado.set(0.0);
        }
    }

    pub fn cps_efectivo(&self) -> f64 {
        f64::from_bits(self.cps_efectivo.load(Ordering::Relaxed))
    }

    pub fn set_tasa_abandono(&self, pct: f64) {
        self.tasa_abandono.store(pct.to_bits(), Ordering::Relaxed);
    }

    pub fn tasa_abandono(&self) -> f64 {
        f64::from_bits(self.tasa_abandono.load(Ordering::Relaxed))
    }
}

fn trim(recent: &mut VecDeque<Instant>, now: Instant) {
    while let Some(first) = recent.front() {
        if now.saturating_duration_since(*first) > RATE_WINDOW || recent.len() > MAX_SAMPLES {
            recent.pop_front();
        } else {
            break;
        }
    }
}

/// The channel capacity one live call holds: a permit of its campaign's `max_canales`, one of the
/// global `CANALES_MAXIMOS`, and a place in the live counter. Dropping it (when the tracker forgets
/// the call) gives all three back, so a call can never leak a channel.
#[derive(Debug)]
pub struct CallSlot {
    _campaign: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
    /// The channel of the node carrying the call.
    node: Option<super::pool::NodePermit>,
    metrics: Arc<CampaignMetrics>,
}

impl CallSlot {
    pub fn new(
        campaign: OwnedSemaphorePermit,
        global: OwnedSemaphorePermit,
        metrics: Arc<CampaignMetrics>,
    ) -> Self {
        metrics.activas.fetch_add(1, Ordering::Relaxed);
        metrics.prometheus.activas.inc();
        metrics.prometheus.canales.inc();
        CallSlot {
            _campaign: campaign,
            _global: global,
            node: None,
            metrics,
        }
    }

    /// The call also holds one channel of its node.
    pub fn with_node(mut self, permit: super::pool::NodePermit) -> Self {
        self.node = Some(permit);
        self
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.metrics.activas.fetch_sub(1, Ordering::Relaxed);
        self.metrics.prometheus.activas.dec();
        self.metrics.prometheus.canales.dec();
    }
}
