//! `GET /metrics` (Prometheus text format, read back with the `prometheus-parse` crate) and the
//! API's per-client rate limit (governor), against the real service.
//!
//! The exactness check runs a campaign of mixed outcomes on the simulator (last digit: 0 busy,
//! 1 no answer, 2 invalid, 3 machine, 4 rejected, 5 network failure, 6 human, 9 human NOTSURE),
//! with one retry and a script, to its end, then compares the campaign's counters with what
//! estado and the CDRs (`llamadas`) say of the same quantity.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{on_both_backends, Backend, TestApp};
use discador::sim::SimConfig;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

/// Parses a scrape; every sample line of the text must come out of the parser (a reader that
/// silently skips lines would hide a malformed one).
fn parse(text: &str) -> Vec<Sample> {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    // A histogram's `_bucket` lines fold into one sample; every other line is a sample.
    let buckets = lines.iter().filter(|l| l.contains("_bucket{")).count();
    let plain = scrape
        .samples
        .iter()
        .filter(|s| !matches!(s.value, Value::Histogram(_)))
        .count();
    assert_eq!(
        plain,
        lines.len() - buckets,
        "the parser dropped lines of:\n{text}"
    );
    scrape.samples
}

/// The value of the one sample of `metric` whose labels include `labels`; 0 when there is none
/// (a counter that never moved has no labelled series yet).
pub(crate) fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain value"),
        })
        .collect();
    assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
    found.first().copied().unwrap_or(0.0)
}

pub(crate) async fn scrape(t: &TestApp) -> Vec<Sample> {
    let r = t
        .http
        .get(t.url("/metrics"))
        .bearer_auth(t.token.as_deref().unwrap_or(""))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.text().await.unwrap())
}

/// `SELECT key, COUNT(*) … GROUP BY key` as a map.
fn counts(db: &common::TestDb, sql: &str) -> HashMap<String, f64> {
    db.sql(sql)
        .lines()
        .map(|l| {
            let (k, n) = l.split_once('\t').expect("two columns");
            (k.to_owned(), n.parse().expect("a count"))
        })
        .collect()
}

on_both_backends!(
    campaign_counters_equal_the_estado_and_cdr_counts,
    worker_threads = 2
);
async fn campaign_counters_equal_the_estado_and_cdr_counts(backend: Backend) {
    let sounds = std::env::temp_dir().join(format!("discador_sounds_{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&sounds).unwrap();
    std::fs::write(sounds.join("mensaje.wav"), b"RIFF").unwrap();
    let rig = crate::dialer::rig_clocked(
        backend,
        &[],
        SimConfig {
            sounds_dir: sounds.clone(),
            ..SimConfig::default()
        },
        discador::clock::Clock::system(),
    )
    .await;
    let nums: Vec<String> = (0..80)
        .map(|i| format!("5493{i:06}{}", [0, 1, 2, 3, 4, 5, 6, 9][i % 8]))
        .collect();
    rig.campaign(
        "METRICAS",
        json!({"cps": 100, "reintentos": 1, "amd": "avmd", "destino_humano": "",
               "mensaje_humano": "mensaje.wav", "buzon": "tras_beep",
               "mensaje_maquina": sounds.join("mensaje.wav").to_str().unwrap()}),
        &nums,
    )
    .await;
    rig.command("iniciar", "METRICAS").await;
    let estado = rig.finished("METRICAS", Duration::from_secs(60)).await;
    let e = &estado["estadisticas"];
    let m = scrape(&rig.app).await;
    let c = [("campana", "METRICAS")];
    let db = &rig.app.db;

    // Originates: the runner's own count in estado, one CDR per attempt.
    let originadas = value(&m, "discador_originadas_total", &c);
    assert_eq!(originadas, e["originadas"].as_f64().unwrap(), "{estado}");
    let cdrs: f64 = db
        .sql("SELECT COUNT(*) FROM llamadas WHERE campana = 'METRICAS'")
        .parse()
        .unwrap();
    assert_eq!(originadas, cdrs);
    assert!(
        originadas > nums.len() as f64,
        "retries happened: {originadas}"
    );

    // Answers: the attempts whose CDR says answered.
    let contestadas: f64 = db
        .sql("SELECT COUNT(*) FROM llamadas WHERE campana = 'METRICAS' AND contestada IS NOT NULL")
        .parse()
        .unwrap();
    assert_eq!(value(&m, "discador_contestadas_total", &c), contestadas);
    assert!(contestadas > 0.0);

    // Finished attempts by resultado: the CDRs by resultado, retries included, each once.
    let by_result = counts(
        db,
        "SELECT resultado, COUNT(*) FROM llamadas WHERE campana = 'METRICAS' GROUP BY resultado",
    );
    assert!(by_result.len() >= 6, "mixed outcomes: {by_result:?}");
    let mut total = 0.0;
    for s in m
        .iter()
        .filter(|s| s.metric == "discador_llamadas_terminadas_total")
    {
        if s.labels.get("campana") == Some("METRICAS") {
            let r = s.labels.get("resultado").unwrap();
            assert!(by_result.contains_key(r), "{r} counted, no CDR has it");
        }
    }
    for (resultado, n) in &by_result {
        let counted = value(
            &m,
            "discador_llamadas_terminadas_total",
            &[("campana", "METRICAS"), ("resultado", resultado)],
        );
        assert_eq!(counted, *n, "{resultado}");
        total += counted;
    }
    assert_eq!(total, originadas, "every originate finished exactly once");
    // People and machines complete on their one attempt: estado counts the same numbers.
    for (resultado, key) in [("HUMANO", "humanos"), ("MAQUINA", "maquinas")] {
        assert_eq!(
            value(
                &m,
                "discador_llamadas_terminadas_total",
                &[("campana", "METRICAS"), ("resultado", resultado)]
            ),
            e[key].as_f64().unwrap(),
            "{key}: {estado}"
        );
    }
    // Dispositions: estado counts them over the CDRs too.
    for (disposicion, key) in [
        ("ESCUCHO", "escucharon"),
        ("MENSAJE_DEJADO", "mensajes_dejados"),
    ] {
        let n = e[key].as_f64().unwrap();
        assert!(n > 0.0, "{key}: {estado}");
        assert_eq!(
            value(
                &m,
                "discador_disposiciones_total",
                &[("campana", "METRICAS"), ("disposicion", disposicion)]
            ),
            n,
            "{disposicion}"
        );
    }

    // Nothing is live any more; the ceiling is the configured one (the rig's 5000).
    assert_eq!(value(&m, "discador_llamadas_activas", &c), 0.0);
    assert_eq!(value(&m, "discador_canales_en_uso", &[]), 0.0);
    assert_eq!(value(&m, "discador_canales_maximos", &[]), 5000.0);
    assert_eq!(value(&m, "discador_cps_configurado", &c), 0.0, "finished");
    // The link to the simulator.
    assert_eq!(value(&m, "discador_esl_conectado", &[]), 1.0);
    assert_eq!(value(&m, "discador_esl_reconexiones_total", &[]), 0.0);
    // Every batch of results was timed and written.
    assert_eq!(value(&m, "discador_escritor_cola", &[]), 0.0);
    let batches = m
        .iter()
        .find(|s| s.metric == "discador_escritor_lote_segundos_count")
        .map(|s| match s.value {
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) => v,
            _ => 0.0,
        })
        .expect("batch histogram");
    assert!(batches > 0.0);
    // Requests by route template: the polls of estado, never a raw path.
    assert!(
        value(
            &m,
            "discador_api_peticiones_total",
            &[
                ("metodo", "GET"),
                ("ruta", "/discador/estado/:nombre"),
                ("estado", "200")
            ]
        ) > 0.0
    );
    assert!(m
        .iter()
        .filter_map(|s| s.labels.get("ruta"))
        .all(|r| !r.contains("METRICAS")));

    // Another app in this process has its own registry: none of this campaign is there.
    let other = TestApp::spawn(backend).await;
    let theirs = scrape(&other).await;
    assert_eq!(value(&theirs, "discador_originadas_total", &c), 0.0);
    assert_eq!(
        value(&theirs, "discador_esl_conectado", &[]),
        0.0,
        "no switch there"
    );
    other.shutdown().await;

    rig.app.shutdown().await;
    rig.sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&sounds);
}

on_both_backends!(rate_limit_answers_429_with_retry_after);
/// One request per second, three at once: the fourth in a row is refused by governor with
/// `Retry-After` and the API's error body; `/health` is never limited; after the wait the client
/// goes on; the 429 is counted; `/metrics` needs the token like the rest.
async fn rate_limit_answers_429_with_retry_after(backend: Backend) {
    let t = TestApp::spawn_with(
        backend,
        &[
            "--api-limite-rps",
            "1",
            "--api-limite-rafaga",
            "3",
            "--api-token",
            "s3cr3t",
        ],
    )
    .await;
    // spawn polled /health until recovery was over: exempt, so the bucket is still full.
    for _ in 0..10 {
        assert_eq!(t.get("/health").await.0, 200);
    }
    for _ in 0..3 {
        let (s, b) = t.get("/campanas/").await;
        assert_eq!(s, 200, "a client under its limit sees nothing change: {b}");
    }
    let r = t
        .http
        .get(t.url("/campanas/"))
        .bearer_auth("s3cr3t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let (_, body) = TestApp::split(r).await;
    assert_eq!(body["error"], "demasiadas_peticiones", "{body}");
    assert!(
        body["mensaje"].as_str().unwrap().contains("reintente"),
        "{body}"
    );
    assert_eq!(t.get("/health").await.0, 200, "health is exempt");
    // Another client address (the whole 127/8 is loopback) has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other
        .get(t.url("/campanas/"))
        .bearer_auth("s3cr3t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "limited per client address");

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let m = scrape(&t).await;
    let requests = |estado: &str| {
        value(
            &m,
            "discador_api_peticiones_total",
            &[
                ("metodo", "GET"),
                ("ruta", "/campanas/"),
                ("estado", estado),
            ],
        )
    };
    assert_eq!((requests("200"), requests("429")), (4.0, 1.0));
    assert!(
        value(
            &m,
            "discador_api_peticiones_total",
            &[("ruta", "/health"), ("estado", "200")]
        ) >= 11.0
    );
    assert_eq!(value(&m, "discador_esl_conectado", &[]), 0.0, "no switch");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = t.http.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401, "/metrics needs the token");
    t.shutdown().await;
}
