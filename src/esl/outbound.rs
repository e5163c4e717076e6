//! The outbound-socket server: FreeSWITCH's `socket` dialplan application connects to us, one TCP
//! connection per call, and we drive the call with `sendmsg`.
//!
//! Every read and write of a session is bounded by `idle_timeout`, so a silent or stuck peer cannot
//! hold a task forever, and every wait for the call ends when the channel hangs up
//! ([`EslError::HungUp`]): the real switch keeps a lingering socket open after the hangup and
//! answers `+OK` to commands that will never run, so nothing may wait for them.
//!
//! The number of live sessions is capped. Over the cap a connection is still answered with
//! `connect`, the call is hung up (`SWITCH_CONGESTION`) and the session left with `exit`. Neither
//! closing the socket nor a bare `exit` will do: in async mode the `socket` application parks the
//! call *after* `connect` and marks it controlled, so a listener that is already gone by then
//! leaves the called party parked until they hang up (seen on FreeSWITCH 1.10.12, for a close
//! before `connect` and for an `exit` right after it; `mod_event_socket.c`, `socket_function`).
//! A hangup sent with `sendmsg` waits on the session's queue and is obeyed by the park loop.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::codec::EslCodec;

/// The hangup cause of a call answered while every outbound session is taken: the switch side of
/// the dialer is congested (Q.850 42). The call was answered and not delivered, so the tracker
/// counts it as an interrupted attempt and dials the number again.
pub const OVER_CAP_CAUSE: &str = "SWITCH_CONGESTION";
use super::command::{
    Api, Command, EventFormat, Linger, MyEvents, SendMsg, Subscribe, UnicastTransport,
};
use super::error::EslError;
use super::event::Event;
use super::frame::{Frame, FrameKind};

/// Events kept for [`OutboundSession::next_event`] while waiting for a reply; beyond this the
/// oldest are dropped (a peer flooding events must not grow memory without bound).
const MAX_QUEUED_EVENTS: usize = 10_000;

/// Limits of the server.
#[derive(Clone, Debug)]
pub struct OutboundConfig {
    /// Most calls controlled at once; more connections are refused (closed).
    pub max_sessions: usize,
    /// Longest silence tolerated on any await of a session.
    pub idle_timeout: Duration,
}

/// Accepts FreeSWITCH's outbound connections and runs a handler per call.
pub struct OutboundServer {
    listener: TcpListener,
    cfg: OutboundConfig,
}

impl OutboundServer {
    /// Binds the listening socket; returns the server and the bound address (useful with port 0).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        cfg: OutboundConfig,
    ) -> std::io::Result<(OutboundServer, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((OutboundServer { listener, cfg }, local))
    }

    /// Serves until `shutdown` is cancelled. Each accepted connection gets the `connect` handshake,
    /// then `handler(session)`. On shutdown, running sessions get `idle_timeout` to finish and are
    /// then aborted, so no task outlives this call.
    pub async fn run<F, Fut>(self, handler: F, shutdown: CancellationToken)
    where
        F: Fn(OutboundSession) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let permits = Arc::new(Semaphore::new(self.cfg.max_sessions));
        let mut tasks: JoinSet<()> = JoinSet::new();
        info!(
            max_sessions = self.cfg.max_sessions,
            "outbound socket server running"
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done {
                        warn!(error = %e, "outbound session task failed");
                    }
                }
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // E.g. out of file descriptors: do not spin.
                            warn!(error = %e, "outbound accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        warn!(%peer, max_sessions = self.cfg.max_sessions,
                              "outbound session cap reached; hanging the call up");
                        let idle = self.cfg.idle_timeout;
                        tasks.spawn(async move {
                            match OutboundSession::establish(stream, peer, idle).await {
                                Ok(mut session) => {
                                    if let Err(e) = session.hangup(OVER_CAP_CAUSE).await {
                                        warn!(%peer, error = %e, "over the cap: hangup not sent");
                                    }
                                    let _ = session.exit().await;
                                }
                                Err(e) => warn!(%peer, error = %e, "outbound connect handshake failed"),
                            }
                        });
                        continue;
                    };
                    let handler = handler.clone();
                    let idle = self.cfg.idle_timeout;
                    tasks.spawn(async move {
                        let _permit = permit;
                        match OutboundSession::establish(stream, peer, idle).await {
                            Ok(session) => {
                                debug!(%peer, uuid = session.uuid(), "outbound session started");
                                handler(session).await;
                            }
                            Err(e) => warn!(%peer, error = %e, "outbound connect handshake failed"),
                        }
                    });
                }
            }
        }
        let idle = self.cfg.idle_timeout;
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(idle, drain).await.is_err() {
            warn!(
                left = tasks.len(),
                "aborting outbound sessions still running at shutdown"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        info!("outbound socket server stopped");
    }
}

/// One call under our control.
pub struct OutboundSession {
    conn: Framed<TcpStream, EslCodec>,
    peer: SocketAddr,
    /// Our end of the connection: the address the switch reaches this service at.
    local: SocketAddr,
    channel_data: Event,
    uuid: String,
    vars: HashMap<String, String>,
    queued: VecDeque<Event>,
    idle: Duration,
    /// The channel's hangup cause, once it hung up (CHANNEL_HANGUP / CHANNEL_HANGUP_COMPLETE of this
    /// channel, or a `linger` disconnect notice).
    hangup: Option<Hangup>,
}

/// How the channel of a session hung up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hangup {
    /// `Hangup-Cause` (e.g. `NORMAL_CLEARING`, `DESTINATION_OUT_OF_ORDER`); `UNKNOWN` when only the
    /// linger notice said so.
    pub cause: String,
    /// `sip_hangup_disposition` when FreeSWITCH sent it: `recv_bye` / `recv_cancel` / `recv_refuse`
    /// mean the far end hung up, `send_*` that this switch did.
    pub disposition: Option<String>,
}

impl Hangup {
    /// Whether the called party ended the call (their choice), rather than the switch, the
    /// dialplan or a failure. SIP says it when it can (`recv_*`); otherwise a normal clearing
    /// counts as theirs.
    pub fn by_far_end(&self) -> bool {
        match self.disposition.as_deref() {
            Some(d) => d.starts_with("recv_"),
            None => matches!(
                self.cause.as_str(),
                "NORMAL_CLEARING" | "NORMAL_UNSPECIFIED"
            ),
        }
    }
}

impl OutboundSession {
    /// Sends `connect` and reads the channel data.
    pub async fn establish(
        stream: TcpStream,
        peer: SocketAddr,
        idle: Duration,
    ) -> Result<OutboundSession, EslError> {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr()?;
        let mut s = OutboundSession {
            conn: Framed::new(stream, EslCodec::new()),
            peer,
            local,
            channel_data: Event::empty(),
            uuid: String::new(),
            vars: HashMap::new(),
            queued: VecDeque::new(),
            idle,
            hangup: None,
        };
        let reply = s.command(Command::Connect).await?;
        let data = reply.headers_as_event();
        let uuid = data
            .unique_id()
            .ok_or(EslError::UnexpectedReply(
                "connect reply without Unique-ID".into(),
            ))?
            .to_owned();
        s.vars = data
            .variables()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        s.channel_data = data;
        s.uuid = uuid;
        Ok(s)
    }

    /// The channel data of the `connect` reply (URL-decoded headers).
    pub fn channel_data(&self) -> &Event {
        &self.channel_data
    }

    /// The channel's `Unique-ID`.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// FreeSWITCH's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Our end of the connection: the address FreeSWITCH reached this service at (where it can
    /// also send the call's audio).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `call-command: unicast` over UDP: FreeSWITCH sends the called party's audio from `local`
    /// (its side; port 0 lets it pick) to `remote` (ours), as 20 ms packets, in the call's own
    /// codec when `native`, else as 16-bit linear samples.
    pub async fn unicast(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        native: bool,
    ) -> Result<(), EslError> {
        let msg =
            SendMsg::unicast(local, remote, UnicastTransport::Udp, native).uuid(&self.uuid)?;
        self.command_ok(msg.into()).await
    }

    /// `call-command: nounicast`: stops the audio stream.
    pub async fn nounicast(&mut self) -> Result<(), EslError> {
        let msg = SendMsg::nounicast().uuid(&self.uuid)?;
        self.command_ok(msg.into()).await
    }

    /// How the channel hung up, once FreeSWITCH said it did.
    pub fn hangup_info(&self) -> Option<&Hangup> {
        self.hangup.as_ref()
    }

    fn hung_up_error(&self) -> EslError {
        EslError::HungUp(
            self.hangup
                .as_ref()
                .map(|h| h.cause.clone())
                .unwrap_or_default(),
        )
    }

    /// Latest value seen of channel variable `name` (connect data, then every event's
    /// `variable_*` headers, then our own `set_var`).
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// `myevents`: receive this channel's events.
    pub async fn myevents(&mut self) -> Result<(), EslError> {
        self.command_ok(MyEvents::new().into()).await
    }

    /// `event plain <names>`: also receive these events. `myevents` carries no CUSTOM event: a
    /// subclass such as `avmd::beep` must be subscribed by name (`CUSTOM avmd::beep`). On a socket
    /// that said `myevents`, FreeSWITCH still sends only this channel's events.
    pub async fn subscribe(&mut self, names: &[&str]) -> Result<(), EslError> {
        self.command_ok(Subscribe::new(EventFormat::Plain, names)?.into())
            .await
    }

    /// `linger <seconds>`: keep the socket open that long after the hangup, for the last events.
    /// Always bounded: a bare `linger` is `Linger-Time: -1` on FreeSWITCH, a socket that never
    /// closes by itself.
    pub async fn linger(&mut self, seconds: u32) -> Result<(), EslError> {
        self.command_ok(Linger::new(Some(seconds)).into()).await
    }

    /// Runs `app` with `arg` and waits for its CHANNEL_EXECUTE_COMPLETE (matched by the
    /// `Application-UUID` we chose), which it returns. Needs `myevents` first, or the completion
    /// never arrives (and the wait times out). `Err(HungUp)` as soon as the channel hangs up: the
    /// application may never complete then (a missing one never does).
    pub async fn execute(&mut self, app: &str, arg: &str) -> Result<Event, EslError> {
        let id = self.start(app, arg).await?;
        self.completion(&id).await
    }

    /// [`OutboundSession::execute`] for an application that may run longer than `idle_timeout`
    /// without a single event (a long `playback`): the wait for its completion tolerates up to
    /// `limit` of silence instead. The hangup still ends the wait at once.
    pub async fn execute_for(
        &mut self,
        app: &str,
        arg: &str,
        limit: Duration,
    ) -> Result<Event, EslError> {
        let id = self.start(app, arg).await?;
        let idle = self.idle;
        self.idle = limit.max(idle);
        let done = self.completion(&id).await;
        self.idle = idle;
        done
    }

    /// Starts `app` with `arg` and returns once FreeSWITCH accepted it, without waiting for its
    /// end: for applications whose progress the caller follows through events (a `bridge` is
    /// answered long before it completes). Returns the `Application-UUID` that its
    /// CHANNEL_EXECUTE_COMPLETE will carry ([`OutboundSession::completes`]).
    pub async fn start(&mut self, app: &str, arg: &str) -> Result<String, EslError> {
        if self.hangup.is_some() {
            return Err(self.hung_up_error());
        }
        let id = Uuid::new_v4();
        let msg = SendMsg::execute(app, arg)?
            .uuid(&self.uuid)?
            .event_lock()
            .event_uuid(id);
        self.command_ok(msg.into()).await?;
        Ok(id.to_string())
    }

    /// Whether `event` is the CHANNEL_EXECUTE_COMPLETE of the application started as `id`.
    pub fn completes(event: &Event, id: &str) -> bool {
        is_completion(event, id)
    }

    /// The events that arrived while a command or an application was awaited and that nobody read
    /// yet, oldest first (e.g. the DTMF pressed during a `playback`).
    pub fn take_queued(&mut self) -> Vec<Event> {
        self.queued.drain(..).collect()
    }

    /// Waits for the CHANNEL_EXECUTE_COMPLETE of the application started as `id`.
    async fn completion(&mut self, id: &str) -> Result<Event, EslError> {
        if let Some(pos) = self.queued.iter().position(|e| is_completion(e, id)) {
            if let Some(e) = self.queued.remove(pos) {
                return Ok(e);
            }
        }
        loop {
            if self.hangup.is_some() {
                return Err(self.hung_up_error());
            }
            let event = self.read_event().await?;
            if is_completion(&event, id) {
                return Ok(event);
            }
            self.queue(event);
        }
    }

    /// `api <command>` on this socket (the dialplan's `socket … full` allows every API command):
    /// FreeSWITCH runs it at once in the socket's own thread, even while an application runs on
    /// the channel, e.g. `uuid_break <uuid>` during a `playback` (a `sendmsg` would wait on the
    /// channel's queue until the playback ended: applications run with `event-lock`). Returns the
    /// answer's body (`+OK…` or `-ERR …`: the caller judges it).
    pub async fn api(&mut self, command: &str) -> Result<String, EslError> {
        let reply = self.command(Command::Api(Api::new(command)?)).await?;
        Ok(reply.body_str()?.to_owned())
    }

    /// Sets a channel variable (`set name=value`), validated: the name is letters, digits, `_`,
    /// `-` or `.`; the value has no line break.
    pub async fn set_var(&mut self, name: &str, value: &str) -> Result<(), EslError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(EslError::InvalidCommand(
                "variable name must be letters, digits, '_', '-' or '.'",
            ));
        }
        self.execute("set", &format!("{name}={value}")).await?;
        self.vars.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// Hangs the call up with `cause` (e.g. `NORMAL_CLEARING`).
    pub async fn hangup(&mut self, cause: &str) -> Result<(), EslError> {
        let msg = SendMsg::hangup(cause)?.uuid(&self.uuid)?;
        self.command_ok(msg.into()).await
    }

    /// Next event of the channel: after the hangup, the last ones FreeSWITCH still sends while the
    /// socket lingers. `Err(Disconnected)` once FreeSWITCH closes the socket; `Err(Timeout)` after
    /// `idle_timeout` of silence. A caller that must not wait past the hangup checks
    /// [`OutboundSession::hangup_info`] (or uses [`OutboundSession::next_event_until_hangup`]).
    pub async fn next_event(&mut self) -> Result<Event, EslError> {
        if let Some(e) = self.queued.pop_front() {
            return Ok(e);
        }
        self.read_event().await
    }

    /// Like [`OutboundSession::next_event`], but `Err(HungUp)` once the channel hung up and the
    /// events before the hangup were read: for waits that mean nothing after it (a beep, a digit).
    pub async fn next_event_until_hangup(&mut self) -> Result<Event, EslError> {
        if let Some(e) = self.queued.pop_front() {
            return Ok(e);
        }
        if self.hangup.is_some() {
            return Err(self.hung_up_error());
        }
        self.read_event().await
    }

    /// Says `exit` and closes the socket.
    pub async fn exit(mut self) -> Result<(), EslError> {
        match self.command(Command::Exit).await {
            Ok(_) | Err(EslError::Disconnected) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send(&mut self, cmd: &Command) -> Result<(), EslError> {
        match tokio::time::timeout(self.idle, self.conn.send(cmd)).await {
            Err(_) => Err(EslError::Timeout(self.idle)),
            Ok(r) => r,
        }
    }

    async fn read_frame(&mut self) -> Result<Frame, EslError> {
        match tokio::time::timeout(self.idle, self.conn.next()).await {
            Err(_) => Err(EslError::Timeout(self.idle)),
            Ok(None) => Err(EslError::Disconnected),
            Ok(Some(r)) => r,
        }
    }

    /// Reads until an event; replies that nobody waits for are skipped.
    async fn read_event(&mut self) -> Result<Event, EslError> {
        loop {
            let frame = self.read_frame().await?;
            if let Some(event) = self.absorb(frame)? {
                return Ok(event);
            }
        }
    }

    /// Handles a non-reply frame: an event (variables updated, returned), a disconnect notice.
    fn absorb(&mut self, frame: Frame) -> Result<Option<Event>, EslError> {
        match frame.kind() {
            FrameKind::EventPlain | FrameKind::EventJson => {
                // One unreadable event does not break the framing: skip it, keep the call.
                let event = match frame.event() {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(uuid = %self.uuid, error = %e, "outbound event could not be parsed; skipped");
                        return Ok(None);
                    }
                };
                if event.unique_id().is_none_or(|u| u == self.uuid) {
                    for (k, v) in event.variables() {
                        self.vars.insert(k.to_owned(), v.to_owned());
                    }
                    if self.hangup.is_none()
                        && matches!(
                            event.name(),
                            Some("CHANNEL_HANGUP" | "CHANNEL_HANGUP_COMPLETE")
                        )
                    {
                        self.hangup = Some(Hangup {
                            cause: event.hangup_cause().unwrap_or("UNKNOWN").to_owned(),
                            disposition: event
                                .variable("sip_hangup_disposition")
                                .map(str::to_owned),
                        });
                    }
                }
                Ok(Some(event))
            }
            FrameKind::DisconnectNotice => {
                if frame
                    .header("Content-Disposition")
                    .is_some_and(|d| d.eq_ignore_ascii_case("linger"))
                {
                    debug!(uuid = %self.uuid, "channel hung up; lingering for the last events");
                    if self.hangup.is_none() {
                        self.hangup = Some(Hangup {
                            cause: "UNKNOWN".to_owned(),
                            disposition: None,
                        });
                    }
                    Ok(None)
                } else {
                    Err(EslError::Disconnected)
                }
            }
            FrameKind::RudeRejection => Err(EslError::Disconnected),
            kind => {
                debug!(?kind, uuid = %self.uuid, "outbound frame ignored");
                Ok(None)
            }
        }
    }

    fn queue(&mut self, event: Event) {
        if self.queued.len() >= MAX_QUEUED_EVENTS {
            warn!(uuid = %self.uuid, "outbound event queue full; dropping the oldest event");
            self.queued.pop_front();
        }
        self.queued.push_back(event);
    }

    /// Sends `cmd` and returns its reply, queueing the events that arrive meanwhile.
    async fn command(&mut self, cmd: Command) -> Result<Frame, EslError> {
        self.send(&cmd).await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.kind() {
                FrameKind::CommandReply | FrameKind::ApiResponse => return Ok(frame),
                _ => {
                    if let Some(event) = self.absorb(frame)? {
                        self.queue(event);
                    }
                }
            }
        }
    }

    async fn command_ok(&mut self, cmd: Command) -> Result<(), EslError> {
        let verb = cmd.verb();
        let reply = self.command(cmd).await?;
        if reply.is_ok_reply() {
            Ok(())
        } else {
            debug!(verb, uuid = %self.uuid, reply = ?reply.reply_text(), "outbound command refused");
            Err(EslError::CommandFailed(
                reply.reply_text().unwrap_or("").to_owned(),
            ))
        }
    }
}

fn is_completion(event: &Event, id: &str) -> bool {
    event.name() == Some("CHANNEL_EXECUTE_COMPLETE") && event.application_uuid() == Some(id)
}
