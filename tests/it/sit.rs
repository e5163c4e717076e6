//! SIT tones on a real FreeSWITCH 1.10.12: a number the network answers with the Special
//! Information Tone and "the number you have dialed is not in service" is an invalid number,
//! recorded NUMERO_INVALIDO and never dialed again, for the integrated detector's campaigns.

use crate::common;
use crate::real_switch::{app, campaign, command, finished, numbers_of};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::audio;
use common::freeswitch::TestSwitch;
use discador::amd::SitDetector;
use serde_json::json;

/// Writes an intercept to `path` (8 kHz mono): an ANSI SIT (913.8, 1370.6, 1776.7 Hz; 274, 274,
/// 380 ms) and the spoken announcement (espeak-ng).
fn intercept(path: &Path) {
    let dir = path.parent().expect("a directory");
    let (sit, spoken, speech) = (
        dir.join("sit-tonos.wav"),
        dir.join("sit-espeak.wav"),
        dir.join("sit-voz.wav"),
    );
    let s = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
    audio::sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &s(&sit),
        "synth",
        "0.274",
        "sine",
        "913.8",
        "vol",
        "0.5",
        ":",
        "synth",
        "0.274",
        "sine",
        "1370.6",
        "vol",
        "0.5",
        ":",
        "synth",
        "0.380",
        "sine",
        "1776.7",
        "vol",
        "0.5",
    ]);
    let out = Command::new("espeak-ng")
        .args(["-v", "en", "-w"])
        .arg(&spoken)
        .arg(
            "The number you have dialed is not in service. Please check the number and dial again.",
        )
        .output()
        .expect("espeak-ng is installed (.ci/test-tools)");
    assert!(out.status.success(), "espeak-ng failed");
    audio::sox(&[
        &s(&spoken),
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &s(&speech),
    ]);
    audio::sox(&[&s(&sit), &s(&speech), &s(path)]);
    for p in [sit, spoken, speech] {
        let _ = std::fs::remove_file(p);
    }
}

/// Whether the SIT detector hears a SIT in `path` as the switch streams it (µ-law, 20 ms).
fn sit_heard(path: &Path) -> bool {
    let ulaw = path.with_extension("ulaw.wav");
    audio::sox(&[
        path.to_str().expect("a UTF-8 path"),
        "-e",
        "u-law",
        ulaw.to_str().expect("a UTF-8 path"),
    ]);
    let pcm = audio::samples(&ulaw);
    let _ = std::fs::remove_file(&ulaw);
    let mut d = SitDetector::new();
    pcm.chunks_exact(audio::FRAME).any(|f| d.feed(f).is_some())
}

#[tokio::test]
async fn a_sit_answer_is_an_invalid_number_dialed_once() {
    let fs = TestSwitch::start();
    let file = fs.state.join("sounds/set/4.wav");
    intercept(&file);
    assert!(
        sit_heard(&file),
        "the SIT detector does not hear the intercept's SIT"
    );
    let app = app(&fs, &[]).await;
    let (sit, person) = ("55564", "5550041");
    // With retries left and no delay: a retried number would be dialed again at once.
    campaign(
        &app,
        "SIT",
        json!({"amd": "integrado", "reintentos": 2, "intervalo_reintento": 0,
               "destino_humano": ""}),
        &[sit.to_owned(), person.to_owned()],
    )
    .await;
    let (s, b) = command(&app, "iniciar", "SIT").await;
    assert_eq!(s, 200, "{b}");
    let end = finished(&app, &fs, "SIT", Duration::from_secs(60)).await;

    let cdrs = app.db.sql(&format!(
        "SELECT resultado, estado, causa, amd_resultado, amd_causa, \
         COALESCE(disposicion, '-'), COALESCE(amd_inicial, '-') FROM llamadas \
         WHERE telefono = '{sit}'"
    ));
    assert_eq!(
        cdrs, "NUMERO_INVALIDO\tERROR\tUNALLOCATED_NUMBER\tSIT\tSIT\t-\t-",
        "one CDR, an invalid number"
    );
    let numbers = numbers_of(&app, "SIT");
    assert_eq!(
        numbers[sit],
        ("ERROR".to_owned(), "NUMERO_INVALIDO".to_owned(), 1),
        "{numbers:?}"
    );
    // The person beside it is a person: the SIT detector does not hear speech as a SIT.
    assert_eq!(numbers[person].1, "HUMANO", "{numbers:?}");
    let dialed = fs
        .recordings()
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{sit}-")))
        })
        .count();
    assert_eq!(dialed, 1, "the invalid number was dialed {dialed} times");
    assert_eq!(end["estadisticas"]["errores"], 1, "{end}");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}
