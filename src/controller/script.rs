//! The campaign's script on an answered call, after the verdict: the message and its menu for a
//! person, the voicemail drop for a machine, the bridge to agents with the abandon rule, the
//! opt-out.
//!
//! Every step waits on the switch's own events (a `playback`'s CHANNEL_EXECUTE_COMPLETE, `DTMF`,
//! `CHANNEL_BRIDGE`, `avmd::beep`) and ends at the hangup ([`EslError::HungUp`]); no step waits
//! unbounded. [`ScriptRun::disp`] is always what the call's disposition would be if it ended right
//! now, so a hangup at any point leaves the right one (a person who hangs up during the message is
//! `COLGO_EN_MENSAJE`, after it `ESCUCHO`, waiting for an agent `ABANDONADA`).

use std::time::Duration;

use tokio::time::Instant;

use super::listen::AudioTap;
use super::{ControlError, ControllerSettings, CONTEXT};
use crate::dialer::Dialer;
use crate::domain::{
    mask, AudioPath, CallDisposition, DialTarget, Disposition, Extension, MenuAction, PhoneNumber,
    TransferTarget, Voicemail,
};
use crate::esl::{Event, OutboundSession};
use crate::store::Campaign;

/// The longest message the controller waits for without an event (a survey's or an emergency
/// notice's recording may last minutes; the hangup ends the wait at once).
const PLAYBACK_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The most keys a call's disposition keeps.
const MAX_KEYS: usize = 32;

/// How the controller leaves the call once the script is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Transfer to an extension of context `discador` (empty: hang up).
    Transfer(Extension),
    /// Hang up (the message was left, the person opted out or was not connected).
    Hangup,
    /// The person talks with an agent: the bridge runs on in FreeSWITCH after the socket closes
    /// (the dialplan's `hangup_after_bridge=true` ends the call with it).
    Bridged,
}

/// One answered call's script run.
pub struct ScriptRun<'a> {
    pub session: &'a mut OutboundSession,
    pub campaign: &'a Campaign,
    pub dialer: &'a Dialer,
    pub settings: &'a ControllerSettings,
    pub uuid: uuid::Uuid,
    /// The disposition if the call ended now.
    pub disp: CallDisposition,
    /// The call's audio stream (`amd: integrado`), still open when a machine's message waits
    /// for the beep.
    pub tap: Option<AudioTap>,
}

/// What detection already knows of a machine's beep.
#[derive(Debug, Clone, Copy)]
pub enum Beep {
    /// mod_avmd heard it (about 0.2 s into it: its end is still to come).
    Heard(Instant),
}

/// What one `playback` did.
struct Played {
    /// The key that cut it short (one of `playback_terminators`).
    key: Option<char>,
}

impl ScriptRun<'_> {
    /// A person: the message, then the menu (or, without one, the campaign's destination).
    pub async fn person(&mut self, message: &AudioPath) -> Result<Ending, ControlError> {
        let guion = &self.campaign.guion;
        let menu = guion.menu.as_ref();
        // Only the menu's keys cut the message short (FreeSWITCH's default is `*`).
        let terminators = menu.map(|m| m.keys()).unwrap_or_else(|| "none".to_owned());
        self.session
            .set_var("playback_terminators", &terminators)
            .await?;
        let plays = menu.map_or(1, |m| m.intentos);
        for _ in 0..plays {
            if self.disp.disposicion != Disposition::Escucho {
                // Once heard whole, a hangup during a repeat does not undo it.
                self.disp.disposicion = Disposition::ColgoEnMensaje;
            }
            let played = self.play(message).await?;
            if played.key.is_none() {
                self.disp.disposicion = Disposition::Escucho;
            }
            let Some(menu) = menu else { break };
            let key = match played.key {
                Some(k) => Some(k),
                None => self.wait_key(menu).await?,
            };
            let Some(action) = key.and_then(|k| menu.opciones.get(&k)) else {
                continue;
            };
            self.disp.accion = Some(action.name());
            match action {
                MenuAction::Repetir => continue,
                MenuAction::NoLlamar => return self.opt_out().await,
                MenuAction::Transferir(TransferTarget::Extension(e)) => {
                    self.disp.disposicion = Disposition::Transferida;
                    self.disp.transferida_a = Some(e.as_str().to_owned());
                    return Ok(Ending::Transfer(e.clone()));
                }
                MenuAction::Transferir(TransferTarget::Agents(d)) => {
                    let d = d.clone();
                    return self.agents(&d).await;
                }
            }
        }
        Ok(match menu {
            None => Ending::Transfer(self.campaign.destino_humano.clone()),
            // A menu that got no valid key: the message was given, goodbye.
            Some(_) => Ending::Hangup,
        })
    }

    /// A machine: the message after the beep or the greeting, or nothing.
    pub async fn machine(
        &mut self,
        message: &AudioPath,
        beep: Option<Beep>,
    ) -> Result<Ending, ControlError> {
        self.disp.disposicion = Disposition::SinMensaje;
        let guion = &self.campaign.guion;
        let beep = match guion.buzon {
            Voicemail::NoDejar => return Ok(Ending::Hangup),
            Voicemail::TrasSaludo => {
                self.greeting_end().await?;
                None
            }
            Voicemail::TrasBeep => match (beep, self.tap.take()) {
                // The service's own detector hears the beep's end itself.
                (_, Some(mut tap)) => {
                    let end = tap.beep_end(self.session, self.settings.beep_window).await;
                    tap.close(self.session).await?;
                    let end = end?;
                    if end.is_none() {
                        self.greeting_end().await?;
                    }
                    end
                }
                // avmd hears the beep before it ends: a message started at once would play
                // over its end, which the machine does not record.
                (Some(Beep::Heard(at)), None) => {
                    self.beep_end().await?;
                    Some(at)
                }
                (None, None) => match self.beep().await? {
                    Some(at) => {
                        self.beep_end().await?;
                        Some(at)
                    }
                    // No beep within the limit: after the greeting's silence, as tras_saludo.
                    None => {
                        self.greeting_end().await?;
                        None
                    }
                },
            },
        };
        self.session.set_var("playback_terminators", "none").await?;
        let start = Instant::now();
        self.disp.tras_beep_ms = beep.map(|b| duration_ms(start - b) as i64);
        self.play(message).await?;
        self.disp.disposicion = Disposition::MensajeDejado;
        tracing::info!(campana = %self.campaign.nombre, uuid = %self.uuid,
            tras_beep_ms = self.disp.tras_beep_ms, "mensaje dejado en el contestador");
        Ok(Ending::Hangup)
    }

    /// Plays `file`; the hangup during it is `Err(HungUp)` with `mensaje_ms` set to what was
    /// played. A file the switch cannot play is an error of the script (the call is retried).
    async fn play(&mut self, file: &AudioPath) -> Result<Played, ControlError> {
        // Keys pressed before the message (during detection) do not answer its menu.
        self.discard_queued_keys();
        let started = Instant::now();
        let done = match self
            .session
            .execute_for("playback", file.as_str(), PLAYBACK_LIMIT)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                self.disp.mensaje_ms = Some(duration_ms(started.elapsed()));
                return Err(e.into());
            }
        };
        let response = done
            .variable("current_application_response")
            .or_else(|| done.application_response())
            .unwrap_or("");
        if response == "FILE NOT FOUND" || response == "PLAYBACK ERROR" {
            return Err(ControlError::Script(format!(
                "FreeSWITCH no pudo reproducir {file}: {response}"
            )));
        }
        self.disp.mensaje_ms =
            Some(played_ms(&done).unwrap_or_else(|| duration_ms(started.elapsed())));
        // The DTMF events arrived before the completion (FreeSWITCH fires DTMF when the digit is
        // queued, the playback stops after reading it).
        let mut key = None;
        for ev in self.session.take_queued() {
            if let Some(d) = dtmf(&ev) {
                self.note_key(d);
                key = key.or(Some(d));
            }
        }
        let terminator = done
            .variable("playback_terminator_used")
            .and_then(|t| t.chars().next());
        if let Some(t) = terminator {
            if key.is_none() {
                self.note_key(t);
            }
            key = Some(t);
        }
        Ok(Played { key })
    }

    /// Notes a pressed key; a caller who keeps pressing cannot grow the record past
    /// [`MAX_KEYS`] (the CDR column holds 32).
    fn note_key(&mut self, key: char) {
        if self.disp.teclas.len() < MAX_KEYS {
            self.disp.teclas.push(key);
        }
    }

    fn discard_queued_keys(&mut self) {
        for ev in self.session.take_queued() {
            if let Some(d) = dtmf(&ev) {
                self.note_key(d);
            }
        }
    }

    /// After the message: the first key of the menu within its timeout (other keys are noted and
    /// ignored).
    async fn wait_key(&mut self, menu: &crate::domain::Menu) -> Result<Option<char>, ControlError> {
        let deadline = Instant::now() + Duration::from_secs(u64::from(menu.timeout));
        loop {
            match tokio::time::timeout_at(deadline, self.session.next_event_until_hangup()).await {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(ev)) => {
                    if let Some(d) = dtmf(&ev) {
                        self.note_key(d);
                        if menu.opciones.contains_key(&d) {
                            return Ok(Some(d));
                        }
                    }
                }
            }
        }
    }

    /// `no_llamar`: the number goes into the DNC list now, then the person hears `mensaje_baja`.
    async fn opt_out(&mut self) -> Result<Ending, ControlError> {
        let raw = self.dialer.tracker().phone(self.uuid).await;
        match raw.as_deref().map(PhoneNumber::parse) {
            Some(Ok(phone)) => add_dnc(self.dialer, phone, &self.campaign.nombre).await,
            _ => tracing::error!(campana = %self.campaign.nombre, uuid = %self.uuid,
                "baja pedida pero el número de la llamada no se conoce; no se pudo agregar a la lista DNC"),
        }
        self.disp.disposicion = Disposition::Baja;
        if let Some(m) = self.campaign.guion.mensaje_baja.clone() {
            self.session.set_var("playback_terminators", "none").await?;
            self.play_after(&m).await?;
        }
        Ok(Ending::Hangup)
    }

    /// Bridges the person to agents; none answering within `espera_agente_s` (busy, none there,
    /// no answer) abandons the call: the person hears `mensaje_abandono`.
    async fn agents(&mut self, target: &DialTarget) -> Result<Ending, ControlError> {
        let wait = self.campaign.guion.espera_agente_s;
        self.disp.disposicion = Disposition::Abandonada;
        self.disp.transferida_a = Some(target.as_str().to_owned());
        self.disp.agente_contesto = Some(false);
        // The target is validated (no braces, commas, pipes or `$`): it is exactly one leg.
        let arg = format!(
            "{{leg_timeout={wait},ignore_early_media=true}}{}",
            target.as_str()
        );
        // Without it FreeSWITCH hangs the person up when no agent answers.
        self.session.set_var("continue_on_fail", "true").await?;
        // The person hears ringing, not silence, while the agents' phones ring.
        self.session
            .set_var("ringback", "%(2000,4000,440,480)")
            .await?;
        let started = Instant::now();
        let id = self.session.start("bridge", &arg).await?;
        // leg_timeout ends the attempt; the margin only bounds a switch that never says.
        let deadline = started + Duration::from_secs(u64::from(wait)) + Duration::from_secs(10);
        let failure = loop {
            let ev = match tokio::time::timeout_at(deadline, self.session.next_event_until_hangup())
                .await
            {
                Err(_) => break "sin respuesta del switch".to_owned(),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(ev)) => ev,
            };
            if ev.name() == Some("CHANNEL_BRIDGE") {
                self.disp.disposicion = Disposition::Transferida;
                self.disp.agente_contesto = Some(true);
                tracing::info!(campana = %self.campaign.nombre, uuid = %self.uuid,
                    agente = %target.as_str(), espera_ms = duration_ms(started.elapsed()),
                    "persona conectada con un agente");
                return Ok(Ending::Bridged);
            }
            if OutboundSession::completes(&ev, &id) {
                break ev
                    .variable("originate_disposition")
                    .unwrap_or("UNKNOWN")
                    .to_owned();
            }
        };
        tracing::info!(campana = %self.campaign.nombre, uuid = %self.uuid,
            agente = %target.as_str(), causa = %failure, espera_ms = duration_ms(started.elapsed()),
            "ningún agente contestó: llamada abandonada");
        if let Some(m) = self.campaign.guion.mensaje_abandono.clone() {
            self.session.set_var("playback_terminators", "none").await?;
            self.play_after(&m).await?;
        }
        Ok(Ending::Hangup)
    }

    /// A closing message (opt-out, abandon): its length is not the campaign message's.
    async fn play_after(&mut self, file: &AudioPath) -> Result<(), ControlError> {
        let heard = self.disp.mensaje_ms;
        let r = self.play(file).await;
        self.disp.mensaje_ms = heard;
        r.map(|_| ())
    }

    /// `mod_avmd` listens for the machine's beep, up to the controller's limit.
    async fn beep(&mut self) -> Result<Option<Instant>, ControlError> {
        self.session.execute("avmd_start", "").await?;
        let beep = wait_beep(self.session, self.settings.beep_window).await?;
        self.session.execute("avmd_stop", "").await?;
        Ok(beep)
    }

    /// Waits for the end of the beep: 80 ms of quiet (4 frames of 20 ms below energy 200), at most
    /// 2 s.
    /// (`detect_silence` returns at once; `wait_for_silence` waits 500 ms more after the silence.)
    async fn beep_end(&mut self) -> Result<(), ControlError> {
        self.session.execute("detect_silence", "200 3 2000").await?;
        Ok(())
    }

    /// Waits for the end of the greeting: a second of silence, at most the controller's limit.
    async fn greeting_end(&mut self) -> Result<(), ControlError> {
        let limit_ms = self.settings.greeting_limit.as_millis();
        // detect_silence <threshold> <silent frames> <timeout ms>: a second (50 frames of 20 ms)
        // below energy 200.
        self.session
            .execute("detect_silence", &format!("200 49 {limit_ms}"))
            .await?;
        Ok(())
    }
}

/// Listens for this channel's `avmd::beep` until `window` ends; the instant it was heard.
pub async fn wait_beep(
    session: &mut OutboundSession,
    window: Duration,
) -> Result<Option<Instant>, ControlError> {
    let deadline = Instant::now() + window;
    let uuid = session.uuid().to_owned();
    loop {
        match tokio::time::timeout_at(deadline, session.next_event_until_hangup()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(ev)) => {
                if ev.subclass() == Some("avmd::beep")
                    && ev.unique_id().is_none_or(|u| u.eq_ignore_ascii_case(&uuid))
                {
                    return Ok(Some(Instant::now()));
                }
            }
        }
    }
}

/// How much of the file reached the caller: `playback_last_offset_pos` (samples written to the
/// channel, at its write rate). Not `playback_ms`: that counts what was read from the file, and
/// FreeSWITCH reads ahead, so a message cut short by a key reports nearly its whole length.
fn played_ms(done: &Event) -> Option<u32> {
    let samples: u64 = done.variable("playback_last_offset_pos")?.parse().ok()?;
    let rate: u64 = done
        .variable("write_rate")
        .or_else(|| done.variable("read_rate"))
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(8000);
    u32::try_from(samples * 1000 / rate).ok()
}

/// The digit of a `DTMF` event.
fn dtmf(ev: &Event) -> Option<char> {
    if ev.name() != Some("DTMF") {
        return None;
    }
    ev.get("DTMF-Digit")
        .and_then(|d| d.chars().next())
        .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Puts an opted-out number into the DNC list. The database may be down for a moment: the opt-out
/// is a legal duty, so it is retried in the background (every 2 s, for 10 minutes) rather than lost.
async fn add_dnc(dialer: &Dialer, phone: PhoneNumber, campana: &crate::domain::CampaignName) {
    let store = dialer.store().clone();
    match store.add_dnc(std::slice::from_ref(&phone)).await {
        Ok(_) => {
            tracing::info!(%campana, telefono = %mask(phone.as_str()), "baja: número agregado a la lista DNC")
        }
        Err(e) => {
            tracing::warn!(%campana, telefono = %mask(phone.as_str()), error = %e,
                "baja: la lista DNC no se pudo escribir; se reintenta");
            let campana = campana.clone();
            tokio::spawn(async move {
                for _ in 0..300 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if store.add_dnc(std::slice::from_ref(&phone)).await.is_ok() {
                        tracing::info!(%campana, telefono = %mask(phone.as_str()), "baja: número agregado a la lista DNC");
                        return;
                    }
                }
                tracing::error!(%campana, telefono = %mask(phone.as_str()),
                    "baja: la lista DNC no se pudo escribir en 10 minutos; agréguelo a mano");
            });
        }
    }
}

/// The `transfer` argument of an extension of the campaign context.
pub fn transfer_arg(e: &Extension) -> String {
    format!("{} XML {CONTEXT}", e.as_str())
}
