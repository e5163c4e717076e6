//! The call tracker: the single owner of every live call's state.
//!
//! Every fact about a call arrives here as a [`CallEvent`], through one channel: the runner
//! registers a call *before* its originate is sent (so no event can arrive for an unknown call), the
//! ESL event pump forwards CHANNEL_CREATE / BACKGROUND_JOB / CHANNEL_ANSWER /
//! CHANNEL_HANGUP_COMPLETE in the order FreeSWITCH sent them, the controller reports when it takes
//! the answered call, its AMD verdict and how its control ended, and reconciliation reports calls
//! that FreeSWITCH no longer knows. Because one task owns the map, there are no locks and no two
//! writers can disagree about a call: a call is finished exactly once, and its final state goes to
//! the batched store writer as one [`NumberUpdate::Finished`] (or, for an originate the switch
//! refused without creating a channel, one [`NumberUpdate::Requeued`]: not an attempt).
//!
//! Its metrics are counted here, where each fact is decided once: an answer when a call is first
//! marked answered, a finished attempt (by `resultado`, and its disposition) when its record is
//! handed to the writer. A requeued originate is not an attempt and is not counted as finished.
//!
//! What the real switch taught, as rules here:
//! - `-ERR <CAUSE>` with no channel (no CHANNEL_CREATE before the BACKGROUND_JOB, which the switch
//!   always sends first when a channel exists) means the call never left the switch.
//! - An answered call is COMPLETADO only if it reached its destination: the controller handed it on
//!   (or the called party hung up while it drove the call). Answered calls that FreeSWITCH, the event
//!   socket or the controller lost on the way are INTERRUMPIDA: a counted attempt, retried.
//! - The controller's report and the hangup event travel on different sockets: a hangup that
//!   arrives while the controller still drives the call waits (at most [`CONTROL_GRACE`]) for its
//!   report before the call is judged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::outcome::{is_retryable, refusal, result_for_cause, Refusal};
use crate::domain::{
    mask, AmdNotSure, CallDisposition, CallResult, CampaignName, NumberState, TableName,
};
use crate::events::{Evento, Eventos};
use crate::metrics::Metrics;
use crate::store::{CallRecord, NumberUpdate};

use super::metrics::CallSlot;
use super::writer::WriterTx;

/// The cause recorded for a call that FreeSWITCH no longer knows after a crash or a lost
/// connection (its hangup event was never seen).
pub const CAUSE_RECOVERED: &str = "DISCADOR_RECUPERADO";

/// How long a hangup waits for the report of a controller that still drives the call.
pub const CONTROL_GRACE: Duration = Duration::from_secs(5);

/// How long a number refused by the switch without a channel waits before it is due again.
pub const REFUSED_RETRY: Duration = Duration::from_secs(5);

/// One call in flight, from just before its originate until its final state is handed to the writer.
#[derive(Debug)]
pub struct LiveCall {
    pub uuid: Uuid,
    pub campana: CampaignName,
    pub tabla: TableName,
    pub numero_id: i64,
    pub telefono: String,
    /// This attempt's number, 1-based.
    pub intento: u32,
    /// Attempts allowed in all: 1 + the campaign's `reintentos`.
    pub max_intentos: u32,
    pub intervalo_reintento: Duration,
    pub amd_incierto: AmdNotSure,
    pub inicio: DateTime<Utc>,
    pub contestada: Option<DateTime<Utc>>,
    pub amd: Option<AmdVerdict>,
    /// The first verdict's raw value (HUMAN, NOTSURE) once a late beep corrected it
    /// ([`CallEvent::AmdCorrected`]); `None` while the first verdict stands.
    pub amd_inicial: Option<String>,
    /// What came of the call once answered, as the controller reported it.
    pub disposition: Option<CallDisposition>,
    /// FreeSWITCH created a channel for it (CHANNEL_CREATE seen): the call left the switch's
    /// admission, so its failure is an attempt.
    pub channel: bool,
    /// Where the outbound-socket controller is with this call.
    pub control: Control,
    /// A hangup that arrived while the controller was still driving the call.
    pending_hangup: Option<Hangup>,
    /// The channel permits and live counter of this call; released when the call is dropped.
    pub slot: Option<CallSlot>,
    /// The FreeSWITCH node carrying the call (`None`: not known, a call recovered at start-up
    /// that no node has claimed yet); its name goes into the CDR.
    pub nodo: Option<String>,
}

impl LiveCall {
    /// Attempt number `intento` (1-based) of number `numero_id` of `campaign`, as a call in flight
    /// with no channel slot (the runner adds its slot).
    pub fn attempt(
        campaign: &crate::store::Campaign,
        numero_id: i64,
        telefono: &str,
        intento: u32,
        uuid: Uuid,
        inicio: DateTime<Utc>,
    ) -> LiveCall {
        LiveCall {
            uuid,
            campana: campaign.nombre.clone(),
            tabla: campaign.tabla.clone(),
            numero_id,
            telefono: telefono.to_owned(),
            intento,
            max_intentos: campaign.reintentos.saturating_add(1),
            intervalo_reintento: Duration::from_secs(u64::from(campaign.intervalo_reintento)),
            amd_incierto: campaign.amd_incierto,
            inicio,
            contestada: None,
            amd: None,
            amd_inicial: None,
            disposition: None,
            channel: false,
            control: Control::NotYet,
            pending_hangup: None,
            slot: None,
            nodo: None,
        }
    }

    /// Whether the call reached its destination (see [`ControlOutcome`]).
    fn delivered(&self) -> bool {
        matches!(
            self.control,
            Control::Ended(ControlOutcome::Delivered | ControlOutcome::CalleeHungUp)
        )
    }
}

/// What the controller concluded about who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdVerdict {
    /// HUMANO or MAQUINA, after the campaign's NOTSURE rule.
    pub result: CallResult,
    /// FreeSWITCH's raw value (`HUMAN`, `MACHINE`, `NOTSURE`, `NONE`).
    pub raw: String,
    pub cause: Option<String>,
}

/// Where the outbound-socket controller is with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The controller has not taken the call (not answered yet, or its socket never connected).
    NotYet,
    /// The controller drives the call now.
    Running,
    /// The controller is done with the call.
    Ended(ControlOutcome),
}

/// How the controller's work on an answered call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Handed to the campaign's destination (transferred), or hung up by the campaign's own rule
    /// (a machine with no machine destination). Reported *before* the command is sent, so that it
    /// is never overtaken by the hangup it causes.
    Delivered,
    /// The called party hung up while the controller drove the call (e.g. during detection): a
    /// contact that ended by the person's choice.
    CalleeHungUp,
    /// The controller could not finish: the socket or FreeSWITCH was lost, an application is
    /// missing (the switch hung the call up), the campaign is unknown. Nobody got the message.
    Failed(String),
}

/// CHANNEL_HANGUP_COMPLETE, as the tracker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hangup {
    pub cause: String,
    pub answered: bool,
    pub billsec: u32,
    pub duracion: u32,
    /// `discador_resultado` on the channel: the controller set it right before handing the call to
    /// its destination, so it proves the delivery even when the controller's own report is missing
    /// (e.g. the call was recovered after a restart of this process).
    pub resultado: Option<CallResult>,
}

/// A fact about a call.
#[derive(Debug)]
pub enum CallEvent {
    /// The originate never reached FreeSWITCH (no connection): not an attempt.
    NotSent { uuid: Uuid },
    /// CHANNEL_CREATE: FreeSWITCH created the call's channel.
    Created { uuid: Uuid },
    /// BACKGROUND_JOB `+OK`: the leg was answered and sent to the dialplan.
    JobOk { uuid: Uuid },
    /// BACKGROUND_JOB `-ERR CAUSE`: the originate failed. `cause` is the cause name alone (the
    /// event pump reads it off the job's body).
    JobErr { uuid: Uuid, cause: String },
    /// CHANNEL_ANSWER.
    Answered { uuid: Uuid },
    /// CHANNEL_HANGUP_COMPLETE.
    Hangup { uuid: Uuid, hangup: Hangup },
    /// The controller took the answered call (its socket connected).
    ControlStarted { uuid: Uuid },
    /// The controller's AMD verdict.
    Amd { uuid: Uuid, verdict: AmdVerdict },
    /// The verdict was wrong and is replaced: a HUMAN (or NOTSURE taken as a person) call turned
    /// out to be an answering machine whose beep came while the person's message played
    /// (`verdict`: MACHINE, cause LATE_BEEP). The first verdict is kept as `amd_inicial`.
    AmdCorrected { uuid: Uuid, verdict: AmdVerdict },
    /// What came of the answered call after the verdict (reported before `ControlEnded`).
    Disposition {
        uuid: Uuid,
        disposition: CallDisposition,
    },
    /// The controller is done with the call.
    ControlEnded { uuid: Uuid, outcome: ControlOutcome },
    /// Reconciliation: FreeSWITCH has no such channel. `cut`: FreeSWITCH itself restarted since the
    /// call began, so the call was cut by the switch, not ended by anyone.
    Gone { uuid: Uuid, cut: bool },
}

impl CallEvent {
    fn uuid(&self) -> Uuid {
        match self {
            CallEvent::NotSent { uuid }
            | CallEvent::Created { uuid }
            | CallEvent::JobOk { uuid }
            | CallEvent::JobErr { uuid, .. }
            | CallEvent::Answered { uuid }
            | CallEvent::Hangup { uuid, .. }
            | CallEvent::ControlStarted { uuid }
            | CallEvent::Amd { uuid, .. }
            | CallEvent::AmdCorrected { uuid, .. }
            | CallEvent::Disposition { uuid, .. }
            | CallEvent::ControlEnded { uuid, .. }
            | CallEvent::Gone { uuid, .. } => *uuid,
        }
    }
}

/// Something the dialer must act on, reported by the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// FreeSWITCH refused an originate of `campana` without creating a channel.
    Refused {
        campana: CampaignName,
        cause: String,
        kind: Refusal,
        /// The node that refused (`None`: not known).
        nodo: Option<String>,
    },
}

/// A live call as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    pub uuid: Uuid,
    pub campana: CampaignName,
    pub answered: bool,
    pub since: DateTime<Utc>,
    /// The node carrying it (`None`: not known).
    pub nodo: Option<String>,
}

enum Msg {
    Register(Box<LiveCall>),
    Event(CallEvent),
    Live(oneshot::Sender<Vec<LiveSummary>>),
    /// The phone number of a live call.
    Phone(Uuid, oneshot::Sender<Option<String>>),
    /// The node carrying a live call.
    Node(Uuid, oneshot::Sender<Option<String>>),
    /// The grace of a hangup waiting for its controller's report ran out.
    Settle(Uuid),
}

/// The tracker's address; cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Tracker {
    /// Starts the tracker task. Final states go to `writer`, things the dialer must act on to
    /// `notices`, answers and finished attempts to `metrics`; the task ends when every `Tracker`
    /// clone is dropped.
    pub fn start(
        writer: WriterTx,
        notices: mpsc::UnboundedSender<Notice>,
        nodo: String,
        clock: Clock,
        eventos: Eventos,
        metrics: Arc<Metrics>,
    ) -> Tracker {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            calls: HashMap::new(),
            writer,
            notices,
            nodo,
            clock,
            eventos,
            timers: tx.downgrade(),
            metrics,
        };
        tokio::spawn(task.run(rx));
        Tracker { tx }
    }

    /// Registers a call; must be called before its originate is sent.
    pub fn register(&self, call: LiveCall) {
        let _ = self.tx.send(Msg::Register(Box::new(call)));
    }

    pub fn event(&self, event: CallEvent) {
        let _ = self.tx.send(Msg::Event(event));
    }

    /// The number a live call dials, as its table holds it (the controller's opt-out puts it in
    /// the DNC list).
    pub async fn phone(&self, uuid: Uuid) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Phone(uuid, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The FreeSWITCH node carrying a live call (the controller asks which modules it has);
    /// `None` when the call is not live or its node is not known.
    pub async fn node(&self, uuid: Uuid) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Node(uuid, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The calls in flight right now (for reconciliation and the stuck-call sweep).
    pub async fn live(&self) -> Vec<LiveSummary> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Live(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// The tracker task's state.
struct Task {
    calls: HashMap<Uuid, LiveCall>,
    writer: WriterTx,
    notices: mpsc::UnboundedSender<Notice>,
    nodo: String,
    /// Times of answers, ends and retries (see `crate::clock`).
    clock: Clock,
    /// Where supervisors watch each call's milestones.
    eventos: Eventos,
    /// For the grace timers; weak, so that the task still ends when every `Tracker` is dropped.
    timers: mpsc::WeakUnboundedSender<Msg>,
    metrics: Arc<Metrics>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Register(call) => {
                    self.eventos.publish_with(|| {
                        Evento::originated(&call.campana, &call.uuid, &call.telefono, call.intento)
                    });
                    self.calls.insert(call.uuid, *call);
                }
                Msg::Live(reply) => {
                    let _ = reply.send(self.summaries());
                }
                Msg::Phone(uuid, reply) => {
                    let _ = reply.send(self.calls.get(&uuid).map(|c| c.telefono.clone()));
                }
                Msg::Node(uuid, reply) => {
                    let _ = reply.send(self.calls.get(&uuid).and_then(|c| c.nodo.clone()));
                }
                Msg::Event(event) => self.on_event(event),
                Msg::Settle(uuid) => {
                    let hangup = self
                        .calls
                        .get_mut(&uuid)
                        .and_then(|c| c.pending_hangup.take());
                    if let Some(h) = hangup {
                        tracing::warn!(%uuid, "el controlador no informó a tiempo tras el cuelgue");
                        if let Some(call) = self.calls.get_mut(&uuid) {
                            delivered_mark(call, &h);
                        }
                        self.finish(uuid, h);
                    }
                }
            }
        }
    }

    fn summaries(&self) -> Vec<LiveSummary> {
        self.calls
            .values()
            .map(|c| LiveSummary {
                uuid: c.uuid,
                campana: c.campana.clone(),
                answered: c.contestada.is_some(),
                since: c.inicio,
                nodo: c.nodo.clone(),
            })
            .collect()
    }

    fn on_event(&mut self, event: CallEvent) {
        let uuid = event.uuid();
        let Some(call) = self.calls.get_mut(&uuid) else {
            // Not ours (the other leg, another program's call), or already finished (a
            // BACKGROUND_JOB -ERR and the channel's HANGUP_COMPLETE both end a failed call; the
            // first one wins).
            tracing::trace!(%uuid, "event for a call that is not live");
            return;
        };
        let verdict = matches!(
            event,
            CallEvent::Amd { .. } | CallEvent::AmdCorrected { .. }
        );
        let was_answered = call.contestada.is_some();
        let step = apply(call, event, self.clock.now());
        if self.eventos.listening() {
            if !was_answered && call.contestada.is_some() {
                self.eventos.publish(Evento::Contestada {
                    campana: call.campana.to_string(),
                    uuid: uuid.hyphenated().to_string(),
                });
            }
            if let (true, Some(v)) = (verdict, &call.amd) {
                self.eventos.publish(Evento::verdict(
                    &call.campana,
                    &uuid,
                    v.result,
                    &v.raw,
                    v.cause.as_deref(),
                ));
            }
        }
        if !was_answered && call.contestada.is_some() {
            self.metrics.answered(&call.campana);
        }
        match step {
            Step::Keep(update) => {
                if let Some(u) = update {
                    let _ = self.writer.send(u);
                }
            }
            Step::Forget => {
                if let Some(call) = self.calls.remove(&uuid) {
                    self.returned(&call);
                }
            }
            Step::Wait => {
                if let Some(tx) = self.timers.upgrade() {
                    tokio::spawn(async move {
                        tokio::time::sleep(CONTROL_GRACE).await;
                        let _ = tx.send(Msg::Settle(uuid));
                    });
                }
            }
            Step::Finish(hangup) => self.finish(uuid, hangup),
            Step::Refuse(cause) => self.refuse(uuid, cause),
        }
    }

    /// Hands the call's final record to the writer; dropping the call frees its channel permits.
    fn finish(&mut self, uuid: Uuid, hangup: Hangup) {
        let Some(call) = self.calls.remove(&uuid) else {
            return;
        };
        let nodo = call.nodo.as_deref().unwrap_or(&self.nodo);
        let record = finish(&call, &hangup, self.clock.now(), nodo);
        tracing::info!(
            campana = %call.campana,
            uuid = %call.uuid,
            telefono = %mask(&call.telefono),
            resultado = %record.resultado,
            estado = %record.estado,
            causa = %hangup.cause,
            "llamada terminada"
        );
        self.eventos.publish_with(|| Evento::finished(&record));
        self.metrics
            .finished(&call.campana, record.resultado, record.disposicion.as_ref());
        let _ = self.writer.send(NumberUpdate::Finished(record));
    }

    /// Tells the stream that an originate did not become an attempt.
    fn returned(&self, call: &LiveCall) {
        self.eventos.publish_with(|| Evento::Devuelta {
            campana: call.campana.to_string(),
            uuid: call.uuid.hyphenated().to_string(),
        });
    }

    /// An originate the switch refused without a channel: back to the queue, not an attempt.
    fn refuse(&mut self, uuid: Uuid, cause: String) {
        let Some(call) = self.calls.remove(&uuid) else {
            return;
        };
        let kind = refusal(&cause);
        tracing::warn!(
            campana = %call.campana,
            %uuid,
            telefono = %mask(&call.telefono),
            causa = %cause,
            "FreeSWITCH rechazó el originate sin crear el canal; el número vuelve a la cola sin contar intento"
        );
        let due = self.clock.now()
            + chrono::Duration::from_std(REFUSED_RETRY).unwrap_or(chrono::Duration::zero());
        let _ = self.writer.send(NumberUpdate::Requeued {
            tabla: call.tabla.clone(),
            id: call.numero_id,
            uuid: call.uuid.hyphenated().to_string(),
            proximo: due,
        });
        self.returned(&call);
        let _ = self.notices.send(Notice::Refused {
            campana: call.campana.clone(),
            cause,
            kind,
            nodo: call.nodo.clone(),
        });
    }
}

/// What one event does to a live call. (Short-lived, one at a time: its size does not matter.)
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
enum Step {
    Keep(Option<NumberUpdate>),
    /// Forget the call without a record (it never reached FreeSWITCH).
    Forget,
    /// A hangup is waiting for the controller's report: start the grace timer.
    Wait,
    Finish(Hangup),
    /// Refused by the switch without a channel.
    Refuse(String),
}

/// What `event` does to `call`: the tracker's whole state machine as one `match` (long on
/// purpose: every transition of a call reads in one place).
fn apply(call: &mut LiveCall, event: CallEvent, now: DateTime<Utc>) -> Step {
    match event {
        CallEvent::NotSent { .. } => Step::Forget,
        CallEvent::Created { .. } => {
            call.channel = true;
            Step::Keep(None)
        }
        CallEvent::JobOk { .. } | CallEvent::Answered { .. } => {
            call.channel = true;
            answered(call, now)
        }
        CallEvent::ControlStarted { .. } => {
            call.channel = true;
            call.control = Control::Running;
            // Only an answered leg reaches the controller: if CHANNEL_ANSWER was lost (a
            // reconnect), this is the proof of the answer.
            answered(call, now)
        }
        CallEvent::Amd { verdict, .. } => {
            call.amd = Some(verdict);
            answered(call, now)
        }
        CallEvent::AmdCorrected { verdict, .. } => {
            // Only the first verdict is kept: a second correction (none is sent today) would
            // otherwise lose it.
            if call.amd_inicial.is_none() {
                call.amd_inicial = call.amd.take().map(|v| v.raw);
            }
            call.amd = Some(verdict);
            answered(call, now)
        }
        CallEvent::Disposition { disposition, .. } => {
            call.disposition = Some(disposition);
            Step::Keep(None)
        }
        CallEvent::ControlEnded { outcome, .. } => {
            // Only a contact is recorded as handed on: a number the controller found invalid (a
            // SIT) is not a call recovery may count as delivered.
            let delivered = matches!(outcome, ControlOutcome::Delivered)
                .then(|| call.amd.as_ref().map(|v| v.result))
                .flatten()
                .filter(|r| matches!(r, CallResult::Humano | CallResult::Maquina));
            call.control = Control::Ended(outcome);
            if let Some(h) = call.pending_hangup.take() {
                return Step::Finish(h);
            }
            // Recorded on the number, so that recovery after a crash of this process knows.
            Step::Keep(delivered.map(|resultado| NumberUpdate::Delivered {
                tabla: call.tabla.clone(),
                id: call.numero_id,
                uuid: call.uuid.hyphenated().to_string(),
                resultado,
            }))
        }
        CallEvent::JobErr { cause, .. } => {
            if call.channel || refusal(&cause) == Refusal::Number {
                Step::Finish(Hangup {
                    duracion: seconds_since(call.inicio, now),
                    ..Hangup::unanswered(cause)
                })
            } else {
                Step::Refuse(cause)
            }
        }
        CallEvent::Hangup { hangup, .. } => {
            call.channel = true;
            if hangup.answered && call.contestada.is_none() {
                // The CHANNEL_ANSWER event was missed (e.g. across a reconnect); the hangup says it
                // was answered, and that is what counts.
                call.contestada = Some(now);
            }
            if call.control == Control::Running && call.contestada.is_some() {
                // The controller still drives the call (a message, a menu, a bridge): its report
                // (the disposition, how control ended) is on its way on the other socket.
                call.pending_hangup = Some(hangup);
                return Step::Wait;
            }
            delivered_mark(call, &hangup);
            Step::Finish(hangup)
        }
        CallEvent::Gone { cut, .. } => {
            if cut && call.contestada.is_some() {
                // FreeSWITCH restarted under the call: whatever the controller did, the call was
                // cut by the switch.
                call.control = Control::Ended(ControlOutcome::Failed(
                    "FreeSWITCH se reinició durante la llamada".into(),
                ));
            }
            Step::Finish(Hangup {
                duracion: seconds_since(call.inicio, now),
                ..Hangup::unanswered(CAUSE_RECOVERED.to_owned())
            })
        }
    }
}

/// A call whose controller never reported (this process restarted, or the report came too late):
/// `discador_resultado` on the channel is the controller's mark that it handed the call on.
fn delivered_mark(call: &mut LiveCall, hangup: &Hangup) {
    let (Some(resultado), Control::NotYet | Control::Running) = (hangup.resultado, &call.control)
    else {
        return;
    };
    if call.contestada.is_some() {
        call.control = Control::Ended(ControlOutcome::Delivered);
        if call.amd.is_none() {
            call.amd = Some(AmdVerdict {
                result: resultado,
                raw: "NONE".to_owned(),
                cause: None,
            });
        }
    }
}

/// Marks the call answered (once) and says so to the store.
fn answered(call: &mut LiveCall, now: DateTime<Utc>) -> Step {
    if call.contestada.is_some() {
        return Step::Keep(None);
    }
    call.contestada = Some(now);
    Step::Keep(Some(NumberUpdate::Answered {
        tabla: call.tabla.clone(),
        id: call.numero_id,
    }))
}

impl Hangup {
    fn unanswered(cause: String) -> Hangup {
        Hangup {
            cause,
            answered: false,
            billsec: 0,
            duracion: 0,
            resultado: None,
        }
    }
}

fn seconds_since(start: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    u32::try_from((now - start).num_seconds().max(0)).unwrap_or(u32::MAX)
}

/// The final state of one attempt: the retry rule lives here.
///
/// - Answered and delivered (the controller handed it to its destination, or the called party hung
///   up while it drove the call) ⇒ COMPLETADO, result from AMD (no AMD, or a verdict never
///   reported, counts as the campaign's NOTSURE destination — by default HUMANO).
/// - Answered but never delivered (FreeSWITCH died or restarted, the socket or the controller
///   failed, the call was cut before the controller took it) ⇒ INTERRUMPIDA: a counted attempt,
///   retried like a network failure.
/// - Answered and delivered, but what the controller heard was no contact (a SIT tone: the
///   network's announcement that the number is not in service) ⇒ that result (NUMERO_INVALIDO),
///   under the retry rule below: ERROR, never retried.
/// - Not answered ⇒ the cause table decides the result.
/// - A retryable result with attempts left goes back to PENDIENTE, due after the campaign's delay;
///   anything else is ERROR.
pub fn finish(call: &LiveCall, hangup: &Hangup, now: DateTime<Utc>, nodo: &str) -> CallRecord {
    let retry_rule = |result: CallResult| {
        if is_retryable(result) && call.intento < call.max_intentos {
            let delay = chrono::Duration::from_std(call.intervalo_reintento)
                .unwrap_or(chrono::Duration::zero());
            (NumberState::Pendiente, result, Some(now + delay))
        } else {
            (NumberState::Error, result, None)
        }
    };
    let (estado, resultado, proximo) = if call.contestada.is_some() && call.delivered() {
        let result = match &call.amd {
            Some(v) => v.result,
            None => match call.amd_incierto {
                AmdNotSure::Humano => CallResult::Humano,
                AmdNotSure::Maquina => CallResult::Maquina,
            },
        };
        match result {
            CallResult::Humano | CallResult::Maquina => (NumberState::Completado, result, None),
            other => retry_rule(other),
        }
    } else {
        let result = if call.contestada.is_some() {
            CallResult::Interrumpida
        } else {
            result_for_cause(&hangup.cause)
        };
        retry_rule(result)
    };
    CallRecord {
        campana: call.campana.clone(),
        tabla: call.tabla.clone(),
        numero_id: call.numero_id,
        telefono: call.telefono.clone(),
        intento: call.intento,
        uuid: call.uuid.hyphenated().to_string(),
        nodo: nodo.to_owned(),
        estado,
        resultado,
        causa: Some(hangup.cause.clone()),
        amd_resultado: call.amd.as_ref().map(|v| v.raw.clone()),
        amd_causa: call.amd.as_ref().and_then(|v| v.cause.clone()),
        amd_inicial: call.amd_inicial.clone(),
        proximo_intento: proximo,
        inicio: call.inicio,
        contestada: call.contestada,
        fin: now,
        billsec: hangup.billsec,
        duracion: hangup.duracion,
        disposicion: call.disposition.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(intento: u32, max: u32) -> LiveCall {
        LiveCall {
            uuid: Uuid::new_v4(),
            campana: CampaignName::parse("PRUEBA").unwrap(),
            tabla: TableName::parse("PRUEBA").unwrap(),
            numero_id: 7,
            telefono: "5491144445555".into(),
            intento,
            max_intentos: max,
            intervalo_reintento: Duration::from_secs(300),
            amd_incierto: AmdNotSure::Humano,
            inicio: Utc::now(),
            contestada: None,
            amd: None,
            amd_inicial: None,
            disposition: None,
            channel: false,
            control: Control::NotYet,
            pending_hangup: None,
            slot: None,
            nodo: None,
        }
    }

    fn hangup(cause: &str, answered: bool) -> Hangup {
        Hangup {
            cause: cause.into(),
            answered,
            billsec: if answered { 12 } else { 0 },
            duracion: 20,
            resultado: None,
        }
    }

    fn machine() -> AmdVerdict {
        AmdVerdict {
            result: CallResult::Maquina,
            raw: "MACHINE".into(),
            cause: Some("LONGGREETING".into()),
        }
    }

    #[test]
    fn busy_with_attempts_left_is_retried_after_the_delay() {
        let now = Utc::now();
        let r = finish(&call(1, 3), &hangup("USER_BUSY", false), now, "fs1");
        assert_eq!(r.estado, NumberState::Pendiente);
        assert_eq!(r.resultado, CallResult::Ocupado);
        assert_eq!(
            r.proximo_intento,
            Some(now + chrono::Duration::seconds(300))
        );
    }

    #[test]
    fn last_attempt_ends_in_error() {
        let r = finish(&call(3, 3), &hangup("NO_ANSWER", false), Utc::now(), "fs1");
        assert_eq!(r.estado, NumberState::Error);
        assert_eq!(r.resultado, CallResult::NoContesta);
        assert_eq!(r.proximo_intento, None);
    }

    #[test]
    fn invalid_numbers_are_never_retried() {
        let r = finish(
            &call(1, 5),
            &hangup("UNALLOCATED_NUMBER", false),
            Utc::now(),
            "fs1",
        );
        assert_eq!(r.estado, NumberState::Error);
        assert_eq!(r.resultado, CallResult::NumeroInvalido);
    }

    #[test]
    fn delivered_calls_complete_with_the_amd_verdict() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let step = apply(&mut c, CallEvent::Answered { uuid }, Utc::now());
        assert!(matches!(
            step,
            Step::Keep(Some(NumberUpdate::Answered { id: 7, .. }))
        ));
        let step = apply(&mut c, CallEvent::JobOk { uuid }, Utc::now());
        assert_eq!(step, Step::Keep(None), "answer is written once");
        apply(&mut c, CallEvent::ControlStarted { uuid }, Utc::now());
        apply(
            &mut c,
            CallEvent::Amd {
                uuid,
                verdict: machine(),
            },
            Utc::now(),
        );
        let step = apply(
            &mut c,
            CallEvent::ControlEnded {
                uuid,
                outcome: ControlOutcome::Delivered,
            },
            Utc::now(),
        );
        assert!(
            matches!(
                step,
                Step::Keep(Some(NumberUpdate::Delivered {
                    resultado: CallResult::Maquina,
                    ..
                }))
            ),
            "{step:?}"
        );
        let r = finish(&c, &hangup("NORMAL_CLEARING", true), Utc::now(), "fs1");
        assert_eq!(r.estado, NumberState::Completado);
        assert_eq!(r.resultado, CallResult::Maquina);
        assert_eq!(r.amd_resultado.as_deref(), Some("MACHINE"));
        assert_eq!(r.amd_causa.as_deref(), Some("LONGGREETING"));
        assert_eq!(r.billsec, 12);
    }

    fn person() -> AmdVerdict {
        AmdVerdict {
            result: CallResult::Humano,
            raw: "HUMAN".into(),
            cause: Some("HUMAN".into()),
        }
    }

    fn late_beep() -> AmdVerdict {
        AmdVerdict {
            result: CallResult::Maquina,
            raw: "MACHINE".into(),
            cause: Some("LATE_BEEP".into()),
        }
    }

    /// A HUMAN verdict corrected by a beep heard during the person's message: the call is a
    /// machine (its message left after the beep), and the CDR keeps the first verdict.
    #[test]
    fn a_late_beep_corrects_the_verdict_and_keeps_the_first_one() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        apply(&mut c, CallEvent::ControlStarted { uuid }, Utc::now());
        apply(
            &mut c,
            CallEvent::Amd {
                uuid,
                verdict: person(),
            },
            Utc::now(),
        );
        assert_eq!(
            c.amd_inicial, None,
            "a verdict that stands has no first one"
        );
        let step = apply(
            &mut c,
            CallEvent::AmdCorrected {
                uuid,
                verdict: late_beep(),
            },
            Utc::now(),
        );
        assert_eq!(step, Step::Keep(None), "the answer was already written");
        assert_eq!(c.amd, Some(late_beep()));
        assert_eq!(c.amd_inicial.as_deref(), Some("HUMAN"));
        let mut d = CallDisposition::new(crate::domain::Disposition::MensajeDejado);
        d.mensaje_ms = Some(4_000);
        d.tras_beep_ms = Some(120);
        apply(
            &mut c,
            CallEvent::Disposition {
                uuid,
                disposition: d.clone(),
            },
            Utc::now(),
        );
        let step = apply(
            &mut c,
            CallEvent::ControlEnded {
                uuid,
                outcome: ControlOutcome::Delivered,
            },
            Utc::now(),
        );
        assert!(
            matches!(
                step,
                Step::Keep(Some(NumberUpdate::Delivered {
                    resultado: CallResult::Maquina,
                    ..
                }))
            ),
            "recovery would know it as a machine: {step:?}"
        );
        let r = finish(&c, &hangup("NORMAL_CLEARING", true), Utc::now(), "fs1");
        assert_eq!(
            (r.estado, r.resultado),
            (NumberState::Completado, CallResult::Maquina)
        );
        assert_eq!(r.amd_resultado.as_deref(), Some("MACHINE"));
        assert_eq!(r.amd_causa.as_deref(), Some("LATE_BEEP"));
        assert_eq!(r.amd_inicial.as_deref(), Some("HUMAN"));
        assert_eq!(r.disposicion, Some(d));
    }

    /// The first verdict is the one kept, whatever corrects it afterwards; a NOTSURE taken as a
    /// person is kept as NOTSURE.
    #[test]
    fn only_the_first_verdict_is_kept() {
        let mut c = call(1, 1);
        let uuid = c.uuid;
        let notsure = AmdVerdict {
            result: CallResult::Humano,
            raw: "NOTSURE".into(),
            cause: Some("INITIALSILENCE".into()),
        };
        apply(
            &mut c,
            CallEvent::Amd {
                uuid,
                verdict: notsure,
            },
            Utc::now(),
        );
        for _ in 0..2 {
            apply(
                &mut c,
                CallEvent::AmdCorrected {
                    uuid,
                    verdict: late_beep(),
                },
                Utc::now(),
            );
        }
        assert_eq!(c.amd_inicial.as_deref(), Some("NOTSURE"));
        assert_eq!(c.amd, Some(late_beep()));
    }

    /// A SIT tone heard by the controller: the number is invalid, the call is not a contact and
    /// the number is never dialed again, whatever attempts it has left.
    #[test]
    fn a_sit_from_the_controller_is_an_invalid_number_never_retried() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        apply(&mut c, CallEvent::ControlStarted { uuid }, Utc::now());
        apply(
            &mut c,
            CallEvent::Amd {
                uuid,
                verdict: AmdVerdict {
                    result: CallResult::NumeroInvalido,
                    raw: "SIT".into(),
                    cause: Some("SIT".into()),
                },
            },
            Utc::now(),
        );
        let step = apply(
            &mut c,
            CallEvent::ControlEnded {
                uuid,
                outcome: ControlOutcome::Delivered,
            },
            Utc::now(),
        );
        assert_eq!(
            step,
            Step::Keep(None),
            "not recorded as a delivered contact"
        );
        let r = finish(&c, &hangup("UNALLOCATED_NUMBER", true), Utc::now(), "fs1");
        assert_eq!(
            (r.estado, r.resultado, r.proximo_intento),
            (NumberState::Error, CallResult::NumeroInvalido, None)
        );
        assert_eq!(r.amd_resultado.as_deref(), Some("SIT"));
        assert_eq!(r.amd_inicial, None);
    }

    #[test]
    fn delivered_without_verdict_follows_the_notsure_rule() {
        let mut c = call(1, 1);
        c.contestada = Some(Utc::now());
        c.control = Control::Ended(ControlOutcome::CalleeHungUp);
        let h = hangup("NORMAL_CLEARING", true);
        assert_eq!(
            finish(&c, &h, Utc::now(), "n").resultado,
            CallResult::Humano
        );
        c.amd_incierto = AmdNotSure::Maquina;
        assert_eq!(
            finish(&c, &h, Utc::now(), "n").resultado,
            CallResult::Maquina
        );
    }

    /// Issue 9, point 7: an answered call that never reached its destination is not COMPLETADO.
    #[test]
    fn answered_but_never_delivered_is_interrupted_and_retried() {
        for control in [
            Control::NotYet,
            Control::Running,
            Control::Ended(ControlOutcome::Failed("socket".into())),
        ] {
            let mut c = call(1, 2);
            c.contestada = Some(Utc::now());
            c.control = control.clone();
            let r = finish(&c, &hangup("NORMAL_CLEARING", true), Utc::now(), "n");
            assert_eq!(r.estado, NumberState::Pendiente, "{control:?}");
            assert_eq!(r.resultado, CallResult::Interrumpida, "{control:?}");
            // The last attempt ends in ERROR, still INTERRUMPIDA.
            let mut last = call(2, 2);
            last.contestada = c.contestada;
            last.control = control.clone();
            let r = finish(&last, &hangup("NORMAL_CLEARING", true), Utc::now(), "n");
            assert_eq!(
                (r.estado, r.resultado),
                (NumberState::Error, CallResult::Interrumpida)
            );
        }
    }

    #[test]
    fn a_hangup_that_says_answered_counts_as_answered() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let step = apply(
            &mut c,
            CallEvent::Hangup {
                uuid,
                hangup: hangup("NORMAL_CLEARING", true),
            },
            Utc::now(),
        );
        assert!(matches!(step, Step::Finish(Hangup { billsec: 12, .. })));
        assert!(c.contestada.is_some());
    }

    /// The channel's `discador_resultado` proves the delivery when the controller's report is
    /// missing (a call recovered after a restart of this process).
    #[test]
    fn the_channel_mark_proves_the_delivery() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let mut h = hangup("NORMAL_CLEARING", true);
        h.resultado = Some(CallResult::Maquina);
        let Step::Finish(h) = apply(&mut c, CallEvent::Hangup { uuid, hangup: h }, Utc::now())
        else {
            panic!()
        };
        let r = finish(&c, &h, Utc::now(), "n");
        assert_eq!(
            (r.estado, r.resultado),
            (NumberState::Completado, CallResult::Maquina)
        );
    }

    /// A controller running a script (message, menu, bridge) has already set `discador_resultado`
    /// when the person hangs up: the hangup still waits for its report, which carries the
    /// disposition into the record.
    #[test]
    fn a_hangup_waits_for_the_controller_that_drives_the_call() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        apply(&mut c, CallEvent::ControlStarted { uuid }, Utc::now());
        let mut h = hangup("NORMAL_CLEARING", true);
        h.resultado = Some(CallResult::Humano);
        let step = apply(&mut c, CallEvent::Hangup { uuid, hangup: h }, Utc::now());
        assert_eq!(step, Step::Wait, "the mark does not overtake the report");
        let mut d = CallDisposition::new(crate::domain::Disposition::ColgoEnMensaje);
        d.mensaje_ms = Some(1_200);
        apply(
            &mut c,
            CallEvent::Disposition {
                uuid,
                disposition: d.clone(),
            },
            Utc::now(),
        );
        let step = apply(
            &mut c,
            CallEvent::ControlEnded {
                uuid,
                outcome: ControlOutcome::CalleeHungUp,
            },
            Utc::now(),
        );
        let Step::Finish(h) = step else {
            panic!("{step:?}")
        };
        let r = finish(&c, &h, Utc::now(), "n");
        assert_eq!(
            (r.estado, r.resultado),
            (NumberState::Completado, CallResult::Humano)
        );
        assert_eq!(r.disposicion, Some(d));
    }

    /// Issue 9, point 6: `-ERR` with no channel is not an attempt; with a channel it is.
    #[test]
    fn a_refusal_without_a_channel_is_not_an_attempt() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let step = apply(
            &mut c,
            CallEvent::JobErr {
                uuid,
                cause: "DESTINATION_OUT_OF_ORDER".into(),
            },
            Utc::now(),
        );
        assert_eq!(step, Step::Refuse("DESTINATION_OUT_OF_ORDER".into()));
        let mut c = call(1, 3);
        apply(&mut c, CallEvent::Created { uuid }, Utc::now());
        let step = apply(
            &mut c,
            CallEvent::JobErr {
                uuid,
                cause: "USER_BUSY".into(),
            },
            Utc::now(),
        );
        assert!(matches!(step, Step::Finish(Hangup { ref cause, .. }) if cause == "USER_BUSY"));
        // A cause about the number itself is an attempt even without a channel.
        let mut c = call(1, 3);
        let step = apply(
            &mut c,
            CallEvent::JobErr {
                uuid,
                cause: "INVALID_NUMBER_FORMAT".into(),
            },
            Utc::now(),
        );
        assert!(matches!(step, Step::Finish(_)));
    }

    #[test]
    fn a_gone_call_is_a_counted_attempt() {
        let mut c = call(1, 2);
        let uuid = c.uuid;
        let Step::Finish(h) = apply(&mut c, CallEvent::Gone { uuid, cut: false }, Utc::now())
        else {
            panic!()
        };
        let r = finish(&c, &h, Utc::now(), "n");
        assert_eq!(r.estado, NumberState::Pendiente);
        assert_eq!(r.resultado, CallResult::FallaRed);
        assert_eq!(r.causa.as_deref(), Some(CAUSE_RECOVERED));
    }

    /// Issue 9, point 7: a switch restart cuts delivered calls too.
    #[test]
    fn a_call_cut_by_a_switch_restart_is_interrupted() {
        let mut c = call(1, 2);
        let uuid = c.uuid;
        c.contestada = Some(Utc::now());
        c.control = Control::Ended(ControlOutcome::Delivered);
        let Step::Finish(h) = apply(&mut c, CallEvent::Gone { uuid, cut: false }, Utc::now())
        else {
            panic!()
        };
        assert_eq!(
            finish(&c, &h, Utc::now(), "n").resultado,
            CallResult::Humano,
            "the event socket was lost, the switch was not: a delivered call ended normally"
        );
        let Step::Finish(h) = apply(&mut c, CallEvent::Gone { uuid, cut: true }, Utc::now()) else {
            panic!()
        };
        let r = finish(&c, &h, Utc::now(), "n");
        assert_eq!(
            (r.estado, r.resultado),
            (NumberState::Pendiente, CallResult::Interrumpida)
        );
    }

    /// A tracker of node `fs1` on the system clock, recording into `metrics`.
    fn tracker(
        wtx: WriterTx,
        ntx: mpsc::UnboundedSender<Notice>,
        metrics: Arc<Metrics>,
    ) -> Tracker {
        Tracker::start(
            wtx,
            ntx,
            "fs1".into(),
            Clock::system(),
            Eventos::default(),
            metrics,
        )
    }
    #[tokio::test]
    async fn a_call_finishes_exactly_once() {
        let (wtx, mut wrx) = WriterTx::channel();
        let (ntx, _nrx) = mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::new());
        let t = tracker(wtx, ntx, metrics.clone());
        let c = call(1, 3);
        let uuid = c.uuid;
        t.register(c);
        t.event(CallEvent::Created { uuid });
        t.event(CallEvent::JobErr {
            uuid,
            cause: "USER_BUSY".into(),
        });
        t.event(CallEvent::Hangup {
            uuid,
            hangup: hangup("USER_BUSY", false),
        });
        t.event(CallEvent::Gone { uuid, cut: false });
        assert!(t.live().await.is_empty());
        let Some(NumberUpdate::Finished(r)) = wrx.recv().await else {
            panic!()
        };
        assert_eq!(r.resultado, CallResult::Ocupado);
        assert!(wrx.try_recv().is_err(), "finished twice");
        let text = metrics.encode();
        assert!(
            text.contains(
                "discador_llamadas_terminadas_total{campana=\"PRUEBA\",resultado=\"OCUPADO\"} 1\n"
            ),
            "counted once: {text}"
        );
        assert!(!text.contains("discador_contestadas_total{"), "{text}");
    }

    /// A hangup whose controller never reports (`mark`: `discador_resultado` on the channel): the
    /// record the tracker writes once the grace runs out.
    async fn silent_controller(mark: Option<CallResult>) -> CallRecord {
        let (wtx, mut wrx) = WriterTx::channel();
        let (ntx, _nrx) = mpsc::unbounded_channel();
        let t = tracker(wtx, ntx, Arc::new(Metrics::new()));
        let c = call(1, 3);
        let uuid = c.uuid;
        t.register(c);
        t.event(CallEvent::ControlStarted { uuid });
        let mut h = hangup("NORMAL_CLEARING", true);
        h.resultado = mark;
        t.event(CallEvent::Hangup { uuid, hangup: h });
        assert_eq!(t.live().await.len(), 1, "waits for the controller");
        tokio::time::sleep(CONTROL_GRACE + Duration::from_millis(10)).await;
        assert!(t.live().await.is_empty());
        let mut last = None;
        while let Ok(u) = wrx.try_recv() {
            last = Some(u);
        }
        let Some(NumberUpdate::Finished(r)) = last else {
            panic!("{last:?}")
        };
        r
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_controller_does_not_hold_the_call_forever() {
        let r = silent_controller(None).await;
        assert_eq!(r.resultado, CallResult::Interrumpida);
    }

    /// The controller never reported, but the channel carries its delivery mark: delivered.
    #[tokio::test(start_paused = true)]
    async fn a_silent_controller_with_the_mark_on_the_channel_delivered_the_call() {
        let r = silent_controller(Some(CallResult::Maquina)).await;
        assert_eq!(
            (r.estado, r.resultado),
            (NumberState::Completado, CallResult::Maquina)
        );
    }

    #[tokio::test]
    async fn refusals_are_requeued_and_reported() {
        let (wtx, mut wrx) = WriterTx::channel();
        let (ntx, mut nrx) = mpsc::unbounded_channel();
        let t = tracker(wtx, ntx, Arc::new(Metrics::new()));
        let mut c = call(1, 3);
        c.nodo = Some("fs2".into());
        let uuid = c.uuid;
        t.register(c);
        t.event(CallEvent::JobErr {
            uuid,
            cause: "INVALID_GATEWAY".into(),
        });
        assert!(t.live().await.is_empty());
        assert!(matches!(
            wrx.recv().await,
            Some(NumberUpdate::Requeued { id: 7, .. })
        ));
        assert_eq!(
            nrx.recv().await,
            Some(Notice::Refused {
                campana: CampaignName::parse("PRUEBA").unwrap(),
                cause: "INVALID_GATEWAY".into(),
                kind: Refusal::Configuration,
                nodo: Some("fs2".into()),
            })
        );
    }
}
