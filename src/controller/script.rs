//! The campaign's script on an answered call, after the verdict: the message and its menu for a
//! person, the voicemail drop for a machine, the bridge to agents with the abandon rule, the
//! opt-out.
//!
//! Every step waits on the switch's own events (a `playback`'s CHANNEL_EXECUTE_COMPLETE, `DTMF`,
//! `CHANNEL_BRIDGE`, `avmd::beep`) and ends at the hangup ([`EslError::HungUp`]); no step waits
//! unbounded. [`ScriptRun::disp`] is always what the call's disposition would be if it ended right
//! now, so a hangup at any point leaves the right one (a person who hangs up during the message is
//! `COLGO_EN_MENSAJE`, after it `ESCUCHO`, waiting for an agent `ABANDONADA`).
//!
//! While a late-beep watch is on ([`super::late_beep`]), the person's message and the menu's wait
//! also listen for a voicemail beep; one ends the message at once and the machine's script runs
//! from after it ([`ScriptRun::late_beep`]).

use std::time::Duration;

use tokio::time::Instant;

use super::late_beep::{
    displace_event, is_avmd_beep, Displace, Heard, Watch, DISPLACE_START, LATE_BEEP,
};
use super::listen::{AudioTap, BeepWait};
use super::{ControlError, ControllerSettings, CONTEXT};
use crate::dialer::tracker::{AmdVerdict, CallEvent};
use crate::dialer::Dialer;
use crate::domain::{
    mask, AudioPath, CallDisposition, CallResult, DialTarget, Disposition, Extension, MenuAction,
    PhoneNumber, TransferTarget, Voicemail,
};
use crate::esl::{EslError, Event, OutboundSession};
use crate::store::Campaign;

/// How long a playback cut with `uuid_break` may take to say it ended.
const BREAK_LIMIT: Duration = Duration::from_secs(5);

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
    /// The late-beep watch over the person's message and menu (`None`: off, or over).
    pub watch: Option<Watch>,
    /// The verdict's raw value (HUMAN, NOTSURE), for the log of a correction.
    pub amd_raw: String,
}

/// What detection already knows of a machine's beep.
#[derive(Debug, Clone, Copy)]
pub enum Beep {
    /// mod_avmd heard it (about 0.2 s into it: its end is still to come).
    Heard(Instant),
    /// It has ended (a late beep: heard during the person's message): the message goes now.
    Ended(Instant),
}

/// What one `playback` did.
struct Played {
    /// The key that cut it short (one of `playback_terminators`).
    key: Option<char>,
    /// A late beep cut it short (the watch's), at this instant.
    beep: Option<Instant>,
}

/// What the menu's wait for a key got.
enum Waited {
    Key(char),
    Nothing,
    /// A late beep (the watch's), at this instant.
    Beep(Instant),
}

impl ScriptRun<'_> {
    /// A person: the message, then the menu (or, without one, the campaign's destination). With
    /// a late-beep watch, a beep during them makes the call a machine ([`ScriptRun::late_beep`]).
    pub async fn person(&mut self, message: &AudioPath) -> Result<Ending, ControlError> {
        let ending = self.person_script(message).await?;
        // The watch ends with the person's script, whatever comes next.
        self.end_watch().await?;
        Ok(ending)
    }

    async fn person_script(&mut self, message: &AudioPath) -> Result<Ending, ControlError> {
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
            let played = self.play_message(message).await?;
            if let Some(at) = played.beep {
                return self.late_beep(at).await;
            }
            if played.key.is_none() {
                self.disp.disposicion = Disposition::Escucho;
            }
            let Some(menu) = menu else { break };
            let key = match played.key {
                Some(k) => Some(k),
                None => match self.wait_key(menu).await? {
                    Waited::Key(k) => Some(k),
                    Waited::Nothing => None,
                    Waited::Beep(at) => return self.late_beep(at).await,
                },
            };
            let Some(action) = key.and_then(|k| menu.opciones.get(&k)) else {
                continue;
            };
            // A person chose: nothing after this is a machine's beep.
            self.end_watch().await?;
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
        let beep = match (guion.buzon, beep) {
            (Voicemail::NoDejar, _) => return Ok(Ending::Hangup),
            // A late beep: the greeting and its beep are over, the machine records now.
            (_, Some(Beep::Ended(at))) => Some(at),
            (Voicemail::TrasSaludo, _) => {
                self.greeting_end().await?;
                None
            }
            (Voicemail::TrasBeep, beep) => match (beep, self.tap.take()) {
                // The service's own detector hears the beep's end itself.
                (_, Some(mut tap)) => {
                    let end = tap.beep_end(self.session, self.settings.beep_window).await;
                    tap.close(self.session).await?;
                    match end? {
                        BeepWait::Beep(at) => Some(at),
                        // The greeting ended without a beep: the machine records already.
                        BeepWait::Silence => None,
                        BeepWait::Nothing => {
                            self.greeting_end().await?;
                            None
                        }
                    }
                }
                // avmd hears the beep before it ends: a message started at once would play
                // over its end, which the machine does not record.
                (Some(Beep::Heard(at) | Beep::Ended(at)), None) => {
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
        let queued = self.session.take_queued();
        self.played(file, &done, started, queued)
    }

    /// What a finished `playback` (`done`, its CHANNEL_EXECUTE_COMPLETE) did: the keys among
    /// `events` (those that came during it) and its terminator.
    fn played(
        &mut self,
        file: &AudioPath,
        done: &Event,
        started: Instant,
        events: Vec<Event>,
    ) -> Result<Played, ControlError> {
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
            Some(played_ms(done).unwrap_or_else(|| duration_ms(started.elapsed())));
        // The DTMF events arrived before the completion (FreeSWITCH fires DTMF when the digit is
        // queued, the playback stops after reading it).
        let mut key = None;
        for ev in events {
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
        Ok(Played { key, beep: None })
    }

    /// The person's message: played as usual, or, while a late-beep watch listens, displaced
    /// into the parked call (the stream's detector) or played under mod_avmd.
    async fn play_message(&mut self, file: &AudioPath) -> Result<Played, ControlError> {
        match &self.watch {
            Some(w) if w.listening() && w.on_stream() => self.play_displaced(file).await,
            Some(w) if w.listening() => self.play_under_avmd(file).await,
            _ => self.play(file).await,
        }
    }

    /// The person's message under mod_avmd: a `playback` followed by its events; an
    /// `avmd::beep` cuts it at once (`uuid_break`, on this socket: see [`super::late_beep`]).
    async fn play_under_avmd(&mut self, file: &AudioPath) -> Result<Played, ControlError> {
        let Some(mut watch) = self.watch.take() else {
            return self.play(file).await;
        };
        let r = self.play_watched_by_avmd(&mut watch, file).await;
        self.watch = Some(watch);
        r
    }

    async fn play_watched_by_avmd(
        &mut self,
        watch: &mut Watch,
        file: &AudioPath,
    ) -> Result<Played, ControlError> {
        self.discard_queued_keys();
        let started = Instant::now();
        let id = self.session.start("playback", file.as_str()).await?;
        let deadline = started + PLAYBACK_LIMIT;
        let mut seen = Vec::new();
        let done = loop {
            let heard = match watch.next(self.session, deadline).await {
                Ok(h) => h,
                Err(e) => {
                    self.disp.mensaje_ms = Some(duration_ms(started.elapsed()));
                    return Err(e);
                }
            };
            match heard {
                Heard::Event(ev) if OutboundSession::completes(&ev, &id) => break ev,
                Heard::Event(ev) => {
                    if dtmf(&ev).is_some() {
                        watch.stop_listening();
                        seen.push(ev);
                    }
                }
                Heard::Beep(at) => {
                    let done = self.break_playback(&id).await;
                    self.disp.mensaje_ms = Some(match &done {
                        Ok(done) => played_ms(done)
                            .unwrap_or_else(|| duration_ms(at.saturating_duration_since(started))),
                        Err(_) => duration_ms(at.saturating_duration_since(started)),
                    });
                    done?;
                    return Ok(Played {
                        key: None,
                        beep: Some(at),
                    });
                }
                Heard::Timeout => {
                    self.disp.mensaje_ms = Some(duration_ms(started.elapsed()));
                    return Err(EslError::Timeout(PLAYBACK_LIMIT).into());
                }
            }
        };
        self.played(file, &done, started, seen)
    }

    /// Cuts the running playback `id` short (`uuid_break <uuid>`: it sets the channel's break
    /// flag, which the playback reads on its next frame; the next application clears it, so a
    /// playback that ended meanwhile leaves nothing behind) and waits for its completion.
    async fn break_playback(&mut self, id: &str) -> Result<Event, ControlError> {
        let answer = self
            .session
            .api(&format!("uuid_break {}", self.session.uuid()))
            .await?;
        if !answer.trim_start().starts_with("+OK") {
            tracing::warn!(campana = %self.campaign.nombre, uuid = %self.uuid,
                respuesta = %answer.trim(), "uuid_break no cortó el mensaje");
        }
        let deadline = Instant::now() + BREAK_LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, self.session.next_event_until_hangup()).await {
                Err(_) => return Err(EslError::Timeout(BREAK_LIMIT).into()),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(ev)) if OutboundSession::completes(&ev, id) => return Ok(ev),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The person's message mixed into the parked call (`displace_session <file> m`), where the
    /// call's stream keeps flowing to the watch's detector. Only the menu's keys cut it short,
    /// as they do a `playback`; its end is the media bug's stop. A message that never starts (a
    /// file FreeSWITCH cannot open) is played as usual, and the watch ends.
    async fn play_displaced(&mut self, file: &AudioPath) -> Result<Played, ControlError> {
        let Some(mut watch) = self.watch.take() else {
            return self.play(file).await;
        };
        let r = self.play_watched_on_stream(&mut watch, file).await;
        match r {
            Ok(None) => {
                tracing::warn!(campana = %self.campaign.nombre, uuid = %self.uuid, archivo = %file,
                    "el mensaje no empezó sobre la llamada estacionada; se reproduce sin escuchar el pitido");
                watch.close(self.session).await?;
                self.play(file).await
            }
            r => {
                self.watch = Some(watch);
                r.map(|p| {
                    p.unwrap_or(Played {
                        key: None,
                        beep: None,
                    })
                })
            }
        }
    }

    /// [`ScriptRun::play_displaced`] with the watch; `None`: the message never started.
    async fn play_watched_on_stream(
        &mut self,
        watch: &mut Watch,
        file: &AudioPath,
    ) -> Result<Option<Played>, ControlError> {
        self.discard_queued_keys();
        // Relative paths are FreeSWITCH's sounds directory's, as for `playback` (displace's own
        // default is its base directory); the switch expands `${sounds_dir}`.
        let path = file.resolve("${sounds_dir}");
        let menu_keys: Vec<char> = self
            .campaign
            .guion
            .menu
            .as_ref()
            .map(|m| m.opciones.keys().copied().collect())
            .unwrap_or_default();
        let started = Instant::now();
        self.disp.mensaje_ms = Some(0);
        self.session
            .execute("displace_session", &format!("{path} m"))
            .await?;
        let mut running: Option<Instant> = None;
        loop {
            let deadline = match running {
                None => started + DISPLACE_START,
                Some(at) => at + PLAYBACK_LIMIT,
            };
            let since = running.unwrap_or(started);
            let heard = match watch.next(self.session, deadline).await {
                Ok(h) => h,
                Err(e) => {
                    self.disp.mensaje_ms = Some(duration_ms(since.elapsed()));
                    return Err(e);
                }
            };
            match heard {
                Heard::Event(ev) => {
                    if let Some(d) = dtmf(&ev) {
                        watch.stop_listening();
                        self.note_key(d);
                        if menu_keys.contains(&d) {
                            self.disp.mensaje_ms = Some(duration_ms(since.elapsed()));
                            self.stop_displace(&path).await?;
                            return Ok(Some(Played {
                                key: Some(d),
                                beep: None,
                            }));
                        }
                        continue;
                    }
                    match displace_event(&ev) {
                        Some(Displace::Started) if running.is_none() => {
                            running = Some(Instant::now());
                        }
                        // The message played whole (a stop before the start is an earlier one's).
                        Some(Displace::Stopped) if running.is_some() => {
                            self.disp.mensaje_ms = Some(duration_ms(since.elapsed()));
                            return Ok(Some(Played {
                                key: None,
                                beep: None,
                            }));
                        }
                        _ => {}
                    }
                }
                Heard::Beep(at) => {
                    self.disp.mensaje_ms = Some(duration_ms(at.saturating_duration_since(since)));
                    self.stop_displace(&path).await?;
                    return Ok(Some(Played {
                        key: None,
                        beep: Some(at),
                    }));
                }
                Heard::Timeout if running.is_none() => {
                    self.stop_displace(&path).await?;
                    return Ok(None);
                }
                Heard::Timeout => {
                    self.stop_displace(&path).await?;
                    self.disp.mensaje_ms = Some(duration_ms(since.elapsed()));
                    return Err(EslError::Timeout(PLAYBACK_LIMIT).into());
                }
            }
        }
    }

    async fn stop_displace(&mut self, path: &str) -> Result<(), ControlError> {
        self.session.execute("stop_displace_session", path).await?;
        Ok(())
    }

    /// Ends the late-beep watch, if one is on.
    async fn end_watch(&mut self) -> Result<(), ControlError> {
        match self.watch.take() {
            Some(w) => w.close(self.session).await,
            None => Ok(()),
        }
    }

    /// A late beep at `at`: the call was an answering machine. The verdict is corrected (the
    /// tracker first, so that a hangup from here on is recorded as a machine's), then the
    /// machine's script runs from after the beep: `mensaje_maquina` as `buzon` says (the beep
    /// is over: `tras_beep` and `tras_saludo` play it now, `no_dejar` hangs up), or, without
    /// one, the machine destination.
    async fn late_beep(&mut self, at: Instant) -> Result<Ending, ControlError> {
        let avmd = self.watch.as_ref().is_some_and(Watch::is_avmd);
        self.end_watch().await?;
        tracing::info!(campana = %self.campaign.nombre, uuid = %self.uuid,
            amd_inicial = %self.amd_raw, mensaje_ms = self.disp.mensaje_ms,
            "pitido de contestador durante el mensaje a la persona: la llamada es una máquina");
        self.dialer.tracker().event(CallEvent::AmdCorrected {
            uuid: self.uuid,
            verdict: AmdVerdict {
                result: CallResult::Maquina,
                raw: "MACHINE".to_owned(),
                cause: Some(LATE_BEEP.to_owned()),
            },
        });
        self.disp = CallDisposition::new(Disposition::SinMensaje);
        self.session
            .set_var("discador_amd_resultado", "MACHINE")
            .await?;
        self.session
            .set_var("discador_amd_causa", LATE_BEEP)
            .await?;
        self.session
            .set_var("discador_resultado", CallResult::Maquina.as_str())
            .await?;
        // mod_avmd hears a beep near its start: the machine records after its end.
        if avmd && self.campaign.guion.mensaje_maquina.is_some() {
            self.beep_end().await?;
        }
        match self.campaign.guion.mensaje_maquina.clone() {
            Some(m) => self.machine(&m, Some(Beep::Ended(at))).await,
            None => {
                let destination = self.campaign.destino_maquina.clone();
                if !destination.is_hangup() {
                    self.disp.disposicion = Disposition::Entregada;
                }
                Ok(Ending::Transfer(destination))
            }
        }
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
    /// With a late-beep watch on, a beep meanwhile ends the wait.
    async fn wait_key(&mut self, menu: &crate::domain::Menu) -> Result<Waited, ControlError> {
        let deadline = Instant::now() + Duration::from_secs(u64::from(menu.timeout));
        loop {
            let heard = match self.watch.as_mut() {
                Some(w) => w.next(self.session, deadline).await?,
                None => {
                    match tokio::time::timeout_at(deadline, self.session.next_event_until_hangup())
                        .await
                    {
                        Err(_) => Heard::Timeout,
                        Ok(Err(e)) => return Err(e.into()),
                        Ok(Ok(ev)) => Heard::Event(ev),
                    }
                }
            };
            match heard {
                Heard::Timeout => return Ok(Waited::Nothing),
                Heard::Beep(at) => return Ok(Waited::Beep(at)),
                Heard::Event(ev) => {
                    if let Some(d) = dtmf(&ev) {
                        if let Some(w) = self.watch.as_mut() {
                            w.stop_listening();
                        }
                        self.note_key(d);
                        if menu.opciones.contains_key(&d) {
                            return Ok(Waited::Key(d));
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
                if is_avmd_beep(&ev, &uuid) {
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
