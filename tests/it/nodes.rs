//! A pool of FreeSWITCH nodes (`FREESWITCH_NODOS`) in one discador process, on two simulators:
//! a campaign spreads over both (every CDR names the node that carried it), and a node drained
//! through the API gets no new originates while its live calls finish.

use crate::common;

use std::time::{Duration, Instant};

use common::{free_port, on_both_backends, Backend, TestApp};
use discador::sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

use crate::dialer::{count, numbers};

struct Pool2 {
    sims: [SimHandle; 2],
    app: TestApp,
}

/// Two simulators (`fs1`, `fs2`) and the app dialing through both.
async fn pool2(backend: Backend) -> Pool2 {
    let mut db = common::TestDb::new(backend);
    for _ in 0..5 {
        let socket = format!("127.0.0.1:{}", free_port());
        let mut sims = Vec::new();
        for _ in 0..2 {
            sims.push(
                Simulator::start(SimConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    socket_addr: socket.parse().unwrap(),
                    sps: 2000,
                    max_sessions: 20_000,
                    time_scale: 0.01,
                    ..SimConfig::default()
                })
                .await
                .expect("simulator starts"),
            );
        }
        let nodos = format!(
            "fs1=127.0.0.1:{},fs2=127.0.0.1:{}",
            sims[0].addr.port(),
            sims[1].addr.port()
        );
        let args = [
            "--freeswitch-nodos",
            nodos.as_str(),
            "--socket-listen",
            socket.as_str(),
            "--cps-maximo",
            "1000",
            "--canales-maximos",
            "5000",
            "--amd-timeout-ms",
            "2000",
        ];
        match TestApp::try_spawn_clocked(db, &args, discador::clock::Clock::system()).await {
            Ok(app) => {
                let sims: [SimHandle; 2] = sims.try_into().ok().unwrap();
                let p = Pool2 { sims, app };
                p.wait_connected().await;
                return p;
            }
            Err((back, e)) => {
                eprintln!("pool2: the app did not start ({e:#}); again on another port");
                db = back;
                for s in sims {
                    s.shutdown().await;
                }
            }
        }
    }
    panic!("the pool rig did not start in 5 attempts");
}

impl Pool2 {
    async fn nodos(&self) -> Vec<Value> {
        let (s, b) = self.app.get("/discador/nodos").await;
        assert_eq!(s, 200, "{b}");
        b.as_array().expect("a list").clone()
    }

    async fn wait_connected(&self) {
        let t0 = Instant::now();
        loop {
            let nodos = self.nodos().await;
            if nodos
                .iter()
                .all(|n| n["estado"] == "conectado" && n["modulos"]["mod_amd"].is_boolean())
            {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{nodos:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn command(&self, op: &str, nombre: &str) {
        let (s, b) = crate::real_switch::command(&self.app, op, nombre).await;
        assert_eq!(s, 200, "{op}: {b}");
    }

    async fn finished(&self, nombre: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, b) = self.app.get(&format!("/discador/estado/{nombre}")).await;
            assert_eq!(s, 200, "{b}");
            let open = count(&b, "pendientes") + count(&b, "en_curso");
            if b["estado"] == "FINALIZADA" && open == 0 {
                return b;
            }
            assert!(t0.elapsed() < limit, "{nombre} did not finish: {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn originates(&self, i: usize, prefix: &str) -> usize {
        self.sims[i]
            .originates()
            .iter()
            .filter(|o| o.destination.contains(prefix))
            .count()
    }

    /// CDRs per node name.
    fn cdrs_by_node(&self) -> Vec<(String, usize)> {
        let out = self
            .app
            .db
            .sql("SELECT nodo, COUNT(*) FROM llamadas GROUP BY nodo ORDER BY nodo");
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut cols = l.split('\t');
                let nodo = cols.next().unwrap().to_owned();
                let n = cols.next().unwrap_or("0").trim().parse().unwrap();
                (nodo, n)
            })
            .collect()
    }

    async fn stop(self) {
        self.app.shutdown().await;
        for s in self.sims {
            s.shutdown().await;
        }
    }
}

on_both_backends!(a_campaign_spreads_over_two_nodes, worker_threads = 2);
async fn a_campaign_spreads_over_two_nodes(backend: Backend) {
    let p = pool2(backend).await;
    // People only (no retries): one attempt per number.
    let nums = numbers("5491160", 120, &[6, 7, 8]);
    p.app
        .campaign("REPARTO", &[&json!({"max_canales": 500, "cps": 60})], &nums)
        .await;
    p.command("iniciar", "REPARTO").await;
    let b = p.finished("REPARTO", Duration::from_secs(60)).await;
    assert_eq!(count(&b, "completados"), 120, "{b}");
    let (a, c) = (p.originates(0, "5491160"), p.originates(1, "5491160"));
    assert_eq!(a + c, 120, "every number dialed once: fs1 {a}, fs2 {c}");
    assert!(a > 0 && c > 0, "both nodes carried calls: fs1 {a}, fs2 {c}");
    assert_eq!(
        p.cdrs_by_node(),
        vec![("fs1".to_owned(), a), ("fs2".to_owned(), c)],
        "each CDR names the node that carried it"
    );
    let intentos: usize = p
        .app
        .db
        .sql("SELECT SUM(intentos) FROM REPARTO")
        .parse()
        .unwrap();
    assert_eq!(intentos, 120);
    // /health lists both nodes; estado has the per-node live calls (none now).
    let (_, h) = p.app.get("/health").await;
    assert_eq!(h["freeswitch"], "conectado", "{h}");
    assert_eq!(h["nodos"].as_array().map(Vec::len), Some(2), "{h}");
    assert_eq!(b["llamadas_por_nodo"], json!({}), "{b}");
    let m = p
        .app
        .http
        .get(p.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fs1 = format!("discador_nodo_originadas_total{{nodo=\"fs1\"}} {a}");
    assert!(m.contains(&fs1), "{m}");
    assert!(m.contains("discador_nodo_conectado{nodo=\"fs2\"} 1"), "{m}");
    p.stop().await;
}

on_both_backends!(a_drained_node_gets_no_new_calls, worker_threads = 2);
async fn a_drained_node_gets_no_new_calls(backend: Backend) {
    let p = pool2(backend).await;
    let (s, b) = p
        .app
        .post_json("/discador/nodos/fs9/drenar", json!({}))
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = p
        .app
        .post_json("/discador/nodos/x%20y/drenar", json!({}))
        .await;
    assert_eq!(s, 404, "{b}");
    // Long enough a campaign to drain mid-way: 300 numbers at 60 CPS.
    let nums = numbers("5491161", 300, &[6, 7, 8]);
    p.app
        .campaign("DRENAJE", &[&json!({"max_canales": 500, "cps": 60})], &nums)
        .await;
    p.command("iniciar", "DRENAJE").await;
    while p.originates(1, "5491161") < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (s, b) = p
        .app
        .post_json("/discador/nodos/fs2/drenar", json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["drenado"], true, "{b}");
    // An originate already past the choice of its node may still reach fs2 right after the call.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_fs2 = p.originates(1, "5491161");
    let b = p.finished("DRENAJE", Duration::from_secs(60)).await;
    assert_eq!(count(&b, "completados"), 300, "{b}");
    assert_eq!(
        p.originates(1, "5491161"),
        on_fs2,
        "no originate reached the drained node"
    );
    assert_eq!(p.originates(0, "5491161") + on_fs2, 300);
    // Its live calls finished (and were recorded under its name).
    let nodos = p.nodos().await;
    let fs2 = nodos.iter().find(|n| n["nombre"] == "fs2").unwrap();
    assert_eq!(fs2["drenado"], true, "{fs2}");
    assert_eq!(fs2["llamadas_activas"], 0, "{fs2}");
    let by_node = p.cdrs_by_node();
    assert_eq!(by_node[1], ("fs2".to_owned(), on_fs2), "{by_node:?}");
    // The flag is in the database (every process reads it).
    assert_eq!(
        p.app.db.sql("SELECT COUNT(*) FROM nodos WHERE drenado"),
        "1"
    );
    let (s, b) = p
        .app
        .post_json("/discador/nodos/fs2/activar", json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["drenado"], false, "{b}");
    p.stop().await;
}

/// Two real switches behind one app (`FREESWITCH_NODOS`): a campaign goes through both; `kill -9`
/// of one mid-campaign gets its calls reconciled (declared cut once it is lost) while the other
/// carries on; started again, it gets calls again. Every number's CDR count equals its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_real_switches_survive_the_loss_of_one() {
    use common::freeswitch::{SwitchOptions, TestSwitch};
    let fs1 = TestSwitch::start();
    let fs2 = TestSwitch::start_with(SwitchOptions {
        socket: Some(fs1.ports.socket),
        ..SwitchOptions::default()
    });
    let nodos = format!(
        "fs1=127.0.0.1:{};canales=20,fs2=127.0.0.1:{};canales=20",
        fs1.ports.esl, fs2.ports.esl
    );
    let socket = format!("127.0.0.1:{}", fs1.ports.socket);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--freeswitch-nodos",
            &nodos,
            "--socket-listen",
            &socket,
            "--nodo-perdido-s",
            "3",
            "--cps-maximo",
            "20",
        ],
    )
    .await;
    let p = RealPool { app: &app };
    p.wait_nodes("conectado", "conectado").await;
    // 4: answers and hangs up 1.5 s later; 5: busy; 8: unallocated. One attempt each (no retry
    // unless a call is cut), 4 per second: about 20 s of dialing.
    let nums = numbers("5491162", 80, &[4, 5, 8]);
    app.campaign(
        "DOSFS",
        &[&json!({"max_canales": 40, "cps": 4, "reintentos": 1, "intervalo_reintento": 1})],
        &nums,
    )
    .await;
    let (s, b) = app
        .post_json("/discador/iniciar/", json!({"nombre_campana": "DOSFS"}))
        .await;
    assert_eq!(s, 200, "{b}");
    p.wait_cdrs("fs2", 3).await;
    fs2.kill9();
    // Lost after NODO_PERDIDO_S: its calls are declared cut; the campaign goes on through fs1.
    p.wait_nodes("conectado", "perdido").await;
    let fs1_before = p.cdrs("fs1");
    p.wait_cdrs("fs1", fs1_before + 3).await;
    fs2.restart();
    p.wait_nodes("conectado", "conectado").await;
    let fs2_at_restart = p.cdrs("fs2");
    p.wait_cdrs("fs2", fs2_at_restart + 1).await;
    let t0 = Instant::now();
    loop {
        let (_, b) = app.get("/discador/estado/DOSFS").await;
        if b["estado"] == "FINALIZADA" && count(&b, "pendientes") + count(&b, "en_curso") == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{b}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Nothing left in flight, and every attempt has its CDR.
    assert_eq!(
        app.db
            .sql("SELECT COUNT(*) FROM DOSFS WHERE estado IN ('MARCANDO', 'CONTESTADO')"),
        "0"
    );
    let mismatched = app.db.sql(
        "SELECT n.id FROM DOSFS n WHERE n.intentos <> \
         (SELECT COUNT(*) FROM llamadas l WHERE l.campana = 'DOSFS' AND l.numero_id = n.id)",
    );
    assert_eq!(
        mismatched, "",
        "numbers whose CDRs do not match their attempts"
    );
    assert_eq!(
        app.db.sql("SELECT COUNT(*) FROM DOSFS WHERE intentos = 0"),
        "0"
    );
    fs1.wait_no_channels(Duration::from_secs(20)).await;
    fs2.wait_no_channels(Duration::from_secs(20)).await;
    app.shutdown().await;
}

struct RealPool<'a> {
    app: &'a TestApp,
}

impl RealPool<'_> {
    async fn wait_nodes(&self, fs1: &str, fs2: &str) {
        let t0 = Instant::now();
        loop {
            let (_, b) = self.app.get("/discador/nodos").await;
            let estado = |i: usize| b[i]["estado"].as_str().unwrap_or("").to_owned();
            let known = b[0]["modulos"]["mod_amd"].is_boolean() || fs1 != "conectado";
            if estado(0) == fs1 && estado(1) == fs2 && known {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "{b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn cdrs(&self, nodo: &str) -> usize {
        self.app
            .db
            .sql(&format!(
                "SELECT COUNT(*) FROM llamadas WHERE nodo = '{nodo}'"
            ))
            .parse()
            .unwrap()
    }

    async fn wait_cdrs(&self, nodo: &str, n: usize) {
        let t0 = Instant::now();
        while self.cdrs(nodo) < n {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{nodo}: fewer than {n} CDRs"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
