//! The service's detector on the labeled AMD corpus (`scripts/amd-corpus/`), offline: every file
//! is coded to µ-law as the switch streams it and fed to a fresh [`Detector`] in 20 ms frames,
//! with no switch in between. It is the quick loop for working on the detector: the figures that
//! count are the real switch's (`cargo bench --bench amd_corpus`).
//!
//! The test split is never looked at here unless `--test` is given, and rules, thresholds and
//! weights are chosen on `train` alone (`validation` checks them): see scripts/amd-corpus/README.md.
//!
//! Run: `cargo test --release --bench amd_offline -- --offline [--dir DIR] [--split S] [--test]
//! [--misses]` (DIR defaults to target/amd-corpus/all, made by `make amd-corpus`). Other
//! settings for a sweep come in `AMD=k=v,…` (keys in [`settings`]: `g` greeting_ms, `w`
//! maximum_words, `av`/`ae` the ambiguous-answer rule, …); the defaults in `src/amd/mod.rs` are
//! what such sweeps chose on the train split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use discador::amd::{ulaw_to_linear, AmdParams, Detector, SitDetector, Tuning, Verdict};

/// One labeled file.
struct Entry {
    n: u32,
    label: String,
    split: String,
    kind: String,
    description: String,
}

fn labels(dir: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(8, '\t').collect();
            assert_eq!(f.len(), 8, "labels.tsv row {l:?}");
            Entry {
                n: f[0].parse().expect("n"),
                label: f[1].to_owned(),
                split: f[2].to_owned(),
                kind: f[3].to_owned(),
                description: f[7].to_owned(),
            }
        })
        .collect()
}

/// The samples of a 16-bit mono WAV file (its `data` chunk).
fn read_wav(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let end = (at + 8 + len).min(bytes.len());
            return bytes[at + 8..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display())
}

/// G.711 µ-law encoder (the switch codes the carrier's file to PCMU before it streams it).
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (0..8).rev().find(|e| s & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// What the detector made of one file.
struct Outcome {
    decided: &'static str,
    cause: &'static str,
    at_ms: u32,
}

fn settings() -> (AmdParams, Tuning) {
    let mut p = AmdParams::default();
    let mut t = Tuning::default();
    if let Ok(spec) = std::env::var("AMD") {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("k=v");
            let v: u32 = v.parse().expect("number");
            match k {
                "is" => p.initial_silence_ms = v,
                "g" => p.greeting_ms = v,
                "ag" => p.after_greeting_silence_ms = v,
                "t" => p.total_analysis_ms = v,
                "mw" => p.min_word_ms = v,
                "bw" => p.between_words_silence_ms = v,
                "w" => p.maximum_words = v,
                "lw" => p.maximum_word_ms = v,
                "th" => p.silence_threshold = v as u16,
                "av" => t.ambiguous_voiced_ms = v,
                "ae" => t.ambiguous_extra_silence_ms = v,
                "beep" => t.beep_is_machine = v != 0,
                "mb" => t.min_beep_ms = v,
                "ms" => t.noise_floor_min_stat = v != 0,
                _ => panic!("unknown {k}"),
            }
        }
    }
    (p, t)
}

fn detect(samples: &[i16]) -> Outcome {
    let (p, t) = settings();
    let mut det = Detector::with_tuning(p, t);
    let mut sit = SitDetector::new();
    let coded: Vec<i16> = samples
        .iter()
        .map(|s| ulaw_to_linear(linear_to_ulaw(*s)))
        .collect();
    for frame in coded.chunks(160) {
        if let Some(s) = sit.feed(frame) {
            return Outcome {
                decided: "SIT",
                cause: "SIT",
                at_ms: s.at_ms,
            };
        }
        if let Some(d) = det.feed(frame) {
            return Outcome {
                decided: d.verdict.as_str(),
                cause: d.cause,
                at_ms: d.at_ms,
            };
        }
    }
    let d = det.finish();
    Outcome {
        decided: match d.verdict {
            Verdict::Human => "HUMAN",
            Verdict::Machine => "MACHINE",
            Verdict::NotSure => "NOTSURE",
        },
        cause: d.cause,
        at_ms: d.at_ms,
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--offline") {
        return;
    }
    let dir = arg("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/amd-corpus/all"));
    let with_test = args.iter().any(|a| a == "--test");
    let misses = args.iter().any(|a| a == "--misses");
    let only = arg("--split");
    let entries: Vec<Entry> = labels(&dir)
        .into_iter()
        .filter(|e| with_test || e.split != "test")
        .filter(|e| only.as_deref().is_none_or(|s| s == e.split))
        .collect();
    // split → label → decided → count; split → kind → (right, total)
    let mut matrix: BTreeMap<(String, String, &str), usize> = BTreeMap::new();
    let mut kinds: BTreeMap<(String, String, String), (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut human_ms: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for e in &entries {
        let o = detect(&read_wav(&dir.join(format!("{}.wav", e.n))));
        *matrix
            .entry((e.split.clone(), e.label.clone(), o.decided))
            .or_default() += 1;
        if e.label == "SILENCE" {
            continue;
        }
        let right = o.decided == e.label;
        let k = kinds
            .entry((e.split.clone(), e.label.clone(), e.kind.clone()))
            .or_default();
        k.0 += usize::from(right);
        k.1 += 1;
        if right && e.label == "HUMAN" {
            human_ms.entry(e.split.clone()).or_default().push(o.at_ms);
        }
        if !right && e.split != "test" {
            wrong.push(format!(
                "{} {} {} {} → {} ({}) at {} ms: {}",
                e.split, e.n, e.label, e.kind, o.decided, o.cause, o.at_ms, e.description
            ));
        }
    }
    let splits: Vec<String> = {
        let mut s: Vec<String> = entries.iter().map(|e| e.split.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    for split in &splits {
        println!("== {split}");
        let mut right = 0;
        let mut scored = 0;
        for label in ["HUMAN", "MACHINE", "SIT", "SILENCE"] {
            let row: Vec<String> = ["HUMAN", "MACHINE", "NOTSURE", "SIT"]
                .iter()
                .map(|d| {
                    let c = matrix
                        .get(&(split.clone(), label.to_owned(), *d))
                        .copied()
                        .unwrap_or(0);
                    if label != "SILENCE" {
                        scored += c;
                        if *d == label {
                            right += c;
                        }
                    }
                    format!("{d} {c:>3}")
                })
                .collect();
            println!("  {label:<8} {}", row.join("  "));
        }
        let mut t = human_ms.get(split).cloned().unwrap_or_default();
        t.sort_unstable();
        println!(
            "  accuracy {right}/{scored} = {:.1} %; people decided right: median {} ms (audio time)",
            100.0 * right as f64 / scored.max(1) as f64,
            t.get(t.len() / 2).copied().unwrap_or(0)
        );
        for ((s, label, kind), (r, n)) in &kinds {
            if s == split && r != n {
                println!("    {label} {kind}: {r}/{n}");
            }
        }
    }
    if misses {
        for w in wrong {
            println!("{w}");
        }
    }
}
