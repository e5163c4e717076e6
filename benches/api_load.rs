//! Load benchmark (`make bench`): 1,000,000 numbers streamed through `POST /campana/{nombre}/numeros`,
//! then 1,000 `GET /discador/estado/{nombre}` on that campaign.
//!
//! The app runs in this process against a fresh database (removed at the end) of the backend(s)
//! that `BENCH_BACKEND=mysql|sqlite|both` names (default both; see `common/mod.rs`). The CSV is
//! generated on the fly and sent with chunked transfer encoding, so the client holds one chunk at a
//! time and the process' memory is the server's. Memory is sampled from /proc/self/status every
//! 50 ms during the load (VmRSS) and reported with the high-water mark (VmHWM). With both backends,
//! each runs in a child process of its own, so that neither sees the other's memory.

mod common;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use common::{Backend, BenchDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: discador::config::Config,
}

const ROWS: u64 = 1_000_000;
const ESTADO_REQUESTS: usize = 1_000;
/// Rows per chunk of the request body.
const ROWS_PER_CHUNK: u64 = 2_000;

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

/// Sends the CSV as a chunked HTTP/1.1 request over a raw socket and returns the response body.
async fn upload(addr: std::net::SocketAddr, campaign: &str, rows: u64) -> anyhow::Result<String> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /campana/{campaign}/numeros HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    let mut chunk = Vec::with_capacity(ROWS_PER_CHUNK as usize * 40);
    let send = |chunk: &mut Vec<u8>| {
        let mut framed = Vec::with_capacity(chunk.len() + 16);
        let _ = write!(framed, "{:x}\r\n", chunk.len());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        chunk.clear();
        framed
    };
    chunk.extend_from_slice(b"telefono,cliente\n");
    for i in 0..rows {
        let _ = writeln!(chunk, "+549{:010},cliente {i}", 1_100_000_000 + i);
        if (i + 1) % ROWS_PER_CHUNK == 0 {
            sock.write_all(&send(&mut chunk)).await?;
        }
    }
    if !chunk.is_empty() {
        sock.write_all(&send(&mut chunk)).await?;
    }
    sock.write_all(b"0\r\n\r\n").await?;
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (status_line, rest) = text.split_once("\r\n").context("no status line")?;
    if !status_line.contains(" 200 ") {
        bail!("upload failed: {text}");
    }
    Ok(rest
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let Some(backend) = common::backend_of_this_process("api_load")? else {
        return Ok(());
    };
    let rows: u64 = std::env::var("BENCH_ROWS")
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
        // One client measuring latency, not the per-client rate limit.
        "--api-limite-rps",
        "1000000",
        "--api-limite-rafaga",
        "1000000",
    ])?
    .config;
    let result = tokio::runtime::Runtime::new()?.block_on(run(cfg, rows, backend));
    drop(db);
    result
}

async fn run(cfg: discador::config::Config, rows: u64, backend: Backend) -> anyhow::Result<()> {
    let app = discador::app::spawn(cfg).await?;
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.api_addr);
    let r = http
        .post(format!("{base}/campanas/"))
        .json(&serde_json::json!({"nombre": "BENCH"}))
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("create failed: {}", r.text().await?);
    }

    let rss_before = status_kib("VmRSS:");
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let body = upload(app.api_addr, "BENCH", rows).await?;
    let load_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let reply: serde_json::Value = serde_json::from_str(&body).context("upload reply")?;
    if reply["insertados"].as_u64() != Some(rows) {
        bail!("expected {rows} inserted, got {reply}");
    }

    let mut lat = Vec::with_capacity(ESTADO_REQUESTS);
    let url = format!("{base}/discador/estado/BENCH");
    for _ in 0..ESTADO_REQUESTS {
        let t = Instant::now();
        let r = http.get(&url).send().await?;
        let status = r.status().as_u16();
        let body = r.bytes().await?;
        lat.push(t.elapsed());
        if status != 200 {
            bail!("estado failed: {}", String::from_utf8_lossy(&body));
        }
    }
    let last: serde_json::Value =
        serde_json::from_slice(&http.get(&url).send().await?.bytes().await?)?;
    lat.sort_unstable();

    println!("api_load [{}]: {rows} rows", backend.name());
    println!(
        "  load: {load_secs:.2} s ({:.0} rows/s), reply insertados={} duplicados={} invalidos={}",
        rows as f64 / load_secs,
        reply["insertados"],
        reply["duplicados"],
        reply["invalidos"]
    );
    println!(
        "  memory: VmRSS before load {} MiB, peak during load {} MiB, VmHWM {} MiB",
        rss_before / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        status_kib("VmHWM:") / 1024
    );
    println!(
        "  GET /discador/estado x{ESTADO_REQUESTS}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (total={})",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        last["estadisticas"]["total"]
    );
    app.shutdown().await
}
