//! The dialer: one runner per running campaign, pacing, originates, the call tracker, the batched
//! store writer, and recovery.
//!
//! [`Dialer`] is what the API steers (`iniciar`, `pausar`, `reanudar`, `detener`, settings changes)
//! and what the controller asks for a campaign's settings. Everything process-wide that the runners
//! share — the store, the ESL client, the tracker, the global pacer and channel limit — lives in
//! [`Shared`].

pub mod metrics;
pub mod node;
pub mod originate;
pub mod pacing;
pub mod pool;
pub mod recovery;
pub mod rules;
pub mod runner;
pub mod tracker;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::clock::Clock;
use crate::domain::outcome::Refusal;
use crate::domain::{AmdMode, CampaignName, CampaignState, Cps, Gateway};
use crate::events::{Evento, Eventos};
use crate::metrics::Metrics;
use crate::store::{Campaign, Store, StoreError};

use metrics::CampaignMetrics;
use node::Modules;
use originate::DialTemplate;
use pacing::Pacer;
use pool::Pool;
use runner::{RunState, RunnerParts};
use tracker::{Notice, Tracker};

/// Process-wide parts every runner uses.
pub(crate) struct Shared {
    pub store: Store,
    /// The FreeSWITCH nodes calls go through (each with its link, modules, refusal back-off,
    /// channels and pacer); every CDR names the node that carried the call.
    pub pool: Pool,
    pub tracker: Tracker,
    pub writer: writer::WriterTx,
    /// `CPS_MAXIMO`: the sum of all campaigns' originates per second.
    pub pacer: Pacer,
    /// `CPS_POR_GATEWAY`: a carrier's own ceiling, shared by the campaigns dialing through it.
    pub gateway_pacers: HashMap<String, Pacer>,
    /// `CANALES_MAXIMOS`: live calls across all campaigns.
    pub channels: Arc<Semaphore>,
    pub template: DialTemplate,
    pub default_gateway: Gateway,
    /// Start-up recovery is over: the calls the previous process left are accounted for, so a
    /// runner may claim numbers (before that, recovery could take a fresh claim for a lost one).
    pub recovered: AtomicBool,
    /// The calendar clock of the calling rules (see `crate::clock`).
    pub clock: Clock,
    /// `MAX_INTENTOS_DIA` and the check-and-record of attempts against it (see `rules`).
    pub caps: rules::AttemptCaps,
    /// The live event stream (campaign states the service changes itself).
    pub eventos: Eventos,
    /// The service's Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// `SOCKET_ANUNCIADO`: sent with every originate as `discador_socket`, so that the answered
    /// call comes back to this process (see `originate.rs`).
    pub socket_anunciado: Option<String>,
}

/// Settings of the dialer that come from the service's configuration.
#[derive(Clone, Debug)]
pub struct DialerSettings {
    pub cps_maximo: f64,
    pub canales_maximos: u32,
    pub template: DialTemplate,
    pub default_gateway: Gateway,
    /// Per-gateway CPS ceilings (`CPS_POR_GATEWAY`).
    pub gateway_cps: Vec<(Gateway, Cps)>,
    /// `MAX_INTENTOS_DIA` (0: none).
    pub max_intentos_dia: u32,
    pub clock: Clock,
    /// The live event stream the tracker and runners publish to.
    pub eventos: Eventos,
    /// The service's Prometheus metrics, which the dialer, its tracker and its writer record into.
    pub metrics: Arc<Metrics>,
    /// Where FreeSWITCH reaches this process's controller (`SOCKET_ANUNCIADO`); `None`: the
    /// switch's global `discador_socket`.
    pub socket_anunciado: Option<String>,
}

/// Parses `CPS_POR_GATEWAY` (`gw_pstn=20,gw_movil=5`; empty for none).
pub fn parse_gateway_cps(raw: &str) -> Result<Vec<(Gateway, Cps)>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (gw, cps) = item
                .split_once('=')
                .ok_or_else(|| format!("CPS_POR_GATEWAY: se espera gateway=cps, no {item:?}"))?;
            let gw = Gateway::parse(gw.trim()).map_err(|e| format!("CPS_POR_GATEWAY: {e}"))?;
            let cps: f64 = cps
                .trim()
                .parse()
                .map_err(|_| format!("CPS_POR_GATEWAY: {cps:?} no es un número"))?;
            let cps = Cps::parse(cps).map_err(|e| format!("CPS_POR_GATEWAY: {e}"))?;
            Ok((gw, cps))
        })
        .collect()
}

struct Runner {
    control: watch::Sender<RunState>,
    settings: watch::Sender<Arc<Campaign>>,
    metrics: Arc<CampaignMetrics>,
    pacer: Arc<Pacer>,
    join: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Whether it dials now: its task runs and it is not paused or stopped.
    fn dialing(&self) -> bool {
        !self.join.is_finished() && *self.control.borrow() == RunState::Running
    }
}

/// Live figures of a campaign for `GET /discador/estado/{nombre}`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LiveStats {
    pub cps_real: f64,
    pub llamadas_activas: usize,
    pub originadas: u64,
    /// Whether the runner is dialing now (not paused, not finished).
    pub en_marcha: bool,
    /// The pace the campaign dials at: its `cps`, lowered as its abandon rate nears
    /// `tasa_abandono_maxima`.
    pub cps_efectivo: f64,
    /// Abandoned calls per 100 calls answered by a person over the last 30 days, as the runner
    /// last read it (what the ceiling is judged on).
    pub tasa_abandono_30d: f64,
}

/// The dialer; cheap to clone.
#[derive(Clone)]
pub struct Dialer {
    shared: Arc<Shared>,
    runners: Arc<Mutex<HashMap<String, Runner>>>,
}

impl Dialer {
    /// Starts the tracker and the writer. Runners start with [`Dialer::start`] (the API, and
    /// start-up recovery for the campaigns that were ACTIVA).
    pub fn new(
        store: Store,
        pool: Pool,
        settings: DialerSettings,
    ) -> (Dialer, writer::WriterHandle) {
        let metrics = settings.metrics;
        metrics.set_canales_maximos(settings.canales_maximos);
        let (writer_tx, writer) = writer::start(store.clone(), metrics.clone());
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let tracker = Tracker::start(
            writer_tx.clone(),
            notices_tx,
            pool.first().nombre.clone(),
            settings.clock.clone(),
            settings.eventos.clone(),
            metrics.clone(),
        );
        let shared = Arc::new(Shared {
            store,
            pool,
            tracker,
            writer: writer_tx,
            pacer: Pacer::new(settings.cps_maximo),
            gateway_pacers: settings
                .gateway_cps
                .iter()
                .map(|(gw, cps)| (gw.as_str().to_owned(), Pacer::new(cps.get())))
                .collect(),
            channels: Arc::new(Semaphore::new(settings.canales_maximos as usize)),
            template: settings.template,
            default_gateway: settings.default_gateway,
            recovered: AtomicBool::new(false),
            clock: settings.clock,
            caps: rules::AttemptCaps::new(settings.max_intentos_dia),
            eventos: settings.eventos,
            metrics,
            socket_anunciado: settings.socket_anunciado,
        });
        let dialer = Dialer {
            shared,
            runners: Arc::new(Mutex::new(HashMap::new())),
        };
        tokio::spawn(act_on_notices(dialer.downgrade(), notices));
        (dialer, writer)
    }

    fn downgrade(&self) -> WeakDialer {
        WeakDialer {
            shared: Arc::downgrade(&self.shared),
            runners: Arc::downgrade(&self.runners),
        }
    }

    /// The optional modules the connected FreeSWITCH nodes have together (see [`Pool::modules`]).
    pub fn modules(&self) -> Modules {
        self.shared.pool.modules()
    }

    /// The module a campaign with AMD mode `amd` needs and no connected node has.
    pub fn missing_module(&self, amd: AmdMode) -> Option<&'static str> {
        self.modules().missing_for(amd)
    }

    /// The FreeSWITCH nodes.
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The service itself pauses a running campaign (ACTIVA → PAUSADA) and records why, for
    /// estado. The runner is paused even if the database cannot record it (a campaign that cannot
    /// be dialed must not keep trying); a campaign that is no longer ACTIVA is left as it is.
    pub async fn pause_for(&self, name: &CampaignName, motivo: &str) {
        if record_self_pause(&self.shared, name, motivo).await {
            self.pause(name);
        }
    }

    /// The calendar clock of the calling rules.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.clock.now()
    }

    pub fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The service's Prometheus metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Brings the figures computed on read (the achieved rate of each campaign over its sliding
    /// window) into the Prometheus gauges; called at every scrape of `/metrics`.
    pub fn refresh_metrics(&self) {
        for r in self.runners().values() {
            r.metrics.export_cps_real(!r.join.is_finished());
        }
        for n in self.shared.pool.nodes() {
            self.shared
                .metrics
                .set_node(&n.nombre, n.connected(), n.live_calls(), n.drained());
        }
    }

    /// The ESL link's state, as `/health` shows it: `conectado` while any node is connected,
    /// otherwise the first node's state.
    pub fn esl_state(&self) -> &'static str {
        let pool = &self.shared.pool;
        if pool.any_connected() {
            return "conectado";
        }
        match pool.first().estado() {
            "perdido" => "desconectado",
            other => other,
        }
    }

    /// Live calls of campaign `name` per node (for estado).
    pub async fn live_per_node(
        &self,
        name: &CampaignName,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for c in self.shared.tracker.live().await {
            if c.campana.as_str().eq_ignore_ascii_case(name.as_str()) {
                let nodo = c.nodo.unwrap_or_else(|| "desconocido".to_owned());
                *out.entry(nodo).or_insert(0) += 1;
            }
        }
        out
    }

    /// Drains node `nombre` (no new calls) or activates it again, recording it in the database
    /// for every process sharing it. `Ok(false)`: there is no such node.
    pub async fn set_node_drained(&self, nombre: &str, drenado: bool) -> Result<bool, StoreError> {
        let Some(node) = self.shared.pool.get(nombre) else {
            return Ok(false);
        };
        self.shared.store.set_node_drained(nombre, drenado).await?;
        node.set_drained(drenado);
        Ok(true)
    }

    /// Reads the drained flags other processes (or this one) recorded.
    pub async fn reload_drains(&self) -> Result<(), StoreError> {
        let rows = self.shared.store.drained_nodes().await?;
        for node in self.shared.pool.nodes() {
            let drained = rows.iter().any(|(n, d)| *n == node.nombre && *d);
            node.set_drained(drained);
        }
        Ok(())
    }

    fn runners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Runner>> {
        self.runners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(name: &CampaignName) -> String {
        name.as_str().to_ascii_lowercase()
    }

    /// Starts (or resumes) dialing `campaign`. `cps` overrides the campaign's rate (the caller has
    /// already saved it). Starting a running campaign only applies the new settings.
    /// Whether start-up recovery is over ([`recovery::recover_at_startup`]); until then the API
    /// starts no campaign.
    pub fn recovered(&self) -> bool {
        self.shared.recovered.load(Ordering::Acquire)
    }

    /// Marks start-up recovery as over.
    pub fn mark_recovered(&self) {
        self.shared.recovered.store(true, Ordering::Release);
    }

    pub fn start(&self, campaign: Campaign, cps: Option<Cps>) {
        let mut campaign = campaign;
        if let Some(cps) = cps {
            campaign.cps = cps;
        }
        let key = Self::key(&campaign.nombre);
        let mut runners = self.runners();
        if let Some(r) = runners.get(&key) {
            if !r.join.is_finished() {
                r.pacer.set_rate(campaign.cps.get());
                let _ = r.settings.send(Arc::new(campaign));
                let _ = r.control.send(RunState::Running);
                return;
            }
        }
        let (control_tx, control_rx) = watch::channel(RunState::Running);
        let pacer = Arc::new(Pacer::new(campaign.cps.get()));
        let metrics = Arc::new(CampaignMetrics::new(
            self.shared.metrics.campaign(&campaign.nombre),
        ));
        metrics.set_cps_efectivo(campaign.cps.get());
        let (settings_tx, settings_rx) = watch::channel(Arc::new(campaign));
        let join = tokio::spawn(runner::run(
            self.shared.clone(),
            RunnerParts {
                control: control_rx,
                settings: settings_rx,
                metrics: metrics.clone(),
                pacer: pacer.clone(),
            },
        ));
        runners.insert(
            key,
            Runner {
                control: control_tx,
                settings: settings_tx,
                metrics,
                pacer,
                join,
            },
        );
    }

    /// Whether the campaign's runner dials now (not paused, not stopped).
    pub fn is_running(&self, name: &CampaignName) -> bool {
        self.runners()
            .get(&Self::key(name))
            .is_some_and(Runner::dialing)
    }

    fn set_state(&self, name: &CampaignName, state: RunState) -> bool {
        match self.runners().get(&Self::key(name)) {
            Some(r) if !r.join.is_finished() => r.control.send(state).is_ok(),
            _ => false,
        }
    }

    /// Stops new originates at once; calls in flight go on to their end. Unused claims go back to
    /// PENDIENTE.
    pub fn pause(&self, name: &CampaignName) -> bool {
        self.set_state(name, RunState::Paused)
    }

    pub fn resume(&self, name: &CampaignName) -> bool {
        self.set_state(name, RunState::Running)
    }

    /// Ends the runner. Calls in flight go on to their end and are recorded.
    pub fn stop(&self, name: &CampaignName) -> bool {
        let stopped = self.set_state(name, RunState::Stopped);
        if let Some(r) = self.runners().remove(&Self::key(name)) {
            // Its gauges would otherwise keep their last value: the campaign no longer dials.
            r.metrics.export_cps_real(false);
        }
        stopped
    }

    /// A campaign's settings changed (PATCH): a running campaign applies them at once.
    pub fn update(&self, campaign: Campaign) {
        if let Some(r) = self.runners().get(&Self::key(&campaign.nombre)) {
            r.pacer.set_rate(campaign.cps.get());
            let _ = r.settings.send(Arc::new(campaign));
        }
    }

    /// The settings a running campaign dials with (the controller reads AMD and destinations here).
    pub fn campaign(&self, name: &str) -> Option<Arc<Campaign>> {
        let key = name.to_ascii_lowercase();
        self.runners()
            .get(&key)
            .map(|r| r.settings.borrow().clone())
    }

    pub fn live(&self, name: &CampaignName) -> Option<LiveStats> {
        let runners = self.runners();
        let r = runners.get(&Self::key(name))?;
        Some(Self::live_of(r))
    }

    /// The live figures of every campaign with a runner that dials now, with its configured `cps`
    /// (the stream's periodic `ritmo` events).
    pub fn running(&self) -> Vec<(Arc<Campaign>, LiveStats)> {
        self.runners()
            .values()
            .filter(|r| r.dialing())
            .map(|r| (r.settings.borrow().clone(), Self::live_of(r)))
            .collect()
    }

    /// The live event stream.
    pub fn eventos(&self) -> &Eventos {
        &self.shared.eventos
    }

    fn live_of(r: &Runner) -> LiveStats {
        LiveStats {
            cps_real: (r.metrics.cps_real() * 100.0).round() / 100.0,
            llamadas_activas: r.metrics.activas(),
            originadas: r.metrics.originadas(),
            en_marcha: r.dialing(),
            cps_efectivo: (r.metrics.cps_efectivo() * 100.0).round() / 100.0,
            tasa_abandono_30d: r.metrics.tasa_abandono(),
        }
    }

    /// Whether the campaign has a runner here that has not ended (dialing or paused).
    pub fn has_runner(&self, name: &CampaignName) -> bool {
        self.runners()
            .get(&Self::key(name))
            .is_some_and(|r| !r.join.is_finished())
    }

    /// The live figures of every campaign with a runner here (what this process publishes to its
    /// peers, see `crate::procesos`).
    pub fn all_live(&self) -> Vec<(Arc<Campaign>, LiveStats)> {
        self.runners()
            .values()
            .map(|r| (r.settings.borrow().clone(), Self::live_of(r)))
            .collect()
    }

    /// Pauses every runner here without recording anything (fencing: this process may no longer
    /// hold its leases, see `crate::procesos`); the lease loop resumes the ones it still owns.
    pub fn pause_all_locally(&self) -> usize {
        let runners = self.runners();
        runners
            .values()
            .filter(|r| r.dialing())
            .filter(|r| r.control.send(RunState::Paused).is_ok())
            .count()
    }

    /// The gateway a campaign dials through (its own, else `GATEWAY`).
    pub fn gateway_of<'a>(&'a self, c: &'a Campaign) -> &'a str {
        c.gateway
            .as_ref()
            .map_or(self.shared.default_gateway.as_str(), |g| g.as_str())
    }

    /// Sets the rate of the process-wide `CPS_MAXIMO` pacer (its share of the cap, see
    /// `crate::procesos::caps`).
    pub fn set_total_rate(&self, cps: f64) {
        self.shared.pacer.set_rate(cps);
    }

    /// Sets the rate of a `CPS_POR_GATEWAY` pacer (this process's share of the gateway's cap).
    pub fn set_gateway_rate(&self, gateway: &str, cps: f64) {
        if let Some(p) = self.shared.gateway_pacers.get(gateway) {
            p.set_rate(cps);
        }
    }

    /// Stops every runner (graceful shutdown): no new originates; calls in flight are left to
    /// FreeSWITCH and reconciled at the next start.
    pub async fn shutdown(&self) {
        let runners: Vec<Runner> = self.runners().drain().map(|(_, r)| r).collect();
        for r in &runners {
            let _ = r.control.send(RunState::Stopped);
            r.metrics.export_cps_real(false);
        }
        for r in runners {
            let _ = r.join.await;
        }
    }
}

/// Records ACTIVA → PAUSADA with `motivo`, decided by the service itself (the API's pause records
/// no reason). `false` when the campaign is no longer ACTIVA: an operator's pause or stop at the
/// same moment wins. A database that cannot record it is logged and counts as paused: a campaign
/// that cannot be dialed must not keep trying.
async fn record_self_pause(shared: &Shared, name: &CampaignName, motivo: &str) -> bool {
    match shared
        .store
        .transition_campaign_state(
            name,
            &[CampaignState::Activa],
            CampaignState::Pausada,
            Some(motivo),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return false,
        Err(e) => {
            tracing::warn!(campana = %name, error = %e, "no se pudo registrar la pausa de la campaña");
        }
    }
    tracing::warn!(campana = %name, %motivo, "campaña pausada por el servicio");
    shared.eventos.publish(Evento::state_changed(
        name,
        CampaignState::Pausada,
        Some(motivo),
    ));
    true
}

/// Why a campaign pauses when FreeSWITCH refuses its calls for their configuration (`cause`).
pub fn refused_reason(cause: &str) -> String {
    format!(
        "FreeSWITCH rechaza las llamadas de la campaña ({cause}): revise su gateway o la \
         plantilla de marcado"
    )
}

/// Why a campaign cannot dial with `amd`: its module is missing.
pub fn missing_module_reason(amd: AmdMode, module: &str) -> String {
    format!(
        "FreeSWITCH no tiene cargado {module}, que necesita la detección amd={amd}: \
         cárguelo (load {module}) o cambie el modo amd de la campaña"
    )
}

/// A [`Dialer`] that does not keep it alive: for tasks the dialer itself owns.
struct WeakDialer {
    shared: Weak<Shared>,
    runners: Weak<Mutex<HashMap<String, Runner>>>,
}

impl WeakDialer {
    fn upgrade(&self) -> Option<Dialer> {
        Some(Dialer {
            shared: self.shared.upgrade()?,
            runners: self.runners.upgrade()?,
        })
    }
}

/// Acts on what the tracker reports: a node refusing for capacity holds new calls to it for a
/// moment; a refusal of the campaign's configuration (a gateway or profile the switch does not
/// have) pauses that campaign with the cause.
async fn act_on_notices(dialer: WeakDialer, mut notices: mpsc::UnboundedReceiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        let Some(dialer) = dialer.upgrade() else {
            return;
        };
        match notice {
            Notice::Refused {
                kind: Refusal::Capacity,
                nodo,
                ..
            } => {
                // Only the node that refused holds: the others still have room.
                let pool = &dialer.shared.pool;
                match nodo.as_deref().and_then(|n| pool.get(n)) {
                    Some(node) => node.node.hold.refused(),
                    None => pool.nodes().iter().for_each(|n| n.node.hold.refused()),
                }
            }
            Notice::Refused {
                campana,
                cause,
                kind: Refusal::Configuration,
                ..
            } => {
                if dialer.is_running(&campana) {
                    let motivo = refused_reason(&cause);
                    dialer.pause_for(&campana, &motivo).await;
                }
            }
            Notice::Refused {
                kind: Refusal::Number,
                ..
            } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ceilings_parse_or_say_why() {
        let v = parse_gateway_cps(" gw_pstn=20, gw_movil=0.5 ,").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].0.as_str(), v[0].1.get()), ("gw_pstn", 20.0));
        assert_eq!((v[1].0.as_str(), v[1].1.get()), ("gw_movil", 0.5));
        assert!(parse_gateway_cps("").unwrap().is_empty());
        for bad in [
            "gw_pstn",
            "gw_pstn=x",
            "gw pstn=5",
            "gw=0",
            "gw=-1",
            "gw=5000",
        ] {
            assert!(parse_gateway_cps(bad).is_err(), "{bad}");
        }
    }
}
