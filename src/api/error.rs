//! The API's one error shape, `{"error": CODE, "mensaje": TEXT}`, for handler errors and for warp's
//! own rejections (unknown path, wrong method, body too large…), so clients parse one format.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::store::StoreError;

/// Body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "Cuerpo de toda respuesta de error.")]
pub struct ErrorBody {
    /// Stable machine-readable code: `invalido`, `json_invalido`, `no_autorizado`, `no_encontrado`,
    /// `conflicto`, `demasiado_grande`, `tipo_contenido`, `metodo_no_permitido`,
    /// `demasiadas_peticiones`, `no_disponible`, `interno`.
    #[schema(example = "no_encontrado")]
    pub error: &'static str,
    /// Human-readable reason (Spanish), naming the field when one is at fault.
    #[schema(example = "no existe la campaña PRUEBA")]
    pub mensaje: String,
}

/// A failed request: status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub mensaje: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, mensaje: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            mensaje: mensaje.into(),
        }
    }
    pub fn invalid(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalido", mensaje)
    }
    pub fn bad_json(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "json_invalido", mensaje)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "no_autorizado",
            "falta o no es válido el token (Authorization: Bearer …)",
        )
    }
    pub fn not_found(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "no_encontrado", mensaje)
    }
    pub fn conflict(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflicto", mensaje)
    }
    pub fn too_large(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "demasiado_grande", mensaje)
    }
    pub fn media_type(mensaje: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "tipo_contenido",
            mensaje,
        )
    }
    pub fn unavailable(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "no_disponible", mensaje)
    }
    pub fn too_many_requests(mensaje: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "demasiadas_peticiones",
            mensaje,
        )
    }
    pub fn internal(mensaje: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "interno", mensaje)
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            mensaje: self.mensaje,
        };
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => {
                // The cause goes to the log, not to the client.
                tracing::warn!(error = %why, "base de datos no disponible");
                ApiError::unavailable(
                    "la base de datos no está disponible; reintente en unos segundos",
                )
            }
            StoreError::Busy(why) => {
                tracing::warn!(error = %why, "base de datos ocupada");
                ApiError::unavailable("la base de datos está ocupada; reintente en unos segundos")
            }
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) | StoreError::TableExists(m) => ApiError::conflict(m),
            StoreError::Invalid(m) => ApiError::invalid(m),
            StoreError::Database(m) => {
                tracing::error!(error = %m, "error de base de datos");
                ApiError::internal("error interno de base de datos")
            }
        }
    }
}

/// Turns any rejection into the JSON error shape.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    use warp::reject::*;
    if let Some(l) = r.find::<super::limit::Limited>() {
        let mut response = ApiError::too_many_requests(format!(
            "demasiadas peticiones de este cliente; reintente en {} s",
            l.retry_after_s
        ))
        .into_response();
        response.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from(l.retry_after_s),
        );
        return Ok(response);
    }
    let e = if let Some(e) = r.find::<ApiError>() {
        e.clone()
    } else if r.is_not_found() {
        ApiError::not_found("ruta desconocida")
    } else if r.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "metodo_no_permitido",
            "método no permitido en esta ruta",
        )
    } else if r.find::<PayloadTooLarge>().is_some() {
        ApiError::too_large("el cuerpo es demasiado grande")
    } else if r.find::<UnsupportedMediaType>().is_some() {
        ApiError::media_type("tipo de contenido no admitido")
    } else if r.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "invalido",
            "falta Content-Length",
        )
    } else if r.find::<InvalidHeader>().is_some() || r.find::<MissingHeader>().is_some() {
        ApiError::invalid("cabecera inválida o ausente")
    } else if r.find::<InvalidQuery>().is_some() {
        ApiError::invalid("parámetros de consulta inválidos")
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_json(format!("JSON inválido: {e}"))
    } else {
        tracing::error!(rechazo = ?r, "rechazo no previsto");
        ApiError::internal("error interno")
    };
    Ok(e.into_response())
}
