//! The seam between the API and the dialer: start, pause, resume, stop and the live figures.
//!
//! For now it validates the request and records the campaign's state (compare-and-set in the store,
//! so two concurrent commands cannot both win); the dialer plugs in here to act on it.

use crate::domain::{CampaignName, CampaignState, Cps};
use crate::store::{Campaign, CampaignPatch, Store};

use super::error::ApiError;
use super::stats::StatsCache;

#[derive(Clone)]
pub struct Control {
    store: Store,
    stats: StatsCache,
}

impl Control {
    pub fn new(store: Store, stats: StatsCache) -> Self {
        Control { store, stats }
    }

    /// CREADA / PAUSADA / DETENIDA / FINALIZADA → ACTIVA. Needs pending numbers (409 otherwise), as
    /// the seed's "verifica que la campaña existe y tiene números pendientes". `cps` is saved.
    pub async fn start(&self, name: &CampaignName, cps: Option<Cps>) -> Result<Campaign, ApiError> {
        let c = self.existing(name).await?;
        if c.estado == CampaignState::Activa {
            return Err(ApiError::conflict(format!(
                "la campaña {name} ya está activa"
            )));
        }
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
            )
            .await?;
        self.stats.invalidate(&c.tabla);
        tracing::info!(campana = %name, cps = c.cps.get(), "campaña iniciada");
        Ok(c)
    }

    /// ACTIVA → PAUSADA: no new calls; calls in progress finish.
    pub async fn pause(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        self.transition(name, &[CampaignState::Activa], CampaignState::Pausada)
            .await
    }

    /// PAUSADA → ACTIVA.
    pub async fn resume(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        self.transition(name, &[CampaignState::Pausada], CampaignState::Activa)
            .await
    }

    /// ACTIVA / PAUSADA → DETENIDA.
    pub async fn stop(&self, name: &CampaignName) -> Result<Campaign, ApiError> {
        self.transition(
            name,
            &[CampaignState::Activa, CampaignState::Pausada],
            CampaignState::Detenida,
        )
        .await
    }

    /// Live figures of a running campaign (achieved cps, active calls…), merged into
    /// `estadisticas`. `None` until the dialer is plugged in.
    pub fn live(&self, _name: &CampaignName) -> Option<serde_json::Map<String, serde_json::Value>> {
        None
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
        let c = self.store.transition_campaign_state(name, from, to).await?;
        tracing::info!(campana = %name, estado = %to, "estado de campaña cambiado");
        Ok(c)
    }
}
