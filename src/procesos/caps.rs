//! Caps shared by every process on one database: `CPS_MAXIMO` and each `CPS_POR_GATEWAY` hold for
//! all of them together.
//!
//! Each process publishes, at every heartbeat, its **demand** per scope (the sum of the effective
//! rates of its campaigns that dial now: in total, and per gateway) and reads its live peers'. Its
//! own pacer for a scope then runs at its share:
//! - `Σ ≤ cap` (everyone fits): its own demand, so that a peer's demand can grow into the rest;
//! - `Σ > cap`: `cap × own / Σ`, so the shares add up to the cap, in proportion to demand;
//! - no demand of its own (nothing dials here yet): the headroom the peers leave, `cap − peers`,
//!   so that a campaign started here dials at once instead of waiting one heartbeat.
//!
//! Never above the cap. The shares are computed from what every process published at its last
//! heartbeat, so while demands change the sum can overshoot the cap, for at most one heartbeat
//! (`LATIDO_MS`) after the change: a process whose demand grows takes its larger share at its next
//! heartbeat, and each peer lowers its own at *its* next heartbeat, at most `LATIDO_MS` later.
//! The overshoot in that interval is at most the growth of demand (bounded by the cap of the
//! scope per process, since no process ever runs above the cap).
//!
//! Generic over scopes: a scope is registered with a key, its cap and a handle that sets a pacer's
//! rate, so other caps (e.g. per FreeSWITCH node) can be added the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The slowest rate a scope's pacer is set to (a [`crate::dialer::pacing::Pacer`] needs a rate
/// above zero): a process whose peers take the whole cap waits about this long for its first call,
/// until its next heartbeat gives it a share.
pub const MIN_RATE: f64 = 0.05;

/// Sets the rate of the pacer of one scope.
pub type RateHandle = Arc<dyn Fn(f64) + Send + Sync>;

/// One shared cap.
#[derive(Clone)]
pub struct Scope {
    pub key: String,
    pub cap: f64,
    pub handle: RateHandle,
}

/// The caps this process shares with its peers.
#[derive(Clone, Default)]
pub struct SharedCaps {
    scopes: Vec<Scope>,
}

/// This process's rate for a scope with cap `cap`, given its own demand and the sum of its live
/// peers' demands (see the module doc).
pub fn share(cap: f64, own: f64, peers: f64) -> f64 {
    let (own, peers) = (own.max(0.0), peers.max(0.0));
    let total = own + peers;
    let rate = if peers <= 0.0 {
        cap
    } else if own <= 0.0 {
        cap - peers
    } else if total > cap {
        cap * own / total
    } else {
        own
    };
    rate.clamp(MIN_RATE.min(cap), cap)
}

impl SharedCaps {
    pub fn new() -> Self {
        SharedCaps::default()
    }

    /// Adds a scope: `key` as published (`total`, `gw:<gateway>`), its cap, and how to set the
    /// rate of its pacer here.
    pub fn register(&mut self, key: impl Into<String>, cap: f64, handle: RateHandle) {
        self.scopes.push(Scope {
            key: key.into(),
            cap,
            handle,
        });
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Sets every scope's pacer from this process's demand and its live peers' (scope key →
    /// demand; a scope missing from a map is no demand). Returns the rates set, by key.
    pub fn apply(
        &self,
        own: &BTreeMap<String, f64>,
        peers: &[&BTreeMap<String, f64>],
    ) -> BTreeMap<String, f64> {
        let mut set = BTreeMap::new();
        for s in &self.scopes {
            let mine = own.get(&s.key).copied().unwrap_or(0.0);
            let theirs: f64 = peers
                .iter()
                .filter_map(|p| p.get(&s.key))
                .filter(|v| v.is_finite())
                .sum();
            let rate = share(s.cap, mine, theirs);
            (s.handle)(rate);
            set.insert(s.key.clone(), rate);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn shares_add_up_to_the_cap_when_demand_exceeds_it() {
        // Two processes each wanting 20 under a cap of 25: 12.5 each.
        assert!(close(share(25.0, 20.0, 20.0), 12.5));
        // In proportion to demand: 30 and 10 under 20 → 15 and 5.
        let (a, b) = (share(20.0, 30.0, 10.0), share(20.0, 10.0, 30.0));
        assert!(close(a, 15.0) && close(b, 5.0), "{a} {b}");
        assert!(close(a + b, 20.0));
        // Three processes.
        let d = [10.0, 20.0, 30.0];
        let total: f64 = (0..3)
            .map(|i| share(30.0, d[i], d.iter().sum::<f64>() - d[i]))
            .sum();
        assert!(close(total, 30.0), "{total}");
    }

    #[test]
    fn under_the_cap_each_keeps_its_own_demand_and_never_more_than_the_cap() {
        assert!(close(share(25.0, 5.0, 10.0), 5.0));
        assert!(close(share(25.0, 25.0, 0.0), 25.0));
        // Alone: the whole cap, whatever its own demand.
        assert!(close(share(25.0, 5.0, 0.0), 25.0));
        // A single process asking for more than the cap gets the cap.
        assert!(close(share(25.0, 40.0, 0.0), 25.0));
        // Nothing dialing here: the headroom the peers leave, at least the minimum.
        assert!(close(share(25.0, 0.0, 10.0), 15.0));
        assert!(close(share(25.0, 0.0, 30.0), MIN_RATE));
        assert!(close(share(25.0, 0.0, 0.0), 25.0));
        // Nonsense published by a peer does not push a rate out of (0, cap].
        assert!(close(share(25.0, -3.0, -3.0), 25.0));
    }

    #[test]
    fn every_registered_scope_gets_its_rate() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut caps = SharedCaps::new();
        for (key, cap) in [("total", 25.0), ("gw:gw_a", 10.0)] {
            let seen = seen.clone();
            let k = key.to_owned();
            caps.register(
                key,
                cap,
                Arc::new(move |r| seen.lock().unwrap().push((k.clone(), r))),
            );
        }
        let own = BTreeMap::from([("total".to_owned(), 20.0), ("gw:gw_a".to_owned(), 10.0)]);
        let peer = BTreeMap::from([("total".to_owned(), 30.0), ("gw:gw_a".to_owned(), 10.0)]);
        let set = caps.apply(&own, &[&peer]);
        assert!(close(set["total"], 10.0));
        assert!(close(set["gw:gw_a"], 5.0));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
