//! The whole path against the real FreeSWITCH 1.10.12 of `../shared/freeswitch/` on this machine:
//! the release `discador serve` dials mod_amd campaigns through it at rising rates.
//!
//! For each rate (`REAL_BENCH_CPS`, default `5,10,15,20`) a fresh switch (sessions-per-second and
//! max-sessions high enough never to be the limit, 10 000 RTP ports) and a fresh service (SQLite
//! database in a temporary directory, `CPS_MAXIMO` = the rate) dial `rate × REAL_BENCH_SECS`
//! (default 20) numbers of the test bed's carrier: four people (last digits 0-3) for each
//! answering machine (7), every call classified by mod_amd. Reported per rate:
//!
//! - the rate achieved (numbers ÷ time from `iniciar` until none is pending);
//! - refusals: FreeSWITCH's `Throttle Error` lines and the service's requeued refusals;
//! - wrong or lost: numbers not COMPLETADO with the result their party calls for (a person
//!   HUMANO, a machine MAQUINA) once the campaign is FINALIZADA;
//! - CPU of `discador` and of FreeSWITCH over the campaign, in % of one core;
//! - answer → verdict (`deteccion_ms` of the controller's log line), median and 95th percentile,
//!   for people and machines.
//!
//! Run: `cargo bench --bench real_switch` (about a minute per rate). Needs the test bed's
//! libraries (`.ci/freeswitch-libs`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const ESL_PORT: u16 = 28021;
const SIP_PORT: u16 = 28080;
const CARRIER_PORT: u16 = 28090;
const SOCKET_PORT: u16 = 28084;
const API_PORT: u16 = 28000;

fn bed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/freeswitch")
}

/// One FreeSWITCH, stopped on drop.
struct Switch {
    state: PathBuf,
    pid: u32,
}

impl Switch {
    fn start() -> Result<Switch> {
        let state = std::env::temp_dir().join(format!("discador_bench_fs_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let out = Command::new(bed().join("start"))
            .arg("--state")
            .arg(&state)
            .arg("--conf")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("freeswitch-conf"))
            .args(["--esl-port", &ESL_PORT.to_string()])
            .args(["--sip-port", &SIP_PORT.to_string()])
            .args(["--carrier-port", &CARRIER_PORT.to_string()])
            .args(["--socket", &format!("127.0.0.1:{SOCKET_PORT}")])
            .args(["--rtp-start", "40000", "--rtp-end", "49999"])
            .args(["--sps", "5000", "--max-sessions", "10000"])
            .output()
            .context("cannot run ../shared/freeswitch/start")?;
        if !out.status.success() {
            bail!(
                "FreeSWITCH did not start: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .next_back()
            .context("start printed no pid")?;
        Ok(Switch { state, pid })
    }

    fn throttled(&self) -> usize {
        std::fs::read_to_string(self.state.join("log/freeswitch.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Throttle Error"))
            .count()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = Command::new(bed().join("stop")).arg(&self.state).status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// CPU time (user + system) of a process so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // CLK_TCK is 100 on Linux
}

/// The service, killed on drop; its JSON log lines are collected.
struct Service {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
    _dir: PathBuf,
}

impl Service {
    fn start(cps: u32) -> Result<Service> {
        let dir = std::env::temp_dir().join(format!("discador_bench_db_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_discador"))
            .arg("serve")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("d.db").display()),
            )
            .env("FREESWITCH_PORT", ESL_PORT.to_string())
            .env("SOCKET_LISTEN", format!("127.0.0.1:{SOCKET_PORT}"))
            .env("API_LISTEN", format!("127.0.0.1:{API_PORT}"))
            .env("CPS_MAXIMO", cps.to_string())
            .env("CANALES_MAXIMOS", "5000")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start discador")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().context("no stdout")?;
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Ok(Service {
            child,
            logs,
            _dir: dir,
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn api() -> String {
    format!("http://127.0.0.1:{API_PORT}")
}

async fn wait_ready(http: &reqwest::Client) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/health", api())).send().await {
            if let Ok(h) = r.json::<Value>().await {
                if h["freeswitch"] == "conectado" && h["modulos"]["mod_amd"] == true {
                    return Ok(());
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the service never connected to FreeSWITCH");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The number's last digit: 0-3 a person, 7 a machine (the carrier's rules).
fn numbers(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let d = [0, 1, 7, 2, 3][(i % 5) as usize];
            format!("5551{i:05}{d}")
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Step {
    cps: u32,
    numbers: usize,
    achieved: f64,
    throttled: usize,
    refused: usize,
    wrong: usize,
    cpu_discador: f64,
    cpu_fs: f64,
    human_ms: Vec<u64>,
    machine_ms: Vec<u64>,
}

async fn step(cps: u32, secs: u32) -> Result<Step> {
    let fs = Switch::start()?;
    let svc = Service::start(cps)?;
    let http = reqwest::Client::new();
    wait_ready(&http).await?;
    let nums = numbers(cps * secs);
    let r = http
        .post(format!("{}/campanas/", api()))
        .json(&json!({
            "nombre": "BENCH", "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC",
            "amd": "mod_amd", "reintentos": 0, "cps": cps, "max_canales": 5000,
            "timeout_llamada": 20,
        }))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("campaign not created: {}", r.text().await?);
    }
    let csv = format!("telefono\n{}\n", nums.join("\n"));
    let r = http
        .post(format!("{}/campana/BENCH/numeros", api()))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    if r.status() != 200 {
        bail!("numbers not loaded: {}", r.text().await?);
    }
    let (cpu_d0, cpu_f0, t0) = (cpu(svc.child.id()), cpu(fs.pid), Instant::now());
    let r = http
        .post(format!("{}/discador/iniciar/", api()))
        .json(&json!({"nombre_campana": "BENCH"}))
        .send()
        .await?;
    if r.status() != 200 {
        bail!("not started: {}", r.text().await?);
    }
    let mut dialed_in = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b: Value = http
            .get(format!("{}/discador/estado/BENCH", api()))
            .send()
            .await?
            .json()
            .await?;
        let count = |k: &str| b["estadisticas"][k].as_u64().unwrap_or(0);
        if dialed_in.is_none() && count("pendientes") == 0 {
            dialed_in = Some(t0.elapsed());
        }
        if b["estado"] == "FINALIZADA" && count("pendientes") + count("en_curso") == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(u64::from(secs) * 10 + 120) {
            bail!("campaign did not finish: {b}");
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_discador = (cpu(svc.child.id()) - cpu_d0).as_secs_f64() / wall * 100.0;
    let cpu_fs = (cpu(fs.pid) - cpu_f0).as_secs_f64() / wall * 100.0;

    // Per number: the result its party calls for (read with the sqlite3 shell).
    let out = Command::new("sqlite3")
        .arg(svc._dir.join("d.db"))
        .arg("SELECT telefono, estado, resultado FROM BENCH")
        .output()
        .context("sqlite3 runs")?;
    let got: HashMap<String, (String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            Some((
                f.next()?.to_owned(),
                (f.next()?.to_owned(), f.next().unwrap_or("").to_owned()),
            ))
        })
        .collect();
    let wrong = nums
        .iter()
        .filter(|n| {
            let want = if n.ends_with('7') {
                "MAQUINA"
            } else {
                "HUMANO"
            };
            !matches!(got.get(*n), Some((e, r)) if e == "COMPLETADO" && r == want)
        })
        .count();

    let logs = svc.logs.lock().unwrap().clone();
    let mut human_ms = Vec::new();
    let mut machine_ms = Vec::new();
    let mut refused = 0;
    for l in &logs {
        if let Some(ms) = l["deteccion_ms"].as_u64() {
            match l["amd"].as_str() {
                Some("HUMAN") => human_ms.push(ms),
                Some("MACHINE") => machine_ms.push(ms),
                _ => {}
            }
        }
        if l["message"]
            .as_str()
            .is_some_and(|m| m.contains("rechazó el originate"))
        {
            refused += 1;
        }
    }
    human_ms.sort_unstable();
    machine_ms.sort_unstable();
    Ok(Step {
        cps,
        numbers: nums.len(),
        achieved: nums.len() as f64 / dialed_in.unwrap_or(t0.elapsed()).as_secs_f64(),
        throttled: fs.throttled(),
        refused,
        wrong,
        cpu_discador,
        cpu_fs,
        human_ms,
        machine_ms,
    })
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and a
    // few minutes of calls through a real switch are not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("real_switch: skipped (run it with `cargo bench --bench real_switch`)");
        return Ok(());
    }
    let rates: Vec<u32> = std::env::var("REAL_BENCH_CPS")
        .unwrap_or_else(|_| "5,10,15,20".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u32 = std::env::var("REAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "| CPS asked | numbers | CPS achieved | FS refusals | requeued | wrong or lost | CPU discador | CPU FreeSWITCH | person: answer→verdict p50 / p95 | machine: p50 / p95 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for cps in rates {
        let s = rt.block_on(step(cps, secs))?;
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {:.0} % | {:.0} % | {} / {} ms ({}) | {} / {} ms ({}) |",
            s.cps,
            s.numbers,
            s.achieved,
            s.throttled,
            s.refused,
            s.wrong,
            s.cpu_discador,
            s.cpu_fs,
            percentile(&s.human_ms, 0.5),
            percentile(&s.human_ms, 0.95),
            s.human_ms.len(),
            percentile(&s.machine_ms, 0.5),
            percentile(&s.machine_ms, 0.95),
            s.machine_ms.len(),
        );
    }
    Ok(())
}
