//! CDR export (`/campana/{nombre}/llamadas`), charts (`/grafico/*.svg`) and their JSON
//! (`/serie`), on both backends: what a campaign on the simulator wrote comes back field by field,
//! the date range cuts at its exact boundaries, bad input is refused before any body byte, and a
//! database lost in the middle of an export breaks the transfer.

use crate::common;

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use common::{on_both_backends, Backend, TestApp};
use discador::sim::SimConfig;
use discador::store::CdrRow;
use serde_json::{json, Value};

/// `2026-11-28T14:00:00.123Z`, written here independently of the service's own formatting.
fn instant(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The export's columns, in order, and a CDR's values as the CSV must carry them.
const COLUMNS: [&str; 25] = [
    "id",
    "campana",
    "numero_id",
    "telefono",
    "intento",
    "uuid",
    "nodo",
    "estado",
    "resultado",
    "causa",
    "amd_resultado",
    "amd_causa",
    "inicio",
    "contestada",
    "fin",
    "billsec",
    "duracion",
    "disposicion",
    "mensaje_ms",
    "teclas",
    "accion",
    "transferida_a",
    "agente_contesto",
    "tras_beep_ms",
    "amd_inicial",
];

fn expected_json(r: &CdrRow) -> Value {
    json!({
        "id": r.id, "campana": r.campana, "numero_id": r.numero_id, "telefono": r.telefono,
        "intento": r.intento, "uuid": r.uuid, "nodo": r.nodo, "estado": r.estado,
        "resultado": r.resultado, "causa": r.causa, "amd_resultado": r.amd_resultado,
        "amd_causa": r.amd_causa, "inicio": instant(r.inicio),
        "contestada": r.contestada.map(instant), "fin": instant(r.fin), "billsec": r.billsec,
        "duracion": r.duracion, "disposicion": r.disposicion, "mensaje_ms": r.mensaje_ms,
        "teclas": r.teclas, "accion": r.accion, "transferida_a": r.transferida_a,
        "agente_contesto": r.agente_contesto, "tras_beep_ms": r.tras_beep_ms,
        "amd_inicial": r.amd_inicial,
    })
}

/// The CSV fields of a CDR: its JSON values as text, NULL empty.
fn expected_csv(r: &CdrRow) -> Vec<String> {
    let v = expected_json(r);
    COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The CDRs of `campana` in the database, in export order.
async fn stored(t: &TestApp, campana: &str) -> Vec<CdrRow> {
    let mut all: Vec<CdrRow> = t
        .app
        .store
        .cdr_rows(0, 1_000_000)
        .await
        .expect("CDRs read")
        .into_iter()
        .filter(|r| r.campana == campana)
        .collect();
    all.sort_by_key(|a| (a.inicio, a.id));
    all
}

struct Got {
    status: u16,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

async fn get_raw(t: &TestApp, path: &str) -> Got {
    let mut rb = t.http.get(t.url(path));
    if let Some(tok) = &t.token {
        rb = rb.bearer_auth(tok);
    }
    let r = rb.send().await.expect("request");
    let header = |h: &str| {
        r.headers()
            .get(h)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    Got {
        status: r.status().as_u16(),
        content_type,
        disposition,
        body: r.bytes().await.expect("whole body").to_vec(),
    }
}

fn csv_records(body: &[u8]) -> Vec<Vec<String>> {
    let mut rd = csv::Reader::from_reader(body);
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, COLUMNS, "header row");
    rd.records()
        .map(|r| r.expect("CSV record").iter().map(String::from).collect())
        .collect()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_milli_opt(h, mi, s, ms))
        .expect("a valid test instant")
}

/// A CDR with every column set, `inicio` at `inicio`; user-ish fields carry CSV's special
/// characters and a spreadsheet formula.
fn cdr(id: i64, campana: &str, inicio: NaiveDateTime) -> CdrRow {
    CdrRow {
        id,
        campana: campana.into(),
        numero_id: id,
        telefono: format!("+54911{id:08}"),
        intento: 2,
        uuid: format!("00000000-0000-4000-8000-{id:012}"),
        nodo: "fs-1".into(),
        estado: "COMPLETADO".into(),
        resultado: ["HUMANO", "MAQUINA", "OCUPADO"][id as usize % 3].into(),
        causa: Some("NORMAL_CLEARING".into()),
        amd_resultado: Some("HUMAN".into()),
        amd_causa: Some("INITIALSILENCE".into()),
        inicio,
        contestada: Some(inicio + chrono::Duration::milliseconds(1500)),
        fin: inicio + chrono::Duration::seconds(9),
        billsec: 7,
        duracion: 9,
        disposicion: Some("TRANSFERIDA".into()),
        mensaje_ms: Some(4200),
        teclas: Some("1,\"2\"\n#".into()),
        accion: Some("transferir".into()),
        transferida_a: Some("=HYPERLINK(\"http://x\",\"y\"),\r\nagentes".into()),
        agente_contesto: Some(id % 2 == 0),
        tras_beep_ms: Some(350),
        amd_inicial: Some("NOTSURE".into()),
    }
}

async fn insert(t: &TestApp, rows: &[CdrRow]) {
    for chunk in rows.chunks(500) {
        let n = t
            .app
            .store
            .insert_cdr_rows(chunk)
            .await
            .expect("CDRs inserted");
        assert_eq!(n, chunk.len() as u64);
    }
}

on_both_backends!(
    a_campaign_on_the_simulator_exports_every_field,
    worker_threads = 2
);
async fn a_campaign_on_the_simulator_exports_every_field(backend: Backend) {
    let rig = crate::dialer::rig_clocked(
        backend,
        &[],
        SimConfig::default(),
        discador::clock::Clock::system(),
    )
    .await;
    // Two numbers of each outcome (last digit), one retry for the failures.
    let nums: Vec<String> = (0..20)
        .map(|i| format!("54911{:06}{}", i, i % 10))
        .collect();
    rig.campaign("EXPORTA", json!({"cps": 50, "reintentos": 1}), &nums)
        .await;
    rig.command("iniciar", "EXPORTA").await;
    rig.finished("EXPORTA", Duration::from_secs(60)).await;
    let t = &rig.app;
    // A CDR with every column set and hostile text, as a scripted call would leave it.
    insert(t, &[cdr(900_000, "EXPORTA", at(2030, 1, 1, 0, 0, 0, 1))]).await;
    let rows = stored(t, "EXPORTA").await;
    assert!(rows.len() > 20, "retries add CDRs: {}", rows.len());

    let csv = get_raw(t, "/campana/EXPORTA/llamadas").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert_eq!(
        csv.disposition,
        "attachment; filename=\"EXPORTA-llamadas.csv\""
    );
    let got = csv_records(&csv.body);
    let want: Vec<Vec<String>> = rows.iter().map(expected_csv).collect();
    assert_eq!(got, want);

    let js = get_raw(t, "/campana/EXPORTA/llamadas?formato=json").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.content_type, "application/json");
    let got: Vec<Value> = serde_json::from_slice(&js.body).expect("one JSON document");
    let want: Vec<Value> = rows.iter().map(expected_json).collect();
    assert_eq!(got, want);

    // The same data for charts: attempts per minute add up to the CDRs; results as in the table.
    let (s, serie) = t.get("/campana/EXPORTA/serie").await;
    assert_eq!(s, 200, "{serie}");
    let minutos = serie["minutos"].as_array().expect("minutos");
    let total: u64 = minutos
        .iter()
        .map(|m| m["intentos"].as_u64().unwrap())
        .sum();
    assert_eq!(total, rows.len() as u64, "{serie}");
    let answered: u64 = minutos
        .iter()
        .map(|m| m["contestadas"].as_u64().unwrap())
        .sum();
    assert_eq!(
        answered,
        rows.iter().filter(|r| r.contestada.is_some()).count() as u64
    );
    // The span reaches 2030: wide buckets, never more than 1440 points.
    assert!(minutos.len() <= 1440 && serie["minutos_por_punto"].as_u64().unwrap() > 1);
    let mut by_result = std::collections::BTreeMap::<String, u64>::new();
    for r in &rows {
        *by_result.entry(r.resultado.clone()).or_default() += 1;
    }
    assert_eq!(serie["resultados"], json!(by_result));

    let svg = get_raw(t, "/campana/EXPORTA/grafico/resultados.svg").await;
    assert_eq!(
        (svg.status, svg.content_type.as_str()),
        (200, "image/svg+xml")
    );
    let text = String::from_utf8(svg.body).expect("UTF-8");
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let labels = texts(&doc);
    for (r, n) in &by_result {
        assert!(labels.contains(r), "{r} not drawn: {labels:?}");
        assert!(labels.contains(&n.to_string()), "count {n} not drawn");
    }
}

fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .collect()
}

fn ids(body: &[u8]) -> Vec<i64> {
    csv_records(body)
        .iter()
        .map(|r| r[0].parse().expect("an id"))
        .collect()
}

on_both_backends!(the_date_range_cuts_at_exact_boundaries, worker_threads = 2);
async fn the_date_range_cuts_at_exact_boundaries(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("RANGO").await;
    t.create("OTRA").await;
    let mut rows = vec![
        cdr(1, "RANGO", at(2026, 11, 27, 23, 59, 59, 999)),
        cdr(2, "RANGO", at(2026, 11, 28, 0, 0, 0, 0)),
        cdr(3, "RANGO", at(2026, 11, 28, 11, 59, 59, 999)),
        cdr(4, "RANGO", at(2026, 11, 28, 12, 0, 0, 0)),
        cdr(5, "RANGO", at(2026, 11, 28, 23, 59, 59, 999)),
        cdr(6, "RANGO", at(2026, 11, 29, 0, 0, 0, 0)),
        // Same instant as id 4, inserted later: after it in (inicio, id) order.
        cdr(7, "RANGO", at(2026, 11, 28, 12, 0, 0, 0)),
        cdr(8, "OTRA", at(2026, 11, 28, 12, 0, 0, 0)),
    ];
    // 4,500 CDRs at one instant and around it: pages of 2,000 must split a run of equal `inicio`
    // without losing or repeating a row.
    let tie = at(2026, 11, 28, 18, 0, 0, 0);
    for id in 100..4600 {
        let inicio = if id % 3 == 0 {
            tie
        } else {
            tie + chrono::Duration::milliseconds(id % 7 - 3)
        };
        rows.push(cdr(id, "RANGO", inicio));
    }
    insert(&t, &rows).await;

    let export = |q: &str| {
        let path = format!("/campana/RANGO/llamadas{q}");
        let t = &t;
        async move {
            let g = get_raw(t, &path).await;
            assert_eq!(
                g.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&g.body)
            );
            ids(&g.body)
        }
    };
    let bulk = |from: i64, to: i64| {
        let mut v: Vec<(NaiveDateTime, i64)> = rows
            .iter()
            .filter(|r| r.id >= 100 && r.campana == "RANGO")
            .map(|r| (r.inicio, r.id))
            .filter(|(i, _)| *i >= tie + chrono::Duration::milliseconds(from))
            .filter(|(i, _)| *i < tie + chrono::Duration::milliseconds(to))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect::<Vec<i64>>()
    };

    // The whole campaign, in (inicio, id) order, over three pages.
    let all = export("").await;
    let mut want = vec![1, 2, 3, 4, 7];
    want.extend(bulk(-3, 4));
    want.extend([5, 6]);
    assert_eq!(all, want);

    // A day: from its midnight (included) to the next (excluded).
    let mut day = vec![2, 3, 4, 7];
    day.extend(bulk(-3, 4));
    day.push(5);
    assert_eq!(export("?desde=2026-11-28&hasta=2026-11-29").await, day);
    assert_eq!(
        export("?desde=2026-11-28T00:00:00Z&hasta=2026-11-29T00:00:00.000Z").await,
        day
    );
    // An offset is the same instant: 09:00 at -03:00 is 12:00 UTC (`+`/`-` both).
    assert_eq!(
        export("?hasta=2026-11-28T09:00:00-03:00").await,
        vec![1, 2, 3]
    );
    assert_eq!(
        export("?hasta=2026-11-28T15:00:00%2B03:00").await,
        vec![1, 2, 3]
    );
    assert_eq!(
        export("?desde=2026-11-28T12:00:00Z&hasta=2026-11-28T12:00:00.001Z").await,
        vec![4, 7]
    );
    // Milliseconds count at both ends.
    assert_eq!(export("?desde=2026-11-28T23:59:59.999Z").await, vec![5, 6]);
    assert_eq!(export("?hasta=2026-11-28T00:00:00.001Z").await, vec![1, 2]);
    assert_eq!(
        export("?desde=2026-11-29T00:00:00.001Z").await,
        Vec::<i64>::new()
    );
    // Instants beyond what the databases store are clamped, not errors.
    assert_eq!(
        export("?desde=0001-01-01T00:00:00Z&hasta=0500-01-01").await,
        Vec::<i64>::new()
    );
    assert_eq!(
        export("?desde=0001-01-01&hasta=9999-12-31T23:59:59.999Z").await,
        all
    );
    // Ties: exactly the rows at `tie`, none of its neighbours.
    let at_tie = format!(
        "?desde={}&hasta={}&formato=csv",
        "2026-11-28T18:00:00Z", "2026-11-28T18:00:00.001Z"
    );
    let tied = bulk(0, 1);
    assert_eq!(export(&at_tie).await, tied);
    let start = all
        .iter()
        .position(|id| *id == tied[0])
        .expect("the tie is exported");
    assert!(
        start < 2000 && start + tied.len() > 2000,
        "the rows at one instant span the first page boundary ({start}, {})",
        tied.len()
    );

    // JSON of the same range, element by element, and an empty one.
    let g = get_raw(
        &t,
        "/campana/RANGO/llamadas?formato=json&desde=2026-11-28&hasta=2026-11-29",
    )
    .await;
    let v: Vec<Value> = serde_json::from_slice(&g.body).expect("a JSON array");
    assert_eq!(
        v.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        day
    );
    let g = get_raw(&t, "/campana/OTRA/llamadas?formato=json&desde=2030-01-01").await;
    assert_eq!(serde_json::from_slice::<Value>(&g.body).unwrap(), json!([]));
    t.shutdown().await;
}

on_both_backends!(bad_input_is_refused_before_any_body);
async fn bad_input_is_refused_before_any_body(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("PRUEBA").await;
    let huge = "9".repeat(20_000);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "/campana/PRUEBA/llamadas?formato=xml".into(),
            400,
            "formato: 'xml'",
        ),
        (
            "/campana/PRUEBA/llamadas?formato=JSON".into(),
            400,
            "formato:",
        ),
        (
            "/campana/PRUEBA/llamadas?desde=2026-13-45".into(),
            400,
            "desde: '2026-13-45'",
        ),
        (
            "/campana/PRUEBA/llamadas?hasta=2026-02-30".into(),
            400,
            "hasta: ",
        ),
        (
            "/campana/PRUEBA/llamadas?hasta=2026-11-28T14:00:00".into(),
            400,
            "hasta: ",
        ),
        (
            "/campana/PRUEBA/llamadas?desde=2026-11-29&hasta=2026-11-28".into(),
            400,
            "desde: ",
        ),
        (
            "/campana/PRUEBA/llamadas?desde=2026-11-28&desde=2026-11-29".into(),
            400,
            "desde: ",
        ),
        (
            "/campana/PRUEBA/llamadas?dsde=2026-11-28".into(),
            400,
            "'dsde'",
        ),
        (
            format!("/campana/PRUEBA/llamadas?desde={huge}"),
            400,
            "desde: ",
        ),
        (
            format!("/campana/PRUEBA/llamadas?formato={huge}"),
            400,
            "formato: ",
        ),
        (
            "/campana/NADA/llamadas".into(),
            404,
            "no existe la campaña NADA",
        ),
        (
            "/campana/NADA/serie".into(),
            404,
            "no existe la campaña NADA",
        ),
        (
            "/campana/NADA/grafico/llamadas.svg".into(),
            404,
            "no existe la campaña NADA",
        ),
        ("/campana/bases/llamadas".into(), 400, "nombre: "),
        (
            "/campana/..%2F..%2Fetc%2Fpasswd/llamadas".into(),
            400,
            "nombre: ",
        ),
        (
            "/campana/x%60%3B%20DROP%20TABLE%20llamadas/llamadas".into(),
            400,
            "nombre: ",
        ),
        (
            "/campana/%FF/grafico/resultados.svg".into(),
            400,
            "nombre: ",
        ),
        (
            format!("/campana/{}/serie", "A".repeat(5000)),
            400,
            "nombre: ",
        ),
        (
            "/campana/PRUEBA/grafico/otro.svg".into(),
            404,
            "ruta desconocida",
        ),
    ];
    for (path, status, msg) in cases {
        let g = get_raw(&t, &path).await;
        let shown: String = path.chars().take(80).collect();
        assert_eq!(g.status, status, "{shown}");
        assert_eq!(g.content_type, "application/json", "{shown}");
        let b: Value = serde_json::from_slice(&g.body).expect("the JSON error shape");
        assert!(b["error"].is_string(), "{shown}: {b}");
        let m = b["mensaje"].as_str().unwrap_or_default();
        assert!(m.contains(msg), "{shown}: {m}");
        assert!(
            m.len() < 300,
            "{shown}: the message echoes too much: {}",
            m.len()
        );
    }
    // A new campaign: a header-only CSV and pictures that say there is nothing yet.
    let g = get_raw(&t, "/campana/PRUEBA/llamadas").await;
    assert_eq!(csv_records(&g.body).len(), 0);
    for chart in ["llamadas", "resultados"] {
        let g = get_raw(&t, &format!("/campana/PRUEBA/grafico/{chart}.svg")).await;
        assert_eq!((g.status, g.content_type.as_str()), (200, "image/svg+xml"));
        let text = String::from_utf8(g.body).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
        assert!(
            texts(&doc).contains(&"Sin llamadas todavía".to_owned()),
            "{text}"
        );
    }
    let (s, b) = t.get("/campana/PRUEBA/serie").await;
    assert_eq!(s, 200);
    assert_eq!(b["minutos"], json!([]), "{b}");
    assert_eq!(b["resultados"], json!({}), "{b}");
    t.shutdown().await;
}

on_both_backends!(the_calls_chart_draws_both_series_per_minute);
async fn the_calls_chart_draws_both_series_per_minute(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("GRAF").await;
    // Minute 14:00: 3 attempts (2 answered); 14:01 none; 14:02: 1 (not answered).
    let mut rows = vec![
        cdr(1, "GRAF", at(2026, 11, 28, 14, 0, 0, 0)),
        cdr(2, "GRAF", at(2026, 11, 28, 14, 0, 30, 0)),
        cdr(3, "GRAF", at(2026, 11, 28, 14, 0, 59, 999)),
        cdr(4, "GRAF", at(2026, 11, 28, 14, 2, 0, 0)),
    ];
    rows[2].contestada = None;
    rows[3].contestada = None;
    insert(&t, &rows).await;
    let (s, b) = t.get("/campana/GRAF/serie").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["minutos"],
        json!([
            {"minuto": "2026-11-28T14:00:00Z", "intentos": 3, "contestadas": 2},
            {"minuto": "2026-11-28T14:01:00Z", "intentos": 0, "contestadas": 0},
            {"minuto": "2026-11-28T14:02:00Z", "intentos": 1, "contestadas": 0},
        ])
    );
    assert_eq!(b["minutos_por_punto"], 1);
    let g = get_raw(&t, "/campana/GRAF/grafico/llamadas.svg").await;
    assert_eq!((g.status, g.content_type.as_str()), (200, "image/svg+xml"));
    let text = String::from_utf8(g.body).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let labels = texts(&doc);
    for l in [
        "Intentos",
        "Contestadas",
        "Llamadas de GRAF por minuto",
        "14:00",
    ] {
        assert!(labels.contains(&l.to_owned()), "{l}: {labels:?}");
    }
    let series = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split_whitespace().count() == 3)
        })
        .filter_map(|n| n.attribute("stroke"))
        .collect::<Vec<_>>();
    assert_eq!(series, ["#1F77B4", "#2CA02C"], "two lines of three points");
    t.shutdown().await;
}

#[tokio::test]
async fn the_export_needs_the_token_like_every_campaign_endpoint() {
    let t = TestApp::spawn_with(Backend::Sqlite, &["--api-token", "s3cr3t"]).await;
    t.create("PRUEBA").await;
    for path in [
        "/campana/PRUEBA/llamadas",
        "/campana/PRUEBA/serie",
        "/campana/PRUEBA/grafico/llamadas.svg",
        "/campana/PRUEBA/grafico/resultados.svg",
    ] {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let g = get_raw(&t, path).await;
        assert_eq!(g.status, 200, "{path}");
    }
    // Documented in the OpenAPI spec (public), with its parameters.
    let spec: Value = t
        .http
        .get(t.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let export = &spec["paths"]["/campana/{nombre}/llamadas"]["get"];
    let params: Vec<&str> = export["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["nombre", "desde", "hasta", "formato"], "{export}");
    assert_eq!(
        export["summary"], "Exporta las llamadas (CDR) de una campaña",
        "described in Spanish"
    );
    for path in [
        "/campana/{nombre}/grafico/llamadas.svg",
        "/campana/{nombre}/grafico/resultados.svg",
        "/campana/{nombre}/serie",
    ] {
        assert!(
            spec["paths"][path]["get"].is_object(),
            "{path} not in the spec"
        );
    }
    t.shutdown().await;
}

/// MariaDB lost while the export streams: the client gets an error, not a shorter file that
/// parses. The app reaches MariaDB through a proxy the test cuts once the first bytes arrived;
/// the export is large enough (≈ 30 MB) that the socket buffers cannot hold it all by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_mid_export_breaks_the_transfer() {
    let db = common::TestDb::new(Backend::Mysql);
    let mut proxy = common::DbProxy::start_db().await;
    let url = proxy.url(&db.name);
    let app = discador::app::spawn(common::config(&["--database-url", &url]))
        .await
        .expect("app starts");
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.api_addr);
    let r = http
        .post(format!("{base}/campanas/"))
        .json(&json!({"nombre": "GRANDE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.store
        .insert_cdr_rows(&[cdr(1, "GRANDE", at(2026, 11, 28, 14, 0, 0, 0))])
        .await
        .unwrap();
    // 2^17 rows by doubling, fresh uuids (unique) and ids.
    for _ in 0..17 {
        db.sql(
            "INSERT INTO llamadas (campana, numero_id, telefono, intento, uuid, nodo, estado, \
             resultado, causa, amd_resultado, amd_causa, inicio, contestada, fin, billsec, \
             duracion, disposicion, mensaje_ms, teclas, accion, transferida_a, agente_contesto, \
             tras_beep_ms, amd_inicial) SELECT campana, numero_id, telefono, intento, UUID(), \
             nodo, estado, resultado, causa, amd_resultado, amd_causa, inicio, contestada, fin, \
             billsec, duracion, disposicion, mensaje_ms, teclas, accion, transferida_a, \
             agente_contesto, tras_beep_ms, amd_inicial FROM llamadas",
        );
    }
    let mut resp = http
        .get(format!("{base}/campana/GRANDE/llamadas"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.expect("a first chunk").expect("data");
    assert!(!first.is_empty());
    proxy.cut().await;
    let mut received = first.len();
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(c)) => received += c.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the body ended cleanly after {received} bytes although the database was lost"
    );
    proxy.restore().await;
    app.shutdown().await.expect("clean shutdown");
}
