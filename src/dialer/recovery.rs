//! Recovery: no call is forgotten and no number is dialed twice at once.
//!
//! The rules (also in the README):
//! - **At start-up**, before any runner claims, every number left in MARCANDO or CONTESTADO (by a
//!   crash, a `kill -9`, a power cut) is checked with `uuid_exists`: a call FreeSWITCH still has is
//!   tracked again (its hangup event will finish it as usual); a call it no longer has is a counted
//!   attempt with cause `DISCADOR_RECUPERADO` — an answered call that the controller had handed to
//!   its destination (the result it recorded on the number, see `NumberUpdate::Delivered`)
//!   completes with that result; one it had not is INTERRUMPIDA (nobody heard the message) and
//!   follows the retry rule, as unanswered ones do as a network failure. A number that was only
//!   claimed — MARCANDO with `ultimo_intento` still NULL, its originate never sent (see
//!   `NumberUpdate::Sent`) — and that FreeSWITCH does not have goes back to PENDIENTE with no
//!   attempt. Then the campaigns that were ACTIVA start again.
//! - **After every ESL reconnect**, the calls that were in flight before it are checked the same way
//!   (their events may have been lost while the link was down). A call is declared gone only if
//!   FreeSWITCH still does not have it when asked again a moment later (see [`GONE_CONFIRM`]). If
//!   FreeSWITCH itself restarted meanwhile (its `core_uuid` changed), every such call was cut by the
//!   switch: answered ones are INTERRUMPIDA even if they had reached their destination.
//! - **At every connection** the switch is asked which AMD modules and gateways it has (see
//!   `node.rs`, `pool.rs`).
//! - **Per node**: each FreeSWITCH node of the pool has its own event pump; reconnect, lag, sweep
//!   and restart reconciliation touch only that node's calls and ask only it. A node down longer
//!   than `NODO_PERDIDO_S` is lost: its calls are declared cut by the switch. Calls whose node is
//!   unknown (start-up recovery: the database does not store it) ask every node (`Pool::exists`).
//! - **Periodically**, calls older than the longest ring time plus a margin, or answered calls older
//!   than a long talk, are checked too: a lost event can't leave a call "in progress" forever.
//! - When the event stream lags (the tracker fell behind and events were dropped), a reconciliation
//!   runs at once.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::domain::{CallResult, NumberState};
use std::sync::Arc;

use crate::esl::{ConnState, Event, JobResult};
use crate::store::{Campaign, InFlight};

use super::pool::{Pool, PoolNode};
use super::tracker::{AmdVerdict, CallEvent, Control, ControlOutcome, Hangup, LiveCall, Tracker};
use super::{node, Dialer};

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

/// Asks the node a call belongs to whether it still has the channel, or every node for a call
/// whose node is unknown (see `Pool::exists`). `None` when it could not be told.
async fn exists(pool: &Pool, nodo: Option<&str>, uuid: &Uuid) -> Option<bool> {
    match nodo.and_then(|n| pool.get(n)) {
        Some(node) => node.exists(uuid).await,
        None => pool.exists(uuid).await.0,
    }
}

/// Start-up recovery of numbers left in flight, then restart of the ACTIVA campaigns this process
/// may run. Only campaigns whose lease is free (no owner, or a dead one) are touched: a live
/// peer's calls in flight are its own. Numbers left in flight need FreeSWITCH (is the call still
/// up?), so recovery waits for it then; after a clean stop there are none and recovery needs only
/// the database. The ACTIVA campaigns are then started by the lease loop's first pass.
pub async fn recover_at_startup(dialer: &Dialer, procesos: &crate::procesos::Procesos) {
    procesos.wait_alive().await;
    let campaigns = loop {
        match dialer.store().campaigns().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "recuperación: base de datos no disponible; reintento");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut left = Vec::new();
    for campaign in &campaigns {
        let in_flight = loop {
            match dialer.store().in_flight(campaign).await {
                Ok(v) => break v,
                Err(e) => {
                    tracing::warn!(campana = %campaign.nombre, error = %e, "recuperación: reintento");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        if !in_flight.is_empty() && procesos.take_for_recovery(campaign).await {
            left.push((campaign, in_flight));
        }
    }
    if !left.is_empty() {
        // Some node must be up to ask (a node down for good is lost after NODO_PERDIDO_S, and
        // then counts as "does not have it").
        let mut changes = dialer.pool().subscribe();
        loop {
            changes.borrow_and_update();
            let pool = dialer.pool();
            if pool.any_connected() || pool.nodes().iter().all(|n| n.lost()) {
                break;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
        for (campaign, in_flight) in left {
            recover_campaign(dialer, campaign, in_flight).await;
        }
    }
    dialer.mark_recovered();
    tracing::info!("recuperación de arranque terminada");
    if let Err(e) = procesos.pass().await {
        tracing::warn!(error = %e, "no se pudieron reanudar las campañas activas; se reintenta en el próximo latido");
    }
}

/// Tracks again the numbers `campaign` left in flight: those FreeSWITCH still has end as usual,
/// the others are finished now.
pub(crate) async fn recover_campaign(
    dialer: &Dialer,
    campaign: &Campaign,
    in_flight: Vec<InFlight>,
) {
    let (mut live, mut gone) = (0usize, 0usize);
    let mut unsent: Vec<InFlight> = Vec::new();
    for n in in_flight {
        let uuid = n.uuid.as_deref().and_then(|u| Uuid::parse_str(u).ok());
        let (alive, holder) = match uuid {
            Some(u) => dialer.pool().exists(&u).await,
            None => (Some(false), None),
        };
        if n.estado == NumberState::Marcando && n.ultimo_intento.is_none() && alive == Some(false) {
            // Claimed, its originate never sent (see `NumberUpdate::Sent`): not an attempt.
            unsent.push(n);
            continue;
        }
        register_recovered(
            dialer, campaign, n, uuid, alive, holder, &mut live, &mut gone,
        );
    }
    let unsent_count = unsent.len();
    let given_back = give_back_unsent(dialer, campaign, &unsent).await;
    if !given_back {
        // They stay MARCANDO if nothing is done: count them as attempts rather than leave the
        // campaign unable to finish (the retry rule applies).
        for n in unsent {
            let uuid = n.uuid.as_deref().and_then(|u| Uuid::parse_str(u).ok());
            register_recovered(
                dialer,
                campaign,
                n,
                uuid,
                Some(false),
                None,
                &mut live,
                &mut gone,
            );
        }
    }
    tracing::info!(campana = %campaign.nombre, vivas = live, terminadas = gone, sin_enviar = if given_back { unsent_count } else { 0 }, "recuperación de llamadas en curso");
}

/// Gives back the numbers that were claimed and never dialed (PENDIENTE, no attempt counted);
/// `false` if the database refused three times.
async fn give_back_unsent(dialer: &Dialer, campaign: &Campaign, unsent: &[InFlight]) -> bool {
    if unsent.is_empty() {
        return true;
    }
    let ids: Vec<i64> = unsent.iter().map(|n| n.id).collect();
    for _ in 0..3 {
        match dialer.store().unclaim(campaign, &ids).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(campana = %campaign.nombre, error = %e, "recuperación: no se pudieron devolver números sin marcar; reintento");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    false
}

/// Tracks a number left in flight again: alive, its hangup finishes it; gone, it is finished now.
#[allow(clippy::too_many_arguments)]
fn register_recovered(
    dialer: &Dialer,
    campaign: &Campaign,
    n: InFlight,
    uuid: Option<Uuid>,
    alive: Option<bool>,
    holder: Option<std::sync::Arc<super::pool::PoolNode>>,
    live: &mut usize,
    gone: &mut usize,
) {
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
    // Found alive: the node that has it carries it (its CDR names it).
    call.nodo = holder.map(|n| n.nombre.clone());
    if let Some(result) = n.entregada {
        // The controller had handed it on before this process stopped.
        call.control = Control::Ended(ControlOutcome::Delivered);
        call.amd = Some(AmdVerdict {
            result,
            raw: "NONE".to_owned(),
            cause: Some("RECUPERADA".to_owned()),
        });
    }
    dialer.tracker().register(call);
    match alive {
        Some(true) => *live += 1,
        // Could not ask: keep it tracked; the sweep asks again.
        None => *live += 1,
        Some(false) => {
            *gone += 1;
            dialer.tracker().event(CallEvent::Gone { uuid, cut: false });
        }
    }
}

/// Checks the live calls in `scope` against FreeSWITCH and finishes those it no longer has: asked
/// once, then again after [`GONE_CONFIRM`] for those still unfinished (see there why). `cut`: the
/// switch restarted since these calls began.
///
/// `node`: only that node's calls, asked of it; `None`: the calls whose node is unknown, asked of
/// every node.
async fn reconcile(
    pool: &Pool,
    node: Option<&PoolNode>,
    tracker: &Tracker,
    scope: Scope,
    cut: bool,
) {
    let now = Utc::now();
    let mut suspects = Vec::new();
    let mine = |nodo: &Option<String>| match node {
        Some(n) => nodo.as_deref() == Some(n.nombre.as_str()),
        None => nodo.as_deref().is_none_or(|x| pool.get(x).is_none()),
    };
    let nodo = node.map(|n| n.nombre.as_str());
    for call in tracker.live().await {
        if !mine(&call.nodo) {
            continue;
        }
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
        if in_scope && exists(pool, nodo, &call.uuid).await == Some(false) {
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
        if still_live.contains(&uuid) && exists(pool, nodo, &uuid).await == Some(false) {
            gone += 1;
            tracker.event(CallEvent::Gone { uuid, cut });
        }
    }
    if gone > 0 {
        tracing::warn!(
            llamadas = gone,
            nodo = nodo.unwrap_or("desconocido"),
            "reconciliación: llamadas que FreeSWITCH ya no tiene"
        );
    }
}

/// One event pump per node (see [`node_pump`]), the sweep of calls whose node is unknown, and
/// the re-reading of the drained flags every [`DRAINS_EVERY`]. Runs until the ESL clients shut
/// down; aborting the returned task stops them all.
pub fn spawn_event_pump(dialer: &Dialer) -> tokio::task::JoinHandle<()> {
    let dialer = dialer.clone();
    tokio::spawn(async move {
        let mut pumps = tokio::task::JoinSet::new();
        for node in dialer.pool().nodes() {
            pumps.spawn(node_pump(dialer.clone(), node.clone()));
        }
        // Dropped (so aborted) when every pump has ended.
        let mut others = tokio::task::JoinSet::new();
        let pool = dialer.pool().clone();
        let tracker = dialer.tracker().clone();
        others.spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                sweep.tick().await;
                reconcile(
                    &pool,
                    None,
                    &tracker,
                    Scope::StartedBefore(Utc::now()),
                    false,
                )
                .await;
            }
        });
        let drains = dialer.clone();
        others.spawn(async move {
            loop {
                if let Err(e) = drains.reload_drains().await {
                    tracing::debug!(error = %e, "no se pudieron leer los nodos drenados");
                }
                tokio::time::sleep(DRAINS_EVERY).await;
            }
        });
        while pumps.join_next().await.is_some() {}
        others.abort_all();
    })
}

/// How often the drained flags are read again from the database (other processes set them too).
const DRAINS_EVERY: Duration = Duration::from_secs(2);

/// Feeds the tracker from one node's event stream; at every connection asks the switch which
/// modules and gateways it has and which run of FreeSWITCH it is; reconciles that node's calls
/// after reconnects, after lagging and periodically; declares its calls cut when it stays down
/// longer than `NODO_PERDIDO_S`. Runs until the node's ESL client shuts down.
async fn node_pump(dialer: Dialer, node: Arc<PoolNode>) {
    let pool = dialer.pool().clone();
    let tracker = dialer.tracker().clone();
    let mut events = node.esl.events();
    let mut state = node.esl.state();
    // The generation already handled. The first connection has nothing to reconcile (the calls
    // left by a previous run are start-up recovery's): only a change of generation after one was
    // seen is a reconnect.
    let mut generation: Option<u64> = None;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        let changed = if first {
            // The link may have come up before this task started.
            first = false;
            true
        } else {
            tokio::select! {
                ev = events.recv() => {
                    match ev {
                        Ok(ev) => {
                            if let Some(call_event) = call_event(&ev) {
                                tracker.event(call_event);
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(nodo = %node.nombre, perdidos = n, "eventos perdidos; reconciliando");
                            spawn_reconcile(&pool, &node, &tracker, Scope::StartedBefore(Utc::now()), false);
                        }
                        Err(RecvError::Closed) => return,
                    }
                    false
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    true
                }
                _ = sweep.tick() => {
                    spawn_reconcile(&pool, &node, &tracker, Scope::Old, false);
                    false
                }
            }
        };
        if !changed {
            continue;
        }
        let now = match &*state.borrow_and_update() {
            ConnState::Connected { generation } => Some(*generation),
            _ => None,
        };
        match now {
            None => {
                node.link_down();
                if let Some(since) = node.down_since() {
                    let (node, tracker, after) = (node.clone(), tracker.clone(), pool.lost_after());
                    tokio::spawn(async move {
                        tokio::time::sleep_until(since + after).await;
                        declare_lost(&node, &tracker, since).await;
                    });
                }
            }
            Some(g) if generation != Some(g) => {
                node.link_up();
                let reconnect = generation.is_some();
                generation = Some(g);
                let cutoff = Utc::now();
                let (pool, node, tracker) = (pool.clone(), node.clone(), tracker.clone());
                tokio::spawn(async move {
                    on_connect(&pool, &node, &tracker, reconnect, cutoff).await;
                });
            }
            Some(_) => {}
        }
    }
}

/// A node down since `since` and still down now is lost: its calls are declared cut by the
/// switch (answered ones INTERRUMPIDA, the retry rule applies) and it gets no call until it comes
/// back.
async fn declare_lost(node: &PoolNode, tracker: &Tracker, since: tokio::time::Instant) {
    if !node.mark_lost(since) {
        return;
    }
    let calls: Vec<Uuid> = tracker
        .live()
        .await
        .into_iter()
        .filter(|c| c.nodo.as_deref() == Some(node.nombre.as_str()))
        .map(|c| c.uuid)
        .collect();
    tracing::warn!(nodo = %node.nombre, llamadas = calls.len(), "nodo perdido: sus llamadas se dan por cortadas");
    for uuid in calls {
        tracker.event(CallEvent::Gone { uuid, cut: true });
    }
}

/// What every new connection needs: the modules and gateways, which run of FreeSWITCH this is,
/// and (on a reconnect) a reconciliation of the node's calls that were in flight while events
/// could be lost.
async fn on_connect(
    pool: &Pool,
    node: &PoolNode,
    tracker: &Tracker,
    reconnect: bool,
    cutoff: chrono::DateTime<Utc>,
) {
    node.learn().await;
    let now = node::core_uuid(&node.esl).await;
    let restarted = {
        let mut seen = node.core.lock().await;
        let restarted = matches!((&*seen, &now), (Some(a), Some(b)) if a != b);
        if now.is_some() {
            *seen = now;
        }
        restarted
    };
    if !reconnect {
        return;
    }
    if restarted {
        tracing::warn!(nodo = %node.nombre, "FreeSWITCH se reinició: las llamadas en curso se cortaron; reconciliando");
    } else {
        tracing::info!(nodo = %node.nombre, "ESL reconectado; reconciliando llamadas en curso");
    }
    let scope = Scope::StartedBefore(cutoff);
    reconcile(pool, Some(node), tracker, scope, restarted).await;
    tokio::time::sleep(SECOND_PASS).await;
    reconcile(pool, Some(node), tracker, scope, restarted).await;
}

fn spawn_reconcile(pool: &Pool, node: &Arc<PoolNode>, tracker: &Tracker, scope: Scope, cut: bool) {
    let (pool, node, tracker) = (pool.clone(), node.clone(), tracker.clone());
    tokio::spawn(async move { reconcile(&pool, Some(&node), &tracker, scope, cut).await });
}

/// The tracker's view of an ESL event: only what decides a call's state. BACKGROUND_JOB is matched
/// by its Job-UUID, which the dialer sets to the call's UUID.
pub fn call_event(ev: &Event) -> Option<CallEvent> {
    // `-ERR USER_BUSY\n`: the cause is the first word after `-ERR`.
    let first_word = |s: &str| s.split_whitespace().next().unwrap_or("UNKNOWN").to_owned();
    let name = ev.name()?;
    if name == "BACKGROUND_JOB" {
        let uuid = Uuid::parse_str(ev.job_uuid()?).ok()?;
        let body = ev.body().unwrap_or("");
        return Some(match JobResult::from_body(body) {
            JobResult::Ok(_) => CallEvent::JobOk { uuid },
            JobResult::Err(cause) => CallEvent::JobErr {
                uuid,
                cause: first_word(&cause),
            },
        });
    }
    let uuid = Uuid::parse_str(ev.unique_id()?).ok()?;
    match name {
        "CHANNEL_CREATE" => Some(CallEvent::Created { uuid }),
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
                hangup: Hangup {
                    cause: ev.hangup_cause().unwrap_or("NORMAL_CLEARING").to_owned(),
                    answered,
                    billsec: num("billsec"),
                    duracion: num("duration"),
                    resultado: ev
                        .variable("discador_resultado")
                        .and_then(|r| CallResult::parse(r).ok())
                        .filter(|r| {
                            matches!(
                                r,
                                CallResult::Humano
                                    | CallResult::Maquina
                                    | CallResult::NumeroInvalido
                            )
                        }),
                },
            })
        }
        _ => None,
    }
}
