//! The dialer's calendar clock: the "now" of every calling rule (the called person's window, the
//! excluded dates, the attempt caps per rolling 24 h, due retries) and of the times it records.
//!
//! In service it is the system clock. Tests run the rules at exact boundaries (a window that opens
//! at 09:00 local, the night a zone changes to summer time, 24 h after a number's first attempt)
//! by setting a manual clock instead of waiting hours: a manual clock stands still until it is set,
//! and whoever sleeps until a calendar instant also wakes when it is set. Timers that measure a
//! span (pacing, ring timeouts, back-offs) stay on tokio's monotonic time: they are not calendar
//! rules.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// System or manual; cheap to clone (clones share the manual time).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<watch::Sender<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `at` until [`Clock::set`] moves it.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Clock {
            manual: Some(Arc::new(watch::Sender::new(at))),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(t) => *t.borrow(),
            None => Utc::now(),
        }
    }

    /// Moves a manual clock (forwards or backwards) and wakes everyone in [`Clock::changed`]; a
    /// system clock cannot be set and ignores it.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(t) = &self.manual {
            t.send_replace(at);
        }
    }

    /// Resolves when a manual clock is set; never for the system clock (which moves by itself:
    /// sleep for the span instead).
    pub async fn changed(&self) {
        match &self.manual {
            Some(t) => {
                let mut rx = t.subscribe();
                // `subscribe` marks the current value seen: only a later `set` wakes us.
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_stands_still_until_set_and_wakes_sleepers() {
        let t0: DateTime<Utc> = "2026-03-08T12:59:59Z".parse().unwrap(); // literal
        let clock = Clock::manual(t0);
        assert_eq!(clock.now(), t0);
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.changed().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let t1 = t0 + chrono::Duration::seconds(1);
        clock.set(t1);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(clock.now(), t1);
    }

    #[tokio::test]
    async fn the_system_clock_moves_and_cannot_be_set() {
        let clock = Clock::system();
        let before = Utc::now();
        clock.set("2000-01-01T00:00:00Z".parse().unwrap()); // literal
        assert!(clock.now() >= before);
        let never = tokio::time::timeout(std::time::Duration::from_millis(20), clock.changed());
        assert!(never.await.is_err());
    }
}
