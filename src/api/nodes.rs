//! The FreeSWITCH nodes of the pool: `GET /discador/nodos`, and draining or activating one
//! (`POST /discador/nodos/{nombre}/drenar`, `/activar`). A drained node gets no new calls; its
//! live calls finish. The flag is stored in the database, so every process sharing it obeys.

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::error::ApiError;
use super::AppState;
use crate::dialer::pool::{valid_node_name, PoolNode};
use crate::dialer::Dialer;

/// One node as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Un nodo FreeSWITCH del discador.")]
pub struct NodoView {
    /// Its name (`FREESWITCH_NODOS`), as CDRs carry it.
    pub nombre: String,
    /// `host:port` of its event socket.
    pub direccion: String,
    /// `conectado`, `conectando`, `desconectado`, `clave_incorrecta` or `perdido`.
    pub estado: &'static str,
    pub drenado: bool,
    pub llamadas_activas: usize,
    /// Its channel capacity.
    pub canales: u32,
    /// Its sessions-per-second budget for our originates (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cps: Option<f64>,
    #[schema(value_type = Object, example = json!({"mod_amd": true, "mod_avmd": true}))]
    pub modulos: crate::dialer::node::Modules,
    /// The gateways `sofia status` listed at the last connection (`null`: not known).
    pub gateways: Option<Vec<String>>,
}

impl NodoView {
    pub fn of(n: &PoolNode) -> NodoView {
        NodoView {
            nombre: n.nombre.clone(),
            direccion: n.direccion.clone(),
            estado: n.estado(),
            drenado: n.drained(),
            llamadas_activas: n.live_calls(),
            canales: n.capacity(),
            cps: n.cps(),
            modulos: n.modules(),
            gateways: n.gateways(),
        }
    }
}

/// Every node of this process's pool.
pub fn list(d: &Dialer) -> Vec<NodoView> {
    d.pool().nodes().iter().map(|n| NodoView::of(n)).collect()
}

fn dialer(st: &AppState) -> Result<&Dialer, ApiError> {
    st.control
        .dialer()
        .ok_or_else(|| ApiError::unavailable("este proceso no marca: no tiene nodos FreeSWITCH"))
}

pub async fn nodos(st: AppState) -> Result<(StatusCode, Vec<NodoView>), ApiError> {
    Ok((StatusCode::OK, list(dialer(&st)?)))
}

/// Drains (`drenado`) or activates node `nombre`.
pub async fn set_drained(
    nombre: String,
    drenado: bool,
    st: AppState,
) -> Result<(StatusCode, NodoView), ApiError> {
    let d = dialer(&st)?;
    let nombre = percent_encoding::percent_decode_str(&nombre)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("nombre: no es UTF-8 válido"))?;
    if !valid_node_name(&nombre) {
        return Err(ApiError::not_found("no existe ese nodo"));
    }
    if !d.set_node_drained(&nombre, drenado).await? {
        return Err(ApiError::not_found(format!("no existe el nodo {nombre}")));
    }
    let node = d
        .pool()
        .get(&nombre)
        .ok_or_else(|| ApiError::not_found(format!("no existe el nodo {nombre}")))?;
    tracing::info!(nodo = %nombre, drenado, "nodo cambiado por la API");
    Ok((StatusCode::OK, NodoView::of(node)))
}

/// `GET /discador/nodos`, `POST /discador/nodos/{nombre}/drenar` and `/activar`, boxed (see
/// `api::routes` on the filter types' nesting).
pub(super) fn routes<S>(s: S) -> warp::filters::BoxedFilter<(warp::reply::Response,)>
where
    S: warp::Filter<Extract = (AppState,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    use warp::Filter;
    let listar = warp::path!("discador" / "nodos")
        .and(warp::get())
        .and(s.clone())
        .then(|st| async move { super::respond(nodos(st).await) });
    let drenar = warp::path!("discador" / "nodos" / String / "drenar")
        .and(warp::post())
        .and(s.clone())
        .then(|n, st| async move { super::respond(set_drained(n, true, st).await) });
    let activar = warp::path!("discador" / "nodos" / String / "activar")
        .and(warp::post())
        .and(s)
        .then(|n, st| async move { super::respond(set_drained(n, false, st).await) });
    listar.or(drenar).unify().or(activar).unify().boxed()
}

/// Lists the FreeSWITCH nodes.
#[utoipa::path(get, path = "/discador/nodos", summary = "Lista los nodos FreeSWITCH",
    description = "Cada nodo FreeSWITCH del discador: su estado, si está drenado, sus llamadas en \
    curso, su capacidad, sus módulos y sus gateways.",
    responses((status = 200, body = Vec<NodoView>), (status = 503, body = super::ErrorBody)))]
#[allow(dead_code)]
pub fn listar_nodos() {}

/// Drains a node: no new calls; its live calls finish.
#[utoipa::path(post, path = "/discador/nodos/{nombre}/drenar", summary = "Drena un nodo",
    description = "El nodo no recibe llamadas nuevas; las que tiene en curso terminan. Vale para \
    todos los procesos que comparten la base de datos.",
    params(("nombre" = String, Path, description = "Nombre del nodo")),
    responses((status = 200, body = NodoView), (status = 404, body = super::ErrorBody),
    (status = 503, body = super::ErrorBody)))]
#[allow(dead_code)]
pub fn drenar_nodo() {}

/// Activates a drained node again.
#[utoipa::path(post, path = "/discador/nodos/{nombre}/activar", summary = "Activa un nodo",
    description = "El nodo vuelve a recibir llamadas nuevas. Vale para todos los procesos que \
    comparten la base de datos.",
    params(("nombre" = String, Path, description = "Nombre del nodo")),
    responses((status = 200, body = NodoView), (status = 404, body = super::ErrorBody),
    (status = 503, body = super::ErrorBody)))]
#[allow(dead_code)]
pub fn activar_nodo() {}
