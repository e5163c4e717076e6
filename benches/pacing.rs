//! governor against the campaign pacer, side by side in one run (issue 11, "Operating it").
//!
//! `src/dialer/pacing.rs` keeps its own lattice-plus-window pacer instead of governor's GCRA
//! limiter, on figures measured once in the past. This bench measures both again, in the same
//! process and run, at the three scopes the dialer paces:
//!
//! - a campaign alone: 10, 100 and 500 CPS;
//! - a gateway ceiling (`CPS_POR_GATEWAY`): 30 CPS shared by two campaigns of 20 CPS each (and
//!   50 and 100 CPS shared by two campaigns of 40 and 80: carriers cap at 3–50 CPS, and the
//!   setting accepts more);
//! - the global ceiling (`CPS_MAXIMO`): 1,000 CPS shared by four campaigns of 500, and 5,000 CPS
//!   shared by eight campaigns of 1,000.
//!
//! Each scope runs with three limiters: governor's `until_ready` with burst 1, governor with burst
//! `ceil(cps)`, and `Pacer` (through `pacing::acquire`, as the runners use it). With governor, a
//! call waits on its campaign's limiter, then on the shared one (governor has no atomic wait on
//! several limiters); with the pacer, one `acquire` over all scopes. Each grant's instant is taken
//! right after it; nothing else is in the loop (no originate, no database), so the figures are the
//! limiters' own. Reported for the shared (binding) scope: the achieved rate from first to last
//! grant and its error against the target, and the most grants in any sliding one-second window
//! against the carrier's rule, `ceil(cps)`. A limiter holds the target when the error is within
//! 1 % and no window exceeds `ceil(cps)`.
//!
//! Run: `cargo bench --bench pacing` (or `-- governor`). `PACING_BENCH_SECONDS` sets each run's
//! length (default 10).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use discador::dialer::pacing::{acquire, Pacer};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    GovernorBurst1,
    GovernorBurstCeil,
    Pacer,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::GovernorBurst1, Kind::GovernorBurstCeil, Kind::Pacer];

    fn name(self) -> &'static str {
        match self {
            Kind::GovernorBurst1 => "governor, burst 1",
            Kind::GovernorBurstCeil => "governor, burst ceil(cps)",
            Kind::Pacer => "Pacer",
        }
    }
}

/// One pacing scope as a limiter of the kind under test.
enum Limiter {
    Governor(DefaultDirectRateLimiter),
    Pacer(Pacer),
}

impl Limiter {
    fn new(kind: Kind, cps: f64) -> Result<Limiter> {
        let period = Duration::from_secs_f64(1.0 / cps);
        let Some(quota) = Quota::with_period(period) else {
            bail!("no quota for {cps} CPS");
        };
        let burst = NonZeroU32::new(cps.ceil() as u32).unwrap_or(NonZeroU32::MIN);
        Ok(match kind {
            Kind::GovernorBurst1 => Limiter::Governor(RateLimiter::direct(quota)),
            Kind::GovernorBurstCeil => {
                Limiter::Governor(RateLimiter::direct(quota.allow_burst(burst)))
            }
            Kind::Pacer => Limiter::Pacer(Pacer::new(cps)),
        })
    }
}

/// Waits for a slot of `own` and then of `shared` (governor), or of both at once (pacer).
async fn take(own: &Limiter, shared: Option<&Limiter>) {
    match (own, shared) {
        (Limiter::Pacer(a), Some(Limiter::Pacer(b))) => acquire(&[a, b]).await,
        (Limiter::Pacer(a), None) => acquire(&[a]).await,
        (Limiter::Governor(a), shared) => {
            a.until_ready().await;
            if let Some(Limiter::Governor(b)) = shared {
                b.until_ready().await;
            }
        }
        (Limiter::Pacer(_), Some(Limiter::Governor(_))) => unreachable!("one kind per run"),
    }
}

/// Most instants in any half-open one-second window (sorted input).
fn max_per_second(at: &[Instant]) -> usize {
    let mut best = 0;
    let mut j = 0;
    for i in 0..at.len() {
        while j < at.len() && at[j] < at[i] + Duration::from_secs(1) {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

struct Row {
    scope: String,
    target: f64,
    kind: Kind,
    grants: usize,
    achieved: f64,
    err_pct: f64,
    max_1s: usize,
}

impl Row {
    fn holds(&self) -> bool {
        self.err_pct.abs() <= 1.0 && self.max_1s <= self.target.ceil() as usize
    }

    fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.2} | {:+.2} % | {} | {} | {} |",
            self.scope,
            self.target,
            self.kind.name(),
            self.grants,
            self.achieved,
            self.err_pct,
            self.max_1s,
            self.target.ceil(),
            if self.holds() { "yes" } else { "no" }
        )
    }
}

/// `campaigns` tasks dialing for `secs`, each through its own limiter at `own_cps` and, if
/// `shared_cps` is set, through one shared limiter; the grants of all of them are measured
/// against `target` (the shared rate, or the campaign's alone).
async fn run(
    scope: &str,
    kind: Kind,
    campaigns: usize,
    own_cps: f64,
    shared_cps: Option<f64>,
    secs: f64,
) -> Result<Row> {
    let shared = match shared_cps {
        Some(cps) => Some(Arc::new(Limiter::new(kind, cps)?)),
        None => None,
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..campaigns {
        let own = Limiter::new(kind, own_cps)?;
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut at = Vec::new();
            while Instant::now() < end {
                take(&own, shared.as_deref()).await;
                at.push(Instant::now());
            }
            at
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    all.sort_unstable();
    if all.len() < 2 {
        bail!("{scope}: {} grants", all.len());
    }
    let target = shared_cps.unwrap_or(own_cps);
    let span = (all[all.len() - 1] - all[0]).as_secs_f64();
    let achieved = (all.len() - 1) as f64 / span;
    Ok(Row {
        scope: scope.to_owned(),
        target,
        kind,
        grants: all.len(),
        achieved,
        err_pct: (achieved - target) / target * 100.0,
        max_1s: max_per_second(&all),
    })
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
    // minutes of real-time pacing have no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pacing: skipped (run it with `cargo bench --bench pacing`)");
        return Ok(());
    }
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if only.as_deref().is_some_and(|o| o != "governor") {
        bail!("unknown mode {only:?}: the one mode is `governor`");
    }
    let secs: f64 = std::env::var("PACING_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        println!("| scope | target CPS | limiter | grants | achieved CPS | error | max in any 1 s | ceil(cps) | holds |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let mut rows = Vec::new();
        let scenarios: [(&str, usize, f64, Option<f64>); 8] = [
            ("campaign", 1, 10.0, None),
            ("campaign", 1, 100.0, None),
            ("campaign", 1, 500.0, None),
            ("gateway (2 campaigns × 20)", 2, 20.0, Some(30.0)),
            // The top of carriers' usual 3–50 CPS, and a ceiling the setting also accepts.
            ("gateway (2 campaigns × 40)", 2, 40.0, Some(50.0)),
            ("gateway (2 campaigns × 80)", 2, 80.0, Some(100.0)),
            ("global (4 campaigns × 500)", 4, 500.0, Some(1000.0)),
            ("global (8 campaigns × 1000)", 8, 1000.0, Some(5000.0)),
        ];
        for (scope, campaigns, own, shared) in scenarios {
            for kind in Kind::ALL {
                let row = run(scope, kind, campaigns, own, shared, secs).await?;
                println!("{}", row.line());
                rows.push(row);
            }
        }
        println!();
        for (scope, _, own, shared) in scenarios {
            let target = shared.unwrap_or(own);
            let holding: Vec<&str> = rows
                .iter()
                .filter(|r| r.scope == scope && r.target == target && r.holds())
                .map(|r| r.kind.name())
                .collect();
            println!("{scope} at {target} CPS: holds with {holding:?}");
        }
        Ok(())
    })
}
