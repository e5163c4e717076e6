//! Several discador processes on one database (issue 12): the leases in the store on both
//! backends, then two processes on one MariaDB and one simulator — a campaign is run by its lease
//! owner only whatever API is used, a `kill -9` hands the campaign to the survivor with nothing lost,
//! a process cut off from the database stops dialing before its peer starts, `CPS_MAXIMO` holds for
//! both together — and a second process on one SQLite file is refused.

use crate::common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::{config, free_port, on_both_backends, Backend, TcpProxy, TestApp, TestDb};
use discador::app::{self, RunningApp};
use discador::domain::CampaignName;
use discador::sim::{SimConfig, SimHandle, Simulator, Timings};
use discador::store::Beat;
use serde_json::{json, Value};

fn beat<'a>(id: &'a str) -> Beat<'a> {
    Beat {
        id,
        host: "test",
        pid: 1,
        api: "127.0.0.1:1",
        socket: "127.0.0.1:2",
        demanda: "{}",
    }
}

on_both_backends!(leases_are_taken_once_and_expire, worker_threads = 4);
/// The lease statements through the store: one winner among concurrent takers, a live owner keeps
/// it, a dead one (heartbeat older than the expiry, by the database's clock) loses it, a clean
/// exit gives it back.
async fn leases_are_taken_once_and_expire(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("ARRIENDO").await;
    let store = t.app.store.clone();
    let name = CampaignName::parse("ARRIENDO").unwrap();
    let long = Duration::from_secs(60);
    for id in ["p1", "p2", "p3", "p4", "p5", "p6"] {
        store.heartbeat(&beat(id)).await.unwrap();
    }
    let free = store.lease(&name, long).await.unwrap().unwrap();
    assert_eq!((free.proceso, free.vivo), (None, false));

    // Six processes at once: exactly one wins.
    let wins = futures::future::join_all(["p1", "p2", "p3", "p4", "p5", "p6"].map(|id| {
        let store = store.clone();
        async move { (id, store.take_lease("ARRIENDO", id, long).await.unwrap()) }
    }))
    .await;
    let winners: Vec<&str> = wins.iter().filter(|w| w.1).map(|w| w.0).collect();
    assert_eq!(winners.len(), 1, "{wins:?}");
    let owner = winners[0];
    let other = if owner == "p1" { "p2" } else { "p1" };
    let lease = store.lease(&name, long).await.unwrap().unwrap();
    assert_eq!((lease.proceso.as_deref(), lease.vivo), (Some(owner), true));
    // Sticky while alive; the owner takes it again.
    assert!(!store.take_lease("ARRIENDO", other, long).await.unwrap());
    assert!(store.take_lease("ARRIENDO", owner, long).await.unwrap());
    let peers = store.live_peers(other, long).await.unwrap();
    assert!(peers.iter().any(|p| p.id == owner), "{peers:?}");
    assert!(peers.iter().all(|p| p.id != other));
    assert_eq!(
        peers
            .iter()
            .find(|p| p.id == owner)
            .unwrap()
            .demanda
            .as_deref(),
        Some("{}")
    );

    // Dead by the database's clock: its heartbeat is older than a tiny expiry.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tiny = Duration::from_millis(10);
    store.heartbeat(&beat(other)).await.unwrap();
    assert!(!store.lease(&name, tiny).await.unwrap().unwrap().vivo);
    assert!(store.take_lease("ARRIENDO", other, tiny).await.unwrap());
    assert!(!store.take_lease("ARRIENDO", owner, long).await.unwrap());
    let leases = store.leases(long).await.unwrap();
    let l = leases.iter().find(|l| l.nombre == "ARRIENDO").unwrap();
    assert_eq!(l.proceso.as_deref(), Some(other));

    // A clean exit: the lease and the row go.
    store.leave(other).await.unwrap();
    let l = store.lease(&name, long).await.unwrap().unwrap();
    assert_eq!((l.proceso, l.vivo), (None, false));
    assert!(store
        .live_peers("nadie", long)
        .await
        .unwrap()
        .iter()
        .all(|p| p.id != other));
    t.shutdown().await;
}

/// A second service on the same SQLite file is refused at start-up, naming the lock file and
/// pointing to MariaDB; once the first one stops, the file is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_one_sqlite_file_is_refused() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let url = t.db.url();
    let second = app::spawn(config(&["--database-url", &url])).await;
    let err = match second {
        Ok(_) => panic!("a second process on the same SQLite file must be refused"),
        Err(e) => format!("{e:#}"),
    };
    let lock = format!("{}.lock", t.db.path().unwrap().display());
    assert!(err.contains(&lock), "{err}");
    assert!(err.contains("MariaDB"), "{err}");
    assert!(err.contains("un solo proceso"), "{err}");
    let db = t.shutdown().await;
    let again = TestApp::spawn_on(db, &[]).await;
    again.shutdown().await;
}

/// The simulator for these tests: never refuses, durations 100 times shorter; the calls' own
/// `discador_socket` says which process's controller they go back to.
async fn simulator(talk_ms: u64) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Nobody listens here: a call that does not name its process would fail.
        socket_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        sps: 5000,
        max_sessions: 20_000,
        time_scale: 0.01,
        timings: Timings {
            talk_ms,
            ..Timings::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// One in-process service among several on `db`.
struct Proc {
    app: RunningApp,
    http: reqwest::Client,
}

impl Proc {
    async fn start(db: &TestDb, sim: &SimHandle, id: &str, extra: &[&str]) -> Proc {
        Self::start_on(&db.url(), sim, id, extra).await
    }

    /// On the database at `url` (e.g. through a proxy the test can cut).
    async fn start_on(url: &str, sim: &SimHandle, id: &str, extra: &[&str]) -> Proc {
        let url = url.to_owned();
        let port = sim.addr.port().to_string();
        let mut args = vec![
            "--database-url",
            &url,
            "--freeswitch-port",
            &port,
            "--proceso-id",
            id,
            "--latido-ms",
            "200",
            "--proceso-caduca-ms",
            "1000",
        ];
        args.extend_from_slice(extra);
        let app = app::spawn(config(&args)).await.expect("the service starts");
        let p = Proc {
            app,
            http: reqwest::Client::new(),
        };
        let t0 = Instant::now();
        loop {
            let (_, h) = p.get("/health").await;
            if h["arranque"] == "listo" && h["freeswitch"] == "conectado" {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{id} not ready: {h}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p
    }

    fn socket(&self) -> String {
        self.app.socket_addr.to_string()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("http://{}{path}", self.app.api_addr))
            .send()
            .await
            .unwrap();
        TestApp::split(r).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("http://{}{path}", self.app.api_addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        TestApp::split(r).await
    }

    async fn command(&self, cmd: &str, nombre: &str) {
        let (s, b) = self
            .send(
                reqwest::Method::POST,
                &format!("/discador/{cmd}/"),
                json!({ "nombre_campana": nombre }),
            )
            .await;
        assert_eq!(s, 200, "{cmd} {nombre}: {b}");
    }

    async fn campaign(&self, nombre: &str, cps: u32, numbers: &[String]) {
        let body = json!({
            "nombre": nombre, "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC",
            "timeout_llamada": 15, "intervalo_reintento": 0, "cps": cps, "max_canales": 500,
        });
        let (s, b) = self.send(reqwest::Method::POST, "/campanas/", body).await;
        assert_eq!(s, 201, "{b}");
        let r = self
            .http
            .post(format!(
                "http://{}/campana/{nombre}/numeros",
                self.app.api_addr
            ))
            .header("content-type", "text/csv")
            .body(format!("telefono\n{}\n", numbers.join("\n")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    fn running(&self, nombre: &str) -> bool {
        self.app
            .dialer
            .is_running(&CampaignName::parse(nombre).unwrap())
    }
}

/// Waits until `cond` holds (at most `limit`), saying `what` otherwise.
async fn eventually(limit: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which process dialed each originate the simulator saw (its `discador_socket`), counted.
fn dialed_by(sim: &SimHandle, since: Instant) -> HashMap<String, usize> {
    let mut by: HashMap<String, usize> = HashMap::new();
    for o in sim.originates().into_iter().filter(|o| o.at >= since) {
        let socket = o
            .vars
            .iter()
            .find(|(k, _)| k == "discador_socket")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        *by.entry(socket).or_default() += 1;
    }
    by
}

/// (a) The API of either process serves the campaign; only the lease owner dials it, and estado
/// reads the same on both, naming the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_is_run_by_its_owner_whichever_api_is_used() {
    let db = TestDb::new(Backend::Mysql);
    let sim = simulator(2_000).await;
    let a = Proc::start(&db, &sim, "proc-a", &[]).await;
    let b = Proc::start(&db, &sim, "proc-b", &[]).await;
    let numbers: Vec<String> = (0..2000).map(|i| format!("54911{i:06}6")).collect();
    a.campaign("PAR", 20, &numbers).await;
    let t0 = Instant::now();
    a.command("iniciar", "PAR").await;
    assert!(a.running("PAR"));

    // Paused and resumed, stopped and started again, all through B: A applies each.
    b.command("pausar", "PAR").await;
    eventually(Duration::from_secs(5), "A pauses", async || {
        !a.running("PAR")
    })
    .await;
    b.command("reanudar", "PAR").await;
    eventually(Duration::from_secs(5), "A resumes", async || {
        a.running("PAR")
    })
    .await;
    b.command("detener", "PAR").await;
    eventually(Duration::from_secs(5), "A stops", async || {
        !a.app
            .dialer
            .has_runner(&CampaignName::parse("PAR").unwrap())
    })
    .await;
    b.command("iniciar", "PAR").await;
    eventually(Duration::from_secs(5), "A starts again", async || {
        a.running("PAR")
    })
    .await;
    // A PATCH through B reaches A's runner.
    let (s, body) = b
        .send(reqwest::Method::PATCH, "/campana/PAR", json!({"cps": 25}))
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(
        Duration::from_secs(5),
        "A dials at the new rate",
        async || {
            a.app
                .dialer
                .campaign("PAR")
                .is_some_and(|c| c.cps.get() == 25.0)
        },
    )
    .await;
    assert!(!b
        .app
        .dialer
        .has_runner(&CampaignName::parse("PAR").unwrap()));

    // estado on B: A runs it, with A's live figures.
    eventually(
        Duration::from_secs(5),
        "B shows A's live figures",
        async || {
            let (_, e) = b.get("/discador/estado/PAR").await;
            e["proceso"] == "proc-a" && e["estadisticas"]["en_marcha"] == true
        },
    )
    .await;
    let (_, e) = a.get("/discador/estado/PAR").await;
    assert_eq!(e["proceso"], "proc-a", "{e}");
    assert_eq!(e["estadisticas"]["en_marcha"], true, "{e}");

    // Every originate came from A.
    let by = dialed_by(&sim, t0);
    assert!(by.get(&a.socket()).copied().unwrap_or(0) > 0, "{by:?}");
    assert_eq!(by.len(), 1, "only A dials: {by:?}");

    b.command("detener", "PAR").await;
    a.app.shutdown().await.unwrap();
    // A's clean exit gives the lease back at once: B's estado no longer names it.
    let (_, e) = b.get("/discador/estado/PAR").await;
    assert_eq!(e["proceso"], Value::Null, "{e}");
    b.app.shutdown().await.unwrap();
    sim.shutdown().await;
}

/// (c) `CPS_MAXIMO` holds for both processes together: two campaigns that each want the whole cap,
/// on two processes, share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_total_cps_cap_holds_for_all_processes_together() {
    let db = TestDb::new(Backend::Mysql);
    let sim = simulator(1_000).await;
    let cap = ["--cps-maximo", "10"];
    let a = Proc::start(&db, &sim, "cap-a", &cap).await;
    let b = Proc::start(&db, &sim, "cap-b", &cap).await;
    let numbers = |p: &str| -> Vec<String> { (0..400).map(|i| format!("{p}{i:06}6")).collect() };
    a.campaign("UNO", 10, &numbers("54921")).await;
    b.campaign("DOS", 10, &numbers("54922")).await;
    a.command("iniciar", "UNO").await;
    b.command("iniciar", "DOS").await;
    // Both have published their demand and read the other's (a few heartbeats).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let by = dialed_by(&sim, from);
    let (na, nb) = (
        by.get(&a.socket()).copied().unwrap_or(0),
        by.get(&b.socket()).copied().unwrap_or(0),
    );
    let total = na + nb;
    // Alone, each would dial 10 a second (80 in all); together they hold the cap of 10/s (40 in
    // 4 s), each with a share.
    assert!(total <= 48, "cap exceeded: {na} + {nb} in 4 s");
    assert!(total >= 24, "too few: {na} + {nb} in 4 s");
    assert!(na >= 8 && nb >= 8, "each gets a share: {na} + {nb}");
    a.command("detener", "UNO").await;
    b.command("detener", "DOS").await;
    a.app.shutdown().await.unwrap();
    b.app.shutdown().await.unwrap();
    sim.shutdown().await;
}

/// Fencing: a process cut off from the database stops dialing before its lease can expire, the
/// peer takes the campaign over (the two never dial it at the same time), and once the database is
/// back the cut-off process does not dial the campaign again: its peer owns it now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_cut_off_from_the_database_stops_dialing_before_its_peer_starts() {
    let db = TestDb::new(Backend::Mysql);
    let sim = simulator(2_000).await;
    let mut proxy = TcpProxy::start_db().await;
    let a = Proc::start_on(&proxy.url(&db.name), &sim, "fence-a", &[]).await;
    let b = Proc::start(&db, &sim, "fence-b", &[]).await;
    let numbers: Vec<String> = (0..3000).map(|i| format!("54944{i:06}6")).collect();
    a.campaign("CERCO", 20, &numbers).await;
    a.command("iniciar", "CERCO").await;
    assert!(a.running("CERCO"));
    eventually(Duration::from_secs(5), "A dials", async || {
        dialed_by(&sim, Instant::now() - Duration::from_secs(60)).contains_key(&a.socket())
    })
    .await;

    proxy.cut().await;
    eventually(Duration::from_secs(5), "A fences itself", async || {
        a.app.procesos.fenced() && !a.running("CERCO")
    })
    .await;
    eventually(Duration::from_secs(10), "B takes CERCO over", async || {
        b.running("CERCO")
    })
    .await;
    eventually(Duration::from_secs(5), "B dials", async || {
        dialed_by(&sim, Instant::now() - Duration::from_secs(60)).contains_key(&b.socket())
    })
    .await;
    // A's last originate came before B's first one.
    let socket_of = |o: &discador::sim::OriginateRecord| {
        o.vars
            .iter()
            .find(|(k, _)| k == "discador_socket")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let all = sim.originates();
    let last_a = all
        .iter()
        .filter(|o| socket_of(o) == a.socket())
        .map(|o| o.at)
        .max();
    let first_b = all
        .iter()
        .filter(|o| socket_of(o) == b.socket())
        .map(|o| o.at)
        .min();
    assert!(
        last_a.unwrap() < first_b.unwrap(),
        "A and B dialed CERCO at once"
    );

    // The database is back: A writes its heartbeat again and leaves CERCO to B.
    proxy.restore().await;
    eventually(
        Duration::from_secs(10),
        "A's heartbeat is back",
        async || !a.app.procesos.fenced(),
    )
    .await;
    eventually(Duration::from_secs(5), "A drops its runner", async || {
        !a.app
            .dialer
            .has_runner(&CampaignName::parse("CERCO").unwrap())
    })
    .await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !dialed_by(&sim, back).contains_key(&a.socket()),
        "A dials again a campaign B owns"
    );
    let (_, e) = a.get("/discador/estado/CERCO").await;
    assert_eq!(e["proceso"], "fence-b", "{e}");

    a.command("detener", "CERCO").await;
    eventually(Duration::from_secs(5), "B stops", async || {
        !b.running("CERCO")
    })
    .await;
    a.app.shutdown().await.unwrap();
    b.app.shutdown().await.unwrap();
    sim.shutdown().await;
}

/// A service as a child process (so that `kill -9` is the real thing), with the address its
/// originates name for their answered legs.
struct Server {
    proc: ChildServer,
    socket: String,
}

impl std::ops::Deref for Server {
    type Target = ChildServer;
    fn deref(&self) -> &ChildServer {
        &self.proc
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ChildServer {
        &mut self.proc
    }
}

async fn server(db: &TestDb, sim: &SimHandle, id: &str) -> Server {
    let socket = format!("127.0.0.1:{}", free_port());
    let env = [
        ("FREESWITCH_PORT", sim.addr.port().to_string()),
        ("SOCKET_LISTEN", socket.clone()),
        ("DATABASE_URL", db.url()),
        ("CPS_MAXIMO", "1000".to_owned()),
        ("PROCESO_ID", id.to_owned()),
        ("LATIDO_MS", "200".to_owned()),
        ("PROCESO_CADUCA_MS", "1000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    Server {
        proc: ChildServer::start(id, &env, Stdio::null(), true).await,
        socket,
    }
}

/// (b) The owner dies (`kill -9`) mid-campaign: the other process takes the campaign within
/// seconds, reconciles the calls the dead one left in flight, and finishes it; every number's CDR
/// count equals its attempts and nothing is left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_survivor_takes_over_a_killed_owners_campaign() {
    let db = TestDb::new(Backend::Mysql);
    // Calls of about a second (talk 100 s × 0.01), so some are up when A dies.
    let sim = simulator(100_000).await;
    let mut a = server(&db, &sim, "kill-a").await;
    let b = server(&db, &sim, "kill-b").await;
    let http = reqwest::Client::new();
    let numbers: Vec<String> = (0..200).map(|i| format!("54933{i:06}6")).collect();
    a.start_campaign(
        "CAIDA",
        json!({"cps": 50, "reintentos": 2, "intervalo_reintento": 0, "max_canales": 100}),
        &numbers,
    )
    .await;

    while sim.originates().len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    a.child.wait().unwrap();
    let killed = Instant::now();
    let in_flight: u64 = db
        .sql("SELECT COUNT(*) FROM CAIDA WHERE estado IN ('MARCANDO', 'CONTESTADO')")
        .parse()
        .unwrap();
    assert!(in_flight > 0, "the crash should leave calls in flight");
    let by_a = dialed_by(&sim, Instant::now() - Duration::from_secs(3600));
    assert!(
        !by_a.contains_key(&b.socket),
        "B dialed while A lived: {by_a:?}"
    );

    // B takes it over within seconds (expiry 1 s + a heartbeat, with a generous margin).
    eventually(Duration::from_secs(15), "B dials CAIDA", async || {
        dialed_by(&sim, killed).contains_key(&b.socket)
    })
    .await;
    let took = killed.elapsed();
    let (_, e) = TestApp::split(
        http.get(format!("{}/discador/estado/CAIDA", b.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["proceso"], "kill-b", "{e}");

    let t0 = Instant::now();
    let last = loop {
        let (_, e) = TestApp::split(
            http.get(format!("{}/discador/estado/CAIDA", b.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let s = &e["estadisticas"];
        let n = |k: &str| s[k].as_u64().unwrap();
        if e["estado"] == "FINALIZADA" && n("pendientes") + n("en_curso") == 0 {
            break e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not finished by B: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["estadisticas"]["total"], 200, "{last}");
    assert_eq!(last["estadisticas"]["completados"], 200, "{last}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // Nothing in flight, and every number has exactly one CDR per attempt it counts.
    let left: u64 = db
        .sql("SELECT COUNT(*) FROM CAIDA WHERE estado IN ('MARCANDO', 'CONTESTADO')")
        .parse()
        .unwrap();
    assert_eq!(left, 0);
    let mismatched = db.sql(
        "SELECT n.telefono, n.intentos, (SELECT COUNT(*) FROM llamadas l \
         WHERE l.campana = 'CAIDA' AND l.numero_id = n.id) AS cdrs FROM CAIDA n \
         HAVING n.intentos <> cdrs",
    );
    assert!(mismatched.is_empty(), "CDRs ≠ attempts:\n{mismatched}");
    drop(b);
    sim.shutdown().await;
}
