//! `discador copy --from URL --to URL`: moves everything discador stores from one database to
//! another, e.g. from the zero-setup SQLite file to MariaDB when a call center outgrows it.
//!
//! What is copied, exactly as stored: every campaign (settings, script, state, times), its numbers
//! (ids, states, attempts, results, dispositions, `datos`), the CDRs of `llamadas` (ids included) and the do-not-call
//! list. The source is only read (a missing source is an error, never a new empty database); the
//! destination is created and migrated if needed. Rows go in pages read by key and are written
//! "insert or ignore" by key, then read back: a page whose rows do not come back identical (the
//! destination already had other rows under those keys, or could not store a value as it is) stops
//! the copy with an error naming the campaign, so nothing is merged or truncated silently. A copy
//! that was interrupted can simply be run again; nothing is ever overwritten or deleted in the
//! destination. A campaign is written PAUSADA first and gets its own state only once all its numbers
//! are in, so a destination service started on an interrupted copy never dials a partial campaign.
//! Stop the service on the source first: a row changed after it was copied is not copied again.
//!
//! Not copied: columns of an adopted numbers table that discador does not own (they stay in the
//! source table).

use std::collections::HashMap;

use crate::domain::{CampaignName, CampaignState};
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// Rows per page (numbers carry 12 values each: 24,000 bound values, under SQLite's 32,766).
const NUMBERS_PAGE: u32 = 2_000;
/// CDRs per page (24 values each).
const CDR_PAGE: u32 = 1_000;
const DNC_PAGE: u32 = 1_000;

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("origen: {0}")]
    Source(StoreError),
    #[error("destino: {0}")]
    Destination(StoreError),
    #[error("la campaña {0} ya existe en el destino con otra tabla ({1}); no se copia encima")]
    TableMismatch(CampaignName, String),
    /// Rows read back from the destination differ from the source's: the destination held other
    /// data under the same keys, or changed a value (e.g. a text longer than its column).
    #[error("{0}: el destino tiene datos distintos a los del origen con las mismas claves ({1}); no se mezclan")]
    Differs(String, &'static str),
}

/// What a copy wrote (rows new in the destination; a re-run reports zeros).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Per campaign: numbers newly written.
    pub numeros: HashMap<String, u64>,
    /// Campaigns created in the destination.
    pub campanas_nuevas: u64,
    pub llamadas: u64,
    pub dnc: u64,
    /// Attempts recorded for the caps per rolling 24 h (`intentos_telefono`).
    pub intentos: u64,
}

/// Copies everything from `from` to `to` (both `DATABASE_URL`s).
pub async fn copy(from: &Secret, to: &Secret) -> Result<CopyReport, CopyError> {
    let src = Store::open_existing(from)
        .await
        .map_err(CopyError::Source)?;
    let dst = Store::connect(to).await.map_err(CopyError::Destination)?;
    copy_between(&src, &dst).await
}

/// Copies everything from `src` to `dst`: campaigns, their numbers, CDRs, the attempts the caps
/// count and the do-not-call list,
/// in the order that keeps references valid. Long on purpose: the one place that says what a copy
/// contains and in which order.
pub async fn copy_between(src: &Store, dst: &Store) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    for c in src.campaigns().await.map_err(CopyError::Source)? {
        match dst
            .campaign(&c.nombre)
            .await
            .map_err(CopyError::Destination)?
        {
            Some(existing) if existing.tabla != c.tabla => {
                return Err(CopyError::TableMismatch(
                    c.nombre.clone(),
                    existing.tabla.to_string(),
                ))
            }
            Some(_) => {}
            None => {
                let mut paused = c.clone();
                if paused.estado == CampaignState::Activa {
                    paused.estado = CampaignState::Pausada;
                }
                dst.restore_campaign(&paused)
                    .await
                    .map_err(CopyError::Destination)?;
                report.campanas_nuevas += 1;
            }
        }
        let mut after = 0;
        let mut written = 0;
        loop {
            let page = src
                .number_rows(&c, after, NUMBERS_PAGE)
                .await
                .map_err(CopyError::Source)?;
            let Some(last) = page.last() else { break };
            written += dst
                .insert_number_rows(&c, &page)
                .await
                .map_err(CopyError::Destination)?;
            let back = dst
                .number_rows(&c, after, NUMBERS_PAGE)
                .await
                .map_err(CopyError::Destination)?;
            if back != page {
                return Err(CopyError::Differs(
                    format!("campaña {}", c.nombre),
                    "números",
                ));
            }
            after = last.id;
        }
        // Everything is in: now the campaign's own state and times.
        dst.put_campaign(&c).await.map_err(CopyError::Destination)?;
        tracing::info!(campana = %c.nombre, numeros = written, "campaña copiada");
        report.numeros.insert(c.nombre.to_string(), written);
    }
    let mut after = 0;
    loop {
        let page = src
            .cdr_rows(after, CDR_PAGE)
            .await
            .map_err(CopyError::Source)?;
        let Some(last) = page.last() else { break };
        report.llamadas += dst
            .insert_cdr_rows(&page)
            .await
            .map_err(CopyError::Destination)?;
        let back = dst
            .cdr_rows(after, CDR_PAGE)
            .await
            .map_err(CopyError::Destination)?;
        if back != page {
            return Err(CopyError::Differs(
                "llamadas".into(),
                "registros de llamadas",
            ));
        }
        after = last.id;
    }
    // The attempts the caps count (the last 24 h of them), so a number's cap holds across the move.
    let mut after = 0;
    loop {
        let page = src
            .attempt_rows(after, CDR_PAGE)
            .await
            .map_err(CopyError::Source)?;
        let Some(last) = page.last() else { break };
        report.intentos += dst
            .insert_attempt_rows(&page)
            .await
            .map_err(CopyError::Destination)?;
        let back = dst
            .attempt_rows(after, CDR_PAGE)
            .await
            .map_err(CopyError::Destination)?;
        if back != page {
            return Err(CopyError::Differs(
                "intentos_telefono".into(),
                "intentos recientes",
            ));
        }
        after = last.id;
    }
    // The do-not-call list is a set: entries the destination has already are kept (a union).
    let mut after = String::new();
    loop {
        let page = src
            .dnc_rows(&after, DNC_PAGE)
            .await
            .map_err(CopyError::Source)?;
        let Some(last) = page.last() else { break };
        after = last.telefono.clone();
        report.dnc += dst
            .insert_dnc_rows(&page)
            .await
            .map_err(CopyError::Destination)?;
    }
    tracing::info!(
        campanas_nuevas = report.campanas_nuevas,
        llamadas = report.llamadas,
        dnc = report.dnc,
        intentos = report.intentos,
        "copia terminada"
    );
    Ok(report)
}
