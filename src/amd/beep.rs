//! Beep detection: the tone a voicemail plays right before it records.
//!
//! Each 20 ms frame is judged a "tone frame" when it is voice for the [`Vad`] (louder than the
//! line's noise floor), its frequency, estimated from interpolated zero crossings, lies in
//! 300–2500 Hz, and a Goertzel filter at that frequency holds at least 80 % of the frame's energy.
//! With a 20 ms window the filter's main lobe is about ±50 Hz wide, so "80 % at one frequency"
//! is the ±40 Hz narrow-band test: speech (many harmonics, moving pitch) and noise fail it. Tone
//! frames within ±40 Hz of the run's mean frequency form one tone; held ≥ 120 ms and then gone
//! for ≥ 40 ms, it is a beep. The end, not the start, is reported: that is when a message can be
//! played without being cut by the beep.

use super::vad::Vad;

const SAMPLE_RATE: f64 = 8000.0;
const SAMPLES_PER_MS: u64 = 8;
const MIN_HZ: f64 = 300.0;
const MAX_HZ: f64 = 2500.0;
/// Share of the frame's energy at the estimated frequency.
const MIN_PURITY: f64 = 0.8;
/// A beep's frames stay within this many hertz of each other (an oscillator: on the AMD
/// corpus's train and validation splits 223 of 230 beeps, through G.711 and lost packets, within
/// 5 Hz, while the voices' tone-like vowels drifted 11–90 Hz; two notes of synthetic music were
/// as steady).
const MAX_SPREAD_HZ: f64 = 5.0;
/// Frames within this distance of the tone's mean frequency continue it.
const SAME_TONE_HZ: f64 = 40.0;
const MIN_BEEP_SAMPLES: u64 = 120 * SAMPLES_PER_MS;
/// Silence (or anything not the tone) that ends a beep; a shorter gap, such as one damaged
/// packet, does not split it.
const END_GAP_SAMPLES: u64 = 40 * SAMPLES_PER_MS;
/// Frames shorter than this (10 ms) hold too few periods to judge; they extend whatever the
/// previous frame was.
const MIN_JUDGED_SAMPLES: usize = 80;
/// The level a tone must reach when the line is quiet (same as [`super::AmdParams`]' default).
const MIN_LEVEL: u16 = 256;

/// A beep that has ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beep {
    /// Mean frequency over the tone's frames.
    pub frequency_hz: f32,
    /// From the start of the first tone frame to the end of the last.
    pub duration_ms: u32,
    /// Audio time at which the tone stopped (the report comes 40 ms later).
    pub ended_at_ms: u32,
    /// Highest minus lowest frame frequency over the tone.
    pub spread_hz: f32,
}

/// One run of tone frames at a stable frequency, in samples since the start of the audio.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u64,
    end: u64,
    hz_sum: f64,
    frames: u32,
    /// Lowest and highest frame frequency: an oscillator's stay within a few hertz, a held
    /// vowel's drift with the voice.
    lo_hz: f64,
    hi_hz: f64,
}

impl Run {
    fn mean_hz(&self) -> f64 {
        self.hz_sum / f64::from(self.frames)
    }

    fn held(&self) -> u64 {
        self.end - self.start
    }

    fn to_beep(self) -> Option<Beep> {
        let steady = self.hi_hz - self.lo_hz <= MAX_SPREAD_HZ;
        (self.held() >= MIN_BEEP_SAMPLES && steady).then(|| Beep {
            frequency_hz: self.mean_hz() as f32,
            duration_ms: ms(self.held()),
            ended_at_ms: ms(self.end),
            spread_hz: (self.hi_hz - self.lo_hz) as f32,
        })
    }
}

fn ms(samples: u64) -> u32 {
    u32::try_from(samples / SAMPLES_PER_MS).unwrap_or(u32::MAX)
}

/// Streaming beep detector; feed it the same frames as the [`super::Detector`].
#[derive(Debug, Clone)]
pub struct BeepDetector {
    vad: Vad,
    elapsed: u64,
    run: Option<Run>,
    last_was_tone: bool,
}

impl Default for BeepDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl BeepDetector {
    pub fn new() -> Self {
        Self {
            vad: Vad::new(MIN_LEVEL),
            elapsed: 0,
            run: None,
            last_was_tone: false,
        }
    }

    /// Feeds one frame; returns the beep when one ends (tone held ≥ 120 ms, then gone ≥ 40 ms).
    pub fn feed(&mut self, frame: &[i16]) -> Option<Beep> {
        let mut found = None;
        for chunk in frame.chunks(160) {
            found = found.or(self.feed_chunk(chunk));
        }
        found
    }

    /// True while a tone has been held long enough to be a beep and its end is not yet confirmed.
    pub fn in_beep(&self) -> bool {
        self.run.is_some_and(|r| r.held() >= MIN_BEEP_SAMPLES)
    }

    fn feed_chunk(&mut self, chunk: &[i16]) -> Option<Beep> {
        let start = self.elapsed;
        self.elapsed += chunk.len() as u64;
        if chunk.len() < MIN_JUDGED_SAMPLES {
            if self.last_was_tone {
                if let Some(run) = self.run.as_mut() {
                    run.end = self.elapsed;
                }
            }
            return None;
        }
        let voiced = self.vad.classify(chunk);
        let tone_hz = if voiced { pure_tone_hz(chunk) } else { None };
        self.last_was_tone = tone_hz.is_some();
        match (tone_hz, self.run) {
            (Some(hz), Some(run))
                if (hz - run.mean_hz()).abs() <= SAME_TONE_HZ
                    && start - run.end < END_GAP_SAMPLES =>
            {
                self.run = Some(Run {
                    end: self.elapsed,
                    hz_sum: run.hz_sum + hz,
                    frames: run.frames + 1,
                    lo_hz: run.lo_hz.min(hz),
                    hi_hz: run.hi_hz.max(hz),
                    ..run
                });
                None
            }
            (Some(hz), previous) => {
                self.run = Some(Run {
                    start,
                    end: self.elapsed,
                    hz_sum: hz,
                    frames: 1,
                    lo_hz: hz,
                    hi_hz: hz,
                });
                previous.and_then(Run::to_beep)
            }
            (None, Some(run)) if self.elapsed - run.end >= END_GAP_SAMPLES => {
                self.run = None;
                run.to_beep()
            }
            (None, _) => None,
        }
    }
}

/// The frame's frequency if it is a pure tone in the beep band, else `None`.
fn pure_tone_hz(frame: &[i16]) -> Option<f64> {
    let n = frame.len() as f64;
    let mean = frame.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let x = |i: usize| f64::from(frame[i]) - mean;

    // Frequency from the first and last zero crossings, located by linear interpolation: exact
    // to a fraction of a hertz for a clean tone, meaningless (and then rejected below) otherwise.
    let (mut first, mut last, mut crossings) = (0.0, 0.0, 0u32);
    for i in 1..frame.len() {
        let (a, b) = (x(i - 1), x(i));
        if (a < 0.0) != (b < 0.0) {
            let at = (i - 1) as f64 + a / (a - b);
            if crossings == 0 {
                first = at;
            }
            last = at;
            crossings += 1;
        }
    }
    if crossings < 3 || last <= first {
        return None;
    }
    let hz = f64::from(crossings - 1) / 2.0 / (last - first) * SAMPLE_RATE;
    if !(MIN_HZ..=MAX_HZ).contains(&hz) {
        return None;
    }

    // Goertzel power at `hz`; for a pure tone filling the frame, 2·|X|²/(n·Σx²) = 1.
    let coeff = 2.0 * (std::f64::consts::TAU * hz / SAMPLE_RATE).cos();
    let (mut s1, mut s2, mut energy) = (0.0, 0.0, 0.0);
    for i in 0..frame.len() {
        let v = x(i);
        energy += v * v;
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let purity = 2.0 * power / (n * energy);
    (energy > 0.0 && purity >= MIN_PURITY).then_some(hz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amd::test_signals::{concat, noise, silence, speech_bursts, tone};

    fn beeps(samples: &[i16]) -> Vec<Beep> {
        let mut det = BeepDetector::new();
        samples.chunks(160).filter_map(|f| det.feed(f)).collect()
    }

    #[test]
    fn beep_of_1khz_after_a_greeting_is_reported_once_at_its_end() {
        // Beep from 2010 to 2610 ms: not aligned to the 20 ms frames.
        let audio = concat(&[
            speech_bursts(2000, 3),
            silence(10),
            tone(600, 1000.0, 8000),
            silence(500),
        ]);
        let mut det = BeepDetector::new();
        let mut found = Vec::new();
        for (i, frame) in audio.chunks(160).enumerate() {
            found.extend(det.feed(frame));
            if i * 20 == 2400 {
                assert!(det.in_beep(), "in_beep during the tone");
            }
        }
        assert!(!det.in_beep());
        assert_eq!(found.len(), 1, "{found:?}");
        let beep = found[0];
        assert!((beep.frequency_hz - 1000.0).abs() <= 20.0, "{beep:?}");
        assert!(beep.ended_at_ms.abs_diff(2610) <= 60, "{beep:?}");
        assert!((540..=600).contains(&beep.duration_ms), "{beep:?}");
    }

    #[test]
    fn beep_of_400hz_250ms_is_detected() {
        let found = beeps(&concat(&[
            silence(200),
            tone(250, 400.0, 6000),
            silence(300),
        ]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0].frequency_hz - 400.0).abs() <= 20.0, "{found:?}");
        assert!(found[0].ended_at_ms.abs_diff(450) <= 60, "{found:?}");
    }

    #[test]
    fn speech_and_white_noise_are_not_beeps() {
        assert_eq!(beeps(&speech_bursts(4000, 7)), vec![]);
        assert_eq!(beeps(&noise(4000, 12000, 5)), vec![]);
    }

    /// A held vowel can be as pure as a tone frame by frame, but its pitch drifts: a tone that
    /// glides 25 Hz over 300 ms is no beep, the same tone held steady is.
    #[test]
    fn a_drifting_tone_is_not_a_beep() {
        let glide: Vec<i16> = {
            let mut phase = 0.0f64;
            (0..300 * 8)
                .map(|i| {
                    let hz = 440.0 + 25.0 * f64::from(i) / 2400.0;
                    phase += std::f64::consts::TAU * hz / 8000.0;
                    (8000.0 * phase.sin()) as i16
                })
                .collect()
        };
        let audio = concat(&[silence(200), glide, silence(500)]);
        assert_eq!(beeps(&audio), vec![]);
        let steady = concat(&[silence(200), tone(300, 452.0, 8000), silence(500)]);
        let found = beeps(&steady);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].spread_hz <= 1.0, "{found:?}");
    }

    #[test]
    fn beep_of_80ms_is_too_short() {
        assert_eq!(
            beeps(&concat(&[
                silence(200),
                tone(80, 1000.0, 8000),
                silence(300)
            ])),
            vec![]
        );
    }

    #[test]
    fn tones_outside_the_band_are_not_beeps() {
        assert_eq!(
            beeps(&concat(&[tone(500, 200.0, 8000), silence(200)])),
            vec![]
        );
        assert_eq!(
            beeps(&concat(&[tone(500, 3000.0, 8000), silence(200)])),
            vec![]
        );
    }
}
