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
use crate::esl::{Command, CommandCodec, EslError, Event, EventFormat, Frame, RawCommand};

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

    /// Answers one command of an inbound connection as mod_event_socket does, read as the typed
    /// [`Command`] it is; a verb outside it (or one that does not read) is answered from the raw
    /// line. One flat arm per command (long on purpose: the table of what the switch answers reads
    /// best in one place).
    async fn command(&mut self, raw: RawCommand) -> Result<Next, EslError> {
        let cmd = Command::try_from(&raw);
        if !self.authed {
            let Ok(Command::Auth(auth)) = cmd else {
                self.text("-ERR command not found").await?;
                return Ok(Next::Continue);
            };
            let given = auth.password().expose().as_bytes();
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
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(_) => {
                self.other_command(&raw).await?;
                return Ok(Next::Continue);
            }
        };
        match cmd {
            Command::Auth(_) => self.text("+OK accepted").await?,
            Command::Api(a) => {
                let body = api::execute(&self.shared, a.command()).await;
                self.reply(Frame::api_response(body)).await?;
            }
            Command::BgApi(b) => {
                let job_uuid = b.job_uuid().to_string();
                let job = api::start_bgapi(&self.shared, b.command(), Some(&job_uuid));
                self.reply(Frame::bgapi_reply(&job)).await?;
            }
            Command::Event(sub) => {
                let names: Vec<&str> = sub.names().iter().map(String::as_str).collect();
                self.sub.add(sub.format().as_str(), &names);
                self.text(&format!(
                    "+OK event listener enabled {}",
                    sub.format().as_str()
                ))
                .await?;
            }
            // `myevents <uuid>` on an inbound socket: every event of that channel.
            Command::MyEvents(m) => match m.uuid() {
                Some(uuid) => {
                    self.sub
                        .add(m.format().unwrap_or(EventFormat::Plain).as_str(), &["ALL"]);
                    self.sub.add_filter("Unique-ID", uuid);
                    self.text("+OK Events Enabled").await?;
                }
                None => self.text("-ERR invalid uuid").await?,
            },
            Command::NixEvent(n) => {
                let names: Vec<&str> = n.names().iter().map(String::as_str).collect();
                self.sub.remove(&names);
                self.text("+OK events nixed").await?;
            }
            Command::NoEvents => {
                self.sub.clear();
                self.text("+OK no longer listening for events").await?;
            }
            Command::Filter(f) => {
                let (header, value) = (f.header(), f.value().unwrap_or(""));
                if f.is_delete() {
                    self.sub.delete_filter(header, f.value());
                    self.text(&format!("+OK filter deleted. [{header}]=[{value}]"))
                        .await?;
                } else {
                    self.sub.add_filter(header, value);
                    self.text(&format!("+OK filter added. [{header}]=[{value}]"))
                        .await?;
                }
            }
            Command::SendMsg(m) => {
                let uuid = m.target().unwrap_or("").to_owned();
                if m.get("call-command")
                    .is_some_and(|c| c.eq_ignore_ascii_case("hangup"))
                {
                    let cause = hangup_cause_arg(m.get("hangup-cause").unwrap_or(""));
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
            Command::Linger(_) | Command::NoLinger => {
                self.text("-ERR not controlling a session").await?
            }
            Command::Exit => {
                self.text("+OK bye").await?;
                return Ok(Next::Close);
            }
            Command::Connect => self.text("-ERR command not found").await?,
        }
        Ok(Next::Continue)
    }

    /// Commands outside [`Command`] that an inbound connection may send.
    async fn other_command(&mut self, raw: &RawCommand) -> Result<(), EslError> {
        match raw.verb().to_ascii_lowercase().as_str() {
            "log" => {
                self.text(&format!("+OK log level {} [7]", raw.args()))
                    .await
            }
            "nolog" => self.text("+OK no longer logging").await,
            "divert_events" => self.text("+OK events diverted").await,
            "filter" => self.text("-ERR invalid syntax").await,
            _ => self.text("-ERR command not found").await,
        }
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
