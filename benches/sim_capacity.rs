//! How many originates per second the simulator sustains on this machine: the ceiling of every
//! other benchmark that dials it.
//!
//! One inbound ESL connection pipelines `bgapi originate` commands (at most `IN_FLIGHT` calls
//! unfinished at once) against a simulator with `--time-scale 0.001`, the last-digit outcome rule
//! (all ten outcomes, answered calls going to the `humano` extension) and limits high enough not
//! to refuse anything. The figure is completed originates (BACKGROUND_JOB received) per second of
//! wall time. Run: `cargo bench --bench sim_capacity` (optionally `SIM_BENCH_CALLS=50000`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use uuid::Uuid;

use discador::config::Secret;
use discador::esl::{Auth, BgApi, Command, EslCodec, EventFormat, FrameKind, Subscribe};
use discador::sim::{SimConfig, Simulator};

/// Calls allowed unfinished at once (a dialer's channel limit).
const IN_FLIGHT: usize = 2_000;

fn main() -> Result<()> {
    let calls: usize = std::env::var("SIM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(calls))
}

async fn run(calls: usize) -> Result<()> {
    let cfg = SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        time_scale: 0.001,
        sps: 1_000_000,
        max_sessions: 1_000_000,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg).await?;
    let stream = TcpStream::connect(sim.addr).await?;
    stream.set_nodelay(true)?;
    let framed = Framed::new(stream, EslCodec::new());
    let (mut tx, mut rx) = framed.split();

    // Handshake and subscription, done in lock-step before pipelining.
    let expect_ok =
        |f: Option<Result<discador::esl::Frame, discador::esl::EslError>>| -> Result<()> {
            match f {
                Some(Ok(f)) if f.kind() == FrameKind::AuthRequest || f.is_ok_reply() => Ok(()),
                other => bail!("handshake failed: {other:?}"),
            }
        };
    expect_ok(rx.next().await)?;
    tx.send(Command::from(Auth::new(&Secret::new("ClueCon"))?))
        .await?;
    expect_ok(rx.next().await)?;
    tx.send(Command::from(Subscribe::new(
        EventFormat::Plain,
        &["BACKGROUND_JOB"],
    )?))
    .await?;
    expect_ok(rx.next().await)?;

    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let writer_slots = Arc::clone(&slots);
    let writer = tokio::spawn(async move {
        for i in 0..calls {
            let permit = writer_slots.acquire().await?;
            permit.forget(); // returned by the reader when the job completes
            let cmd = format!(
                "originate {{origination_uuid={},originate_timeout=30,discador_campana=BENCH}}sofia/gateway/gw_pstn/34600{:06} humano XML discador",
                Uuid::new_v4(),
                i
            );
            tx.send(Command::from(BgApi::new(&cmd, Uuid::new_v4())?))
                .await?;
        }
        anyhow::Ok(tx)
    });

    let (mut replies, mut jobs, mut answered) = (0usize, 0usize, 0usize);
    while jobs < calls {
        let frame = match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
            Ok(Some(f)) => f?,
            Ok(None) => bail!("simulator closed the connection"),
            Err(_) => bail!("stalled after {jobs} jobs"),
        };
        match frame.kind() {
            FrameKind::CommandReply => replies += 1,
            FrameKind::EventPlain => {
                let ev = frame.event()?;
                if ev.name() == Some("BACKGROUND_JOB") {
                    jobs += 1;
                    if ev.body().is_some_and(|b| b.starts_with("+OK")) {
                        answered += 1;
                    }
                    slots.add_permits(1);
                }
            }
            _ => {}
        }
    }
    let elapsed = start.elapsed();
    let _tx = writer.await??;
    // Let the answered calls finish their talk time before counting them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.live_calls() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finished = sim.finished().len();
    let rate = jobs as f64 / elapsed.as_secs_f64();
    println!("## Simulator capacity");
    println!("calls: {calls} (bgapi replies {replies}, jobs {jobs}, answered {answered}, finished {finished})");
    println!("in flight: {IN_FLIGHT}, time-scale 0.001, 2 tokio workers");
    println!("elapsed: {:.3} s", elapsed.as_secs_f64());
    println!("originates/s sustained: {rate:.0}");
    sim.shutdown().await;
    Ok(())
}
