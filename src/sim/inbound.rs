//! One inbound event-socket connection (a client such as the dialer connected to `--listen`),
//! served like mod_event_socket: `auth/request` greeting, `auth`, then commands answered in order
//! and subscribed events interleaved between replies. `api` runs inline (a slow `api originate`
//! holds the connection, as in FreeSWITCH); `bgapi` runs in the background.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::codec::Framed;

use super::api;
use super::bus::Subscription;
use super::channel::hangup_cause_arg;
use super::state::Shared;
use crate::esl::{CommandCodec, EslError, Event, EventFormat, Frame, RawCommand};

/// What the connection does after a command.
enum Next {
    Continue,
    /// Send the disconnect notice and close (after `exit` or a refused `auth`).
    Close,
}

struct Conn {
    shared: Arc<Shared>,
    framed: Framed<TcpStream, CommandCodec>,
    authed: bool,
    sub: Subscription,
    events_sent: u64,
}

/// Serves one client until it leaves, the simulator stops, or a fault drops it.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut bus_rx = shared.bus.subscribe();
    let mut drop_rx = shared.drop_gen.subscribe();
    let mut conn = Conn {
        shared: Arc::clone(&shared),
        framed: Framed::new(stream, CommandCodec::new()),
        authed: false,
        sub: Subscription::default(),
        events_sent: 0,
    };
    tracing::debug!(?peer, "inbound ESL connection");
    if conn.framed.send(Frame::auth_request()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => {
                let _ = conn.framed.send(Frame::disconnect_notice()).await;
                return;
            }
            changed = drop_rx.changed() => {
                if changed.is_ok() {
                    tracing::info!(?peer, "fault injection: dropping inbound connection");
                }
                return; // abrupt close, like a network failure
            }
            cmd = conn.framed.next() => match cmd {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(?peer, error = %e, "unreadable command, closing connection");
                    return;
                }
                Some(Ok(cmd)) => {
                    // Events fired before this command was read go out under the subscription
                    // they were fired under (FreeSWITCH queues them as they are fired).
                    if conn.drain(&mut bus_rx).await.is_err() {
                        return;
                    }
                    match conn.command(cmd).await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close) => {
                            let _ = conn.framed.send(Frame::disconnect_notice()).await;
                            let _ = SinkExt::<Frame>::close(&mut conn.framed).await;
                            return;
                        }
                        Err(_) => return,
                    }
                }
            },
            ev = bus_rx.recv() => match ev {
                Ok(ev) => {
                    if conn.deliver(&ev).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(?peer, lost = n, "inbound client too slow, events lost");
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

impl Conn {
    /// Sends `ev` if this connection is authenticated and subscribed to it; applies the faults.
    async fn deliver(&mut self, ev: &Event) -> Result<(), EslError> {
        if !(self.authed && self.sub.wants(ev)) {
            return Ok(());
        }
        let frame = match self.sub.format {
            EventFormat::Json => Frame::event_json(ev),
            EventFormat::Plain | EventFormat::Xml => Frame::event_plain(ev),
        };
        self.framed.send(frame).await?;
        self.events_sent += 1;
        self.after_event_faults().await
    }

    /// Delivers every event already fired and not yet read from the bus.
    async fn drain(&mut self, rx: &mut broadcast::Receiver<Arc<Event>>) -> Result<(), EslError> {
        loop {
            match rx.try_recv() {
                Ok(ev) => self.deliver(&ev).await?,
                Err(TryRecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "inbound client too slow, events lost");
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Fault injection after each event sent: garbage every N events, drop after N events.
    async fn after_event_faults(&mut self) -> Result<(), EslError> {
        let faults = &self.shared.cfg.faults;
        if let Some(every) = faults.garbage_every_events.filter(|n| *n > 0) {
            if self.events_sent.is_multiple_of(every) {
                tracing::info!("fault injection: sending a garbage frame");
                SinkExt::<Frame>::flush(&mut self.framed).await?;
                // A header line without ':' and bytes that are not UTF-8: no framing survives it.
                self.framed
                    .get_mut()
                    .write_all(b"\xff\xfegarbage frame without a colon\n\n")
                    .await?;
            }
        }
        if let Some(after) = faults.drop_after_events {
            if self.events_sent >= after {
                tracing::info!(
                    events = self.events_sent,
                    "fault injection: dropping inbound connection after N events"
                );
                return Err(EslError::Disconnected);
            }
        }
        Ok(())
    }

    /// Sends a reply, after the injected delay if any.
    async fn reply(&mut self, frame: Frame) -> Result<(), EslError> {
        if let Some(ms) = self.shared.cfg.faults.reply_delay_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.framed.send(frame).await
    }

    async fn text(&mut self, text: &str) -> Result<(), EslError> {
        self.reply(Frame::command_reply(text)).await
    }

    /// Answers one command of an inbound connection as mod_event_socket does. One flat arm per
    /// command (long on purpose: the table of what the switch answers reads best in one place).
    async fn command(&mut self, cmd: RawCommand) -> Result<Next, EslError> {
        let verb = cmd.verb().to_ascii_lowercase();
        let args = cmd.args().to_owned();
        if !self.authed {
            if verb != "auth" {
                self.text("-ERR command not found").await?;
                return Ok(Next::Continue);
            }
            let given = args.as_bytes();
            let expected = self.shared.cfg.password.expose().as_bytes();
            if !self.shared.cfg.faults.refuse_auth && constant_time_eq(given, expected) {
                self.authed = true;
                self.text("+OK accepted").await?;
                return Ok(Next::Continue);
            }
            tracing::warn!("inbound ESL authentication refused");
            self.text("-ERR invalid").await?;
            return Ok(Next::Close);
        }
        match verb.as_str() {
            "auth" => self.text("+OK accepted").await?,
            "api" => {
                let body = api::execute(&self.shared, &args).await;
                self.reply(Frame::api_response(body)).await?;
            }
            "bgapi" => {
                let job = api::start_bgapi(&self.shared, &args, cmd.job_uuid());
                self.reply(Frame::bgapi_reply(&job)).await?;
            }
            "event" => {
                let mut words = args.split_whitespace();
                let format = words.next().unwrap_or("plain");
                let names: Vec<&str> = words.collect();
                if self.sub.add(format, &names) {
                    self.text(&format!(
                        "+OK event listener enabled {}",
                        format.to_ascii_lowercase()
                    ))
                    .await?;
                } else {
                    self.text("-ERR invalid event format").await?;
                }
            }
            "myevents" => {
                // `myevents <uuid>` on an inbound socket: every event of that channel.
                let uuid = args.split_whitespace().next().unwrap_or("");
                if uuid.is_empty() {
                    self.text("-ERR invalid uuid").await?;
                } else {
                    self.sub.add("plain", &["ALL"]);
                    self.sub.add_filter("Unique-ID", uuid);
                    self.text("+OK Events Enabled").await?;
                }
            }
            "nixevent" => {
                let names: Vec<&str> = args.split_whitespace().collect();
                self.sub.remove(&names);
                self.text("+OK events nixed").await?;
            }
            "noevents" => {
                self.sub.clear();
                self.text("+OK no longer listening for events").await?;
            }
            "filter" => {
                let words: Vec<&str> = args.split_whitespace().collect();
                match words.as_slice() {
                    ["delete", header] => {
                        self.sub.delete_filter(header, None);
                        self.text(&format!("+OK filter deleted. [{header}]=[]"))
                            .await?;
                    }
                    ["delete", header, value @ ..] => {
                        let value = value.join(" ");
                        self.sub.delete_filter(header, Some(&value));
                        self.text(&format!("+OK filter deleted. [{header}]=[{value}]"))
                            .await?;
                    }
                    [header, value @ ..] if !value.is_empty() => {
                        let value = value.join(" ");
                        self.sub.add_filter(header, &value);
                        self.text(&format!("+OK filter added. [{header}]=[{value}]"))
                            .await?;
                    }
                    _ => self.text("-ERR invalid syntax").await?,
                }
            }
            "sendmsg" => {
                let uuid = args.split_whitespace().next().unwrap_or("").to_owned();
                let command = cmd
                    .header("call-command")
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if command == "hangup" {
                    let cause = hangup_cause_arg(cmd.header("hangup-cause").unwrap_or(""));
                    if self.shared.kill(&uuid, &cause) {
                        self.text("+OK").await?;
                    } else {
                        self.text(&format!("-ERR invalid session id [{uuid}]"))
                            .await?;
                    }
                } else if self.shared.call(&uuid).is_some() {
                    // Only hangup is simulated from an inbound socket; applications are run by
                    // the outbound (socket) leg.
                    self.text("+OK").await?;
                } else {
                    self.text(&format!("-ERR invalid session id [{uuid}]"))
                        .await?;
                }
            }
            "linger" | "nolinger" => self.text("-ERR not controlling a session").await?,
            "log" => self.text(&format!("+OK log level {args} [7]")).await?,
            "nolog" => self.text("+OK no longer logging").await?,
            "divert_events" => self.text("+OK events diverted").await?,
            "exit" => {
                self.text("+OK bye").await?;
                return Ok(Next::Close);
            }
            _ => self.text("-ERR command not found").await?,
        }
        Ok(Next::Continue)
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guessed
/// password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_compare() {
        assert!(constant_time_eq(b"ClueCon", b"ClueCon"));
        assert!(!constant_time_eq(b"ClueCo", b"ClueCon"));
        assert!(!constant_time_eq(b"ClueConX", b"ClueCon"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
