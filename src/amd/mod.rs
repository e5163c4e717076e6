//! Answering-machine detection (AMD) on the first seconds of an answered call's audio.
//!
//! The [`Detector`] decides whether a person or a machine answered, from the rhythm of the
//! callee's speech: a person says something short ("¿Diga?") and waits; a voicemail greeting
//! talks on, in many words. It is the state machine of Asterisk's `app_amd` (also behind
//! FreeSWITCH's `mod_amd`), streaming: 20 ms frames of 8 kHz mono in, one [`Decision`] out, with
//! no I/O, no async and no allocation, so the call controller can run it on every frame.
//!
//! [`AmdParams`] keep the classic defaults, in ms of audio:
//! - `initial_silence_ms` 2500: nobody spoke by then ⇒ NOTSURE/INITIALSILENCE. Asterisk answers
//!   MACHINE here; we answer NOTSURE because a person who picks up and stays silent (waiting for
//!   the caller, or a bad line) is common, and hanging up on a person costs more than playing a
//!   message to a machine.
//! - `greeting_ms` 1500: speech since the first word adds up to this ⇒ MACHINE/LONGGREETING.
//! - `after_greeting_silence_ms` 800: silence after a short greeting ⇒ HUMAN/HUMAN.
//! - `total_analysis_ms` 5000: no decision by then ⇒ NOTSURE/TOOLONG.
//! - `min_word_ms` 100: a voiced run shorter than this is a click or noise, not a word.
//! - `between_words_silence_ms` 50: the silence that separates two words, as in Asterisk.
//!   Digital silence (every sample within ±[`DIGITAL_SILENCE`]) is not heard as a pause: it is
//!   what the switch sends for a packet that did not arrive in time, and under load a few in a row
//!   would split one word in two ("¿Quién habla?" became a third word, a person called MACHINE).
//!   A gap ends a word after `between_words_silence_ms` of line silence (a real line always
//!   carries some noise between words), or after [`DIGITAL_GAP_MS`] (or
//!   `between_words_silence_ms`, if longer) of silence of any kind, digital silence included.
//! - `maximum_words` 3: this many words ⇒ MACHINE/MAXWORDS (people answer in one or two).
//! - `maximum_word_ms` 5000: one word this long ⇒ MACHINE/LONGWORD (a tone or music).
//! - `silence_threshold` 256: minimum mean absolute amplitude of voice; the adaptive noise floor
//!   (`vad.rs`) raises it on noisy lines.
//!
//! One rule goes beyond the classic detectors: loudness relative to the word ([`TAIL_RATIO`]).
//! A frame 18 dB or more under the loudest frame of its word is that word's tail (the decay of
//! its last syllable, an echo, a dip in continuous speech): it is still the word's sound, but the
//! pause after the word is counted from where the speech fell away. A tail lasting
//! `between_words_silence_ms` ends the word, as a pause would, and sound that quiet after it is
//! not a new word until a real pause resets the reference. Asterisk's fixed threshold hears a
//! loud speaker's tail as speech (the HUMAN verdict comes one to four frames late) and a
//! recorded greeting, spoken without pauses, as one long word; mod_amd's VAD, which reads every
//! other sample, effectively doubles its threshold instead, which splits a person's "¿Hola?
//! ¿Quién habla?" into three words (`BENCHMARKS.md`).
//!
//! The rules are checked after every frame in this order: TOOLONG, INITIALSILENCE, MAXWORDS,
//! LONGWORD, LONGGREETING, HUMAN. A beep is voice for this detector (a beep after a long greeting
//! is consistent with MACHINE); [`BeepDetector`] finds it separately, to know when to speak.

mod beep;
mod g711;
mod sit;
mod vad;

pub use beep::{Beep, BeepDetector};
pub use g711::{alaw_to_linear, ulaw_to_linear};
pub use sit::{Sit, SitDetector};

use vad::Vad;

/// The `cause` strings of a [`Decision`], spelled as FreeSWITCH's `amd_cause`.
pub mod cause {
    pub const HUMAN: &str = "HUMAN";
    pub const LONGGREETING: &str = "LONGGREETING";
    pub const MAXWORDS: &str = "MAXWORDS";
    pub const LONGWORD: &str = "LONGWORD";
    pub const INITIALSILENCE: &str = "INITIALSILENCE";
    pub const TOOLONG: &str = "TOOLONG";
    /// A voicemail beep heard during detection: the greeting is over and the machine records.
    pub const BEEP: &str = "BEEP";
}

const SAMPLES_PER_MS: u64 = 8;
/// Samples this close to zero are digital silence: µ-law's zero (0xFF/0x7F) decodes to 0 and
/// A-law's smallest codes (0xD5/0x55) to ±8.
pub const DIGITAL_SILENCE: u16 = 8;
/// Digital silence ends a word only after this long: five packets lost in a row are far rarer
/// than one to three, and a real pause on a line with silence suppression is longer.
pub const DIGITAL_GAP_MS: u32 = 100;
/// A word's frames this many times quieter than its loudest (−18 dB) are its tail (see the
/// module doc): the pause after the word, and so the HUMAN verdict, starts where the speech fell
/// away rather than where its echo dropped under `silence_threshold`: on the labeled set's loud
/// speakers, one to four frames sooner.
const TAIL_RATIO: u32 = 8;
/// A beep decides MACHINE once this much silence follows it: a machine records after its beep,
/// while a held vowel or a SIT's first tone goes on into more sound.
const BEEP_SILENCE_MS: u32 = 200;
/// Longer frames are analysed in 20 ms pieces, so decisions keep a 20 ms resolution.
const FRAME_SAMPLES: usize = 160;

/// Detector settings; see the module doc for their meaning. Defaults are the classic ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdParams {
    pub initial_silence_ms: u32,
    pub greeting_ms: u32,
    pub after_greeting_silence_ms: u32,
    pub total_analysis_ms: u32,
    pub min_word_ms: u32,
    pub between_words_silence_ms: u32,
    pub maximum_words: u32,
    pub maximum_word_ms: u32,
    pub silence_threshold: u16,
}

impl Default for AmdParams {
    fn default() -> Self {
        Self {
            initial_silence_ms: 3500,
            greeting_ms: 2500,
            after_greeting_silence_ms: 800,
            total_analysis_ms: 6500,
            min_word_ms: 100,
            between_words_silence_ms: 100,
            maximum_words: 7,
            maximum_word_ms: 5000,
            silence_threshold: 256,
        }
    }
}

/// Rules of the detector that are not campaign settings: chosen on the corpus's train split
/// (`scripts/amd-corpus/`), checked on its validation split, never on its test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// An answer with at least this much voiced speech is ambiguous: a long answer ("Hello? One
    /// moment, please.") and a short greeting ("Buzón de voz.") look alike, so the HUMAN verdict
    /// waits [`Tuning::ambiguous_extra_silence_ms`] longer, for the greeting's beep or its next
    /// sentence.
    pub ambiguous_voiced_ms: u32,
    /// The extra silence an ambiguous answer needs before it is HUMAN.
    pub ambiguous_extra_silence_ms: u32,
    /// Whether a beep heard during detection decides MACHINE.
    pub beep_is_machine: bool,
    /// The shortest tone taken for a voicemail beep during detection (a sung or held vowel can
    /// be as pure as a tone for a moment; a machine's beep lasts).
    pub min_beep_ms: u32,
    /// Whether the noise floor also follows the quietest frame of the last 1.5 s (noise that
    /// starts with the answer), see `vad.rs`.
    pub noise_floor_min_stat: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            ambiguous_voiced_ms: 600,
            ambiguous_extra_silence_ms: 700,
            beep_is_machine: true,
            min_beep_ms: 250,
            noise_floor_min_stat: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Human,
    Machine,
    NotSure,
}

impl Verdict {
    /// FreeSWITCH's `amd_result` spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Human => "HUMAN",
            Verdict::Machine => "MACHINE",
            Verdict::NotSure => "NOTSURE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// One of [`cause`]'s constants.
    pub cause: &'static str,
    /// Audio time of the decision, ms since the first frame.
    pub at_ms: u32,
}

/// Streaming answering-machine detector for one call.
#[derive(Debug, Clone)]
pub struct Detector {
    params: AmdParams,
    tuning: Tuning,
    vad: Vad,
    /// The voicemail beep, heard during detection (see [`cause::BEEP`]): a tone that ended and
    /// has been followed by silence only, not yet [`BEEP_SILENCE_MS`] of it.
    beeps: BeepDetector,
    beep_pending: bool,
    /// All counters are in samples (1/8 ms), so frames of any length add up exactly.
    elapsed: u64,
    /// Time since the last frame that belonged to a word (voiced runs too short to be words
    /// count as silence: they are noise).
    silence: u64,
    /// The part of `silence` that was not digital silence: the line's own pause.
    line_silence: u64,
    /// Time since the last frame of a word that was louder than its tail (see [`TAIL_RATIO`]):
    /// the pause that decides HUMAN. Never shorter than `silence`.
    since_speech: u64,
    /// Loudest frame of the current word, or of the last one until a real pause (mean absolute
    /// amplitude): what a frame must be within [`TAIL_RATIO`] of to be speech rather than tail.
    word_peak: u32,
    /// Loudest frame of the voiced run that may become the next word.
    pending_peak: u32,
    /// Consecutive voiced time not yet long enough to be a word.
    pending: u64,
    in_word: bool,
    words: u32,
    /// Voiced time of the current word.
    word: u64,
    /// Voiced time of all words so far.
    voiced: u64,
    decision: Option<Decision>,
}

fn samples(ms: u32) -> u64 {
    u64::from(ms) * SAMPLES_PER_MS
}

impl Detector {
    pub fn new(params: AmdParams) -> Self {
        Self::with_tuning(params, Tuning::default())
    }

    /// [`Detector::new`] with other [`Tuning`] (for the corpus tools that choose it).
    pub fn with_tuning(params: AmdParams, tuning: Tuning) -> Self {
        Self {
            vad: Vad::with_min_stat(params.silence_threshold, tuning.noise_floor_min_stat),
            params,
            tuning,
            beeps: BeepDetector::new(),
            beep_pending: false,
            elapsed: 0,
            silence: 0,
            line_silence: 0,
            since_speech: 0,
            word_peak: 0,
            pending_peak: 0,
            pending: 0,
            in_word: false,
            words: 0,
            word: 0,
            voiced: 0,
            decision: None,
        }
    }

    /// Feeds one frame (any length, normally 160 samples); returns the decision once, the first
    /// time it is reached; later calls return `None`.
    pub fn feed(&mut self, frame: &[i16]) -> Option<Decision> {
        let mut reached = None;
        for chunk in frame.chunks(FRAME_SAMPLES) {
            self.elapsed += chunk.len() as u64;
            if self.decision.is_some() {
                continue;
            }
            self.track(chunk);
            if let Some(b) = self.beeps.feed(chunk) {
                self.beep_pending = b.duration_ms >= self.tuning.min_beep_ms;
            }
            if self.silence == 0 || self.pending > 0 {
                // Sound went on after the tone (a sung vowel, the next tone of a SIT): no beep.
                self.beep_pending = false;
            }
            if let Some((verdict, cause)) = self.rule() {
                let decision = Decision {
                    verdict,
                    cause,
                    at_ms: self.elapsed_ms(),
                };
                self.decision = Some(decision);
                reached = Some(decision);
            }
        }
        reached
    }

    /// The audio time fed so far, ms.
    pub fn elapsed_ms(&self) -> u32 {
        u32::try_from(self.elapsed / SAMPLES_PER_MS).unwrap_or(u32::MAX)
    }

    /// Called when the audio stops arriving: the decision already reached, or else NOTSURE
    /// (INITIALSILENCE if nobody spoke, TOOLONG otherwise), so a dead stream never stalls the
    /// call. After it, `feed` returns `None`.
    pub fn finish(&mut self) -> Decision {
        let cause = if self.words == 0 {
            cause::INITIALSILENCE
        } else {
            cause::TOOLONG
        };
        let at_ms = self.elapsed_ms();
        *self.decision.get_or_insert(Decision {
            verdict: Verdict::NotSure,
            cause,
            at_ms,
        })
    }

    /// Updates the word/silence counters with one chunk.
    fn track(&mut self, chunk: &[i16]) {
        let len = chunk.len() as u64;
        let Some(level) = self.vad.voice_level(chunk) else {
            self.pending = 0;
            self.silence += len;
            self.since_speech += len;
            if !is_digital_silence(chunk) {
                self.line_silence += len;
            }
            let between = self.params.between_words_silence_ms;
            if self.line_silence >= samples(between)
                || self.silence >= samples(between.max(DIGITAL_GAP_MS))
            {
                // A real pause: what comes next is judged on its own loudness.
                self.in_word = false;
                self.word_peak = 0;
            }
            return;
        };
        let loud = level.saturating_mul(TAIL_RATIO) >= self.word_peak;
        if self.in_word {
            self.word += len;
            self.voiced += len;
            if loud {
                self.word_peak = self.word_peak.max(level);
                self.silence = 0;
                self.line_silence = 0;
                self.since_speech = 0;
            } else {
                // The word's tail: still its sound, already the pause after it.
                self.since_speech += len;
                self.line_silence += len;
                if self.line_silence >= samples(self.params.between_words_silence_ms) {
                    self.in_word = false;
                }
            }
        } else if loud {
            self.pending += len;
            self.pending_peak = if self.pending == len {
                level
            } else {
                self.pending_peak.max(level)
            };
            self.silence += len;
            self.line_silence += len;
            self.since_speech += len;
            if self.pending >= samples(self.params.min_word_ms) {
                self.words += 1;
                self.in_word = true;
                self.word = self.pending;
                self.voiced += self.pending;
                self.word_peak = self.pending_peak;
                self.pending = 0;
                self.silence = 0;
                self.line_silence = 0;
                self.since_speech = 0;
            }
        } else {
            // The last word's tail going on after it ended: a pause, not a new word.
            self.pending = 0;
            self.silence += len;
            self.line_silence += len;
            self.since_speech += len;
        }
    }

    fn rule(&self) -> Option<(Verdict, &'static str)> {
        let p = &self.params;
        let spoke = self.words > 0;
        let pause_for_human = if self.voiced >= samples(self.tuning.ambiguous_voiced_ms) {
            p.after_greeting_silence_ms + self.tuning.ambiguous_extra_silence_ms
        } else {
            p.after_greeting_silence_ms
        };
        if self.beep_pending
            && self.tuning.beep_is_machine
            && self.silence >= samples(BEEP_SILENCE_MS)
        {
            Some((Verdict::Machine, cause::BEEP))
        } else if self.elapsed >= samples(p.total_analysis_ms) {
            Some((Verdict::NotSure, cause::TOOLONG))
        } else if !spoke && self.silence >= samples(p.initial_silence_ms) {
            Some((Verdict::NotSure, cause::INITIALSILENCE))
        } else if spoke && self.words >= p.maximum_words {
            Some((Verdict::Machine, cause::MAXWORDS))
        } else if self.in_word && self.word >= samples(p.maximum_word_ms) {
            Some((Verdict::Machine, cause::LONGWORD))
        } else if spoke && self.voiced >= samples(p.greeting_ms) {
            Some((Verdict::Machine, cause::LONGGREETING))
        } else if spoke && self.since_speech >= samples(pause_for_human) {
            Some((Verdict::Human, cause::HUMAN))
        } else {
            None
        }
    }
}

/// True when every sample of the chunk is digital silence (see [`DIGITAL_SILENCE`]).
fn is_digital_silence(chunk: &[i16]) -> bool {
    chunk.iter().all(|s| s.unsigned_abs() <= DIGITAL_SILENCE)
}

/// Synthetic audio for the tests of this module and its children.
#[cfg(test)]
pub(crate) mod test_signals {
    use std::f64::consts::{PI, TAU};

    /// Tiny deterministic generator (Numerical Recipes LCG): values in [-1, 1).
    pub(crate) struct Lcg(u32);

    impl Lcg {
        pub(crate) fn new(seed: u32) -> Self {
            Self(seed.wrapping_mul(2_654_435_761).wrapping_add(1))
        }
        pub(crate) fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f64::from(self.0 >> 8) / f64::from(1u32 << 23) - 1.0
        }
    }

    fn clip(v: f64) -> i16 {
        v.round().clamp(-32768.0, 32767.0) as i16
    }

    pub(crate) fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    pub(crate) fn tone(ms: u32, hz: f64, amplitude: i16) -> Vec<i16> {
        let a = f64::from(amplitude);
        (0..ms as usize * 8)
            .map(|i| clip(a * (TAU * hz * i as f64 / 8000.0).sin()))
            .collect()
    }

    /// White noise, uniform in ±`peak` (mean absolute amplitude `peak / 2`).
    pub(crate) fn noise(ms: u32, peak: u32, seed: u32) -> Vec<i16> {
        let mut lcg = Lcg::new(seed);
        (0..ms as usize * 8)
            .map(|_| clip(f64::from(peak) * lcg.next()))
            .collect()
    }

    /// Continuous speech-like sound: a gliding 110–150 Hz pitch with harmonics up to 3.4 kHz and
    /// some breath noise, modulated at a syllable rate of 4 Hz between 55 % and 100 % (so every
    /// 20 ms frame stays voiced), with 10 ms fades at both ends. Mean |x| ≈ amplitude / 6.
    pub(crate) fn speech(ms: u32, amplitude: f64, seed: u32) -> Vec<i16> {
        let mut lcg = Lcg::new(seed);
        let n = ms as usize * 8;
        let mut phase = 0.0;
        (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let pitch = 130.0 + 20.0 * (TAU * 1.3 * t + f64::from(seed)).sin();
                phase += TAU * pitch / 8000.0;
                let harmonics: f64 = (1..)
                    .take_while(|&k| f64::from(k) * pitch < 3400.0)
                    .map(|k| (f64::from(k) * phase).sin() / f64::from(k))
                    .sum();
                let syllable = 0.55 + 0.45 * (PI * 4.0 * t).sin().powi(2);
                let fade = (i.min(n - 1 - i) as f64 / 80.0).min(1.0);
                clip(amplitude * syllable * fade * (harmonics / 2.5 + 0.15 * lcg.next()))
            })
            .collect()
    }

    /// A greeting-like sequence: speech bursts of 250–450 ms separated by 100–250 ms silences.
    pub(crate) fn speech_bursts(ms: u32, seed: u32) -> Vec<i16> {
        let mut lcg = Lcg::new(seed);
        let mut out = Vec::new();
        while out.len() < ms as usize * 8 {
            let burst = 350.0 + 100.0 * lcg.next();
            out.extend(speech(burst as u32, 16000.0, seed));
            out.extend(silence((175.0 + 75.0 * lcg.next()) as u32));
        }
        out.truncate(ms as usize * 8);
        out
    }

    pub(crate) fn concat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    /// Sum of two signals, as long as the longer one.
    pub(crate) fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        let at = |s: &[i16], i: usize| f64::from(s.get(i).copied().unwrap_or(0));
        (0..a.len().max(b.len()))
            .map(|i| clip(at(a, i) + at(b, i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_signals::*;
    use super::*;
    use proptest::prelude::*;

    /// The classic settings (Asterisk's `app_amd` defaults) and none of the rules chosen on the
    /// corpus: the tests of the word and silence mechanics use them, so that each rule is
    /// checked on its own; the corpus's defaults have tests of their own below.
    fn classic() -> AmdParams {
        AmdParams {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            total_analysis_ms: 5000,
            between_words_silence_ms: 50,
            maximum_words: 3,
            ..AmdParams::default()
        }
    }

    fn classic_tuning() -> Tuning {
        Tuning {
            ambiguous_extra_silence_ms: 0,
            beep_is_machine: false,
            ..Tuning::default()
        }
    }

    /// Feeds 20 ms frames to `det`; returns the one decision (asserting no second one comes).
    fn run(mut det: Detector, audio: &[i16]) -> Option<Decision> {
        let mut found = audio.chunks(160).filter_map(|f| det.feed(f));
        let first = found.next();
        assert_eq!(found.next(), None, "a second decision");
        first
    }

    /// [`run`] with `params` and the classic tuning.
    fn decide_with(params: AmdParams, audio: &[i16]) -> Option<Decision> {
        run(Detector::with_tuning(params, classic_tuning()), audio)
    }

    fn fresh() -> Detector {
        Detector::with_tuning(classic(), classic_tuning())
    }

    fn decide(audio: &[i16]) -> Decision {
        decide_with(classic(), audio).expect("a decision")
    }

    /// The detector as the service runs it: the defaults chosen on the corpus.
    fn decide_default(audio: &[i16]) -> Decision {
        run(Detector::new(AmdParams::default()), audio).expect("a decision")
    }

    fn assert_decision(
        d: Decision,
        verdict: Verdict,
        cause: &str,
        at: std::ops::RangeInclusive<u32>,
    ) {
        assert_eq!((d.verdict, d.cause), (verdict, cause), "{d:?}");
        assert!(at.contains(&d.at_ms), "{d:?} not at {at:?}");
    }

    /// A short greeting ("Buzón de voz.") then the beep: MACHINE/BEEP once 200 ms of silence
    /// follow the tone. Without the rule the same call is a person.
    #[test]
    fn a_beep_after_a_short_greeting_is_a_machine() {
        let call = concat(&[
            silence(300),
            speech(900, 16000.0, 11),
            silence(300),
            tone(500, 1000.0, 8000),
            silence(3000),
        ]);
        // The tone ends at 2000 ms, is reported 40 ms later, then 200 ms of silence.
        assert_decision(
            decide_default(&call),
            Verdict::Machine,
            cause::BEEP,
            2200..=2280,
        );
        let no_rule = Tuning {
            beep_is_machine: false,
            ..Tuning::default()
        };
        let d = run(Detector::with_tuning(AmdParams::default(), no_rule), &call).unwrap();
        assert_eq!(d.verdict, Verdict::Human, "{d:?}");
    }

    /// A tone that goes straight on into more sound (a SIT's next tone, a sung vowel) is no
    /// voicemail beep.
    #[test]
    fn a_tone_followed_by_more_sound_is_not_a_beep() {
        let sit = concat(&[
            silence(200),
            tone(330, 950.0, 8000),
            tone(330, 1400.0, 8000),
            tone(330, 1800.0, 8000),
            speech(600, 16000.0, 12),
            silence(3000),
        ]);
        let d = decide_default(&sit);
        assert_ne!(d.cause, cause::BEEP, "{d:?}");
        let sung = concat(&[
            silence(200),
            tone(400, 440.0, 8000),
            speech(500, 16000.0, 13),
            silence(3000),
        ]);
        let d = decide_default(&sung);
        assert_ne!(d.cause, cause::BEEP, "{d:?}");
    }

    /// An answer of 600 ms of speech or more waits 700 ms longer than a short one before it is
    /// a person: the time a short greeting's beep or next sentence takes to come.
    #[test]
    fn a_longer_answer_waits_longer_for_the_verdict() {
        let short = concat(&[silence(300), speech(400, 16000.0, 14), silence(3000)]);
        assert_decision(
            decide_default(&short),
            Verdict::Human,
            cause::HUMAN,
            1480..=1540,
        );
        let long = concat(&[silence(300), speech(1000, 16000.0, 15), silence(3000)]);
        assert_decision(
            decide_default(&long),
            Verdict::Human,
            cause::HUMAN,
            2780..=2840,
        );
    }

    /// People pick up and speak up to three seconds later; the classic 2.5 s of initial silence
    /// gave up on them.
    #[test]
    fn a_late_answer_is_still_heard() {
        let late = concat(&[silence(3000), speech(500, 16000.0, 16), silence(3000)]);
        assert_eq!(decide_default(&late).verdict, Verdict::Human);
        assert_eq!(decide(&late).cause, cause::INITIALSILENCE);
    }

    /// "Hello? One moment, please." dips between its words: four words are still a person with
    /// the defaults (the classic three words made it a machine).
    #[test]
    fn a_long_answer_in_several_words_is_a_person() {
        let word_and_gap = concat(&[speech(300, 16000.0, 17), silence(150)]);
        let answer = concat(&[silence(300), word_and_gap.repeat(4), silence(3000)]);
        assert_eq!(decide_default(&answer).verdict, Verdict::Human);
        assert_eq!(decide(&answer).cause, cause::MAXWORDS);
    }

    #[test]
    fn hola_then_silence_is_human() {
        let d = decide(&concat(&[speech(500, 16000.0, 1), silence(3000)]));
        assert_decision(d, Verdict::Human, cause::HUMAN, 1260..=1340);
    }

    /// The pause that makes a person starts where the speech fell away (−18 dB under the word's
    /// loudest frame), not where its quiet tail dropped under `silence_threshold`: 200 ms of tail
    /// (mean 286, above the 256 threshold) does not delay the verdict.
    #[test]
    fn a_words_quiet_tail_is_already_the_pause() {
        let tail = tone(200, 300.0, 450);
        let d = decide(&concat(&[
            silence(300),
            speech(400, 16000.0, 1),
            tail.clone(),
            silence(2000),
        ]));
        assert_decision(d, Verdict::Human, cause::HUMAN, 1480..=1540);
        // Without the loud body the same sound is a word of its own, and its end is the pause.
        let d = decide(&concat(&[silence(300), tail, silence(2000)]));
        assert_decision(d, Verdict::Human, cause::HUMAN, 1280..=1320);
    }

    /// Loud, 40 ms 18 dB down, loud is one word (a dip shorter than `between_words_silence_ms`);
    /// with 200 ms 18 dB down in the middle it is two (with at most two words allowed, a
    /// machine): a stretch that far under the word's loudest is a pause, as continuous speech
    /// over a noisy or reverberant line has them.
    #[test]
    fn a_long_stretch_far_under_the_word_separates_words() {
        let params = AmdParams {
            maximum_words: 2,
            ..classic()
        };
        let with_dip = |ms| {
            concat(&[
                silence(300),
                speech(300, 16000.0, 1),
                tone(ms, 300.0, 450),
                speech(300, 16000.0, 2),
                silence(2000),
            ])
        };
        let d = decide_with(params.clone(), &with_dip(40)).expect("a decision");
        assert_decision(d, Verdict::Human, cause::HUMAN, 1700..=1760);
        let d = decide_with(params, &with_dip(200)).expect("a decision");
        assert_decision(d, Verdict::Machine, cause::MAXWORDS, 880..=920);
    }

    /// A loud word's echo (200 ms, 18 dB down) after the word ended is neither a word nor a delay.
    #[test]
    fn a_words_echo_is_not_a_word() {
        let params = AmdParams {
            maximum_words: 2,
            ..classic()
        };
        let d = decide_with(
            params,
            &concat(&[
                silence(300),
                speech(400, 16000.0, 1),
                tone(400, 300.0, 450),
                silence(2000),
            ]),
        )
        .expect("a decision");
        assert_decision(d, Verdict::Human, cause::HUMAN, 1480..=1540);
    }

    #[test]
    fn three_seconds_of_speech_is_a_long_greeting() {
        let d = decide(&concat(&[
            silence(300),
            speech(3000, 16000.0, 2),
            silence(1000),
        ]));
        assert_decision(d, Verdict::Machine, cause::LONGGREETING, 1760..=1840);
    }

    #[test]
    fn four_short_words_are_too_many() {
        let word_and_gap = concat(&[speech(300, 16000.0, 3), silence(200)]);
        let d = decide(&concat(&[word_and_gap.repeat(4), silence(2000)]));
        // The third word is confirmed 100 ms (min_word_ms) after it starts at 1000 ms.
        assert_decision(d, Verdict::Machine, cause::MAXWORDS, 1080..=1140);
    }

    /// Words separated by 60 ms of the line's own quiet noise are separate words (Asterisk's
    /// 50 ms), so a greeting's words are counted as soon as they are spoken.
    #[test]
    fn short_pauses_on_a_live_line_separate_words() {
        let word_and_gap = concat(&[speech(300, 16000.0, 3), noise(60, 200, 3)]);
        let d = decide(&concat(&[word_and_gap.repeat(4), silence(2000)]));
        // The third word starts at 720 ms and is confirmed 100 ms later.
        assert_decision(d, Verdict::Machine, cause::MAXWORDS, 800..=860);
    }

    /// "¿Hola? ¿Quién habla?" with packets lost inside "¿Quién habla?": up to 80 ms of digital
    /// silence (four packets) inside a word does not split it, so the person is still HUMAN.
    #[test]
    fn lost_packets_inside_a_word_do_not_split_it() {
        let quien_habla = speech(900, 16000.0, 9);
        let mut broken = Vec::new();
        for (i, piece) in quien_habla.chunks(8 * 150).enumerate() {
            broken.extend_from_slice(piece);
            broken.extend(silence(20 * (i as u32 % 4 + 1)));
        }
        let d = decide(&concat(&[
            speech(400, 16000.0, 8),
            noise(300, 200, 8),
            broken,
            silence(2000),
        ]));
        assert_eq!(
            (d.verdict, d.cause),
            (Verdict::Human, cause::HUMAN),
            "{d:?}"
        );

        // The same pauses filled with the line's noise are pauses: many words.
        let mut paused = Vec::new();
        for (i, piece) in quien_habla.chunks(8 * 150).enumerate() {
            paused.extend_from_slice(piece);
            paused.extend(noise(60 + 20 * (i as u32 % 2), 200, i as u32));
        }
        let d = decide(&concat(&[
            speech(400, 16000.0, 8),
            noise(300, 200, 8),
            paused,
        ]));
        assert_eq!(
            (d.verdict, d.cause),
            (Verdict::Machine, cause::MAXWORDS),
            "{d:?}"
        );
    }

    /// Digital silence still ends a word once it lasts 100 ms.
    #[test]
    fn long_digital_silence_ends_a_word() {
        let word_and_gap = concat(&[speech(300, 16000.0, 3), silence(100)]);
        let d = decide(&concat(&[word_and_gap.repeat(4), silence(2000)]));
        assert_decision(d, Verdict::Machine, cause::MAXWORDS, 880..=940);
    }

    #[test]
    fn one_endless_word_is_a_long_word() {
        let params = AmdParams {
            greeting_ms: 10_000,
            maximum_word_ms: 1000,
            ..classic()
        };
        let d = decide_with(params, &speech(3000, 16000.0, 4)).unwrap();
        assert_decision(d, Verdict::Machine, cause::LONGWORD, 980..=1020);
    }

    #[test]
    fn only_silence_is_notsure_initial_silence() {
        assert_decision(
            decide(&silence(4000)),
            Verdict::NotSure,
            cause::INITIALSILENCE,
            2500..=2500,
        );
    }

    #[test]
    fn low_noise_is_notsure_initial_silence() {
        let d = decide(&noise(4000, 400, 5)); // mean |x| ≈ 200 < 256
        assert_decision(d, Verdict::NotSure, cause::INITIALSILENCE, 2500..=2500);
    }

    #[test]
    fn words_that_never_settle_are_notsure_too_long() {
        let params = AmdParams {
            maximum_words: 100,
            greeting_ms: 10_000,
            ..classic()
        };
        let word_and_gap = concat(&[speech(200, 16000.0, 6), silence(600)]);
        let d = decide_with(params, &word_and_gap.repeat(8)).unwrap();
        assert_decision(d, Verdict::NotSure, cause::TOOLONG, 5000..=5000);
    }

    /// Noise that builds up to mean |x| ≈ 900 (3.5× `silence_threshold`) is followed by the
    /// floor, so it stays silence; a short greeting spoken over it is still heard.
    #[test]
    fn loud_steady_noise_raises_the_floor_and_speech_is_still_heard() {
        let noise_up = |tail_ms: u32| {
            let steps = [(240, 400), (480, 400), (960, 400), (1800, 400 + tail_ms)];
            concat(&steps.map(|(peak, ms)| noise(ms, peak, peak)))
        };
        let d = decide(&noise_up(3000));
        assert_decision(d, Verdict::NotSure, cause::INITIALSILENCE, 2500..=2500);

        let greeting = concat(&[silence(1600), speech(500, 24000.0, 7)]);
        let d = decide(&mix(&noise_up(3000), &greeting));
        assert_decision(d, Verdict::Human, cause::HUMAN, 2860..=2940);
    }

    #[test]
    fn a_beep_counts_as_voice() {
        let d = decide(&concat(&[tone(2000, 1000.0, 8000), silence(1000)]));
        assert_decision(d, Verdict::Machine, cause::LONGGREETING, 1480..=1520);
    }

    #[test]
    fn finish_without_audio_is_notsure() {
        let mut det = fresh();
        for frame in silence(300).chunks(160) {
            assert_eq!(det.feed(frame), None);
        }
        let d = det.finish();
        assert_decision(d, Verdict::NotSure, cause::INITIALSILENCE, 300..=300);
        assert_eq!(det.feed(&silence(3000)), None, "no decision after finish");
        assert_eq!(det.finish(), d, "finish repeats the decision");
        assert_eq!(fresh().finish().verdict, Verdict::NotSure);
    }

    #[test]
    fn finish_after_a_word_is_notsure_too_long() {
        let mut det = fresh();
        assert_eq!(det.feed(&speech(400, 16000.0, 8)), None);
        assert_decision(det.finish(), Verdict::NotSure, cause::TOOLONG, 400..=400);
    }

    #[test]
    fn verdict_spelling() {
        let all = [Verdict::Human, Verdict::Machine, Verdict::NotSure];
        assert_eq!(all.map(|v| v.as_str()), ["HUMAN", "MACHINE", "NOTSURE"]);
    }

    #[test]
    fn odd_frames_and_extreme_samples_do_not_panic() {
        let mut det = fresh();
        let mut beep = BeepDetector::new();
        let frames: [&[i16]; 5] = [
            &[],
            &[i16::MIN; 161],
            &[i16::MAX; 7],
            &[i16::MIN, i16::MAX],
            &[0; 1001],
        ];
        for frame in frames.iter().cycle().take(100) {
            det.feed(frame);
            beep.feed(frame);
        }
        assert_eq!(det.elapsed_ms(), (161 + 7 + 2 + 1001) * 20 / 8);
    }

    fn frame_strategy() -> impl Strategy<Value = Vec<i16>> {
        prop_oneof![
            prop::collection::vec(any::<i16>(), 0..400),
            (0..400usize, any::<i16>()).prop_map(|(n, v)| vec![v; n]),
            (0..400usize).prop_map(|n| vec![0; n]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_frames_never_panic_and_decide_at_most_once(
            frames in prop::collection::vec(frame_strategy(), 0..120)
        ) {
            let mut det = fresh();
            let mut beep = BeepDetector::new();
            let mut decisions = 0;
            for frame in &frames {
                decisions += usize::from(det.feed(frame).is_some());
                beep.feed(frame);
            }
            prop_assert!(decisions <= 1);
            let total: usize = frames.iter().map(Vec::len).sum();
            prop_assert_eq!(det.elapsed_ms() as usize, total / 8);
            let last = det.finish();
            prop_assert!(last.at_ms <= det.elapsed_ms());
            prop_assert_eq!(det.feed(&[1000; 160]), None);
        }
    }
}
