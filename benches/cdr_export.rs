//! CDR export benchmark (`cargo bench --bench cdr_export`): 1,000,000 CDRs of one campaign
//! streamed through `GET /campana/{nombre}/llamadas` (CSV, then JSON), in flat memory.
//!
//! The app runs in this process against a fresh database (removed at the end) of the backend(s)
//! that `BENCH_BACKEND=mysql|sqlite|both` names (default both; see `common/mod.rs`); `BENCH_ROWS`
//! changes the count (rounded up to the seed times a power of two). The CDRs are written fast, not
//! through the dialer: [`SEED`] rows through the store, then `INSERT … SELECT` doublings in the
//! database's own client, each shifting `inicio` by whole days so the campaign spans many of them
//! and the export walks a long `(campana, inicio)` range. The client reads the body chunk by chunk
//! and keeps none of it (it counts bytes and lines), so the process' memory is the server's.
//! Memory is sampled from /proc/self/status every 20 ms during each export (VmRSS).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use common::{Backend, BenchDb};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: discador::config::Config,
}

const ROWS: u64 = 1_000_000;
/// Rows written through the store before the doublings.
const SEED: u64 = 1_000;
const CAMPAIGN: &str = "BENCH";

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs SQL in the run's database with the backend's own client.
fn sql(db: &BenchDb, statement: &str) -> anyhow::Result<String> {
    let url = db.url();
    let out = match db.backend {
        Backend::Mysql => {
            let name = url.rsplit('/').next().context("database name")?;
            Command::new("mysql")
                .args(["-h127.0.0.1", "-uroot", "-N", "-B", name, "-e", statement])
                .output()?
        }
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").context("sqlite path")?;
            Command::new("sqlite3")
                .args([
                    "-batch",
                    "-noheader",
                    "-cmd",
                    ".timeout 10000",
                    path,
                    statement,
                ])
                .output()?
        }
    };
    if !out.status.success() {
        bail!("{statement}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The CDRs written through the store: every column set, `inicio` spread over one day with
/// non-zero milliseconds (SQLite's text form then always has three decimals, as the doublings
/// write it).
fn seed_rows() -> Vec<discador::store::CdrRow> {
    let t0 = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_milli_opt(0, 0, 0, 1))
        .expect("a valid date");
    (0..SEED as i64)
        .map(|i| {
            let inicio = t0 + chrono::Duration::milliseconds(i * 86_399);
            discador::store::CdrRow {
                id: i + 1,
                campana: CAMPAIGN.into(),
                numero_id: i + 1,
                telefono: format!("+54911{:08}", i),
                intento: 1,
                uuid: format!("00000000-0000-4000-8000-{:012}", i),
                nodo: "fs-1".into(),
                estado: "COMPLETADO".into(),
                resultado: ["HUMANO", "MAQUINA", "OCUPADO", "NO_CONTESTA"][i as usize % 4].into(),
                causa: Some("NORMAL_CLEARING".into()),
                amd_resultado: Some("HUMAN".into()),
                amd_causa: Some("INITIALSILENCE".into()),
                inicio,
                contestada: Some(inicio + chrono::Duration::milliseconds(4_500)),
                fin: inicio + chrono::Duration::milliseconds(31_250),
                billsec: 27,
                duracion: 31,
                disposicion: Some("ESCUCHO".into()),
                mensaje_ms: Some(12_000),
                teclas: Some("1".into()),
                accion: None,
                transferida_a: None,
                agente_contesto: None,
                tras_beep_ms: None,
                amd_inicial: None,
            }
        })
        .collect()
}

/// Doubles the campaign's CDRs `times` times; the k-th copy is `k + 1` days later.
fn double(db: &BenchDb, times: u32) -> anyhow::Result<()> {
    const COLUMNS: &str = "campana, numero_id, telefono, intento, uuid, nodo, estado, resultado, \
        causa, amd_resultado, amd_causa, inicio, contestada, fin, billsec, duracion, disposicion, \
        mensaje_ms, teclas, accion, transferida_a, agente_contesto, tras_beep_ms, amd_inicial";
    for k in 1..=times {
        let (uuid, shift): (String, fn(&str, u32) -> String) = match db.backend {
            Backend::Mysql => ("UUID()".to_owned(), |c: &str, k: u32| {
                format!("{c} + INTERVAL {k} DAY")
            }),
            Backend::Sqlite => (
                "lower(hex(randomblob(16)))".to_owned(),
                |c: &str, k: u32| format!("strftime('%Y-%m-%d %H:%M:%f', {c}, '+{k} days')"),
            ),
        };
        let select = COLUMNS
            .replace("uuid,", &format!("{uuid},"))
            .replace("inicio,", &format!("{},", shift("inicio", k)))
            .replace("contestada,", &format!("{},", shift("contestada", k)))
            .replace(" fin,", &format!(" {},", shift("fin", k)));
        sql(
            db,
            &format!("INSERT INTO llamadas ({COLUMNS}) SELECT {select} FROM llamadas"),
        )?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let Some(backend) = common::backend_of_this_process("cdr_export")? else {
        return Ok(());
    };
    let wanted: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROWS);
    let db = BenchDb::create(backend)?;
    let cfg = Args::try_parse_from([
        "bench",
        "--database-url",
        db.url(),
        "--api-listen",
        "127.0.0.1:0",
        "--log-format",
        "text",
    ])?
    .config;
    let result = tokio::runtime::Runtime::new()?.block_on(run(cfg, &db, wanted));
    drop(db);
    result
}

struct Measure {
    rows: u64,
    bytes: u64,
    secs: f64,
    ttfb_ms: f64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
}

/// Streams one export, sampling the process' RSS meanwhile.
async fn export(base: &str, formato: &str) -> anyhow::Result<Measure> {
    let http = reqwest::Client::new();
    let rss_before_kib = status_kib("VmRSS:");
    let peak = Arc::new(AtomicU64::new(rss_before_kib));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut resp = http
        .get(format!(
            "{base}/campana/{CAMPAIGN}/llamadas?formato={formato}"
        ))
        .send()
        .await?;
    if resp.status().as_u16() != 200 {
        bail!("export failed: {}", resp.text().await?);
    }
    let mut ttfb = None;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = resp.chunk().await? {
        ttfb.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    // CSV: a header line and one per CDR; JSON: `[`, one line per CDR, `]`.
    let rows = match formato {
        "csv" => lines - 1,
        _ => lines - 2,
    };
    Ok(Measure {
        rows,
        bytes,
        secs,
        ttfb_ms: ttfb.unwrap_or_default().as_secs_f64() * 1000.0,
        rss_before_kib,
        rss_peak_kib: peak.load(Ordering::Relaxed),
    })
}

async fn run(cfg: discador::config::Config, db: &BenchDb, wanted: u64) -> anyhow::Result<()> {
    let app = discador::app::spawn(cfg).await?;
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.api_addr);
    let r = http
        .post(format!("{base}/campanas/"))
        .json(&serde_json::json!({"nombre": CAMPAIGN}))
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("create failed: {}", r.text().await?);
    }
    let t0 = Instant::now();
    app.store.insert_cdr_rows(&seed_rows()).await?;
    let times = (wanted.div_ceil(SEED) as f64).log2().ceil() as u32;
    double(db, times)?;
    let rows: u64 = sql(db, "SELECT COUNT(*) FROM llamadas")?.parse()?;
    println!(
        "cdr_export [{}]: {rows} CDRs written in {:.1} s",
        db.backend.name(),
        t0.elapsed().as_secs_f64()
    );
    for formato in ["csv", "json"] {
        let m = export(&base, formato).await?;
        if m.rows != rows {
            bail!("{formato}: exported {} of {rows} rows", m.rows);
        }
        println!(
            "  {formato}: {} rows in {:.2} s = {:.0} rows/s, {:.1} MB at {:.1} MB/s, \
             first byte after {:.1} ms; VmRSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB)",
            m.rows,
            m.secs,
            m.rows as f64 / m.secs,
            m.bytes as f64 / 1e6,
            m.bytes as f64 / 1e6 / m.secs,
            m.ttfb_ms,
            m.rss_before_kib as f64 / 1024.0,
            m.rss_peak_kib as f64 / 1024.0,
            m.rss_peak_kib.saturating_sub(m.rss_before_kib) as f64 / 1024.0,
        );
    }
    println!("  VmHWM {:.1} MiB", status_kib("VmHWM:") as f64 / 1024.0);
    app.shutdown().await
}
