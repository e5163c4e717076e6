//! Call pacing: when may the next originate go out.
//!
//! Carriers block trunks that burst (they cap at 3–50 CPS and answer the excess with SIP 503), so a
//! campaign's originates are spread evenly, about one every `1/cps`, and never more than `ceil(cps)`
//! in any one-second window. A [`Pacer`] enforces that for one scope (a campaign, or the whole
//! process for `CPS_MAXIMO`); [`acquire`] takes a slot from several scopes at once, so a call only
//! goes out when its campaign *and* the global ceiling both allow it.
//!
//! Why not governor's GCRA limiter with burst 1 (the design's first idea): `until_ready` restarts the
//! schedule from the moment the waiter actually woke up, and a timer wakes up a little late, so
//! every call loses that lateness; with a burst of `ceil(cps)` it keeps the rate but sends a whole
//! burst at once, twice `ceil(cps)` in the first second. Here the schedule is a lattice
//! (`next += period`) that keeps its phase when a wake-up is a little late, plus a sliding
//! one-second log of actual grants that caps every window at `ceil(cps)`. Lateness beyond a small
//! tolerance (an idle campaign, a paused one) is forgiven rather than repaid in a burst. Figures
//! against the simulator are in BENCHMARKS.md.
//!
//! Measured again side by side with governor 0.10.4 in one run (`cargo bench --bench pacing`,
//! release, BENCHMARKS.md "governor vs the pacer"), scope by scope; target: rate within 1 % and
//! never more than `ceil(cps)` in any second:
//! - a campaign: governor (burst 1) holds at 10 CPS (−0.39 %) but not at 100 (−1.25 %) or 500
//!   (−4.69 %); the pacer holds at all three (−0.53, −0.54, −0.59 %). Campaigns dial up to
//!   1,000 CPS: **the pacer stays**.
//! - a gateway ceiling shared by two campaigns: governor holds at 30 CPS (−0.63 %) and, at the
//!   edge, 50 (−0.93 %), not at 100 (−1.65 %); the pacer holds at all three (−0.51, −0.52,
//!   −0.75 %). `CPS_POR_GATEWAY` accepts up to 1,000 CPS, and a call must take its campaign's,
//!   its gateway's and the global slot at once (governor has no atomic wait on several
//!   limiters: a campaign slot is spent while the call waits on the gateway): **the pacer stays**.
//! - the global `CPS_MAXIMO` shared by several campaigns: governor −11.11 % at 1,000 CPS and
//!   −31.11 % at 5,000; the pacer −0.96 % and −0.77 %: **the pacer stays**.
//! - with a burst of `ceil(cps)`, governor keeps the long-run rate but puts up to twice
//!   `ceil(cps)` in the first second at every scope: never usable for carriers.
//!
//! governor is used where bursts are what is wanted: the API's per-client rate limit
//! (`crate::api::limit`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How late a grant may be and still keep the lattice's phase (repaid by the next slots). Above it
/// the debt is forgiven: a burst to catch up is exactly what carriers punish. (Repaying is bounded
/// anyway by the one-second window, which counts actual grants.)
const MAX_CATCH_UP: Duration = Duration::from_millis(5);

const WINDOW: Duration = Duration::from_secs(1);
/// The sliding window is held a little longer than a second: a grant is not the instant FreeSWITCH
/// reads the originate (the command crosses a socket and waits its turn in the switch's event
/// loop), and two calls whose grants are exactly one second apart could otherwise land inside one
/// second at the switch. 3 ms absorbs the jitter measured against the simulator under load
/// (BENCHMARKS.md); it costs 0.3 % of a whole rate.
const WINDOW_MARGIN: Duration = Duration::from_millis(3);
/// Typical lateness of a timer wake-up (tokio's timer ticks every millisecond), allowed for when
/// spacing calls at a whole rate so that the window above rarely has to step in.
const LATTICE_SLACK: Duration = Duration::from_millis(2);

/// Paces one scope at a rate that can change at any time.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The rate asked for.
    cps: f64,
    /// Spacing of the lattice: `1/cps`, stretched a little at whole rates (see `set_rate`).
    period: Duration,
    /// At most this many grants in any one-second window: `ceil(cps)`.
    per_window: usize,
    /// The earliest instant of the next grant; `None` before the first.
    next: Option<Instant>,
    /// Instants of the last `per_window` grants.
    recent: VecDeque<Instant>,
}

impl Pacer {
    /// A pacer at `cps` calls per second. `cps` is a validated rate (> 0, finite).
    pub fn new(cps: f64) -> Self {
        let mut state = State {
            cps,
            period: Duration::ZERO,
            per_window: 1,
            next: None,
            recent: VecDeque::new(),
        };
        state.set_rate(cps);
        Pacer {
            state: Mutex::new(state),
        }
    }

    /// Changes the rate; the next slot is computed from the new period at once (a lower rate also
    /// pushes back an already-scheduled slot, a higher one brings it forward).
    pub fn set_rate(&self, cps: f64) {
        self.lock().set_rate(cps);
    }

    /// The configured rate, in calls per second.
    pub fn rate(&self) -> f64 {
        self.lock().cps
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of plain numbers; the state is
        // still usable, and refusing to pace would stop dialing altogether.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn set_rate(&mut self, cps: f64) {
        let cps = if cps.is_finite() && cps > 0.0 {
            cps
        } else {
            1.0
        };
        self.cps = cps;
        let old_period = self.period;
        self.per_window = (cps.ceil() as usize).max(1);
        // At a whole rate the lattice alone would put exactly `cps` calls in a second, and the
        // window (held a few ms longer, on actual grants) would bind on every call, adding each
        // wake-up's lateness to the schedule. Stretching the lattice by the margin plus the usual
        // lateness keeps the lattice the binding limit: a fixed 0.5 % under a whole rate.
        let stretched =
            (WINDOW + WINDOW_MARGIN + LATTICE_SLACK).as_secs_f64() / self.per_window as f64;
        self.period = Duration::from_secs_f64((1.0 / cps).max(stretched));
        while self.recent.len() > self.per_window {
            self.recent.pop_front();
        }
        if let (Some(next), false) = (self.next, old_period.is_zero()) {
            // Re-anchor the pending slot on the previous grant with the new period.
            let last = next.checked_sub(old_period).unwrap_or(next);
            self.next = Some(last + self.period);
        }
    }

    /// The earliest instant at which this scope allows a grant.
    fn ready_at(&self, now: Instant) -> Instant {
        let mut at = self.next.unwrap_or(now);
        if self.recent.len() >= self.per_window {
            if let Some(oldest) = self.recent.front() {
                at = at.max(*oldest + WINDOW + WINDOW_MARGIN);
            }
        }
        at
    }

    /// Takes a slot at `now` (which is at or after [`State::ready_at`]). The lattice advances from
    /// the slot's *scheduled* instant, so a wake-up that is a little late is repaid by the next slot
    /// instead of pushing the whole schedule back (a larger debt, idle time, is forgiven). The
    /// one-second window counts *actual* grants: what FreeSWITCH and the carrier see.
    fn grant(&mut self, now: Instant) {
        let scheduled = self.ready_at(now);
        let base = if now.saturating_duration_since(scheduled) <= MAX_CATCH_UP {
            scheduled
        } else {
            now
        };
        self.next = Some(base + self.period);
        self.recent.push_back(now);
        while self.recent.len() > self.per_window {
            self.recent.pop_front();
        }
    }
}

/// Waits until every pacer in `scopes` allows a call, then takes one slot from each, atomically:
/// a slot is never consumed in one scope while the call waits on another.
///
/// Locks are taken in slice order; callers always pass the campaign's pacer, then its gateway's
/// (if it has a ceiling), then the global one, so two campaigns can never deadlock on a shared one.
pub async fn acquire(scopes: &[&Pacer]) {
    loop {
        let now = Instant::now();
        match try_grant(scopes, now) {
            None => return,
            Some(ready) => tokio::time::sleep_until(ready).await,
        }
    }
}

/// Grants a slot from every scope if all allow one at `now`; otherwise tells when to try again.
/// (A plain function so that no lock guard lives across an `.await`.)
fn try_grant(scopes: &[&Pacer], now: Instant) -> Option<Instant> {
    let mut guards: Vec<MutexGuard<'_, State>> = scopes.iter().map(|p| p.lock()).collect();
    let ready = guards.iter().map(|g| g.ready_at(now)).max().unwrap_or(now);
    if ready > now {
        return Some(ready);
    }
    for g in guards.iter_mut() {
        g.grant(now);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn grants(pacers: &[&Pacer], n: usize) -> Vec<Instant> {
        let mut at = Vec::with_capacity(n);
        for _ in 0..n {
            acquire(pacers).await;
            at.push(Instant::now());
        }
        at
    }

    fn max_in_any_window(at: &[Instant]) -> usize {
        let mut best = 0;
        for (i, start) in at.iter().enumerate() {
            let n = at[i..].iter().take_while(|t| **t < *start + WINDOW).count();
            best = best.max(n);
        }
        best
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_calls_evenly_at_the_target_rate() {
        let p = Pacer::new(10.0);
        let at = grants(&[&p], 101).await;
        let span = at[100] - at[0];
        // At a whole rate the lattice is stretched by 5 ms a second (see `set_rate`).
        assert!(
            span >= Duration::from_millis(10_049) && span <= Duration::from_millis(10_070),
            "{span:?}"
        );
        for w in at.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(100),
                "{:?}",
                w[1] - w[0]
            );
        }
        assert!(max_in_any_window(&at) <= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rate() {
        let p = Pacer::new(0.5);
        let at = grants(&[&p], 4).await;
        assert_eq!(at[3] - at[0], Duration::from_secs(6));
        assert!(max_in_any_window(&at) <= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_wake_up_keeps_the_long_run_rate() {
        let p = Pacer::new(100.0);
        acquire(&[&p]).await;
        let start = Instant::now();
        for i in 0..100 {
            // Every other call is processed 1 ms late, as a loaded timer wheel would.
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(11)).await;
            }
            acquire(&[&p]).await;
        }
        let span = Instant::now() - start;
        // 100 periods of the stretched lattice (10.05 ms), the late wake-ups repaid.
        assert!(span <= Duration::from_millis(1_006), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_repaid_in_a_burst() {
        let p = Pacer::new(10.0);
        acquire(&[&p]).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let at = grants(&[&p], 3).await;
        assert!(at[1] - at[0] >= Duration::from_millis(100));
        assert!(at[2] - at[1] >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_change_applies_to_the_next_call() {
        let p = Pacer::new(1.0);
        acquire(&[&p]).await;
        let t0 = Instant::now();
        p.set_rate(100.0);
        acquire(&[&p]).await;
        // One period at the new rate (10.05 ms), not the second the old rate had scheduled.
        assert!(Instant::now() - t0 <= Duration::from_millis(12));
        p.set_rate(2.0);
        let t1 = Instant::now();
        acquire(&[&p]).await;
        // ~500 ms after the last call by the new period, but the one-second window already holds
        // two calls (at 0 and ~10 ms), and ceil(2) = 2: the third waits for the window to slide.
        let waited = Instant::now() - t1;
        assert!(
            waited >= Duration::from_millis(985) && waited <= Duration::from_millis(1_000),
            "{waited:?}"
        );
        let t2 = Instant::now();
        acquire(&[&p]).await;
        let waited = Instant::now() - t2;
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_millis(520),
            "{waited:?}"
        );
        assert_eq!(p.rate(), 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_ceiling_holds_for_two_campaigns() {
        let global = std::sync::Arc::new(Pacer::new(10.0));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let global = global.clone();
            tasks.push(tokio::spawn(async move {
                let own = Pacer::new(8.0);
                grants(&[&own, &global], 40).await
            }));
        }
        let mut all = Vec::new();
        let mut per_campaign = Vec::new();
        for t in tasks {
            let at = t.await.unwrap();
            per_campaign.push(at.len());
            all.extend(at);
        }
        all.sort();
        assert!(max_in_any_window(&all) <= 10, "{}", max_in_any_window(&all));
        // 80 calls at a 10/s ceiling: 7.9 s from first to last.
        assert!(all[79] - all[0] >= Duration::from_millis(7_900));
        assert_eq!(per_campaign, vec![40, 40]);
    }
}
