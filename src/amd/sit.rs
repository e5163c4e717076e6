//! SIT detection: the Special Information Tone a carrier plays before a recorded announcement
//! ("the number you have dialed is not in service"), so a call answered by the network rather
//! than by the callee is known for what it is before the announcement's speech starts.
//!
//! The SIT is three rising tones, back to back, as carriers play them under two standards:
//! - ANSI T1.401 (North America): 913.8 Hz (low) or 985.2 Hz (high), then 1370.6 or 1428.5 Hz,
//!   then 1776.7 Hz; each segment 274 ms (short) or 380 ms (long), gaps of a few ms at most. The
//!   low/high and short/long choices encode the reason (vacant code, intercept, reorder, no
//!   circuit…); every combination is accepted, and the measured frequencies are reported.
//! - ITU-T E.180: 950, 1400 and 1800 Hz, each 330 ± 70 ms, up to 30 ms of silence between them.
//!
//! So a SIT is a tone in each of [`BANDS`] (880–1020, 1330–1470, 1730–1830 Hz), in that order.
//!
//! **Blocks.** The audio is analysed in 20 ms blocks (160 samples), whatever the packet size: a
//! filter's resolution is set by its window, so frames of 10 ms, 30 ms or odd lengths are
//! buffered into the same blocks (a fixed array, no allocation) and judged the same way.
//!
//! **A block is a tone** of band *b* at frequency *f* when, its mean removed:
//! 1. a bank of eight Goertzel filters on a 50 Hz grid over the three bands ([`GRID_HZ`]) peaks
//!    at a point of band *b*, holding at least [`MIN_GRID_PURITY`] of the block's energy (a
//!    cheap first cut: any in-band tone passes it, speech and noise rarely do);
//! 2. *f*, measured from the phase advance between the block's two 10 ms halves at that grid
//!    point, lies in band *b*;
//! 3. a Goertzel filter at *f* holds at least [`MIN_PURITY`] (80 %) of the block's energy: the
//!    "purity" test of `beep.rs`. A 20 ms window's main lobe is ±50 Hz wide, so this is the share
//!    of the energy within about ±40 Hz of *f*: speech (many harmonics), noise, chords and dual
//!    tones (DTMF: two equal tones hold 50 % each) fail it;
//! 4. the tone's amplitude is at least [`MIN_AMPLITUDE`] (−40 dBFS).
//!
//! Why not `beep.rs`'s zero crossings: they measure a tone about as well on a fair line (within
//! 2 Hz per block on a µ-law line at 20 dB SNR, against 1 Hz for the phase), but one spurious
//! crossing moves the estimate by a fortieth, some 25 Hz, and noisier lines make them: blocks
//! 55 Hz off at 10 dB SNR, where the phase stays within 4 Hz. That is the distance between ANSI's
//! low and high tones (58–71 Hz). The phase advance at the nearest grid point is unambiguous
//! within ±50 Hz of it and within 0.5 Hz on a clean tone (the spectrum's negative half leaks a
//! little into 10 ms windows). A bank dense enough to read the frequency at its peak would need
//! four times the filters; a wrong measurement (a tone off the grid, two tones) fails step 3,
//! which tests the block at the measured frequency itself.
//!
//! **A tone** is a run of tone blocks of one band within [`SAME_TONE_HZ`] of the run's mean
//! frequency. Up to three blocks (60 ms) without it do not break it: one lost packet straddles
//! two blocks, and a block that is less than 80 % one tone (where the tone starts, stops, or
//! gives way to the next) fails the purity test. It is held, from its first block's start to
//! its last block's end, [`MIN_TONE_MS`]–[`MAX_TONE_MS`] (200–450 ms: 274 to 400 ms less what the
//! 20 ms grid cuts at either end, plus margin).
//!
//! **The SIT**: a tone of band 1, then of band 2, then of band 3, each starting less than
//! [`MAX_GAP_MS`] after the previous one ended (on the grid, the same three blocks: ITU's 30 ms
//! pause and its partial blocks). A tone ends when another tone starts or after 80 ms without
//! it, so the SIT is reported when its third tone has ended: `at_ms` is about 80 ms after it
//! (less when the next tone follows at once). Any tone out of order, too short, too long or too
//! late drops the candidate, except that a valid first tone starts a new one: a repeated SIT
//! gets a second chance. Nothing else is remembered, and there is no time limit: the caller
//! stops feeding when a SIT no longer matters. It is reported once.

use std::f64::consts::{PI, TAU};
use std::sync::LazyLock;

const SAMPLE_RATE: f64 = 8000.0;
const SAMPLES_PER_MS: u64 = 8;
/// The analysis block, 20 ms.
const BLOCK: usize = 160;
/// Half a block: the two windows whose phase difference measures the frequency.
const HALF: usize = BLOCK / 2;

/// The three tones' bands, Hz (inclusive): ANSI's and ITU's frequencies with some margin.
const BANDS: [(f64, f64); 3] = [(880.0, 1020.0), (1330.0, 1470.0), (1730.0, 1830.0)];
/// The filter bank's frequencies: every point of a band is within 25 Hz of one of its own.
const GRID_HZ: [f64; 8] = [900.0, 950.0, 1000.0, 1350.0, 1400.0, 1450.0, 1755.0, 1805.0];
/// The band (index into [`BANDS`]) of each grid point.
const GRID_BAND: [usize; 8] = [0, 0, 0, 1, 1, 1, 2, 2];
/// Share of the block's energy at the best grid point. A tone 25 Hz off a grid point (the worst
/// case inside the bands) puts sinc²(½) ≈ 40 % of its energy there, 32 % for a block only 80 %
/// tone; blocks under this are not worth measuring.
const MIN_GRID_PURITY: f64 = 0.3;
/// Share of the block's energy at the measured frequency for a tone block.
const MIN_PURITY: f64 = 0.8;
/// Lowest tone amplitude: −40 dBFS, a sine whose peak is 1 % of full scale (about −37 dBm0).
const MIN_AMPLITUDE: f64 = 327.68;
/// A tone block further than this from the tone's mean frequency starts another tone.
const SAME_TONE_HZ: f64 = 20.0;
const MIN_TONE_MS: u32 = 200;
const MAX_TONE_MS: u32 = 450;
/// Less than this without the tone (on the 20 ms grid, up to three blocks) does not end it, and
/// the next tone must start less than this after the previous one ended.
const MAX_GAP_MS: u32 = 80;

const MIN_TONE: u64 = MIN_TONE_MS as u64 * SAMPLES_PER_MS;
const MAX_TONE: u64 = MAX_TONE_MS as u64 * SAMPLES_PER_MS;
const MAX_GAP: u64 = MAX_GAP_MS as u64 * SAMPLES_PER_MS;

/// A recognised SIT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sit {
    /// The three tones' measured frequencies, Hz.
    pub frequencies_hz: [f32; 3],
    /// Audio time (ms since the first frame) at which the SIT was recognised.
    pub at_ms: u32,
}

/// The bank's coefficients, computed once for every call (`cos` is not `const`).
struct Grid {
    /// `2·cos ω` per grid point, for the bank (f32: eight lanes, and plenty of precision to
    /// pick the peak).
    coeff: [f32; 8],
    /// `(cos ω, sin ω)` per grid point, for the measurement.
    cos_sin: [(f64, f64); 8],
}

static GRID: LazyLock<Grid> = LazyLock::new(|| {
    let omega = GRID_HZ.map(|hz| TAU * hz / SAMPLE_RATE);
    Grid {
        coeff: omega.map(|w| (2.0 * w.cos()) as f32),
        cos_sin: omega.map(|w| (w.cos(), w.sin())),
    }
});

/// One block judged a tone.
#[derive(Debug, Clone, Copy)]
struct Tone {
    band: usize,
    hz: f64,
}

/// A run of tone blocks of one band, in samples since the start of the audio.
#[derive(Debug, Clone, Copy)]
struct Run {
    band: usize,
    start: u64,
    end: u64,
    hz_sum: f64,
    blocks: u32,
}

impl Run {
    fn mean_hz(&self) -> f64 {
        self.hz_sum / f64::from(self.blocks)
    }

    fn continued_by(&self, tone: Tone, start: u64) -> bool {
        tone.band == self.band
            && (tone.hz - self.mean_hz()).abs() <= SAME_TONE_HZ
            && start - self.end < MAX_GAP
    }
}

fn ms(samples: u64) -> u32 {
    u32::try_from(samples / SAMPLES_PER_MS).unwrap_or(u32::MAX)
}

/// Streaming SIT detector for one call; feed it the same frames as the [`super::Detector`].
#[derive(Debug, Clone)]
pub struct SitDetector {
    /// The start of the next block, when a frame ended inside it.
    buf: [i16; BLOCK],
    buffered: usize,
    /// Samples of the blocks analysed so far.
    elapsed: u64,
    /// The tone being heard, if any (it may be in a gap of up to 60 ms).
    run: Option<Run>,
    /// The current candidate: how many of its tones have ended valid and in order, their mean
    /// frequencies, and where the last one ended.
    confirmed: usize,
    tones: [f32; 3],
    last_end: u64,
    recognised: bool,
}

impl Default for SitDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl SitDetector {
    pub fn new() -> Self {
        Self {
            buf: [0; BLOCK],
            buffered: 0,
            elapsed: 0,
            run: None,
            confirmed: 0,
            tones: [0.0; 3],
            last_end: 0,
            recognised: false,
        }
    }

    /// Feeds one frame (any length; normally 160 samples); returns the SIT once, when its third
    /// tone has been confirmed.
    pub fn feed(&mut self, frame: &[i16]) -> Option<Sit> {
        let mut rest = frame;
        while !rest.is_empty() && !self.recognised {
            let tone = if self.buffered == 0 && rest.len() >= BLOCK {
                // The usual case, a whole 20 ms packet: analysed in place.
                let (block, tail) = rest.split_at(BLOCK);
                rest = tail;
                classify(block)
            } else {
                let take = (BLOCK - self.buffered).min(rest.len());
                self.buf[self.buffered..self.buffered + take].copy_from_slice(&rest[..take]);
                self.buffered += take;
                rest = &rest[take..];
                if self.buffered < BLOCK {
                    break;
                }
                self.buffered = 0;
                classify(&self.buf)
            };
            if let Some(sit) = self.step(tone) {
                self.recognised = true;
                return Some(sit);
            }
        }
        None
    }

    /// Advances the tone and the candidate by one block.
    fn step(&mut self, tone: Option<Tone>) -> Option<Sit> {
        let start = self.elapsed;
        self.elapsed += BLOCK as u64;
        let new_run = |t: Tone| Run {
            band: t.band,
            start,
            end: start + BLOCK as u64,
            hz_sum: t.hz,
            blocks: 1,
        };
        match (tone, self.run) {
            (Some(t), Some(run)) if run.continued_by(t, start) => {
                self.run = Some(Run {
                    end: self.elapsed,
                    hz_sum: run.hz_sum + t.hz,
                    blocks: run.blocks + 1,
                    ..run
                });
                None
            }
            // Another tone: the previous one ended where it was last heard.
            (Some(t), Some(run)) => {
                self.run = Some(new_run(t));
                self.close(run)
            }
            (None, Some(run)) if self.elapsed - run.end >= MAX_GAP => {
                self.run = None;
                self.close(run)
            }
            (Some(t), None) => {
                self.run = Some(new_run(t));
                None
            }
            (None, _) => None,
        }
    }

    /// Judges a tone that has ended: the candidate's next one, a new candidate's first, or the
    /// end of the candidate.
    fn close(&mut self, run: Run) -> Option<Sit> {
        let held = run.end - run.start;
        if !(MIN_TONE..=MAX_TONE).contains(&held) {
            self.confirmed = 0;
            return None;
        }
        let next = run.band == self.confirmed
            && (self.confirmed == 0 || run.start.saturating_sub(self.last_end) < MAX_GAP);
        if !next {
            // Out of order or too late; only a first tone starts a new candidate.
            self.confirmed = 0;
            if run.band != 0 {
                return None;
            }
        }
        self.tones[self.confirmed] = run.mean_hz() as f32;
        self.confirmed += 1;
        self.last_end = run.end;
        (self.confirmed == 3).then(|| Sit {
            frequencies_hz: self.tones,
            at_ms: ms(self.elapsed),
        })
    }
}

/// The block's tone (see the module doc), if it is one.
fn classify(block: &[i16]) -> Option<Tone> {
    debug_assert_eq!(block.len(), BLOCK);
    let n = BLOCK as f64;
    let mean = block.iter().map(|&s| i32::from(s)).sum::<i32>() as f32 / BLOCK as f32;
    let mut x = [0f32; BLOCK];
    let mut energy = 0.0;
    for (v, &s) in x.iter_mut().zip(block) {
        *v = f32::from(s) - mean;
        energy += f64::from(*v) * f64::from(*v);
    }
    // A tone of MIN_AMPLITUDE alone has energy n·A²/2; with a little margin for rounding, a
    // quieter block cannot pass step 4, and most silence stops here.
    if energy < 0.9 * n * MIN_AMPLITUDE * MIN_AMPLITUDE / 2.0 {
        return None;
    }

    // 1. The bank: sample-major over fixed arrays, which the compiler vectorises.
    let grid = &*GRID;
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    for &v in &x {
        for k in 0..8 {
            let s = v + grid.coeff[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s;
        }
    }
    let (best, best_power) = (0..8)
        .map(|k| {
            let (a, b) = (f64::from(s1[k]), f64::from(s2[k]));
            (k, a * a + b * b - f64::from(grid.coeff[k]) * a * b)
        })
        .fold((0, f64::MIN), |m, p| if p.1 > m.1 { p } else { m });
    // For a sine filling the block, 2·|X|²/(n·Σx²) = 1 at its frequency.
    if 2.0 * best_power / (n * energy) < MIN_GRID_PURITY {
        return None;
    }

    // 2. The frequency: at ω near the tone's ω₀ each half's Goertzel output turns by ω₀·HALF
    // from the first half to the second, whatever ω; ω₀ is the advance nearest ω·HALF.
    let (cos, sin) = grid.cos_sin[best];
    let first = goertzel_output(&x[..HALF], cos, sin);
    let second = goertzel_output(&x[HALF..], cos, sin);
    let turn =
        (second.1 * first.0 - second.0 * first.1).atan2(second.0 * first.0 + second.1 * first.1);
    let grid_turn = TAU * GRID_HZ[best] / SAMPLE_RATE * HALF as f64;
    let offset = (turn - grid_turn + PI).rem_euclid(TAU) - PI;
    let hz = GRID_HZ[best] + offset / TAU * SAMPLE_RATE / HALF as f64;
    let band = GRID_BAND[best];
    let (lo, hi) = BANDS[band];
    if !(lo..=hi).contains(&hz) {
        return None;
    }

    // 3 and 4. Purity and level at the measured frequency.
    let power = goertzel_power(&x, hz);
    let purity = 2.0 * power / (n * energy);
    let amplitude = 2.0 * power.sqrt() / n;
    (purity >= MIN_PURITY && amplitude >= MIN_AMPLITUDE).then_some(Tone { band, hz })
}

/// The complex output `s[N−1] − e^{−jω}·s[N−2]` of a Goertzel filter at ω over `x`: the DTFT
/// at ω times `e^{jω(N−1)}`, a factor equal for both halves of a block.
fn goertzel_output(x: &[f32], cos: f64, sin: f64) -> (f64, f64) {
    let coeff = 2.0 * cos;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 - cos * s2, sin * s2)
}

/// |X(f)|² over `x`, by Goertzel.
fn goertzel_power(x: &[f32], hz: f64) -> f64 {
    let coeff = 2.0 * (TAU * hz / SAMPLE_RATE).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amd::test_signals::*;
    use crate::amd::{alaw_to_linear, ulaw_to_linear};
    use proptest::prelude::*;
    use std::ops::RangeInclusive;

    const ANSI_FIRST: [f64; 2] = [913.8, 985.2];
    const ANSI_SECOND: [f64; 2] = [1370.6, 1428.5];
    const ANSI_THIRD: f64 = 1776.7;
    const ANSI_MS: [u32; 2] = [274, 380];
    const ITU: [f64; 3] = [950.0, 1400.0, 1800.0];

    /// Feeds 20 ms frames; returns every SIT reported.
    fn sits(audio: &[i16]) -> Vec<Sit> {
        let mut det = SitDetector::new();
        audio.chunks(160).filter_map(|f| det.feed(f)).collect()
    }

    fn the_sit(audio: &[i16]) -> Sit {
        let found = sits(audio);
        assert_eq!(found.len(), 1, "{found:?}");
        found[0]
    }

    fn assert_sit(sit: Sit, hz: [f64; 3], tolerance_hz: f64, at: RangeInclusive<u32>) {
        for (measured, expected) in sit.frequencies_hz.iter().zip(hz) {
            assert!(
                (f64::from(*measured) - expected).abs() <= tolerance_hz,
                "{sit:?}, expected {hz:?} ± {tolerance_hz} Hz"
            );
        }
        assert!(at.contains(&sit.at_ms), "{sit:?} not at {at:?}");
    }

    /// Tones (Hz, ms), each followed by `gap_ms` of silence but the last.
    fn tones(parts: &[(f64, u32)], gap_ms: u32, amplitude: i16) -> Vec<i16> {
        let mut out = Vec::new();
        for (i, &(hz, ms)) in parts.iter().enumerate() {
            if i > 0 {
                out.extend(silence(gap_ms));
            }
            out.extend(tone(ms, hz, amplitude));
        }
        out
    }

    fn itu_sit(amplitude: i16) -> Vec<i16> {
        tones(&ITU.map(|hz| (hz, 330)), 20, amplitude)
    }

    /// Sum of sines (Hz, amplitude).
    fn chord(ms: u32, notes: &[(f64, i16)]) -> Vec<i16> {
        notes
            .iter()
            .fold(Vec::new(), |acc, &(hz, a)| mix(&acc, &tone(ms, hz, a)))
    }

    /// A linear sweep from `from_hz` to `to_hz`.
    fn sweep(ms: u32, from_hz: f64, to_hz: f64, amplitude: f64) -> Vec<i16> {
        let seconds = f64::from(ms) / 1000.0;
        (0..ms as usize * 8)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let phase = TAU * (from_hz * t + (to_hz - from_hz) * t * t / (2.0 * seconds));
                (amplitude * phase.sin()).round() as i16
            })
            .collect()
    }

    /// Each sample coded to the nearest level of a G.711 law and decoded back.
    fn g711(audio: &[i16], decode: fn(u8) -> i16) -> Vec<i16> {
        let mut levels: Vec<i16> = (0..=255u8).map(decode).collect();
        levels.sort_unstable();
        levels.dedup();
        audio
            .iter()
            .map(|&s| {
                let i = levels.partition_point(|&l| l < s);
                let above = levels.get(i).copied().unwrap_or(i16::MAX);
                let below = levels[i.saturating_sub(1)];
                if i32::from(above) - i32::from(s) < i32::from(s) - i32::from(below) {
                    above
                } else {
                    below
                }
            })
            .collect()
    }

    /// One RBJ-cookbook Butterworth section (Q = 1/√2), high- or low-pass, in place.
    fn biquad(x: &mut [f64], hz: f64, high_pass: bool) {
        let (sin, cos) = (TAU * hz / 8000.0).sin_cos();
        let alpha = sin / std::f64::consts::SQRT_2;
        let (b0, b1) = if high_pass {
            ((1.0 + cos) / 2.0, -(1.0 + cos))
        } else {
            ((1.0 - cos) / 2.0, 1.0 - cos)
        };
        let (a0, a1, a2) = (1.0 + alpha, -2.0 * cos, 1.0 - alpha);
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in x.iter_mut() {
            let y = (b0 * *v + b1 * x1 + b0 * x2 - a1 * y1 - a2 * y2) / a0;
            (x2, x1, y2, y1) = (x1, *v, y1, y);
            *v = y;
        }
    }

    /// A telephone channel's 300–3400 Hz pass band (two sections at each edge).
    fn band_limit(audio: &[i16]) -> Vec<f64> {
        let mut x: Vec<f64> = audio.iter().map(|&s| f64::from(s)).collect();
        for (hz, high_pass) in [
            (300.0, true),
            (300.0, true),
            (3400.0, false),
            (3400.0, false),
        ] {
            biquad(&mut x, hz, high_pass);
        }
        x
    }

    /// The audio through a telephone line: band-limited, with band-limited white noise 20 dB under
    /// a tone of `amplitude`, coded with `law`.
    fn telephone(audio: &[i16], amplitude: i16, seed: u32, law: fn(u8) -> i16) -> Vec<i16> {
        let signal = band_limit(audio);
        let hiss = band_limit(&noise(audio.len() as u32 / 8, 10_000, seed));
        let hiss_power = hiss.iter().map(|v| v * v).sum::<f64>() / hiss.len() as f64;
        let tone_power = f64::from(amplitude).powi(2) / 2.0;
        let scale = (tone_power / 100.0 / hiss_power).sqrt();
        let line: Vec<i16> = signal
            .iter()
            .zip(&hiss)
            .map(|(s, h)| (s + scale * h).round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        g711(&line, law)
    }

    /// Every frequency well inside a band is a tone block measured within 1 Hz; nothing outside
    /// the bands is a tone block, whatever the phase at the block's start.
    #[test]
    fn blocks_are_tones_inside_the_bands_only_and_measured_within_a_hertz() {
        let mut hz = 600.0;
        while hz < 2200.0 {
            for lead_samples in [0, 3, 17, 101] {
                let t = tone(40, hz, 8000);
                let block = &t[lead_samples..lead_samples + 160];
                let band = BANDS.iter().position(|&(lo, hi)| (lo..=hi).contains(&hz));
                let near_edge = BANDS
                    .iter()
                    .any(|&(lo, hi)| (hz - lo).abs() <= 1.0 || (hz - hi).abs() <= 1.0);
                match (classify(block), band) {
                    (Some(t), Some(b)) => {
                        assert_eq!(t.band, b, "{hz} Hz");
                        assert!((t.hz - hz).abs() <= 1.0, "{hz} Hz measured {t:?}");
                    }
                    (None, None) => {}
                    // Within 1 Hz of a band's edge either answer is right.
                    _ if near_edge => {}
                    (found, band) => panic!("{hz} Hz: {found:?}, band {band:?}"),
                }
            }
            hz += 0.9;
        }
    }

    /// All 32 ANSI codes (low/high first and second tones, short/long segments), starting at
    /// various points of the 20 ms grid, with 0 or 3 ms between tones: recognised 60–90 ms after
    /// the third tone ends, each frequency within 1 Hz.
    #[test]
    fn every_ansi_combination_is_recognised_when_its_third_tone_ends() {
        let mut case = 0;
        for first in ANSI_FIRST {
            for second in ANSI_SECOND {
                for d1 in ANSI_MS {
                    for d2 in ANSI_MS {
                        for d3 in ANSI_MS {
                            let lead = 300 + 7 * (case % 3);
                            let gap = 3 * (case % 2);
                            case += 1;
                            let audio = concat(&[
                                silence(lead),
                                tones(&[(first, d1), (second, d2), (ANSI_THIRD, d3)], gap, 6000),
                                silence(500),
                            ]);
                            let end = lead + d1 + d2 + d3 + 2 * gap;
                            let sit = the_sit(&audio);
                            assert_sit(sit, [first, second, ANSI_THIRD], 1.0, end + 60..=end + 90);
                        }
                    }
                }
            }
        }
    }

    /// ITU-T E.180: 950/1400/1800 Hz of 260–400 ms with 0–30 ms of silence between them.
    #[test]
    fn itu_sit_is_recognised_with_pauses_up_to_30_ms() {
        for (i, ms) in [260, 330, 400].into_iter().enumerate() {
            for gap in [0, 15, 30] {
                let lead = 500 + 13 * i as u32 + gap / 3;
                let audio = concat(&[
                    silence(lead),
                    tones(&ITU.map(|hz| (hz, ms)), gap, 4000),
                    silence(500),
                ]);
                let end = lead + 3 * ms + 2 * gap;
                assert_sit(the_sit(&audio), ITU, 1.0, end + 60..=end + 90);
            }
        }
    }

    /// Band-limited to 300–3400 Hz, white noise at 20 dB SNR, µ-law or A-law: still recognised,
    /// and each frequency measured within 1.5 Hz (ANSI's low and high variants are 58–71 Hz apart).
    #[test]
    fn sit_through_a_noisy_g711_telephone_line() {
        let codes = [
            [ANSI_FIRST[0], ANSI_SECOND[0], ANSI_THIRD],
            [ANSI_FIRST[1], ANSI_SECOND[1], ANSI_THIRD],
            [ANSI_FIRST[0], ANSI_SECOND[1], ANSI_THIRD],
            ITU,
        ];
        for (i, hz) in codes.into_iter().enumerate() {
            for (law, decode) in [
                ("µ-law", ulaw_to_linear as fn(u8) -> i16),
                ("A-law", alaw_to_linear),
            ] {
                let amplitude = [2000, 6000][i % 2];
                let clean = concat(&[
                    silence(410),
                    tones(&[(hz[0], 274), (hz[1], 380), (hz[2], 380)], 2, amplitude),
                    silence(500),
                ]);
                let line = telephone(&clean, amplitude, i as u32 + 1, decode);
                let sit = sits(&line);
                assert_eq!(sit.len(), 1, "{law} {hz:?}: {sit:?}");
                let end = 410 + 274 + 380 + 380 + 4;
                assert_sit(sit[0], hz, 1.5, end + 60..=end + 90);
            }
        }
    }

    /// One packet of digital silence inside a tone, on or off the 20 ms grid, in any of the three
    /// tones: the tone goes on.
    #[test]
    fn a_lost_packet_inside_a_tone_does_not_break_it() {
        let parts = [
            (ANSI_FIRST[1], 380),
            (ANSI_SECOND[0], 274),
            (ANSI_THIRD, 380),
        ];
        let lead = 200;
        let starts = [lead, lead + 380, lead + 380 + 274];
        for (which, start) in starts.into_iter().enumerate() {
            for offset_samples in [0, 40, 80, 120, 150] {
                let mut audio = concat(&[silence(lead), tones(&parts, 0, 5000), silence(400)]);
                // From 100 ms into the tone, rounded down to the grid, plus the offset.
                let at = ((start + 100) / 20 * 20) as usize * 8 + offset_samples;
                audio[at..at + 160].fill(0);
                let end = lead + 380 + 274 + 380;
                let found = sits(&audio);
                assert_eq!(
                    found.len(),
                    1,
                    "tone {which}, offset {offset_samples}: {found:?}"
                );
                assert_sit(found[0], parts.map(|p| p.0), 1.0, end + 60..=end + 90);
            }
        }
    }

    #[test]
    fn sit_followed_by_its_announcement_is_recognised_before_the_speech() {
        let audio = concat(&[
            silence(100),
            itu_sit(5000),
            silence(150),
            speech(3000, 16000.0, 4),
        ]);
        let end = 100 + 3 * 330 + 2 * 20;
        assert_sit(the_sit(&audio), ITU, 1.0, end + 60..=end + 90);
        // And with the speech starting right at the third tone's end.
        let audio = concat(&[itu_sit(5000), speech(3000, 16000.0, 5)]);
        let end = 3 * 330 + 2 * 20;
        assert_sit(the_sit(&audio), ITU, 1.0, end..=end + 100);
    }

    #[test]
    fn sit_after_a_second_of_silence_is_recognised_a_second_later() {
        let alone = the_sit(&concat(&[itu_sit(5000), silence(500)]));
        let later = the_sit(&concat(&[silence(1000), itu_sit(5000), silence(500)]));
        assert_eq!(later.at_ms, alone.at_ms + 1000, "{alone:?} {later:?}");
        assert_eq!(later.frequencies_hz, alone.frequencies_hz);
    }

    /// A carrier repeats the SIT with its announcement: reported once, at the first.
    #[test]
    fn a_repeated_sit_is_recognised_once() {
        let once = concat(&[itu_sit(5000), silence(1000)]);
        let found = sits(&once.repeat(3));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].at_ms < 1200, "{found:?}");
    }

    /// A first SIT without its second tone (a burst of line noise over it) is not one; the
    /// repetition that follows is.
    #[test]
    fn a_damaged_sit_is_recognised_on_its_repetition() {
        let mut damaged = itu_sit(5000);
        let second = (330 + 20 + 100) * 8..(330 + 20 + 230) * 8;
        let burst = noise(130, 20_000, 3);
        for (s, n) in damaged[second].iter_mut().zip(burst) {
            *s = s.saturating_add(n);
        }
        let audio = concat(&[damaged, silence(500), itu_sit(5000), silence(500)]);
        let start = 3 * 330 + 2 * 20 + 500;
        let end = start + 3 * 330 + 2 * 20;
        assert_sit(the_sit(&audio), ITU, 1.0, end + 60..=end + 90);
    }

    /// −38 dBFS (peak 410) is heard; −43 dBFS (peak 230) is not.
    #[test]
    fn a_sit_must_reach_minus_40_dbfs() {
        assert_eq!(sits(&concat(&[itu_sit(410), silence(300)])).len(), 1);
        assert_eq!(sits(&concat(&[itu_sit(230), silence(300)])), vec![]);
    }

    /// 10 ms packets, odd lengths, one frame for everything: the same 20 ms blocks, the same SIT.
    #[test]
    fn frames_of_any_length_give_the_same_sit() {
        let audio = concat(&[silence(333), itu_sit(5000), silence(400)]);
        let reference = the_sit(&audio);
        for size in [80, 7, 161, 320, 1001, audio.len()] {
            let mut det = SitDetector::new();
            let found: Vec<Sit> = audio.chunks(size).filter_map(|f| det.feed(f)).collect();
            assert_eq!(found, vec![reference], "frames of {size}");
        }
    }

    #[test]
    fn speech_and_noise_are_not_a_sit() {
        for seed in 1..=4 {
            assert_eq!(sits(&speech(5000, 16000.0, seed)), vec![], "speech {seed}");
            assert_eq!(
                sits(&speech(5000, 3000.0, seed)),
                vec![],
                "quiet speech {seed}"
            );
            assert_eq!(sits(&speech_bursts(5000, seed)), vec![], "bursts {seed}");
            assert_eq!(sits(&noise(5000, 12_000, seed)), vec![], "noise {seed}");
            let noisy = mix(&speech_bursts(5000, seed), &noise(5000, 3000, seed));
            assert_eq!(sits(&g711(&noisy, ulaw_to_linear)), vec![], "noisy {seed}");
        }
    }

    /// A voicemail beep, 400–2000 Hz (the SIT's own frequencies among them), 0.2–1 s.
    #[test]
    fn a_single_beep_is_not_a_sit() {
        for hz in (400..=2000).step_by(25).map(f64::from).chain(ITU) {
            for ms in [200, 300, 500, 1000] {
                let audio = concat(&[speech_bursts(1000, 2), tone(ms, hz, 8000), silence(500)]);
                assert_eq!(sits(&audio), vec![], "{hz} Hz, {ms} ms");
            }
        }
    }

    /// Two beeps, even the SIT's first two tones or its last two, back to back or apart.
    #[test]
    fn two_beeps_are_not_a_sit() {
        let pairs = [
            (ITU[0], ITU[1]),
            (ITU[1], ITU[2]),
            (ITU[0], ITU[2]),
            (ANSI_FIRST[0], ANSI_SECOND[1]),
            (1000.0, 1000.0),
            (440.0, 850.0),
        ];
        for (a, b) in pairs {
            for gap in [0, 20, 300] {
                let audio = concat(&[tones(&[(a, 330), (b, 330)], gap, 8000), silence(1000)]);
                assert_eq!(sits(&audio), vec![], "{a} and {b} Hz, {gap} ms apart");
            }
        }
    }

    /// DTMF digits (two equal tones, several of whose frequencies are in the SIT's bands), and
    /// dual tones of the SIT's own frequencies in its order and timing: half the energy each.
    #[test]
    fn dual_tones_are_not_a_sit() {
        let rows = [697.0, 770.0, 852.0, 941.0];
        let cols = [1209.0, 1336.0, 1477.0, 1633.0];
        let mut digits = Vec::new();
        for row in rows {
            for col in cols {
                digits.extend(chord(300, &[(row, 4000), (col, 4000)]));
                digits.extend(silence(20));
            }
        }
        assert_eq!(sits(&digits), vec![]);
        let pairs = [(ITU[0], 1209.0), (ITU[1], 941.0), (ITU[2], 1336.0)];
        let sit_like = concat(&pairs.map(|(a, b)| chord(330, &[(a, 4000), (b, 4000)])));
        assert_eq!(sits(&concat(&[sit_like, silence(500)])), vec![]);
    }

    /// Sweeps up and down across the bands, fast and slow, a staircase of 50 Hz steps, and a run of
    /// short notes.
    #[test]
    fn sweeps_are_not_a_sit() {
        for (ms, from, to) in [
            (1000, 300.0, 3400.0),
            (3000, 300.0, 3400.0),
            (1000, 800.0, 2000.0),
            (6000, 800.0, 2000.0),
            (2000, 2000.0, 800.0),
        ] {
            let audio = concat(&[sweep(ms, from, to, 8000.0), silence(300)]);
            assert_eq!(sits(&audio), vec![], "{from}–{to} Hz in {ms} ms");
        }
        let stairs: Vec<i16> = (0..24)
            .flat_map(|i| tone(100, 850.0 + 50.0 * f64::from(i), 8000))
            .collect();
        assert_eq!(sits(&concat(&[stairs, silence(300)])), vec![]);
        // A run of 100 ms notes through the bands, three in each: no note is held long enough,
        // though each band is sounded for 300 ms.
        let notes = [
            900.0, 950.0, 1000.0, 1350.0, 1400.0, 1450.0, 1740.0, 1780.0, 1820.0,
        ];
        let run: Vec<i16> = notes.iter().flat_map(|&hz| tone(100, hz, 8000)).collect();
        assert_eq!(sits(&concat(&[run, silence(300)])), vec![]);
    }

    /// Music-like chords (sums of equal sines, some with harmonics), including chords whose top
    /// notes are the SIT's three tones in its timing, and the three tones at once.
    #[test]
    fn chords_are_not_a_sit() {
        let with_harmonics = |hz: f64| [(hz, 4000), (2.0 * hz, 2000), (3.0 * hz, 1300)];
        let triads = [
            [523.3, 659.3, 784.0],
            [587.3, 740.0, 880.0],
            [659.3, 830.6, 987.8],
            [698.5, 880.0, 1046.5],
            [987.8, 1244.5, 1480.0],
        ];
        let mut music = Vec::new();
        for triad in triads.iter().cycle().take(15) {
            let notes: Vec<_> = triad.iter().flat_map(|&hz| with_harmonics(hz)).collect();
            music.extend(chord(300, &notes));
        }
        assert_eq!(sits(&music), vec![]);
        // 950 Hz over a fourth below, 1400 Hz over a major third, 1800 Hz over a fifth: the lower
        // notes are outside the bands.
        let pairs = [(712.5, ITU[0]), (1120.0, ITU[1]), (1200.0, ITU[2])];
        let sit_tops = concat(&pairs.map(|(low, top)| chord(330, &[(low, 4000), (top, 4000)])));
        assert_eq!(sits(&concat(&[sit_tops, silence(500)])), vec![]);
        let all_at_once = chord(1000, &ITU.map(|hz| (hz, 4000)));
        assert_eq!(sits(&concat(&[all_at_once, silence(500)])), vec![]);
    }

    /// Ringback tones: 425 Hz (1 s on, 4 s off; and the 0.4/0.2/0.4/2 s cadence), 440 + 480 Hz.
    #[test]
    fn ringback_is_not_a_sit() {
        let europe = concat(&[tone(1000, 425.0, 6000), silence(4000)]).repeat(2);
        let double = concat(&[
            tone(400, 425.0, 6000),
            silence(200),
            tone(400, 425.0, 6000),
            silence(2000),
        ])
        .repeat(3);
        let north_america =
            concat(&[chord(2000, &[(440.0, 3000), (480.0, 3000)]), silence(4000)]).repeat(2);
        for audio in [europe, double, north_america] {
            assert_eq!(sits(&audio), vec![]);
        }
    }

    #[test]
    fn tones_in_the_wrong_order_are_not_a_sit() {
        let orders = [
            [ITU[1], ITU[0]].to_vec(),
            [ITU[1], ITU[0], ITU[2]].to_vec(),
            [ITU[2], ITU[1], ITU[0]].to_vec(),
            [ITU[0], ITU[2], ITU[1]].to_vec(),
            [ITU[0], ITU[1], ITU[1]].to_vec(),
            [ITU[0], ITU[0], ITU[2]].to_vec(),
        ];
        for order in orders {
            let parts: Vec<_> = order.iter().map(|&hz| (hz, 330)).collect();
            let audio = concat(&[tones(&parts, 10, 6000), silence(500)]);
            assert_eq!(sits(&audio), vec![], "{order:?}");
        }
    }

    /// The right tones in the right order, but one too short (150 ms), too long (600 ms; the last
    /// one 1 s, a beep after two tones) or too far from the previous one (150 ms).
    #[test]
    fn tones_too_short_too_long_or_too_far_apart_are_not_a_sit() {
        for which in 0..3 {
            for ms in [150, 600, 1000] {
                let mut parts = ITU.map(|hz| (hz, 330));
                parts[which].1 = ms;
                let audio = concat(&[tones(&parts, 10, 6000), silence(500)]);
                assert_eq!(sits(&audio), vec![], "tone {which} of {ms} ms");
            }
        }
        let apart = concat(&[tones(&ITU.map(|hz| (hz, 330)), 150, 6000), silence(500)]);
        assert_eq!(sits(&apart), vec![]);
        // The same with the normal timing is one.
        let right = concat(&[tones(&ITU.map(|hz| (hz, 330)), 10, 6000), silence(500)]);
        assert_eq!(sits(&right).len(), 1);
    }

    #[test]
    fn odd_frames_and_extreme_samples_do_not_panic() {
        let mut det = SitDetector::new();
        let frames: [&[i16]; 6] = [
            &[],
            &[i16::MIN; 7],
            &[i16::MAX; 161],
            &[i16::MIN, i16::MAX],
            &[0; 1001],
            &[i16::MIN, i16::MIN, i16::MAX, i16::MAX].repeat(40),
        ];
        let mut fed = 0;
        for frame in frames.iter().cycle().take(100) {
            assert_eq!(det.feed(frame), None);
            fed += frame.len();
        }
        assert_eq!(det.elapsed as usize + det.buffered, fed);
    }

    fn frame_strategy() -> impl Strategy<Value = Vec<i16>> {
        prop_oneof![
            prop::collection::vec(any::<i16>(), 0..400),
            (0..400usize, any::<i16>()).prop_map(|(n, v)| vec![v; n]),
            (0..400usize).prop_map(|n| vec![0; n]),
            // Pieces of the SIT's tones, so that candidates are built and broken.
            (0..3usize, 0..4000usize)
                .prop_map(|(band, n)| { tone(n as u32 / 8 + 1, ITU[band], 6000)[..n].to_vec() }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_frames_never_panic_and_recognise_at_most_once(
            frames in prop::collection::vec(frame_strategy(), 0..120)
        ) {
            let mut det = SitDetector::new();
            let mut found = Vec::new();
            for frame in &frames {
                found.extend(det.feed(frame));
            }
            prop_assert!(found.len() <= 1, "{:?}", found);
            let total_ms: usize = frames.iter().map(Vec::len).sum::<usize>() / 8;
            for sit in &found {
                prop_assert!(sit.at_ms as usize <= total_ms);
            }
            // Half a second of silence ends any candidate; a SIT after it is recognised, unless one
            // already was.
            let after = concat(&[silence(500), itu_sit(6000), silence(300)]);
            prop_assert_eq!(det.feed(&after).is_some(), found.is_empty());
        }
    }
}
