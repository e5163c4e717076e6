//! Recovery: no call is forgotten and no number is dialed twice at once.
//!
//! The rules (also in the README):
//! - **At start-up**, before any runner claims, every number left in MARCANDO or CONTESTADO (by a
//!   crash, a `kill -9`, a power cut) is checked with `uuid_exists`: a call FreeSWITCH still has is
//!   tracked again (its hangup event will finish it as usual); a call it no longer has is a counted
//!   attempt with cause `DISCADOR_RECUPERADO` — answered calls complete (result by the campaign's
//!   NOTSURE rule, since the AMD verdict was lost), unanswered ones follow the retry rule as a
//!   network failure. Then the campaigns that were ACTIVA start again.
//! - **After every ESL reconnect**, the calls that were in flight before it are checked the same way
//!   (their events may have been lost while the link was down). A call is declared gone only if
//!   FreeSWITCH still does not have it when asked again a moment later (see [`GONE_CONFIRM`]).
//! - **Periodically**, calls older than the longest ring time plus a margin, or answered calls older
//!   than a long talk, are checked too: a lost event can't leave a call "in progress" forever.
//! - When the event stream lags (the tracker fell behind and events were dropped), a reconciliation
//!   runs at once.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::domain::NumberState;
use crate::esl::{ConnState, Event, InboundClient};
use crate::store::Campaign;

use super::tracker::{CallEvent, LiveCall, Tracker};
use super::Dialer;

/// How often the stuck-call sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// An unanswered call older than this is checked (longest ring time, 120 s, plus a margin).
const UNANSWERED_MAX: Duration = Duration::from_secs(180);
/// An answered call older than this is checked on every sweep.
const ANSWERED_CHECK: Duration = Duration::from_secs(300);
/// After a reconnect, a second reconciliation this much later: a call whose hangup event was lost
/// while the link was down may still be listed by FreeSWITCH for a moment (its channel is destroyed
/// after CHANNEL_HANGUP_COMPLETE, and a lingering socket leg delays that).
const SECOND_PASS: Duration = Duration::from_secs(3);
/// How long a call FreeSWITCH says it does not have must stay unfinished before it is declared
/// gone, when FreeSWITCH is asked a second time. "No such channel" is not proof: the call's
/// CHANNEL_HANGUP_COMPLETE may still be on its way to the tracker (events and API replies travel
/// separately), or a call whose originate was just sent may not have its channel yet. Declaring it
/// gone then would record a wrong result and retry a number whose call is still up.
const GONE_CONFIRM: Duration = Duration::from_secs(2);

/// Which live calls a reconciliation checks.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Calls started before this moment: after a reconnect or lost events, only calls that were in
    /// flight when events could have been lost are suspects.
    StartedBefore(chrono::DateTime<Utc>),
    /// Calls older than a ring time or a long talk (the periodic sweep).
    Old,
}

/// Asks FreeSWITCH whether a channel exists. `None` when it could not be asked.
async fn exists(esl: &InboundClient, uuid: &Uuid) -> Option<bool> {
    match esl.api(&format!("uuid_exists {}", uuid.hyphenated())).await {
        Ok(body) => match body.trim() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                tracing::warn!(%uuid, respuesta = %other, "respuesta inesperada de uuid_exists");
                None
            }
        },
        Err(e) => {
            tracing::warn!(%uuid, error = %e, "uuid_exists falló");
            None
        }
    }
}

/// Start-up recovery of numbers left in flight, then restart of the ACTIVA campaigns.
/// Waits for FreeSWITCH: without it nothing can be decided (and nothing can be dialed).
pub async fn recover_at_startup(dialer: &Dialer) {
    let esl = dialer.esl().clone();
    let mut state = esl.state();
    loop {
        if matches!(*state.borrow_and_update(), ConnState::Connected { .. }) {
            break;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
    let campaigns = loop {
        match dialer.store().campaigns().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "recuperación: base de datos no disponible; reintento");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    for campaign in &campaigns {
        recover_campaign(dialer, campaign).await;
    }
    for campaign in campaigns {
        if campaign.estado == crate::domain::CampaignState::Activa {
            tracing::info!(campana = %campaign.nombre, "reanudando campaña activa");
            dialer.start(campaign, None);
        }
    }
}

async fn recover_campaign(dialer: &Dialer, campaign: &Campaign) {
    let in_flight = loop {
        match dialer.store().in_flight(campaign).await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(campana = %campaign.nombre, error = %e, "recuperación: reintento");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    if in_flight.is_empty() {
        return;
    }
    let (mut live, mut gone) = (0usize, 0usize);
    for n in in_flight {
        let uuid = n.uuid.as_deref().and_then(|u| Uuid::parse_str(u).ok());
        let alive = match uuid {
            Some(u) => exists(dialer.esl(), &u).await,
            None => Some(false),
        };
        let uuid = uuid.unwrap_or_else(Uuid::new_v4);
        let inicio = n.ultimo_intento.unwrap_or_else(Utc::now);
        let answered = n.estado == NumberState::Contestado;
        let mut call = LiveCall::attempt(
            campaign,
            n.id,
            &n.telefono,
            n.intentos.saturating_add(1),
            uuid,
            inicio,
        );
        call.contestada = answered.then_some(inicio);
        dialer.tracker().register(call);
        match alive {
            Some(true) => live += 1,
            // Could not ask: keep it tracked; the sweep asks again.
            None => live += 1,
            Some(false) => {
                gone += 1;
                dialer.tracker().event(CallEvent::Gone { uuid });
            }
        }
    }
    tracing::info!(campana = %campaign.nombre, vivas = live, terminadas = gone, "recuperación de llamadas en curso");
}

/// Checks the live calls in `scope` against FreeSWITCH and finishes those it no longer has: asked
/// once, then again after [`GONE_CONFIRM`] for those still unfinished (see there why).
async fn reconcile(esl: &InboundClient, tracker: &Tracker, scope: Scope) {
    let now = Utc::now();
    let mut suspects = Vec::new();
    for call in tracker.live().await {
        let in_scope = match scope {
            Scope::StartedBefore(cutoff) => call.since < cutoff,
            Scope::Old => {
                let age = (now - call.since).to_std().unwrap_or_default();
                let limit = if call.answered {
                    ANSWERED_CHECK
                } else {
                    UNANSWERED_MAX
                };
                age >= limit
            }
        };
        if in_scope && exists(esl, &call.uuid).await == Some(false) {
            suspects.push(call.uuid);
        }
    }
    if suspects.is_empty() {
        return;
    }
    tokio::time::sleep(GONE_CONFIRM).await;
    let still_live: std::collections::HashSet<Uuid> =
        tracker.live().await.into_iter().map(|c| c.uuid).collect();
    let mut gone = 0usize;
    for uuid in suspects {
        if still_live.contains(&uuid) && exists(esl, &uuid).await == Some(false) {
            gone += 1;
            tracker.event(CallEvent::Gone { uuid });
        }
    }
    if gone > 0 {
        tracing::warn!(
            llamadas = gone,
            "reconciliación: llamadas que FreeSWITCH ya no tiene"
        );
    }
}

/// Feeds the tracker from the ESL event stream, and reconciles after reconnects, after lagging and
/// periodically. Runs until the ESL client shuts down.
pub fn spawn_event_pump(dialer: &Dialer) -> tokio::task::JoinHandle<()> {
    let esl = dialer.esl().clone();
    let tracker = dialer.tracker().clone();
    tokio::spawn(async move {
        let mut events = esl.events();
        let mut state = esl.state();
        // The generation already reconciled. Seeded with the current state: the link may have come
        // up before this task started. The first connection has nothing to reconcile either (the
        // calls left by a previous run are start-up recovery's): only a change of generation after
        // one was seen is a reconnect.
        let mut generation: Option<u64> = match &*state.borrow_and_update() {
            ConnState::Connected { generation } => Some(*generation),
            _ => None,
        };
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if let Some(call_event) = call_event(&ev) {
                            tracker.event(call_event);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(perdidos = n, "eventos perdidos; reconciliando");
                        spawn_reconcile(&esl, &tracker, Scope::StartedBefore(Utc::now()));
                    }
                    Err(RecvError::Closed) => return,
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = match &*state.borrow_and_update() {
                        ConnState::Connected { generation } => Some(*generation),
                        _ => None,
                    };
                    if let Some(g) = now {
                        if generation.is_some_and(|seen| seen != g) {
                            tracing::info!("ESL reconectado; reconciliando llamadas en curso");
                            let scope = Scope::StartedBefore(Utc::now());
                            spawn_reconcile(&esl, &tracker, scope);
                            let (esl, tracker) = (esl.clone(), tracker.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(SECOND_PASS).await;
                                reconcile(&esl, &tracker, scope).await;
                            });
                        }
                        generation = Some(g);
                    }
                }
                _ = sweep.tick() => spawn_reconcile(&esl, &tracker, Scope::Old),
            }
        }
    })
}

fn spawn_reconcile(esl: &InboundClient, tracker: &Tracker, scope: Scope) {
    let esl = esl.clone();
    let tracker = tracker.clone();
    tokio::spawn(async move { reconcile(&esl, &tracker, scope).await });
}

/// The tracker's view of an ESL event: only what decides a call's state.
pub fn call_event(ev: &Event) -> Option<CallEvent> {
    let uuid = Uuid::parse_str(ev.unique_id()?).ok()?;
    match ev.name()? {
        "CHANNEL_ANSWER" => Some(CallEvent::Answered { uuid }),
        "CHANNEL_HANGUP_COMPLETE" => {
            let num = |name: &str| -> u32 {
                ev.variable(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
                    .unwrap_or(0)
            };
            let answered = num("answer_epoch") > 0 || num("billsec") > 0;
            Some(CallEvent::Hangup {
                uuid,
                cause: ev.hangup_cause().unwrap_or("NORMAL_CLEARING").to_owned(),
                answered,
                billsec: num("billsec"),
                duracion: num("duration"),
            })
        }
        _ => None,
    }
}
