//! FreeSWITCH's two session limits, reproduced rule for rule from `switch_core_session.c`
//! (`switch_core_session_request_uuid`) and `switch_time.c` (the soft timer):
//!
//! * **sessions-per-second**: a budget `sps` is reset to `sessions-per-second` once per second of
//!   the core's timer (fixed one-second windows, not a sliding window). Each new session first
//!   does `sps = --runtime.sps` and is refused ("Throttle Error!") when the result is `<= 0`. So at
//!   most `sessions-per-second - 1` sessions are created per window (29 with the default 30), and
//!   a refused attempt still spends budget.
//! * **max-sessions**: refused ("Over Session Limit!") when `count + 1 > max-sessions`.
//!
//! A refused session never exists: no CHANNEL_CREATE, no events. The endpoint then returns its
//! failure cause; both `mod_sofia` (`sofia_outgoing_channel`) and `mod_loopback` return
//! `DESTINATION_OUT_OF_ORDER` when `switch_core_session_request` fails, and `switch_ivr_originate`
//! reports that reason, so the API answers `-ERR DESTINATION_OUT_OF_ORDER`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cause FreeSWITCH reports for an originate refused by either limit.
pub const OVER_LIMIT_CAUSE: &str = "DESTINATION_OUT_OF_ORDER";

/// Which limit refused a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over sessions-per-second.
    Throttle,
    /// Over max-sessions.
    SessionLimit,
}

#[derive(Debug)]
struct GateState {
    window: u64,
    budget: i64,
    live: u32,
    peak: u32,
    since_startup: u64,
    created_last_window: u64,
    created_this_window: u64,
}

/// Admission control for new channels. Shared by every originate.
#[derive(Debug)]
pub struct SessionGate {
    sps: u32,
    max_sessions: u32,
    origin: Instant,
    state: Mutex<GateState>,
}

/// Snapshot of the gate's counters, for `api status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateStats {
    pub live: u32,
    pub peak: u32,
    pub since_startup: u64,
    pub sps_last: u64,
    pub sps_max: u32,
    pub max_sessions: u32,
}

/// Proof that a channel was admitted; dropping it frees the session slot.
#[derive(Debug)]
pub struct SessionPermit {
    gate: Arc<SessionGate>,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.live = st.live.saturating_sub(1);
    }
}

impl SessionGate {
    pub fn new(sps: u32, max_sessions: u32) -> Arc<SessionGate> {
        Arc::new(SessionGate {
            sps,
            max_sessions,
            origin: Instant::now(),
            state: Mutex::new(GateState {
                window: 0,
                budget: i64::from(sps),
                live: 0,
                peak: 0,
                since_startup: 0,
                created_last_window: 0,
                created_this_window: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A poisoned lock only means another thread panicked while counting; the counters are
        // still usable, so recover the guard instead of propagating the panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one new session at `now`, or says which limit refuses it.
    pub fn try_acquire_at(self: &Arc<Self>, now: Instant) -> Result<SessionPermit, Refusal> {
        let window = now.saturating_duration_since(self.origin).as_secs();
        let mut st = self.lock();
        if window != st.window {
            st.created_last_window = if window == st.window + 1 {
                st.created_this_window
            } else {
                0
            };
            st.created_this_window = 0;
            st.window = window;
            st.budget = i64::from(self.sps);
        }
        st.budget -= 1;
        if st.budget <= 0 {
            return Err(Refusal::Throttle);
        }
        if st.live >= self.max_sessions {
            // FreeSWITCH: `(count + 1) > session_limit`.
            return Err(Refusal::SessionLimit);
        }
        st.live += 1;
        st.peak = st.peak.max(st.live);
        st.since_startup += 1;
        st.created_this_window += 1;
        drop(st);
        Ok(SessionPermit {
            gate: Arc::clone(self),
        })
    }

    /// Admits one new session now.
    pub fn try_acquire(self: &Arc<Self>) -> Result<SessionPermit, Refusal> {
        self.try_acquire_at(Instant::now())
    }

    /// Live sessions (admitted and not yet dropped).
    pub fn live(&self) -> u32 {
        self.lock().live
    }

    pub fn stats(&self) -> GateStats {
        let st = self.lock();
        GateStats {
            live: st.live,
            peak: st.peak,
            since_startup: st.since_startup,
            sps_last: st.created_last_window,
            sps_max: self.sps,
            max_sessions: self.max_sessions,
        }
    }

    /// Time since the gate (the simulated core) started.
    pub fn uptime(&self) -> Duration {
        self.origin.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_allows_one_less_than_the_setting_per_window() {
        let gate = SessionGate::new(5, 1000);
        let t0 = gate.origin;
        let mut permits = Vec::new();
        for _ in 0..4 {
            permits.push(gate.try_acquire_at(t0).expect("within budget"));
        }
        assert_eq!(gate.try_acquire_at(t0).err(), Some(Refusal::Throttle));
        // The next window restores the budget.
        let t1 = t0 + Duration::from_millis(1_000);
        assert!(gate.try_acquire_at(t1).is_ok());
        assert_eq!(gate.stats().sps_last, 4);
    }

    #[test]
    fn max_sessions_counts_live_permits() {
        let gate = SessionGate::new(1000, 2);
        let t0 = gate.origin;
        let a = gate.try_acquire_at(t0).expect("first");
        let _b = gate.try_acquire_at(t0).expect("second");
        assert_eq!(gate.try_acquire_at(t0).err(), Some(Refusal::SessionLimit));
        drop(a);
        assert_eq!(gate.live(), 1);
        assert!(gate.try_acquire_at(t0).is_ok());
        assert_eq!(gate.stats().peak, 2);
    }
}
