//! One discador process and one FreeSWITCH node against two of each, on one MariaDB, measured from
//! the outside: the real `discador serve` and `discador sim` binaries as child processes and the
//! simulators' originate logs as the ground truth.
//!
//! 1. `escala`: two campaigns of `CLUSTER_BENCH_NUMBERS` numbers each (default 30,000) at 1,000 CPS
//!    under a 2,000 CPS `CPS_MAXIMO`, dialed by one process through one simulator, then by two
//!    processes (one campaign each) through two simulators. Reported: sustained originates per
//!    second (all simulators' logs together), calls finished per second, and the CPU seconds each
//!    party used — the servers, the simulators, and MariaDB (`mariadbd`'s share is the database's
//!    cost of the pipeline).
//! 2. `relevo`: a campaign dialed at 100 CPS by one of two processes; `kill -9` of it; how long
//!    until the other dials the campaign (the first originate after the kill in the simulator's log)
//!    and until its `estado` names the new owner, with the default heartbeat (1 s, dead after 5 s)
//!    and a fast one (0.5 s / 2 s).
//!
//! Run: `cargo bench --bench cluster [-- escala|relevo]`. MariaDB only (SQLite is one process).
//! `CLUSTER_BENCH_QUICK=1` shorter runs.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

mod common;
use common::children::{free_port, slope_s, Proc};
use common::{Backend, BenchDb};

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn mariadbd_pid() -> Option<u32> {
    let out = Command::new("pidof").arg("mariadbd").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Arrival times (µs) in a simulator's originate log.
fn read_log(path: &Path) -> Result<Vec<u64>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if let Some(Ok(t)) = line.split(',').next().map(str::parse::<u64>) {
            out.push(t);
        }
    }
    Ok(out)
}

/// A simulator (one "node") with its originate log.
struct Sim {
    proc: Proc,
    esl: u16,
    log: PathBuf,
}

fn start_sim(dir: &Path, k: usize) -> Result<Sim> {
    let esl = free_port()?;
    let log = dir.join(format!("originates_{k}.csv"));
    let child = Command::new(env!("CARGO_BIN_EXE_discador"))
        .args(["sim", "--listen", &format!("127.0.0.1:{esl}")])
        .args(["--sessions-per-second", "5000", "--max-sessions", "200000"])
        .args(["--time-scale", "0.01"])
        .arg("--originate-log")
        .arg(&log)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the simulator")?;
    Ok(Sim {
        proc: Proc(child),
        esl,
        log,
    })
}

/// A `discador serve` process dialing through `sims`.
struct Server {
    proc: Proc,
    base: String,
    http: reqwest::Client,
}

async fn start_server(
    id: &str,
    db: &BenchDb,
    sims: &[&Sim],
    env: &[(&str, &str)],
) -> Result<Server> {
    let (sock, api) = (free_port()?, free_port()?);
    let nodes: Vec<String> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| format!("fs{}=127.0.0.1:{}", i + 1, s.esl))
        .collect();
    let log = std::fs::File::create(db.dir().join(format!("server_{id}.log")))?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_discador"));
    cmd.arg("serve")
        .env("FREESWITCH_NODOS", nodes.join(","))
        .env("SOCKET_LISTEN", format!("127.0.0.1:{sock}"))
        .env("API_LISTEN", format!("127.0.0.1:{api}"))
        .env("DATABASE_URL", db.url())
        .env("PROCESO_ID", id)
        .env("CPS_MAXIMO", "2000")
        .env("CANALES_MAXIMOS", "100000")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server {
        proc: Proc(cmd.spawn().context("starting the server")?),
        base: format!("http://127.0.0.1:{api}"),
        http: reqwest::Client::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = server
            .http
            .get(format!("{}/health", server.base))
            .send()
            .await
        {
            let b: Value = r.json().await.unwrap_or(Value::Null);
            if b["arranque"] == "listo" {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            bail!("server {id} did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Server {
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    async fn campaign(&self, name: &str, cps: f64, prefix: u32, n: usize) -> Result<()> {
        self.post(
            "/campanas/",
            json!({"nombre": name, "cps": cps, "reintentos": 0, "max_canales": 10000, "amd": "ninguno",
                   "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC", "timeout_llamada": 15}),
        )
        .await?;
        let mut csv = String::from("telefono\n");
        for i in 0..n {
            csv.push_str(&format!("54{prefix:03}{i:07}6\n"));
        }
        let r = self
            .http
            .post(format!("{}/campana/{name}/numeros", self.base))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("loading numbers: {}", r.text().await?);
        }
        Ok(())
    }

    async fn estado(&self, name: &str) -> Result<Value> {
        Ok(self
            .http
            .get(format!("{}/discador/estado/{name}", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn wait_finished(&self, name: &str, limit: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            if self.estado(name).await?["estado"] == "FINALIZADA" {
                return Ok(());
            }
            if t0.elapsed() > limit {
                bail!("{name} did not finish in {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Warnings and errors in the servers' logs, with the first few.
fn summarise_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("server_") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let flagged: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        println!("{name}: {} WARN/ERROR lines", flagged.len());
        for l in flagged.iter().take(3) {
            println!("  {l}");
        }
    }
}

/// One scale run: `processes` servers and as many simulators, two campaigns of `n` numbers.
async fn scale(processes: usize, n: usize, out: &mut Vec<String>) -> Result<()> {
    let db = BenchDb::create(Backend::Mysql)?;
    let sims: Vec<Sim> = (0..processes)
        .map(|k| start_sim(db.dir(), k))
        .collect::<Result<_>>()?;
    let sim_refs: Vec<&Sim> = sims.iter().collect();
    let mut servers = Vec::new();
    for k in 0..processes {
        servers.push(start_server(&format!("p{}", k + 1), &db, &sim_refs, &[]).await?);
    }
    let names = ["ESCALA_A", "ESCALA_B"];
    for (k, name) in names.iter().enumerate() {
        servers[k % processes]
            .campaign(name, 1000.0, 200 + k as u32, n)
            .await?;
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.proc.0.id()).collect();
    let sim_pids: Vec<u32> = sims.iter().map(|s| s.proc.0.id()).collect();
    let db_pid = mariadbd_pid();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_s(*p)).sum::<f64>();
    let (srv0, sim0, db0) = (cpu(&pids), cpu(&sim_pids), db_pid.map_or(0.0, cpu_s));
    let t0 = Instant::now();
    for (k, name) in names.iter().enumerate() {
        servers[k % processes]
            .post("/discador/iniciar/", json!({"nombre_campana": name}))
            .await?;
    }
    for name in names {
        servers[0]
            .wait_finished(name, Duration::from_secs(600))
            .await?;
    }
    let took = t0.elapsed().as_secs_f64();
    let (srv, simc, dbc) = (
        cpu(&pids) - srv0,
        cpu(&sim_pids) - sim0,
        db_pid.map_or(0.0, cpu_s) - db0,
    );
    let mut times = Vec::new();
    for s in &sims {
        times.extend(read_log(&s.log)?);
    }
    times.sort_unstable();
    let rate = 1.0 / slope_s(&times);
    let total = srv + simc + dbc;
    let line = format!(
        "| {processes} × {processes} | {} | {rate:.0} | {:.0} | {took:.1} s | {srv:.1} s | {simc:.1} s | {dbc:.1} s ({:.0} %) |",
        times.len(),
        times.len() as f64 / took,
        100.0 * dbc / total.max(1e-9)
    );
    println!("{line}");
    out.push(line);
    drop(servers);
    summarise_logs(db.dir());
    Ok(())
}

/// One takeover: a campaign at 100 CPS on p1 of two processes, `kill -9` of p1.
async fn takeover(latido: &str, caduca: &str, out: &mut Vec<String>) -> Result<()> {
    let db = BenchDb::create(Backend::Mysql)?;
    let sim = start_sim(db.dir(), 0)?;
    let env = [("LATIDO_MS", latido), ("PROCESO_CADUCA_MS", caduca)];
    let mut p1 = start_server("p1", &db, &[&sim], &env).await?;
    let p2 = start_server("p2", &db, &[&sim], &env).await?;
    p1.campaign("RELEVO", 100.0, 300, 20_000).await?;
    p1.post("/discador/iniciar/", json!({"nombre_campana": "RELEVO"}))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unix_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    };
    let _ = p1.proc.0.kill();
    let _ = p1.proc.0.wait();
    let killed_us = unix_us();
    let killed = Instant::now();
    let owner_after = loop {
        if p2.estado("RELEVO").await?["proceso"] == "p2" {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no takeover within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The first originate after the kill, as the simulator logged it (its clock is the system's).
    let dial_after = loop {
        let after: Option<u64> = read_log(&sim.log)?
            .into_iter()
            .find(|t| *t > killed_us + 1_000);
        if let Some(t) = after {
            break Duration::from_micros(t - killed_us);
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no originate after the takeover");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line = format!(
        "| {latido} ms / {caduca} ms | {:.2} s | {:.2} s |",
        owner_after.as_secs_f64(),
        dial_after.as_secs_f64()
    );
    println!("{line}");
    out.push(line);
    drop(p2);
    summarise_logs(db.dir());
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
    // minutes of dialing have no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster: skipped (run it with `cargo bench --bench cluster`)");
        return Ok(());
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |part: &str| filter.as_deref().is_none_or(|f| part.contains(f));
    let quick = std::env::var_os("CLUSTER_BENCH_QUICK").is_some();
    let n: usize = std::env::var("CLUSTER_BENCH_NUMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5_000 } else { 30_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut lines = Vec::new();
        if run("escala") {
            println!("| processes × nodes | originates | originates/s (sustained) | calls/s (start to FINALIZADA) | time | servers CPU | simulators CPU | MariaDB CPU (share) |");
            scale(1, n, &mut lines).await?;
            scale(2, n, &mut lines).await?;
        }
        if run("relevo") {
            println!("| heartbeat / dead after | estado names the new owner | first originate by the new owner |");
            takeover("1000", "5000", &mut lines).await?;
            takeover("500", "2000", &mut lines).await?;
        }
        Ok(())
    })
}
