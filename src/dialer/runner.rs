//! One runner per running campaign: the loop that turns due numbers into paced originates.
//!
//! Each turn of the loop, in order: obey pause/stop; wait for FreeSWITCH if the ESL link is down;
//! make sure FreeSWITCH has the module the campaign's AMD needs (wait until it said, pause the
//! campaign with the reason if it does not); wait outside the calling window; claim a small batch of
//! due numbers (PENDIENTE → MARCANDO, done atomically by the store); drop do-not-call numbers; wait
//! for a free channel (campaign and global); wait out a refusal back-off of the switch; wait for a
//! pacing slot (campaign and global CPS); check again — at dial time, not claim time — that the
//! campaign still runs, the window is still open and the number is valid; register the call with the
//! tracker; send `bgapi originate` (its Job-UUID is the call's UUID, so that the event pump can hand
//! its BACKGROUND_JOB to the tracker in the order FreeSWITCH sent it).
//!
//! The claim batch is about one second of dialing, so a number never sits claimed for long: a pause
//! or a closing window returns the unused claims to PENDIENTE at once (no attempt counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::domain::{mask, CallResult, CampaignState, NumberState, PhoneNumber};
use crate::esl::{ConnState, EslError};
use crate::store::{CallRecord, Campaign, ClaimedNumber, NumberUpdate, StoreError};

use super::metrics::{CallSlot, CampaignMetrics};
use super::originate::Originate;
use super::pacing::{self, Pacer};
use super::tracker::{CallEvent, LiveCall};
use super::Shared;

/// What the API asked of a campaign's runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    Stopped,
}

/// The per-campaign state a runner shares with the rest of the process.
pub(crate) struct RunnerParts {
    pub control: watch::Receiver<RunState>,
    pub settings: watch::Receiver<Arc<Campaign>>,
    pub metrics: Arc<CampaignMetrics>,
    pub pacer: Arc<Pacer>,
}

/// How often an idle runner looks again for due numbers (retries coming due, numbers loaded
/// directly into the table).
const IDLE_POLL: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, parts: RunnerParts) {
    let RunnerParts {
        mut control,
        mut settings,
        metrics,
        pacer,
    } = parts;
    let mut campaign = settings.borrow_and_update().clone();
    let channels = Arc::new(Semaphore::new(campaign.max_canales as usize));
    let mut capacity = campaign.max_canales;
    let mut queue: VecDeque<ClaimedNumber> = VecDeque::new();
    let mut pending: Option<PendingClaim> = None;
    let mut esl_state = shared.esl.state();
    let mut modules = shared.node.modules.subscribe();
    let mut db_backoff = Duration::from_millis(250);
    let name = campaign.nombre.clone();
    tracing::info!(campana = %name, cps = campaign.cps.get(), "campaña en marcha");

    loop {
        let run_state = *control.borrow_and_update();
        match run_state {
            RunState::Stopped => break,
            RunState::Paused => {
                release(&shared, &campaign, &mut queue, &mut pending).await;
                if control.changed().await.is_err() {
                    break;
                }
                continue;
            }
            RunState::Running => {}
        }
        if settings.has_changed().unwrap_or(false) {
            campaign = settings.borrow_and_update().clone();
            pacer.set_rate(campaign.cps.get());
            resize(&channels, &mut capacity, campaign.max_canales);
        }

        if !matches!(*esl_state.borrow_and_update(), ConnState::Connected { .. }) {
            // No originate can go out: give the claims back and wait for the link.
            release(&shared, &campaign, &mut queue, &mut pending).await;
            tokio::select! {
                _ = esl_state.changed() => {}
                _ = control.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }

        let known = *modules.borrow_and_update();
        if let Some(missing) = known.missing_for(campaign.amd) {
            // Every answered call would be hung up by the switch: pause with the reason.
            release(&shared, &campaign, &mut queue, &mut pending).await;
            let motivo = super::missing_module_reason(campaign.amd, missing);
            pause_self(&shared, &campaign, &motivo).await;
            break;
        }
        if !known.known_for(campaign.amd) {
            // FreeSWITCH has not said yet (it is asked at every connection).
            release(&shared, &campaign, &mut queue, &mut pending).await;
            tokio::select! {
                _ = modules.changed() => {}
                _ = control.changed() => {}
                _ = settings.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }

        let now = Utc::now();
        if !campaign.ventana.is_open(now) {
            release(&shared, &campaign, &mut queue, &mut pending).await;
            let wait = campaign
                .ventana
                .next_open(now)
                .and_then(|t| (t - now).to_std().ok())
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_millis(100), Duration::from_secs(60));
            tracing::debug!(campana = %name, espera_s = wait.as_secs(), "fuera del horario de llamadas");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = control.changed() => {}
                _ = settings.changed() => {}
            }
            continue;
        }

        // Keep the next batch coming while this one is dialed: the pacer never waits on the
        // database (a claim is a few round trips; at 500 CPS that is dozens of slots).
        let want = claim_size(campaign.cps.get(), channels.available_permits());
        if pending.is_none() && queue.len() <= want as usize / 2 {
            pending = Some(tokio::spawn(claim_batch(
                shared.clone(),
                campaign.clone(),
                want,
            )));
        }
        if queue.is_empty() {
            let Some(claim) = pending.take() else {
                continue;
            };
            let result = claim
                .await
                .unwrap_or_else(|e| Err(StoreError::Database(format!("claim task: {e}"))));
            match result {
                Err(e) => {
                    tracing::warn!(campana = %name, error = %e, "no se pudieron reservar números; reintento");
                    tokio::select! {
                        _ = tokio::time::sleep(db_backoff) => {}
                        _ = control.changed() => {}
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                }
                Ok(claim) if claim.claimed == 0 => {
                    db_backoff = Duration::from_millis(250);
                    if metrics.activas() == 0 {
                        match shared.store.has_open_numbers(&campaign).await {
                            Ok(false) => {
                                finish_campaign(&shared, &campaign).await;
                                break;
                            }
                            Ok(true) => {}
                            Err(e) => {
                                tracing::warn!(campana = %name, error = %e, "no se pudo consultar la campaña")
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = control.changed() => {}
                        _ = settings.changed() => {}
                    }
                }
                Ok(claim) => {
                    db_backoff = Duration::from_millis(250);
                    queue.extend(claim.numbers);
                }
            }
            continue;
        }

        // A free channel in the campaign and globally, without holding one while waiting for the other
        // longer than needed; then a pacing slot from both the campaign and the global ceiling.
        let permits = tokio::select! {
            p = acquire_channels(&channels, &shared.channels) => p,
            _ = control.changed() => continue,
            _ = settings.changed() => continue,
        };
        let Some((own, global)) = permits else { break };
        // Campaign, then its gateway's ceiling, then the global one: always this order (see
        // `pacing::acquire`).
        let gateway = campaign
            .gateway
            .as_ref()
            .unwrap_or(&shared.default_gateway)
            .as_str();
        let (with_gateway, without);
        let scopes: &[&Pacer] = match shared.gateway_pacers.get(gateway) {
            Some(gw) => {
                with_gateway = [&*pacer, gw, &shared.pacer];
                &with_gateway
            }
            None => {
                without = [&*pacer, &shared.pacer];
                &without
            }
        };
        // The switch refused originates for capacity a moment ago: let it breathe first.
        tokio::select! {
            _ = shared.node.hold.wait() => {}
            _ = control.changed() => continue,
            _ = settings.changed() => continue,
        }
        tokio::select! {
            _ = pacing::acquire(scopes) => {}
            _ = control.changed() => continue,
            _ = settings.changed() => continue,
        }

        // Dial time: decide again.
        let Some(number) = queue.pop_front() else {
            continue;
        };
        let now = Utc::now();
        if *control.borrow() != RunState::Running || !campaign.ventana.is_open(now) {
            queue.push_front(number);
            continue;
        }
        let slot = CallSlot::new(own, global, metrics.clone());
        dial(&shared, &campaign, number, slot, &metrics);
    }
    release(&shared, &campaign, &mut queue, &mut pending).await;
    tracing::info!(campana = %name, "campaña detenida");
}

/// A claim of due numbers, already cleared of do-not-call numbers.
struct Claim {
    /// How many numbers the store handed over (do-not-call ones included).
    claimed: usize,
    numbers: VecDeque<ClaimedNumber>,
}

/// A claim running in the background while the runner dials what it already holds.
type PendingClaim = tokio::task::JoinHandle<Result<Claim, StoreError>>;

async fn claim_batch(
    shared: Arc<Shared>,
    campaign: Arc<Campaign>,
    want: u32,
) -> Result<Claim, StoreError> {
    let claimed = shared.store.claim_due(&campaign, Utc::now(), want).await?;
    let count = claimed.len();
    Ok(Claim {
        claimed: count,
        numbers: drop_do_not_call(&shared, &campaign, claimed).await,
    })
}

/// About one second of dialing, never more than the free channels (at least 1, at most 500).
fn claim_size(cps: f64, free_channels: usize) -> u32 {
    let per_second = cps.ceil().max(1.0) as usize;
    per_second.min(free_channels.max(1)).clamp(1, 500) as u32
}

async fn acquire_channels(
    own: &Arc<Semaphore>,
    global: &Arc<Semaphore>,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let a = own.clone().acquire_owned().await.ok()?;
    let b = global.clone().acquire_owned().await.ok()?;
    Some((a, b))
}

/// Applies a new `max_canales` to a running campaign: more permits at once; fewer as calls end.
fn resize(channels: &Arc<Semaphore>, capacity: &mut u32, wanted: u32) {
    if wanted > *capacity {
        channels.add_permits((wanted - *capacity) as usize);
    } else if wanted < *capacity {
        let gone = channels.forget_permits((*capacity - wanted) as usize);
        // Permits held by live calls can't be forgotten now; those calls keep them until they end,
        // and the cap converges as they finish (counted as forgotten only for what was free).
        *capacity -= gone as u32;
        return;
    }
    *capacity = wanted;
}

/// Removes numbers on the do-not-call list from a claim, finishing them as NO_LLAMAR without a call.
async fn drop_do_not_call(
    shared: &Shared,
    campaign: &Campaign,
    claimed: Vec<ClaimedNumber>,
) -> VecDeque<ClaimedNumber> {
    let phones: Vec<&str> = claimed.iter().map(|n| n.telefono.as_str()).collect();
    let blocked = match shared.store.dnc_contains(&phones).await {
        Ok(b) => b,
        Err(e) => {
            // Without the list we must not dial: give the claims back and try again later.
            tracing::warn!(campana = %campaign.nombre, error = %e, "lista de no llamar no disponible");
            let ids: Vec<i64> = claimed.iter().map(|n| n.id).collect();
            unclaim(shared, campaign, &ids).await;
            return VecDeque::new();
        }
    };
    let mut keep = VecDeque::with_capacity(claimed.len());
    for n in claimed {
        if blocked.contains(&n.telefono) {
            tracing::info!(campana = %campaign.nombre, telefono = %mask(&n.telefono), "número en lista de no llamar");
            let _ = shared.writer.send(NumberUpdate::Finished(undialed(
                campaign,
                &n,
                CallResult::NoLlamar,
                "NO_LLAMAR",
                &shared.nodo,
            )));
        } else {
            keep.push_back(n);
        }
    }
    keep
}

/// The record of a number that was decided without a call (do-not-call, invalid in the table).
fn undialed(
    campaign: &Campaign,
    n: &ClaimedNumber,
    resultado: CallResult,
    causa: &str,
    nodo: &str,
) -> CallRecord {
    let now = Utc::now();
    CallRecord {
        campana: campaign.nombre.clone(),
        tabla: campaign.tabla.clone(),
        numero_id: n.id,
        telefono: n.telefono.clone(),
        intento: n.intentos,
        uuid: n.uuid.clone(),
        nodo: nodo.to_owned(),
        estado: NumberState::Error,
        resultado,
        causa: Some(causa.to_owned()),
        amd_resultado: None,
        amd_causa: None,
        proximo_intento: None,
        inicio: now,
        contestada: None,
        fin: now,
        billsec: 0,
        duracion: 0,
    }
}

/// Registers the call with the tracker and sends its originate in a task of its own; the task
/// forwards the BACKGROUND_JOB result to the tracker.
fn dial(
    shared: &Arc<Shared>,
    campaign: &Arc<Campaign>,
    number: ClaimedNumber,
    slot: CallSlot,
    metrics: &CampaignMetrics,
) {
    let (uuid, telefono, command) = match prepare(shared, campaign, &number) {
        Ok(ready) => ready,
        Err((resultado, causa)) => {
            tracing::warn!(campana = %campaign.nombre, id = number.id, causa, "número no marcado");
            let _ = shared.writer.send(NumberUpdate::Finished(undialed(
                campaign,
                &number,
                resultado,
                causa,
                &shared.nodo,
            )));
            return;
        }
    };
    let intento = number.intentos.saturating_add(1);
    let mut call = LiveCall::attempt(
        campaign,
        number.id,
        &number.telefono,
        intento,
        uuid,
        Utc::now(),
    );
    call.slot = Some(slot);
    shared.tracker.register(call);
    metrics.originated();
    tracing::info!(campana = %campaign.nombre, %uuid, telefono = %telefono.masked(), intento, "originate");
    let shared = shared.clone();
    let campaign_for_unclaim = Arc::clone(campaign);
    tokio::spawn(async move {
        // The Job-UUID is the call's UUID: the event pump hands the BACKGROUND_JOB to the tracker
        // in stream order, after the channel's CHANNEL_CREATE if there is one (which tells a call
        // that never left the switch from a failed attempt). The `BgJob` itself is not awaited.
        match shared.esl.bgapi(&command, uuid).await {
            Ok(_job) => {}
            Err(EslError::NotConnected) => {
                // Never reached FreeSWITCH: not an attempt. Back to PENDIENTE.
                shared.tracker.event(CallEvent::NotSent { uuid });
                unclaim(&shared, &campaign_for_unclaim, &[number.id]).await;
            }
            Err(e) => {
                // It may or may not have reached FreeSWITCH: reconciliation (uuid_exists) decides.
                tracing::warn!(%uuid, error = %e, "originate sin respuesta; queda para reconciliar");
            }
        }
    });
}

/// The call's UUID, its validated number and its originate command — or, for a number that must
/// not be dialed, the result and cause to record instead.
fn prepare(
    shared: &Shared,
    campaign: &Campaign,
    number: &ClaimedNumber,
) -> Result<(Uuid, PhoneNumber, String), (CallResult, &'static str)> {
    // Rows loaded into the table by hand are not validated by the API: this is where they are.
    let telefono = PhoneNumber::parse(&number.telefono)
        .map_err(|_| (CallResult::NumeroInvalido, "INVALID_NUMBER_FORMAT"))?;
    // The store sets a UUID when claiming; a row edited by hand mid-claim may not have one.
    let uuid =
        Uuid::parse_str(&number.uuid).map_err(|_| (CallResult::FallaRed, "UUID_INVALIDO"))?;
    let gateway = campaign
        .gateway
        .as_ref()
        .map(|g| g.as_str())
        .unwrap_or(shared.default_gateway.as_str());
    let command = Originate {
        uuid: &uuid,
        campana: campaign.nombre.as_str(),
        numero_id: number.id,
        intento: number.intentos.saturating_add(1),
        telefono: telefono.as_str(),
        caller_id: campaign.caller_id.as_ref().map(|c| c.as_str()),
        gateway,
        timeout_s: campaign.timeout_llamada,
    }
    .command(&shared.template)
    .map_err(|_| (CallResult::NumeroInvalido, "INVALID_NUMBER_FORMAT"))?;
    Ok((uuid, telefono, command))
}

/// Returns unused claims to PENDIENTE (no attempt counted), including a claim still in flight.
async fn release(
    shared: &Shared,
    campaign: &Campaign,
    queue: &mut VecDeque<ClaimedNumber>,
    pending: &mut Option<PendingClaim>,
) {
    if let Some(claim) = pending.take() {
        if let Ok(Ok(claim)) = claim.await {
            queue.extend(claim.numbers);
        }
    }
    if queue.is_empty() {
        return;
    }
    let ids: Vec<i64> = queue.iter().map(|n| n.id).collect();
    if unclaim(shared, campaign, &ids).await {
        queue.clear();
    }
}

/// Returns claimed numbers to PENDIENTE, retrying a few times over lock conflicts. If the database
/// stays unavailable, a background task keeps trying (backing off to 30 s) so the numbers go back
/// without an attempt being counted; meanwhile they stay MARCANDO, so the campaign cannot finish
/// without them. Only if the process stops first does start-up recovery count them as an attempt
/// (the rule for "gone" calls): late, but never lost. `false`: a non-transient error, logged.
async fn unclaim(shared: &Shared, campaign: &Campaign, ids: &[i64]) -> bool {
    let mut delay = Duration::from_millis(20);
    for _ in 0..5 {
        match shared.store.unclaim(campaign, ids).await {
            Ok(()) => return true,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::warn!(campana = %campaign.nombre, error = %e, "no se pudieron liberar números reservados");
                return false;
            }
        }
    }
    tracing::warn!(campana = %campaign.nombre, numeros = ids.len(), "base ocupada: se seguirá intentando liberar los números reservados");
    let (store, campaign, ids) = (shared.store.clone(), campaign.clone(), ids.to_vec());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
            match store.unclaim(&campaign, &ids).await {
                Ok(()) => {
                    tracing::info!(campana = %campaign.nombre, numeros = ids.len(), "números reservados liberados");
                    return;
                }
                Err(e) if e.is_transient() => {}
                Err(e) => {
                    tracing::warn!(campana = %campaign.nombre, error = %e, "no se pudieron liberar números reservados");
                    return;
                }
            }
        }
    });
    true
}

/// ACTIVA → PAUSADA with the reason, by the runner itself, which then ends (a later `reanudar`
/// starts a new one). Only from ACTIVA: an operator's pause or stop at the same moment wins.
async fn pause_self(shared: &Shared, campaign: &Campaign, motivo: &str) {
    match shared
        .store
        .transition_campaign_state(
            &campaign.nombre,
            &[CampaignState::Activa],
            CampaignState::Pausada,
            Some(motivo),
        )
        .await
    {
        Ok(_) => tracing::warn!(campana = %campaign.nombre, %motivo, "campaña pausada"),
        Err(StoreError::Conflict(_)) => {}
        Err(e) => {
            tracing::warn!(campana = %campaign.nombre, error = %e, %motivo, "campaña detenida sin poder registrar la pausa")
        }
    }
}

/// ACTIVA → FINALIZADA. Only from ACTIVA: an operator's pause or stop at the same moment wins.
async fn finish_campaign(shared: &Shared, campaign: &Campaign) {
    match shared
        .store
        .transition_campaign_state(
            &campaign.nombre,
            &[CampaignState::Activa],
            CampaignState::Finalizada,
            None,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(campana = %campaign.nombre, "campaña finalizada: no quedan números por marcar")
        }
        Err(StoreError::Conflict(why)) => {
            tracing::info!(campana = %campaign.nombre, %why, "campaña sin números, no se finaliza")
        }
        Err(e) => {
            tracing::warn!(campana = %campaign.nombre, error = %e, "no se pudo marcar la campaña como FINALIZADA")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_about_one_second_of_dialing() {
        assert_eq!(claim_size(0.5, 10), 1);
        assert_eq!(claim_size(5.0, 10), 5);
        assert_eq!(claim_size(100.0, 10), 10);
        assert_eq!(claim_size(100.0, 0), 1);
        assert_eq!(claim_size(1000.0, 5000), 500);
    }
}
