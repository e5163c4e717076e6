//! The labeled AMD corpus (`scripts/amd-corpus/`: real recorded voices from Debian packages,
//! split by speaker) through a real FreeSWITCH 1.10.12, as `amd_set` runs its set: every file is
//! a called party (`5556N` plays `N.wav`), a campaign decides each, the CDRs are compared with
//! the labels.
//!
//! Only the **test split** is played here, and it is never used to choose a rule, a threshold
//! or a weight (those were chosen on the train split and checked on validation, offline:
//! `benches/amd_offline.rs`). The thresholds asserted below are regression guards set from the
//! validation figures with a margin, not the targets; BENCHMARKS.md has the whole
//! split's figures (`make bench-amd-corpus`, the ignored test at the end).

use crate::amd_set::{medians_where_both_right_on, report, run_files, save_report, SetResult};
use crate::common;
use crate::real_switch::app;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::freeswitch::{SwitchOptions, TestSwitch};
use serde_json::json;

/// One labeled file of the corpus.
struct CorpusFile {
    n: u32,
    label: String,
    kind: String,
    description: String,
}

/// Writes the test split (all of it, or `sample` files of each label) into `dir` and returns
/// its rows.
fn generate(dir: &Path, split: &str, sample: Option<usize>) -> Vec<CorpusFile> {
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/amd-corpus/generate");
    let mut cmd = Command::new(generator);
    cmd.arg(dir).args(["--split", split]);
    if let Some(k) = sample {
        cmd.args(["--sample", &k.to_string()]);
    }
    let out = cmd
        .output()
        .expect("scripts/amd-corpus/generate runs (python3, sox, espeak-ng, apt-get, dpkg-deb)");
    assert!(
        out.status.success(),
        "scripts/amd-corpus/generate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(8, '\t').collect();
            assert_eq!(f.len(), 8, "labels.tsv row {l:?}");
            assert_eq!(f[2], split, "a file of another split: {l}");
            CorpusFile {
                n: f[0].parse().expect("n"),
                label: f[1].to_owned(),
                kind: f[3].to_owned(),
                description: format!("{} {}: {}", f[3], f[6], f[7]),
            }
        })
        .collect()
}

/// The files a detector is judged on: every label for the service's own detector, which
/// recognises SIT tones; people, machines and dead air for mod_amd, which has no SIT answer.
fn for_detector(files: &[CorpusFile], amd: &str) -> Vec<(u32, String, String)> {
    files
        .iter()
        .filter(|f| amd == "integrado" || f.label != "SIT")
        .map(|f| (f.n, f.label.clone(), f.description.clone()))
        .collect()
}

/// The files through a switch of their own with AMD mode `amd`; every file has one CDR.
async fn through_the_switch(amd: &str, files: &[CorpusFile], nombre: &str) -> Vec<SetResult> {
    let fs = TestSwitch::start_with(SwitchOptions {
        without: if amd == "integrado" {
            vec!["mod_amd", "mod_avmd"]
        } else {
            vec![]
        },
        ..Default::default()
    });
    let wanted = for_detector(files, amd);
    // The switch has its own state directory: the files go there.
    let dir = fs.state.join("sounds/set");
    std::fs::create_dir_all(&dir).expect("sounds/set");
    let source = files_dir();
    for (n, _, _) in &wanted {
        std::fs::copy(
            source.join(format!("{n}.wav")),
            dir.join(format!("{n}.wav")),
        )
        .expect("a corpus file is copied");
    }
    let app = app(&fs, &[]).await;
    let results = run_files(
        &app,
        &fs,
        nombre,
        json!({"amd": amd, "cps": 5, "max_canales": 20}),
        &wanted,
    )
    .await;
    let mut per_file: BTreeMap<u32, usize> = BTreeMap::new();
    for r in &results {
        *per_file.entry(r.n).or_default() += 1;
    }
    for (n, _, description) in &wanted {
        assert_eq!(
            per_file.get(n).copied().unwrap_or(0),
            1,
            "{amd}: {n}.wav ({description}): one CDR"
        );
    }
    fs.wait_no_channels(Duration::from_secs(10)).await;
    app.shutdown().await;
    results
}

/// Where the generated files are kept for both switches: a directory of this test's own.
fn files_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("discador-amd-corpus-{}", std::process::id()))
}

/// `(right, scored, people decided MACHINE)` over the HUMAN and MACHINE files.
fn score(results: &[SetResult]) -> (usize, usize, usize) {
    let scored: Vec<&SetResult> = results
        .iter()
        .filter(|r| r.label == "HUMAN" || r.label == "MACHINE")
        .collect();
    let right = scored.iter().filter(|r| r.amd_resultado == r.label).count();
    let costly = scored
        .iter()
        .filter(|r| r.label == "HUMAN" && r.amd_resultado == "MACHINE")
        .count();
    (right, scored.len(), costly)
}

/// Right / total per kind of file (`labels.tsv`'s kind), as a Markdown table.
fn by_kind(files: &[CorpusFile], results: &[SetResult]) -> String {
    let kind: BTreeMap<u32, (&str, &str)> = files
        .iter()
        .map(|f| (f.n, (f.label.as_str(), f.kind.as_str())))
        .collect();
    let mut rows: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for r in results {
        let Some(&(label, k)) = kind.get(&r.n) else {
            continue;
        };
        let right = match label {
            "SIT" => r.resultado == "NUMERO_INVALIDO",
            "SILENCE" => continue,
            _ => r.amd_resultado == label,
        };
        let e = rows.entry((label, k)).or_default();
        e.0 += usize::from(right);
        e.1 += 1;
    }
    let mut out = String::from("| label | kind | right | files |\n|---|---|---:|---:|\n");
    for ((label, k), (right, n)) in rows {
        out.push_str(&format!("| {label} | {k} | {right} | {n} |\n"));
    }
    out
}

/// Both detectors on `files`; returns the summary line and writes the reports.
async fn compare(files: &[CorpusFile], tag: &str) -> (Vec<SetResult>, Vec<SetResult>, String) {
    let dir = files_dir();
    let integrado = through_the_switch("integrado", files, &format!("CORPUS_I_{tag}")).await;
    let mod_amd = through_the_switch("mod_amd", files, &format!("CORPUS_M_{tag}")).await;
    let (ir, in_, ic) = score(&integrado);
    let (mr, mn, mc) = score(&mod_amd);
    let (ip, mp) = medians_where_both_right_on(&integrado, &mod_amd, &["HUMAN"]);
    let sits = files.iter().filter(|f| f.label == "SIT").count();
    let sit_right = integrado
        .iter()
        .filter(|r| r.label == "SIT" && r.resultado == "NUMERO_INVALIDO")
        .count();
    let summary = format!(
        "{tag}: integrado {ir}/{in_} = {:.1} %, people decided MACHINE {ic}; \
         mod_amd {mr}/{mn} = {:.1} %, people decided MACHINE {mc}; people both decided right: \
         median decision integrado {ip} ms, mod_amd {mp} ms; SIT recognised {sit_right}/{sits}",
        100.0 * ir as f64 / in_.max(1) as f64,
        100.0 * mr as f64 / mn.max(1) as f64,
    );
    let text = format!(
        "{}\n\n{}\n{}\n#### integrado by kind\n\n{}\n#### mod_amd by kind\n\n{}",
        summary,
        report("integrado on the corpus's test split", &integrado),
        report("mod_amd on the corpus's test split", &mod_amd),
        by_kind(files, &integrado),
        by_kind(files, &mod_amd),
    );
    let path = save_report(&format!("corpus-{tag}.md"), &text);
    eprintln!("{summary}\nreport written to {}", path.display());
    let _ = std::fs::remove_dir_all(dir);
    (integrado, mod_amd, summary)
}

/// Generates the files once into a directory of this test's own and returns their rows.
fn prepare(split: &str, sample: Option<usize>) -> Vec<CorpusFile> {
    let dir = files_dir();
    let _ = std::fs::remove_dir_all(&dir);
    generate(&dir, split, sample)
}

/// A bounded sample of the test split (16 people, 16 machines, 12 SIT calls; the same files on
/// every run): the service's own detector calls no more people machines than mod_amd and stays
/// above the validation split's figures less a margin (90 % and 1 of 86 people through the
/// switch: asserted ≥ 75 % and at most 2 people). Accuracy against mod_amd's and the SIT calls
/// are reported, not asserted: on this sample mod_amd was right on one machine more (BENCHMARKS.md),
/// and the controller does not yet act on a SIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrated_detector_holds_on_held_out_speakers() {
    let files = prepare("test", Some(16));
    let (integrado, mod_amd, summary) = compare(&files, "sample").await;
    let (ir, n, ic) = score(&integrado);
    let (_, _, mc) = score(&mod_amd);
    assert!(n >= 30, "{summary}");
    assert!(ic <= mc, "people called machines: {summary}");
    assert!(ir * 100 >= n * 75, "accuracy under the guard: {summary}");
    assert!(ic <= 2, "people called machines: {summary}");
}

/// The whole test split through both detectors, for BENCHMARKS.md: `make bench-amd-corpus`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the whole split takes minutes: make bench-amd-corpus"]
async fn whole_test_split_report() {
    let files = prepare("test", None);
    let (_, _, summary) = compare(&files, "test").await;
    eprintln!("{summary}");
}

/// The validation split through both detectors, the same way (it may be looked at: it checks the
/// rules chosen on train): `make bench-amd-corpus`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the whole split takes minutes: make bench-amd-corpus"]
async fn whole_validation_split_report() {
    let files = prepare("validation", None);
    let (_, _, summary) = compare(&files, "validation").await;
    eprintln!("{summary}");
}
