//! The inbound ESL client: one persistent, authenticated connection to FreeSWITCH's event socket.
//!
//! A supervisor task owns the connection: it connects, authenticates, subscribes, then runs the
//! connection until it drops, and reconnects with exponential back-off (re-subscribing each time).
//! Callers never touch the socket: they hand a command to the current connection's task and wait for
//! its reply. Replies are matched in send order, because FreeSWITCH answers the commands of one
//! connection in order. A command issued while there is no connection fails at once with
//! [`EslError::NotConnected`]; it is never queued for a later connection, so nothing is sent twice.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use super::codec::EslCodec;
use super::command::{Api, Auth, BgApi, Command, EventFormat, Subscribe};
use super::error::EslError;
use super::event::Event;
use super::frame::{Frame, FrameKind};
use crate::secret::Secret;

/// Capacity of the event fan-out: a reader that falls this far behind gets `Lagged`.
pub const EVENT_CAPACITY: usize = 65_536;

/// Commands waiting to be written to the current connection.
const REQUEST_QUEUE: usize = 4_096;
/// A connection whose oldest command has had no reply for this many command timeouts is taken for
/// dead (a hung FreeSWITCH keeps the socket open but answers nothing): it is dropped, so that the
/// client reconnects and the dialer reconciles, instead of timing out every command forever.
const HUNG_AFTER_TIMEOUTS: u32 = 3;

/// How to reach and use FreeSWITCH's event socket.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// `host:port` of the event socket.
    pub addr: String,
    /// Event socket password; never logged.
    pub password: Secret,
    /// Events to subscribe to (e.g. `CHANNEL_ANSWER`). `BACKGROUND_JOB` is always added.
    pub events: Vec<String>,
    /// Event serialization asked of FreeSWITCH (plain or json).
    pub format: EventFormat,
    /// First reconnection delay; doubled after each failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest wait for a reply (and for connect/auth steps).
    pub command_timeout: Duration,
}

/// Connection state, watchable for `/health` and for the dialer (which pauses while not connected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Trying to connect (first time or after a drop).
    Connecting,
    /// Authenticated and subscribed. `generation` counts successful connections (1, 2, …): a new
    /// generation means events may have been missed and live calls must be reconciled.
    Connected { generation: u64 },
    /// FreeSWITCH refused the password. Final: no retry loop hammering FreeSWITCH.
    AuthFailed,
    /// Not connected; `reason` says why (never contains the password).
    Disconnected { reason: String },
}

impl ConnState {
    /// True when commands can be sent.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnState::Connected { .. })
    }
}

/// Outcome of a background job, from the BACKGROUND_JOB event's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    /// `+OK <text>`: the text after `+OK ` (for originate, the new channel's uuid). A body with no
    /// `+OK`/`-` prefix (e.g. `bgapi status`) is returned whole.
    Ok(String),
    /// `-ERR <cause>`: the cause after `-ERR ` (e.g. `USER_BUSY`, `NO_ANSWER`). Other `-` bodies
    /// (`-USAGE: …`) are returned whole.
    Err(String),
}

impl JobResult {
    /// Reads a BACKGROUND_JOB body.
    pub fn from_body(body: &str) -> JobResult {
        let body = body.trim_end_matches(['\r', '\n']);
        if let Some(rest) = body.strip_prefix("+OK") {
            JobResult::Ok(rest.trim().to_owned())
        } else if let Some(rest) = body.strip_prefix("-ERR") {
            JobResult::Err(rest.trim().to_owned())
        } else if body.starts_with('-') {
            JobResult::Err(body.trim().to_owned())
        } else {
            JobResult::Ok(body.trim().to_owned())
        }
    }
}

/// A background job accepted by FreeSWITCH: a future that resolves with its result, or with
/// [`EslError::Disconnected`] if the connection drops before the BACKGROUND_JOB event arrives.
#[derive(Debug)]
pub struct BgJob {
    job_uuid: Uuid,
    rx: oneshot::Receiver<JobResult>,
}

impl BgJob {
    /// The `Job-UUID` we sent.
    pub fn job_uuid(&self) -> Uuid {
        self.job_uuid
    }
}

impl Future for BgJob {
    type Output = Result<JobResult, EslError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| EslError::Disconnected))
    }
}

/// A command handed to the connection task.
struct Request {
    cmd: Command,
    reply: oneshot::Sender<Frame>,
    /// For bgapi: where to deliver the BACKGROUND_JOB result.
    job: Option<(Uuid, oneshot::Sender<JobResult>)>,
}

/// What the supervisor and the clients share.
struct Shared {
    state: watch::Sender<ConnState>,
    events: broadcast::Sender<Arc<Event>>,
    /// The live connection's request queue; `None` while disconnected.
    session: Mutex<Option<mpsc::Sender<Request>>>,
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, Option<mpsc::Sender<Request>>> {
        // A poisoned lock only means another thread panicked while holding it; the Option inside
        // is still meaningful.
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// Cancels the supervisor when the last clone of the client is dropped.
    _guard: DropGuard,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    command_timeout: Duration,
}

/// Handle to the inbound connection. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct InboundClient {
    inner: Arc<Inner>,
}

impl InboundClient {
    /// Spawns the supervisor (connect, auth, subscribe, reconnect). Must be called inside a tokio
    /// runtime. Returns at once; watch [`InboundClient::state`] or use
    /// [`InboundClient::wait_connected`].
    pub fn start(cfg: InboundConfig) -> InboundClient {
        let (state, _) = watch::channel(ConnState::Connecting);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(Shared {
            state,
            events,
            session: Mutex::new(None),
        });
        let cancel = CancellationToken::new();
        let command_timeout = cfg.command_timeout;
        let handle = tokio::spawn(supervise(shared.clone(), cfg, cancel.clone()));
        InboundClient {
            inner: Arc::new(Inner {
                shared,
                _guard: cancel.clone().drop_guard(),
                cancel,
                supervisor: Mutex::new(Some(handle)),
                command_timeout,
            }),
        }
    }

    /// The connection state.
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.inner.shared.state.subscribe()
    }

    /// Waits until connected. `Err(AuthFailed)` if the password was refused, `Err(Timeout)` after
    /// `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), EslError> {
        let mut rx = self.state();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|s| matches!(s, ConnState::Connected { .. } | ConnState::AuthFailed))
                .await
                .map(|s| *s == ConnState::AuthFailed)
        })
        .await;
        match waited {
            Err(_) => Err(EslError::Timeout(timeout)),
            Ok(Err(_)) => Err(EslError::Shutdown),
            Ok(Ok(true)) => Err(EslError::AuthFailed),
            Ok(Ok(false)) => Ok(()),
        }
    }

    /// A new reader of every event received (BACKGROUND_JOB included). Each reader has its own
    /// queue of [`EVENT_CAPACITY`]; a slow reader gets `RecvError::Lagged(n)`.
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.shared.events.subscribe()
    }

    /// Runs `api <cmd>` and returns the `api/response` body. A `-ERR …` body is `Ok(text)`: the
    /// caller knows what the command means.
    pub async fn api(&self, cmd: &str) -> Result<String, EslError> {
        let frame = self.request(Api::new(cmd)?.into(), None).await?;
        match frame.kind() {
            FrameKind::ApiResponse => Ok(frame.body_str()?.to_owned()),
            _ => Err(unexpected(&frame)),
        }
    }

    /// Runs `bgapi <cmd>` with `Job-UUID: <job_uuid>`. Returns once FreeSWITCH accepted the job;
    /// the returned [`BgJob`] resolves with the BACKGROUND_JOB result.
    pub async fn bgapi(&self, cmd: &str, job_uuid: Uuid) -> Result<BgJob, EslError> {
        let command = BgApi::new(cmd, job_uuid)?;
        let (jtx, jrx) = oneshot::channel();
        let frame = self.request(command.into(), Some((job_uuid, jtx))).await?;
        if frame.kind() != FrameKind::CommandReply {
            return Err(unexpected(&frame));
        }
        if !frame.is_ok_reply() {
            return Err(EslError::CommandFailed(
                frame.reply_text().unwrap_or("").to_owned(),
            ));
        }
        if let Some(echoed) = frame.header("Job-UUID") {
            if echoed != job_uuid.to_string() {
                return Err(EslError::UnexpectedReply(
                    "bgapi reply carries another Job-UUID".into(),
                ));
            }
        }
        Ok(BgJob { job_uuid, rx: jrx })
    }

    /// Sends any command and returns its reply frame (`command/reply` or `api/response`), for
    /// commands without a dedicated method (`filter`, `nixevent`, …).
    pub async fn command(&self, cmd: Command) -> Result<Frame, EslError> {
        self.request(cmd, None).await
    }

    /// Stops the supervisor, says `exit` to FreeSWITCH if connected, and waits for the task to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let handle = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            if let Err(e) = h.await {
                warn!(error = %e, "ESL supervisor task ended abnormally");
            }
        }
    }

    async fn request(
        &self,
        cmd: Command,
        job: Option<(Uuid, oneshot::Sender<JobResult>)>,
    ) -> Result<Frame, EslError> {
        let tx = self
            .inner
            .shared
            .session()
            .clone()
            .ok_or(EslError::NotConnected)?;
        let (reply, rx) = oneshot::channel();
        let t = self.inner.command_timeout;
        // One deadline for queueing the command and for its reply.
        let exchange = async {
            tx.send(Request { cmd, reply, job })
                .await
                .map_err(|_| EslError::NotConnected)?;
            rx.await.map_err(|_| EslError::Disconnected)
        };
        match tokio::time::timeout(t, exchange).await {
            Err(_) => Err(EslError::Timeout(t)),
            Ok(r) => r,
        }
    }
}

fn unexpected(frame: &Frame) -> EslError {
    EslError::UnexpectedReply(format!(
        "got {} instead of the expected reply",
        frame
            .content_type()
            .unwrap_or("a frame without Content-Type")
    ))
}

/// Connect / run / back off, until cancelled or the password is refused.
async fn supervise(shared: Arc<Shared>, cfg: InboundConfig, cancel: CancellationToken) {
    let mut generation = 0u64;
    let mut backoff = cfg.backoff_min;
    loop {
        shared.state.send_replace(ConnState::Connecting);
        let mut connected = false;
        // Biased towards the connection so that, once connected, it sees the cancellation itself
        // and says `exit` before the socket is dropped.
        let ended = tokio::select! {
            biased;
            e = run_connection(&shared, &cfg, generation + 1, &mut connected, &cancel) => e,
            _ = cancel.cancelled() => EslError::Shutdown,
        };
        // No new command may reach a dead connection: clear the slot before anything else.
        shared.session().take();
        if connected {
            generation += 1;
            backoff = cfg.backoff_min;
        }
        match ended {
            EslError::AuthFailed => {
                error!(addr = %cfg.addr, "FreeSWITCH refused the event socket password; not retrying");
                shared.state.send_replace(ConnState::AuthFailed);
                return;
            }
            EslError::Shutdown => {
                info!(addr = %cfg.addr, "ESL client shut down");
                shared.state.send_replace(ConnState::Disconnected {
                    reason: "shut down".into(),
                });
                return;
            }
            e => {
                warn!(addr = %cfg.addr, error = %e, retry_in = ?backoff, "ESL connection lost");
                shared.state.send_replace(ConnState::Disconnected {
                    reason: e.to_string(),
                });
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                shared.state.send_replace(ConnState::Disconnected { reason: "shut down".into() });
                return;
            }
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(cfg.backoff_max);
    }
}

type Conn = Framed<TcpStream, EslCodec>;

async fn next_frame(conn: &mut Conn, t: Duration) -> Result<Frame, EslError> {
    match tokio::time::timeout(t, conn.next()).await {
        Err(_) => Err(EslError::Timeout(t)),
        Ok(None) => Err(EslError::Disconnected),
        Ok(Some(r)) => r,
    }
}

/// Next `command/reply`, skipping anything else (FreeSWITCH sends nothing else at this stage, but
/// a stray frame must not be mistaken for the reply).
async fn next_reply(conn: &mut Conn, t: Duration) -> Result<Frame, EslError> {
    loop {
        let f = next_frame(conn, t).await?;
        match f.kind() {
            FrameKind::CommandReply => return Ok(f),
            FrameKind::DisconnectNotice | FrameKind::RudeRejection => {
                return Err(EslError::Disconnected)
            }
            _ => {
                debug!(content_type = ?f.content_type(), "ESL: skipping frame while waiting for a reply")
            }
        }
    }
}

async fn send(conn: &mut Conn, cmd: &Command, t: Duration) -> Result<(), EslError> {
    match tokio::time::timeout(t, conn.send(cmd)).await {
        Err(_) => Err(EslError::Timeout(t)),
        Ok(r) => r,
    }
}

/// One connection's life: returns why it ended. Long on purpose: one `select!` loop that owns the
/// socket, the pending replies in order and the job map, so that no lock is shared with callers.
async fn run_connection(
    shared: &Shared,
    cfg: &InboundConfig,
    generation: u64,
    connected: &mut bool,
    cancel: &CancellationToken,
) -> EslError {
    let t = cfg.command_timeout;
    let stream = match tokio::time::timeout(t, TcpStream::connect(&cfg.addr)).await {
        Err(_) => return EslError::Timeout(t),
        Ok(Err(e)) => return EslError::Io(e),
        Ok(Ok(s)) => s,
    };
    // Latency of small commands matters more than packet count.
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, EslCodec::new());
    if let Err(e) = handshake(&mut conn, cfg).await {
        return e;
    }

    let (tx, mut rx) = mpsc::channel::<Request>(REQUEST_QUEUE);
    *shared.session() = Some(tx);
    *connected = true;
    shared
        .state
        .send_replace(ConnState::Connected { generation });
    info!(addr = %cfg.addr, generation, "ESL connected and subscribed");

    // Reply slots in send order, with the job uuid of a bgapi (to forget it on `-ERR`).
    let mut pending: VecDeque<(oneshot::Sender<Frame>, Option<String>)> = VecDeque::new();
    // When each pending command was sent, oldest first (same order as `pending`).
    let mut sent_at: VecDeque<tokio::time::Instant> = VecDeque::new();
    let hung_after = t * HUNG_AFTER_TIMEOUTS;
    let mut jobs: HashMap<String, oneshot::Sender<JobResult>> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Polite goodbye; the socket is dropped right after either way.
                let _ = send(&mut conn, &Command::Exit, t).await;
                return EslError::Shutdown;
            }
            req = rx.recv() => {
                let Some(req) = req else { return EslError::Disconnected };
                let job_key = req.job.map(|(uuid, jtx)| {
                    let key = uuid.to_string();
                    jobs.insert(key.clone(), jtx);
                    key
                });
                if let Err(e) = send(&mut conn, &req.cmd, t).await {
                    return e;
                }
                debug!(verb = req.cmd.verb(), "ESL command sent");
                pending.push_back((req.reply, job_key));
                sent_at.push_back(tokio::time::Instant::now());
            }
            _ = hung_deadline(&sent_at, hung_after) => {
                warn!(addr = %cfg.addr, waited = ?hung_after, "FreeSWITCH stopped answering; dropping the connection");
                return EslError::Timeout(hung_after);
            }
            frame = conn.next() => {
                let frame = match frame {
                    None => return EslError::Disconnected,
                    Some(Err(e)) => return e,
                    Some(Ok(f)) => f,
                };
                match frame.kind() {
                    FrameKind::CommandReply | FrameKind::ApiResponse => {
                        sent_at.pop_front();
                        let Some((slot, job_key)) = pending.pop_front() else {
                            warn!("ESL reply with no command waiting for it; ignored");
                            continue;
                        };
                        if let Some(key) = job_key {
                            if frame.kind() == FrameKind::CommandReply && !frame.is_ok_reply() {
                                jobs.remove(&key);
                            }
                        }
                        // The caller may have timed out and gone; that is fine.
                        let _ = slot.send(frame);
                    }
                    FrameKind::EventPlain | FrameKind::EventJson => match frame.event() {
                        Ok(event) => dispatch_event(shared, &mut jobs, event),
                        Err(e) => warn!(error = %e, "ESL event could not be parsed; skipped"),
                    },
                    FrameKind::DisconnectNotice | FrameKind::RudeRejection => {
                        return EslError::Disconnected;
                    }
                    kind => debug!(?kind, "ESL frame ignored"),
                }
            }
        }
    }
}

/// Resolves when the oldest unanswered command has waited `hung_after`; never while none waits.
async fn hung_deadline(sent_at: &VecDeque<tokio::time::Instant>, hung_after: Duration) {
    match sent_at.front() {
        Some(oldest) => tokio::time::sleep_until(*oldest + hung_after).await,
        None => std::future::pending().await,
    }
}

/// Greeting, auth, subscription.
async fn handshake(conn: &mut Conn, cfg: &InboundConfig) -> Result<(), EslError> {
    let t = cfg.command_timeout;
    let greeting = next_frame(conn, t).await?;
    match greeting.kind() {
        FrameKind::AuthRequest => {}
        FrameKind::RudeRejection => {
            return Err(EslError::CommandFailed(
                "FreeSWITCH rejected the connection (ACL)".into(),
            ))
        }
        _ => return Err(unexpected(&greeting)),
    }
    send(conn, &Auth::new(&cfg.password)?.into(), t).await?;
    if !next_reply(conn, t).await?.is_ok_reply() {
        return Err(EslError::AuthFailed);
    }
    let mut names: Vec<&str> = cfg.events.iter().map(String::as_str).collect();
    if !names.iter().any(|n| *n == "BACKGROUND_JOB" || *n == "ALL") {
        names.push("BACKGROUND_JOB");
    }
    send(conn, &Subscribe::new(cfg.format, &names)?.into(), t).await?;
    let reply = next_reply(conn, t).await?;
    if !reply.is_ok_reply() {
        return Err(EslError::CommandFailed(format!(
            "event subscription refused: {}",
            reply.reply_text().unwrap_or("")
        )));
    }
    Ok(())
}

fn dispatch_event(
    shared: &Shared,
    jobs: &mut HashMap<String, oneshot::Sender<JobResult>>,
    event: Event,
) {
    if event.name() == Some("BACKGROUND_JOB") {
        if let Some(tx) = event.job_uuid().and_then(|j| jobs.remove(j)) {
            let _ = tx.send(JobResult::from_body(event.body().unwrap_or("")));
        }
    }
    // No reader is not an error: events are only interesting to whoever listens.
    let _ = shared.events.send(Arc::new(event));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_results() {
        assert_eq!(
            JobResult::from_body("+OK 7f4db78a-17d7-11dd-b7a0-db4edd065621\n"),
            JobResult::Ok("7f4db78a-17d7-11dd-b7a0-db4edd065621".into())
        );
        assert_eq!(
            JobResult::from_body("-ERR USER_BUSY\n"),
            JobResult::Err("USER_BUSY".into())
        );
        assert_eq!(
            JobResult::from_body("-USAGE: <uuid>\n"),
            JobResult::Err("-USAGE: <uuid>".into())
        );
        assert_eq!(
            JobResult::from_body("UP 0 years\n"),
            JobResult::Ok("UP 0 years".into())
        );
    }
}
