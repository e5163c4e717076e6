//! The `socket` dialplan application in `async full` mode: the simulated FreeSWITCH connects to
//! the controller, answers its `connect` with the channel data, and obeys `myevents`, `linger`,
//! `sendmsg` (execute / hangup), `getvar`, `api`, `exit`…
//!
//! Applications run one after the other, as FreeSWITCH queues `sendmsg execute` on the session:
//! CHANNEL_EXECUTE when one starts, CHANNEL_EXECUTE_COMPLETE (with `Application-UUID` = the
//! `Event-UUID` the client sent, and the variables the application set) when it ends.
//! Supported: `answer`, `pre_answer`, `ring_ready`, `playback` (and `speak`, `say`, `read`,
//! `play_and_get_digits`: the playback time), `sleep <ms>`, `set k=v`, `export k=v`, `unset k`,
//! `multiset`, `transfer <exten> [XML] [<context>]`, `hangup [cause]`, `amd`, `avmd_start`,
//! `avmd_stop`, `park`, `log`, `info`, `displace_session <file> [flags]` (completes at once with
//! a `MEDIA_BUG_START` of function `displace`; its `MEDIA_BUG_STOP` comes after the playback time,
//! or at once with `stop_displace_session`). Any other application is one this switch lacks.
//!
//! What FreeSWITCH 1.10.12 does and the simulator copies (`tests/fixtures/esl-transcripts/`):
//!
//! * `myevents` subscribes the channel's events **except CUSTOM ones**: a beep (`avmd::beep`)
//!   reaches only a socket that also sent `event plain CUSTOM avmd::beep`.
//! * At the hangup the socket gets CHANNEL_HANGUP … CHANNEL_HANGUP_COMPLETE (never
//!   CHANNEL_DESTROY). Without `linger`, the disconnect notice follows and the socket closes. With
//!   `linger N`, a `Content-Disposition: linger` notice (`Linger-Time: N`) follows, the session
//!   stays (it still counts against max-sessions), commands are still answered — a `sendmsg` with
//!   `+OK`, though nothing runs any more — and N seconds later the disconnect notice comes and the
//!   socket closes. A bare `linger` is `Linger-Time: -1`: the socket stays until the controller
//!   closes it.
//! * A controller that closes the socket **before `connect`** leaves the answered call parked in
//!   the `socket` application until the called party hangs up (after the talk time here). Closed
//!   after `connect` and before a transfer or a hangup, the channel hangs up with NORMAL_CLEARING
//!   (the `socket` app returns and the `discador` extension has nothing after it).
//! * An application of a module the switch lacks (`--no-module mod_amd`) hangs the call up with
//!   DESTINATION_OUT_OF_ORDER, without CHANNEL_EXECUTE or CHANNEL_EXECUTE_COMPLETE.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::CallRun;
use crate::esl::{
    urlenc, Command, CommandCodec, EslError, Event, EventFormat, Frame, Linger, RawCommand,
    SendMsg, Subscribe,
};
use crate::sim::channel::hangup_cause_arg;
use crate::sim::outcome::Outcome;
use crate::sim::state::{lock, CallCtl};

/// The applications the socket leg runs (what each does is `start_next_app` and `complete_app`);
/// any other is one this switch does not have, and hangs the call up as FreeSWITCH does.
const APPLICATIONS: &[&str] = &[
    "answer",
    "pre_answer",
    "ring_ready",
    "playback",
    "speak",
    "say",
    "read",
    "play_and_get_digits",
    "phrase",
    "sleep",
    "set",
    "export",
    "unset",
    "multiset",
    "transfer",
    "hangup",
    "amd",
    "avmd",
    "avmd_start",
    "avmd_stop",
    "detect_silence",
    "wait_for_silence",
    "bridge",
    "park",
    "log",
    "info",
    "displace_session",
    "stop_displace_session",
];

/// How long the `socket` application waits for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A controller that stops reading for this long is considered gone: the call must not hang on a
/// full TCP buffer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `linger` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LingerTime {
    /// `linger N`: the socket stays N seconds after the hangup.
    Secs(u64),
    /// A bare `linger` (or a negative N): `Linger-Time: -1`, the socket stays until closed.
    Forever,
}

impl LingerTime {
    /// `linger [N]` as read from the wire: no N is forever.
    fn of(cmd: &Linger) -> LingerTime {
        match cmd.seconds() {
            Some(n) => LingerTime::Secs(u64::from(n)),
            None => LingerTime::Forever,
        }
    }
}

/// The controller's end of the socket, as the simulated FreeSWITCH holds it.
pub struct SocketConn {
    framed: Framed<TcpStream, CommandCodec>,
    /// `myevents`: every event of this channel except CUSTOM ones.
    myevents: bool,
    /// Event names subscribed with `event` (`ALL`: every event, CUSTOM ones included).
    events: HashSet<String>,
    /// CUSTOM subclasses subscribed with `event … CUSTOM a::b`.
    subclasses: HashSet<String>,
    format: EventFormat,
    pub linger: Option<LingerTime>,
    /// The controller sent `connect`.
    connected: bool,
    /// The channel has hung up: `sendmsg` is acknowledged and ignored.
    hung_up: bool,
    broken: bool,
}

impl SocketConn {
    fn new(stream: TcpStream) -> SocketConn {
        SocketConn {
            framed: Framed::new(stream, CommandCodec::new()),
            myevents: false,
            events: HashSet::new(),
            subclasses: HashSet::new(),
            format: EventFormat::Plain,
            linger: None,
            connected: false,
            hung_up: false,
            broken: false,
        }
    }

    /// Whether the controller subscribed to `ev`.
    fn wants(&self, ev: &Event) -> bool {
        if self.events.contains("ALL") {
            return true;
        }
        match ev.get("Event-Name") {
            Some("CUSTOM") => ev
                .get("Event-Subclass")
                .is_some_and(|sub| self.subclasses.contains(sub)),
            Some(name) => self.myevents || self.events.contains(name),
            None => false,
        }
    }

    /// `event <format> NAME… [CUSTOM subclass…]`: as mod_event_socket reads it, every word after
    /// `CUSTOM` is a subclass.
    fn subscribe(&mut self, sub: &Subscribe) {
        self.format = sub.format();
        let mut custom = false;
        for word in sub.names() {
            if custom {
                self.subclasses.insert(word.clone());
            } else {
                let name = word.to_ascii_uppercase();
                custom = name == "CUSTOM";
                self.events.insert(name);
            }
        }
    }

    /// Sends a frame; a write error marks the socket broken (the read side then sees the close).
    async fn send(&mut self, frame: Frame) {
        if self.broken {
            return;
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.framed.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "socket leg write failed");
                self.broken = true;
            }
            Err(_) => {
                tracing::warn!("controller stopped reading the socket; treating it as closed");
                self.broken = true;
            }
        }
    }

    async fn reply(&mut self, text: &str) {
        self.send(Frame::command_reply(text)).await;
    }

    /// Sends a channel event if the controller subscribed (`myevents` / `event`).
    pub async fn forward(&mut self, ev: &Event) {
        if !self.wants(ev) {
            return;
        }
        let frame = match self.format {
            EventFormat::Json => Frame::event_json(ev),
            // XML is not rendered by the codec; plain is what a controller parses.
            EventFormat::Plain | EventFormat::Xml => Frame::event_plain(ev),
        };
        self.send(frame).await;
    }

    /// `Content-Disposition: linger`, sent after CHANNEL_HANGUP_COMPLETE on a lingering socket.
    pub async fn linger_notice(&mut self, uuid: &str, channel_name: &str, linger: LingerTime) {
        let secs = match linger {
            LingerTime::Secs(n) => i64::try_from(n).unwrap_or(i64::MAX),
            LingerTime::Forever => -1,
        };
        self.send(Frame::disconnect_notice_linger(uuid, channel_name, secs))
            .await;
    }

    /// The final `text/disconnect-notice` of an outbound session, then close.
    pub async fn disconnect(mut self, uuid: &str) {
        self.send(Frame::session_goodbye(uuid)).await;
        let _ = SinkExt::<Frame>::close(&mut self.framed).await;
    }
}

/// One `sendmsg execute`.
#[derive(Debug)]
struct AppCall {
    name: String,
    arg: String,
    app_uuid: String,
}

/// Scheduling state of the socket leg.
struct Leg {
    queue: VecDeque<AppCall>,
    current: Option<(AppCall, Instant)>,
    beep_at: Option<Instant>,
    /// A displaced file (`displace_session`): when it ends, and its path.
    displace_end: Option<(Instant, String)>,
    /// After a transfer: when the new extension ends, and how.
    extension_end: Option<(Instant, String)>,
    deadline: Instant,
}

/// What the leg does after a command.
enum Flow {
    Continue,
    Hangup(String),
    Closed,
}

/// `now + d`, saturating at a century away: `d` may come from a controller's `sleep` argument or
/// an absurd flag, and `Instant + Duration` panics on overflow.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_cmd(sock: &mut Option<SocketConn>) -> Option<Result<RawCommand, EslError>> {
    match sock {
        // A write failure means the peer is gone: report it as a close.
        Some(s) if s.broken => None,
        Some(s) => s.framed.next().await,
        None => std::future::pending().await,
    }
}

/// A channel-variable name a client may set: no separator that would break an event line.
fn valid_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl CallRun {
    /// Connects to the controller and serves it until the call ends. Returns the hangup cause and
    /// the socket (still open when it must receive the hangup events). Long on purpose: one
    /// `select!` over everything that can end or advance the call (a kill, shutdown, the deadline,
    /// the running application, the beep, the transferred extension, the controller's commands).
    pub(super) async fn socket_leg(
        &mut self,
        addr: SocketAddr,
        app_data: &str,
    ) -> (String, Option<SocketConn>) {
        let app_uuid = uuid::Uuid::new_v4().to_string();
        {
            let mut ch = lock(&self.channel);
            ch.set_var("current_application_data", app_data);
            ch.set_var("current_application", "socket");
            ch.set_var("socket_host", &addr.ip().to_string());
            ch.application = Some(("socket".to_owned(), app_data.to_owned()));
        }
        let ev = lock(&self.channel).execute_event(
            &self.shared.core,
            false,
            "socket",
            app_data,
            &app_uuid,
            "",
        );
        self.emit_event(ev, None).await;

        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(uuid = %self.uuid, %addr, error = %e, "socket application: connection refused, hanging up");
                return ("NORMAL_CLEARING".to_owned(), None);
            }
            Err(_) => {
                tracing::warn!(uuid = %self.uuid, %addr, "socket application: connect timed out, hanging up");
                return ("NORMAL_CLEARING".to_owned(), None);
            }
        };
        let _ = stream.set_nodelay(true);
        let cfg = &self.shared.cfg;
        let mut leg = Leg {
            queue: VecDeque::new(),
            current: None,
            beep_at: None,
            displace_end: None,
            extension_end: None,
            deadline: after(Instant::now(), cfg.scaled_ms(cfg.timings.max_call_ms)),
        };
        let mut sock = Some(SocketConn::new(stream));
        loop {
            let current_due = leg.current.as_ref().map(|(_, due)| *due);
            let ext_due = leg.extension_end.as_ref().map(|(due, _)| *due);
            let displace_due = leg.displace_end.as_ref().map(|(due, _)| *due);
            tokio::select! {
                Some(CallCtl::Hangup(cause)) = self.ctl_rx.recv() => return (cause, sock),
                () = self.shared.shutdown.cancelled() => return ("SYSTEM_SHUTDOWN".to_owned(), sock),
                () = tokio::time::sleep_until(leg.deadline) => {
                    tracing::warn!(uuid = %self.uuid, "call not driven to an end in time, cutting it");
                    return ("ALLOTTED_TIMEOUT".to_owned(), sock);
                }
                () = sleep_until_opt(current_due) => {
                    if let Some(cause) = self.complete_app(&mut leg, sock.as_mut()).await {
                        return (cause, sock);
                    }
                    if let Some(cause) = self.start_next_app(&mut leg, sock.as_mut()).await {
                        return (cause, sock);
                    }
                }
                () = sleep_until_opt(leg.beep_at) => {
                    leg.beep_at = None;
                    self.beep(sock.as_mut()).await;
                }
                () = sleep_until_opt(displace_due) => {
                    if let Some((_, target)) = leg.displace_end.take() {
                        self.media_bug("MEDIA_BUG_STOP", &target, sock.as_mut()).await;
                    }
                }
                () = sleep_until_opt(ext_due) => {
                    let cause = leg.extension_end.take().map(|(_, c)| c).unwrap_or_else(|| "NORMAL_CLEARING".to_owned());
                    return (cause, sock);
                }
                cmd = next_cmd(&mut sock) => {
                    let flow = match (cmd, sock.as_mut()) {
                        (Some(Ok(cmd)), Some(s)) => self.socket_command(cmd, &mut leg, s).await,
                        (Some(Err(e)), _) => {
                            tracing::warn!(uuid = %self.uuid, error = %e, "socket leg: unreadable data from the controller, closing");
                            Flow::Closed
                        }
                        _ => Flow::Closed,
                    };
                    match flow {
                        Flow::Continue => {}
                        Flow::Hangup(cause) => return (cause, sock),
                        Flow::Closed => {
                            let connected = sock.as_ref().is_some_and(|s| s.connected);
                            sock = None;
                            if !connected {
                                tracing::info!(uuid = %self.uuid, "controller closed the socket before connect: the call stays parked");
                                return (self.parked().await, None);
                            }
                            if self.transferred_to.is_none() {
                                tracing::info!(uuid = %self.uuid, "controller closed the socket before transfer or hangup");
                                return ("NORMAL_CLEARING".to_owned(), None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Answers one command from the controller, read as the typed [`Command`] it is (a verb
    /// outside it, or one that does not read, is answered from the raw line). One flat arm per
    /// command (long on purpose: the table of what the switch answers reads best in one place).
    async fn socket_command(&mut self, raw: RawCommand, leg: &mut Leg, s: &mut SocketConn) -> Flow {
        let cmd = match Command::try_from(&raw) {
            Ok(cmd) => cmd,
            Err(_) => {
                self.other_command(&raw, s).await;
                return Flow::Continue;
            }
        };
        match cmd {
            Command::Connect => {
                s.connected = true;
                let ev = lock(&self.channel).connect_reply(&self.shared.core);
                // switch_event_serialize(…, SWITCH_TRUE): every value URL-encoded, Reply-Text too.
                let headers = ev
                    .headers()
                    .map(|(k, v)| (k.to_owned(), urlenc::encode(v)))
                    .collect();
                s.send(Frame::new(headers, None)).await;
            }
            Command::MyEvents(m) => {
                s.format = m.format().unwrap_or(EventFormat::Plain);
                s.myevents = true;
                s.reply("+OK Events Enabled").await;
            }
            Command::Event(sub) => {
                s.subscribe(&sub);
                s.reply(&format!(
                    "+OK event listener enabled {}",
                    sub.format().as_str()
                ))
                .await;
            }
            Command::NixEvent(_) => s.reply("+OK events nixed").await,
            Command::NoEvents => {
                s.myevents = false;
                s.events.clear();
                s.subclasses.clear();
                s.reply("+OK no longer listening for events").await;
            }
            Command::Filter(f) => {
                let verb = if f.is_delete() { "deleted" } else { "added" };
                s.reply(&format!(
                    "+OK filter {verb}. [{}]=[{}]",
                    f.header(),
                    f.value().unwrap_or("")
                ))
                .await;
            }
            Command::Linger(l) => {
                let linger = LingerTime::of(&l);
                s.linger = Some(linger);
                match linger {
                    LingerTime::Secs(n) => s.reply(&format!("+OK will linger {n} seconds")).await,
                    LingerTime::Forever => s.reply("+OK will linger").await,
                }
            }
            Command::NoLinger => {
                s.linger = None;
                s.reply("+OK will not linger").await;
            }
            Command::Api(a) => {
                // Through the shared runner: `api` starts calls, so this module does not import it.
                let body =
                    (self.shared.api.execute)(Arc::clone(&self.shared), a.command().to_owned())
                        .await;
                s.send(Frame::api_response(body)).await;
            }
            Command::BgApi(b) => {
                let job_uuid = b.job_uuid().to_string();
                let job = (self.shared.api.start_bgapi)(&self.shared, b.command(), Some(&job_uuid));
                s.send(Frame::bgapi_reply(&job)).await;
            }
            Command::Exit => {
                s.reply("+OK bye").await;
                return Flow::Closed;
            }
            Command::SendMsg(m) => return self.sendmsg(&m, leg, s).await,
            Command::Auth(_) => s.reply("-ERR command not found").await,
        }
        Flow::Continue
    }

    /// Commands outside [`Command`]: `getvar`, and the few a controller may send that only need an
    /// acknowledgement.
    async fn other_command(&mut self, raw: &RawCommand, s: &mut SocketConn) {
        match raw.verb().to_ascii_lowercase().as_str() {
            "resume" | "divert_events" | "log" | "nolog" => s.reply("+OK").await,
            "getvar" => {
                let value = lock(&self.channel)
                    .var(raw.args().trim())
                    .unwrap_or("")
                    .to_owned();
                s.reply(&value).await;
            }
            _ => s.reply("-ERR command not found").await,
        }
    }

    async fn sendmsg(&mut self, m: &SendMsg, leg: &mut Leg, s: &mut SocketConn) -> Flow {
        if s.hung_up {
            // After the hangup FreeSWITCH still acknowledges a sendmsg; nothing runs.
            s.reply("+OK").await;
            return Flow::Continue;
        }
        if let Some(target) = m.target().filter(|t| *t != self.uuid) {
            s.reply(&format!("-ERR invalid session id [{target}]"))
                .await;
            return Flow::Continue;
        }
        let command = m.get("call-command").unwrap_or("").to_ascii_lowercase();
        match command.as_str() {
            "execute" => {
                let name = m.get("execute-app-name").unwrap_or("").trim().to_owned();
                if name.is_empty() {
                    s.reply("-ERR invalid application").await;
                    return Flow::Continue;
                }
                let app_uuid = m
                    .get("Event-UUID")
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                s.reply("+OK").await;
                leg.queue.push_back(AppCall {
                    name,
                    arg: m.app_arg().to_owned(),
                    app_uuid,
                });
                if leg.current.is_none() {
                    if let Some(cause) = self.start_next_app(leg, Some(s)).await {
                        return Flow::Hangup(cause);
                    }
                }
                Flow::Continue
            }
            "hangup" => {
                s.reply("+OK").await;
                Flow::Hangup(hangup_cause_arg(m.get("hangup-cause").unwrap_or("")))
            }
            _ => {
                s.reply("+OK").await;
                Flow::Continue
            }
        }
    }

    /// Starts the next queued application: CHANNEL_EXECUTE, then its completion time. Returns a
    /// hangup cause when the application does not exist on this switch.
    async fn start_next_app(
        &mut self,
        leg: &mut Leg,
        sock: Option<&mut SocketConn>,
    ) -> Option<String> {
        if leg.current.is_some() {
            return None;
        }
        let app = leg.queue.pop_front()?;
        let cfg = &self.shared.cfg;
        if !APPLICATIONS.contains(&app.name.as_str()) || !cfg.has_module_for(&app.name) {
            tracing::warn!(uuid = %self.uuid, app = %app.name, "application of a module this switch lacks: hanging up");
            return Some("DESTINATION_OUT_OF_ORDER".to_owned());
        }
        let now = Instant::now();
        let due = match app.name.as_str() {
            // A file that is not there is not played: FILE NOT FOUND at once.
            "playback" if cfg.sound_file(&app.arg).is_some_and(|f| !f.is_file()) => now,
            "playback" | "speak" | "say" | "read" | "play_and_get_digits" | "phrase" => {
                after(now, cfg.scaled_ms(cfg.timings.playback_ms))
            }
            // The machine's greeting (or the beep) ends a moment later.
            "detect_silence" | "wait_for_silence" => after(now, cfg.scaled_ms(500)),
            // A busy agent refuses at once; any other rings a second and answers.
            "bridge" if bridge_target(&app.arg).starts_with("agente_ocupado") => {
                after(now, cfg.scaled_ms(cfg.timings.reject_ms))
            }
            "bridge" => after(now, cfg.scaled_ms(1_000)),
            "sleep" => after(now, cfg.scaled_ms(app.arg.trim().parse().unwrap_or(0))),
            "amd" => after(now, cfg.scaled_ms(cfg.timings.amd_ms)),
            "park" => leg.deadline,
            _ => now,
        };
        let ev = {
            let mut ch = lock(&self.channel);
            ch.set_var("current_application", &app.name);
            ch.set_var("current_application_data", &app.arg);
            ch.application = Some((app.name.clone(), app.arg.clone()));
            ch.execute_event(
                &self.shared.core,
                false,
                &app.name,
                &app.arg,
                &app.app_uuid,
                "",
            )
        };
        self.emit_event(ev, sock).await;
        leg.current = Some((app, due));
        None
    }

    /// A call whose controller closed the socket before `connect`: parked in the `socket`
    /// application until the called party tires of the silence and hangs up (or it is killed).
    async fn parked(&mut self) -> String {
        let cfg = &self.shared.cfg;
        let patience = cfg.scaled_ms(cfg.timings.talk_ms);
        self.wait(patience)
            .await
            .unwrap_or_else(|| "NORMAL_CLEARING".to_owned())
    }

    /// Serves a lingering socket after the hangup: commands are answered (a `sendmsg` runs
    /// nothing), until the linger time is over (then the disconnect notice) or the controller
    /// closes or sends `exit`.
    pub(super) async fn linger_out(&mut self, mut s: SocketConn, linger: LingerTime) {
        s.hung_up = true;
        let until = match linger {
            LingerTime::Secs(n) => Some(after(Instant::now(), Duration::from_secs(n))),
            LingerTime::Forever => None,
        };
        let mut leg = Leg {
            queue: VecDeque::new(),
            current: None,
            beep_at: None,
            displace_end: None,
            extension_end: None,
            deadline: Instant::now(),
        };
        let mut conn = Some(s);
        loop {
            let cmd = tokio::select! {
                () = sleep_until_opt(until) => break,
                () = self.shared.shutdown.cancelled() => break,
                cmd = next_cmd(&mut conn) => cmd,
            };
            match (cmd, conn.as_mut()) {
                (Some(Ok(cmd)), Some(s)) => {
                    if let Flow::Closed = self.socket_command(cmd, &mut leg, s).await {
                        return;
                    }
                }
                _ => return,
            }
        }
        if let Some(s) = conn {
            s.disconnect(&self.uuid).await;
        }
    }

    /// Applies the finished application's effects and fires CHANNEL_EXECUTE_COMPLETE. Returns a
    /// hangup cause when the application hangs the call up. One flat arm per application (long
    /// on purpose: what each application does to the channel reads best as one table).
    async fn complete_app(
        &mut self,
        leg: &mut Leg,
        sock: Option<&mut SocketConn>,
    ) -> Option<String> {
        let (app, _) = leg.current.take()?;
        let cfg = &self.shared.cfg;
        let mut hangup = None;
        let mut response = "_none_";
        let mut bridged = false;
        // A displaced file's media bug starts or stops before the application completes.
        let mut displaced = None;
        let mut undisplaced = None;
        {
            let mut ch = lock(&self.channel);
            match app.name.as_str() {
                "set" | "export" => {
                    if let Some((k, v)) = app.arg.split_once('=') {
                        if valid_var_name(k.trim()) {
                            ch.set_var(k.trim(), v);
                            if app.name == "export" {
                                let list = match ch.var("export_vars") {
                                    Some(old) if !old.is_empty() => format!("{old},{}", k.trim()),
                                    _ => k.trim().to_owned(),
                                };
                                ch.set_var("export_vars", &list);
                            }
                        } else {
                            tracing::warn!(uuid = %self.uuid, "set: invalid variable name ignored");
                        }
                    }
                }
                "multiset" => {
                    for pair in app.arg.split_whitespace() {
                        if let Some((k, v)) = pair.split_once('=') {
                            if valid_var_name(k) {
                                ch.set_var(k, v);
                            }
                        }
                    }
                }
                "unset" => {
                    let k = app.arg.trim();
                    if valid_var_name(k) {
                        ch.vars.retain(|(name, _)| name != k);
                    }
                }
                "amd" => {
                    let verdict = self.outcome.amd();
                    ch.set_var("amd_result", verdict.result());
                    ch.set_var("amd_cause", verdict.cause());
                }
                // A person has no beep: avmd_start then listens in vain.
                "avmd_start" if self.outcome == Outcome::Machine => {
                    leg.beep_at = Some(after(Instant::now(), cfg.scaled_ms(cfg.timings.beep_ms)));
                }
                "avmd_stop" => leg.beep_at = None,
                "displace_session" => {
                    let target = app.arg.split_whitespace().next().unwrap_or("").to_owned();
                    let end = after(Instant::now(), cfg.scaled_ms(cfg.timings.playback_ms));
                    displaced = Some(target.clone());
                    leg.displace_end = Some((end, target));
                }
                "stop_displace_session" => {
                    undisplaced = leg.displace_end.take().map(|(_, target)| target);
                }
                "playback" => {
                    if cfg.sound_file(&app.arg).is_some_and(|f| !f.is_file()) {
                        response = "FILE NOT FOUND";
                        ch.set_var("playback_last_offset_pos", "0");
                    } else {
                        response = "FILE PLAYED";
                        // Samples written at 8 kHz: the nominal length, unscaled.
                        let samples = cfg.timings.playback_ms.saturating_mul(8);
                        ch.set_var("playback_last_offset_pos", &samples.to_string());
                    }
                    ch.set_var("current_application_response", response);
                }
                "bridge" if bridge_target(&app.arg).starts_with("agente_ocupado") => {
                    ch.set_var("originate_disposition", "USER_BUSY");
                    if ch.var("continue_on_fail").is_none_or(|v| v != "true") {
                        hangup = Some("USER_BUSY".to_owned());
                    }
                }
                "bridge" => bridged = true,
                "detect_silence" | "wait_for_silence" => {}
                "transfer" => {
                    let mut parts = app.arg.split_whitespace().filter(|p| !p.starts_with('-'));
                    let exten = parts.next().unwrap_or_default().to_owned();
                    let dialplan = parts.next().unwrap_or("XML").to_owned();
                    let context = parts
                        .next()
                        .map(str::to_owned)
                        .unwrap_or_else(|| ch.context.clone());
                    ch.transfer(&exten, &dialplan, &context);
                    let now = Instant::now();
                    leg.extension_end = Some(match exten.as_str() {
                        "humano" => (
                            after(now, cfg.scaled_ms(cfg.timings.talk_ms)),
                            "NORMAL_CLEARING".to_owned(),
                        ),
                        "maquina" => (
                            after(now, cfg.scaled_ms(cfg.timings.playback_ms)),
                            "NORMAL_CLEARING".to_owned(),
                        ),
                        _ => (now, "NO_ROUTE_DESTINATION".to_owned()),
                    });
                    self.transferred_to = Some(exten);
                }
                "hangup" => hangup = Some(hangup_cause_arg(&app.arg)),
                "answer"
                | "pre_answer"
                | "ring_ready"
                | "sleep"
                | "speak"
                | "say"
                | "read"
                | "play_and_get_digits"
                | "phrase"
                | "park"
                | "log"
                | "info" => {}
                // Only the `APPLICATIONS` get this far.
                _ => {}
            }
            if !bridged {
                ch.application = None;
            }
        }
        if bridged {
            // The agent answered: CHANNEL_BRIDGE now; the bridge (and, with
            // hangup_after_bridge, the call) ends when the agent hangs up.
            let ev = {
                let ch = lock(&self.channel);
                let mut ev = self.shared.core.event(
                    "CHANNEL_BRIDGE",
                    ("switch_ivr_bridge.c", "audio_bridge_on_exchange_media"),
                );
                ch.push_channel_data(&mut ev);
                ev.push("Bridge-A-Unique-ID", &self.uuid);
                ev.push("Other-Leg-Destination-Number", bridge_target(&app.arg));
                ev
            };
            self.emit_event(ev, sock).await;
            self.transferred_to = Some(bridge_target(&app.arg).to_owned());
            leg.extension_end = Some((
                after(Instant::now(), cfg.scaled_ms(cfg.timings.talk_ms)),
                "NORMAL_CLEARING".to_owned(),
            ));
            return None;
        }
        let mut sock = sock;
        if let Some(target) = displaced {
            self.media_bug("MEDIA_BUG_START", &target, sock.as_deref_mut())
                .await;
        }
        if let Some(target) = undisplaced {
            self.media_bug("MEDIA_BUG_STOP", &target, sock.as_deref_mut())
                .await;
        }
        let ev = lock(&self.channel).execute_event(
            &self.shared.core,
            true,
            &app.name,
            &app.arg,
            &app.app_uuid,
            response,
        );
        self.emit_event(ev, sock).await;
        hangup
    }

    /// A `displace` media bug's MEDIA_BUG_START or MEDIA_BUG_STOP on this channel.
    async fn media_bug(&mut self, name: &str, target: &str, sock: Option<&mut SocketConn>) {
        let ev = {
            let ch = lock(&self.channel);
            let mut ev = self.shared.core.event(
                name,
                ("switch_core_media_bug.c", "switch_core_media_bug_add"),
            );
            ev.push("Media-Bug-Function", "displace");
            ev.push("Media-Bug-Target", target);
            ch.push_channel_data(&mut ev);
            ev
        };
        self.emit_event(ev, sock).await;
    }

    /// The answering machine's beep heard by `avmd_start`: CUSTOM `avmd::beep`.
    async fn beep(&mut self, sock: Option<&mut SocketConn>) {
        let ev = {
            let mut ch = lock(&self.channel);
            ch.set_var("avmd_detect", "TRUE");
            let mut ev = self.shared.core.event("CUSTOM", ("avmd.c", "avmd_process"));
            ev.push("Event-Subclass", "avmd::beep");
            ch.push_channel_data(&mut ev);
            ev.push("Beep-Status", "DETECTED");
            ev.push("Frequency", "440.000000");
            ev.push("Frequency-variance", "0.000000");
            ev.push(
                "Detection-time",
                self.shared.cfg.timings.beep_ms.to_string(),
            );
            ev
        };
        self.emit_event(ev, sock).await;
    }
}

/// The called end of a `bridge` argument: the dial string's last segment, without its leading
/// `{…}` variables (`{leg_timeout=2}sofia/gateway/gw/agente1` → `agente1`).
fn bridge_target(arg: &str) -> &str {
    let dial = match arg.strip_prefix('{') {
        Some(rest) => rest.split_once('}').map_or("", |(_, d)| d),
        None => arg,
    };
    dial.trim().rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_targets() {
        assert_eq!(
            bridge_target("{leg_timeout=2}sofia/gateway/gw_pstn/agente_ocupado"),
            "agente_ocupado"
        );
        assert_eq!(bridge_target("user/1000"), "1000");
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now);
        assert_eq!(
            after(now, Duration::from_millis(5)),
            now + Duration::from_millis(5)
        );
    }

    #[test]
    fn variable_names_are_restricted() {
        assert!(valid_var_name("discador_resultado"));
        assert!(valid_var_name("sip_h_X-Campaign"));
        assert!(!valid_var_name(""));
        assert!(!valid_var_name("a:b"));
        assert!(!valid_var_name("a b"));
        assert!(!valid_var_name("a\nb"));
    }
}
