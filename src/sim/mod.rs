//! `discador sim`: a FreeSWITCH 1.10 stand-in that speaks real ESL on both sides, so the dialer,
//! its tests, `make demo` and the benchmarks run without a switch.
//!
//! * **Inbound ESL** on `--listen` (default `127.0.0.1:8021`): `auth`, `api`, `bgapi` (with the
//!   client's `Job-UUID`), `event plain|json …`, `filter`, `nixevent`, `noevents`, `exit`; events
//!   carry FreeSWITCH's header names and order ([`channel`]).
//! * **Calls**: `originate {vars}<dial string> <exten> [XML] [<context>]` or `… &app(args)`
//!   ([`originate`]). Each call fires CHANNEL_CREATE, CHANNEL_PROGRESS (ringing),
//!   CHANNEL_ANSWER, CHANNEL_HANGUP, CHANNEL_HANGUP_COMPLETE (with `variable_billsec`,
//!   `variable_duration`, the `{}` vars, `amd_*` when set) and CHANNEL_DESTROY; a failed call fires
//!   CREATE → HANGUP → HANGUP_COMPLETE with its cause (plus PROGRESS when it rang). A bgapi
//!   originate's BACKGROUND_JOB body is `+OK <uuid>\n` once answered, `-ERR <CAUSE>\n` on failure.
//! * **Limits** ([`limits`]): `--sessions-per-second` (default 30) and `--max-sessions` (default
//!   1000) exactly as FreeSWITCH applies them; an originate over either gets
//!   `-ERR DESTINATION_OUT_OF_ORDER` at once and no channel ([`limits::OVER_LIMIT_CAUSE`]).
//! * **Socket leg** ([`call::socket_leg`]): an answered call whose target is `discador XML discador`
//!   (or `&socket(host:port async full)`) connects to `--socket` (default `127.0.0.1:8084`) and
//!   obeys the controller.
//! * **Faults** ([`config::Faults`]): drop inbound connections after N events, delay replies,
//!   garbage frames, refuse auth.
//! * **Originate log** ([`originate_log`]): every originate received, with a microsecond
//!   timestamp, in memory and in `--originate-log FILE` (CSV).
//!
//! # Outcomes
//!
//! By default the destination number's **last digit** decides (a test picks an outcome by picking
//! a number):
//!
//! | last digit | outcome | what happens |
//! |---|---|---|
//! | `0` | busy | `USER_BUSY` after the reject time |
//! | `1` | no answer | rings until `originate_timeout`, then `NO_ANSWER` |
//! | `2` | invalid | `UNALLOCATED_NUMBER` immediately |
//! | `3` | answering machine | answers; `amd` → `MACHINE`; `avmd_start` → CUSTOM `avmd::beep` |
//! | `4` | rejected | `CALL_REJECTED` after the reject time |
//! | `5` | network failure | `NORMAL_TEMPORARY_FAILURE` after the reject time |
//! | `6`, `7`, `8` | human | answers; `amd` → `HUMAN` |
//! | `9` | human, unclear | answers; `amd` → `NOTSURE` |
//!
//! A destination that is not `+` and digits gets `INVALID_NUMBER_FORMAT` (a channel is created,
//! as when a carrier answers 484). `error/<CAUSE>` dial strings fail at once with that cause.
//! With `--mix humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2` (keys also
//! `dudoso`, `rechazada`), the outcome is drawn from the weights, deterministically per number
//! and `--seed`.
//!
//! After answer the originate target runs: `discador` → the socket leg; `humano` → talk time then
//! `NORMAL_CLEARING`; `maquina` → the playback time then `NORMAL_CLEARING`; any other extension →
//! `NO_ROUTE_DESTINATION`; `&park()` → until killed or the max call time (`ALLOTTED_TIMEOUT`);
//! `&hangup(CAUSE)`; other apps → the playback time. The same extension rules apply to a
//! `transfer` sent by the controller.
//!
//! # Times
//!
//! Ring, reject, talk, AMD, playback, beep and max-call times ([`config::Timings`]) and
//! `originate_timeout` are multiplied by `--time-scale` (e.g. `0.01`). Sessions per second is a
//! real-time limit and is never scaled.

//! # Not simulated
//!
//! Media; multi-leg dial strings (`,` / `|`: refused with `CHAN_NOT_IMPLEMENTED`); loopback's
//! second leg; CHANNEL_STATE / CHANNEL_CALLSTATE / CHANNEL_OUTGOING events; `sendmsg execute`
//! from an *inbound* connection (only `hangup` acts); `text/event-xml` (sent as plain); the
//! BACKGROUND_JOB of a `bgapi` issued on an outbound socket is published to inbound listeners
//! only.

pub mod api;
pub mod bus;
pub mod call;
pub mod channel;
pub mod config;
pub mod inbound;
pub mod limits;
pub mod originate;
pub mod originate_log;
pub mod outcome;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Faults, SimConfig, Timings};
pub use limits::OVER_LIMIT_CAUSE;
pub use originate_log::OriginateRecord;
pub use outcome::{AmdVerdict, Mix, Outcome, OutcomeRule};
pub use state::FinishedCall;

use state::{lock, Shared};

/// How long `SimHandle::shutdown` waits for calls and connections to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Entry point of the simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `cfg.listen` (use port 0 in tests) and starts serving. The handle reports the bound
    /// address and gives in-process access to what the simulator saw.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("no se pudo escuchar en {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let log = originate_log::OriginateLog::open(cfg.originate_log.as_deref())?;
        let shared = Arc::new(Shared::new(cfg, log, api::RUNNER));
        let task = tokio::spawn(accept_loop(Arc::clone(&shared), listener));
        shared.spawn(heartbeat(Arc::clone(&shared)));
        tracing::info!(%addr, socket = %shared.cfg.socket_addr, sps = shared.cfg.sps,
            max_sessions = shared.cfg.max_sessions, time_scale = shared.cfg.time_scale,
            "FreeSWITCH simulator listening");
        Ok(SimHandle { addr, shared, task })
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let s = Arc::clone(&shared);
                    shared.spawn(inbound::serve(s, stream));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Fires HEARTBEAT every `heartbeat_secs` (real time) until shutdown.
async fn heartbeat(shared: Arc<Shared>) {
    if shared.cfg.heartbeat_secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(shared.cfg.heartbeat_secs));
    tick.tick().await; // the first tick is immediate; FreeSWITCH's first heartbeat is not
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = tick.tick() => shared.bus.fire(api::heartbeat_event(&shared)),
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    /// The inbound ESL address actually bound.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// Every originate received so far, in arrival order (the last [`state::MEMORY_CAP`]).
    pub fn originates(&self) -> Vec<OriginateRecord> {
        self.shared.log.snapshot()
    }

    /// Waits until at least `n` calls have finished; false if `timeout` passes first.
    pub async fn wait_finished(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.shared.finished).len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Channels alive now.
    pub fn live_calls(&self) -> usize {
        self.shared.live_calls()
    }

    /// Calls that have ended, in the order they ended (the last [`state::MEMORY_CAP`]).
    pub fn finished(&self) -> Vec<FinishedCall> {
        lock(&self.shared.finished).iter().cloned().collect()
    }

    /// Closes every inbound ESL connection abruptly (as a network failure would). Calls go on.
    pub fn drop_connections(&self) {
        self.shared.drop_gen.send_modify(|g| *g += 1);
    }

    /// The simulator's `Core-UUID`.
    pub fn core_uuid(&self) -> &str {
        &self.shared.core.core_uuid
    }

    /// Stops accepting, hangs up every call (`SYSTEM_SHUTDOWN`), closes connections and waits for
    /// every task (at most a few seconds, then the stragglers are aborted).
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        let _ = self.task.await;
        let mut tasks = self.shared.take_tasks();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("simulator tasks did not stop in time; aborting them");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// `discador sim`: runs until `shutdown` is cancelled.
pub async fn run(cfg: SimConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let handle = Simulator::start(cfg).await?;
    shutdown.cancelled().await;
    handle.shutdown().await;
    Ok(())
}
