//! Energy voice-activity detection with an adaptive noise floor.
//!
//! A frame is "voice" when its mean absolute amplitude reaches the effective threshold:
//! `max(silence_threshold, 3 × noise floor)`. The floor is an exponential average of the frames
//! judged silent, so a line whose hiss or background noise builds up gradually keeps being judged
//! silent even above `silence_threshold`, while speech, which starts abruptly, still stands out.
//! A noise that jumps straight from quiet to more than 3× the floor looks like speech: an energy
//! detector cannot tell them apart, and the classic detector has the same limit.

/// The floor moves towards a silent frame's level with this time constant (in samples, 400 ms):
/// slow enough that the tail of a word does not drag it up, fast enough to follow a line's noise.
const FLOOR_TIME_CONSTANT: f32 = 3200.0;
/// Voice must be this many times louder than the floor (about 10 dB).
const FLOOR_FACTOR: f32 = 3.0;

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
}

impl Vad {
    pub(crate) fn new(silence_threshold: u16) -> Self {
        Self {
            min_threshold: f32::from(silence_threshold),
            floor: 0.0,
        }
    }

    /// The level a frame must reach to count as voice right now.
    pub(crate) fn threshold(&self) -> f32 {
        self.min_threshold.max(self.floor * FLOOR_FACTOR)
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
        if level as f32 >= self.threshold() {
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
