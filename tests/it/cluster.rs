//! Several discador processes on one MariaDB, dialing through several real FreeSWITCH nodes: the
//! service as real child processes (the binary), so that `kill -9` is a real crash, and the
//! switches' own logs as the ground truth of what was dialed.
//!
//! - Two processes and two switches run two campaigns: each number is dialed exactly as many times
//!   as its attempts say (the switches' channels against the CDRs, UUID by UUID), both switches
//!   carry calls, and the gateway's cap holds across both processes together.
//! - `kill -9` of the process running a campaign: the other takes it over within seconds,
//!   reconciles the dead process's calls, and the campaign finishes with nothing lost or doubled.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use common::child::ChildServer;
use common::freeswitch::{SwitchOptions, TestSwitch};
use common::{free_port, Backend, TestDb};
use serde_json::{json, Value};

/// One discador process (`discador serve`), killed on drop.
struct Process {
    id: String,
    proc: ChildServer,
}

impl Process {
    /// Starts process `id` dialing through `switches` (nodes `fs1`, `fs2`, …) on `db`, with its own
    /// API and outbound-socket ports; `extra` adds or overrides settings. Returns once its API
    /// answers and start-up recovery is over.
    async fn start(
        id: &str,
        db: &TestDb,
        switches: &[&TestSwitch],
        extra: &[(&str, &str)],
    ) -> Process {
        let nodes: Vec<String> = switches
            .iter()
            .enumerate()
            .map(|(i, s)| format!("fs{}=127.0.0.1:{}", i + 1, s.ports.esl))
            .collect();
        let mut env = vec![
            ("FREESWITCH_NODOS", nodes.join(",")),
            ("SOCKET_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("DATABASE_URL", db.url()),
            ("PROCESO_ID", id.to_owned()),
            ("LATIDO_MS", "500".to_owned()),
            ("PROCESO_CADUCA_MS", "2000".to_owned()),
            ("CPS_MAXIMO", "100".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Process {
            id: id.to_owned(),
            proc: ChildServer::start(id, &env, Stdio::null(), false).await,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.proc.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "POST {path} on {}: {status} {v}",
            self.id
        );
        v
    }

    async fn estado(&self, nombre: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/discador/estado/{nombre}", self.proc.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Creates campaign `nombre` (open all day) with `settings` and loads `numbers`.
    async fn campaign(&self, nombre: &str, settings: Value, numbers: &[String]) {
        let mut body = json!({"nombre": nombre, "hora_inicio": "00:00", "hora_fin": "00:00",
                              "zona_horaria": "UTC", "amd": "ninguno"});
        for (k, v) in settings.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post("/campanas/", body).await;
        let r = reqwest::Client::new()
            .post(format!("{}/campana/{nombre}/numeros", self.proc.base))
            .header("content-type", "text/csv")
            .body(format!("telefono\n{}\n", numbers.join("\n")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }

    async fn start_campaign(&self, nombre: &str) {
        self.post("/discador/iniciar/", json!({ "nombre_campana": nombre }))
            .await;
    }

    /// Waits until `nombre` is FINALIZADA with nothing pending or in flight; returns its estado.
    async fn finished(&self, nombre: &str, within: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let b = self.estado(nombre).await;
            let e = &b["estadisticas"];
            if b["estado"] == "FINALIZADA"
                && e["pendientes"].as_u64() == Some(0)
                && e["en_curso"].as_u64() == Some(0)
            {
                return b;
            }
            assert!(t0.elapsed() < within, "{nombre} not finished: {b}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One channel a switch created towards the carrier for us, from its own log.
#[derive(Debug, Clone)]
struct SwitchCall {
    numero: String,
    start: NaiveDateTime,
    end: Option<NaiveDateTime>,
}

/// The channels a switch created on its `external` profile (our originates), by UUID: "New Channel
/// sofia/external/<number> [<uuid>]" and "Close Channel sofia/external/<number>" lines.
fn switch_calls(switch: &TestSwitch) -> HashMap<String, SwitchCall> {
    let text = std::fs::read_to_string(switch.state.join("log/freeswitch.log")).unwrap_or_default();
    let mut calls: HashMap<String, SwitchCall> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(uuid), Some(date), Some(time)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(at) =
            NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
        else {
            continue;
        };
        let numero_after = |marker: &str| {
            line.split_once(marker)
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned())
        };
        if let Some(numero) = numero_after("New Channel sofia/external/") {
            calls.insert(
                uuid.to_owned(),
                SwitchCall {
                    numero,
                    start: at,
                    end: None,
                },
            );
        } else if numero_after("Close Channel sofia/external/").is_some() {
            if let Some(c) = calls.get_mut(uuid) {
                c.end = Some(at);
            }
        }
    }
    calls
}

/// The CDRs of table `llamadas`: (uuid, telefono, causa).
fn cdrs(db: &TestDb) -> Vec<(String, String, String)> {
    db.sql("SELECT uuid, telefono, causa FROM llamadas")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// Every channel of ours on the switches has its CDR and every CDR is a channel one of them
/// created — the same UUIDs on both sides, none twice. Each number's CDRs equal its `intentos`,
/// and no number is left pending or in flight.
///
/// `crash`: when a process was killed. A channel started in the 2 s before it may lack its CDR if
/// its number was dialed again afterwards: the README's one window of recovery (an originate sent
/// while its `ultimo_intento` mark still waited in the writer's queue, and the call over before
/// anyone asked the switch) is dialed again without that attempt counted. Returns how many such
/// channels there were.
fn assert_dialed_as_recorded(
    db: &TestDb,
    switches: &[&TestSwitch],
    campaigns: &[&str],
    crash: Option<NaiveDateTime>,
) -> usize {
    let mut seen: HashMap<String, SwitchCall> = HashMap::new();
    for s in switches {
        for (uuid, c) in switch_calls(s) {
            assert!(
                seen.insert(uuid.clone(), c).is_none(),
                "{uuid} on two switches"
            );
        }
    }
    let rows = cdrs(db);
    let cdr_uuids: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(cdr_uuids.len(), rows.len(), "a UUID recorded twice");
    for (uuid, telefono, causa) in &rows {
        let c = seen.get(uuid).unwrap_or_else(|| {
            panic!("CDR {uuid} ({telefono}, {causa}) has no channel on any switch")
        });
        assert_eq!(&c.numero, telefono, "{uuid}");
    }
    let mut uncounted = 0;
    for (uuid, c) in &seen {
        if cdr_uuids.contains(uuid.as_str()) {
            continue;
        }
        let in_window =
            crash.is_some_and(|k| c.start <= k && c.start >= k - chrono::Duration::seconds(2));
        let dialed_again = seen
            .values()
            .any(|o| o.numero == c.numero && o.start > c.start);
        assert!(
            in_window && dialed_again,
            "channel {uuid} to {} ({}, killed at {crash:?}) has no CDR",
            c.numero,
            c.start
        );
        uncounted += 1;
    }
    for campaign in campaigns {
        for line in db
            .sql(&format!(
                "SELECT telefono, intentos, estado FROM {campaign}"
            ))
            .lines()
            .filter(|l| !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            let dialed = rows.iter().filter(|r| r.1 == f[0]).count();
            assert_eq!(
                dialed.to_string(),
                f[1],
                "{campaign} {}: CDRs vs intentos",
                f[0]
            );
            assert!(
                !matches!(f[2], "PENDIENTE" | "MARCANDO" | "CONTESTADO"),
                "{campaign} {} left {}",
                f[0],
                f[2]
            );
        }
    }
    uncounted
}

/// Never two calls to one number at once, as the switches saw them.
fn assert_never_twice_at_once(switches: &[&TestSwitch]) {
    let mut by_number: BTreeMap<String, Vec<(NaiveDateTime, NaiveDateTime)>> = BTreeMap::new();
    for s in switches {
        for c in switch_calls(s).into_values() {
            let end = c.end.unwrap_or(c.start);
            by_number.entry(c.numero).or_default().push((c.start, end));
        }
    }
    for (numero, mut spans) in by_number {
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{numero} dialed again while its call was up: {spans:?}"
            );
        }
    }
}

/// Most of `times` in any window of `span` that starts at or after `from`.
fn most_in(times: &[NaiveDateTime], from: NaiveDateTime, span: chrono::Duration) -> usize {
    let mut t: Vec<NaiveDateTime> = times.iter().copied().filter(|t| *t >= from).collect();
    t.sort();
    let mut best = 0;
    let mut j = 0;
    for i in 0..t.len() {
        while j < t.len() && t[j] < t[i] + span {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// Numbers of the real test bed's carrier by last digit: 4 answers and hangs up 1.5 s later, 5 is
/// busy, 8 unallocated, 0 a person who listens about 16 s.
fn numbers(prefix: &str, n: usize) -> Vec<String> {
    const LAST: [char; 5] = ['4', '5', '8', '4', '0'];
    (0..n)
        .map(|i| format!("{prefix}{i:04}{}", LAST[i % LAST.len()]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_two_switches_dial_each_number_as_its_attempts_say() {
    let db = TestDb::new(Backend::Mysql);
    let opts = SwitchOptions {
        sps: 400,
        ..SwitchOptions::default()
    };
    let (fs1, fs2) = (
        TestSwitch::start_with(opts.clone()),
        TestSwitch::start_with(opts),
    );
    // The gateway's cap is the binding one: 6 originates a second for both processes together.
    let extra = [("CPS_POR_GATEWAY", "gw_pstn=6")];
    let p1 = Process::start("p1", &db, &[&fs1, &fs2], &extra).await;
    let p2 = Process::start("p2", &db, &[&fs1, &fs2], &extra).await;

    let settings = json!({"cps": 5, "reintentos": 1, "intervalo_reintento": 0, "max_canales": 50,
                          "timeout_llamada": 15});
    let (a, b) = (numbers("5557100", 45), numbers("5557200", 45));
    p1.campaign("DOS_A", settings.clone(), &a).await;
    p2.campaign("DOS_B", settings, &b).await;
    p1.start_campaign("DOS_A").await;
    p2.start_campaign("DOS_B").await;
    let both_running = chrono::Utc::now().naive_utc();

    // Each campaign is run by the process whose API started it, and every process says so.
    for p in [&p1, &p2] {
        assert_eq!(p.estado("DOS_A").await["proceso"], "p1");
        assert_eq!(p.estado("DOS_B").await["proceso"], "p2");
    }
    p2.finished("DOS_A", Duration::from_secs(120)).await;
    p1.finished("DOS_B", Duration::from_secs(120)).await;

    assert_dialed_as_recorded(&db, &[&fs1, &fs2], &["DOS_A", "DOS_B"], None);
    assert_never_twice_at_once(&[&fs1, &fs2]);
    // Both switches carried calls, and the CDRs name them.
    let nodos = db.sql("SELECT DISTINCT nodo FROM llamadas ORDER BY nodo");
    assert_eq!(nodos.lines().collect::<Vec<_>>(), ["fs1", "fs2"], "{nodos}");

    // The gateway's cap held for both processes together, once each had seen the other's demand
    // (one heartbeat, 0.5 s, after both started; before that the first one alone had all 5).
    let starts: Vec<NaiveDateTime> = [&fs1, &fs2]
        .iter()
        .flat_map(|s| switch_calls(s).into_values().map(|c| c.start))
        .collect();
    // The switches log in local time; this machine runs in UTC (as CI does). Over 5 s, both
    // processes at their shares of 3/s give at most 30 originates, plus one per process where a
    // window's edge cuts between two grants (the switch starts each originate a few ms after the
    // pacer's grant, so a single second can see one more).
    let from = both_running + chrono::Duration::milliseconds(1500);
    let most = most_in(&starts, from, chrono::Duration::seconds(5));
    println!("most originates in 5 s over both processes: {most} (cap 6/s)");
    assert!(
        most <= 6 * 5 + 2,
        "{most} originates in 5 s over both processes, cap 6/s"
    );
    assert!(
        most >= 20,
        "{most} in 5 s: the processes should share the cap, not starve"
    );
    drop((p1, p2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_process_running_a_campaign_hands_it_to_the_other() {
    let db = TestDb::new(Backend::Mysql);
    let fs = TestSwitch::start_with(SwitchOptions {
        sps: 400,
        ..SwitchOptions::default()
    });
    let mut p1 = Process::start("p1", &db, &[&fs], &[]).await;
    let p2 = Process::start("p2", &db, &[&fs], &[]).await;

    let numbers = numbers("5557300", 80);
    p1.campaign(
        "RELEVO",
        json!({"cps": 8, "reintentos": 1, "intervalo_reintento": 0, "max_canales": 40,
               "timeout_llamada": 15}),
        &numbers,
    )
    .await;
    p1.start_campaign("RELEVO").await;
    assert_eq!(p2.estado("RELEVO").await["proceso"], "p1");

    // Kill p1 while it has calls up.
    let t0 = Instant::now();
    loop {
        let live: u64 = db
            .sql("SELECT COUNT(*) FROM RELEVO WHERE estado IN ('MARCANDO', 'CONTESTADO')")
            .parse()
            .unwrap();
        let done: u64 = db.sql("SELECT COUNT(*) FROM llamadas").parse().unwrap();
        if live >= 3 && done >= 10 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no calls in flight to cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The switch logs in local time; this machine runs in UTC (as CI does).
    let crash = chrono::Utc::now().naive_utc();
    p1.proc.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    p1.proc.child.wait().unwrap();
    let killed = Instant::now();

    // p2 takes the campaign over within seconds (heartbeat every 0.5 s, dead after 2 s).
    loop {
        if p2.estado("RELEVO").await["proceso"] == "p2" {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "p2 did not take RELEVO over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = killed.elapsed();
    println!("takeover after kill -9: {took:?}");

    let last = p2.finished("RELEVO", Duration::from_secs(120)).await;
    let e = &last["estadisticas"];
    assert_eq!(e["total"], 80, "{last}");
    assert_eq!(
        e["completados"].as_u64().unwrap() + e["errores"].as_u64().unwrap(),
        80,
        "{last}"
    );
    fs.wait_no_channels(Duration::from_secs(30)).await;
    // The numbers the dead process had claimed and not sent went back to PENDIENTE uncounted:
    // every CDR is a channel the switch created.
    let uncounted = assert_dialed_as_recorded(&db, &[&fs], &["RELEVO"], Some(crash));
    println!("sent while its mark waited in the writer, over before recovery: {uncounted}");
    assert_never_twice_at_once(&[&fs]);
    drop(p2);
}
