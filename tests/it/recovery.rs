//! `kill -9` in the middle of a campaign, then a restart: no number is lost, none is dialed twice
//! at once, and the counts add up. The service runs as a real child process (the binary), the
//! simulator in this test process, so calls live on across the crash as they would in FreeSWITCH.
//! On both store backends: a SQLite file must come back as whole as a MariaDB database.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::{free_port, on_both_backends, Backend, TestDb};
use discador::sim::{SimConfig, Simulator, Timings};
use serde_json::{json, Value};

type Server = ChildServer;

async fn start_server(db: &TestDb, esl_port: u16, socket_port: u16) -> Server {
    start_server_logging(db, esl_port, socket_port, Stdio::null()).await
}

/// The server with its JSON log lines (info and up) on `stdout`.
async fn start_server_logging(
    db: &TestDb,
    esl_port: u16,
    socket_port: u16,
    stdout: Stdio,
) -> Server {
    let env = [
        ("FREESWITCH_PORT", esl_port.to_string()),
        ("SOCKET_LISTEN", format!("127.0.0.1:{socket_port}")),
        ("DATABASE_URL", db.url()),
        ("CPS_MAXIMO", "1000".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ];
    ChildServer::start("the server", &env, stdout, true).await
}

/// The simulator for these tests: limits that never refuse, every duration 100 times shorter,
/// calls of `talk_ms` (unscaled) and rings of `ring_ms`.
async fn simulator(socket_port: u16, talk_ms: u64, ring_ms: u64) -> discador::sim::SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        socket_addr: format!("127.0.0.1:{socket_port}").parse().unwrap(),
        sps: 5000,
        max_sessions: 20_000,
        time_scale: 0.01,
        timings: Timings {
            talk_ms,
            ring_ms,
            ..Timings::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

on_both_backends!(
    kill_9_mid_campaign_then_restart_loses_nothing,
    worker_threads = 2
);
async fn kill_9_mid_campaign_then_restart_loses_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let socket_port = free_port();
    // Calls of about a second (talk 100 s × 0.01), so some are up when the server dies.
    let sim = simulator(socket_port, 100_000, Timings::default().ring_ms).await;
    let http = reqwest::Client::new();

    let mut server = start_server(&db, sim.addr.port(), socket_port).await;
    let numbers: Vec<String> = (0..200).map(|i| format!("54988{i:06}6")).collect();
    server
        .start_campaign(
            "CAIDA",
            json!({"cps": 50, "reintentos": 2, "intervalo_reintento": 0, "max_canales": 100}),
            &numbers,
        )
        .await;

    while sim.originates().len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.child.wait().unwrap();
    let in_flight: u64 = db
        .sql("SELECT COUNT(*) FROM CAIDA WHERE estado IN ('MARCANDO', 'CONTESTADO')")
        .parse()
        .unwrap();
    assert!(in_flight > 0, "the crash should leave calls in flight");
    assert!(sim.live_calls() > 0, "calls live on in FreeSWITCH");
    drop(server);

    let server = start_server(&db, sim.addr.port(), socket_port).await;
    let t0 = Instant::now();
    let last = loop {
        let b: Value = http
            .get(format!("{}/discador/estado/CAIDA", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let e = &b["estadisticas"];
        let n = |k: &str| e[k].as_u64().unwrap();
        assert_eq!(
            n("total"),
            n("completados") + n("pendientes") + n("errores") + n("en_curso"),
            "{b}"
        );
        if b["estado"] == "FINALIZADA" && n("pendientes") + n("en_curso") == 0 {
            break b;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not finished after restart: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every number reached: all of them answer as people (calls whose end was missed during the
    // crash complete by the NOTSURE rule, default HUMANO).
    assert_eq!(last["estadisticas"]["total"], 200, "{last}");
    assert_eq!(last["estadisticas"]["completados"], 200, "{last}");
    assert_eq!(last["estadisticas"]["humanos"], 200, "{last}");

    // Never two calls to one number at once, as the simulator saw them.
    let ended: HashMap<String, Instant> = sim
        .finished()
        .into_iter()
        .map(|f| (f.uuid, f.ended))
        .collect();
    let mut spans: HashMap<String, Vec<(Instant, Instant)>> = HashMap::new();
    for o in sim.originates() {
        let end = ended.get(&o.uuid).copied().unwrap_or(o.at);
        spans.entry(o.destination).or_default().push((o.at, end));
    }
    assert_eq!(spans.len(), 200, "every number dialed");
    for (number, mut s) in spans {
        s.sort();
        for w in s.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{number} dialed again while its previous call was up"
            );
        }
    }
    // One CDR row per attempt the numbers record.
    let attempts: u64 = db.sql("SELECT SUM(intentos) FROM CAIDA").parse().unwrap();
    let cdrs: u64 = db.sql("SELECT COUNT(*) FROM llamadas").parse().unwrap();
    assert_eq!(attempts, cdrs);
    drop(server);
    sim.shutdown().await;
}

on_both_backends!(
    sigterm_mid_campaign_writes_every_known_result,
    worker_threads = 2
);
/// Issue 14: SIGTERM while calls end by the hundred a second. Shutdown stops dialing, lets the
/// controller's sessions finish, and writes every result the tracker had decided before the
/// process exits: each call the log says ended ("llamada terminada") has its CDR row and its
/// attempt on its number. (Before, the writer said "nothing pending" while it held a batch during
/// its batching wait, and the process exited without it.)
async fn sigterm_mid_campaign_writes_every_known_result(backend: Backend) {
    use std::io::BufRead;
    let db = TestDb::new(backend);
    let socket_port = free_port();
    // Short calls (talk 10 s × 0.01, busy lines 8 ms), many ending every millisecond.
    let sim = simulator(socket_port, 10_000, 500).await;
    let mut server = start_server_logging(&db, sim.addr.port(), socket_port, Stdio::piped()).await;
    let out = server.child.stdout.take().expect("piped stdout");
    let ended = std::thread::spawn(move || {
        std::io::BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|v| v["message"] == "llamada terminada")
            .filter_map(|v| v["uuid"].as_str().map(str::to_owned))
            .collect::<Vec<String>>()
    });
    let numbers: Vec<String> = (0..3000)
        .map(|i| format!("54977{i:06}{}", [6, 0][i % 2]))
        .collect();
    server
        .start_campaign(
            "TERM",
            json!({"cps": 800, "reintentos": 0, "max_canales": 2000}),
            &numbers,
        )
        .await;
    while sim.finished().len() < 600 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
    let ended = ended.join().unwrap();
    assert!(ended.len() >= 500, "only {} calls ended", ended.len());
    let written: std::collections::HashSet<String> = db
        .sql("SELECT uuid FROM llamadas")
        .lines()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&String> = ended.iter().filter(|u| !written.contains(*u)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} ended calls have no CDR: {:?}",
        missing.len(),
        ended.len(),
        &missing[..missing.len().min(5)]
    );
    let attempts: u64 = db.sql("SELECT SUM(intentos) FROM TERM").parse().unwrap();
    let cdrs: u64 = db.sql("SELECT COUNT(*) FROM llamadas").parse().unwrap();
    assert_eq!(
        attempts, cdrs,
        "every written attempt is counted on its number"
    );
    drop(server);
    sim.shutdown().await;
}
