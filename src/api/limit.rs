//! Rate limit of API clients (governor's GCRA, one bucket per client address).
//!
//! Why per address and not per token: there is one `API_TOKEN`, shared by every client that has
//! it, so a limit per token would be one limit for everyone — one runaway script would lock the
//! supervisors' dashboard out. A client's address tells clients apart whether or not a token is
//! set. (Behind a reverse proxy every request comes from the proxy's address: the proxy is then
//! the one client, and the limit should be set for all of them together.)
//!
//! `/health` is exempt (load balancers poll it, and it must answer while anything else is
//! limited). Over the limit a request gets 429 with `Retry-After` in whole seconds (at least 1,
//! from governor's own answer of when the next request would be allowed) and the API's error body.
//!
//! The limiter keeps one small state per address it has seen; [`ApiLimiter::check`] drops the
//! states of addresses whose bucket is full again every [`RETAIN_EVERY`] checks, so the memory
//! stays bounded by the addresses active in the last burst period, however many came before.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How many checks between two sweeps of idle addresses.
const RETAIN_EVERY: u64 = 1_024;

/// A request refused by the rate limit: how long to wait, whole seconds (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_s: u64,
}

impl warp::reject::Reject for Limited {}

/// The API's keyed limiter; shared by every request (`Arc` in the state).
pub struct ApiLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl std::fmt::Debug for ApiLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiLimiter")
            .field("clientes", &self.limiter.len())
            .finish()
    }
}

impl ApiLimiter {
    /// `rps` requests per second per client, up to `burst` at once.
    pub fn new(rps: NonZeroU32, burst: NonZeroU32) -> Self {
        ApiLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request of `client` (no address: one shared bucket for those).
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.limiter.check_key(&key).map_err(|not_until| Limited {
            retry_after_s: whole_seconds(not_until.wait_time_from(self.limiter.clock().now())),
        })
    }

    /// Addresses with state in the limiter now.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

/// `Retry-After` is whole seconds: rounded up, never 0 (a client told "0" retries at once).
fn whole_seconds(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = ApiLimiter::new(nz(1), nz(3));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(l.check(a), Ok(()));
        }
        let refused = l.check(a).unwrap_err();
        assert_eq!(refused.retry_after_s, 1);
        assert_eq!(l.check(b), Ok(()), "another client is not affected");
        assert_eq!(l.clients(), 2);
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1_000)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1_001)), 2);
        // 1 request every 10 s (rps cannot go below 1, but a burst of 1 at 1/s waits ~1 s).
        let l = ApiLimiter::new(nz(1), nz(1));
        assert!(l.check(None).is_ok());
        assert_eq!(l.check(None).unwrap_err().retry_after_s, 1);
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let l = ApiLimiter::new(nz(1_000), nz(1));
        for i in 0..(RETAIN_EVERY - 1) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
            let _ = l.check(Some(ip));
        }
        assert_eq!(l.clients() as u64, RETAIN_EVERY - 1);
        // Their buckets (1 request, refilled in 1 ms) are full again.
        std::thread::sleep(Duration::from_millis(20));
        let _ = l.check(Some("192.0.2.1".parse().unwrap()));
        assert!(l.clients() <= 1, "{}", l.clients());
    }
}
