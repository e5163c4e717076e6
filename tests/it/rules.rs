//! Calling rules that protect the called person (issue 13), on the simulator with a manual
//! calendar clock: each number's own window at its exact boundaries (a DST day included), the
//! attempts cap across campaigns at the boundary of its rolling 24 h, excluded dates, the abandon
//! ceiling, and hostile zone names and dates.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use discador::clock::Clock;
use discador::sim::SimConfig;
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestApp};
use crate::dialer::{rig_clocked, Rig};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("a test literal")
}

/// The campaign's calling hours for these tests: 09:00–21:00 every day, campaign zone UTC.
fn hours() -> Value {
    json!({"hora_inicio": "09:00", "hora_fin": "21:00", "zona_horaria": "UTC", "cps": 50,
           "reintentos": 0})
}

/// Loads a CSV body; every line must be inserted.
async fn load_csv(app: &TestApp, nombre: &str, csv: &str, lines: u64) {
    let (s, b) = app
        .post_raw(
            &format!("/campana/{nombre}/numeros"),
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!((s, b["insertados"].as_u64()), (200, Some(lines)), "{b}");
}

/// `estado`, `intentos`, `espera`, `proximo_intento` of one number, as the table holds them.
fn row(app: &TestApp, tabla: &str, telefono: &str) -> String {
    app.db.sql(&format!(
        "SELECT estado, intentos, espera, proximo_intento FROM {tabla} WHERE telefono = '{telefono}'"
    ))
}

/// Waits until `telefono` of `tabla` is in `estado` (COMPLETADO, PENDIENTE…).
async fn wait_state(app: &TestApp, tabla: &str, telefono: &str, estado: &str) {
    let t0 = Instant::now();
    loop {
        let r = row(app, tabla, telefono);
        if r.starts_with(estado) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{telefono} is not {estado}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The numbers the simulator was asked to dial so far, in order.
/// (The simulator's outcome is the number's last digit: 6, 7 and 8 are people who answer.)
fn dialed(r: &Rig) -> Vec<String> {
    r.sim
        .originates()
        .into_iter()
        .map(|o| o.destination)
        .collect()
}

/// A pause long enough for a runner to claim and dial anything it may (it claims every second
/// when idle, and at once when the clock is set).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn stat(e: &Value, k: &str) -> u64 {
    e["estadisticas"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("{k}: {e}"))
}

on_both_backends!(
    each_number_is_dialed_inside_its_own_window,
    worker_threads = 2
);
/// 2026-03-08 is the day New York moves to summer time (at 07:00 UTC): its 09:00 is 13:00 UTC
/// that day (14:00 the day before). At 12:59:59 UTC the campaign (09:00–21:00, zone UTC) may
/// call Madrid (13:59), its own zone (12:59) and a derived Spanish number, not New York (08:59,
/// by column and derived from +1 212…) nor Tokyo (21:59). New York is dialed at 13:00:00 exactly,
/// Tokyo at its next 09:00 (00:00 UTC).
async fn each_number_is_dialed_inside_its_own_window(backend: Backend) {
    let clock = Clock::manual(utc("2026-03-08T12:59:59Z"));
    let r = rig_clocked(backend, &[], SimConfig::default(), clock.clone()).await;
    r.campaign("ZONAS", hours(), &[]).await;
    load_csv(
        &r.app,
        "ZONAS",
        "telefono,zona_horaria,cliente\n\
         5556016,America/New_York,a\n\
         5556026,Europe/Madrid,b\n\
         5556036,,c\n\
         5556046,Asia/Tokyo,d\n\
         +12125550106,,e\n\
         +34911234566,,f\n",
        6,
    )
    .await;
    // Derived at load: New York (area code 212) and Madrid (91); the others as given or none.
    assert_eq!(
        r.app
            .db
            .sql("SELECT telefono, zona_horaria FROM ZONAS ORDER BY id"),
        "5556016\tAmerica/New_York\n5556026\tEurope/Madrid\n5556036\tNULL\n\
         5556046\tAsia/Tokyo\n+12125550106\tAmerica/New_York\n+34911234566\tEurope/Madrid"
    );
    r.command("iniciar", "ZONAS").await;
    for t in ["5556026", "5556036", "+34911234566"] {
        wait_state(&r.app, "ZONAS", t, "COMPLETADO").await;
    }
    settle().await;
    let mut now = dialed(&r);
    now.sort();
    assert_eq!(now, ["+34911234566", "5556026", "5556036"]);
    // The others wait for their window, due at its opening, no attempt counted; estado says so.
    let ny = "PENDIENTE\t0\tHORARIO\t2026-03-08 13:00:00";
    assert!(
        row(&r.app, "ZONAS", "5556016").starts_with(ny),
        "{}",
        row(&r.app, "ZONAS", "5556016")
    );
    assert!(row(&r.app, "ZONAS", "+12125550106").starts_with(ny));
    assert!(
        row(&r.app, "ZONAS", "5556046").starts_with("PENDIENTE\t0\tHORARIO\t2026-03-09 00:00:00")
    );
    let e = r.estado("ZONAS").await;
    assert_eq!(stat(&e, "esperan_horario"), 3, "{e}");

    // 13:00:00 UTC is 09:00 in New York (EDT): both New York numbers are dialed, Tokyo is not.
    clock.set(utc("2026-03-08T13:00:00Z"));
    for t in ["5556016", "+12125550106"] {
        wait_state(&r.app, "ZONAS", t, "COMPLETADO").await;
    }
    settle().await;
    assert_eq!(dialed(&r).len(), 5, "{:?}", dialed(&r));
    assert!(row(&r.app, "ZONAS", "5556046").starts_with("PENDIENTE"));

    // One second before Tokyo's 09:00 nothing happens; at 09:00 it is dialed and the campaign ends.
    clock.set(utc("2026-03-08T23:59:59Z"));
    settle().await;
    assert_eq!(dialed(&r).len(), 5);
    clock.set(utc("2026-03-09T00:00:00Z"));
    let e = r.finished("ZONAS", Duration::from_secs(20)).await;
    assert_eq!(stat(&e, "completados"), 6, "{e}");
    assert_eq!(stat(&e, "esperan_horario"), 0, "{e}");
    r.app.shutdown().await;
}

on_both_backends!(
    the_daily_cap_holds_across_campaigns_at_the_rolling_boundary,
    worker_threads = 2
);
/// `MAX_INTENTOS_DIA` 2: one number in three campaigns. UNO calls it at 10:00, DOS at 11:00; TRES
/// must wait until the first of those is 24 h old (10:00 the next day): not at 09:59:59, yes at
/// 10:00:00.
async fn the_daily_cap_holds_across_campaigns_at_the_rolling_boundary(backend: Backend) {
    let clock = Clock::manual(utc("2026-11-27T10:00:00Z"));
    let r = rig_clocked(
        backend,
        &["--max-intentos-dia", "2"],
        SimConfig::default(),
        clock.clone(),
    )
    .await;
    let all_day = json!({"reintentos": 0, "cps": 50});
    let n = "5557006".to_owned();
    for c in ["UNO", "DOS", "TRES"] {
        r.campaign(c, all_day.clone(), std::slice::from_ref(&n))
            .await;
    }
    r.command("iniciar", "UNO").await;
    r.finished("UNO", Duration::from_secs(20)).await;
    clock.set(utc("2026-11-27T11:00:00Z"));
    r.command("iniciar", "DOS").await;
    r.finished("DOS", Duration::from_secs(20)).await;
    clock.set(utc("2026-11-27T12:00:00Z"));
    r.command("iniciar", "TRES").await;
    settle().await;
    assert_eq!(dialed(&r).len(), 2);
    assert!(
        row(&r.app, "TRES", &n).starts_with("PENDIENTE\t0\tTOPE_DIARIO\t2026-11-28 10:00:00"),
        "{}",
        row(&r.app, "TRES", &n)
    );
    let e = r.estado("TRES").await;
    assert_eq!(stat(&e, "esperan_tope_diario"), 1, "{e}");

    clock.set(utc("2026-11-28T09:59:59Z"));
    settle().await;
    assert_eq!(dialed(&r).len(), 2, "dialed before the 24 h were up");
    clock.set(utc("2026-11-28T10:00:00Z"));
    r.finished("TRES", Duration::from_secs(20)).await;
    assert_eq!(dialed(&r).len(), 3);
    r.app.shutdown().await;
}

on_both_backends!(
    an_excluded_date_stops_the_whole_campaign,
    worker_threads = 2
);
/// Christmas in Madrid is excluded: at 12:00 UTC on the 25th nothing is dialed and estado counts
/// the numbers as waiting for it; at midnight Madrid time (23:00 UTC) dialing starts.
async fn an_excluded_date_stops_the_whole_campaign(backend: Backend) {
    let clock = Clock::manual(utc("2026-12-25T12:00:00Z"));
    let r = rig_clocked(backend, &[], SimConfig::default(), clock.clone()).await;
    r.campaign(
        "NAVIDAD",
        json!({"zona_horaria": "Europe/Madrid", "fechas_excluidas": ["2026-12-25", "2026-12-31"],
               "reintentos": 0, "cps": 50}),
        &["5558006".to_owned(), "5558016".to_owned()],
    )
    .await;
    r.command("iniciar", "NAVIDAD").await;
    settle().await;
    assert!(dialed(&r).is_empty());
    let e = r.estado("NAVIDAD").await;
    assert_eq!(stat(&e, "esperan_fecha_excluida"), 2, "{e}");
    clock.set(utc("2026-12-25T22:59:59Z"));
    settle().await;
    assert!(dialed(&r).is_empty());
    clock.set(utc("2026-12-25T23:00:00Z"));
    let e = r.finished("NAVIDAD", Duration::from_secs(20)).await;
    assert_eq!(stat(&e, "completados"), 2, "{e}");
    assert_eq!(stat(&e, "esperan_fecha_excluida"), 0, "{e}");
    r.app.shutdown().await;
}

/// Writes `atendidas` CDRs answered by a person for campaign `c`, `abandonadas` of them
/// abandoned, started now.
fn abandon_history(app: &TestApp, c: &str, atendidas: usize, abandonadas: usize) {
    let now = Utc::now().format("%Y-%m-%d %H:%M:%S");
    let rows: Vec<String> = (0..atendidas)
        .map(|i| {
            let d = if i < abandonadas {
                "ABANDONADA"
            } else {
                "ESCUCHO"
            };
            format!(
                "('{c}', {i}, '5559{i:04}', 1, '{u}', 'n', 'COMPLETADO', 'HUMANO', '{now}', \
                 '{now}', 0, 0, '{d}')",
                u = uuid::Uuid::new_v4()
            )
        })
        .collect();
    // A few statements: one command line cannot take them all.
    for chunk in rows.chunks(200) {
        app.db.sql(&format!(
            "INSERT INTO llamadas (campana, numero_id, telefono, intento, uuid, nodo, estado, \
             resultado, inicio, fin, billsec, duracion, disposicion) VALUES {}",
            chunk.join(", ")
        ));
    }
}

on_both_backends!(
    the_abandon_ceiling_slows_the_campaign_then_pauses_it,
    worker_threads = 2
);
/// 27 abandoned of 1000 answered (2.7 %, 90 % of a 3 % ceiling): the campaign dials at 55 % of its
/// `cps`; at 30 of 1000 (3 %) it pauses itself, with the reason in estado.
async fn the_abandon_ceiling_slows_the_campaign_then_pauses_it(backend: Backend) {
    let r = rig_clocked(backend, &[], SimConfig::default(), Clock::system()).await;
    let numbers: Vec<String> = (0..400).map(|i| format!("555{i:04}1")).collect();
    r.campaign("LENTA", json!({"cps": 10, "reintentos": 0}), &numbers)
        .await;
    abandon_history(&r.app, "LENTA", 1000, 27);
    r.command("iniciar", "LENTA").await;
    let t0 = Instant::now();
    loop {
        let e = r.estado("LENTA").await;
        let s = &e["estadisticas"];
        if s["cps_efectivo"].as_f64() == Some(5.5) {
            assert_eq!(s["tasa_abandono_30d"].as_f64(), Some(2.7), "{e}");
            assert_eq!(s["tasa_abandono_maxima"].as_f64(), Some(3.0), "{e}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not slowed: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The history at exactly 3 % (30 of 1000): resumed, the campaign pauses itself.
    r.command("pausar", "LENTA").await;
    r.app.db.sql("DELETE FROM llamadas WHERE campana = 'LENTA'");
    abandon_history(&r.app, "LENTA", 1000, 30);
    r.command("reanudar", "LENTA").await;
    let t0 = Instant::now();
    loop {
        let e = r.estado("LENTA").await;
        if e["estado"] == "PAUSADA" {
            let motivo = e["motivo"].as_str().unwrap_or_default();
            assert!(motivo.contains("tasa de abandono de 3 %"), "{e}");
            assert!(motivo.contains("tasa_abandono_maxima"), "{e}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not paused: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.app.shutdown().await;
}

on_both_backends!(hostile_zone_names_and_dates_are_refused, worker_threads = 2);
/// Zone names and dates from outside are refused with messages naming the field, and change
/// nothing: no number with a bad zone is loaded, no campaign with a bad rule is created or changed.
async fn hostile_zone_names_and_dates_are_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("REGLAS").await;
    let long = "A".repeat(300);
    let csv = format!(
        "telefono,zona_horaria\n5550001,Mars/Olympus\n5550002,America/New_York'; DROP TABLE bases;--\n\
         5550003,../../etc/passwd\n5550004,{long}\n5550005,\"Europe/Madrid\nX\"\n5550006,Europe/Madrid\n"
    );
    let (s, b) = t
        .post_raw("/campana/REGLAS/numeros", "text/csv", csv.into_bytes())
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["insertados"].as_u64(), b["invalidos"].as_u64()),
        (Some(1), Some(5)),
        "{b}"
    );
    for e in b["errores"].as_array().unwrap() {
        assert!(
            e["motivo"].as_str().unwrap().starts_with("zona_horaria"),
            "{e}"
        );
    }
    let (s, b) = t
        .post_json(
            "/campana/REGLAS/numeros",
            json!({"numeros": [{"telefono": "5550007", "zona_horaria": 5},
                               {"telefono": "5550008", "zona_horaria": "Nowhere/City"},
                               {"telefono": "5550009", "zona_horaria": "Asia/Tokyo"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["insertados"].as_u64(), b["invalidos"].as_u64()),
        (Some(1), Some(2)),
        "{b}"
    );
    assert_eq!(
        t.db.sql("SELECT telefono, zona_horaria FROM REGLAS ORDER BY id"),
        "5550006\tEurope/Madrid\n5550009\tAsia/Tokyo"
    );

    let many: Vec<String> = (0..1001)
        .map(|i| format!("2026-01-{:02}", i % 28 + 1))
        .collect();
    for (field, value) in [
        ("fechas_excluidas", json!("2026-12-25")),
        ("fechas_excluidas", json!(["2026-13-01"])),
        ("fechas_excluidas", json!(["2026-12-25' OR '1'='1"])),
        ("fechas_excluidas", json!([20261225])),
        ("fechas_excluidas", json!(many)),
        ("max_intentos_dia", json!(0)),
        ("max_intentos_dia", json!(51)),
        ("max_intentos_dia", json!(2.5)),
        ("max_intentos_dia", json!("3")),
        ("tasa_abandono_maxima", json!(0)),
        ("tasa_abandono_maxima", json!(100.5)),
        ("tasa_abandono_maxima", json!("3")),
        ("zona_horaria", json!("Europe/Nowhere")),
    ] {
        let mut body = json!({"nombre": "NUEVA"});
        body[field] = value.clone();
        let (s, e) = t.post_json("/campanas/", body).await;
        assert_eq!(s, 400, "{field} {value}: {e}");
        assert!(
            e["mensaje"].as_str().unwrap().starts_with(field),
            "{field}: {e}"
        );
        let (s, e) = t
            .patch_json("/campana/REGLAS", json!({ field: value }))
            .await;
        assert_eq!(s, 400, "PATCH {field} {value}: {e}");
    }
    let (_, list) = t.get("/campanas/").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (_, c) = t.get("/campana/REGLAS").await;
    assert_eq!(
        (
            &c["fechas_excluidas"],
            &c["max_intentos_dia"],
            &c["tasa_abandono_maxima"]
        ),
        (&json!([]), &Value::Null, &json!(3.0)),
        "unchanged: {c}"
    );
    // Good values are kept (sorted, without repeats) and cleared with null.
    let (s, c) = t
        .patch_json(
            "/campana/REGLAS",
            json!({"fechas_excluidas": ["2026-12-31", "2026-12-25", "2026-12-31"],
                   "max_intentos_dia": 3, "tasa_abandono_maxima": 2.5}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let (_, c) = t.get("/campana/REGLAS").await;
    assert_eq!(
        c["fechas_excluidas"],
        json!(["2026-12-25", "2026-12-31"]),
        "{c}"
    );
    assert_eq!(
        (
            c["max_intentos_dia"].as_u64(),
            c["tasa_abandono_maxima"].as_f64()
        ),
        (Some(3), Some(2.5))
    );
    let (s, _) = t
        .patch_json(
            "/campana/REGLAS",
            json!({"fechas_excluidas": null, "max_intentos_dia": null}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, c) = t.get("/campana/REGLAS").await;
    assert_eq!(
        (&c["fechas_excluidas"], &c["max_intentos_dia"]),
        (&json!([]), &Value::Null)
    );
    t.shutdown().await;
}
