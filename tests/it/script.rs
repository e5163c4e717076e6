//! The campaign's script on a real FreeSWITCH 1.10.12: the message, the key menu (agents, opt-out),
//! the voicemail drop after the beep, the abandon rule, and the one disposition of each call. What
//! each called party heard is read off the carrier's recording of the call (sox), not taken from
//! the service's word. Test-bed numbers: 5559… presses 1 and 5558… presses 9 about 4 s after
//! answering; last digit 0-3 a person who says nothing after "¿Hola?", 4 a person who hangs up
//! after 1.5 s, 7 an answering machine (11 s greeting, 1 kHz beep, 8 s of silence).

use crate::common;
use crate::real_switch::{app, campaign, command, estado, finished};

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::audio::{self, FRAME_MS};
use common::freeswitch::TestSwitch;
use common::TestApp;
use serde_json::{json, Value};

/// The campaign's message, relative to the switch's sounds directory (a 6 s spoken message).
const MESSAGE: &str = "message.wav";

/// The row of `llamadas` of one number, by column.
fn cdr(app: &TestApp, campana: &str, telefono: &str) -> HashMap<&'static str, String> {
    const COLS: [&str; 10] = [
        "resultado",
        "disposicion",
        "mensaje_ms",
        "teclas",
        "accion",
        "transferida_a",
        "agente_contesto",
        "tras_beep_ms",
        "billsec",
        "estado",
    ];
    let row = app.db.sql(&format!(
        "SELECT {} FROM llamadas WHERE campana = '{campana}' AND telefono = '{telefono}' \
         ORDER BY id DESC LIMIT 1",
        COLS.map(|c| format!("COALESCE({c}, '')")).join(", ")
    ));
    let fields: Vec<&str> = row.split('\t').collect();
    assert_eq!(fields.len(), COLS.len(), "no CDR for {telefono}: {row:?}");
    COLS.iter()
        .zip(fields)
        .map(|(c, v)| (*c, v.trim().to_owned()))
        .collect()
}

/// The carrier's recordings of calls to `number`.
fn recordings_of(fs: &TestSwitch, number: &str) -> Vec<PathBuf> {
    fs.recordings()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{number}-")))
        })
        .collect()
}

/// The one recording of `number`, as sounding frames.
fn heard_by(fs: &TestSwitch, number: &str) -> (Vec<i16>, Vec<bool>) {
    let recs = recordings_of(fs, number);
    assert_eq!(recs.len(), 1, "one recorded call to {number}: {recs:?}");
    let pcm = audio::samples(&recs[0]);
    let active = audio::active(&pcm);
    (pcm, active)
}

fn sound(fs: &TestSwitch, name: &str) -> Vec<bool> {
    audio::active(&audio::samples(&fs.state.join("sounds").join(name)))
}

/// How long after the end of the machine's beep (in the recording of the call to `number`) the
/// message started; the message must be there whole.
fn message_after_beep(fs: &TestSwitch, number: &str) -> i64 {
    let (pcm, heard) = heard_by(fs, number);
    let beep_end = audio::beep_end_ms(&pcm).expect("the machine's beep is in the recording");
    let (at, hit, quiet) = audio::locate(&heard, &sound(fs, MESSAGE), beep_end, 60_000);
    assert!(
        hit > 0.9 && quiet > 0.8,
        "message not left whole after the beep ({hit:.2}/{quiet:.2} at {at} ms)"
    );
    at as i64 - beep_end as i64
}

/// Two distinct sounds no called party makes, for the opt-out and abandon messages.
fn write_sounds(fs: &TestSwitch) {
    let dir = fs.state.join("sounds");
    audio::write_bursts(
        &dir.join("baja.wav"),
        &[(200, 100), (400, 100), (200, 300), (600, 100)],
    );
    audio::write_bursts(
        &dir.join("abandono.wav"),
        &[(500, 200), (100, 100), (300, 300), (200, 100)],
    );
}

#[tokio::test]
async fn people_choose_with_keys_and_hear_the_message_whole_or_hang_up_during_it() {
    let fs = TestSwitch::start();
    write_sounds(&fs);
    let app = app(&fs, &[]).await;
    let (press1, press9, listens, hangs_up) = ("55591001", "55581002", "5550003", "5550014");
    let numbers: Vec<String> = [press1, press9, listens, hangs_up]
        .map(String::from)
        .to_vec();
    campaign(
        &app,
        "GUION",
        json!({
            "destino_humano": "",
            "mensaje_humano": MESSAGE,
            "mensaje_baja": "baja.wav",
            "menu": {"opciones": {
                "1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente1"},
                "9": {"accion": "no_llamar"}},
                "timeout": 3, "intentos": 1}
        }),
        &numbers,
    )
    .await;
    // 1 → repeat: the message again, heard whole the second time.
    let repeats = "55591005";
    campaign(
        &app,
        "REPETIR",
        json!({"destino_humano": "", "mensaje_humano": MESSAGE,
               "menu": {"opciones": {"1": {"accion": "repetir"}}, "timeout": 5, "intentos": 2}}),
        &[repeats.to_owned()],
    )
    .await;
    for c in ["GUION", "REPETIR"] {
        let (s, b) = command(&app, "iniciar", c).await;
        assert_eq!(s, 200, "{b}");
    }
    let end = finished(&app, &fs, "GUION", Duration::from_secs(60)).await;
    finished(&app, &fs, "REPETIR", Duration::from_secs(30)).await;
    let c = cdr(&app, "REPETIR", repeats);
    assert_eq!(
        (
            c["disposicion"].as_str(),
            c["teclas"].as_str(),
            c["accion"].as_str()
        ),
        ("ESCUCHO", "1", "repetir"),
        "{c:?}"
    );
    let (_, heard) = heard_by(&fs, repeats);
    let message = sound(&fs, MESSAGE);
    // The key comes ~4 s after the answer, cutting the first play; the repeat starts after it.
    let (again, hit, _) = audio::locate(&heard, &message, 3_500, 60_000);
    assert!(
        hit > 0.9,
        "the repeat was not heard whole ({hit:.2} at {again} ms)"
    );

    // 1 → an agent answered; the CDR says where and that the agent answered.
    let c = cdr(&app, "GUION", press1);
    assert_eq!(c["disposicion"], "TRANSFERIDA", "{c:?}");
    assert_eq!(c["teclas"], "1");
    assert_eq!(c["accion"], "transferir");
    assert_eq!(c["transferida_a"], "sofia/gateway/gw_pstn/agente1");
    assert_eq!(c["agente_contesto"], "1");
    assert_eq!(
        recordings_of(&fs, "agente1").len(),
        1,
        "the agent's leg was answered"
    );
    // The person stayed with the agent until hanging up ~8 s after pressing.
    assert!(c["billsec"].parse::<u32>().unwrap() >= 8, "{c:?}");

    // 9 → in the DNC list at once; heard the opt-out message after the key.
    let c = cdr(&app, "GUION", press9);
    assert_eq!(c["disposicion"], "BAJA", "{c:?}");
    assert_eq!(c["teclas"], "9");
    assert_eq!(c["accion"], "no_llamar");
    assert_eq!(
        app.db.sql(&format!(
            "SELECT COUNT(*) FROM dnc WHERE telefono = '{press9}'"
        )),
        "1"
    );
    let (_, heard) = heard_by(&fs, press9);
    let (at, hit, quiet) = audio::locate(&heard, &sound(&fs, "baja.wav"), 3000, 60_000);
    assert!(
        hit > 0.9 && quiet > 0.8,
        "opt-out message not heard ({hit:.2}/{quiet:.2} at {at} ms)"
    );

    // Nothing pressed: the whole message, where it should be (right after the answer).
    let c = cdr(&app, "GUION", listens);
    assert_eq!(c["disposicion"], "ESCUCHO", "{c:?}");
    assert_eq!(c["teclas"], "");
    let ms: u64 = c["mensaje_ms"].parse().unwrap();
    assert!(
        (5_800..=6_200).contains(&ms),
        "played {ms} ms of a 6 s message"
    );
    let (_, heard) = heard_by(&fs, listens);
    let message = sound(&fs, MESSAGE);
    let (at, hit, _) = audio::locate(&heard, &message, 0, 60_000);
    assert!(
        hit > 0.9 && at < 2_000,
        "message not heard whole: {hit:.2} of its speech at {at} ms"
    );
    assert!(
        heard.len() as u64 * FRAME_MS >= at + message.len() as u64 * FRAME_MS,
        "the call ended before the message did"
    );

    // Hung up 1.5 s into the message: that disposition, with what was played.
    let c = cdr(&app, "GUION", hangs_up);
    assert_eq!(c["disposicion"], "COLGO_EN_MENSAJE", "{c:?}");
    let ms: u64 = c["mensaje_ms"].parse().unwrap();
    assert!(ms < 2_500, "played {ms} ms before the hangup");
    assert_eq!(c["resultado"], "HUMANO");
    assert_eq!(c["estado"], "COMPLETADO");

    let e = &end["estadisticas"];
    assert_eq!(e["transferidos"], 1, "{end}");
    assert_eq!(e["bajas"], 1, "{end}");
    assert_eq!(e["escucharon"], 1, "{end}");
    assert_eq!(e["abandonados"], 0, "{end}");
    fs.wait_no_channels(Duration::from_secs(5)).await;

    // The opted-out number is never dialed again, by any campaign.
    campaign(
        &app,
        "OTRA",
        json!({"mensaje_humano": MESSAGE}),
        &[press9.to_owned(), "5550020".to_owned()],
    )
    .await;
    let (s, b) = command(&app, "iniciar", "OTRA").await;
    assert_eq!(s, 200, "{b}");
    finished(&app, &fs, "OTRA", Duration::from_secs(40)).await;
    let r = app.db.sql(&format!(
        "SELECT resultado FROM OTRA WHERE telefono = '{press9}'"
    ));
    assert_eq!(r, "NO_LLAMAR");
    assert_eq!(
        recordings_of(&fs, press9).len(),
        1,
        "dialed again after opting out"
    );
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

#[tokio::test]
async fn machines_get_the_message_right_after_the_beep_or_nothing() {
    let fs = TestSwitch::start();
    let app = app(&fs, &[]).await;
    let (dejar, no_dejar) = ("5550107", "5550207");
    campaign(
        &app,
        "BUZON",
        json!({"amd": "mod_amd", "mensaje_maquina": MESSAGE, "buzon": "tras_beep"}),
        &[dejar.to_owned()],
    )
    .await;
    let saludo = "5550307";
    campaign(
        &app,
        "SALUDO",
        json!({"amd": "mod_amd", "mensaje_maquina": MESSAGE, "buzon": "tras_saludo"}),
        &[saludo.to_owned()],
    )
    .await;
    campaign(
        &app,
        "NODEJAR",
        json!({"amd": "mod_amd", "mensaje_maquina": MESSAGE, "buzon": "no_dejar"}),
        &[no_dejar.to_owned()],
    )
    .await;
    for c in ["BUZON", "SALUDO", "NODEJAR"] {
        let (s, b) = command(&app, "iniciar", c).await;
        assert_eq!(s, 200, "{b}");
    }
    let end = finished(&app, &fs, "BUZON", Duration::from_secs(60)).await;
    finished(&app, &fs, "NODEJAR", Duration::from_secs(30)).await;
    finished(&app, &fs, "SALUDO", Duration::from_secs(30)).await;

    let c = cdr(&app, "BUZON", dejar);
    assert_eq!(c["resultado"], "MAQUINA", "{c:?}");
    assert_eq!(c["disposicion"], "MENSAJE_DEJADO", "{c:?}");
    let after_beep = message_after_beep(&fs, dejar);
    eprintln!(
        "message starts {after_beep} ms after the beep's end (tras_beep_ms {})",
        c["tras_beep_ms"]
    );
    assert!(
        (0..=500).contains(&after_beep),
        "message started {after_beep} ms after the beep ended"
    );
    assert_eq!(end["estadisticas"]["mensajes_dejados"], 1, "{end}");

    // tras_saludo: after the greeting's second of silence — on this machine, after its beep
    // (the greeting runs into the beep), and never over the greeting.
    let c = cdr(&app, "SALUDO", saludo);
    assert_eq!(c["disposicion"], "MENSAJE_DEJADO", "{c:?}");
    let (pcm, heard) = heard_by(&fs, saludo);
    let beep_end = audio::beep_end_ms(&pcm).expect("the machine's beep is in the recording");
    let (at, hit, _) = audio::locate(&heard, &sound(&fs, MESSAGE), 0, 60_000);
    assert!(
        hit > 0.9 && at >= beep_end,
        "message over the greeting ({hit:.2} at {at} ms, beep end {beep_end} ms)"
    );

    // no_dejar: hung up at the verdict; nothing of the message in the recording.
    let c = cdr(&app, "NODEJAR", no_dejar);
    assert_eq!(c["resultado"], "MAQUINA", "{c:?}");
    assert_eq!(c["disposicion"], "SIN_MENSAJE", "{c:?}");
    let (pcm, heard) = heard_by(&fs, no_dejar);
    assert!(
        audio::beep_end_ms(&pcm).is_none(),
        "the call lasted until the beep"
    );
    let (at, hit, _) = audio::locate(&heard, &sound(&fs, MESSAGE), 0, 60_000);
    assert!(hit < 0.5, "the message was played ({hit:.2} at {at} ms)");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_person_no_agent_answers_for_hears_the_abandon_message_within_2_s() {
    let fs = TestSwitch::start();
    write_sounds(&fs);
    let app = app(&fs, &[]).await;
    let number = "55591003";
    campaign(
        &app,
        "ABANDONO",
        json!({
            "mensaje_humano": MESSAGE,
            "mensaje_abandono": "abandono.wav",
            "espera_agente_s": 2,
            "menu": {"opciones": {
                "1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente_ocupado"}}}
        }),
        &[number.to_owned()],
    )
    .await;
    let (s, b) = command(&app, "iniciar", "ABANDONO").await;
    assert_eq!(s, 200, "{b}");
    let end = finished(&app, &fs, "ABANDONO", Duration::from_secs(40)).await;

    let c = cdr(&app, "ABANDONO", number);
    assert_eq!(c["disposicion"], "ABANDONADA", "{c:?}");
    assert_eq!(c["agente_contesto"], "0");
    assert_eq!(c["teclas"], "1");
    let e = &end["estadisticas"];
    assert_eq!(e["abandonados"], 1, "{end}");
    assert_eq!(e["tasa_abandono"].as_f64(), Some(100.0), "{end}");

    // In the recording: the message until the key, then the abandon message within 2 s.
    let (_, heard) = heard_by(&fs, number);
    let played: u64 = c["mensaje_ms"].parse().unwrap();
    let (msg_at, hit, _) = audio::locate(&heard, &sound(&fs, MESSAGE), 0, played);
    assert!(
        hit > 0.8,
        "message not heard until the key ({hit:.2} at {msg_at} ms)"
    );
    let key_at = msg_at + played;
    let (ab_at, hit, quiet) = audio::locate(&heard, &sound(&fs, "abandono.wav"), key_at, 60_000);
    assert!(
        hit > 0.9 && quiet > 0.8,
        "abandon message not heard after the key at {key_at} ms ({hit:.2}/{quiet:.2} at {ab_at} ms)"
    );
    eprintln!("abandon message {} ms after the key", ab_at - key_at);
    assert!(
        ab_at - key_at <= 2_000,
        "abandon message {} ms after the key",
        ab_at - key_at
    );
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

#[tokio::test]
async fn scripts_the_switch_cannot_run_are_refused_naming_the_field() {
    let fs = TestSwitch::start();
    let app = app(&fs, &[]).await;
    let numbers = ["5550001".to_owned()];
    let cases: [(&str, Value, &str); 4] = [
        (
            "FALTA",
            json!({"mensaje_humano": "no/existe.wav"}),
            "mensaje_humano",
        ),
        (
            "EXTENSION",
            json!({"mensaje_humano": MESSAGE, "menu": {"opciones": {"1": {"accion": "transferir", "destino": "no_existe"}}}}),
            "menu.opciones.destino",
        ),
        (
            "GATEWAY",
            json!({"mensaje_humano": MESSAGE, "menu": {"opciones": {"1": {"accion": "transferir", "destino": "sofia/gateway/gw_nadie/agente1"}}}}),
            "menu.opciones.destino",
        ),
        (
            "ABANDONO",
            json!({"mensaje_humano": MESSAGE, "mensaje_abandono": "/no/esta.wav"}),
            "mensaje_abandono",
        ),
    ];
    for (name, script, field) in cases {
        campaign(&app, name, script, &numbers).await;
        let (s, b) = command(&app, "iniciar", name).await;
        assert_eq!(s, 409, "{name}: {b}");
        assert!(
            b["mensaje"].as_str().unwrap_or("").starts_with(field),
            "{name}: {b}"
        );
        assert_eq!(estado(&app, name).await["estado"], "CREADA", "{name}");
    }
    // An extension the dialplan has is accepted (the shipped `humano`).
    campaign(
        &app,
        "BUENA",
        json!({"mensaje_humano": MESSAGE, "menu": {"opciones": {"1": {"accion": "transferir", "destino": "humano"}}, "intentos": 1, "timeout": 1}}),
        &["5550004".to_owned()],
    )
    .await;
    let (s, b) = command(&app, "iniciar", "BUENA").await;
    assert_eq!(s, 200, "{b}");
    // A PATCH to a missing file is refused and changes nothing.
    let (s, b) = app
        .patch_json(
            "/campana/BUENA",
            json!({"mensaje_humano": "otra/falta.wav"}),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["mensaje"]
            .as_str()
            .unwrap_or("")
            .starts_with("mensaje_humano"),
        "{b}"
    );
    let (_, c) = app.get("/campana/BUENA").await;
    assert_eq!(c["mensaje_humano"], MESSAGE, "{c}");
    let (s, b) = command(&app, "detener", "BUENA").await;
    assert_eq!(s, 200, "{b}");
    fs.wait_no_channels(Duration::from_secs(20)).await;
    app.shutdown().await;
}

/// Issue 15: the service's own detector on a stock switch (neither mod_amd nor mod_avmd loaded):
/// people are people, the machine is a machine and gets its message right after its beep.
#[tokio::test]
async fn the_integrated_detector_works_on_a_stock_switch() {
    let fs = TestSwitch::start_with(common::freeswitch::SwitchOptions {
        without: vec!["mod_amd", "mod_avmd"],
        ..Default::default()
    });
    let app = app(&fs, &[]).await;
    let (person, slow, machine) = ("5550401", "5550409", "5550417");
    campaign(
        &app,
        "INTEGRADO",
        json!({"amd": "integrado", "mensaje_maquina": MESSAGE, "buzon": "tras_beep",
               "destino_humano": ""}),
        &[person.to_owned(), slow.to_owned(), machine.to_owned()],
    )
    .await;
    let (s, b) = command(&app, "iniciar", "INTEGRADO").await;
    assert_eq!(s, 200, "{b}");
    finished(&app, &fs, "INTEGRADO", Duration::from_secs(60)).await;

    let amd = |n: &str| {
        app.db.sql(&format!(
            "SELECT resultado, amd_resultado, amd_causa FROM llamadas WHERE telefono = '{n}'"
        ))
    };
    assert!(
        amd(person).starts_with("HUMANO\tHUMAN\t"),
        "{}",
        amd(person)
    );
    assert!(amd(slow).starts_with("HUMANO\tHUMAN\t"), "{}", amd(slow));
    assert!(
        amd(machine).starts_with("MAQUINA\tMACHINE\t"),
        "{}",
        amd(machine)
    );
    let c = cdr(&app, "INTEGRADO", machine);
    assert_eq!(c["disposicion"], "MENSAJE_DEJADO", "{c:?}");
    let after_beep = message_after_beep(&fs, machine);
    eprintln!("integrado: message starts {after_beep} ms after the beep's end");
    assert!(
        (0..=500).contains(&after_beep),
        "message started {after_beep} ms after the beep ended"
    );
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}
