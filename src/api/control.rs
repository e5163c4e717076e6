//! The seam between the API and the dialer: start, pause, resume, stop and the live figures.
//!
//! It validates the request and records the campaign's state (compare-and-set in the store, so two
//! concurrent commands cannot both win), then tells the dialer, which acts on it at once. Without a
//! dialer (API-only tests) only the recorded state changes.
//!
//! With several processes on one database (see `crate::procesos`) the API of any of them serves
//! every campaign: the state is recorded the same way; this process's dialer acts at once only if
//! it holds the campaign's lease or can take it (no owner, or a dead one). A live peer that owns
//! the campaign applies the recorded state at its next heartbeat.

use crate::controller::preflight::ScriptProblem;
use crate::dialer::{missing_module_reason, Dialer};
use crate::domain::{AmdMode, CampaignName, CampaignState, Cps};
use crate::events::{Evento, Eventos};
use crate::procesos::Procesos;
use crate::store::{Campaign, CampaignPatch, Store};

use super::error::ApiError;
use super::stats::StatsCache;

#[derive(Clone)]
pub struct Control {
    store: Store,
    stats: StatsCache,
    dialer: Option<Dialer>,
    /// The leases of this process among its peers (none without a dialer).
    procesos: Option<Procesos>,
    /// The live event stream (the dialer's, or one of its own without a dialer).
    eventos: Eventos,
}

impl Control {
    pub fn new(
        store: Store,
        stats: StatsCache,
        dialer: Option<Dialer>,
        procesos: Option<Procesos>,
    ) -> Self {
        let eventos = dialer
            .as_ref()
            .map_or_else(Eventos::default, |d| d.eventos().clone());
        Control {
            store,
            stats,
            dialer,
            procesos,
            eventos,
        }
    }

    /// Keeps this process's lease loop from acting on runners while a command records a state and
    /// acts on its runner (see `Procesos::hold`).
    async fn hold(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.procesos {
            Some(p) => Some(p.hold().await),
            None => None,
        }
    }

    /// The dialer, if this process is to run campaign `c` now: it holds its lease or has just
    /// taken it. `None` when a live peer runs it (the peer applies the recorded state).
    async fn runs_here(&self, c: &Campaign) -> Option<&Dialer> {
        let d = self.dialer.as_ref()?;
        match &self.procesos {
            Some(p) if !p.acquire(c).await => {
                tracing::info!(campana = %c.nombre, "la campaña la ejecuta otro proceso: la aplicará en su próximo latido");
                None
            }
            _ => Some(d),
        }
    }

    /// The live event stream.
    pub fn eventos(&self) -> &Eventos {
        &self.eventos
    }

    /// The dialer, when this process dials.
    pub fn dialer(&self) -> Option<&Dialer> {
        self.dialer.as_ref()
    }

    /// 503 until start-up recovery is over: it needs FreeSWITCH and the database to account for
    /// the calls the previous process left, and a runner started meanwhile could claim a number
    /// that recovery then declares lost.
    pub fn check_recovered(&self) -> Result<(), ApiError> {
        match &self.dialer {
            Some(d) if !d.recovered() => Err(ApiError::unavailable(
                "el discador aún está recuperando las llamadas de la ejecución anterior (necesita \
                 FreeSWITCH y la base de datos); reintente en unos segundos",
            )),
            _ => Ok(()),
        }
    }

    /// 409 when FreeSWITCH said it does not have the module AMD mode `amd` runs on: every answered
    /// call would be hung up by the switch. (Unknown — no connection yet — is not refused: the
    /// runner waits for the answer and pauses the campaign with the reason if the module is missing.)
    pub fn check_amd(&self, amd: AmdMode) -> Result<(), ApiError> {
        match self.dialer.as_ref().and_then(|d| d.missing_module(amd)) {
            Some(module) => Err(ApiError::conflict(missing_module_reason(amd, module))),
            None => Ok(()),
        }
    }

    /// 409 naming the field when the switch lacks something the campaign's script names (an audio
    /// file, a menu's extension or gateway, mod_avmd for `buzon: tras_beep`). Not refused when the
    /// switch cannot be asked now: the runner asks again before dialing and pauses the campaign
    /// with the reason.
    pub async fn check_script(&self, c: &Campaign) -> Result<(), ApiError> {
        let Some(d) = &self.dialer else {
            return Ok(());
        };
        // Any connected node: they share the dialplan and files (each is asked again by the
        // runner before its first call of the campaign).
        let Some(node) = d.pool().nodes().iter().find(|n| n.connected()) else {
            return Ok(());
        };
        match crate::controller::preflight::check(&node.esl, c, node.modules()).await {
            Err(ScriptProblem::Missing(why)) => Err(ApiError::conflict(why)),
            Err(e @ ScriptProblem::Unknown(_)) => {
                tracing::warn!(campana = %c.nombre, error = %e, "no se pudo verificar el guion ahora");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// CREADA / PAUSADA / DETENIDA / FINALIZADA → ACTIVA. Needs pending numbers (409 otherwise), as
    /// the seed's "verifica que la campaña existe y tiene números pendientes", and the module its AMD
    /// needs (409). `cps` is saved.
    pub async fn start(&self, name: &CampaignName, cps: Option<Cps>) -> Result<Campaign, ApiError> {
        self.check_recovered()?;
        let _hold = self.hold().await;
        let c = self.existing(name).await?;
        if c.estado == CampaignState::Activa {
            return Err(ApiError::conflict(format!(
                "la campaña {name} ya está activa"
            )));
        }
        self.check_amd(c.amd)?;
        self.check_script(&c).await?;
        if !self.store.has_pending(&c).await? {
            return Err(ApiError::conflict(format!(
                "la campaña {name} no tiene números pendientes"
            )));
        }
        if let Some(cps) = cps {
            let patch = CampaignPatch {
                cps: Some(cps),
                ..CampaignPatch::default()
            };
            self.store.update_campaign(name, &patch).await?;
        }
        // The lease first: a peer's lease loop could otherwise take the campaign between the
        // state recorded here and this process's take (it would then run it, correctly, but not
        // at once here).
        let local = self.runs_here(&c).await;
        let c = self
            .store
            .transition_campaign_state(
                name,
                &[
                    CampaignState::Creada,
                    CampaignState::Pausada,
                    CampaignState::Detenida,
                    CampaignState::Finalizada,
                ],
                CampaignState::Activa,
                None,
            )
            .await?;
        self.stats.invalidate(&c.tabla);
        tracing::info!(campana = %name, cps = c.cps.get(), "campaña iniciada");
        self.eventos
            .publish(Evento::state_changed(name, CampaignState::Activa, None));
        if let Some(d) = local {
            d.start(c.clone(), None);
        }
        Ok(c)
    }

    /// ACTIVA → PAUSADA: no new calls; calls in progress finish.
    pub async fn pause(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        let _hold = self.hold().await;
        let c = self
            .transition(name, &[CampaignState::Activa], CampaignState::Pausada)
            .await?;
        if let Some(d) = &self.dialer {
            d.pause(name);
        }
        Ok(c)
    }

    /// PAUSADA → ACTIVA. (Also after a restart, when the paused campaign has no runner yet.) 409 if
    /// the module its AMD needs is missing.
    pub async fn resume(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        self.check_recovered()?;
        let _hold = self.hold().await;
        let c = self.existing(name).await?;
        self.check_amd(c.amd)?;
        self.check_script(&c).await?;
        let local = self.runs_here(&c).await;
        let c = self
            .transition(name, &[CampaignState::Pausada], CampaignState::Activa)
            .await?;
        if let Some(d) = local {
            d.start(c.clone(), None);
        }
        Ok(c)
    }

    /// ACTIVA / PAUSADA → DETENIDA. Calls in progress finish and are recorded.
    pub async fn stop(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        let _hold = self.hold().await;
        let c = self
            .transition(
                name,
                &[CampaignState::Activa, CampaignState::Pausada],
                CampaignState::Detenida,
            )
            .await?;
        if let Some(d) = &self.dialer {
            d.stop(name);
        }
        Ok(c)
    }

    /// Settings changed (PATCH): a running campaign dials with them from its next call.
    pub fn updated(&self, c: &Campaign) {
        if let Some(d) = &self.dialer {
            d.update(c.clone());
        }
    }

    /// Who runs the campaign (the owner's `PROCESO_ID`, `None`: no live process) and its live
    /// figures (`cps_real`, `llamadas_activas`…, merged into `estadisticas`): this process's own
    /// runner's, or those its owner published with its last heartbeat, so that estado reads the
    /// same on every process. No figures when nobody runs it.
    pub async fn live(
        &self,
        name: &CampaignName,
    ) -> (
        Option<String>,
        Option<serde_json::Map<String, serde_json::Value>>,
    ) {
        let local = self.dialer.as_ref().and_then(|d| d.live(name));
        let (owner, live) = match &self.procesos {
            Some(p) => match p.owner(name).await {
                Some((owner, peer_live)) if owner != p.id() => (Some(owner), peer_live),
                Some((owner, _)) => (Some(owner), local),
                None => (None, local),
            },
            None => (None, local),
        };
        let map = match live.map(serde_json::to_value) {
            Some(Ok(serde_json::Value::Object(map))) => Some(map),
            _ => None,
        };
        (owner, map)
    }

    /// The calendar clock of the calling rules (the dialer's; the system's without a dialer).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.dialer
            .as_ref()
            .map_or_else(chrono::Utc::now, |d| d.now())
    }

    async fn existing(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        self.store
            .campaign(name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no existe la campaña {name}")))
    }

    async fn transition(
        &self,
        name: &CampaignName,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<Campaign, ApiError> {
        let c = self
            .store
            .transition_campaign_state(name, from, to, None)
            .await?;
        tracing::info!(campana = %name, estado = %to, "estado de campaña cambiado");
        self.eventos.publish(Evento::state_changed(name, to, None));
        Ok(c)
    }
}
