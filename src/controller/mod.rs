//! The outbound-socket call controller: what happens to each answered leg.
//!
//! FreeSWITCH runs the dialplan entry `discador` (see `freeswitch-conf/dialplan/discador.xml`) for
//! every answered call, whose `socket` application connects here. For each connection:
//!
//! 1. read the channel data (`connect`): our `discador_campana`, `discador_numero`,
//!    `discador_intento` variables and the call's UUID;
//! 2. `myevents` (only this call's events) and `linger` (keep the socket through the hangup);
//! 3. answering-machine detection by the campaign's `amd` mode — `ninguno` (a person), `mod_amd`
//!    (the `amd` application sets `amd_result` HUMAN / MACHINE / NOTSURE and `amd_cause`), `avmd`
//!    (a beep within the window means a machine);
//! 4. NOTSURE (and an AMD that failed or timed out) goes where the campaign says, by default to the
//!    human destination: hanging up on a person is the costly mistake;
//! 5. set `discador_resultado`, `discador_amd_resultado`, `discador_amd_causa` on the channel (for
//!    the dialplan and the CDR) and tell the tracker the verdict directly;
//! 6. transfer to the campaign's `destino_humano` / `destino_maquina` in context `discador`, or hang
//!    up when the machine destination is empty.
//!
//! Every step is bounded by a timeout, and the dialplan hangs up the call if the socket ends without
//! a transfer, so a controller failure never leaves a call hanging.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::dialer::tracker::{AmdVerdict, CallEvent};
use crate::dialer::Dialer;
use crate::domain::{AmdMode, AmdNotSure, CallResult};
use crate::esl::{EslError, OutboundSession};
use crate::store::Campaign;

/// The dialplan context every destination lives in.
pub const CONTEXT: &str = "discador";

/// Timing of the controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Longest wait for `mod_amd`'s verdict.
    pub amd_timeout: Duration,
    /// How long `avmd` listens for a beep before deciding it is a person.
    pub avmd_window: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            amd_timeout: Duration::from_secs(10),
            avmd_window: Duration::from_secs(15),
        }
    }
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

    /// Drives one answered call to its destination.
    pub async fn handle(self, mut session: OutboundSession) {
        let uuid_text = session.uuid().to_owned();
        let Ok(uuid) = Uuid::parse_str(&uuid_text) else {
            tracing::warn!(uuid = %uuid_text, "conexión de socket sin UUID válido");
            return;
        };
        let Some(name) = session.variable("discador_campana").map(str::to_owned) else {
            // Not one of ours: give the call back to the dialplan untouched.
            tracing::warn!(%uuid, "llamada sin discador_campana en el socket; se devuelve al dialplan");
            let _ = session.exit().await;
            return;
        };
        let campaign = match self.campaign(&name).await {
            Some(c) => c,
            None => {
                tracing::warn!(%uuid, campana = %name, "campaña desconocida en el socket; se cuelga");
                let _ = session.hangup("NORMAL_CLEARING").await;
                return;
            }
        };
        if let Err(e) = self.drive(&mut session, uuid, &campaign).await {
            tracing::warn!(campana = %name, %uuid, error = %e, "control de llamada interrumpido");
            return;
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

    async fn drive(
        &self,
        session: &mut OutboundSession,
        uuid: Uuid,
        campaign: &Campaign,
    ) -> Result<(), EslError> {
        session.myevents().await?;
        session.linger().await?;

        let (raw, cause) = match campaign.amd {
            AmdMode::Ninguno => ("NONE".to_owned(), None),
            AmdMode::ModAmd => self.mod_amd(session).await?,
            AmdMode::Avmd => self.avmd(session).await?,
        };
        let result = verdict(&raw, campaign.amd_incierto);
        session
            .set_var("discador_resultado", result.as_str())
            .await?;
        session.set_var("discador_amd_resultado", &raw).await?;
        if let Some(c) = &cause {
            session.set_var("discador_amd_causa", c).await?;
        }
        self.dialer.tracker().event(CallEvent::Amd {
            uuid,
            verdict: AmdVerdict {
                result,
                raw: raw.clone(),
                cause,
            },
        });

        let destination = match result {
            CallResult::Maquina => &campaign.destino_maquina,
            _ => &campaign.destino_humano,
        };
        tracing::info!(campana = %campaign.nombre, %uuid, amd = %raw, resultado = %result, destino = %destination.as_str(), "llamada contestada");
        if destination.is_hangup() {
            session.hangup("NORMAL_CLEARING").await?;
        } else {
            session
                .execute(
                    "transfer",
                    &format!("{} XML {CONTEXT}", destination.as_str()),
                )
                .await?;
        }
        Ok(())
    }

    /// `mod_amd`: the `amd` application returns once it decided; its verdict is in `amd_result`.
    async fn mod_amd(
        &self,
        session: &mut OutboundSession,
    ) -> Result<(String, Option<String>), EslError> {
        match tokio::time::timeout(self.settings.amd_timeout, session.execute("amd", "")).await {
            Ok(Ok(_)) => Ok((
                session
                    .variable("amd_result")
                    .unwrap_or("NOTSURE")
                    .to_owned(),
                session.variable("amd_cause").map(str::to_owned),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(("NOTSURE".to_owned(), Some("TIMEOUT".to_owned()))),
        }
    }

    /// `mod_avmd`: start beep detection and listen for `avmd::beep` within the window.
    async fn avmd(
        &self,
        session: &mut OutboundSession,
    ) -> Result<(String, Option<String>), EslError> {
        session.execute("avmd_start", "").await?;
        let deadline = tokio::time::Instant::now() + self.settings.avmd_window;
        let beep = loop {
            match tokio::time::timeout_at(deadline, session.next_event()).await {
                Err(_) => break false,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(ev)) => {
                    if ev.get("Event-Subclass") == Some("avmd::beep") {
                        break true;
                    }
                }
            }
        };
        session.execute("avmd_stop", "").await?;
        Ok(if beep {
            ("MACHINE".to_owned(), Some("BEEP".to_owned()))
        } else {
            ("HUMAN".to_owned(), Some("NO_BEEP".to_owned()))
        })
    }
}

/// HUMAN / MACHINE / anything else (NOTSURE, a failed AMD) → the campaign's rule.
pub fn verdict(raw: &str, notsure: AmdNotSure) -> CallResult {
    match raw {
        "HUMAN" | "NONE" => CallResult::Humano,
        "MACHINE" => CallResult::Maquina,
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
    }
}
