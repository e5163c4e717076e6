//! The late beep: a HUMAN verdict (or a NOTSURE taken as a person) that an answering machine's
//! beep proves wrong while the person's message plays.
//!
//! A short voicemail greeting ("Buzón de voz." and silence) looks like a person to every
//! detector: a few words, then a pause. Its beep comes a second or two later, into the person's
//! message, and the mailbox records only the message's tail. So after a person's verdict, when
//! the campaign would treat a machine otherwise (its own message or destination:
//! [`crate::store::Campaign::watches_late_beep`]), the controller keeps listening for a beep
//! during the message and while the menu waits for a key, until `late_beep_window` after the
//! answer. A beep ends the message at once and the call becomes a machine (`LATE_BEEP`): its
//! script runs from after the beep. A key ends the watch: a person pressed it.
//!
//! How it listens, by the campaign's detector:
//! - `amd: integrado`: the call's own stream and the service's [`BeepDetector`]. The stream
//!   (`unicast`) is only sent while the call is parked in the `socket` application, and a
//!   `playback` both leaves the park and tears the stream down when it ends (FreeSWITCH 1.10.12,
//!   `switch_ivr_park` and `switch_ivr_play_file`). So the message is mixed into the parked call
//!   instead (`displace_session <file> m`), which needs the park to write frames
//!   (`send_silence_when_idle`, sent with the originate), and is stopped with
//!   `stop_displace_session`; its end is the `MEDIA_BUG_STOP` of function `displace`.
//! - `mod_amd` and `avmd`: mod_avmd, a media bug that hears the call during a `playback`
//!   (`avmd_start` before the message, `avmd::beep`, `avmd_stop` when the watch ends), where the
//!   switch has it loaded. The playback is cut with `uuid_break` sent as `api` on the call's own
//!   socket: it runs at once, while a `sendmsg` would wait behind the event-locked playback.

use std::time::Duration;

use tokio::time::Instant;

use super::listen::{AudioTap, Tapped};
use super::ControlError;
use crate::amd::BeepDetector;
use crate::esl::{EslError, Event, OutboundSession};

/// The `amd_causa` of a verdict corrected by a late beep.
pub const LATE_BEEP: &str = "LATE_BEEP";

/// The events a stream watch needs besides `myevents`' (which carries no media-bug event): the
/// start and end of the displaced message.
pub const MEDIA_BUG_EVENTS: [&str; 2] = ["MEDIA_BUG_START", "MEDIA_BUG_STOP"];

/// How long a displaced message may take to start (its `MEDIA_BUG_START`) before it is played
/// as an ordinary `playback` instead (a file FreeSWITCH could not open never starts).
pub const DISPLACE_START: Duration = Duration::from_millis(1_500);

/// What listens for the beep.
enum Listener {
    /// `amd: integrado`: the call's stream and the service's detector.
    Stream {
        tap: AudioTap,
        beeps: Box<BeepDetector>,
    },
    /// mod_avmd, started for the watch.
    Avmd,
}

/// What [`Watch::next`] got first.
#[derive(Debug)]
pub enum Heard {
    /// An event of the call.
    Event(Event),
    /// A voicemail beep, at this instant: its end for the stream's detector, about its start
    /// for mod_avmd.
    Beep(Instant),
    /// The caller's deadline passed.
    Timeout,
}

/// The late-beep watch of one call.
pub struct Watch {
    listener: Listener,
    /// The end of the window (`late_beep_window` after the answer).
    until: Instant,
    /// Still listening: no key was pressed.
    listening: bool,
}

impl Watch {
    /// Listens on the call's stream, already open (the detection's).
    pub fn stream(tap: AudioTap, until: Instant) -> Watch {
        Watch {
            listener: Listener::Stream {
                tap,
                beeps: Box::new(BeepDetector::new()),
            },
            until,
            listening: true,
        }
    }

    /// Starts mod_avmd on the call (its `avmd::beep` must be subscribed).
    pub async fn avmd(
        session: &mut OutboundSession,
        until: Instant,
    ) -> Result<Watch, ControlError> {
        session.execute("avmd_start", "").await?;
        Ok(Watch {
            listener: Listener::Avmd,
            until,
            listening: true,
        })
    }

    /// Whether it listens on the stream (the message must then be displaced, not played).
    pub fn on_stream(&self) -> bool {
        matches!(self.listener, Listener::Stream { .. })
    }

    /// Whether a beep heard now would still correct the verdict.
    pub fn listening(&self) -> bool {
        self.listening && Instant::now() < self.until
    }

    /// A key was pressed: a person. Nothing heard from now on is a beep.
    pub fn stop_listening(&mut self) {
        self.listening = false;
    }

    /// The next event of the call, a beep (while listening), or `deadline`, whichever comes
    /// first. The hangup is `Err(HungUp)`. A message may play for minutes without an event: the
    /// session's own idle limit is not an error here (`deadline` bounds the wait).
    pub async fn next(
        &mut self,
        session: &mut OutboundSession,
        deadline: Instant,
    ) -> Result<Heard, ControlError> {
        loop {
            match self.next_once(session, deadline).await {
                Err(ControlError::Esl(EslError::Timeout(_))) if Instant::now() < deadline => {}
                Err(ControlError::Esl(EslError::Timeout(_))) => return Ok(Heard::Timeout),
                r => return r,
            }
        }
    }

    async fn next_once(
        &mut self,
        session: &mut OutboundSession,
        deadline: Instant,
    ) -> Result<Heard, ControlError> {
        loop {
            let listening = self.listening();
            let until = if listening {
                deadline.min(self.until)
            } else {
                deadline
            };
            match &mut self.listener {
                Listener::Stream { tap, beeps } if listening => {
                    match tap.next(session, until).await? {
                        Tapped::Event(ev) => return Ok(Heard::Event(ev)),
                        Tapped::Timeout if Instant::now() >= deadline => return Ok(Heard::Timeout),
                        // The window closed: from now on only the call's events.
                        Tapped::Timeout => self.listening = false,
                        Tapped::Audio => {
                            while let Some(frame) = tap.pop_frame() {
                                if let Some(b) = beeps.feed(&frame) {
                                    tracing::info!(uuid = %session.uuid(),
                                        frecuencia_hz = b.frequency_hz, duracion_ms = b.duration_ms,
                                        "pitido de contestador durante el mensaje a la persona");
                                    return Ok(Heard::Beep(Instant::now()));
                                }
                            }
                        }
                    }
                }
                listener => {
                    let avmd = listening && matches!(listener, Listener::Avmd);
                    match tokio::time::timeout_at(until, session.next_event_until_hangup()).await {
                        Err(_) if Instant::now() >= deadline => return Ok(Heard::Timeout),
                        Err(_) => self.listening = false,
                        Ok(Err(e)) => return Err(e.into()),
                        Ok(Ok(ev)) if avmd && is_avmd_beep(&ev, session.uuid()) => {
                            tracing::info!(uuid = %session.uuid(),
                                "mod_avmd oyó un pitido de contestador durante el mensaje a la persona");
                            return Ok(Heard::Beep(Instant::now()));
                        }
                        Ok(Ok(ev)) => return Ok(Heard::Event(ev)),
                    }
                }
            }
        }
    }

    /// Whether mod_avmd listens (it must be stopped outside a playback: `avmd_stop` would wait
    /// behind it).
    pub fn is_avmd(&self) -> bool {
        matches!(self.listener, Listener::Avmd)
    }

    /// Ends the watch: stops the stream or mod_avmd. A call already gone needs nothing.
    pub async fn close(self, session: &mut OutboundSession) -> Result<(), ControlError> {
        match self.listener {
            Listener::Stream { tap, .. } => tap.close(session).await,
            Listener::Avmd => match session.execute("avmd_stop", "").await {
                Ok(_) | Err(EslError::HungUp(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Whether `ev` is mod_avmd's beep on the channel `uuid`.
pub fn is_avmd_beep(ev: &Event, uuid: &str) -> bool {
    ev.subclass() == Some("avmd::beep")
        && ev.unique_id().is_none_or(|u| u.eq_ignore_ascii_case(uuid))
}

/// What a media-bug event says of a displaced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Displace {
    Started,
    Stopped,
}

/// `MEDIA_BUG_START` / `MEDIA_BUG_STOP` of function `displace` (the only one the service adds;
/// mod_avmd's own bug is `avmd`).
pub fn displace_event(ev: &Event) -> Option<Displace> {
    if ev.get("Media-Bug-Function") != Some("displace") {
        return None;
    }
    match ev.name() {
        Some("MEDIA_BUG_START") => Some(Displace::Started),
        Some("MEDIA_BUG_STOP") => Some(Displace::Stopped),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displaced_messages_are_told_from_other_media_bugs() {
        let ev = |name: &str, function: &str| {
            Event::new(name).with("Media-Bug-Function", function).with(
                "Media-Bug-Target",
                "/usr/share/freeswitch/sounds/message.wav",
            )
        };
        assert_eq!(
            displace_event(&ev("MEDIA_BUG_START", "displace")),
            Some(Displace::Started)
        );
        assert_eq!(
            displace_event(&ev("MEDIA_BUG_STOP", "displace")),
            Some(Displace::Stopped)
        );
        assert_eq!(displace_event(&ev("MEDIA_BUG_STOP", "avmd")), None);
        assert_eq!(displace_event(&Event::new("DTMF")), None);
    }

    #[test]
    fn only_this_channels_avmd_beep_counts() {
        let beep = |uuid: &str| {
            Event::new("CUSTOM")
                .with("Event-Subclass", "avmd::beep")
                .with("Unique-ID", uuid)
        };
        assert!(is_avmd_beep(&beep("AB-1"), "ab-1"));
        assert!(!is_avmd_beep(&beep("other"), "ab-1"));
        assert!(!is_avmd_beep(&Event::new("DTMF"), "ab-1"));
    }
}
