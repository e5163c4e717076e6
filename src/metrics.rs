//! Prometheus metrics of one running service, served at `GET /metrics` in the Prometheus text
//! format (0.0.4), with the ecosystem's official crate `prometheus-client`.
//!
//! Why one [`Metrics`] per running app, held in an `Arc` and handed to what records into it, and
//! not a process-global registry: the integration tests run many apps in one process, each on its
//! own database, and campaign names repeat from test to test; a global registry would add one
//! test's calls to another's counters. The same handle goes to the dialer (originates, live calls,
//! channels, pacing), the tracker (answers, finished attempts, dispositions), the writer (queue,
//! batches, database errors), the ESL watcher (link state, reconnects) and the API (requests).
//!
//! Exactness: every counter is bumped at the one place where its fact is decided, once:
//! - an originate when the runner registers the call and sends it (`discador_originadas_total`);
//! - an answer when the tracker first marks the call answered (`discador_contestadas_total`);
//! - a finished attempt, with its `resultado`, where the tracker hands the call's `CallRecord` to
//!   the writer (`discador_llamadas_terminadas_total`) — so after a campaign ends its counters by
//!   `resultado` equal its CDRs by `resultado` (`llamadas`), retries counted once per attempt.
//!   An originate that FreeSWITCH refused without creating a channel is requeued, not an attempt,
//!   and is not counted there (it is counted as an originate). Numbers decided without a call
//!   (do-not-call, invalid in the table) are not attempts either: they have a CDR but no originate.
//!
//! Labels use the API's own (Spanish) words: `campana`, `resultado`, `disposicion`, `ruta`,
//! `estado`. Their values are bounded: campaign names (one per campaign), the result and
//! disposition vocabularies, and the API's route *templates* (`/campana/:nombre`), never a raw path
//! (see [`route_template`]).

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::{CallDisposition, CallResult, CampaignName};
use crate::esl::ConnState;

/// `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of a request whose path is none of the API's.
pub const UNKNOWN_ROUTE: &str = "desconocida";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CampanaLabel {
    pub campana: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodoLabel {
    nodo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultadoLabels {
    campana: String,
    resultado: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DisposicionLabels {
    campana: String,
    disposicion: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperacionLabel {
    operacion: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeticionLabels {
    metodo: &'static str,
    ruta: &'static str,
    estado: u16,
}

/// A database operation whose failures are counted (`discador_bd_errores_total{operacion}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbOp {
    /// The writer's batch of call results.
    EscribirResultados,
    /// A runner's claim of due numbers.
    Reservar,
}

impl DbOp {
    fn as_str(self) -> &'static str {
        match self {
            DbOp::EscribirResultados => "escribir_resultados",
            DbOp::Reservar => "reservar",
        }
    }
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics of one running service. Cheap to share (`Arc<Metrics>`); every handle inside is
/// an atomic, so recording never blocks a caller for long.
pub struct Metrics {
    registry: Registry,
    originadas: Family<CampanaLabel, Counter>,
    contestadas: Family<CampanaLabel, Counter>,
    terminadas: Family<ResultadoLabels, Counter>,
    disposiciones: Family<DisposicionLabels, Counter>,
    llamadas_activas: Family<CampanaLabel, Gauge>,
    canales_en_uso: Gauge,
    canales_maximos: Gauge,
    cps_configurado: Family<CampanaLabel, FloatGauge>,
    cps_real: Family<CampanaLabel, FloatGauge>,
    esl_conectado: Gauge,
    esl_reconexiones: Counter,
    nodo_conectado: Family<NodoLabel, Gauge>,
    nodo_llamadas_activas: Family<NodoLabel, Gauge>,
    nodo_drenado: Family<NodoLabel, Gauge>,
    nodo_originadas: Family<NodoLabel, Counter>,
    escritor_cola: Gauge,
    escritor_lote: Histogram,
    bd_errores: Family<OperacionLabel, Counter>,
    api_peticiones: Family<PeticionLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric of the service registered (at zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("discador");
        let m = Metrics {
            originadas: Family::default(),
            contestadas: Family::default(),
            terminadas: Family::default(),
            disposiciones: Family::default(),
            llamadas_activas: Family::default(),
            canales_en_uso: Gauge::default(),
            canales_maximos: Gauge::default(),
            cps_configurado: Family::default(),
            cps_real: Family::default(),
            esl_conectado: Gauge::default(),
            esl_reconexiones: Counter::default(),
            nodo_conectado: Family::default(),
            nodo_llamadas_activas: Family::default(),
            nodo_drenado: Family::default(),
            nodo_originadas: Family::default(),
            escritor_cola: Gauge::default(),
            // 1 ms to ~16 s: a healthy batch takes milliseconds; seconds mean a struggling database.
            escritor_lote: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            bd_errores: Family::default(),
            api_peticiones: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "originadas",
            "Originates sent to FreeSWITCH, by campaign",
            m.originadas.clone(),
        );
        r.register(
            "contestadas",
            "Calls answered, by campaign",
            m.contestadas.clone(),
        );
        r.register(
            "llamadas_terminadas",
            "Finished attempts by campaign and resultado (as written to llamadas, once per attempt)",
            m.terminadas.clone(),
        );
        r.register(
            "disposiciones",
            "Dispositions of answered calls by campaign and disposicion",
            m.disposiciones.clone(),
        );
        r.register(
            "llamadas_activas",
            "Calls in flight now, by campaign",
            m.llamadas_activas.clone(),
        );
        r.register(
            "canales_en_uso",
            "Channels in use now, every campaign together",
            m.canales_en_uso.clone(),
        );
        r.register(
            "canales_maximos",
            "CANALES_MAXIMOS: the ceiling on channels in use",
            m.canales_maximos.clone(),
        );
        r.register(
            "cps_configurado",
            "The pace a running campaign is set to (its cps, lowered by the abandon-rate rule)",
            m.cps_configurado.clone(),
        );
        r.register(
            "cps_real",
            "Originates per second of a campaign over the last 10 s",
            m.cps_real.clone(),
        );
        r.register(
            "esl_conectado",
            "1 while the event socket to FreeSWITCH is connected and subscribed, else 0",
            m.esl_conectado.clone(),
        );
        r.register(
            "esl_reconexiones",
            "Connections to FreeSWITCH's event socket after the first one",
            m.esl_reconexiones.clone(),
        );
        r.register(
            "nodo_conectado",
            "1 while the event socket to a FreeSWITCH node is connected, by nodo",
            m.nodo_conectado.clone(),
        );
        r.register(
            "nodo_llamadas_activas",
            "Calls in flight on a FreeSWITCH node, by nodo",
            m.nodo_llamadas_activas.clone(),
        );
        r.register(
            "nodo_drenado",
            "1 while a FreeSWITCH node is drained (no new calls), by nodo",
            m.nodo_drenado.clone(),
        );
        r.register(
            "nodo_originadas",
            "Originates sent to a FreeSWITCH node, by nodo",
            m.nodo_originadas.clone(),
        );
        r.register(
            "escritor_cola",
            "Call results handed to the writer and not yet in the database",
            m.escritor_cola.clone(),
        );
        r.register(
            "escritor_lote_segundos",
            "Time to write one batch of call results, retries included",
            m.escritor_lote.clone(),
        );
        r.register(
            "bd_errores",
            "Database errors by operation",
            m.bd_errores.clone(),
        );
        r.register(
            "api_peticiones",
            "API requests by method, route template and HTTP status",
            m.api_peticiones.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug of the crate.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "no se pudieron codificar las métricas");
        }
        out
    }

    /// The per-campaign handles a runner keeps (no label lookup per call).
    pub fn campaign(&self, name: &CampaignName) -> CampaignHandles {
        let label = campana(name);
        CampaignHandles {
            originadas: self.originadas.get_or_create_owned(&label),
            activas: self.llamadas_activas.get_or_create_owned(&label),
            canales: self.canales_en_uso.clone(),
            cps_configurado: self.cps_configurado.get_or_create_owned(&label),
            cps_real: self.cps_real.get_or_create_owned(&label),
        }
    }

    pub fn set_canales_maximos(&self, n: u32) {
        self.canales_maximos.set(i64::from(n));
    }

    /// The tracker marked a call answered (once per call).
    pub fn answered(&self, name: &CampaignName) {
        self.contestadas.get_or_create(&campana(name)).inc();
    }

    /// The tracker handed a finished attempt to the writer (once per attempt).
    pub fn finished(
        &self,
        name: &CampaignName,
        resultado: CallResult,
        disposicion: Option<&CallDisposition>,
    ) {
        let campana = name.as_str().to_owned();
        if let Some(d) = disposicion {
            self.disposiciones
                .get_or_create(&DisposicionLabels {
                    campana: campana.clone(),
                    disposicion: d.disposicion.as_str(),
                })
                .inc();
        }
        self.terminadas
            .get_or_create(&ResultadoLabels {
                campana,
                resultado: resultado.as_str(),
            })
            .inc();
    }

    pub fn db_error(&self, op: DbOp) {
        self.bd_errores
            .get_or_create(&OperacionLabel {
                operacion: op.as_str(),
            })
            .inc();
    }

    /// The writer's queue gauge (moved with its count of unwritten updates).
    pub fn writer_queue(&self) -> Gauge {
        self.escritor_cola.clone()
    }

    pub fn writer_batch(&self, seconds: f64) {
        self.escritor_lote.observe(seconds);
    }

    /// A node's state at a scrape: connected, its live calls, drained.
    pub fn set_node(&self, nodo: &str, connected: bool, live: usize, drained: bool) {
        let l = NodoLabel {
            nodo: nodo.to_owned(),
        };
        self.nodo_conectado
            .get_or_create(&l)
            .set(i64::from(connected));
        self.nodo_llamadas_activas
            .get_or_create(&l)
            .set(i64::try_from(live).unwrap_or(i64::MAX));
        self.nodo_drenado.get_or_create(&l).set(i64::from(drained));
    }

    /// An originate went to node `nodo`.
    pub fn node_originated(&self, nodo: &str) {
        self.nodo_originadas
            .get_or_create(&NodoLabel {
                nodo: nodo.to_owned(),
            })
            .inc();
    }

    /// One API request answered with `status`; `method` and `path` as received.
    pub fn api_request(&self, method: &str, path: &str, status: u16) {
        self.api_peticiones
            .get_or_create(&PeticionLabels {
                metodo: method_label(method),
                ruta: route_template(path),
                estado: status,
            })
            .inc();
    }

    /// Follows the ESL link: `discador_esl_conectado` is 1 while connected, and every new
    /// generation after the first counts as a reconnect. Generations are counted by number, not by
    /// the changes seen, so a drop and reconnect between two looks is still counted. Ends when the
    /// client is gone.
    pub fn watch_esl(
        self: &std::sync::Arc<Self>,
        mut state: tokio::sync::watch::Receiver<ConnState>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = 0u64;
            loop {
                let current = state.borrow_and_update().clone();
                match current {
                    ConnState::Connected { generation } => {
                        this.esl_conectado.set(1);
                        // The first connection is not a reconnect.
                        let before = seen.max(1);
                        if generation > before {
                            this.esl_reconexiones.inc_by(generation - before);
                        }
                        seen = seen.max(generation);
                    }
                    _ => {
                        this.esl_conectado.set(0);
                    }
                }
                if state.changed().await.is_err() {
                    this.esl_conectado.set(0);
                    return;
                }
            }
        })
    }
}

fn campana(name: &CampaignName) -> CampanaLabel {
    CampanaLabel {
        campana: name.as_str().to_owned(),
    }
}

/// What a running campaign records into, looked up once when its runner starts. Clones share the
/// same series.
#[derive(Clone, Debug)]
pub struct CampaignHandles {
    pub originadas: Counter,
    pub activas: Gauge,
    pub canales: Gauge,
    pub cps_configurado: FloatGauge,
    pub cps_real: FloatGauge,
}

impl Default for CampaignHandles {
    /// Handles registered nowhere (for code that runs without a service, e.g. unit tests).
    fn default() -> Self {
        CampaignHandles {
            originadas: Counter::default(),
            activas: Gauge::default(),
            canales: Gauge::default(),
            cps_configurado: FloatGauge::default(),
            cps_real: FloatGauge::default(),
        }
    }
}

/// The method as a label: the standard ones by name, anything else (extension methods are
/// unbounded) as `OTRO`.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTRO",
    }
}

/// The API route a path belongs to, as its template (`/campana/:nombre`), so that the label's
/// values are the API's few routes whatever clients send; a path of no route is
/// [`UNKNOWN_ROUTE`]. Trailing slashes do not matter (warp's routes accept both forms).
///
/// Parameters are written `:nombre`, not `{nombre}` as in the OpenAPI paths: braces are legal in a
/// label value, but some text-format readers (`prometheus-parse`, for one) cut a sample at the
/// first `}` and silently drop it.
pub fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [] => "/",
        ["panel", ..] => "/panel",
        ["health"] => "/health",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
        ["docs", ..] => "/docs",
        ["campanas"] => "/campanas/",
        ["campana", _] => "/campana/:nombre",
        ["campana", _, "numeros"] => "/campana/:nombre/numeros",
        ["campana", _, "llamadas"] => "/campana/:nombre/llamadas",
        ["campana", _, "serie"] => "/campana/:nombre/serie",
        ["campana", _, "grafico", "llamadas.svg"] => "/campana/:nombre/grafico/llamadas.svg",
        ["campana", _, "grafico", "resultados.svg"] => "/campana/:nombre/grafico/resultados.svg",
        ["discador", "eventos"] => "/discador/eventos",
        ["discador", "iniciar"] => "/discador/iniciar/",
        ["discador", "pausar"] => "/discador/pausar/",
        ["discador", "reanudar"] => "/discador/reanudar/",
        ["discador", "detener"] => "/discador/detener/",
        ["discador", "estado", _] => "/discador/estado/:nombre",
        ["discador", "nodos"] => "/discador/nodos",
        ["discador", "nodos", _, "drenar"] => "/discador/nodos/:nombre/drenar",
        ["discador", "nodos", _, "activar"] => "/discador/nodos/:nombre/activar",
        ["dnc"] => "/dnc/",
        _ => UNKNOWN_ROUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_template_never_by_raw_path() {
        assert_eq!(route_template("/campana/PRUEBA"), "/campana/:nombre");
        assert_eq!(route_template("/campana/OTRA/"), "/campana/:nombre");
        assert_eq!(
            route_template("/campana/X/numeros"),
            "/campana/:nombre/numeros"
        );
        assert_eq!(
            route_template("/discador/estado/A%20B"),
            "/discador/estado/:nombre"
        );
        assert_eq!(route_template("/campanas/"), "/campanas/");
        assert_eq!(route_template("/campanas"), "/campanas/");
        assert_eq!(route_template("/docs/swagger-ui.css"), "/docs");
        assert_eq!(route_template("/metrics"), "/metrics");
        assert_eq!(route_template("/"), "/");
        assert_eq!(route_template("/panel/panel.js"), "/panel");
        assert_eq!(route_template("/discador/eventos"), "/discador/eventos");
        assert_eq!(
            route_template("/campana/X/grafico/llamadas.svg"),
            "/campana/:nombre/grafico/llamadas.svg"
        );
        assert_eq!(
            route_template("/campana/X/llamadas"),
            "/campana/:nombre/llamadas"
        );
        for unknown in [
            "/x",
            "/campana/X/grafico/otro.svg",
            "/campana/a/b/c",
            "/discador/estado",
            "/wp-admin.php",
        ] {
            assert_eq!(route_template(unknown), UNKNOWN_ROUTE, "{unknown}");
        }
        assert_eq!(method_label("BREW"), "OTRO");
    }

    #[test]
    fn counters_are_per_registry_and_encode_as_prometheus_text() {
        let a = Metrics::new();
        let b = Metrics::new();
        let name = CampaignName::parse("PRUEBA").unwrap();
        a.campaign(&name).originadas.inc();
        a.finished(&name, CallResult::Ocupado, None);
        a.finished(&name, CallResult::Ocupado, None);
        a.api_request("GET", "/campana/PRUEBA", 200);
        let text = a.encode();
        assert!(
            text.contains("discador_originadas_total{campana=\"PRUEBA\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "discador_llamadas_terminadas_total{campana=\"PRUEBA\",resultado=\"OCUPADO\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "discador_api_peticiones_total{metodo=\"GET\",ruta=\"/campana/:nombre\",estado=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            !b.encode().contains("PRUEBA"),
            "another app's registry is untouched"
        );
    }

    #[tokio::test]
    async fn reconnects_are_counted_by_generation() {
        let m = std::sync::Arc::new(Metrics::new());
        let (tx, rx) = tokio::sync::watch::channel(ConnState::Connecting);
        let task = m.watch_esl(rx);
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        settle().await;
        assert_eq!(m.esl_conectado.get(), 0);
        tx.send_replace(ConnState::Connected { generation: 1 });
        settle().await;
        assert_eq!((m.esl_conectado.get(), m.esl_reconexiones.get()), (1, 0));
        tx.send_replace(ConnState::Disconnected { reason: "x".into() });
        settle().await;
        assert_eq!(m.esl_conectado.get(), 0);
        // Two reconnects between two looks: both counted.
        tx.send_replace(ConnState::Connected { generation: 3 });
        settle().await;
        assert_eq!((m.esl_conectado.get(), m.esl_reconexiones.get()), (1, 2));
        drop(tx);
        task.await.unwrap();
        assert_eq!(m.esl_conectado.get(), 0);
    }
}
