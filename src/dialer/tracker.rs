//! The call tracker: the single owner of every live call's state.
//!
//! Every fact about a call arrives here as a [`CallEvent`], in order, through one channel: the
//! runner registers a call *before* its originate is sent (so no event can arrive for an unknown
//! call), the ESL event pump forwards CHANNEL_ANSWER / CHANNEL_HANGUP_COMPLETE, the originate task
//! forwards the BACKGROUND_JOB result, the controller forwards the AMD verdict and reconciliation
//! reports calls that FreeSWITCH no longer knows. Because one task owns the map, there are no locks
//! and no two writers can disagree about a call: a call is finished exactly once, and its final
//! state goes to the batched store writer as one [`NumberUpdate::Finished`].

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::outcome::{is_retryable, result_for_cause};
use crate::domain::{mask, AmdNotSure, CallResult, CampaignName, NumberState, TableName};
use crate::store::{CallRecord, NumberUpdate};

use super::metrics::CallSlot;

/// The cause recorded for a call that FreeSWITCH no longer knows after a crash or a lost
/// connection (its hangup event was never seen).
pub const CAUSE_RECOVERED: &str = "DISCADOR_RECUPERADO";

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
    /// The channel permits and live counter of this call; released when the call is dropped.
    pub slot: Option<CallSlot>,
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
            slot: None,
        }
    }
}

/// What the controller concluded about who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdVerdict {
    /// HUMANO or MAQUINA, after the campaign's NOTSURE rule.
    pub result: CallResult,
    /// FreeSWITCH's raw value (`HUMAN`, `MACHINE`, `NOTSURE`, `BEEP`, `NONE`).
    pub raw: String,
    pub cause: Option<String>,
}

/// A fact about a call.
#[derive(Debug)]
pub enum CallEvent {
    /// The originate never reached FreeSWITCH (no connection): not an attempt.
    NotSent { uuid: Uuid },
    /// BACKGROUND_JOB `+OK`: the leg was answered and sent to the dialplan.
    JobOk { uuid: Uuid },
    /// BACKGROUND_JOB `-ERR CAUSE`: the originate failed.
    JobErr { uuid: Uuid, cause: String },
    /// CHANNEL_ANSWER.
    Answered { uuid: Uuid },
    /// CHANNEL_HANGUP_COMPLETE.
    Hangup {
        uuid: Uuid,
        cause: String,
        answered: bool,
        billsec: u32,
        duracion: u32,
    },
    /// The controller's AMD verdict.
    Amd { uuid: Uuid, verdict: AmdVerdict },
    /// Reconciliation: FreeSWITCH has no such channel.
    Gone { uuid: Uuid },
}

impl CallEvent {
    fn uuid(&self) -> Uuid {
        match self {
            CallEvent::NotSent { uuid }
            | CallEvent::JobOk { uuid }
            | CallEvent::JobErr { uuid, .. }
            | CallEvent::Answered { uuid }
            | CallEvent::Hangup { uuid, .. }
            | CallEvent::Amd { uuid, .. }
            | CallEvent::Gone { uuid } => *uuid,
        }
    }
}

/// A live call as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    pub uuid: Uuid,
    pub campana: CampaignName,
    pub answered: bool,
    pub since: DateTime<Utc>,
}

enum Msg {
    Register(Box<LiveCall>),
    Event(CallEvent),
    Live(oneshot::Sender<Vec<LiveSummary>>),
}

/// The tracker's address; cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Tracker {
    /// Starts the tracker task. Final states go to `writer`; the task ends when every `Tracker`
    /// clone is dropped.
    pub fn start(writer: mpsc::UnboundedSender<NumberUpdate>, nodo: String) -> Tracker {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, writer, nodo));
        Tracker { tx }
    }

    /// Registers a call; must be called before its originate is sent.
    pub fn register(&self, call: LiveCall) {
        let _ = self.tx.send(Msg::Register(Box::new(call)));
    }

    pub fn event(&self, event: CallEvent) {
        let _ = self.tx.send(Msg::Event(event));
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

async fn run(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    writer: mpsc::UnboundedSender<NumberUpdate>,
    nodo: String,
) {
    let mut calls: HashMap<Uuid, LiveCall> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Register(call) => {
                calls.insert(call.uuid, *call);
            }
            Msg::Live(reply) => {
                let live = calls
                    .values()
                    .map(|c| LiveSummary {
                        uuid: c.uuid,
                        campana: c.campana.clone(),
                        answered: c.contestada.is_some(),
                        since: c.inicio,
                    })
                    .collect();
                let _ = reply.send(live);
            }
            Msg::Event(event) => {
                let uuid = event.uuid();
                let Some(call) = calls.get_mut(&uuid) else {
                    // Not ours, or already finished (a BACKGROUND_JOB -ERR and the channel's
                    // HANGUP_COMPLETE both end a failed call; the first one wins).
                    tracing::trace!(%uuid, "event for a call that is not live");
                    continue;
                };
                let now = Utc::now();
                match apply(call, event, now) {
                    Step::Keep(update) => {
                        if let Some(u) = update {
                            let _ = writer.send(u);
                        }
                    }
                    Step::Forget => {
                        calls.remove(&uuid);
                    }
                    Step::Finish {
                        cause,
                        billsec,
                        duracion,
                    } => {
                        if let Some(call) = calls.remove(&uuid) {
                            let record = finish(&call, &cause, billsec, duracion, now, &nodo);
                            tracing::info!(
                                campana = %call.campana,
                                uuid = %call.uuid,
                                telefono = %mask(&call.telefono),
                                resultado = %record.resultado,
                                estado = %record.estado,
                                causa = %cause,
                                "llamada terminada"
                            );
                            let _ = writer.send(NumberUpdate::Finished(record));
                            // `call` drops here: its channel permits go back to the runner.
                        }
                    }
                }
            }
        }
    }
}

/// What one event does to a live call. (Short-lived, one at a time: its size does not matter.)
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
enum Step {
    Keep(Option<NumberUpdate>),
    Forget,
    Finish {
        cause: String,
        billsec: u32,
        duracion: u32,
    },
}

fn apply(call: &mut LiveCall, event: CallEvent, now: DateTime<Utc>) -> Step {
    match event {
        CallEvent::NotSent { .. } => Step::Forget,
        CallEvent::JobOk { .. } | CallEvent::Answered { .. } => {
            if call.contestada.is_some() {
                return Step::Keep(None);
            }
            call.contestada = Some(now);
            Step::Keep(Some(NumberUpdate::Answered {
                tabla: call.tabla.clone(),
                id: call.numero_id,
            }))
        }
        CallEvent::Amd { verdict, .. } => {
            call.amd = Some(verdict);
            // Only an answered leg reaches the controller: if CHANNEL_ANSWER was lost (a reconnect),
            // this is the proof of the answer.
            if call.contestada.is_none() {
                call.contestada = Some(now);
                return Step::Keep(Some(NumberUpdate::Answered {
                    tabla: call.tabla.clone(),
                    id: call.numero_id,
                }));
            }
            Step::Keep(None)
        }
        CallEvent::JobErr { cause, .. } => Step::Finish {
            cause,
            billsec: 0,
            duracion: seconds_since(call.inicio, now),
        },
        CallEvent::Hangup {
            cause,
            answered,
            billsec,
            duracion,
            ..
        } => {
            if answered && call.contestada.is_none() {
                // The CHANNEL_ANSWER event was missed (e.g. across a reconnect); the hangup says it
                // was answered, and that is what counts.
                call.contestada = Some(now);
            }
            Step::Finish {
                cause,
                billsec,
                duracion,
            }
        }
        CallEvent::Gone { .. } => Step::Finish {
            cause: CAUSE_RECOVERED.to_owned(),
            billsec: 0,
            duracion: seconds_since(call.inicio, now),
        },
    }
}

fn seconds_since(start: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    u32::try_from((now - start).num_seconds().max(0)).unwrap_or(u32::MAX)
}

/// The final state of one attempt: the retry rule lives here.
///
/// - Answered ⇒ COMPLETADO, result from AMD (no AMD, or a verdict never reported, counts as the
///   campaign's NOTSURE destination — by default HUMANO).
/// - Not answered ⇒ the cause table decides the result; a retryable result with attempts left goes
///   back to PENDIENTE, due after the campaign's delay; anything else is ERROR.
pub fn finish(
    call: &LiveCall,
    cause: &str,
    billsec: u32,
    duracion: u32,
    now: DateTime<Utc>,
    nodo: &str,
) -> CallRecord {
    let (estado, resultado, proximo) = if call.contestada.is_some() {
        let result = match &call.amd {
            Some(v) => v.result,
            None => match call.amd_incierto {
                AmdNotSure::Humano => CallResult::Humano,
                AmdNotSure::Maquina => CallResult::Maquina,
            },
        };
        (NumberState::Completado, result, None)
    } else {
        let result = result_for_cause(cause);
        if is_retryable(result) && call.intento < call.max_intentos {
            let delay = chrono::Duration::from_std(call.intervalo_reintento)
                .unwrap_or(chrono::Duration::zero());
            (NumberState::Pendiente, result, Some(now + delay))
        } else {
            (NumberState::Error, result, None)
        }
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
        causa: Some(cause.to_owned()),
        amd_resultado: call.amd.as_ref().map(|v| v.raw.clone()),
        amd_causa: call.amd.as_ref().and_then(|v| v.cause.clone()),
        proximo_intento: proximo,
        inicio: call.inicio,
        contestada: call.contestada,
        fin: now,
        billsec,
        duracion,
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
            slot: None,
        }
    }

    #[test]
    fn busy_with_attempts_left_is_retried_after_the_delay() {
        let now = Utc::now();
        let r = finish(&call(1, 3), "USER_BUSY", 0, 5, now, "fs1");
        assert_eq!(r.estado, NumberState::Pendiente);
        assert_eq!(r.resultado, CallResult::Ocupado);
        assert_eq!(
            r.proximo_intento,
            Some(now + chrono::Duration::seconds(300))
        );
    }

    #[test]
    fn last_attempt_ends_in_error() {
        let r = finish(&call(3, 3), "NO_ANSWER", 0, 30, Utc::now(), "fs1");
        assert_eq!(r.estado, NumberState::Error);
        assert_eq!(r.resultado, CallResult::NoContesta);
        assert_eq!(r.proximo_intento, None);
    }

    #[test]
    fn invalid_numbers_are_never_retried() {
        let r = finish(&call(1, 5), "UNALLOCATED_NUMBER", 0, 1, Utc::now(), "fs1");
        assert_eq!(r.estado, NumberState::Error);
        assert_eq!(r.resultado, CallResult::NumeroInvalido);
    }

    #[test]
    fn answered_calls_complete_with_the_amd_verdict() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let mut step = apply(&mut c, CallEvent::Answered { uuid }, Utc::now());
        assert!(matches!(
            step,
            Step::Keep(Some(NumberUpdate::Answered { id: 7, .. }))
        ));
        step = apply(&mut c, CallEvent::JobOk { uuid }, Utc::now());
        assert_eq!(step, Step::Keep(None), "answer is written once");
        c.amd = Some(AmdVerdict {
            result: CallResult::Maquina,
            raw: "MACHINE".into(),
            cause: Some("LONGGREETING".into()),
        });
        let r = finish(&c, "NORMAL_CLEARING", 12, 20, Utc::now(), "fs1");
        assert_eq!(r.estado, NumberState::Completado);
        assert_eq!(r.resultado, CallResult::Maquina);
        assert_eq!(r.amd_resultado.as_deref(), Some("MACHINE"));
        assert_eq!(r.amd_causa.as_deref(), Some("LONGGREETING"));
        assert_eq!(r.billsec, 12);
    }

    #[test]
    fn answered_without_verdict_follows_the_notsure_rule() {
        let mut c = call(1, 1);
        c.contestada = Some(Utc::now());
        assert_eq!(
            finish(&c, "NORMAL_CLEARING", 1, 1, Utc::now(), "n").resultado,
            CallResult::Humano
        );
        c.amd_incierto = AmdNotSure::Maquina;
        assert_eq!(
            finish(&c, "NORMAL_CLEARING", 1, 1, Utc::now(), "n").resultado,
            CallResult::Maquina
        );
    }

    #[test]
    fn a_hangup_that_says_answered_counts_as_answered() {
        let mut c = call(1, 3);
        let uuid = c.uuid;
        let step = apply(
            &mut c,
            CallEvent::Hangup {
                uuid,
                cause: "NORMAL_CLEARING".into(),
                answered: true,
                billsec: 9,
                duracion: 15,
            },
            Utc::now(),
        );
        assert!(matches!(step, Step::Finish { billsec: 9, .. }));
        assert!(c.contestada.is_some());
    }

    #[test]
    fn a_gone_call_is_a_counted_attempt() {
        let mut c = call(1, 2);
        let uuid = c.uuid;
        let step = apply(&mut c, CallEvent::Gone { uuid }, Utc::now());
        let Step::Finish { cause, .. } = step else {
            panic!("{step:?}")
        };
        let r = finish(&c, &cause, 0, 0, Utc::now(), "n");
        assert_eq!(r.estado, NumberState::Pendiente);
        assert_eq!(r.resultado, CallResult::FallaRed);
        assert_eq!(r.causa.as_deref(), Some(CAUSE_RECOVERED));
    }

    #[tokio::test]
    async fn a_call_finishes_exactly_once() {
        let (wtx, mut wrx) = mpsc::unbounded_channel();
        let t = Tracker::start(wtx, "fs1".into());
        let c = call(1, 3);
        let uuid = c.uuid;
        t.register(c);
        t.event(CallEvent::JobErr {
            uuid,
            cause: "USER_BUSY".into(),
        });
        t.event(CallEvent::Hangup {
            uuid,
            cause: "USER_BUSY".into(),
            answered: false,
            billsec: 0,
            duracion: 1,
        });
        t.event(CallEvent::Gone { uuid });
        assert!(t.live().await.is_empty());
        let Some(NumberUpdate::Finished(r)) = wrx.recv().await else {
            panic!()
        };
        assert_eq!(r.resultado, CallResult::Ocupado);
        assert!(wrx.try_recv().is_err(), "finished twice");
    }
}
