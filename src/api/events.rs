//! `GET /discador/eventos`: the live event stream (server-sent events) for supervisors, optionally
//! filtered to one campaign (`?campana=NOMBRE`).
//!
//! Each client gets its own forwarding task between the bus (`crate::events`) and its connection,
//! with a buffer of [`CLIENT_BUFFER`] events. The task never waits on the client: when the buffer
//! is full (the client stopped reading, so the connection stopped taking bytes) or the client fell
//! a whole ring behind the bus, the client is dropped — its subscription ends, and its stream ends
//! after what is already buffered. So a slow client costs at most that buffer and never slows the
//! dialer, which only ever publishes to the ring. A dropped browser reconnects by itself
//! (`EventSource`), and the page reloads the counters from estado when it does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Reply;

use super::error::ApiError;
use crate::dialer::Dialer;
use crate::domain::CampaignName;
use crate::events::{Evento, Eventos, Sequenced};

/// Events buffered per client before a client that does not read is dropped.
pub const CLIENT_BUFFER: usize = 1024;

/// How often a running campaign's pace (`ritmo`) is published while someone listens.
pub const PACE_EVERY: Duration = Duration::from_secs(2);

/// An SSE comment sent when nothing else was, so proxies keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Which events a client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    campana: Option<CampaignName>,
}

impl Filter {
    /// From the query string: only `campana` is known, anything else is refused (a typo would
    /// otherwise silently stream every campaign).
    pub fn from_query(query: &HashMap<String, String>) -> Result<Filter, ApiError> {
        if let Some(unknown) = query.keys().find(|k| k.as_str() != "campana") {
            let shown: String = unknown.chars().take(40).collect();
            return Err(ApiError::invalid(format!(
                "parámetro desconocido {shown:?}: solo se acepta campana"
            )));
        }
        let campana = match query.get("campana") {
            None => None,
            Some(raw) => Some(
                CampaignName::parse(raw).map_err(|e| ApiError::invalid(format!("campana: {e}")))?,
            ),
        };
        Ok(Filter { campana })
    }

    fn wants(&self, e: &Evento) -> bool {
        self.campana
            .as_ref()
            .is_none_or(|c| c.as_str().eq_ignore_ascii_case(e.campana()))
    }
}

/// The stream's response: events as they happen until the client goes, is dropped, or the service
/// stops (`closing`).
pub fn stream(eventos: &Eventos, filter: Filter, closing: CancellationToken) -> Response {
    let sub = eventos.subscribe();
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(forward(sub, tx, filter, closing));
    let events = ReceiverStream::new(rx).map(|e: Arc<Sequenced>| {
        let event = warp::sse::Event::default()
            .id(e.id.to_string())
            .event(e.evento.tipo());
        Ok::<_, Infallible>(
            event
                .json_data(&e.evento)
                .unwrap_or_else(|_| warp::sse::Event::default().comment("evento no serializable")),
        )
    });
    let keep = warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events);
    let mut response = warp::sse::reply(keep).into_response();
    // Tells nginx-like proxies not to hold the stream back in their buffers.
    response.headers_mut().insert(
        "x-accel-buffering",
        warp::http::HeaderValue::from_static("no"),
    );
    response
}

/// Moves the client's events from the bus to its buffer; ends (dropping the client) when the buffer
/// is full or the client lagged a whole ring.
async fn forward(
    mut sub: broadcast::Receiver<Arc<Sequenced>>,
    tx: mpsc::Sender<Arc<Sequenced>>,
    filter: Filter,
    closing: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = closing.cancelled() => return,
            _ = tx.closed() => return,
            next = sub.recv() => next,
        };
        match next {
            Ok(e) if filter.wants(&e.evento) => match tx.try_send(e) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        buffer = CLIENT_BUFFER,
                        "cliente de eventos descartado: no lee lo que se le envía"
                    );
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::warn!(perdidos = lost, "cliente de eventos descartado: se atrasó");
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Publishes every running campaign's pace every [`PACE_EVERY`] while someone listens.
pub fn spawn_pace(dialer: Dialer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PACE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let eventos = dialer.eventos();
            if !eventos.listening() {
                continue;
            }
            for (c, live) in dialer.running() {
                eventos.publish(Evento::Ritmo {
                    campana: c.nombre.to_string(),
                    cps: c.cps.get(),
                    cps_efectivo: live.cps_efectivo,
                    cps_real: live.cps_real,
                    llamadas_activas: live.llamadas_activas,
                });
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_filter_takes_one_valid_campaign_and_nothing_else() {
        assert_eq!(
            Filter::from_query(&q(&[])).unwrap(),
            Filter { campana: None }
        );
        let f = Filter::from_query(&q(&[("campana", "PRUEBA")])).unwrap();
        let e = |c: &str| Evento::Devuelta {
            campana: c.into(),
            uuid: "u".into(),
        };
        assert!(f.wants(&e("PRUEBA")));
        assert!(!f.wants(&e("OTRA")));
        let bad = Filter::from_query(&q(&[("campana", "x'; DROP TABLE bases; --")])).unwrap_err();
        assert!(bad.mensaje.starts_with("campana"), "{}", bad.mensaje);
        let typo = Filter::from_query(&q(&[("campaña", "PRUEBA")])).unwrap_err();
        assert!(typo.mensaje.contains("desconocido"), "{}", typo.mensaje);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_after_its_buffer() {
        let bus = Eventos::default();
        let (tx, mut rx) = mpsc::channel(CLIENT_BUFFER);
        let task = tokio::spawn(forward(
            bus.subscribe(),
            tx,
            Filter { campana: None },
            CancellationToken::new(),
        ));
        for i in 0..CLIENT_BUFFER + 1 {
            bus.publish(Evento::Devuelta {
                campana: "A".into(),
                uuid: i.to_string(),
            });
            tokio::task::yield_now().await;
        }
        task.await.unwrap();
        assert_eq!(
            bus.subscribers(),
            0,
            "the dropped client no longer subscribes"
        );
        // What was buffered is still delivered, then the stream ends.
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, CLIENT_BUFFER);
    }
}
