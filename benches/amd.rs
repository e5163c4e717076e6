//! CPU and memory of the service's own answering-machine detector (`amd: integrado`), per call.
//!
//! The audio is the labeled set (`scripts/amd-set/generate`, espeak-ng + sox), encoded as the
//! switch streams it (µ-law, 160-byte packets of 20 ms). Per packet the bench does what the
//! controller's audio tap does: decode it, feed the detector, and feed the beep detector too (the
//! worst case: a machine whose message waits for the beep). The whole set is fed `RUNS` times, each
//! file into fresh detectors, as separate calls. A second figure is the SIT detector alone
//! (`SitDetector::feed`) on the same packets, decoded beforehand, plus one SIT of each standard.
//!
//! Run: `cargo bench --bench amd` (release). Figures go to BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use discador::amd::{ulaw_to_linear, AmdParams, BeepDetector, Detector, SitDetector};

const RUNS: usize = 20;
const PACKET: usize = 160;

fn set() -> Vec<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("discador-amd-bench-{}", std::process::id()));
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/amd-set/generate");
    let ok = Command::new(&generator)
        .arg(&dir)
        .status()
        .expect("scripts/amd-set/generate runs (needs espeak-ng and sox)");
    assert!(ok.success(), "the labeled set was not generated");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    let audio = files
        .iter()
        .map(|f| {
            let out = Command::new("sox")
                .arg(f)
                .args(["-t", "raw", "-e", "mu-law", "-r", "8000", "-c", "1", "-"])
                .output()
                .expect("sox");
            out.stdout
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    audio
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let audio = set();
    let seconds: f64 = audio.iter().map(|a| a.len() as f64 / 8000.0).sum::<f64>() * RUNS as f64;
    let packets: usize = audio
        .iter()
        .map(|a| a.len().div_ceil(PACKET))
        .sum::<usize>()
        * RUNS;
    let mut frame = [0i16; PACKET];
    let mut decisions = 0usize;
    let t0 = Instant::now();
    for _ in 0..RUNS {
        for call in &audio {
            let mut detector = Detector::new(AmdParams::default());
            let mut beeps = BeepDetector::new();
            for p in call.chunks(PACKET) {
                for (s, b) in frame.iter_mut().zip(p) {
                    *s = ulaw_to_linear(*b);
                }
                let f = &frame[..p.len()];
                if detector.feed(f).is_some() {
                    decisions += 1;
                }
                let _ = std::hint::black_box(beeps.feed(f));
            }
        }
    }
    let cpu = t0.elapsed().as_secs_f64();
    let per_packet_ns = cpu * 1e9 / packets as f64;
    println!(
        "audio fed: {seconds:.0} s in {} calls ({packets} packets of 20 ms), {decisions} decisions",
        audio.len() * RUNS
    );
    println!("cpu: {cpu:.3} s · {per_packet_ns:.0} ns per 20 ms packet (decode + detector + beep detector)");
    println!(
        "one core keeps up with {:.0} calls streaming at once ({:.4} % of a core per call)",
        20e6 / per_packet_ns,
        per_packet_ns / 20e6 * 100.0
    );
    println!(
        "state per call: Detector {} B + BeepDetector {} B + the tap's sample buffer {} B",
        std::mem::size_of::<Detector>(),
        std::mem::size_of::<BeepDetector>(),
        PACKET * 4 * 2
    );
    sit(&audio);
}

/// Tones back to back (Hz, ms), at −15 dBFS.
fn tones(parts: &[(f64, u32)]) -> Vec<i16> {
    parts
        .iter()
        .flat_map(|&(hz, ms)| {
            (0..ms as usize * 8).map(move |i| {
                (5800.0 * (std::f64::consts::TAU * hz * i as f64 / 8000.0).sin()) as i16
            })
        })
        .collect()
}

/// `SitDetector::feed` per 20 ms packet: the labeled set (speech, music, beeps: the detector's
/// costly case, since silence stops at its level check), then an ANSI and an ITU SIT, each call
/// into a fresh detector. The set must give no SIT.
fn sit(audio: &[Vec<u8>]) {
    let mut calls: Vec<Vec<i16>> = audio
        .iter()
        .map(|call| call.iter().map(|&b| ulaw_to_linear(b)).collect())
        .collect();
    calls.push(tones(&[
        (913.8, 274),
        (1370.6, 274),
        (1776.7, 380),
        (0.0, 500),
    ]));
    calls.push(tones(&[
        (950.0, 330),
        (1400.0, 330),
        (1800.0, 330),
        (0.0, 500),
    ]));
    let packets: usize = calls
        .iter()
        .map(|c| c.len().div_ceil(PACKET))
        .sum::<usize>()
        * RUNS;
    let (mut in_set, mut synthetic) = (0usize, 0usize);
    let t0 = Instant::now();
    for _ in 0..RUNS {
        for (i, call) in calls.iter().enumerate() {
            let mut detector = SitDetector::new();
            for f in call.chunks(PACKET) {
                if detector.feed(std::hint::black_box(f)).is_some() {
                    if i < audio.len() {
                        in_set += 1;
                    } else {
                        synthetic += 1;
                    }
                }
            }
        }
    }
    let per_packet_ns = t0.elapsed().as_secs_f64() * 1e9 / packets as f64;
    println!(
        "SitDetector: {per_packet_ns:.0} ns per 20 ms packet (feed only), state {} B; SITs: {in_set} in the set (0 expected), {synthetic} of {} synthetic",
        std::mem::size_of::<SitDetector>(),
        2 * RUNS
    );
}
