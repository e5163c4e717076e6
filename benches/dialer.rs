//! Dialer benchmarks, measured from the outside: the real `discador serve` and `discador sim`
//! binaries as child processes, a fresh database, HTTP to drive them, and the simulator's
//! originate log (a microsecond timestamp per originate it received) as the ground truth.
//!
//! 1. Pacing accuracy at 1, 10, 100 and 500 CPS: achieved rate vs target, and the most originates
//!    in any one-second window (must not exceed ceil(cps)).
//! 2. Pipeline throughput: claims, originates, events, batched writes at a 2,000 CPS target.
//! 3. Memory: the server's resident set while dialing a 1,000,000-number campaign.
//!
//! Run: `make bench` (or `cargo bench --bench dialer [-- pacing|throughput|memory]`).
//! `BENCH_BACKEND=mysql|sqlite|both` (default both) picks the store: each part runs once per
//! backend, against a fresh MariaDB database on 127.0.0.1:3306 or a fresh SQLite file (see
//! `common/mod.rs`). `DIALER_BENCH_QUICK=1` runs shorter scenarios. The server's warnings go to a
//! log in the run's temporary directory; a summary is printed when the run ends.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::children::{free_port, slope_s, Proc};
use common::{Backend, BenchDb};
use serde_json::{json, Value};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One originate as the simulator logged it.
struct Logged {
    at_us: u64,
    destination: String,
}

fn read_log(path: &Path) -> Result<Vec<Logged>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        let mut parts = line.split(',');
        let (Some(ts), Some(_uuid), Some(dest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(at_us) = ts.parse::<u64>() else {
            continue;
        }; // header line
        out.push(Logged {
            at_us,
            destination: dest.to_owned(),
        });
    }
    Ok(out)
}

/// Most events in any half-open one-second window.
fn max_per_second(times_us: &[u64]) -> usize {
    let mut best = 0;
    let mut j = 0;
    for i in 0..times_us.len() {
        while j < times_us.len() && times_us[j] < times_us[i] + 1_000_000 {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// Prints how many WARN and ERROR lines the server logged, with the first few.
fn summarise_server_log(backend: Backend, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let flagged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let errors = flagged.iter().filter(|l| l.contains(" ERROR ")).count();
    println!(
        "server log [{}]: {} WARN, {errors} ERROR",
        backend.name(),
        flagged.len() - errors
    );
    for line in flagged.iter().take(5) {
        println!("  {line}");
    }
}

struct Rig {
    http: reqwest::Client,
    base: String,
    server: Proc,
    _sim: Proc,
    log: PathBuf,
    server_log: PathBuf,
    // Last: removed after both processes have stopped.
    db: BenchDb,
}

impl Rig {
    async fn start(backend: Backend, cps_maximo: f64) -> Result<Rig> {
        let bin = env!("CARGO_BIN_EXE_discador");
        let (esl, sock, api) = (free_port()?, free_port()?, free_port()?);
        let db = BenchDb::create(backend)?;
        let log = db.dir().join("originates.csv");
        let server_log = db.dir().join("server.log");
        let sim = Command::new(bin)
            .args([
                "sim",
                "--listen",
                &format!("127.0.0.1:{esl}"),
                "--socket",
                &format!("127.0.0.1:{sock}"),
            ])
            .args([
                "--sessions-per-second",
                "5000",
                "--max-sessions",
                "200000",
                "--time-scale",
                "0.01",
            ])
            .arg("--originate-log")
            .arg(&log)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the simulator")?;
        let sim = Proc(sim);
        let server = Command::new(bin)
            .arg("serve")
            .env("FREESWITCH_PORT", esl.to_string())
            .env("SOCKET_LISTEN", format!("127.0.0.1:{sock}"))
            .env("API_LISTEN", format!("127.0.0.1:{api}"))
            .env("DATABASE_URL", db.url())
            .env("CPS_MAXIMO", cps_maximo.to_string())
            .env("CANALES_MAXIMOS", "100000")
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(&server_log)?)
            .spawn()
            .context("starting the server")?;
        let server = Proc(server);
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{api}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("server did not become healthy");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Rig {
            http,
            base,
            server,
            _sim: sim,
            log,
            server_log,
            db,
        })
    }

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

    async fn campaign(
        &self,
        name: &str,
        cps: f64,
        numbers: impl Iterator<Item = String>,
    ) -> Result<()> {
        self.post(
            "/campanas/",
            json!({"nombre": name, "cps": cps, "reintentos": 0, "max_canales": 10000, "amd": "ninguno",
                   "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC", "timeout_llamada": 15}),
        )
        .await?;
        let mut csv = String::from("telefono\n");
        for n in numbers {
            csv.push_str(&n);
            csv.push('\n');
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

    async fn run_to_end(&self, name: &str, limit: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        self.post("/discador/iniciar/", json!({"nombre_campana": name}))
            .await?;
        loop {
            let e = self.estado(name).await?;
            if e["estado"] == "FINALIZADA" {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > limit {
                bail!("{name} did not finish in {limit:?}: {e}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The server stops first (fields drop after this), then the database goes.
        let _ = self.server.0.kill();
        let _ = self.server.0.wait();
        summarise_server_log(self.db.backend, &self.server_log);
    }
}

/// Numbers that the simulator answers as a person (last digit 6), unique per campaign prefix.
fn numbers(prefix: u32, n: usize) -> impl Iterator<Item = String> {
    (0..n).map(move |i| format!("54{prefix:03}{i:07}6"))
}

async fn pacing(backend: Backend, quick: bool, out: &mut Vec<String>) -> Result<()> {
    let rig = Rig::start(backend, 1000.0).await?;
    for (k, (cps, seconds)) in [(1.0, 30.0), (10.0, 30.0), (100.0, 30.0), (500.0, 30.0)]
        .into_iter()
        .enumerate()
    {
        let seconds = if quick { seconds / 3.0 } else { seconds };
        let n = (cps * seconds) as usize + 1;
        let name = format!("PACE_{k}");
        let prefix = 100 + k as u32;
        rig.campaign(&name, cps, numbers(prefix, n)).await?;
        rig.run_to_end(&name, Duration::from_secs_f64(seconds * 3.0 + 60.0))
            .await?;
        let tag = format!("54{prefix:03}");
        let mut times: Vec<u64> = read_log(&rig.log)?
            .into_iter()
            .filter(|l| l.destination.contains(&tag))
            .map(|l| l.at_us)
            .collect();
        times.sort_unstable();
        if times.len() != n {
            bail!("{name}: {} originates logged, {n} expected", times.len());
        }
        let span_s = (times[n - 1] - times[0]) as f64 / 1e6;
        let achieved = (n - 1) as f64 / span_s;
        let err = (achieved - cps) / cps * 100.0;
        let fitted = 1.0 / slope_s(&times);
        let fit_err = (fitted - cps) / cps * 100.0;
        let worst = max_per_second(&times);
        let line = format!(
            "| {} | {cps} | {n} | {achieved:.3} ({err:+.3} %) | {fitted:.3} ({fit_err:+.3} %) | {worst} | {} |",
            backend.name(),
            cps.ceil() as usize
        );
        println!("{line}");
        out.push(line);
    }
    drop(rig);
    Ok(())
}

/// Two campaigns at the API's per-campaign maximum (1,000 CPS each) under a 2,000 CPS ceiling: the
/// pipeline (claims, originates, events, controller, batched writes) sets the rate, not the pacer.
async fn throughput(backend: Backend, quick: bool, out: &mut Vec<String>) -> Result<()> {
    let rig = Rig::start(backend, 2000.0).await?;
    let n = if quick { 10_000 } else { 30_000 };
    rig.campaign("CAUDAL_A", 1000.0, numbers(900, n)).await?;
    rig.campaign("CAUDAL_B", 1000.0, numbers(901, n)).await?;
    let t0 = Instant::now();
    rig.post("/discador/iniciar/", json!({"nombre_campana": "CAUDAL_A"}))
        .await?;
    rig.post("/discador/iniciar/", json!({"nombre_campana": "CAUDAL_B"}))
        .await?;
    for name in ["CAUDAL_A", "CAUDAL_B"] {
        loop {
            let e = rig.estado(name).await?;
            if e["estado"] == "FINALIZADA" {
                break;
            }
            if t0.elapsed() > Duration::from_secs(900) {
                bail!("{name} did not finish: {e}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let took = t0.elapsed();
    let mut times: Vec<u64> = read_log(&rig.log)?.into_iter().map(|l| l.at_us).collect();
    times.sort_unstable();
    let span_s = (times[times.len() - 1] - times[0]) as f64 / 1e6;
    let total = 2 * n;
    let line = format!(
        "| {} | {total} | {:.0} | {:.0} | {:.1} s |",
        backend.name(),
        (times.len() - 1) as f64 / span_s,
        total as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    println!("{line}");
    out.push(line);
    Ok(())
}

async fn memory(backend: Backend, quick: bool, out: &mut Vec<String>) -> Result<()> {
    let rig = Rig::start(backend, 1000.0).await?;
    let n = 1_000_000;
    let pid = rig.server.0.id();
    let rss0 = rss_kib(pid).unwrap_or(0);
    rig.campaign("MEMORIA", 1000.0, numbers(700, n)).await?;
    let rss_loaded = rss_kib(pid).unwrap_or(0);
    rig.post("/discador/iniciar/", json!({"nombre_campana": "MEMORIA"}))
        .await?;
    let seconds = if quick { 20 } else { 90 };
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid).unwrap_or(0));
    }
    let e = rig.estado("MEMORIA").await?;
    let (min, max) = (
        samples.iter().copied().min().unwrap_or(0),
        samples.iter().copied().max().unwrap_or(0),
    );
    let tail = &samples[samples.len() / 2..];
    let line = format!(
        "| {} | {n} | {} s | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB → {:.1} MiB |",
        backend.name(),
        seconds,
        e["estadisticas"]["completados"],
        rss0 as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        min as f64 / 1024.0,
        tail.first().copied().unwrap_or(0) as f64 / 1024.0,
        max as f64 / 1024.0,
    );
    println!("{line}");
    out.push(line);
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
    // minutes of dialing have no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("dialer: skipped (run it with `cargo bench --bench dialer`)");
        return Ok(());
    }
    let quick = std::env::var_os("DIALER_BENCH_QUICK").is_some();
    let backends = Backend::selected()?;
    // `cargo bench` passes --bench; nothing else is accepted.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut lines = Vec::new();
        let run = |s: &str| only.as_deref().is_none_or(|o| s.contains(o));
        for backend in backends {
            println!("## backend: {}", backend.name());
            if run("pacing") {
                println!("| backend | target CPS | calls | achieved CPS, first to last (error) | achieved CPS, least squares (error) | max in any 1 s | ceil(cps) |");
                pacing(backend, quick, &mut lines).await?;
            }
            if run("throughput") {
                println!("| backend | calls | originates/s | calls finished/s (end to end) | time |");
                throughput(backend, quick, &mut lines).await?;
            }
            if run("memory") {
                println!("| backend | numbers | dialing | completed | RSS idle | RSS loaded | RSS min | RSS 2nd half → max |");
                memory(backend, quick, &mut lines).await?;
            }
        }
        let mut f = std::fs::File::create(std::env::temp_dir().join("discador_dialer_bench.md"))?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    })
}
