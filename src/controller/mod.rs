//! The outbound-socket call controller: what happens to each answered leg.
//!
//! FreeSWITCH runs the dialplan entry `discador` (see `freeswitch-conf/dialplan/discador.xml`) for
//! every answered call, whose `socket` application connects here. For each connection:
//!
//! 1. read the channel data (`connect`): our `discador_campana`, `discador_numero`,
//!    `discador_intento` variables and the call's UUID, and tell the tracker the controller has the
//!    call;
//! 2. `myevents` (this call's events), for avmd (and a voicemail drop after the beep) also `event plain CUSTOM avmd::beep` (`myevents`
//!    carries no CUSTOM event), and a *bounded* `linger` (a bare one never lets the socket close);
//! 3. answering-machine detection by the campaign's `amd` mode — `ninguno` (a person), `mod_amd`
//!    (the `amd` application sets `amd_result` HUMAN / MACHINE / NOTSURE and `amd_cause`), `avmd`
//!    (a beep within the window means a machine), `integrado` (the service's own detector on the
//!    call's stream, which also hears SIT tones: an invalid number, hung up at once);
//! 4. NOTSURE — and an AMD that failed or timed out, which is recorded as NOTSURE with cause
//!    `ERROR` / `TIMEOUT` — goes where the campaign says, by default to the human destination:
//!    hanging up on a person is the costly mistake;
//! 5. set `discador_resultado`, `discador_amd_resultado`, `discador_amd_causa` on the channel (for
//!    the dialplan and the CDR) and tell the tracker the verdict directly;
//! 6. the campaign's script ([`script`]): without a message for this verdict, transfer to the
//!    campaign's `destino_humano` / `destino_maquina` in context `discador` (or hang up when the
//!    machine destination is empty), as IVR designers expect; with `mensaje_humano`, play it with
//!    the menu's keys (transfer to an extension, bridge to agents under the abandon rule, opt out
//!    into the DNC list, repeat); with `mensaje_maquina`, leave it after the beep or the greeting
//!    (or leave nothing: `buzon: no_dejar`);
//!    A person's verdict is then watched for a late voicemail beep ([`late_beep`]): a beep during
//!    the person's message or menu corrects it to MACHINE (`LATE_BEEP`) and the machine's script
//!    runs from after the beep;
//! 7. tell the tracker the call's one disposition and that it was delivered, *then* transfer or
//!    hang up (so the report is never overtaken by the hangup it causes), and `exit`: the socket
//!    closes and the call lives on in the dialplan (or in its bridge) alone.
//!
//! Every wait ends when the channel hangs up (the session reports [`EslError::HungUp`]), every step
//! is bounded by a timeout, and the dialplan hangs up the call if the socket ends without a
//! transfer. The tracker always hears how control ended ([`ControlOutcome`]): delivered, the called
//! party hung up during it (a contact), or failed (the switch hung up for another reason, e.g. a
//! missing application; the socket was lost): an answered call that was never delivered is retried.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::amd;
use crate::dialer::tracker::{AmdVerdict, CallEvent, ControlOutcome};
use crate::dialer::Dialer;
use crate::domain::{AmdMode, AmdNotSure, CallDisposition, CallResult, Disposition};
use crate::esl::{EslError, OutboundSession};
use crate::store::Campaign;

mod late_beep;
mod listen;
pub mod preflight;
mod script;

pub use late_beep::LATE_BEEP;
use late_beep::{Watch, MEDIA_BUG_EVENTS};
use listen::{AudioTap, Detection};
pub use script::Ending;
use script::{transfer_arg, wait_beep, Beep, ScriptRun};

/// The dialplan context every destination lives in.
pub const CONTEXT: &str = "discador";

/// The `avmd::beep` subscription an avmd campaign's socket needs (`myevents` has no CUSTOM event).
const AVMD_BEEP: [&str; 2] = ["CUSTOM", "avmd::beep"];

/// `amd_resultado` and `amd_causa` of a call the integrated detector heard a Special
/// Information Tone on (the network's "not in service" announcement): NUMERO_INVALIDO.
pub const SIT: &str = "SIT";

/// The cause the controller hangs a SIT call up with: what the network would have said had it
/// refused the call instead of answering it with an announcement.
pub const SIT_HANGUP_CAUSE: &str = "UNALLOCATED_NUMBER";

/// Timing of the controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Longest wait for `mod_amd`'s verdict.
    pub amd_timeout: Duration,
    /// How long `avmd` listens for a beep before deciding it is a person.
    pub avmd_window: Duration,
    /// How long FreeSWITCH keeps the socket after the hangup for the last events (`linger N`).
    pub linger_secs: u32,
    /// `buzon: tras_beep` after a `mod_amd` verdict: how long mod_avmd listens for the beep before
    /// the message goes after the greeting's silence instead.
    pub beep_window: Duration,
    /// Longest wait for the end of a machine's greeting (`detect_silence`).
    pub greeting_limit: Duration,
    /// After a person's verdict (HUMAN, or NOTSURE taken as a person), how long after the answer
    /// a voicemail beep heard during the person's message or menu still corrects it to MACHINE
    /// (see [`late_beep`]). Zero: never.
    pub late_beep_window: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            amd_timeout: Duration::from_secs(10),
            avmd_window: Duration::from_secs(15),
            linger_secs: 5,
            beep_window: Duration::from_secs(30),
            greeting_limit: Duration::from_secs(20),
            late_beep_window: Duration::from_secs(20),
        }
    }
}

/// Why the controller could not finish a call.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Esl(#[from] EslError),
    /// The script could not run as written (e.g. FreeSWITCH cannot play the message file).
    #[error("{0}")]
    Script(String),
}

/// Serves the answered legs of the dialer's calls.
#[derive(Clone)]
pub struct Controller {
    dialer: Dialer,
    settings: Arc<ControllerSettings>,
}

impl Controller {
    pub fn new(dialer: Dialer, settings: ControllerSettings) -> Self {
        Controller {
            dialer,
            settings: Arc::new(settings),
        }
    }

    /// Drives one answered call to its destination and tells the tracker how control ended.
    pub async fn handle(self, mut session: OutboundSession) {
        let uuid_text = session.uuid().to_owned();
        let Ok(uuid) = Uuid::parse_str(&uuid_text) else {
            tracing::warn!(uuid = %uuid_text, "conexión de socket sin UUID válido; se devuelve al dialplan");
            let _ = session.exit().await;
            return;
        };
        let Some(name) = session.variable("discador_campana").map(str::to_owned) else {
            // Not one of ours: give the call back to the dialplan untouched.
            tracing::warn!(%uuid, "llamada sin discador_campana en el socket; se devuelve al dialplan");
            let _ = session.exit().await;
            return;
        };
        let tracker = self.dialer.tracker().clone();
        tracker.event(CallEvent::ControlStarted { uuid });
        let outcome = match self.campaign(&name).await {
            Some(campaign) => self.drive(&mut session, uuid, &campaign).await,
            None => {
                tracing::warn!(%uuid, campana = %name, "campaña desconocida en el socket; se cuelga");
                let _ = session.hangup("NORMAL_CLEARING").await;
                Some(ControlOutcome::Failed("campaña desconocida".into()))
            }
        };
        if let Some(outcome) = outcome {
            tracker.event(CallEvent::ControlEnded { uuid, outcome });
        }
        let _ = session.exit().await;
    }

    async fn campaign(&self, name: &str) -> Option<Arc<Campaign>> {
        if let Some(c) = self.dialer.campaign(name) {
            return Some(c);
        }
        let name = crate::domain::CampaignName::parse(name).ok()?;
        self.dialer
            .store()
            .campaign(&name)
            .await
            .ok()
            .flatten()
            .map(Arc::new)
    }

    /// Runs the call; returns how control ended, or `None` when the delivery was already reported
    /// (it is reported *before* the transfer or hangup, which would otherwise race it).
    async fn drive(
        &self,
        session: &mut OutboundSession,
        uuid: Uuid,
        campaign: &Campaign,
    ) -> Option<ControlOutcome> {
        let mut disp = CallDisposition::new(Disposition::ColgoEnDeteccion);
        let mut verdict_sent = false;
        let e = match self
            .run(session, uuid, campaign, &mut disp, &mut verdict_sent)
            .await
        {
            Ok(()) => return None,
            Err(e) => e,
        };
        let outcome = match (&e, session.hangup_info()) {
            (ControlError::Esl(EslError::HungUp(_)), Some(h)) if h.by_far_end() => {
                ControlOutcome::CalleeHungUp
            }
            (ControlError::Esl(EslError::HungUp(cause)), _) => ControlOutcome::Failed(format!(
                "FreeSWITCH colgó la llamada durante el control ({cause})"
            )),
            _ => ControlOutcome::Failed(e.to_string()),
        };
        tracing::info!(campana = %campaign.nombre, %uuid, error = %e,
            disposicion = %disp.disposicion, "control de llamada interrumpido");
        let tracker = self.dialer.tracker();
        if matches!(outcome, ControlOutcome::CalleeHungUp) {
            // A person who hung up during detection was still a person (or the campaign's
            // NOTSURE rule): the verdict the tracker records.
            if !verdict_sent {
                let verdict = self.verdict_so_far(session, campaign);
                tracker.event(CallEvent::Amd { uuid, verdict });
            }
            tracker.event(CallEvent::Disposition {
                uuid,
                disposition: disp,
            });
        } else if disp.disposicion == Disposition::Baja {
            // The opt-out is in the DNC list whatever happened next.
            tracker.event(CallEvent::Disposition {
                uuid,
                disposition: disp,
            });
        }
        Some(outcome)
    }

    /// Detection, the verdict, the script; then the report and the ending.
    async fn run(
        &self,
        session: &mut OutboundSession,
        uuid: Uuid,
        campaign: &Campaign,
        disp: &mut CallDisposition,
        verdict_sent: &mut bool,
    ) -> Result<(), ControlError> {
        // The stream first: what the switch reads before `unicast` reaches it is never heard,
        // and a greeting's first word cut short is not counted as a word.
        let listening = match campaign.amd {
            AmdMode::Integrado => Some(AudioTap::open(session).await?),
            _ => None,
        };
        // A person's verdict may be corrected by a late beep until this instant (see
        // `late_beep`); the window counts from the answer.
        let answered = since_answer(session)
            .and_then(|d| Instant::now().checked_sub(d))
            .unwrap_or_else(Instant::now);
        let late_until = answered + self.settings.late_beep_window;
        let watches = !self.settings.late_beep_window.is_zero() && campaign.watches_late_beep();
        // mod_amd and avmd campaigns listen with mod_avmd, where the call's switch has it: an
        // application it lacks would hang the call up.
        let late_avmd = watches
            && matches!(campaign.amd, AmdMode::ModAmd | AmdMode::Avmd)
            && self.avmd_loaded(uuid).await;
        session.myevents().await?;
        if campaign.amd == AmdMode::Avmd || campaign.guion.needs_avmd(campaign.amd) || late_avmd {
            session.subscribe(&AVMD_BEEP).await?;
        }
        if watches && campaign.amd == AmdMode::Integrado {
            // The displaced message's start and end (`myevents` carries no media-bug event).
            session.subscribe(&MEDIA_BUG_EVENTS).await?;
        }
        session.linger(self.settings.linger_secs).await?;

        let mut beep = None;
        let mut tap = None;
        let (raw, cause) = match campaign.amd {
            AmdMode::Ninguno => ("NONE".to_owned(), None),
            AmdMode::ModAmd => self.mod_amd(session).await?,
            AmdMode::Avmd => {
                let (raw, cause, heard) = self.avmd(session).await?;
                beep = heard.map(Beep::Heard);
                (raw, cause)
            }
            AmdMode::Integrado => {
                // The message is mixed into the parked call, which plays only if the park writes
                // frames: a call dialed before the campaign got its message lacks the variable.
                let writes = session
                    .variable("send_silence_when_idle")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .is_some_and(|v| v != 0);
                let watch_stream = watches && writes && Instant::now() < late_until;
                let (raw, cause, open) = self
                    .integrado(session, campaign, listening, watch_stream)
                    .await?;
                tap = open;
                if cause.as_deref() == Some(amd::cause::BEEP) {
                    // The detector decided on the machine's beep: it has ended, the machine
                    // records now (waiting for another beep would wait for nothing).
                    beep = Some(Beep::Ended(Instant::now()));
                }
                (raw, cause)
            }
        };
        let result = verdict(&raw, campaign.amd_incierto);
        session.set_var("discador_amd_resultado", &raw).await?;
        if let Some(c) = &cause {
            session.set_var("discador_amd_causa", c).await?;
        }
        // The mark that the call was handed on (the tracker reads it from the hangup when this
        // controller's own report is missing).
        session
            .set_var("discador_resultado", result.as_str())
            .await?;
        let tracker = self.dialer.tracker();
        tracker.event(CallEvent::Amd {
            uuid,
            verdict: AmdVerdict {
                result,
                raw: raw.clone(),
                cause,
            },
        });
        *verdict_sent = true;
        let deteccion_ms = since_answer(session).map(|d| d.as_millis() as u64);
        tracing::info!(campana = %campaign.nombre, %uuid, amd = %raw, resultado = %result,
            deteccion_ms, "llamada contestada");
        if result == CallResult::NumeroInvalido {
            // A SIT: nobody to talk to, no script and no disposition. The number is invalid
            // (never retried) and the call is hung up as the network would have refused it.
            tracker.event(CallEvent::ControlEnded {
                uuid,
                outcome: ControlOutcome::Delivered,
            });
            // Reported already: a call that ended by itself meanwhile changes nothing.
            if let Err(e) = session.hangup(SIT_HANGUP_CAUSE).await {
                tracing::debug!(%uuid, error = %e, "cuelgue tras el tono SIT no enviado");
            }
            return Ok(());
        }

        let guion = &campaign.guion;
        let message = match result {
            CallResult::Maquina => guion.mensaje_maquina.clone(),
            _ => guion.mensaje_humano.clone(),
        };
        // A person's verdict: listen for a late beep during the message and the menu.
        let mut watch = None;
        if result == CallResult::Humano && watches && Instant::now() < late_until {
            match campaign.amd {
                AmdMode::Integrado => watch = tap.take().map(|t| Watch::stream(t, late_until)),
                AmdMode::ModAmd | AmdMode::Avmd if late_avmd => {
                    watch = Some(Watch::avmd(session, late_until).await?);
                }
                _ => {}
            }
            if watch.is_some() {
                tracing::debug!(campana = %campaign.nombre, %uuid,
                    hasta_ms = late_until.saturating_duration_since(Instant::now()).as_millis() as u64,
                    "se escucha un posible pitido de contestador durante el mensaje");
            }
        }
        if result != CallResult::Maquina {
            // The stream kept for a watch that did not start (its window closed meanwhile).
            if let Some(t) = tap.take() {
                t.close(session).await?;
            }
        }
        let ending = match message {
            None => {
                let destination = match result {
                    CallResult::Maquina => &campaign.destino_maquina,
                    _ => &campaign.destino_humano,
                };
                disp.disposicion = if destination.is_hangup() && result == CallResult::Maquina {
                    Disposition::SinMensaje
                } else {
                    Disposition::Entregada
                };
                Ending::Transfer(destination.clone())
            }
            Some(message) => {
                let mut run = ScriptRun {
                    session: &mut *session,
                    campaign,
                    dialer: &self.dialer,
                    settings: &self.settings,
                    uuid,
                    disp: disp.clone(),
                    tap,
                    watch,
                    amd_raw: raw.clone(),
                };
                let r = match result {
                    CallResult::Maquina => run.machine(&message, beep).await,
                    _ => run.person(&message).await,
                };
                *disp = run.disp;
                r?
            }
        };

        tracing::info!(campana = %campaign.nombre, %uuid, disposicion = %disp.disposicion,
            teclas = %disp.teclas, fin = ?ending, "llamada entregada");
        tracker.event(CallEvent::Disposition {
            uuid,
            disposition: disp.clone(),
        });
        tracker.event(CallEvent::ControlEnded {
            uuid,
            outcome: ControlOutcome::Delivered,
        });
        match ending {
            Ending::Transfer(e) if !e.is_hangup() => {
                session.execute("transfer", &transfer_arg(&e)).await?;
            }
            Ending::Transfer(_) | Ending::Hangup => session.hangup("NORMAL_CLEARING").await?,
            Ending::Bridged => {}
        }
        Ok(())
    }

    /// What the call is, as far as detection got before it was cut short: `amd_result` if the
    /// application set it, else NOTSURE (the campaign's rule).
    fn verdict_so_far(&self, session: &OutboundSession, campaign: &Campaign) -> AmdVerdict {
        let raw = match campaign.amd {
            AmdMode::Ninguno => "NONE".to_owned(),
            AmdMode::ModAmd => session
                .variable("amd_result")
                .filter(|r| matches!(*r, "HUMAN" | "MACHINE" | "NOTSURE"))
                .unwrap_or("NOTSURE")
                .to_owned(),
            AmdMode::Avmd | AmdMode::Integrado => "NOTSURE".to_owned(),
        };
        AmdVerdict {
            result: verdict(&raw, campaign.amd_incierto),
            raw,
            cause: Some("HANGUP".to_owned()),
        }
    }

    /// `mod_amd`: the `amd` application returns once it decided; its verdict is in `amd_result`.
    /// A timeout or an error of the application itself is NOTSURE (the campaign's rule) with that
    /// cause; the channel hanging up is not a verdict (the caller decides what it means).
    async fn mod_amd(
        &self,
        session: &mut OutboundSession,
    ) -> Result<(String, Option<String>), ControlError> {
        match tokio::time::timeout(self.settings.amd_timeout, session.execute("amd", "")).await {
            Ok(Ok(_)) => Ok((
                session
                    .variable("amd_result")
                    .unwrap_or("NOTSURE")
                    .to_owned(),
                session.variable("amd_cause").map(str::to_owned),
            )),
            Ok(Err(e @ (EslError::HungUp(_) | EslError::Disconnected | EslError::Io(_)))) => {
                Err(e.into())
            }
            Ok(Err(e)) => {
                tracing::warn!(uuid = %session.uuid(), error = %e, "AMD falló; se aplica la regla de NOTSURE");
                Ok(("NOTSURE".to_owned(), Some("ERROR".to_owned())))
            }
            Err(_) => Ok(("NOTSURE".to_owned(), Some("TIMEOUT".to_owned()))),
        }
    }

    /// The service's own detector on the call's audio (`listening`: the stream, if already asked
    /// for). The stream stays open (returned) only when a machine's message waits for the beep,
    /// which the same stream then listens for, or when a person's verdict is watched for a late
    /// beep (`watch`).
    async fn integrado(
        &self,
        session: &mut OutboundSession,
        campaign: &Campaign,
        listening: Option<AudioTap>,
        watch: bool,
    ) -> Result<(String, Option<String>, Option<AudioTap>), ControlError> {
        let mut tap = match listening {
            Some(tap) => tap,
            None => AudioTap::open(session).await?,
        };
        let d = match tap.verdict(session, &campaign.amd_integrado).await? {
            Detection::Decided(d) => d,
            Detection::Sit(s) => {
                tracing::info!(campana = %campaign.nombre, uuid = %session.uuid(),
                    frecuencias_hz = ?s.frequencies_hz, audio_ms = s.at_ms,
                    "tono SIT: la red anuncia que el número no existe");
                tap.close(session).await?;
                return Ok((SIT.to_owned(), Some(SIT.to_owned()), None));
            }
        };
        let raw = d.verdict.as_str().to_owned();
        tracing::debug!(uuid = %session.uuid(), amd = %raw, causa = d.cause, audio_ms = d.at_ms,
            "detector integrado");
        let machine = verdict(&raw, campaign.amd_incierto) == CallResult::Maquina;
        let keep = if machine {
            // A verdict on the beep itself: it is over, nothing more to listen for.
            d.cause != amd::cause::BEEP && campaign.guion.message_after_beep()
        } else {
            watch
        };
        if keep {
            Ok((raw, Some(d.cause.to_owned()), Some(tap)))
        } else {
            tap.close(session).await?;
            Ok((raw, Some(d.cause.to_owned()), None))
        }
    }

    /// Whether the switch carrying call `uuid` has mod_avmd loaded (as it said at its last
    /// connection). Not known (no answer yet, or a call whose node is unknown among several):
    /// no.
    async fn avmd_loaded(&self, uuid: Uuid) -> bool {
        let pool = self.dialer.pool();
        let modules = match self.dialer.tracker().node(uuid).await {
            Some(nodo) => pool.get(&nodo).map(|n| n.modules()),
            None if pool.nodes().len() == 1 => Some(pool.first().modules()),
            None => None,
        };
        modules.is_some_and(|m| m.mod_avmd == Some(true))
    }

    /// `mod_avmd`: start beep detection and listen for this channel's `avmd::beep` within the
    /// window; none means a person. Returns when the beep was heard (a machine's message goes
    /// right after it).
    async fn avmd(
        &self,
        session: &mut OutboundSession,
    ) -> Result<(String, Option<String>, Option<Instant>), ControlError> {
        session.execute("avmd_start", "").await?;
        let beep = wait_beep(session, self.settings.avmd_window).await?;
        session.execute("avmd_stop", "").await?;
        Ok(match beep {
            Some(at) => ("MACHINE".to_owned(), Some("BEEP".to_owned()), Some(at)),
            None => ("HUMAN".to_owned(), Some("NO_BEEP".to_owned()), None),
        })
    }
}

/// Time since FreeSWITCH answered the call (`Caller-Channel-Answered-Time`, µs since the epoch,
/// from the connect reply): what the called party waited for the verdict. `None` when the switch
/// did not say, or the clocks disagree.
fn since_answer(session: &OutboundSession) -> Option<std::time::Duration> {
    let answered_us: u64 = session
        .channel_data()
        .get("Caller-Channel-Answered-Time")?
        .parse()
        .ok()
        .filter(|us| *us > 0)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    now.checked_sub(std::time::Duration::from_micros(answered_us))
}

/// HUMAN / MACHINE / SIT (an invalid number) / anything else (NOTSURE, a failed AMD) → the
/// campaign's rule.
pub fn verdict(raw: &str, notsure: AmdNotSure) -> CallResult {
    match raw {
        "HUMAN" | "NONE" => CallResult::Humano,
        "MACHINE" => CallResult::Maquina,
        SIT => CallResult::NumeroInvalido,
        _ => match notsure {
            AmdNotSure::Humano => CallResult::Humano,
            AmdNotSure::Maquina => CallResult::Maquina,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict("HUMAN", AmdNotSure::Maquina), CallResult::Humano);
        assert_eq!(verdict("NONE", AmdNotSure::Maquina), CallResult::Humano);
        assert_eq!(verdict("MACHINE", AmdNotSure::Humano), CallResult::Maquina);
        assert_eq!(verdict("NOTSURE", AmdNotSure::Humano), CallResult::Humano);
        assert_eq!(verdict("NOTSURE", AmdNotSure::Maquina), CallResult::Maquina);
        assert_eq!(verdict("garbage", AmdNotSure::Humano), CallResult::Humano);
        assert_eq!(
            verdict("SIT", AmdNotSure::Maquina),
            CallResult::NumeroInvalido
        );
    }
}
