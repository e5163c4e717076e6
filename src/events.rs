//! The live event stream: what supervisors watch (`GET /discador/eventos`, server-sent events).
//!
//! Campaign state changes and each call's milestones (sent to FreeSWITCH, answered, AMD verdict,
//! finished with its result) are published here by the code that decides them: the tracker for
//! calls (it owns every live call, so a call's `terminada` is published exactly once, next to the
//! record it hands to the writer) and the API and the runners for campaign states.
//!
//! Publishing never waits: the bus is a `tokio::sync::broadcast` ring of [`CAPACITY`] events, and a
//! publish with nobody listening costs one atomic load. A subscriber that falls behind loses its
//! place in the ring; the SSE endpoint then drops that client (see `crate::api::events`), so a slow
//! client costs a bounded buffer and never slows the dialer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::{mask, CallResult, CampaignName, CampaignState};

/// Events held for subscribers that have not read them yet. At 1,000 calls per second and four
/// events per call, about one second of traffic.
pub const CAPACITY: usize = 4096;

/// One event, as the stream sends it (the SSE `event:` name is [`Evento::tipo`], the `data:` line is
/// this value as JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "tipo", rename_all = "snake_case")]
pub enum Evento {
    /// A campaign changed state (`motivo`: why the service itself paused it, if it did).
    Campana {
        campana: String,
        estado: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        motivo: Option<String>,
    },
    /// An originate is about to be sent to FreeSWITCH.
    Originada {
        campana: String,
        uuid: String,
        /// Masked to its last four digits: the stream feeds dashboards.
        telefono: String,
        intento: u32,
    },
    /// The called party answered.
    Contestada { campana: String, uuid: String },
    /// The controller's AMD verdict; sent again when a late beep corrects a person's verdict
    /// (MAQUINA, cause LATE_BEEP).
    Veredicto {
        campana: String,
        uuid: String,
        /// HUMANO or MAQUINA (after the campaign's NOTSURE rule); NUMERO_INVALIDO for a SIT.
        resultado: &'static str,
        /// The detector's own word (HUMAN, MACHINE, NOTSURE) and cause.
        amd: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        causa: Option<String>,
    },
    /// The attempt is over and its record goes to the store: sent once per CDR.
    Terminada {
        campana: String,
        uuid: String,
        /// The number's state after this attempt (PENDIENTE if it will be retried).
        estado: &'static str,
        resultado: &'static str,
        causa: Option<String>,
        disposicion: Option<&'static str>,
        duracion: u32,
        billsec: u32,
    },
    /// The originate never became an attempt (no connection, or refused by the switch without a
    /// channel): the number went back to the queue. Lets a live-calls view forget the call.
    Devuelta { campana: String, uuid: String },
    /// A running campaign's pace, every few seconds while someone listens.
    Ritmo {
        campana: String,
        cps: f64,
        cps_efectivo: f64,
        cps_real: f64,
        llamadas_activas: usize,
    },
}

impl Evento {
    /// The SSE event name.
    pub fn tipo(&self) -> &'static str {
        match self {
            Evento::Campana { .. } => "campana",
            Evento::Originada { .. } => "originada",
            Evento::Contestada { .. } => "contestada",
            Evento::Veredicto { .. } => "veredicto",
            Evento::Terminada { .. } => "terminada",
            Evento::Devuelta { .. } => "devuelta",
            Evento::Ritmo { .. } => "ritmo",
        }
    }

    /// The campaign the event is about (the stream's filter).
    pub fn campana(&self) -> &str {
        match self {
            Evento::Campana { campana, .. }
            | Evento::Originada { campana, .. }
            | Evento::Contestada { campana, .. }
            | Evento::Veredicto { campana, .. }
            | Evento::Terminada { campana, .. }
            | Evento::Devuelta { campana, .. }
            | Evento::Ritmo { campana, .. } => campana,
        }
    }

    pub fn state_changed(c: &CampaignName, estado: CampaignState, motivo: Option<&str>) -> Self {
        Evento::Campana {
            campana: c.to_string(),
            estado: estado.as_str(),
            motivo: motivo.map(str::to_owned),
        }
    }

    pub fn originated(c: &CampaignName, uuid: &uuid::Uuid, telefono: &str, intento: u32) -> Self {
        Evento::Originada {
            campana: c.to_string(),
            uuid: uuid.hyphenated().to_string(),
            telefono: mask(telefono).to_string(),
            intento,
        }
    }

    pub fn finished(r: &crate::store::CallRecord) -> Self {
        Evento::Terminada {
            campana: r.campana.to_string(),
            uuid: r.uuid.clone(),
            estado: r.estado.as_str(),
            resultado: r.resultado.as_str(),
            causa: r.causa.clone(),
            disposicion: r.disposicion.as_ref().map(|d| d.disposicion.as_str()),
            duracion: r.duracion,
            billsec: r.billsec,
        }
    }

    pub fn verdict(
        c: &CampaignName,
        uuid: &uuid::Uuid,
        result: CallResult,
        amd: &str,
        causa: Option<&str>,
    ) -> Self {
        Evento::Veredicto {
            campana: c.to_string(),
            uuid: uuid.hyphenated().to_string(),
            resultado: result.as_str(),
            amd: amd.to_owned(),
            causa: causa.map(str::to_owned),
        }
    }
}

/// An event with its place in the stream (the SSE `id:`), so a client can tell it saw each once.
#[derive(Debug, Clone)]
pub struct Sequenced {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub evento: Evento,
}

/// The bus; cheap to clone.
#[derive(Clone, Debug)]
pub struct Eventos {
    tx: broadcast::Sender<Arc<Sequenced>>,
    next: Arc<AtomicU64>,
}

impl Default for Eventos {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Eventos {
            tx,
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl Eventos {
    /// Publishes `evento` to whoever listens now; never waits. Nobody listening: nothing is built
    /// beyond the event itself.
    pub fn publish(&self, evento: Evento) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Arc::new(Sequenced {
            id,
            at: Utc::now(),
            evento,
        }));
    }

    /// Builds the event only if someone listens (for events whose building costs allocations on
    /// the call path).
    pub fn publish_with(&self, evento: impl FnOnce() -> Evento) {
        if self.listening() {
            self.publish(evento());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Sequenced>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens now.
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_type_and_spanish_fields() {
        let c = CampaignName::parse("PRUEBA").unwrap();
        let e = Evento::state_changed(&c, CampaignState::Pausada, Some("tasa"));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["tipo"], "campana");
        assert_eq!(v["campana"], "PRUEBA");
        assert_eq!(v["estado"], "PAUSADA");
        assert_eq!(v["motivo"], "tasa");
        assert_eq!(e.tipo(), "campana");
        let u = uuid::Uuid::new_v4();
        let e = Evento::originated(&c, &u, "5491144445555", 2);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["tipo"], "originada");
        assert!(!v["telefono"].as_str().unwrap().contains("549114444"));
        assert!(v["telefono"].as_str().unwrap().ends_with("5555"));
    }

    #[tokio::test]
    async fn a_subscriber_gets_events_in_order_with_rising_ids_and_a_slow_one_lags() {
        let bus = Eventos::default();
        // Nobody listens: nothing is kept.
        bus.publish(Evento::Devuelta {
            campana: "A".into(),
            uuid: "u0".into(),
        });
        let mut rx = bus.subscribe();
        for i in 0..3 {
            bus.publish(Evento::Devuelta {
                campana: "A".into(),
                uuid: format!("u{i}"),
            });
        }
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert!(b.id > a.id);
        assert_eq!(
            a.evento,
            Evento::Devuelta {
                campana: "A".into(),
                uuid: "u0".into()
            }
        );
        for _ in 0..CAPACITY + 10 {
            bus.publish(Evento::Devuelta {
                campana: "A".into(),
                uuid: "x".into(),
            });
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
