//! One runner per running campaign: the loop that turns due numbers into paced originates.
//!
//! Each turn of the loop, in order: obey pause/stop; wait for FreeSWITCH if no node's ESL link is
//! up; make sure some connected node has the module the campaign's AMD needs (wait until they
//! said, pause the campaign with the reason if none does); keep the abandon rate under its ceiling (slow down,
//! or pause at it); wait on an excluded date, or while no number's window is open (each number's
//! window is in its own zone, see `rules`); claim a small batch of due numbers (PENDIENTE →
//! MARCANDO, done atomically by the store); drop do-not-call numbers; give back those outside
//! their own window or over an attempts cap, due when they may be dialed; wait for a free channel
//! (campaign and global); choose the node (see `pool::Pool::choose`: usable, most free capacity)
//! and take one of its channels, its script checked once per connection; wait out that node's
//! refusal back-off; wait for a pacing slot (campaign, gateway, global, then the node's CPS); check again — at dial time, not claim time — that the campaign still
//! runs, the number's window is still open and the number is valid; register the call with the
//! tracker; send `bgapi originate` (its Job-UUID is the call's UUID, so that the event pump can
//! hand its BACKGROUND_JOB to the tracker in the order FreeSWITCH sent it).
//!
//! The claim batch is about one second of dialing, so a number never sits claimed for long: a pause
//! or a closing window returns the unused claims to PENDIENTE at once (no attempt counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::rules::{abandon_action, abandon_rate, AbandonAction};
use crate::domain::{
    mask, parse_zone, AmdMode, CallResult, CampaignState, NumberState, PhoneNumber, Wait,
};
use crate::esl::EslError;
use crate::events::Evento;
use crate::metrics::DbOp;
use crate::store::{CallRecord, Campaign, ClaimedNumber, NumberUpdate, StoreError};

use super::metrics::{CallSlot, CampaignMetrics};
use super::originate::Originate;
use super::pacing::{self, Pacer};
use super::pool::{NoNode, PoolNode};
use super::rules;
use super::tracker::{CallEvent, LiveCall};
use super::Shared;
use crate::controller::preflight::ScriptProblem;

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
/// How long the zones of a campaign's pending numbers are trusted (numbers loaded meanwhile may
/// bring new ones); also the longest sleep while every zone's window is closed.
const ZONES_FRESH: Duration = Duration::from_secs(30);
/// How often the abandon rate of the last 30 days is read.
const ABANDON_EVERY: Duration = Duration::from_secs(30);
/// The span of the abandon rate.
const ABANDON_SPAN: chrono::Duration = chrono::Duration::days(30);
/// The largest claim while sweeping numbers that all wait (a first claim after a window closed
/// in many zones): they are given back at once, so a bigger claim only saves round trips.
const SWEEP_CLAIM: u32 = 500;

/// Runs a campaign until it is stopped, finished or paused by the runner itself. Every log line of
/// the runner carries the campaign through its span.
pub(crate) async fn run(shared: Arc<Shared>, parts: RunnerParts) {
    let mut runner = Runner::new(shared, parts);
    let span = tracing::info_span!("runner", campana = %runner.campaign.nombre);
    async move {
        tracing::info!(cps = runner.campaign.cps.get(), "campaña en marcha");
        while runner.turn().await != Err(Next::Stop) {}
        runner.release().await;
        tracing::info!("campaña detenida");
    }
    .instrument(span)
    .await
}

/// Why a turn of the loop ended before dialing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Something was waited for or changed: start a new turn (from "obey control").
    Again,
    /// The runner ends.
    Stop,
}

/// The loop's state: the campaign as last read, its own channel cap, the claimed numbers.
struct Runner {
    shared: Arc<Shared>,
    control: watch::Receiver<RunState>,
    settings: watch::Receiver<Arc<Campaign>>,
    metrics: Arc<CampaignMetrics>,
    pacer: Arc<Pacer>,
    campaign: Arc<Campaign>,
    /// `max_canales` of this campaign; `capacity` is the number of permits it was sized to.
    channels: Arc<Semaphore>,
    capacity: u32,
    /// Claimed numbers waiting for their turn, and the next claim being fetched meanwhile.
    queue: VecDeque<ClaimedNumber>,
    pending: Option<PendingClaim>,
    /// Changes of the pool's nodes (connections, modules, drains, freed channels).
    pool_changes: watch::Receiver<u64>,
    /// The nodes that said they have everything the campaign's script names (files, extensions,
    /// gateways), for these settings, with the connection generation they said it on.
    scripts_checked: std::collections::HashMap<String, u64>,
    db_backoff: Duration,
    /// The zones of the pending numbers (`None`: the campaign's), and when they were read.
    zones: Vec<Option<Tz>>,
    zones_read: Option<Instant>,
    /// When the abandon rate was last read, and the share of `cps` it allows.
    abandon_checked: Option<Instant>,
    abandon_factor: f64,
    /// The last claim gave back everything it took: claim more at once.
    sweeping: bool,
}

impl Runner {
    fn new(shared: Arc<Shared>, parts: RunnerParts) -> Runner {
        let RunnerParts {
            control,
            mut settings,
            metrics,
            pacer,
        } = parts;
        let campaign = settings.borrow_and_update().clone();
        Runner {
            channels: Arc::new(Semaphore::new(campaign.max_canales as usize)),
            capacity: campaign.max_canales,
            pool_changes: shared.pool.subscribe(),
            shared,
            control,
            settings,
            metrics,
            pacer,
            campaign,
            queue: VecDeque::new(),
            pending: None,
            scripts_checked: Default::default(),
            db_backoff: Duration::from_millis(250),
            zones: Vec::new(),
            zones_read: None,
            abandon_checked: None,
            abandon_factor: 1.0,
            sweeping: false,
        }
    }

    /// One turn, the steps of the module doc in order; `Err` ends the turn early.
    async fn turn(&mut self) -> Result<(), Next> {
        self.obey_control().await?;
        self.wait_for_link().await?;
        self.check_module().await?;
        self.check_abandon().await?;
        self.wait_for_calendar().await?;
        self.refill().await?;
        let (own, global) = self.acquire_channel().await?;
        let (node, permit) = self.choose_node().await?;
        self.wait_for_pacing(&node).await?;
        let slot = CallSlot::new(own, global, self.metrics.clone()).with_node(permit);
        self.dial_next(slot, node);
        Ok(())
    }

    /// Stopped ends the runner; paused gives the claims back and waits for the next order;
    /// running picks up changed settings (rate, channels).
    async fn obey_control(&mut self) -> Result<(), Next> {
        let state = *self.control.borrow_and_update();
        match state {
            RunState::Stopped => return Err(Next::Stop),
            RunState::Paused => {
                self.release().await;
                // Resumed: look at the rules afresh (the abandon history or the numbers' zones
                // may have changed meanwhile).
                self.abandon_checked = None;
                self.zones_read = None;
                return match self.control.changed().await {
                    Ok(()) => Err(Next::Again),
                    Err(_) => Err(Next::Stop),
                };
            }
            RunState::Running => {}
        }
        if self.settings.has_changed().unwrap_or(false) {
            self.campaign = self.settings.borrow_and_update().clone();
            self.scripts_checked.clear();
            self.zones_read = None;
            self.abandon_checked = None;
            self.set_pace();
            resize(
                &self.channels,
                &mut self.capacity,
                self.campaign.max_canales,
            );
        }
        Ok(())
    }

    /// No originate can go out without a connected node: give the claims back and wait for one.
    async fn wait_for_link(&mut self) -> Result<(), Next> {
        self.pool_changes.borrow_and_update();
        if self.shared.pool.any_connected() {
            return Ok(());
        }
        self.release().await;
        tokio::select! {
            _ = self.pool_changes.changed() => {}
            _ = self.control.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
        Err(Next::Again)
    }

    /// The module the campaign's AMD runs on: missing on every connected node, every answered
    /// call would be hung up by the switch, so the campaign pauses itself with the reason (missing
    /// on some nodes only keeps calls off those, see `Pool::choose`); not known yet (it is asked
    /// at every connection), wait.
    async fn check_module(&mut self) -> Result<(), Next> {
        let known = self.shared.pool.modules();
        if let Some(missing) = known.missing_for(self.campaign.amd) {
            self.release().await;
            let motivo = super::missing_module_reason(self.campaign.amd, missing);
            // The runner ends itself; a later `reanudar` starts a new one.
            super::record_self_pause(&self.shared, &self.campaign.nombre, &motivo).await;
            return Err(Next::Stop);
        }
        if known.known_for(self.campaign.amd) {
            return Ok(());
        }
        self.release().await;
        self.wait_for_pool_change().await
    }

    /// Waits for a change of the pool (a node connected, drained, lost, its modules learned), of
    /// the campaign's control or settings, or [`IDLE_POLL`]; then a new turn.
    async fn wait_for_pool_change<T>(&mut self) -> Result<T, Next> {
        tokio::select! {
            _ = self.pool_changes.changed() => {}
            _ = self.control.changed() => {}
            _ = self.settings.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
        Err(Next::Again)
    }

    /// The node for the next call, with one of its channels: the usable one with the most free
    /// capacity (see `Pool::choose`), its script checked. None usable: give the claims back
    /// (unless every usable node is only full) and wait for a change of the pool.
    async fn choose_node(&mut self) -> Result<(Arc<PoolNode>, super::pool::NodePermit), Next> {
        self.pool_changes.borrow_and_update();
        let gateway = self.shared.template.uses_gateway().then(|| {
            self.campaign
                .gateway
                .as_ref()
                .unwrap_or(&self.shared.default_gateway)
                .as_str()
                .to_owned()
        });
        let why = match self
            .shared
            .pool
            .choose(self.campaign.amd, gateway.as_deref())
        {
            Ok((node, permit)) => {
                self.check_script(&node).await?;
                return Ok((node, permit));
            }
            Err(why) => why,
        };
        if why == NoNode::None {
            self.release().await;
            if let Some(gw) = gateway.filter(|gw| self.shared.pool.lacks_gateway(gw)) {
                // No connected switch has it: every originate would be refused (as today, when the
                // switch answers INVALID_GATEWAY), so the campaign pauses with that reason.
                let motivo = super::refused_reason(&format!("INVALID_GATEWAY: {gw}"));
                tracing::warn!(%motivo, "ningún nodo tiene el gateway de la campaña");
                super::record_self_pause(&self.shared, &self.campaign.nombre, &motivo).await;
                return Err(Next::Stop);
            }
        }
        self.wait_for_pool_change().await
    }

    /// The files, extensions and gateways the campaign's script names, asked of each node once
    /// per connection and settings: something missing pauses the campaign with the reason (every
    /// call would fail the same way); a switch that cannot be asked is asked again shortly.
    async fn check_script(&mut self, node: &PoolNode) -> Result<(), Next> {
        let Some(generation) = node.generation() else {
            return Err(Next::Again);
        };
        if self.scripts_checked.get(&node.nombre) == Some(&generation) {
            return Ok(());
        }
        match crate::controller::preflight::check(&node.esl, &self.campaign, node.modules()).await {
            Ok(()) => {
                self.scripts_checked.insert(node.nombre.clone(), generation);
                Ok(())
            }
            Err(ScriptProblem::Missing(motivo)) => {
                self.release().await;
                tracing::warn!(nodo = %node.nombre, %motivo, "el guion de la campaña no puede ejecutarse en FreeSWITCH");
                super::record_self_pause(&self.shared, &self.campaign.nombre, &motivo).await;
                Err(Next::Stop)
            }
            Err(e @ ScriptProblem::Unknown(_)) => {
                tracing::warn!(nodo = %node.nombre, error = %e, "no se pudo verificar el guion; se reintenta");
                self.release().await;
                tokio::select! {
                    _ = self.control.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                Err(Next::Again)
            }
        }
    }

    /// The campaign's `cps`, times what the abandon rate allows.
    fn set_pace(&self) {
        let cps = self.campaign.cps.get() * self.abandon_factor;
        self.pacer.set_rate(cps);
        self.metrics.set_cps_efectivo(cps);
    }

    /// Every [`ABANDON_EVERY`]: the campaign's abandon rate over 30 days against its ceiling
    /// (`domain::rules::abandon_action`): slow down near it, pause at it with the reason. A
    /// database error keeps the current pace (and is tried again next time).
    async fn check_abandon(&mut self) -> Result<(), Next> {
        if self
            .abandon_checked
            .is_some_and(|at| at.elapsed() < ABANDON_EVERY)
        {
            return Ok(());
        }
        self.abandon_checked = Some(Instant::now());
        let since = self.shared.clock.now() - ABANDON_SPAN;
        let (abandonadas, atendidas) = match self
            .shared
            .store
            .abandon_counts(&self.campaign.nombre, since)
            .await
        {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "no se pudo leer la tasa de abandono");
                return Ok(());
            }
        };
        let rate = abandon_rate(abandonadas, atendidas);
        self.metrics.set_tasa_abandono(rate);
        let ceiling = self.campaign.reglas.tasa_abandono_maxima;
        let factor = match abandon_action(abandonadas, atendidas, ceiling) {
            AbandonAction::Normal => 1.0,
            AbandonAction::Slow(f) => f,
            AbandonAction::Pause => {
                self.release().await;
                let motivo = format!(
                    "tasa de abandono de {rate} % en 30 días ({abandonadas} de {atendidas} \
                     llamadas atendidas por una persona): alcanzó el máximo de {ceiling} % \
                     (tasa_abandono_maxima)"
                );
                tracing::warn!(%motivo, "campaña pausada por su tasa de abandono");
                super::record_self_pause(&self.shared, &self.campaign.nombre, &motivo).await;
                return Err(Next::Stop);
            }
        };
        if factor != self.abandon_factor {
            tracing::info!(
                tasa_abandono = rate,
                maximo = ceiling,
                cps = self.campaign.cps.get() * factor,
                "ritmo ajustado por la tasa de abandono"
            );
            self.abandon_factor = factor;
            self.set_pace();
        }
        Ok(())
    }

    /// The zones of the pending numbers, read again every [`ZONES_FRESH`]. An unknown stored
    /// zone counts as the campaign's (as it does for the number); a database error, as the
    /// campaign's alone (the claim still judges each number).
    async fn refresh_zones(&mut self) {
        if self.zones_read.is_some_and(|at| at.elapsed() < ZONES_FRESH) {
            return;
        }
        self.zones = match self.shared.store.pending_zones(&self.campaign).await {
            Ok(raw) => {
                let mut zones: Vec<Option<Tz>> = raw
                    .iter()
                    .map(|z| z.as_deref().and_then(|z| parse_zone(z).ok()))
                    .collect();
                zones.sort_by_key(|z| z.map(|z| z.name()));
                zones.dedup();
                zones
            }
            Err(e) => {
                tracing::warn!(error = %e, "no se pudieron leer las zonas de los números");
                vec![None]
            }
        };
        self.zones_read = Some(Instant::now());
    }

    /// On an excluded date, or while no pending number's window is open in its own zone: give the
    /// claims back and sleep until that changes (at most [`ZONES_FRESH`], so that a changed
    /// window or newly loaded numbers are seen; a manual clock that is set wakes it too).
    async fn wait_for_calendar(&mut self) -> Result<(), Next> {
        let now = self.shared.clock.now();
        let until = match rules::excluded_until(&self.campaign, now) {
            Some(end) => {
                tracing::debug!(hasta = %end, "fecha excluida");
                Some(end)
            }
            None => {
                self.refresh_zones().await;
                let windows = self
                    .zones
                    .iter()
                    .map(|z| rules::window_for(&self.campaign, *z));
                if self.zones.is_empty() || windows.clone().any(|w| w.is_open(now)) {
                    return Ok(());
                }
                windows.filter_map(|w| w.next_open(now)).min()
            }
        };
        self.release().await;
        let wait = until
            .and_then(|t| (t - now).to_std().ok())
            .unwrap_or(ZONES_FRESH)
            .clamp(Duration::from_millis(100), ZONES_FRESH);
        tracing::debug!(espera_s = wait.as_secs(), "fuera del horario de llamadas");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.control.changed() => {}
            _ = self.settings.changed() => {}
            _ = self.shared.clock.changed() => {}
        }
        Err(Next::Again)
    }

    /// Keeps the next batch coming while this one is dialed (the pacer never waits on the
    /// database: a claim is a few round trips, at 500 CPS dozens of slots). With nothing claimed,
    /// waits for the claim in flight: a database error backs off, an empty claim with no call up
    /// and no number left finishes the campaign.
    async fn refill(&mut self) -> Result<(), Next> {
        let mut want = claim_size(self.campaign.cps.get(), self.channels.available_permits());
        if self.sweeping {
            want = (want * 10).clamp(1, SWEEP_CLAIM);
        }
        if self.pending.is_none() && self.queue.len() <= want as usize / 2 {
            self.pending = Some(tokio::spawn(claim_batch(
                self.shared.clone(),
                self.campaign.clone(),
                want,
            )));
        }
        if !self.queue.is_empty() {
            return Ok(());
        }
        let Some(claim) = self.pending.take() else {
            return Err(Next::Again);
        };
        let result = claim
            .await
            .unwrap_or_else(|e| Err(StoreError::Database(format!("claim task: {e}"))));
        match result {
            Err(e) => {
                self.shared.metrics.db_error(DbOp::Reservar);
                tracing::warn!(error = %e, "no se pudieron reservar números; reintento");
                tokio::select! {
                    _ = tokio::time::sleep(self.db_backoff) => {}
                    _ = self.control.changed() => {}
                }
                self.db_backoff = (self.db_backoff * 2).min(Duration::from_secs(5));
            }
            Ok(claim) if claim.claimed == 0 => {
                self.db_backoff = Duration::from_millis(250);
                self.sweeping = false;
                if self.metrics.activas() == 0 && self.nothing_left().await {
                    finish_campaign(&self.shared, &self.campaign).await;
                    return Err(Next::Stop);
                }
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.control.changed() => {}
                    _ = self.settings.changed() => {}
                }
            }
            Ok(claim) => {
                self.db_backoff = Duration::from_millis(250);
                self.sweeping = claim.numbers.is_empty();
                self.queue.extend(claim.numbers);
            }
        }
        Err(Next::Again)
    }

    /// No number pending or in flight in the store (a failed query says "not sure": false).
    async fn nothing_left(&self) -> bool {
        match self.shared.store.has_open_numbers(&self.campaign).await {
            Ok(open) => !open,
            Err(e) => {
                tracing::warn!(error = %e, "no se pudo consultar la campaña");
                false
            }
        }
    }

    /// A free channel in the campaign, then globally (`CANALES_MAXIMOS`). The campaign's permit
    /// is held while waiting for the global one, and both while waiting for the pacing slot: a
    /// call that got its channels goes out at the next slot.
    async fn acquire_channel(
        &mut self,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Next> {
        tokio::select! {
            p = acquire_channels(&self.channels, &self.shared.channels) => p.ok_or(Next::Stop),
            _ = self.control.changed() => Err(Next::Again),
            _ = self.settings.changed() => Err(Next::Again),
        }
    }

    /// A refusal back-off of the switch (it refused originates for capacity a moment ago), then a
    /// pacing slot from the campaign, its gateway's ceiling (`CPS_POR_GATEWAY`) and the global
    /// ceiling, always in this order (see `pacing::acquire`).
    async fn wait_for_pacing(&mut self, node: &PoolNode) -> Result<(), Next> {
        let gateway = self
            .campaign
            .gateway
            .as_ref()
            .unwrap_or(&self.shared.default_gateway)
            .as_str();
        let mut scopes: Vec<&Pacer> = vec![&*self.pacer];
        if let Some(gw) = self.shared.gateway_pacers.get(gateway) {
            scopes.push(gw);
        }
        scopes.push(&self.shared.pacer);
        if let Some(p) = &node.pacer {
            scopes.push(p);
        }
        let scopes = &scopes[..];
        tokio::select! {
            _ = node.node.hold.wait() => {}
            _ = self.control.changed() => return Err(Next::Again),
            _ = self.settings.changed() => return Err(Next::Again),
        }
        tokio::select! {
            _ = pacing::acquire(scopes) => Ok(()),
            _ = self.control.changed() => Err(Next::Again),
            _ = self.settings.changed() => Err(Next::Again),
        }
    }

    /// Dial time: decide again (still running, not an excluded date, the number's own window
    /// still open), then dial the next number. A number put back keeps its place; one whose window
    /// closed since the claim waits for it to open again; the channels of `slot` are freed when it
    /// is dropped.
    fn dial_next(&mut self, slot: CallSlot, node: Arc<PoolNode>) {
        let Some(number) = self.queue.pop_front() else {
            return;
        };
        let now = self.shared.clock.now();
        if *self.control.borrow() != RunState::Running
            || rules::excluded_until(&self.campaign, now).is_some()
        {
            self.queue.push_front(number);
            return;
        }
        let window = rules::window_for(&self.campaign, number.zona);
        if !window.is_open(now) {
            let until = window.next_open(now).unwrap_or(now + rules::DAY);
            let (shared, campaign) = (self.shared.clone(), self.campaign.clone());
            tokio::spawn(async move {
                defer(&shared, &campaign, vec![(number.id, until, Wait::Horario)]).await;
            });
            return;
        }
        dial(
            &self.shared,
            &self.campaign,
            number,
            slot,
            &self.metrics,
            node,
        );
    }

    /// Returns unused claims to PENDIENTE (no attempt counted), including a claim still in flight.
    async fn release(&mut self) {
        release(
            &self.shared,
            &self.campaign,
            &mut self.queue,
            &mut self.pending,
        )
        .await;
    }
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
    let now = shared.clock.now();
    let claimed = shared.store.claim_due(&campaign, now, want).await?;
    let count = claimed.len();
    let numbers = drop_do_not_call(&shared, &campaign, claimed).await;
    let by_window = rules::sort_by_window(&campaign, numbers.into(), now);
    let mut later = by_window.later;
    let ids: Vec<i64> = by_window.now.iter().map(|n| n.id).collect();
    let by_cap = match shared
        .caps
        .admit(&shared.store, &campaign, by_window.now, now)
        .await
    {
        Ok(sorted) => sorted,
        Err(e) => {
            // Without the caps' record a number could be dialed over its cap: give the claim back.
            unclaim(&shared, &campaign, &ids).await;
            defer(&shared, &campaign, later).await;
            return Err(e);
        }
    };
    later.extend(by_cap.later);
    defer(&shared, &campaign, later).await;
    Ok(Claim {
        claimed: count,
        numbers: by_cap.now.into(),
    })
}

/// Gives back claimed numbers that must wait (see `rules`), due when they may be dialed; if the
/// database refuses, gives them back as they are (due now: the next claim judges them again).
async fn defer(shared: &Shared, campaign: &Campaign, rows: Vec<(i64, DateTime<Utc>, Wait)>) {
    if rows.is_empty() {
        return;
    }
    if let Err(e) = shared.store.defer(campaign, &rows).await {
        tracing::warn!(campana = %campaign.nombre, error = %e, "no se pudieron aplazar números; se liberan");
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        unclaim(shared, campaign, &ids).await;
    }
}

/// About one second of dialing, never more than the free channels (at least 1, at most 500).
fn claim_size(cps: f64, free_channels: usize) -> u32 {
    let per_second = cps.ceil().max(1.0) as usize;
    per_second.min(free_channels.max(1)).clamp(1, 500) as u32
}

async fn acquire_channels(
    own: &Arc<Semaphore>,
    global: &Arc<Semaphore>,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
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
                &shared.pool.first().nombre,
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
        uuid: n
            .uuid
            .map(|u| u.hyphenated().to_string())
            .unwrap_or_default(),
        nodo: nodo.to_owned(),
        estado: NumberState::Error,
        resultado,
        causa: Some(causa.to_owned()),
        amd_resultado: None,
        amd_causa: None,
        amd_inicial: None,
        proximo_intento: None,
        inicio: now,
        contestada: None,
        fin: now,
        billsec: 0,
        duracion: 0,
        disposicion: None,
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
    node: Arc<PoolNode>,
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
                &node.nombre,
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
        shared.clock.now(),
    );
    call.slot = Some(slot);
    call.nodo = Some(node.nombre.clone());
    shared.tracker.register(call);
    metrics.originated();
    node.count_originate();
    shared.metrics.node_originated(&node.nombre);
    tracing::info!(campana = %campaign.nombre, %uuid, telefono = %telefono.masked(), intento, nodo = %node.nombre, "originate");
    // Recorded before the command goes out (the writer is FIFO and batches for a few ms): a crash
    // then errs on the side of counting the attempt, never of dialing a number again uncounted.
    let _ = shared.writer.send(NumberUpdate::Sent {
        tabla: campaign.tabla.clone(),
        id: number.id,
        uuid: uuid.hyphenated().to_string(),
        at: shared.clock.now(),
    });
    let shared = shared.clone();
    let campaign_for_unclaim = Arc::clone(campaign);
    tokio::spawn(async move {
        // The Job-UUID is the call's UUID: the event pump hands the BACKGROUND_JOB to the tracker
        // in stream order, after the channel's CHANNEL_CREATE if there is one (which tells a call
        // that never left the switch from a failed attempt). The `BgJob` itself is not awaited.
        match node.esl.bgapi(&command, uuid).await {
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
    let uuid = number.uuid.ok_or((CallResult::FallaRed, "UUID_INVALIDO"))?;
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
        socket: shared.socket_anunciado.as_deref(),
        silence_when_idle: campaign.amd == AmdMode::Integrado && campaign.watches_late_beep(),
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
            tracing::info!(campana = %campaign.nombre, "campaña finalizada: no quedan números por marcar");
            shared.eventos.publish(Evento::state_changed(
                &campaign.nombre,
                CampaignState::Finalizada,
                None,
            ));
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
