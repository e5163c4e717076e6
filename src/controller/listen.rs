//! The call's own audio, for the service's detector (`amd: integrado`).
//!
//! FreeSWITCH streams the called party's audio to a UDP socket of this service (`sendmsg` with
//! `call-command: unicast`, measured at ~20 ms latency on the test bed): 20 ms packets in the
//! call's codec (`flags: native`) when it is G.711, 16-bit linear samples otherwise. The socket is
//! bound on the address the switch reached us at (the controller's TCP connection), so it works on
//! loopback and across a LAN alike, and only packets from the switch's address are read. The
//! detector ([`crate::amd`]) runs frame by frame; the stream is stopped (`nounicast`) as soon as
//! the service has heard what it needs. During detection the same frames also go to the SIT
//! detector ([`crate::amd::SitDetector`]): the network's tones before "the number you have
//! dialed is not in service" end detection at once.
//!
//! Every wait is bounded: no packet at all, packets nobody can read (wrong size, another sender),
//! or a stream that stops all end in the detector's decision on what it heard — NOTSURE when that
//! is nothing — by the end of the analysis time. The hangup ends every wait at once.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::ControlError;
use crate::amd::{
    alaw_to_linear, ulaw_to_linear, AmdParams, BeepDetector, Decision, Detector, Sit, SitDetector,
};
use crate::esl::{EslError, Event, OutboundSession};

/// The shortest tone taken for a voicemail's beep while a machine's message waits for it (the
/// corpus's beeps last 200 ms to 1 s; its greetings' held vowels and music notes, less).
const MIN_VOICEMAIL_BEEP_MS: u32 = 200;
/// While a machine's message waits for the beep, this much silence (in samples: 2 s, longer than
/// the pauses inside a greeting) means the greeting ended with no beep: a mailbox without one
/// records from there, and a message that waited on for the beep window would miss it.
const NO_BEEP_SILENCE_SAMPLES: usize = 2 * 8000;
/// A frame under this mean absolute amplitude is silence for that wait (the detector's default
/// `silence_threshold`).
const QUIET_LEVEL: u32 = 256;
/// A stream that delivered audio and then went silent this long is over.
const STALL: Duration = Duration::from_millis(1_000);
/// Samples per 20 ms frame at 8 kHz: what the detector is fed.
const FRAME: usize = 160;

/// How the switch's packets carry the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Ulaw,
    Alaw,
    /// 16-bit linear, little-endian (FreeSWITCH's host order on x86 and ARM), at `rate` Hz.
    Linear {
        rate: u32,
    },
}

/// Turns the switch's packets into 8 kHz samples for the detector.
///
/// One quirk of the switch is handled here. For a frame it generated itself (comfort noise: the
/// called party's packet did not arrive in time, typically the very first frame after the answer),
/// `unicast` sends the *decoded* frame's size in bytes of 0xFF, even with `flags: native`
/// (`switch_ivr_park`, FreeSWITCH 1.10.12). In G.711 that is twice the frame: 40 ms of audio for
/// 20 ms of time. And 0xFF is µ-law's zero but A-law's +848, which would be heard as a loud voiced
/// frame. Such a packet (all 0xFF, twice the size of the stream's real packets) is one frame of
/// silence.
#[derive(Debug)]
struct Decoder {
    encoding: Encoding,
    /// Size of the last real G.711 packet: a comfort-noise packet is twice this.
    packet_len: Option<usize>,
}

impl Decoder {
    fn new(encoding: Encoding) -> Self {
        Self {
            encoding,
            packet_len: None,
        }
    }

    /// Decodes one packet onto `out`; `false` for a packet that cannot be the call's audio
    /// (empty, over 100 ms, an odd number of bytes of linear audio).
    fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> bool {
        match self.encoding {
            Encoding::Ulaw | Encoding::Alaw if packet.is_empty() || packet.len() > 800 => false,
            Encoding::Ulaw | Encoding::Alaw if self.is_comfort_noise(packet) => {
                out.extend(std::iter::repeat_n(0, packet.len() / 2));
                true
            }
            Encoding::Ulaw => {
                self.packet_len = Some(packet.len());
                out.extend(packet.iter().map(|b| ulaw_to_linear(*b)));
                true
            }
            Encoding::Alaw => {
                self.packet_len = Some(packet.len());
                out.extend(packet.iter().map(|b| alaw_to_linear(*b)));
                true
            }
            Encoding::Linear { rate } => {
                let step = (rate / 8000).max(1) as usize;
                if packet.is_empty()
                    || !packet.len().is_multiple_of(2)
                    || packet.len() > 1600 * step
                {
                    return false;
                }
                // Higher rates are decimated to 8 kHz: the detector needs energy, not fidelity.
                out.extend(
                    packet
                        .chunks_exact(2)
                        .step_by(step)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
                true
            }
        }
    }

    /// A G.711 packet that is the switch's comfort-noise stand-in (see the type's doc): all
    /// 0xFF, and twice the stream's packet size (before any real packet: twice a 20 ms packet
    /// or more, which no real packet of this stream is).
    fn is_comfort_noise(&self, packet: &[u8]) -> bool {
        let doubled = match self.packet_len {
            Some(n) => packet.len() == 2 * n,
            None => packet.len() >= 2 * FRAME && packet.len().is_multiple_of(2),
        };
        doubled && packet.iter().all(|b| *b == 0xFF)
    }
}

/// How the wait for a machine's beep ended ([`AudioTap::beep_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeepWait {
    /// The beep ended at this instant.
    Beep(Instant),
    /// The line went silent after the greeting with no beep: the machine records now.
    Silence,
    /// The window ended or the stream stopped: nothing known.
    Nothing,
}

/// Mean absolute amplitude of a frame.
fn mean_abs(frame: &[i16]) -> u32 {
    let sum: u64 = frame.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    (sum / frame.len().max(1) as u64) as u32
}

/// What detection heard ([`AudioTap::verdict`]).
#[derive(Debug, Clone, Copy)]
pub enum Detection {
    /// The detector's decision.
    Decided(Decision),
    /// A Special Information Tone before the decision: the network answered, not the callee.
    Sit(Sit),
}

/// What [`AudioTap::next`] got first.
#[derive(Debug)]
pub enum Tapped {
    /// Audio: whole 20 ms frames wait in [`AudioTap::pop_frame`] (perhaps none yet).
    Audio,
    /// An event of the call (the hangup is `Err(HungUp)` instead).
    Event(Event),
    /// Nothing by the deadline.
    Timeout,
}

/// The audio stream of one call.
pub struct AudioTap {
    socket: UdpSocket,
    /// Where the switch sends from (its address on the controller's connection).
    switch_ip: std::net::IpAddr,
    decoder: Decoder,
    started: Instant,
    /// Decoded samples not yet fed (packets need not be exactly 20 ms).
    pending: Vec<i16>,
    /// Packets the stream delivered, for the log.
    packets: u64,
}

impl AudioTap {
    /// Binds a socket on the address the switch reached us at and asks the switch to stream the
    /// call's audio to it.
    pub async fn open(session: &mut OutboundSession) -> Result<AudioTap, ControlError> {
        let ours = SocketAddr::new(session.local_addr().ip(), 0);
        let socket = UdpSocket::bind(ours).await.map_err(EslError::Io)?;
        let remote = socket.local_addr().map_err(EslError::Io)?;
        let switch_ip = session.peer().ip();
        let data = session.channel_data();
        let codec = data
            .get("Channel-Read-Codec-Name")
            .unwrap_or("")
            .to_ascii_uppercase();
        let rate: u32 = data
            .get("Channel-Read-Codec-Rate")
            .and_then(|r| r.parse().ok())
            .unwrap_or(8000);
        let encoding = match codec.as_str() {
            "PCMU" => Encoding::Ulaw,
            "PCMA" => Encoding::Alaw,
            _ => Encoding::Linear { rate },
        };
        let native = !matches!(encoding, Encoding::Linear { .. });
        // Port 0 on the switch's side: it picks a free one (several calls stream at once).
        session
            .unicast(SocketAddr::new(switch_ip, 0), remote, native)
            .await?;
        Ok(AudioTap {
            socket,
            switch_ip,
            decoder: Decoder::new(encoding),
            started: Instant::now(),
            pending: Vec::with_capacity(FRAME * 4),
            packets: 0,
        })
    }

    /// Feeds the detector until it decides, and the SIT detector the same frames: a SIT heard
    /// first ends detection. Bounded by the analysis time (plus the stall margin): a stream that
    /// never starts or stops early ends in the detector's decision on what it heard.
    pub async fn verdict(
        &mut self,
        session: &mut OutboundSession,
        params: &AmdParams,
    ) -> Result<Detection, ControlError> {
        let mut detector = Detector::new(params.clone());
        let mut sit = SitDetector::new();
        let deadline = self.started + Duration::from_millis(u64::from(params.total_analysis_ms));
        let mut last_packet: Option<Instant> = None;
        loop {
            let stall_at = last_packet.map(|t| t + STALL);
            let until = stall_at.map_or(deadline, |s| s.min(deadline));
            let got = self.next_frames(session, until).await?;
            if !got {
                return Ok(Detection::Decided(detector.finish()));
            }
            last_packet = Some(Instant::now());
            while let Some(frame) = self.pop_frame() {
                if let Some(s) = sit.feed(&frame) {
                    return Ok(Detection::Sit(s));
                }
                if let Some(d) = detector.feed(&frame) {
                    return Ok(Detection::Decided(d));
                }
            }
        }
    }

    /// After a machine verdict: listens up to `window` for the end of its beep, the moment to
    /// leave a message. `None`: no beep heard (or the stream stopped).
    pub async fn beep_end(
        &mut self,
        session: &mut OutboundSession,
        window: Duration,
    ) -> Result<BeepWait, ControlError> {
        let mut beeps = BeepDetector::new();
        let deadline = Instant::now() + window;
        let mut last_packet = Instant::now();
        let mut quiet_frames = 0usize;
        loop {
            let until = (last_packet + STALL).min(deadline);
            if !self.next_frames(session, until).await? {
                return Ok(BeepWait::Nothing);
            }
            last_packet = Instant::now();
            while self.pending.len() >= FRAME {
                let beep = beeps.feed(&self.pending[..FRAME]);
                quiet_frames = if mean_abs(&self.pending[..FRAME]) < QUIET_LEVEL {
                    quiet_frames + 1
                } else {
                    0
                };
                self.pending.drain(..FRAME);
                if quiet_frames * FRAME >= NO_BEEP_SILENCE_SAMPLES {
                    // The greeting is over and no beep came: the machine records already.
                    return Ok(BeepWait::Silence);
                }
                // A tone shorter than a voicemail's beep is a held vowel or a note of the
                // greeting's music: a message started on it plays over the greeting.
                if let Some(b) = beep.filter(|b| b.duration_ms >= MIN_VOICEMAIL_BEEP_MS) {
                    tracing::info!(uuid = %session.uuid(), frecuencia_hz = b.frequency_hz,
                        duracion_ms = b.duration_ms, "pitido del contestador");
                    return Ok(BeepWait::Beep(Instant::now()));
                }
            }
        }
    }

    /// Waits until `until` for the next usable packet of the stream or the next event of the
    /// call, whichever comes first, for a caller that listens while the call goes on (the late
    /// beep during a person's message, where a key or the message's end matter as much).
    pub async fn next(
        &mut self,
        session: &mut OutboundSession,
        until: Instant,
    ) -> Result<Tapped, ControlError> {
        let mut buf = [0u8; 2048];
        loop {
            let packet = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                ev = session.next_event_until_hangup() => return Ok(Tapped::Event(ev?)),
                () = tokio::time::sleep_until(until) => return Ok(Tapped::Timeout),
            };
            let Ok((n, from)) = packet else {
                continue;
            };
            if from.ip() != self.switch_ip {
                continue;
            }
            if self.decode(&buf[..n]) {
                self.packets += 1;
                return Ok(Tapped::Audio);
            }
        }
    }

    /// The next whole 20 ms frame of what [`AudioTap::next`] received, if one is complete.
    pub fn pop_frame(&mut self) -> Option<[i16; FRAME]> {
        if self.pending.len() < FRAME {
            return None;
        }
        let mut frame = [0i16; FRAME];
        frame.copy_from_slice(&self.pending[..FRAME]);
        self.pending.drain(..FRAME);
        Some(frame)
    }

    /// Stops the stream.
    pub async fn close(self, session: &mut OutboundSession) -> Result<(), ControlError> {
        tracing::debug!(uuid = %session.uuid(), paquetes = self.packets, "fin del audio de la llamada");
        match session.nounicast().await {
            // The call already ended: the switch stopped the stream itself.
            Err(EslError::HungUp(_)) => Ok(()),
            r => r.map_err(ControlError::from),
        }
    }

    /// Waits for the next usable packet until `until` and decodes it into `pending`. `false`:
    /// nothing usable came in time. The hangup is `Err(HungUp)` at once; other events of the
    /// call are not waited for.
    async fn next_frames(
        &mut self,
        session: &mut OutboundSession,
        until: Instant,
    ) -> Result<bool, ControlError> {
        loop {
            match self.next(session, until).await? {
                Tapped::Audio => return Ok(true),
                Tapped::Event(_) => continue,
                Tapped::Timeout => return Ok(false),
            }
        }
    }

    /// Decodes one packet into `pending`; `false` for a packet that cannot be the call's audio.
    fn decode(&mut self, packet: &[u8]) -> bool {
        self.decoder.decode(packet, &mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(d: &mut Decoder, packet: &[u8]) -> Vec<i16> {
        let mut out = Vec::new();
        assert!(d.decode(packet, &mut out));
        out
    }

    /// The switch's own first frame (320 bytes of 0xFF for a 20 ms PCMA frame) is 20 ms of
    /// silence, not 40 ms of A-law's +848.
    #[test]
    fn a_comfort_noise_packet_is_one_frame_of_silence() {
        for encoding in [Encoding::Alaw, Encoding::Ulaw] {
            let mut d = Decoder::new(encoding);
            assert_eq!(decoded(&mut d, &[0xFF; 320]), vec![0; 160], "{encoding:?}");
            let speech: Vec<u8> = (0..160).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(decoded(&mut d, &speech).len(), 160);
            assert_eq!(decoded(&mut d, &[0xFF; 320]), vec![0; 160], "{encoding:?}");
        }
    }

    /// A real packet of µ-law's digital silence keeps its length, and A-law's 0xFF in a packet of
    /// the stream's own size is audio like any other.
    #[test]
    fn real_packets_keep_their_length() {
        let mut d = Decoder::new(Encoding::Ulaw);
        assert_eq!(decoded(&mut d, &[0xFF; 160]), vec![0; 160]);
        assert_eq!(decoded(&mut d, &[0xFF; 160]).len(), 160);
        let mut d = Decoder::new(Encoding::Alaw);
        assert_eq!(decoded(&mut d, &[0x55; 160]).len(), 160);
        assert_eq!(
            decoded(&mut d, &[0xFF; 160]),
            vec![alaw_to_linear(0xFF); 160]
        );
    }

    #[test]
    fn unreadable_packets_are_refused() {
        let mut out = Vec::new();
        let mut d = Decoder::new(Encoding::Ulaw);
        assert!(!d.decode(&[], &mut out));
        assert!(!d.decode(&[0x7F; 3000], &mut out));
        let mut d = Decoder::new(Encoding::Linear { rate: 16000 });
        assert!(!d.decode(&[1, 2, 3], &mut out));
        assert!(out.is_empty());
        assert_eq!(decoded(&mut d, &[1, 0, 2, 0, 3, 0, 4, 0]), vec![1, 3]);
    }
}
