//! The REST API (warp): the seed's endpoints and paths, exactly, plus campaign creation and
//! settings, number loading and the dialer commands. JSON in Spanish; OpenAPI generated from this
//! code (utoipa), Swagger UI at `/docs` from vendored assets (works offline).
//!
//! Every handler returns a response, never a rejection: errors become `{"error", "mensaje"}` with the
//! right status, and warp's own rejections (unknown path, wrong method…) are mapped to the same shape
//! by [`error::recover`]. With `API_TOKEN`, everything but `/health`, `/docs` and `/openapi.json`
//! requires `Authorization: Bearer <token>`, compared in constant time — `/metrics` included:
//! Prometheus sends a bearer token (`authorization` in its scrape config), and the figures (campaign
//! names, rates) are the operator's business.
//!
//! Every request but `/health` first passes the per-client rate limit ([`limit`]); every answer,
//! 429s included, is counted in `discador_api_peticiones_total` by method, route template and
//! status.

pub mod charts;
pub mod control;
pub mod dto;
pub mod error;
pub mod events;
pub mod export;
pub mod limit;
pub mod nodes;
pub mod numbers;
pub mod openapi_es;
pub mod panel;
pub mod stats;

use std::convert::Infallible;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warp::http::{StatusCode, Uri};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::domain::{CampaignName, Cps};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::store::Store;

pub use control::Control;
use dto::*;
pub use error::{ApiError, ErrorBody};
pub use limit::ApiLimiter;
use openapi_es::SpanishProperties;
pub use stats::StatsCache;

/// Largest JSON body of the small endpoints (campaigns, dialer commands).
const MAX_SMALL_BODY: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub control: Control,
    pub stats: StatsCache,
    /// `API_TOKEN`; `None` leaves the API open (only allowed on loopback, see `app`).
    pub token: Option<Secret>,
    /// Cancelled when the service stops: ends the event streams, which would otherwise hold the
    /// server's graceful shutdown open for ever.
    pub closing: CancellationToken,
    /// The service's Prometheus metrics (served at `/metrics`; requests are counted in them).
    pub metrics: Arc<Metrics>,
    /// `API_LIMITE_RPS` / `API_LIMITE_RAFAGA`, per client address.
    pub limiter: Arc<ApiLimiter>,
}

impl AppState {
    /// `dialer`: `None` serves the API alone (campaign states are recorded, nothing is dialed).
    pub fn new(
        store: Store,
        token: Option<Secret>,
        dialer: Option<crate::dialer::Dialer>,
        metrics: Arc<Metrics>,
        limiter: ApiLimiter,
        closing: CancellationToken,
        procesos: Option<crate::procesos::Procesos>,
    ) -> Self {
        let stats = StatsCache::new(store.clone());
        let control = Control::new(store.clone(), stats.clone(), dialer, procesos);
        AppState {
            store,
            control,
            stats,
            token,
            closing,
            metrics,
            limiter: Arc::new(limiter),
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "discador", description = "Discador de campañas sobre FreeSWITCH"),
    paths(
        listar_campanas, obtener_campana, crear_campana, modificar_campana, cargar_numeros,
        iniciar, pausar, reanudar, detener, estado, agregar_dnc, health, eventos, metricas,
        export::exportar_llamadas, charts::grafico_llamadas, charts::grafico_resultados,
        charts::serie, nodes::listar_nodos, nodes::drenar_nodo, nodes::activar_nodo
    ),
    components(schemas(
        CampaignView, CampaignRequest, PatchRequest, SettingsRequest, DialerRequest, DialerReply,
        EstadoReply, Estadisticas, CargaReply, ErrorLinea, NumerosJson, HealthReply, ErrorBody,
        DncRequest, DncReply, crate::domain::MenuJson, crate::domain::MenuOptionJson,
        crate::domain::AmdParamsJson, charts::SerieReply, charts::PuntoSerie, nodes::NodoView
    )),
    modifiers(&BearerAuth, &SpanishProperties),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// All routes, with authentication, error mapping and one log line per request. Long on purpose:
/// the API's whole surface, one filter per endpoint, in one place.
pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let metrics = state.metrics.clone();
    let s = warp::any().map(move || state.clone());
    let token = s.clone().map(|st: AppState| st.token.clone());

    let health = warp::path!("health")
        .and(warp::get())
        .and(s.clone())
        .then(health);
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&<ApiDoc as utoipa::OpenApi>::openapi()).into_response());
    let public = openapi
        .or(docs())
        .unify()
        .or(panel::routes())
        .unify()
        .boxed();

    let listar = warp::path!("campanas")
        .and(warp::get())
        .and(s.clone())
        .then(listar_campanas);
    let crear = warp::path!("campanas")
        .and(warp::post())
        .and(s.clone())
        .and(warp::body::stream())
        .then(|st, body| async move { respond(crear_campana(st, small_body(body).await).await) });
    let obtener = warp::path!("campana" / String)
        .and(warp::get())
        .and(s.clone())
        .then(obtener_campana);
    let modificar = warp::path!("campana" / String)
        .and(warp::patch())
        .and(s.clone())
        .and(warp::body::stream())
        .then(|n, st, body| async move {
            respond(modificar_campana(n, st, small_body(body).await).await)
        });
    let cargar = warp::path!("campana" / String / "numeros")
        .and(warp::post())
        .and(s.clone())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .then(|n, st, ct, body| async move { respond(cargar_numeros(n, st, ct, body).await) });
    let cmd = |name: &'static str, op: Op| {
        warp::path("discador")
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::post())
            .and(s.clone())
            .and(warp::body::stream())
            .then(move |st, body| async move { respond(comando(op, st, small_body(body).await).await) })
    };
    let dnc = warp::path!("dnc")
        .and(warp::post())
        .and(s.clone())
        .and(warp::body::stream())
        .then(|st, body| async move { respond(agregar_dnc(st, small_body(body).await).await) });
    let eventos = warp::path!("discador" / "eventos")
        .and(warp::get())
        .and(s.clone())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .map(eventos);
    let estado_r = warp::path!("discador" / "estado" / String)
        .and(warp::get())
        .and(s.clone())
        .then(estado);
    let metricas_r = warp::path!("metrics")
        .and(warp::get())
        .and(s.clone())
        .map(metricas);

    let protected = listar
        .or(crear)
        .unify()
        .or(obtener)
        .unify()
        .or(modificar)
        .unify()
        .or(cargar)
        .unify()
        .or(cmd("iniciar", Op::Iniciar))
        .unify()
        .or(cmd("pausar", Op::Pausar))
        .unify()
        .or(cmd("reanudar", Op::Reanudar))
        .unify()
        .or(cmd("detener", Op::Detener))
        .unify()
        .or(estado_r)
        .unify()
        .or(dnc)
        .unify()
        .or(eventos)
        .unify()
        .or(export::routes(s.clone()))
        .unify()
        .or(metricas_r)
        .unify()
        .or(nodes::routes(s.clone()))
        .unify()
        // Boxed: warp's filter types nest with every `or`, and unboxed the whole API's type made
        // the compiler take minutes over this one function.
        .boxed();
    let auth = warp::header::optional::<String>("authorization")
        .and(token)
        .and_then(|header: Option<String>, token: Option<Secret>| async move {
            if authorized(header.as_deref(), token.as_ref()) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::unauthorized()))
            }
        })
        .untuple_one();

    let limited = warp::addr::remote()
        .and(s.clone())
        .and_then(
            |client: Option<std::net::SocketAddr>, st: AppState| async move {
                st.limiter
                    .check(client.map(|a| a.ip()))
                    .map_err(warp::reject::custom)
            },
        )
        .untuple_one();

    health
        .or(limited.and(public.or(auth.and(protected)).unify()))
        .unify()
        .recover(error::recover)
        .unify()
        .with(warp::log::custom(move |info| {
            metrics.api_request(info.method().as_str(), info.path(), info.status().as_u16());
            tracing::info!(
                metodo = %info.method(),
                ruta = %info.path(),
                estado = info.status().as_u16(),
                latencia_ms = info.elapsed().as_secs_f64() * 1000.0,
                "petición"
            );
        }))
}

/// Bearer check in constant time (for equal lengths; the length itself is not secret enough to
/// matter). No token configured: everything is allowed.
fn authorized(header: Option<&str>, token: Option<&Secret>) -> bool {
    let Some(token) = token else { return true };
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn docs() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let config = Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
    warp::path("docs")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .map(move |full: warp::path::FullPath, tail: warp::path::Tail| {
            // `/docs` → `/docs/`, so the UI's relative asset paths resolve.
            if full.as_str() == "/docs" {
                return warp::redirect::see_other(Uri::from_static("/docs/")).into_response();
            }
            match utoipa_swagger_ui::serve(tail.as_str(), config.clone()) {
                Ok(Some(file)) => {
                    let mut r = Response::new(file.bytes.into_owned().into());
                    if let Ok(v) = file.content_type.parse() {
                        r.headers_mut().insert("content-type", v);
                    }
                    r
                }
                Ok(None) => ApiError::not_found("archivo desconocido").into_response(),
                Err(e) => ApiError::internal(format!("swagger: {e}")).into_response(),
            }
        })
}

fn respond<T: serde::Serialize>(r: Result<(StatusCode, T), ApiError>) -> Response {
    match r {
        Ok((status, body)) => {
            warp::reply::with_status(warp::reply::json(&body), status).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn small_body<S, B>(body: S) -> Result<bytes::Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send,
    B: bytes::Buf,
{
    numbers::read_limited(body, MAX_SMALL_BODY).await
}

fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<bytes::Bytes, ApiError>,
) -> Result<T, ApiError> {
    serde_json::from_slice(&body?).map_err(|e| ApiError::bad_json(format!("JSON inválido: {e}")))
}

/// A name taken from the path: percent-decoded, then validated (400, never 404, for a bad name).
fn path_name(raw: &str) -> Result<CampaignName, ApiError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("nombre: no es UTF-8 válido"))?;
    CampaignName::parse(&decoded).map_err(|e| ApiError::invalid(format!("nombre: {e}")))
}

async fn existing(st: &AppState, name: &CampaignName) -> Result<crate::store::Campaign, ApiError> {
    st.store
        .campaign(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no existe la campaña {name}")))
}

/// The live event stream (server-sent events), see [`events`].
#[utoipa::path(get, path = "/discador/eventos",
    summary = "Flujo de eventos en vivo (SSE)",
    description = "Eventos enviados por el servidor (text/event-stream), uno por hecho: cambios de \
        estado de las campañas (`campana`), y por llamada `originada`, `contestada`, `veredicto` \
        (AMD; de nuevo, MAQUINA con causa LATE_BEEP, si un pitido de contestador durante el mensaje \
        corrige un veredicto de persona), `terminada` (una vez por intento, con su resultado y disposición) y `devuelta` (el \
        originate no llegó a ser un intento); cada pocos segundos, `ritmo` de cada campaña activa. \
        Cada evento lleva `id:` creciente, `event:` con su tipo y `data:` en JSON. Los teléfonos van \
        enmascarados. Un cliente que deja de leer se desconecta al llenarse su búfer: nunca frena \
        al discador.",
    params(("campana" = Option<String>, Query, description = "Solo los eventos de esta campaña")),
    responses(
        (status = 200, description = "El flujo de eventos", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
fn eventos(st: AppState, query: std::collections::HashMap<String, String>) -> Response {
    match events::Filter::from_query(&query) {
        Ok(f) => events::stream(st.control.eventos(), f, st.closing.clone()),
        Err(e) => e.into_response(),
    }
}

/// Lists all campaigns.
#[utoipa::path(get, path = "/campanas/", summary = "Lista las campañas",
    description = "Lista todas las campañas.", responses(
    (status = 200, body = Vec<CampaignView>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn listar_campanas(st: AppState) -> Response {
    respond(
        async {
            let all = st.store.campaigns().await?;
            Ok((
                StatusCode::OK,
                all.iter().map(CampaignView::from).collect::<Vec<_>>(),
            ))
        }
        .await,
    )
}

/// One campaign's settings and state.
#[utoipa::path(get, path = "/campana/{nombre}", summary = "Muestra una campaña",
    description = "Los ajustes y el estado de una campaña.", params(("nombre" = String, Path, description = "Nombre de la campaña")), responses(
    (status = 200, body = CampaignView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn obtener_campana(nombre: String, st: AppState) -> Response {
    respond(
        async {
            let name = path_name(&nombre)?;
            Ok((
                StatusCode::OK,
                CampaignView::from(&existing(&st, &name).await?),
            ))
        }
        .await,
    )
}

/// Creates a campaign and its numbers table (or adopts `tabla`). Only `nombre` is required.
#[utoipa::path(post, path = "/campanas/", summary = "Crea una campaña",
    description = "Crea una campaña y su tabla de números (o adopta `tabla`). Solo `nombre` es obligatorio.",
    request_body = CampaignRequest, responses(
    (status = 201, body = CampaignView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 413, body = ErrorBody)))]
async fn crear_campana(
    st: AppState,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, CampaignView), ApiError> {
    let req: CampaignRequest = parse_json(body)?;
    let new = req.to_new()?;
    st.control.check_amd(new.amd)?;
    let c = st.store.create_campaign(&new).await?;
    Ok((StatusCode::CREATED, CampaignView::from(&c)))
}

/// Adds numbers to the do-not-call list. The dialer checks it just before every originate, so a
/// number added now is not dialed again by any campaign (result NO_LLAMAR).
#[utoipa::path(post, path = "/dnc/", summary = "Agrega números a la lista de no llamar",
    description = "Agrega números a la lista de no llamar. El discador la consulta justo antes de cada \
    originate, así que un número agregado ahora ya no lo marca ninguna campaña (resultado NO_LLAMAR).",
    request_body = DncRequest, responses(
    (status = 200, body = DncReply), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
    (status = 503, body = ErrorBody)))]
async fn agregar_dnc(
    st: AppState,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, DncReply), ApiError> {
    let req: DncRequest = parse_json(body)?;
    let mut reply = DncReply::default();
    let mut valid = Vec::with_capacity(req.telefonos.len());
    for (i, raw) in req.telefonos.iter().enumerate() {
        match crate::domain::PhoneNumber::parse(raw) {
            Ok(p) => valid.push(p),
            Err(e) => {
                reply.invalidos += 1;
                if reply.errores.len() < 100 {
                    reply.errores.push(ErrorLinea {
                        linea: i as u64 + 1,
                        valor: raw.chars().take(64).collect(),
                        motivo: e.to_string(),
                    });
                }
            }
        }
    }
    valid.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    valid.dedup_by(|a, b| a.as_str() == b.as_str());
    reply.agregados = st.store.add_dnc(&valid).await?;
    reply.ya_estaban = valid.len() as u64 - reply.agregados.min(valid.len() as u64);
    tracing::info!(
        agregados = reply.agregados,
        "lista de no llamar actualizada"
    );
    Ok((StatusCode::OK, reply))
}

/// Changes settings of a campaign; takes effect at once, also while it runs.
#[utoipa::path(patch, path = "/campana/{nombre}", summary = "Modifica una campaña",
    description = "Cambia ajustes de una campaña; rigen de inmediato, también mientras está en marcha.",
    params(("nombre" = String, Path, description = "Nombre de la campaña")), request_body = PatchRequest,
    responses((status = 200, body = CampaignView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "FreeSWITCH no tiene un archivo o destino del guion")))]
async fn modificar_campana(
    nombre: String,
    st: AppState,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, CampaignView), ApiError> {
    let name = path_name(&nombre)?;
    let req: PatchRequest = parse_json(body)?;
    let current = existing(&st, &name).await?;
    let patch = req
        .ajustes
        .to_patch(&current.ventana, &current.amd_integrado)?;
    if let Some(amd) = patch.amd {
        st.control.check_amd(amd)?;
    }
    let mut merged = current.clone();
    patch.apply_to(&mut merged);
    if merged.guion != current.guion {
        // A file or destination the switch lacks is refused now, not found by the next call.
        st.control.check_script(&merged).await?;
    }
    let c = st.store.update_campaign(&name, &patch).await?;
    st.control.updated(&c);
    tracing::info!(campana = %name, "campaña modificada");
    Ok((StatusCode::OK, CampaignView::from(&c)))
}

/// Loads numbers: `text/csv` (header row with `telefono`; an optional `zona_horaria` column with
/// the number's own IANA zone; other columns kept as `datos`), streamed in batches, or
/// `application/json` `{"numeros": [{"telefono": …, "zona_horaria": …}]}` (up to 32 MiB). A
/// number without a zone gets the one its digits say, when they say one (see the README's
/// calling rules), else the campaign's.
#[utoipa::path(post, path = "/campana/{nombre}/numeros", summary = "Carga números",
    description = "Carga números: `text/csv` (fila de encabezado con `telefono`; una columna opcional \
    `zona_horaria` con la zona IANA propia del número; las demás columnas se guardan como `datos`), \
    procesado por lotes a medida que llega, o `application/json` \
    `{\"numeros\": [{\"telefono\": …, \"zona_horaria\": …}]}` (hasta 32 MiB). Un número sin zona \
    recibe la que indican sus dígitos, cuando indican una (ver las reglas de llamada del README); si \
    no, la de la campaña.",
    params(("nombre" = String, Path, description = "Nombre de la campaña")),
    request_body(content = String, content_type = "text/csv", description = "telefono,nombre\n+5491112345678,Ana"),
    responses((status = 200, body = CargaReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn cargar_numeros<S, B>(
    nombre: String,
    st: AppState,
    content_type: Option<String>,
    body: S,
) -> Result<(StatusCode, CargaReply), ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf + Send,
{
    let name = path_name(&nombre)?;
    let campaign = existing(&st, &name).await?;
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    let reply = if ct.starts_with("text/csv") {
        numbers::load_csv(&st.store, &campaign, body).await
    } else if ct.starts_with("application/json") {
        let bytes = numbers::read_limited(body, numbers::MAX_JSON).await?;
        numbers::load_json(&st.store, &campaign, bytes).await
    } else {
        Err(ApiError::media_type(
            "use Content-Type: text/csv o application/json",
        ))
    };
    st.stats.invalidate(&campaign.tabla);
    Ok((StatusCode::OK, reply?))
}

#[derive(Clone, Copy)]
enum Op {
    Iniciar,
    Pausar,
    Reanudar,
    Detener,
}

async fn comando(
    op: Op,
    st: AppState,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, DialerReply), ApiError> {
    let req: DialerRequest = parse_json(body)?;
    let name = CampaignName::parse(&req.nombre_campana)
        .map_err(|e| ApiError::invalid(format!("nombre_campana: {e}")))?;
    let cps = req
        .cps
        .map(Cps::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("cps: {e}")))?;
    if cps.is_some() && !matches!(op, Op::Iniciar) {
        return Err(ApiError::invalid(
            "cps: solo se admite en /discador/iniciar/",
        ));
    }
    let (c, mensaje) = match op {
        Op::Iniciar => (st.control.start(&name, cps).await?, "campaña iniciada"),
        Op::Pausar => (st.control.pause(&name).await?, "campaña pausada"),
        Op::Reanudar => (st.control.resume(&name).await?, "campaña reanudada"),
        Op::Detener => (st.control.stop(&name).await?, "campaña detenida"),
    };
    Ok((
        StatusCode::OK,
        DialerReply {
            campana: c.nombre.to_string(),
            estado: c.estado.to_string(),
            mensaje: mensaje.into(),
        },
    ))
}

/// Starts dialing a campaign (needs pending numbers); `cps` overrides and saves the campaign's rate.
#[utoipa::path(post, path = "/discador/iniciar/", summary = "Inicia una campaña",
    description = "Empieza a marcar una campaña (necesita números pendientes); `cps` reemplaza y guarda \
    el ritmo de la campaña.",
    request_body = DialerRequest, responses(
    (status = 200, body = DialerReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody)))]
#[allow(dead_code)] // documentation anchor; the route is built by `comando`
fn iniciar() {}

/// Pauses an active campaign (calls in progress finish).
#[utoipa::path(post, path = "/discador/pausar/", summary = "Pausa una campaña",
    description = "Pausa una campaña activa (las llamadas en curso terminan).",
    request_body = DialerRequest, responses(
    (status = 200, body = DialerReply), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[allow(dead_code)]
fn pausar() {}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/discador/reanudar/", summary = "Reanuda una campaña",
    description = "Reanuda una campaña pausada.", request_body = DialerRequest, responses(
    (status = 200, body = DialerReply), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[allow(dead_code)]
fn reanudar() {}

/// Stops a campaign (active or paused).
#[utoipa::path(post, path = "/discador/detener/", summary = "Detiene una campaña",
    description = "Detiene una campaña (activa o pausada).", request_body = DialerRequest, responses(
    (status = 200, body = DialerReply), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[allow(dead_code)]
fn detener() {}

/// Counters of a campaign, at most about one second old (served from an in-memory cache).
#[utoipa::path(get, path = "/discador/estado/{nombre}", summary = "Estado de una campaña",
    description = "Contadores de una campaña, con un segundo de antigüedad como máximo (se sirven \
    desde una caché en memoria).",
    params(("nombre" = String, Path, description = "Nombre de la campaña")), responses(
    (status = 200, body = EstadoReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 503, body = ErrorBody)))]
async fn estado(nombre: String, st: AppState) -> Response {
    respond(
        async {
            let name = path_name(&nombre)?;
            let c = existing(&st, &name).await?;
            let counts = st.stats.get(&c).await?;
            let (proceso, live) = st.control.live(&name).await;
            let llamadas_por_nodo = match st.control.dialer() {
                Some(d) => d.live_per_node(&name).await,
                None => Default::default(),
            };
            Ok((
                StatusCode::OK,
                EstadoReply {
                    campana: c.nombre.to_string(),
                    estado: c.estado.to_string(),
                    motivo: c.motivo.clone(),
                    proceso,
                    estadisticas: Estadisticas::new(
                        &counts.numeros,
                        &counts.disposiciones,
                        &c,
                        live,
                        crate::dialer::rules::excluded_until(&c, st.control.now()).is_some(),
                    ),
                    llamadas_por_nodo,
                },
            ))
        }
        .await,
    )
}

/// The service's metrics in the Prometheus text format (0.0.4): calls by campaign and result, live
/// calls and channels, pacing, the FreeSWITCH link, the result writer, database errors and API
/// requests (the list is in the README). Needs the bearer token when `API_TOKEN` is set.
#[utoipa::path(get, path = "/metrics",
    summary = "Métricas en formato Prometheus",
    description = "Las métricas del servicio en el formato de texto de Prometheus (0.0.4): \
        llamadas por campaña y resultado, llamadas en curso y canales, ritmo configurado y real, \
        la conexión con FreeSWITCH, el escritor de resultados, errores de la base de datos y \
        peticiones a la API por ruta y estado HTTP. Con `API_TOKEN` requiere el token.",
    responses(
    (status = 200, description = "Formato de texto de Prometheus", content_type = "text/plain", body = String),
    (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
fn metricas(st: AppState) -> Response {
    if let Some(d) = st.control.dialer() {
        d.refresh_metrics();
    }
    let mut r = Response::new(st.metrics.encode().into());
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// Liveness and the state of the database. Always 200 (the process is up); `estado` says whether a
/// dependency is down.
#[utoipa::path(get, path = "/health", summary = "Estado del servicio",
    description = "Indica que el proceso está vivo y el estado de la base de datos. Responde siempre \
    200 (el proceso está en pie); `estado` dice si alguna dependencia está caída.",
    security(()), responses((status = 200, body = HealthReply)))]
async fn health(st: AppState) -> Response {
    let db_ok = st.store.ping().await.is_ok();
    let freeswitch = st.control.dialer().map(|d| d.esl_state());
    let modulos = st.control.dialer().map(|d| d.modules());
    let fs_ok = freeswitch.is_none_or(|s| s == "conectado");
    let body = HealthReply {
        estado: if db_ok && fs_ok { "ok" } else { "degradado" },
        base_de_datos: if db_ok { "ok" } else { "no_disponible" },
        motor_base_de_datos: st.store.backend(),
        freeswitch,
        modulos,
        nodos: st.control.dialer().map(nodes::list),
        arranque: st.control.dialer().map(|d| {
            if d.recovered() {
                "listo"
            } else {
                "recuperando"
            }
        }),
    };
    warp::reply::json(&body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let t = Secret::new("s3cr3t");
        assert!(authorized(None, None));
        assert!(authorized(Some("Bearer s3cr3t"), Some(&t)));
        assert!(!authorized(Some("Bearer s3cr3"), Some(&t)));
        assert!(!authorized(Some("Bearer s3cr3x"), Some(&t)));
        assert!(!authorized(Some("s3cr3t"), Some(&t)));
        assert!(!authorized(None, Some(&t)));
    }

    #[test]
    fn path_names_are_decoded_then_validated() {
        assert!(path_name("PRUEBA").is_ok());
        assert!(path_name("x%60%3B%20DROP%20TABLE%20bases").is_err());
        assert!(path_name("%FF").is_err());
        assert!(path_name("bases").is_err());
    }

    /// Common English words that no Spanish description contains as a whole word.
    const ENGLISH: &[&str] = &[
        "the", "and", "of", "is", "are", "when", "with", "for", "to", "by", "from", "this", "that",
        "which", "or", "an", "be", "it", "its", "not", "only", "if", "on", "at", "in", "as",
        "into", "than", "until", "default", "none", "each", "every", "one", "after", "before",
        "whether",
    ];

    /// The whole words of `text` that are English. An identifier (`after_greeting_silence_ms`) is
    /// one word: field names stay as they are.
    fn english_words(text: &str) -> Vec<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map(str::to_lowercase)
            .filter(|w| ENGLISH.contains(&w.as_str()))
            .collect()
    }

    /// Every `description` and `summary` in the document, wherever it is: English ones (a doc
    /// comment that won over a missing Spanish `description`) are collected.
    fn check_texts(v: &serde_json::Value, at: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let here = format!("{at}/{k}");
                    if let ("description" | "summary", serde_json::Value::String(text)) =
                        (k.as_str(), child)
                    {
                        let words = english_words(text);
                        if !words.is_empty() {
                            bad.push(format!("{here}: {words:?} in {text:?}"));
                        }
                    }
                    check_texts(child, &here, bad);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    check_texts(child, &format!("{at}/{i}"), bad);
                }
            }
            _ => {}
        }
    }

    /// Every schema object (with `properties`) in the document must describe itself and each of
    /// its properties.
    fn check_described(v: &serde_json::Value, at: &str, missing: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if !non_empty(prop.get("description")) {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (k, child) in map {
                    check_described(child, &format!("{at}/{k}"), missing);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    check_described(child, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }

    fn non_empty(v: Option<&serde_json::Value>) -> bool {
        v.and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    }

    #[test]
    fn the_english_check_catches_english_and_passes_spanish() {
        assert_eq!(
            english_words("Numbers table of the campaign."),
            ["of", "the"]
        );
        assert_eq!(english_words("When nobody spoke: NOTSURE"), ["when"]);
        assert!(english_words("Tabla de números de la campaña (tras_beep, `ok`).").is_empty());
        assert!(english_words("Theory, Andes, isla, forma, within").is_empty());
        assert!(english_words("`after_greeting_silence_ms` ⇒ HUMAN").is_empty());
    }

    /// The OpenAPI document is in Spanish: every operation has a summary and a description, every
    /// schema and property a description, and no text of it reads as English.
    #[test]
    fn openapi_texts_are_spanish() {
        let doc = serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        if std::env::var_os("DUMP_OPENAPI").is_some() {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        }
        assert!(non_empty(doc.pointer("/info/description")));

        let paths = doc["paths"].as_object().expect("paths");
        // Every path the router serves is documented (the walk below then checks each one).
        assert!(paths.len() >= 11, "{:?}", paths.keys());
        let mut operations = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                if !matches!(method.as_str(), "get" | "post" | "patch" | "put" | "delete") {
                    continue;
                }
                operations += 1;
                assert!(non_empty(op.get("summary")), "{method} {path}: no summary");
                assert!(
                    non_empty(op.get("description")),
                    "{method} {path}: no description"
                );
                for (status, response) in op["responses"].as_object().expect("responses") {
                    assert!(
                        non_empty(response.get("description")),
                        "{method} {path}: response {status} undescribed"
                    );
                }
                for param in op["parameters"].as_array().into_iter().flatten() {
                    assert!(
                        non_empty(param.get("description")),
                        "{method} {path}: parameter {} undescribed",
                        param["name"]
                    );
                }
            }
        }
        assert!(operations > paths.len(), "{operations} operations");

        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        assert!(schemas.len() >= 18, "{:?}", schemas.keys());
        for (name, schema) in schemas {
            assert!(
                non_empty(schema.get("description")),
                "schema {name} has no description"
            );
        }
        let mut missing = Vec::new();
        check_described(&doc, "", &mut missing);
        assert!(missing.is_empty(), "undescribed properties: {missing:#?}");

        let mut bad = Vec::new();
        check_texts(&doc, "", &mut bad);
        assert!(bad.is_empty(), "English texts: {bad:#?}");
    }
}
