//! What a called party heard, read off the carrier's recordings (`STATE/rec/<number>-<uuid>.wav`)
//! with sox: where a known message is in it (by its energy envelope), where a 1 kHz beep ends.

use std::path::Path;
use std::process::Command;

/// 20 ms frames at 8 kHz.
pub const FRAME: usize = 160;
pub const FRAME_MS: u64 = 20;

/// Runs sox with `args`; a failure is the test's failure, with sox's own words.
pub fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox is installed (.ci/test-tools)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The samples of `path` as 8 kHz mono signed 16-bit, decoded by sox.
pub fn samples(path: &Path) -> Vec<i16> {
    let out = Command::new("sox")
        .arg(path)
        .args([
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            "8000",
            "-L",
            "-",
        ])
        .output()
        .expect("sox is installed (.ci/test-tools)");
    assert!(
        out.status.success(),
        "sox could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Whether each 20 ms frame carries sound (RMS above 2 % of full scale).
pub fn active(samples: &[i16]) -> Vec<bool> {
    samples
        .chunks(FRAME)
        .map(|f| {
            let ms = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
            ms.sqrt() > 0.02 * 32768.0
        })
        .collect()
}

/// Whether each frame is a 1 kHz tone (Goertzel power at 1 kHz ≥ 70 % of the frame's energy).
pub fn tone_1khz(samples: &[i16]) -> Vec<bool> {
    samples
        .chunks(FRAME)
        .map(|f| {
            let n = f.len() as f64;
            let coeff = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 / 8000.0).cos();
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in f {
                let s0 = f64::from(x) + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / (n * n);
            let ms = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / n;
            ms.sqrt() > 0.02 * 32768.0 && power >= 0.7 * ms
        })
        .collect()
}

/// The end (ms into the recording) of the first beep: a run of at least 200 ms of 1 kHz frames.
pub fn beep_end_ms(samples: &[i16]) -> Option<u64> {
    let tone = tone_1khz(samples);
    let mut run = 0;
    for (i, t) in tone.iter().enumerate() {
        if *t {
            run += 1;
        } else if run >= 10 {
            return Some(i as u64 * FRAME_MS);
        } else {
            run = 0;
        }
    }
    (run >= 10).then_some(tone.len() as u64 * FRAME_MS)
}

/// Where the first `len_ms` of `message` best sit in `recording`, at or after `from_ms`:
/// `(start ms, share of the message's sounding frames that sound in the recording there, share of
/// its silent frames that are silent there)`. A message heard whole scores near (1, 1).
pub fn locate(recording: &[bool], message: &[bool], from_ms: u64, len_ms: u64) -> (u64, f64, f64) {
    let len = ((len_ms / FRAME_MS) as usize).min(message.len());
    let msg = &message[..len];
    let sounding = msg.iter().filter(|a| **a).count().max(1) as f64;
    let silent = msg.iter().filter(|a| !**a).count().max(1) as f64;
    let mut best = (0u64, 0.0f64, 0.0f64);
    let first = (from_ms / FRAME_MS) as usize;
    for o in first..recording.len() {
        let mut hit = 0.0;
        let mut quiet = 0.0;
        for (i, m) in msg.iter().enumerate() {
            let r = recording.get(o + i).copied().unwrap_or(false);
            match (m, r) {
                (true, true) => hit += 1.0,
                (false, false) => quiet += 1.0,
                _ => {}
            }
        }
        let (h, q) = (hit / sounding, quiet / silent);
        if h + q > best.1 + best.2 {
            best = (o as u64 * FRAME_MS, h, q);
        }
    }
    best
}

/// Writes an 8 kHz mono 16-bit WAV of 400 Hz bursts, `pattern` giving (on ms, off ms) pairs: a
/// sound no called party of the test bed makes, so it can be found in a recording.
pub fn write_bursts(path: &Path, pattern: &[(u32, u32)]) {
    let mut pcm: Vec<i16> = Vec::new();
    for &(on, off) in pattern {
        for i in 0..(on * 8) {
            let t = f64::from(i) / 8000.0;
            pcm.push((0.5 * 32767.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16);
        }
        pcm.extend(std::iter::repeat_n(0i16, (off * 8) as usize));
    }
    let data_len = (pcm.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&8000u32.to_le_bytes());
    bytes.extend_from_slice(&16000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write the test's sound");
}
