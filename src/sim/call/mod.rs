//! The life of one simulated call, in one task: create, ring, answer or fail, run the target
//! (the `discador` dialplan entry's socket leg, a human/machine extension, `&app(...)`), hang up
//! and report. Every event about the channel is fired from here, so their order is the order in
//! which they happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub mod socket_leg;

use super::channel::{hangup_cause_arg, Channel, ChannelState};
use super::limits::SessionPermit;
use super::originate::{Endpoint, OriginateRequest, Target};
use super::outcome::Outcome;
use super::state::{lock, CallCtl, FinishedCall, LiveCall, Shared};
use crate::domain::mask;
use crate::esl::Event;
use socket_leg::SocketConn;

/// How the network treats the call before any answer.
#[derive(Debug)]
enum Fate {
    /// Fails at once with this cause.
    FailNow(String),
    /// Fails with this cause after the reject delay (no ringing).
    FailAfterReject(&'static str),
    /// Rings until `originate_timeout`, then NO_ANSWER.
    RingOut,
    /// Rings for the ring time, then answers.
    Answer,
}

/// Creates the channel of an admitted originate, registers it and starts its task. The receiver
/// yields the API reply (`+OK <uuid>\n` at answer, `-ERR <CAUSE>\n` on failure).
pub fn start_call(
    shared: &Arc<Shared>,
    req: OriginateRequest,
    uuid: String,
    permit: SessionPermit,
) -> oneshot::Receiver<String> {
    let (result_tx, result_rx) = oneshot::channel();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let channel = Arc::new(Mutex::new(Channel::from_originate(&uuid, &req)));
    lock(&shared.calls).insert(
        uuid.clone(),
        LiveCall {
            channel: Arc::clone(&channel),
            ctl: ctl_tx,
        },
    );
    let outcome = shared.rule.outcome(&req.destination);
    let run = CallRun {
        shared: Arc::clone(shared),
        channel,
        uuid,
        req,
        outcome,
        ctl_rx,
        result_tx: Some(result_tx),
        _permit: permit,
        transferred_to: None,
    };
    shared.spawn(run.run());
    result_rx
}

/// State of one call's task.
pub struct CallRun {
    pub(super) shared: Arc<Shared>,
    pub(super) channel: Arc<Mutex<Channel>>,
    pub(super) uuid: String,
    pub(super) req: OriginateRequest,
    pub(super) outcome: Outcome,
    pub(super) ctl_rx: mpsc::UnboundedReceiver<CallCtl>,
    result_tx: Option<oneshot::Sender<String>>,
    /// Held for the whole life of the channel: dropping it frees the max-sessions slot.
    _permit: SessionPermit,
    pub(super) transferred_to: Option<String>,
}

impl CallRun {
    fn fate(&self) -> Fate {
        if let Endpoint::Error(cause) = &self.req.endpoint {
            return Fate::FailNow(if cause.is_empty() {
                "NORMAL_CLEARING".to_owned()
            } else {
                cause.clone()
            });
        }
        if !self.req.destination_is_well_formed() {
            return Fate::FailNow("INVALID_NUMBER_FORMAT".to_owned());
        }
        match self.outcome {
            Outcome::Unallocated => Fate::FailNow("UNALLOCATED_NUMBER".to_owned()),
            Outcome::Busy => Fate::FailAfterReject("USER_BUSY"),
            Outcome::Rejected => Fate::FailAfterReject("CALL_REJECTED"),
            Outcome::TemporaryFailure => Fate::FailAfterReject("NORMAL_TEMPORARY_FAILURE"),
            Outcome::NoAnswer => Fate::RingOut,
            Outcome::Human | Outcome::HumanNotSure | Outcome::Machine => {
                let ring = Duration::from_millis(self.shared.cfg.timings.ring_ms);
                if ring >= Duration::from_secs(self.req.timeout_secs()) {
                    Fate::RingOut
                } else {
                    Fate::Answer
                }
            }
        }
    }

    async fn run(mut self) {
        self.emit("CHANNEL_CREATE", None).await;
        let cfg = &self.shared.cfg;
        let ring_time = cfg.scaled_ms(cfg.timings.ring_ms);
        let reject_time = cfg.scaled_ms(cfg.timings.reject_ms);
        let timeout = cfg.scaled_secs(self.req.timeout_secs());
        let failure = match self.fate() {
            Fate::FailNow(cause) => Some(cause),
            Fate::FailAfterReject(cause) => Some(
                self.wait(reject_time)
                    .await
                    .unwrap_or_else(|| cause.to_owned()),
            ),
            Fate::RingOut => {
                self.ring().await;
                Some(
                    self.wait(timeout)
                        .await
                        .unwrap_or_else(|| "NO_ANSWER".to_owned()),
                )
            }
            Fate::Answer => {
                self.ring().await;
                self.wait(ring_time).await
            }
        };
        if let Some(cause) = failure {
            self.finish(cause, None).await;
            return;
        }
        lock(&self.channel).mark_answered();
        self.emit("CHANNEL_ANSWER", None).await;
        if let Some(tx) = self.result_tx.take() {
            let _ = tx.send(format!("+OK {}\n", self.uuid));
        }
        let (cause, sock) = self.after_answer().await;
        self.finish(cause, sock).await;
    }

    async fn ring(&mut self) {
        lock(&self.channel).mark_ringing();
        self.emit("CHANNEL_PROGRESS", None).await;
    }

    /// Sleeps `d`, unless the call is killed (or the simulator stops) first: then the cause.
    pub(super) async fn wait(&mut self, d: Duration) -> Option<String> {
        tokio::select! {
            () = tokio::time::sleep(d) => None,
            Some(CallCtl::Hangup(cause)) = self.ctl_rx.recv() => Some(cause),
            () = self.shared.shutdown.cancelled() => Some("SYSTEM_SHUTDOWN".to_owned()),
        }
    }

    /// Fires a channel event on the bus, and to the socket leg when it asked for events.
    pub(super) async fn emit(&self, name: &str, sock: Option<&mut SocketConn>) {
        let ev = lock(&self.channel).event(&self.shared.core, name);
        self.emit_event(ev, sock).await;
    }

    pub(super) async fn emit_event(&self, ev: Event, sock: Option<&mut SocketConn>) {
        if let Some(s) = sock {
            s.forward(&ev).await;
        }
        self.shared.bus.fire(ev);
    }

    /// What the answered channel does: its originate target.
    async fn after_answer(&mut self) -> (String, Option<SocketConn>) {
        match self.req.target.clone() {
            Target::Extension {
                exten,
                dialplan,
                context,
            } => {
                lock(&self.channel).transfer(&exten, &dialplan, &context);
                self.extension(&exten).await
            }
            Target::App { name, args } => self.app_target(&name, &args).await,
        }
    }

    /// Runs a dialplan extension: `discador` is the socket entry; `humano` and `maquina` are the
    /// shipped human/machine extensions; anything else has no route.
    async fn extension(&mut self, exten: &str) -> (String, Option<SocketConn>) {
        let cfg = &self.shared.cfg;
        let (talk, playback) = (
            cfg.scaled_ms(cfg.timings.talk_ms),
            cfg.scaled_ms(cfg.timings.playback_ms),
        );
        match exten {
            "discador" => {
                // `${discador_socket}`: the call's own variable (the process that dialed it),
                // else the switch's global.
                let addr = self
                    .req
                    .var("discador_socket")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(self.shared.cfg.socket_addr);
                let data = format!("{addr} async full");
                self.socket_leg(addr, &data).await
            }
            "humano" => (self.wait(talk).await.unwrap_or_else(clearing), None),
            "maquina" => (self.wait(playback).await.unwrap_or_else(clearing), None),
            _ => ("NO_ROUTE_DESTINATION".to_owned(), None),
        }
    }

    /// `&app(args)` targets.
    async fn app_target(&mut self, name: &str, args: &str) -> (String, Option<SocketConn>) {
        let cfg = &self.shared.cfg;
        let max = cfg.scaled_ms(cfg.timings.max_call_ms);
        let playback = cfg.scaled_ms(cfg.timings.playback_ms);
        match name {
            "socket" => {
                let target = args.split_whitespace().next().unwrap_or_default();
                match target.parse() {
                    Ok(addr) => self.socket_leg(addr, args).await,
                    Err(_) => {
                        tracing::warn!(uuid = %self.uuid, "socket application with an unparseable address");
                        (clearing(), None)
                    }
                }
            }
            "park" => (
                self.wait(max)
                    .await
                    .unwrap_or_else(|| "ALLOTTED_TIMEOUT".to_owned()),
                None,
            ),
            "hangup" => (hangup_cause_arg(args), None),
            _ => (self.wait(playback).await.unwrap_or_else(clearing), None),
        }
    }

    /// Hangs up and reports: HANGUP, HANGUP_COMPLETE (with the CDR variables), DESTROY. The socket
    /// leg gets HANGUP and HANGUP_COMPLETE, then the disconnect notice; a lingering one gets the
    /// linger notice and is served until its linger time is over ([`CallRun::linger_out`]).
    async fn finish(mut self, cause: String, mut sock: Option<SocketConn>) {
        if let Some(tx) = self.result_tx.take() {
            let _ = tx.send(format!("-ERR {cause}\n"));
        }
        let channel_name = {
            let mut ch = lock(&self.channel);
            ch.hangup(&cause);
            ch.name.clone()
        };
        self.emit("CHANNEL_HANGUP", sock.as_mut()).await;
        lock(&self.channel).set_timestamps();
        self.emit("CHANNEL_HANGUP_COMPLETE", sock.as_mut()).await;
        if let Some(mut s) = sock {
            match s.linger {
                None => s.disconnect(&self.uuid).await,
                Some(linger) => {
                    // The session (and its max-sessions slot) lives on while the socket lingers.
                    s.linger_notice(&self.uuid, &channel_name, linger).await;
                    self.linger_out(s, linger).await;
                }
            }
        }
        lock(&self.channel).state = ChannelState::Destroy;
        self.emit("CHANNEL_DESTROY", None).await;
        lock(&self.shared.calls).remove(&self.uuid);
        let finished = {
            let ch = lock(&self.channel);
            FinishedCall {
                uuid: self.uuid.clone(),
                destination: ch.dialed.clone(),
                cause: ch.hangup_cause.clone().unwrap_or_else(|| cause.clone()),
                answered: ch.answered,
                amd: ch.var("amd_result").map(str::to_owned),
                transferred_to: self.transferred_to.clone(),
                billsec: ch.var("billsec").and_then(|b| b.parse().ok()).unwrap_or(0),
                vars: ch.vars.clone(),
                ended: std::time::Instant::now(),
            }
        };
        tracing::info!(
            uuid = %self.uuid,
            telefono = %mask(&finished.destination),
            campana = self.req.var("discador_campana").unwrap_or(""),
            cause = %finished.cause,
            answered = finished.answered,
            "simulated call ended"
        );
        self.shared.push_finished(finished);
    }
}

fn clearing() -> String {
    "NORMAL_CLEARING".to_owned()
}
