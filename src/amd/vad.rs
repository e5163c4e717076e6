//! Energy voice-activity detection with an adaptive noise floor.
//!
//! A frame is "voice" when its mean absolute amplitude reaches the effective threshold:
//! `max(silence_threshold, 3 × noise floor)`. The floor has two estimates and takes the higher:
//! - an exponential average of the frames judged silent, so a line whose hiss or background
//!   noise builds up gradually keeps being judged silent even above `silence_threshold`;
//! - optionally ([`Vad::with_min_stat`]; off in the detector's default [`super::Tuning`], which
//!   did better without it on the corpus's train split: steady music under a greeting was taken
//!   for noise), the quietest frame of the last [`MIN_WINDOW_FRAMES`] (minimum statistics): noise that is
//!   there from the answer on never had a silent frame to learn from, but speech always has
//!   quieter frames between its syllables, so the minimum over a second and a half is the noise
//!   under it, not the speech. Speech, which rises well above that minimum, still stands out.
//!
//! A noise that jumps straight from quiet to more than 3× the floor looks like speech until the
//! minimum catches up with it (at most [`MIN_WINDOW_FRAMES`] frames).

/// The floor moves towards a silent frame's level with this time constant (in samples, 400 ms):
/// slow enough that the tail of a word does not drag it up, fast enough to follow a line's noise.
const FLOOR_TIME_CONSTANT: f32 = 3200.0;
/// Voice must be this many times louder than the floor (about 10 dB).
const FLOOR_FACTOR: f32 = 3.0;
/// Frames (20 ms) of the minimum-statistics window: 1.5 s, longer than a syllable's dips are
/// apart, shorter than a pause a noisy line would wait for.
pub(crate) const MIN_WINDOW_FRAMES: usize = 75;
/// The window is kept as this many blocks' minima (no allocation, a fixed array).
const MIN_BLOCKS: usize = 5;
const MIN_BLOCK_FRAMES: usize = MIN_WINDOW_FRAMES / MIN_BLOCKS;

/// Mean absolute amplitude of a frame; 0 for an empty frame.
pub(crate) fn mean_abs(frame: &[i16]) -> u32 {
    if frame.is_empty() {
        return 0;
    }
    let sum: u64 = frame.iter().map(|&s| u64::from(s.unsigned_abs())).sum();
    (sum / frame.len() as u64) as u32
}

/// Voice/silence classifier for consecutive frames of one call.
#[derive(Debug, Clone)]
pub(crate) struct Vad {
    min_threshold: f32,
    floor: f32,
    /// Minimum frame level of each of the last blocks (`u32::MAX`: not yet seen).
    block_min: [u32; MIN_BLOCKS],
    /// The block being filled, and how many frames it holds.
    block: usize,
    block_frames: usize,
    /// Frames seen: the minimum only counts once a block's worth of frames has been heard.
    frames: u64,
    /// Whether the minimum statistics raise the floor.
    min_stat: bool,
}

impl Vad {
    pub(crate) fn new(silence_threshold: u16) -> Self {
        Self::with_min_stat(silence_threshold, false)
    }

    /// [`Vad::new`], with or without the minimum-statistics floor.
    pub(crate) fn with_min_stat(silence_threshold: u16, min_stat: bool) -> Self {
        Self {
            min_stat,
            min_threshold: f32::from(silence_threshold),
            floor: 0.0,
            block_min: [u32::MAX; MIN_BLOCKS],
            block: 0,
            block_frames: 0,
            frames: 0,
        }
    }

    /// The level a frame must reach to count as voice right now.
    pub(crate) fn threshold(&self) -> f32 {
        let floor = self.floor.max(self.recent_min());
        self.min_threshold.max(floor * FLOOR_FACTOR)
    }

    /// The quietest frame of the window; 0 until a block's worth of frames was heard (the very
    /// first frames could all be one word).
    fn recent_min(&self) -> f32 {
        if !self.min_stat || self.frames < MIN_BLOCK_FRAMES as u64 {
            return 0.0;
        }
        self.block_min.iter().copied().min().unwrap_or(0) as f32
    }

    /// Notes a full-length frame's level in the minimum-statistics window.
    fn remember(&mut self, level: u32) {
        self.frames += 1;
        if self.block_frames == MIN_BLOCK_FRAMES {
            self.block = (self.block + 1) % MIN_BLOCKS;
            self.block_min[self.block] = u32::MAX;
            self.block_frames = 0;
        }
        self.block_min[self.block] = self.block_min[self.block].min(level);
        self.block_frames += 1;
    }

    /// Classifies one frame (true = voice) and lets a silent frame pull the floor towards its
    /// level, weighted by the frame's length.
    pub(crate) fn classify(&mut self, frame: &[i16]) -> bool {
        self.voice_level(frame).is_some()
    }

    /// [`Vad::classify`], giving a voiced frame's level (mean absolute amplitude).
    pub(crate) fn voice_level(&mut self, frame: &[i16]) -> Option<u32> {
        if frame.is_empty() {
            return None;
        }
        let level = mean_abs(frame);
        let threshold = self.threshold();
        if frame.len() >= 80 {
            self.remember(level);
        }
        if level as f32 >= threshold {
            return Some(level);
        }
        let weight = (frame.len() as f32 / FLOOR_TIME_CONSTANT).min(1.0);
        self.floor += (level as f32 - self.floor) * weight;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amd::test_signals::{noise, tone};

    fn voiced_frames(vad: &mut Vad, samples: &[i16]) -> usize {
        samples.chunks(160).filter(|f| vad.classify(f)).count()
    }

    #[test]
    fn mean_abs_handles_extremes() {
        assert_eq!(mean_abs(&[]), 0);
        assert_eq!(mean_abs(&[i16::MIN, i16::MAX]), 32767);
        assert_eq!(mean_abs(&[-10, 10, -10, 10]), 10);
    }

    #[test]
    fn quiet_noise_is_silence_and_a_tone_is_voice() {
        let mut vad = Vad::new(256);
        assert_eq!(voiced_frames(&mut vad, &noise(1000, 200, 1)), 0);
        assert_eq!(voiced_frames(&mut vad, &tone(200, 1000.0, 4000)), 10);
    }

    /// Noise rising in steps of ×2 is followed by the floor: at 900 (3.5× `silence_threshold`) it
    /// is still silence, and the threshold has risen far above `silence_threshold`.
    #[test]
    fn floor_follows_gradually_rising_noise() {
        let mut vad = Vad::new(256);
        for (i, level) in [120, 240, 480, 900].into_iter().enumerate() {
            assert_eq!(
                voiced_frames(&mut vad, &noise(400, level * 2, i as u32)),
                0,
                "{level}"
            );
        }
        assert!(
            (1800.0..2800.0).contains(&vad.threshold()),
            "{}",
            vad.threshold()
        );
        // The same noise on a fresh detector is voice: the floor is what made it silence.
        assert_eq!(voiced_frames(&mut Vad::new(256), &noise(400, 1800, 9)), 20);
    }

    /// Noise that is there from the first frame never gives the exponential floor a silent
    /// frame to learn from; the minimum statistics follow it within one block, and speech over
    /// it still stands out.
    #[test]
    fn minimum_statistics_follow_noise_from_the_answer() {
        let loud_noise = noise(2000, 1600, 4); // mean |x| ≈ 800, 3× the threshold
        assert!(voiced_frames(&mut Vad::new(256), &loud_noise) > 90);
        let mut vad = Vad::with_min_stat(256, true);
        let voiced = voiced_frames(&mut vad, &loud_noise);
        assert!(
            voiced <= MIN_BLOCK_FRAMES,
            "{voiced} frames of noise were voice"
        );
        assert_eq!(voiced_frames(&mut vad, &tone(200, 300.0, 12000)), 10);
    }

    #[test]
    fn floor_falls_back_when_the_noise_stops() {
        let mut vad = Vad::new(256);
        for (i, level) in [120, 240, 480].into_iter().enumerate() {
            voiced_frames(&mut vad, &noise(400, level * 2, i as u32));
        }
        assert!(vad.threshold() > 1000.0);
        voiced_frames(&mut vad, &vec![0; 8 * 3000]);
        assert_eq!(vad.threshold(), 256.0);
    }
}
