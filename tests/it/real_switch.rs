//! The whole path against a real FreeSWITCH 1.10.12 (`../shared/freeswitch/`, with mod_amd and
//! mod_avmd), started per test with the project's own `freeswitch-conf/`: what the simulator
//! cannot prove. The test bed's carrier plays the called party by the number's last digit:
//! 0-3 a person (answers, "¿Hola? ¿Quién habla?", hangs up ~16 s later), 4 a person who hangs up
//! 1.5 s after answering (during detection), 5 busy, 6 rings and never answers, 7 an answering
//! machine (11 s greeting, a beep, silence), 8 unallocated, 9 a person who answers after 3 s.
//!
//! Every test ends with FreeSWITCH holding no channel a few seconds after the campaign ended: no
//! call and no socket session outlives its call.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::freeswitch::{SwitchOptions, TestSwitch};
use common::{Backend, TcpProxy, TestApp};
use serde_json::{json, Value};

/// The app dialing through `fs` on a fresh SQLite database (the store is not what these tests are
/// about; both backends are covered by the fast suite).
pub(crate) async fn app(fs: &TestSwitch, extra: &[&str]) -> TestApp {
    let mut flags: Vec<String> = fs.app_flags();
    for (flag, default) in [("--cps-maximo", "20"), ("--canales-maximos", "200")] {
        if !extra.contains(&flag) {
            flags.extend([flag.to_owned(), default.to_owned()]);
        }
    }
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = TestApp::spawn_with(Backend::Sqlite, &flags).await;
    wait_connected(&app).await;
    app
}

/// Waits until `/health` says FreeSWITCH is connected and its modules are known.
pub(crate) async fn wait_connected(app: &TestApp) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, h) = app.get("/health").await;
        if h["freeswitch"] == "conectado" && !h["modulos"]["mod_amd"].is_null() {
            return h;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "not connected: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a campaign open all day with `settings` and loads `numbers`.
pub(crate) async fn campaign(app: &TestApp, nombre: &str, settings: Value, numbers: &[String]) {
    app.campaign(
        nombre,
        &[&json!({"max_canales": 50, "cps": 5}), &settings],
        numbers,
    )
    .await;
}

pub(crate) async fn command(app: &TestApp, op: &str, nombre: &str) -> (u16, Value) {
    app.post_json(
        &format!("/discador/{op}/"),
        json!({ "nombre_campana": nombre }),
    )
    .await
}

pub(crate) async fn estado(app: &TestApp, nombre: &str) -> Value {
    let (s, b) = app.get(&format!("/discador/estado/{nombre}")).await;
    assert_eq!(s, 200, "{b}");
    b
}

pub(crate) fn count(b: &Value, k: &str) -> u64 {
    b["estadisticas"][k].as_u64().unwrap_or(0)
}

/// Polls until the campaign is FINALIZADA with nothing pending or in flight.
pub(crate) async fn finished(
    app: &TestApp,
    fs: &TestSwitch,
    nombre: &str,
    limit: Duration,
) -> Value {
    let t0 = Instant::now();
    loop {
        let b = estado(app, nombre).await;
        if b["estado"] == "FINALIZADA" && count(&b, "pendientes") + count(&b, "en_curso") == 0 {
            return b;
        }
        if t0.elapsed() > limit {
            panic!(
                "{nombre} did not finish in {limit:?}: {b}\nnumbers:\n{}\nFreeSWITCH:\n{}",
                app.db.sql(&format!(
                    "SELECT telefono, estado, resultado, causa, intentos FROM {nombre}"
                )),
                fs.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `telefono → (estado, resultado, intentos)` of every number of the campaign.
pub(crate) fn numbers_of(app: &TestApp, tabla: &str) -> HashMap<String, (String, String, u32)> {
    app.db
        .sql(&format!(
            "SELECT telefono, estado, resultado, intentos FROM {tabla}"
        ))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_owned(),
                (f[1].to_owned(), f[2].to_owned(), f[3].parse().unwrap()),
            )
        })
        .collect()
}

/// No two attempts of one number were up at the same time (CDR intervals are disjoint), and every
/// attempt counted on a number has its CDR.
fn assert_no_number_dialed_twice_at_once(app: &TestApp, tabla: &str) {
    let rows = app.db.sql(&format!(
        "SELECT numero_id, inicio, fin FROM llamadas WHERE campana = '{tabla}' ORDER BY numero_id, inicio"
    ));
    let mut last: HashMap<String, String> = HashMap::new();
    for l in rows.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if let Some(prev_end) = last.get(f[0]) {
            assert!(
                f[1] >= prev_end.as_str(),
                "number {} dialed again at {} before its previous attempt ended at {prev_end}",
                f[0],
                f[1]
            );
        }
        last.insert(f[0].to_owned(), f[2].to_owned());
    }
    let cdrs: u64 = app
        .db
        .sql(&format!(
            "SELECT COUNT(*) FROM llamadas WHERE campana = '{tabla}'"
        ))
        .parse()
        .unwrap();
    let attempts: u64 = app
        .db
        .sql(&format!("SELECT SUM(intentos) FROM {tabla}"))
        .parse()
        .unwrap();
    assert_eq!(cdrs, attempts, "every attempt has its CDR");
}

fn nums(prefix: &str, last_digits: &[u8]) -> Vec<String> {
    last_digits
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{prefix}{i:03}{d}"))
        .collect()
}

/// Issue 9, points 1, 3 and 7: the shipped configuration loads as it is; a mod_amd campaign over
/// every kind of called party ends each number with the right state and result; a person hanging
/// up during detection is still a person; and no channel or socket session is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mod_amd_campaign_gets_every_kind_of_called_party_right() {
    let fs = TestSwitch::start();
    let app = app(&fs, &[]).await;
    let digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 7, 4];
    let numbers = nums("555100", &digits);
    campaign(
        &app,
        "AMD",
        json!({"amd": "mod_amd", "reintentos": 0, "cps": 4}),
        &numbers,
    )
    .await;
    let (s, b) = command(&app, "iniciar", "AMD").await;
    assert_eq!(s, 200, "{b}");
    let b = finished(&app, &fs, "AMD", Duration::from_secs(90)).await;
    let got = numbers_of(&app, "AMD");
    for (n, d) in numbers.iter().zip(digits) {
        let (estado, resultado, intentos) = &got[n];
        let want = match d {
            0..=4 | 9 => ("COMPLETADO", "HUMANO"),
            7 => ("COMPLETADO", "MAQUINA"),
            5 => ("ERROR", "OCUPADO"),
            6 => ("ERROR", "NO_CONTESTA"),
            8 => ("ERROR", "NUMERO_INVALIDO"),
            _ => unreachable!(),
        };
        assert_eq!(
            (estado.as_str(), resultado.as_str()),
            want,
            "number {n} (last digit {d}): {b}"
        );
        assert_eq!(*intentos, 1, "{n}");
    }
    // The machines were detected by mod_amd itself (not by the NOTSURE rule).
    let amd = app
        .db
        .sql("SELECT telefono, amd_resultado, amd_causa FROM llamadas WHERE resultado = 'MAQUINA'");
    assert_eq!(amd.lines().count(), 2, "{amd}");
    assert!(
        amd.lines().all(|l| l.contains("\tMACHINE\t")),
        "machines: {amd}"
    );
    assert_no_number_dialed_twice_at_once(&app, "AMD");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 9, point 2: avmd hears the answering machines' beep (the socket subscribes the CUSTOM
/// event itself: `myevents` does not carry it) and people, who have none, stay people.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avmd_campaign_detects_machines_by_their_beep() {
    let fs = TestSwitch::start();
    let app = app(&fs, &[]).await;
    let digits = [1, 7, 2, 7, 3];
    let numbers = nums("555200", &digits);
    campaign(
        &app,
        "AVMD",
        json!({"amd": "avmd", "reintentos": 0, "cps": 5}),
        &numbers,
    )
    .await;
    let (s, b) = command(&app, "iniciar", "AVMD").await;
    assert_eq!(s, 200, "{b}");
    finished(&app, &fs, "AVMD", Duration::from_secs(90)).await;
    let got = numbers_of(&app, "AVMD");
    for (n, d) in numbers.iter().zip(digits) {
        let want = if d == 7 { "MAQUINA" } else { "HUMANO" };
        assert_eq!(
            (got[n].0.as_str(), got[n].1.as_str()),
            ("COMPLETADO", want),
            "{n}"
        );
    }
    let causes = app
        .db
        .sql("SELECT amd_causa FROM llamadas WHERE resultado = 'MAQUINA'");
    assert!(causes.lines().all(|c| c == "BEEP"), "{causes}");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 9, point 5: without the module its AMD needs, a campaign is refused (create, switch,
/// start) with a clear 409; one already running is paused with the reason in its estado, and no
/// number is dialed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_amd_module_is_missing_is_refused_or_paused() {
    let fs = TestSwitch::start_with(SwitchOptions {
        without: vec!["mod_amd"],
        ..SwitchOptions::default()
    });
    // A campaign made ACTIVA while this process did not know the switch yet (no connection).
    let before = TestApp::spawn(Backend::Sqlite).await;
    campaign(
        &before,
        "YA_ACTIVA",
        json!({"amd": "mod_amd"}),
        &nums("555300", &[1, 2, 3]),
    )
    .await;
    assert_eq!(command(&before, "iniciar", "YA_ACTIVA").await.0, 200);
    let db = before.shutdown().await;

    let flags = fs.app_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = TestApp::spawn_on(db, &flags).await;
    let h = wait_connected(&app).await;
    assert_eq!(
        h["modulos"],
        json!({"mod_amd": false, "mod_avmd": true}),
        "{h}"
    );

    // Paused by the service, with the reason.
    let t0 = Instant::now();
    let b = loop {
        let b = estado(&app, "YA_ACTIVA").await;
        if b["estado"] == "PAUSADA" {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not paused: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        b["motivo"].as_str().unwrap_or("").contains("mod_amd"),
        "{b}"
    );
    let got = numbers_of(&app, "YA_ACTIVA");
    assert!(
        got.values().all(|(e, _, i)| e == "PENDIENTE" && *i == 0),
        "{got:?}"
    );

    // Refused with 409: resume, create, switch to mod_amd, start.
    let (s, b) = command(&app, "reanudar", "YA_ACTIVA").await;
    assert_eq!(s, 409, "{b}");
    assert!(b["mensaje"].as_str().unwrap().contains("mod_amd"), "{b}");
    let (s, b) = app
        .post_json("/campanas/", json!({"nombre": "NUEVA", "amd": "mod_amd"}))
        .await;
    assert_eq!(s, 409, "{b}");
    campaign(&app, "SIN_AMD", json!({}), &nums("555301", &[1])).await;
    let (s, b) = app
        .patch_json("/campana/SIN_AMD", json!({"amd": "mod_amd"}))
        .await;
    assert_eq!(s, 409, "{b}");
    // avmd is there: that switch is allowed.
    let (s, b) = app
        .patch_json("/campana/SIN_AMD", json!({"amd": "avmd"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(fs.channels(), 0);
    app.shutdown().await;
}

/// Issue 9, point 6: an originate the switch refuses without creating a channel is not an
/// attempt. Over sessions-per-second our refused originates are requeued (a campaign with no
/// retries still gives every number exactly one attempt); a gateway the switch does not have
/// pauses the campaign with the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_the_switch_are_not_attempts() {
    // 4 sessions a second: one call (two sessions on this box) gets through per second at most.
    let fs = TestSwitch::start_with(SwitchOptions {
        sps: 4,
        ..SwitchOptions::default()
    });
    let app = app(&fs, &[]).await;
    let numbers = nums("555400", &[1, 2, 3, 1, 2, 3, 1, 2]);
    campaign(
        &app,
        "RAFAGA",
        json!({"reintentos": 0, "cps": 10}),
        &numbers,
    )
    .await;
    assert_eq!(command(&app, "iniciar", "RAFAGA").await.0, 200);
    finished(&app, &fs, "RAFAGA", Duration::from_secs(120)).await;
    let got = numbers_of(&app, "RAFAGA");
    // The test bed's carrier is the same FreeSWITCH, so the limit also refuses some carrier legs
    // (the INVITE is rejected after our channel exists): a real failed attempt, FALLA_RED. A
    // refusal of our own originate (no channel) is not an attempt: the number is dialed again.
    for n in &numbers {
        let (estado, resultado, intentos) = (got[n].0.as_str(), got[n].1.as_str(), got[n].2);
        assert!(
            matches!(
                (estado, resultado),
                ("COMPLETADO", "HUMANO") | ("ERROR", "FALLA_RED")
            ),
            "{n}: {got:?}"
        );
        assert_eq!(intentos, 1, "{n}: {got:?}");
    }
    assert_no_number_dialed_twice_at_once(&app, "RAFAGA");
    let failed = got.values().filter(|v| v.0 != "COMPLETADO").count();
    let refused = fs
        .log_tail(100_000)
        .lines()
        .filter(|l| l.contains("Throttle Error"))
        .count();
    // Each refusal either failed a carrier leg (one FALLA_RED number each) or was one of our
    // originates, requeued: more refusals than failures proves some were requeued, and with no
    // retries allowed every number still has exactly one attempt.
    assert!(
        refused > failed,
        "{refused} refusals, {failed} failed numbers: none of our originates was refused, the \
         test proves nothing"
    );

    // A gateway FreeSWITCH does not know.
    campaign(
        &app,
        "SIN_GW",
        json!({"gateway": "no_such_gw"}),
        &nums("555401", &[1, 2, 3]),
    )
    .await;
    assert_eq!(command(&app, "iniciar", "SIN_GW").await.0, 200);
    let t0 = Instant::now();
    let b = loop {
        let b = estado(&app, "SIN_GW").await;
        if b["estado"] == "PAUSADA" {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not paused: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        b["motivo"]
            .as_str()
            .unwrap_or("")
            .contains("INVALID_GATEWAY"),
        "{b}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = numbers_of(&app, "SIN_GW");
    assert!(
        got.values().all(|(e, _, i)| e == "PENDIENTE" && *i == 0),
        "{got:?}"
    );
    assert_eq!(
        app.db
            .sql("SELECT COUNT(*) FROM llamadas WHERE campana = 'SIN_GW'"),
        "0"
    );
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 9, point 7: `kill -9` of FreeSWITCH with calls up, then FreeSWITCH back. Every number is
/// accounted for; the answered calls that were cut are counted INTERRUMPIDA and dialed again (not
/// COMPLETADO); no number is dialed twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_freeswitch_mid_campaign_retries_the_cut_calls() {
    let fs = TestSwitch::start();
    let app = app(&fs, &[]).await;
    let numbers = nums("555500", &[1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0]);
    campaign(
        &app,
        "CAIDA",
        json!({"reintentos": 2, "intervalo_reintento": 1, "cps": 10}),
        &numbers,
    )
    .await;
    assert_eq!(command(&app, "iniciar", "CAIDA").await.0, 200);
    // Wait for answered calls to be up (people talk ~16 s).
    let t0 = Instant::now();
    loop {
        let up: u64 = app
            .db
            .sql("SELECT COUNT(*) FROM CAIDA WHERE estado = 'CONTESTADO'")
            .parse()
            .unwrap();
        if up >= 6 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no calls up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    fs.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    fs.restart();
    let b = finished(&app, &fs, "CAIDA", Duration::from_secs(120)).await;
    assert_eq!(count(&b, "completados"), numbers.len() as u64, "{b}");
    let cut = app.db.sql(
        "SELECT COUNT(*) FROM llamadas WHERE campana = 'CAIDA' AND resultado = 'INTERRUMPIDA'",
    );
    let cut: u64 = cut.parse().unwrap();
    assert!(cut >= 6, "the cut calls are INTERRUMPIDA: {cut}");
    let got = numbers_of(&app, "CAIDA");
    assert!(
        got.values()
            .all(|(e, r, _)| e == "COMPLETADO" && r == "HUMANO"),
        "{got:?}"
    );
    assert!(
        got.values().filter(|(_, _, i)| *i >= 2).count() as u64 >= cut,
        "every cut call was dialed again: {got:?}"
    );
    assert_no_number_dialed_twice_at_once(&app, "CAIDA");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 9, point 7 (event socket): the inbound connection drops for a few seconds while calls
/// are up; FreeSWITCH goes on. After the reconnect the calls are reconciled: every number ends
/// right, none is lost or dialed twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_socket_drop_mid_campaign_loses_nothing() {
    let fs = TestSwitch::start();
    let mut proxy = TcpProxy::start(("127.0.0.1", fs.ports.esl)).await;
    let port = proxy.port.to_string();
    let socket = format!("127.0.0.1:{}", fs.ports.socket);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--freeswitch-port",
            &port,
            "--socket-listen",
            &socket,
            "--cps-maximo",
            "20",
        ],
    )
    .await;
    wait_connected(&app).await;
    let numbers = nums("555600", &[1, 2, 3, 0, 9, 1, 2, 3, 0, 9]);
    campaign(
        &app,
        "CORTE",
        json!({"reintentos": 2, "intervalo_reintento": 1, "cps": 5}),
        &numbers,
    )
    .await;
    assert_eq!(command(&app, "iniciar", "CORTE").await.0, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = crate::metrics::scrape(&app).await;
    assert_eq!(
        crate::metrics::value(&before, "discador_esl_reconexiones_total", &[]),
        0.0
    );
    proxy.cut().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore().await;
    let b = finished(&app, &fs, "CORTE", Duration::from_secs(120)).await;
    // The drop and the reconnection are in /metrics.
    let after = crate::metrics::scrape(&app).await;
    assert!(crate::metrics::value(&after, "discador_esl_reconexiones_total", &[]) >= 1.0);
    assert_eq!(
        crate::metrics::value(&after, "discador_esl_conectado", &[]),
        1.0
    );
    assert_eq!(count(&b, "completados"), numbers.len() as u64, "{b}");
    let got = numbers_of(&app, "CORTE");
    assert!(
        got.values()
            .all(|(e, r, _)| e == "COMPLETADO" && r == "HUMANO"),
        "{got:?}"
    );
    assert_no_number_dialed_twice_at_once(&app, "CORTE");
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 9, point 4: over the controller's session cap the call is connected and hung up, never
/// left parked in the `socket` application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_session_cap_a_call_is_hung_up_not_parked() {
    let fs = TestSwitch::start();
    let app = app(&fs, &["--canales-maximos", "1"]).await;
    // avmd listening to a person (no beep) holds the one session for its whole 15 s window.
    campaign(
        &app,
        "CAP",
        json!({"cps": 1, "amd": "avmd"}),
        &nums("555700", &[1]),
    )
    .await;
    assert_eq!(command(&app, "iniciar", "CAP").await.0, 200);
    let t0 = Instant::now();
    while app.db.sql("SELECT estado FROM CAP") != "CONTESTADO" {
        assert!(t0.elapsed() < Duration::from_secs(15), "not answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A second answered call of the same campaign, sent by hand: over the cap.
    let extra = uuid::Uuid::new_v4();
    let reply = fs.cli(&format!(
        "originate {{origination_uuid={extra},discador_campana=CAP,discador_numero=999,discador_intento=1}}sofia/gateway/gw_pstn/5557009991 discador XML discador"
    ));
    assert!(reply.starts_with("+OK"), "{reply}");
    let t0 = Instant::now();
    loop {
        if fs.cli(&format!("uuid_exists {extra}")) == "false" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the call over the cap is still up (parked?): {}\n{}",
            fs.cli("show channels"),
            fs.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finished(&app, &fs, "CAP", Duration::from_secs(60)).await;
    fs.wait_no_channels(Duration::from_secs(5)).await;
    app.shutdown().await;
}

/// Issue 12: each call comes back to the process that dialed it. The dialplan's
/// `${discador_socket}` is the call's own variable when the originate sets it (a process whose
/// SOCKET_LISTEN is not the switch's global receives its calls), and falls back to the switch's
/// global of the same name when it does not (SOCKET_LISTEN on 0.0.0.0, nothing announced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_comes_back_to_the_socket_its_originate_names() {
    let fs = TestSwitch::start();
    let esl = fs.ports.esl.to_string();
    // Neither the global's port nor anything the switch knows: only the call's variable leads here.
    let own = format!("127.0.0.1:{}", common::free_port());
    let on_the_global = format!("0.0.0.0:{}", fs.ports.socket);
    for (round, listen) in [own.as_str(), on_the_global.as_str()]
        .into_iter()
        .enumerate()
    {
        let app = TestApp::spawn_with(
            Backend::Sqlite,
            &["--freeswitch-port", &esl, "--socket-listen", listen],
        )
        .await;
        wait_connected(&app).await;
        let nombre = format!("VUELTA{round}");
        campaign(
            &app,
            &nombre,
            json!({"amd": "mod_amd", "reintentos": 0}),
            &nums(&format!("55520{round}"), &[0]),
        )
        .await;
        assert_eq!(command(&app, "iniciar", &nombre).await.0, 200);
        finished(&app, &fs, &nombre, Duration::from_secs(60)).await;
        // mod_amd ran: the controller of this process had the call.
        let amd = app.db.sql("SELECT amd_resultado FROM llamadas");
        assert_eq!(
            amd,
            "HUMAN",
            "round {round} ({listen}): {}",
            fs.log_tail(40)
        );
        fs.wait_no_channels(Duration::from_secs(5)).await;
        app.shutdown().await;
    }
}
