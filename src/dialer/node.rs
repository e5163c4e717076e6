//! What the dialer knows about the FreeSWITCH node it dials through, beyond the link itself: which
//! optional modules it has loaded, whether it is refusing originates right now, and which run of
//! FreeSWITCH it is (to tell a restarted switch from a lost connection).
//!
//! All three are learned from the switch at every (re)connection and kept here for the runners, the
//! API (`/health`, the 409 for a campaign whose AMD module is missing) and reconciliation.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::AmdMode;
use crate::esl::InboundClient;

/// The optional modules a campaign's AMD mode needs, as FreeSWITCH last answered `module_exists`.
/// `None`: not asked on this connection yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Modules {
    pub mod_amd: Option<bool>,
    pub mod_avmd: Option<bool>,
}

impl Modules {
    /// The module `amd` needs, if FreeSWITCH said it does not have it.
    pub fn missing_for(&self, amd: AmdMode) -> Option<&'static str> {
        let module = amd.module()?;
        (self.loaded(module) == Some(false)).then_some(module)
    }

    /// Whether FreeSWITCH has already said if it has what `amd` needs (always, for no AMD).
    pub fn known_for(&self, amd: AmdMode) -> bool {
        amd.module().is_none_or(|m| self.loaded(m).is_some())
    }

    fn loaded(&self, module: &str) -> Option<bool> {
        match module {
            "mod_amd" => self.mod_amd,
            _ => self.mod_avmd,
        }
    }

    /// Asks FreeSWITCH. An answer that cannot be read counts as "loaded" (with a warning): the
    /// dialer must not stop dialing on a doubt, and a call whose application turns out missing is
    /// still caught (hung up by the switch, recorded INTERRUMPIDA, retried).
    pub async fn ask(esl: &InboundClient) -> Modules {
        Modules {
            mod_amd: module_exists(esl, "mod_amd").await,
            mod_avmd: module_exists(esl, "mod_avmd").await,
        }
    }
}

async fn module_exists(esl: &InboundClient, module: &str) -> Option<bool> {
    match ask_true_false(esl, &format!("module_exists {module}")).await {
        Ok(loaded) => Some(loaded),
        Err(why) => {
            tracing::warn!(modulo = module, error = %why, "module_exists sin respuesta clara; se supone cargado");
            Some(true)
        }
    }
}

/// Runs an API command that answers `true` or `false` (`module_exists`, `uuid_exists`). `Err`
/// says why there is no answer: the command failed, or FreeSWITCH said something else.
pub async fn ask_true_false(esl: &InboundClient, command: &str) -> Result<bool, String> {
    let body = esl.api(command).await.map_err(|e| e.to_string())?;
    match body.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("respuesta inesperada: {other:?}")),
    }
}

/// FreeSWITCH's `core_uuid`: new at every start of the switch. `None` if it cannot be read.
pub async fn core_uuid(esl: &InboundClient) -> Option<String> {
    let body = esl.api("global_getvar core_uuid").await.ok()?;
    let id = body.trim();
    (uuid::Uuid::parse_str(id).is_ok()).then(|| id.to_owned())
}

/// A pause of every runner after the switch refused originates for capacity (sessions-per-second,
/// max-sessions, a gateway that is down): dialing on at the same rate would only collect more
/// refusals. Each refusal within [`HOLD_RESET`] of the previous doubles the pause, from
/// [`HOLD_MIN`] up to [`HOLD_MAX`]; a quiet spell starts again from the minimum.
#[derive(Debug)]
pub struct Hold {
    state: Mutex<HoldState>,
}

#[derive(Debug)]
struct HoldState {
    until: Option<Instant>,
    step: Duration,
    last: Option<Instant>,
}

pub const HOLD_MIN: Duration = Duration::from_millis(250);
pub const HOLD_MAX: Duration = Duration::from_secs(8);
pub const HOLD_RESET: Duration = Duration::from_secs(10);

impl Default for Hold {
    fn default() -> Self {
        Hold {
            state: Mutex::new(HoldState {
                until: None,
                step: HOLD_MIN,
                last: None,
            }),
        }
    }
}

impl Hold {
    fn state(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The switch refused an originate for capacity now.
    pub fn refused(&self) {
        let now = Instant::now();
        let mut s = self.state();
        s.step = match s.last {
            Some(last) if now.saturating_duration_since(last) < HOLD_RESET => {
                (s.step * 2).min(HOLD_MAX)
            }
            _ => HOLD_MIN,
        };
        s.last = Some(now);
        s.until = Some(now + s.step);
    }

    /// When dialing may go on, if it is held now.
    pub fn until(&self) -> Option<Instant> {
        self.state().until.filter(|u| *u > Instant::now())
    }

    /// Waits out the current pause (and any extended while waiting).
    pub async fn wait(&self) {
        while let Some(until) = self.until() {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// The node's state, shared by the dialer's parts.
#[derive(Debug)]
pub struct Node {
    pub modules: watch::Sender<Modules>,
    pub hold: Hold,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            modules: watch::Sender::new(Modules::default()),
            hold: Hold::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_needs_its_module_only_when_known_missing() {
        let m = Modules {
            mod_amd: Some(false),
            mod_avmd: None,
        };
        assert_eq!(m.missing_for(AmdMode::ModAmd), Some("mod_amd"));
        assert_eq!(m.missing_for(AmdMode::Avmd), None);
        assert_eq!(m.missing_for(AmdMode::Ninguno), None);
        let m = Modules {
            mod_amd: Some(true),
            mod_avmd: Some(false),
        };
        assert_eq!(m.missing_for(AmdMode::ModAmd), None);
        assert_eq!(m.missing_for(AmdMode::Avmd), Some("mod_avmd"));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_in_a_row_double_the_pause() {
        let h = Hold::default();
        assert!(h.until().is_none());
        h.refused();
        let first = h.until().unwrap() - Instant::now();
        assert_eq!(first, HOLD_MIN);
        h.refused();
        assert_eq!(h.until().unwrap() - Instant::now(), HOLD_MIN * 2);
        for _ in 0..10 {
            h.refused();
        }
        assert_eq!(h.until().unwrap() - Instant::now(), HOLD_MAX);
        h.wait().await;
        assert!(h.until().is_none());
        tokio::time::sleep(HOLD_RESET).await;
        h.refused();
        assert_eq!(h.until().unwrap() - Instant::now(), HOLD_MIN);
    }
}
