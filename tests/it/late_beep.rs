//! A wrong HUMAN verdict corrected by a late beep, on a real FreeSWITCH 1.10.12: a short
//! voicemail greeting ("Buzón de voz." and silence) looks like a person to the detectors; its
//! beep comes while the person's message plays. The message must stop, the call become a
//! machine (`LATE_BEEP`, the first verdict kept in `amd_inicial`) and the machine's message be
//! left whole after the beep. A person who presses a key during the message is still a person.
//! What each called party heard is read off the carrier's recording of the call (sox).

use crate::common;
use crate::real_switch::{app, campaign, command, finished};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::audio::{self, FRAME_MS};
use common::freeswitch::TestSwitch;
use common::TestApp;
use discador::amd::{AmdParams, Detector, Verdict};
use serde_json::json;

/// The person's message (the test bed's 6 s spoken message).
const MESSAGE: &str = "message.wav";
/// The machine's message: 400 Hz bursts no called party makes, 4.2 s.
const MACHINE_MESSAGE: &str = "maquina.wav";
const MACHINE_PATTERN: [(u32, u32); 6] = [
    (400, 200),
    (700, 150),
    (300, 400),
    (500, 150),
    (250, 300),
    (600, 250),
];

/// Writes a short voicemail greeting to `path` (8 kHz mono): "Buzón de voz." (espeak-ng, its
/// silences trimmed: about 0.6 s of speech), 2 s of silence, a 1 kHz beep of 0.5 s, 6 s of
/// silence.
fn short_greeting(path: &Path) {
    let dir = path.parent().expect("a directory");
    let name = path.file_stem().and_then(|s| s.to_str()).expect("a name");
    let part = |p: &str| dir.join(format!("{name}-{p}.wav"));
    let (spoken, speech, silence, beep, tail) = (
        part("espeak"),
        part("voz"),
        part("silencio"),
        part("pitido"),
        part("cola"),
    );
    let out = Command::new("espeak-ng")
        .args(["-v", "es", "-s", "200", "-w"])
        .arg(&spoken)
        .arg("Buzón de voz")
        .output()
        .expect("espeak-ng is installed (.ci/test-tools)");
    assert!(out.status.success(), "espeak-ng failed");
    let s = |p: &PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
    audio::sox(&[
        &s(&spoken),
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &s(&speech),
        "silence",
        "1",
        "0.01",
        "1%",
        "reverse",
        "silence",
        "1",
        "0.01",
        "1%",
        "reverse",
    ]);
    let quiet = |p: &PathBuf, secs: &str| {
        audio::sox(&[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            &s(p),
            "trim",
            "0",
            secs,
        ])
    };
    quiet(&silence, "2");
    quiet(&tail, "6");
    audio::sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &s(&beep),
        "synth",
        "0.5",
        "sine",
        "1000",
        "vol",
        "0.7",
    ]);
    audio::sox(&[
        &s(&speech),
        &s(&silence),
        &s(&beep),
        &s(&tail),
        path.to_str().expect("a UTF-8 path"),
    ]);
    for p in [spoken, speech, silence, beep, tail] {
        let _ = std::fs::remove_file(p);
    }
}

/// The integrated detector's verdict (default parameters) on `path` as the switch streams it:
/// coded to µ-law and back, in 20 ms frames.
fn integrated_verdict(path: &Path) -> (Verdict, &'static str) {
    let ulaw = path.with_extension("ulaw.wav");
    audio::sox(&[
        path.to_str().expect("a UTF-8 path"),
        "-e",
        "u-law",
        ulaw.to_str().expect("a UTF-8 path"),
    ]);
    let pcm = audio::samples(&ulaw);
    let _ = std::fs::remove_file(&ulaw);
    let mut detector = Detector::new(AmdParams::default());
    for frame in pcm.chunks_exact(audio::FRAME) {
        if let Some(d) = detector.feed(frame) {
            return (d.verdict, d.cause);
        }
    }
    let d = detector.finish();
    (d.verdict, d.cause)
}

/// The last CDR of `telefono` in campaign `campana`, by column.
fn cdr(app: &TestApp, campana: &str, telefono: &str) -> HashMap<&'static str, String> {
    const COLS: [&str; 12] = [
        "resultado",
        "estado",
        "amd_resultado",
        "amd_causa",
        "amd_inicial",
        "disposicion",
        "mensaje_ms",
        "tras_beep_ms",
        "teclas",
        "accion",
        "transferida_a",
        "agente_contesto",
    ];
    // The id last: the client trims the line, and with it trailing empty columns.
    let row = app.db.sql(&format!(
        "SELECT {}, id FROM llamadas WHERE campana = '{campana}' AND telefono = '{telefono}' \
         ORDER BY id DESC LIMIT 1",
        COLS.map(|c| format!("COALESCE({c}, '')")).join(", ")
    ));
    let fields: Vec<&str> = row.split('\t').collect();
    assert_eq!(
        fields.len(),
        COLS.len() + 1,
        "no CDR for {telefono}: {row:?}"
    );
    COLS.iter()
        .zip(fields)
        .map(|(c, v)| (*c, v.trim().to_owned()))
        .collect()
}

/// The one recording of the calls to `number`, as samples.
fn recording(fs: &TestSwitch, number: &str) -> Vec<i16> {
    let recs: Vec<PathBuf> = fs
        .recordings()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{number}-")))
        })
        .collect();
    assert_eq!(recs.len(), 1, "one recorded call to {number}: {recs:?}");
    audio::samples(&recs[0])
}

fn sound(fs: &TestSwitch, name: &str) -> Vec<bool> {
    audio::active(&audio::samples(&fs.state.join("sounds").join(name)))
}

/// Asserts that, in the recording of the call to `number`, the machine's message starts after
/// the greeting's beep and is there whole; returns where it starts after the beep's end (ms).
fn machine_message_after_the_beep(fs: &TestSwitch, number: &str) -> u64 {
    let pcm = recording(fs, number);
    let heard = audio::active(&pcm);
    let beep_end = audio::beep_end_ms(&pcm).expect("the greeting's beep is in the recording");
    let message = sound(fs, MACHINE_MESSAGE);
    let (at, hit, quiet) = audio::locate(&heard, &message, beep_end, 60_000);
    assert!(
        hit > 0.9 && quiet > 0.8,
        "{number}: the machine's message is not whole after the beep ({hit:.2}/{quiet:.2} at \
         {at} ms, beep end {beep_end} ms)"
    );
    assert!(
        heard.len() as u64 * FRAME_MS >= at + message.len() as u64 * FRAME_MS,
        "{number}: the call ended before the machine's message did"
    );
    at - beep_end
}

/// Issue: a wrong HUMAN corrected by a late beep. The same short greeting to a campaign of the
/// integrated detector (the stream and its beep detector, the message displaced into the parked
/// call) and to one of mod_amd (mod_avmd during the message's playback, cut by `uuid_break`).
#[tokio::test]
async fn a_late_beep_makes_a_short_greeting_a_machine_that_gets_its_message_whole() {
    let fs = TestSwitch::start();
    let set = fs.state.join("sounds/set");
    short_greeting(&set.join("1.wav"));
    std::fs::copy(set.join("1.wav"), set.join("2.wav")).expect("copy the greeting");
    // The premise: the service's detector takes this greeting for a person.
    assert_eq!(
        integrated_verdict(&set.join("1.wav")).0,
        Verdict::Human,
        "the short greeting is not a HUMAN for the integrated detector"
    );
    audio::write_bursts(
        &fs.state.join("sounds").join(MACHINE_MESSAGE),
        &MACHINE_PATTERN,
    );
    let app = app(&fs, &[]).await;
    let script = json!({"mensaje_humano": MESSAGE, "mensaje_maquina": MACHINE_MESSAGE,
                        "buzon": "tras_beep", "destino_humano": "", "reintentos": 0});
    let (integrado, mod_amd) = ("55561", "55562");
    let mut with_amd = script.clone();
    with_amd["amd"] = json!("integrado");
    campaign(&app, "TARDIO", with_amd, &[integrado.to_owned()]).await;
    let mut with_amd = script.clone();
    with_amd["amd"] = json!("mod_amd");
    campaign(&app, "TARDIO_AMD", with_amd, &[mod_amd.to_owned()]).await;
    for c in ["TARDIO", "TARDIO_AMD"] {
        let (s, b) = command(&app, "iniciar", c).await;
        assert_eq!(s, 200, "{b}");
    }
    let end = finished(&app, &fs, "TARDIO", Duration::from_secs(40)).await;
    finished(&app, &fs, "TARDIO_AMD", Duration::from_secs(40)).await;

    let message_ms: u64 = MACHINE_PATTERN
        .iter()
        .map(|(on, off)| u64::from(on + off))
        .sum();
    for (campana, number) in [("TARDIO", integrado), ("TARDIO_AMD", mod_amd)] {
        let c = cdr(&app, campana, number);
        assert_eq!(
            (
                c["amd_inicial"].as_str(),
                c["amd_resultado"].as_str(),
                c["amd_causa"].as_str(),
                c["resultado"].as_str(),
                c["estado"].as_str(),
                c["disposicion"].as_str(),
            ),
            (
                "HUMAN",
                "MACHINE",
                "LATE_BEEP",
                "MAQUINA",
                "COMPLETADO",
                "MENSAJE_DEJADO"
            ),
            "{campana}: {c:?}"
        );
        // Played whole: the samples the switch wrote, against the file's length.
        let played: u64 = c["mensaje_ms"].parse().expect("mensaje_ms");
        assert!(
            played.abs_diff(message_ms) <= 100,
            "{campana}: {played} ms of the {message_ms} ms machine message played"
        );
        let after = machine_message_after_the_beep(&fs, number);
        eprintln!(
            "{campana}: machine message {after} ms after the beep's end (tras_beep_ms {})",
            c["tras_beep_ms"]
        );
    }
    assert_eq!(end["estadisticas"]["mensajes_dejados"], 1, "{end}");
    assert_eq!(end["estadisticas"]["maquinas"], 1, "{end}");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// A person who presses a key during the message is a person: the key works as it always did
/// (here: to an agent), and the verdict stands. A person who listens hears the whole message,
/// with either detector listening for a late beep (the integrated one mixes it into the parked
/// call; mod_avmd listens under the playback). The test bed's only caller that presses keys
/// says a 1.5 s "hello" that mod_amd calls a LONGGREETING machine, so the key is pressed to the
/// integrated detector's campaign.
#[tokio::test]
async fn a_key_during_the_message_is_a_person_and_is_not_corrected() {
    let fs = TestSwitch::start();
    audio::write_bursts(
        &fs.state.join("sounds").join(MACHINE_MESSAGE),
        &MACHINE_PATTERN,
    );
    let app = app(&fs, &[]).await;
    let script = json!({
        "mensaje_humano": MESSAGE, "mensaje_maquina": MACHINE_MESSAGE, "destino_humano": "",
        "menu": {"opciones": {
            "1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente1"}},
            "timeout": 3, "intentos": 1},
        "reintentos": 0
    });
    // 5559…: says "¿Hola?" and presses 1 about 4 s after answering; …3: listens.
    let (key_i, listens_i, listens_m) = ("55591011", "5550023", "5550033");
    let mut with_amd = script.clone();
    with_amd["amd"] = json!("integrado");
    campaign(
        &app,
        "TECLA",
        with_amd,
        &[key_i.to_owned(), listens_i.to_owned()],
    )
    .await;
    let mut with_amd = script.clone();
    with_amd["amd"] = json!("mod_amd");
    campaign(&app, "TECLA_AMD", with_amd, &[listens_m.to_owned()]).await;
    for c in ["TECLA", "TECLA_AMD"] {
        let (s, b) = command(&app, "iniciar", c).await;
        assert_eq!(s, 200, "{b}");
    }
    finished(&app, &fs, "TECLA", Duration::from_secs(60)).await;
    finished(&app, &fs, "TECLA_AMD", Duration::from_secs(60)).await;

    {
        let (campana, number) = ("TECLA", key_i);
        let c = cdr(&app, campana, number);
        assert_eq!(
            (
                c["resultado"].as_str(),
                c["amd_resultado"].as_str(),
                c["amd_inicial"].as_str(),
                c["disposicion"].as_str(),
                c["teclas"].as_str(),
                c["accion"].as_str(),
                c["transferida_a"].as_str(),
                c["agente_contesto"].as_str(),
            ),
            (
                "HUMANO",
                "HUMAN",
                "",
                "TRANSFERIDA",
                "1",
                "transferir",
                "sofia/gateway/gw_pstn/agente1",
                "1"
            ),
            "{campana}: {c:?}"
        );
        // The message was heard from its start until the key.
        let heard = audio::active(&recording(&fs, number));
        let played: u64 = c["mensaje_ms"].parse().expect("mensaje_ms");
        let (at, hit, _) = audio::locate(&heard, &sound(&fs, MESSAGE), 0, played);
        assert!(
            hit > 0.8,
            "{campana}: the message was not heard until the key ({hit:.2} at {at} ms)"
        );
    }
    for (campana, number) in [("TECLA", listens_i), ("TECLA_AMD", listens_m)] {
        let c = cdr(&app, campana, number);
        assert_eq!(
            (
                c["resultado"].as_str(),
                c["amd_resultado"].as_str(),
                c["amd_inicial"].as_str(),
                c["disposicion"].as_str()
            ),
            ("HUMANO", "HUMAN", "", "ESCUCHO"),
            "{campana}: {c:?}"
        );
        let heard = audio::active(&recording(&fs, number));
        let message = sound(&fs, MESSAGE);
        let (at, hit, quiet) = audio::locate(&heard, &message, 0, 60_000);
        assert!(
            hit > 0.9 && quiet > 0.8 && at < 5_000,
            "{campana}: the listener did not hear the message whole ({hit:.2}/{quiet:.2} at {at} ms)"
        );
    }
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}
