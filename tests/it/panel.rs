//! What supervisors watch: the live event stream (`GET /discador/eventos`) and the supervisor page
//! (`GET /panel`) driven in a real headless Chromium, on the simulator.

use crate::common;
use crate::dialer::{count, numbers, rig_clocked, Rig};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{free_port, on_both_backends, Backend};
use discador::events::Evento;
use discador::sim::SimConfig;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

async fn rig(backend: Backend) -> Rig {
    rig_clocked(
        backend,
        &[],
        SimConfig::default(),
        discador::clock::Clock::system(),
    )
    .await
}

/// One event as the stream sent it.
#[derive(Debug, Clone)]
struct Sse {
    id: u64,
    tipo: String,
    data: Value,
}

/// Reads `path`'s event stream and sends every event to the returned channel, until the stream
/// ends (then the channel closes).
async fn follow(rig: &Rig, path: &str) -> mpsc::UnboundedReceiver<Sse> {
    let mut resp = reqwest::Client::new()
        .get(rig.app.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(std::str::from_utf8(&chunk).expect("the stream is UTF-8"));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut tipo, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().expect("numeric id"));
                    } else if let Some(v) = line.strip_prefix("event:") {
                        tipo = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if let (Some(id), Some(tipo)) = (id, tipo) {
                    let data = serde_json::from_str(&data).expect("data is JSON");
                    if tx.send(Sse { id, tipo, data }).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Waits until the app has `n` event subscribers (a client's subscription starts when its request
/// is answered; this makes sure nothing published after it is missed).
async fn subscribers(rig: &Rig, n: usize) {
    let t0 = Instant::now();
    while rig.app.app.dialer.eventos().subscribers() != n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "expected {n} subscribers, have {}",
            rig.app.app.dialer.eventos().subscribers()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

on_both_backends!(
    the_stream_delivers_every_finished_call_exactly_once_and_only_of_its_campaign,
    worker_threads = 2
);
async fn the_stream_delivers_every_finished_call_exactly_once_and_only_of_its_campaign(
    backend: Backend,
) {
    let rig = rig(backend).await;
    // Every outcome, one retry for the retryable ones, and AMD so that verdicts are published.
    let nums = numbers("54911", 300, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    rig.campaign(
        "EVENTOS",
        json!({"cps": 100, "reintentos": 1, "intervalo_reintento": 1, "amd": "mod_amd"}),
        &nums,
    )
    .await;
    rig.campaign("OTRA", json!({"cps": 100}), &numbers("54922", 50, &[6]))
        .await;
    let mut mine = follow(&rig, "/discador/eventos?campana=EVENTOS").await;
    let mut all = follow(&rig, "/discador/eventos").await;
    subscribers(&rig, 2).await;
    rig.command("iniciar", "EVENTOS").await;
    rig.command("iniciar", "OTRA").await;
    let fin = rig.finished("EVENTOS", Duration::from_secs(60)).await;
    rig.finished("OTRA", Duration::from_secs(60)).await;
    // Whatever was published is in the clients' buffers within moments.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = rig.app.app.dialer.clone();
    let mut got = Vec::new();
    while let Ok(e) = mine.try_recv() {
        got.push(e);
    }
    let mut everything = Vec::new();
    while let Ok(e) = all.try_recv() {
        everything.push(e);
    }
    drop(app);

    // Only this campaign's events, in the order they were published.
    assert!(got.iter().all(|e| e.data["campana"] == "EVENTOS"), "filter");
    assert!(got.windows(2).all(|w| w[0].id < w[1].id), "ids rise");
    assert!(
        everything.iter().any(|e| e.data["campana"] == "OTRA"),
        "the unfiltered client sees the other campaign"
    );
    let types: HashSet<&str> = got.iter().map(|e| e.tipo.as_str()).collect();
    for t in [
        "campana",
        "originada",
        "contestada",
        "veredicto",
        "terminada",
    ] {
        assert!(types.contains(t), "no {t} event: {types:?}");
    }
    assert!(
        got.iter()
            .any(|e| e.tipo == "campana" && e.data["estado"] == "FINALIZADA"),
        "the campaign's end is an event"
    );

    // Every CDR's finish exactly once, with its result and the number's state.
    let cdrs = rig
        .app
        .db
        .sql("SELECT uuid, resultado FROM llamadas WHERE campana = 'EVENTOS' ORDER BY uuid");
    let cdrs: HashMap<String, String> = cdrs
        .lines()
        .map(|l| {
            let (u, r) = l.split_once('\t').unwrap();
            (u.to_owned(), r.to_owned())
        })
        .collect();
    let finished: Vec<&Sse> = got.iter().filter(|e| e.tipo == "terminada").collect();
    let mut seen = HashSet::new();
    for e in &finished {
        let uuid = e.data["uuid"].as_str().unwrap().to_owned();
        assert!(seen.insert(uuid.clone()), "{uuid} finished twice");
        assert_eq!(
            cdrs.get(&uuid).map(String::as_str),
            e.data["resultado"].as_str(),
            "{uuid}: the event's result is the CDR's"
        );
    }
    assert_eq!(seen.len(), cdrs.len(), "one finish per CDR, none missing");
    // More attempts than numbers: the retries were announced as calls of their own.
    assert!(cdrs.len() > 300, "{}", cdrs.len());
    let originated = got.iter().filter(|e| e.tipo == "originada").count();
    let returned = got.iter().filter(|e| e.tipo == "devuelta").count();
    assert_eq!(
        originated,
        cdrs.len() + returned,
        "every originate ends once"
    );
    // Phone numbers are masked on the stream.
    for e in got.iter().filter(|e| e.tipo == "originada") {
        let tel = e.data["telefono"].as_str().unwrap();
        assert!(tel.starts_with("*******"), "{tel}");
    }
    let humanos = finished
        .iter()
        .filter(|e| e.data["resultado"] == "HUMANO")
        .count() as u64;
    assert_eq!(humanos, count(&fin, "humanos"), "{fin}");
    rig.app.shutdown().await;
    rig.sim.shutdown().await;
}

on_both_backends!(
    a_client_that_stops_reading_is_dropped_and_the_others_get_everything,
    worker_threads = 2
);
async fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything(backend: Backend) {
    let rig = rig(backend).await;
    let bus = rig.app.app.dialer.eventos().clone();
    let mut reader = follow(&rig, "/discador/eventos").await;
    // A client that sends its request and never reads a byte.
    let mut silent = tokio::net::TcpStream::connect(rig.app.app.api_addr)
        .await
        .unwrap();
    silent
        .write_all(b"GET /discador/eventos HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    subscribers(&rig, 2).await;

    // Publish in rounds the reading client keeps up with, each event large enough that the silent
    // client's socket buffers fill quickly.
    let padding = "x".repeat(2000);
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut last_id = 0;
    let t0 = Instant::now();
    while bus.subscribers() > 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(60) && sent < 500_000,
            "the silent client was never dropped ({sent} events sent)"
        );
        for _ in 0..500 {
            bus.publish(Evento::Devuelta {
                campana: "RUIDO".into(),
                uuid: padding.clone(),
            });
            sent += 1;
        }
        while received < sent {
            let e = tokio::time::timeout(Duration::from_secs(10), reader.recv())
                .await
                .expect("the reading client keeps receiving")
                .expect("the reading client is not dropped");
            assert!(e.id > last_id, "in order, none twice");
            last_id = e.id;
            received += 1;
        }
    }
    // Dropped within a bounded buffer: its queue, plus what the sockets hold (a few MB on
    // loopback), not everything sent.
    eprintln!("the silent client was dropped after {sent} events");
    assert_eq!(bus.subscribers(), 1, "only the reading client is left");
    // The reading client still gets everything after that.
    for _ in 0..100 {
        bus.publish(Evento::Devuelta {
            campana: "RUIDO".into(),
            uuid: "fin".into(),
        });
    }
    for _ in 0..100 {
        let e = tokio::time::timeout(Duration::from_secs(10), reader.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.data["uuid"], "fin");
    }
    drop(silent);
    rig.app.shutdown().await;
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn the_stream_refuses_bad_filters_and_the_page_is_served_with_its_policy() {
    let rig = rig(Backend::Sqlite).await;
    for q in [
        "campana=x%27%3B%20DROP%20TABLE%20bases",
        "campana=",
        "campa%C3%B1a=PRUEBA",
        "campana=A&otro=1",
    ] {
        let (s, b) = rig.app.get(&format!("/discador/eventos?{q}")).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_eq!(b["error"], "invalido", "{q}: {b}");
    }
    let http = reqwest::Client::new();
    for (path, ct) in [
        ("/panel", "text/html; charset=utf-8"),
        ("/panel/panel.js", "text/javascript; charset=utf-8"),
        ("/panel/panel.css", "text/css; charset=utf-8"),
    ] {
        let r = http.get(rig.app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ct, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(rig.app.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/panel");
    rig.app.shutdown().await;
    rig.sim.shutdown().await;
}

/// chromedriver on a free port, and a headless Chromium session through it. Chromium and
/// chromedriver are Debian's packages (`.ci/run` installs them).
struct Browser {
    client: fantoccini::Client,
    driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver package; .ci/run installs it)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1300", "--lang=es"
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        let client = loop {
            let mut builder = fantoccini::ClientBuilder::new(
                hyper_util::client::legacy::connect::HttpConnector::new(),
            );
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if t0.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session with headless Chromium: {e}"),
            }
        };
        Browser { client, driver }
    }

    async fn css(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// The campaign's row as the page shows it: `data-campo` → text.
    async fn row(&self, nombre: &str) -> HashMap<String, String> {
        let v = self
            .client
            .execute(
                "const tr = document.querySelector('tr[data-campana=\"' + arguments[0] + '\"]');
                 const out = {};
                 if (tr) for (const td of tr.querySelectorAll('td[data-campo]')) out[td.dataset.campo] = td.textContent;
                 return out;",
                vec![json!(nombre)],
            )
            .await
            .unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Clicks a campaign's action button. The row is redrawn when the campaign changes state, so
    /// a button found just before may be gone: then it is looked up again.
    async fn click_action(&self, nombre: &str, accion: &str) {
        let css = format!("tr[data-campana=\"{nombre}\"] button[data-accion=\"{accion}\"]");
        for attempt in 1.. {
            match self.css(&css).await.click().await {
                Ok(()) => return,
                Err(e) if attempt < 5 => eprintln!("{css}: {e}; again"),
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    async fn alert(&self) -> Option<String> {
        let v = self
            .client
            .execute(
                "const a = document.getElementById('alerta'); return a.hidden ? null : a.textContent;",
                vec![],
            )
            .await
            .unwrap();
        v.as_str().map(str::to_owned)
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

/// Polls `what` until it returns `Some`, or panics with `why` after `limit`.
async fn until<T, F, Fut>(limit: Duration, why: &str, mut what: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = what().await {
            return v;
        }
        assert!(t0.elapsed() < limit, "{why} (after {limit:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn num(row: &HashMap<String, String>, k: &str) -> Option<u64> {
    row.get(k)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_runs_a_campaign_from_the_page_in_a_real_browser() {
    let rig = rig(Backend::Mysql).await;
    let b = Browser::start().await;
    b.client.goto(&rig.app.url("/panel")).await.unwrap();
    until(Duration::from_secs(10), "the stream connects", || async {
        let s = b.css("#eventos-estado").await.text().await.unwrap();
        (s == "eventos: conectado").then_some(())
    })
    .await;

    // Create the campaign from the form.
    for (id, value) in [
        ("#nueva-nombre", "PANEL"),
        ("#nueva-hora-inicio", "00:00"),
        ("#nueva-hora-fin", "00:00"),
        ("#nueva-zona", "UTC"),
    ] {
        b.css(id).await.send_keys(value).await.unwrap();
    }
    let cps = b.css("#nueva-cps").await;
    cps.clear().await.unwrap();
    cps.send_keys("15").await.unwrap();
    b.css("#nueva-amd")
        .await
        .select_by_value("mod_amd")
        .await
        .unwrap();
    b.css("#nueva-crear").await.click().await.unwrap();
    b.css("tr[data-campana=\"PANEL\"]").await;
    let (_, c) = rig.app.get("/campana/PANEL").await;
    assert_eq!(c["cps"], 15.0, "{c}");
    assert_eq!(c["amd"], "mod_amd", "{c}");

    // The API's own error message is shown: the same name again.
    b.css("#nueva-crear").await.click().await.unwrap();
    let msg = until(Duration::from_secs(5), "the error is shown", || b.alert()).await;
    assert!(msg.contains("PANEL"), "{msg}");

    // Upload a CSV file of mixed outcomes (plus one bad line, reported).
    let nums = numbers("54933", 90, &[6, 7, 3, 0, 9, 8]);
    let dir = std::env::temp_dir().join(format!("panel-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("numeros.csv");
    let mut body = String::from("telefono,cliente\n");
    for (i, n) in nums.iter().enumerate() {
        body.push_str(&format!("{n},cliente {i}\n"));
    }
    body.push_str("12ab,mal escrito\n");
    std::fs::write(&csv, body).unwrap();
    b.css("#carga-campana")
        .await
        .select_by_value("PANEL")
        .await
        .unwrap();
    b.css("#carga-archivo")
        .await
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    b.css("#carga-enviar").await.click().await.unwrap();
    let loaded = until(
        Duration::from_secs(10),
        "the upload is reported",
        || async {
            let t = b.css("#carga-resultado").await.text().await.unwrap();
            (!t.is_empty()).then_some(t)
        },
    )
    .await;
    assert!(
        loaded.starts_with("90 insertados, 0 duplicados, 1 inválidos"),
        "{loaded}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Change the rate from the page, then start.
    let input = b
        .css("tr[data-campana=\"PANEL\"] input[data-campo=\"nuevo_cps\"]")
        .await;
    input.clear().await.unwrap();
    input.send_keys("20").await.unwrap();
    b.click_action("PANEL", "cambiar_cps").await;
    until(Duration::from_secs(5), "the new rate is saved", || async {
        let (_, c) = rig.app.get("/campana/PANEL").await;
        (c["cps"] == 20.0).then_some(())
    })
    .await;
    b.click_action("PANEL", "iniciar").await;

    // The counters move while it dials; pause and resume from the page on the way.
    let mut seen = HashSet::new();
    let mut paused = false;
    let t0 = Instant::now();
    loop {
        let row = b.row("PANEL").await;
        let done = num(&row, "completados").unwrap_or(0) + num(&row, "errores").unwrap_or(0);
        seen.insert(done);
        if !paused && done >= 20 {
            b.click_action("PANEL", "pausar").await;
            until(Duration::from_secs(5), "the page shows PAUSADA", || async {
                (b.row("PANEL").await.get("estado").map(String::as_str) == Some("PAUSADA"))
                    .then_some(())
            })
            .await;
            let (_, e) = rig.app.get("/discador/estado/PANEL").await;
            assert_eq!(e["estado"], "PAUSADA", "{e}");
            b.click_action("PANEL", "reanudar").await;
            paused = true;
        }
        if row.get("estado").map(String::as_str) == Some("FINALIZADA") && paused {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the campaign did not finish on the page: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.iter().filter(|d| **d > 0 && **d < 90).count() >= 3,
        "the counters moved while it dialed: {seen:?}"
    );

    // The page's final counts are the API's.
    let api = rig.finished("PANEL", Duration::from_secs(30)).await;
    let row = until(Duration::from_secs(10), "the page settles", || async {
        let row = b.row("PANEL").await;
        [
            "pendientes",
            "completados",
            "errores",
            "humanos",
            "maquinas",
            "en_curso",
        ]
        .iter()
        .all(|k| num(&row, k) == Some(count(&api, k)))
        .then_some(row)
    })
    .await;
    assert_eq!(
        num(&row, "completados").unwrap() + num(&row, "errores").unwrap(),
        90
    );
    assert!(num(&row, "maquinas").unwrap() > 0, "{row:?}");

    // The charts of the finished campaign, then the picture for the README.
    b.css("tr[data-campana=\"PANEL\"] td[data-campo=\"nombre\"]")
        .await
        .click()
        .await
        .unwrap();
    until(Duration::from_secs(10), "both charts load", || async {
        let v = b
            .client
            .execute(
                "return ['grafico-llamadas','grafico-resultados'].every(id => {
                     const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; });",
                vec![],
            )
            .await
            .unwrap();
        (v == json!(true)).then_some(())
    })
    .await;
    assert_eq!(b.alert().await, None, "no error is left on the page");
    let png = b.client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    // Under target/ (a test run leaves the source tree as it was); docs/panel.png, linked from
    // the README, is a copy of one.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("panel.png"), png).unwrap();

    b.stop().await;
    rig.app.shutdown().await;
    rig.sim.shutdown().await;
}
