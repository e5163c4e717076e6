//! The supervisor page (`GET /panel`): one HTML page, its script and its style sheet, compiled into
//! the binary (no build step, no CDN: it works on an isolated network).
//!
//! The page holds no secret and no data of its own: it calls the same API as any client (with the
//! token the supervisor types in, when `API_TOKEN` is set), follows `GET /discador/eventos` for the
//! live counters and shows the API's own error messages. So it is served without authentication,
//! with a content security policy that lets it load nothing but itself.

use warp::http::{HeaderValue, StatusCode, Uri};
use warp::reply::Response;
use warp::{Filter, Reply};

const INDEX: &str = include_str!("panel/index.html");
const SCRIPT: &str = include_str!("panel/panel.js");
const STYLE: &str = include_str!("panel/panel.css");

/// Only this origin's files, scripts and API; charts arrive as blob URLs of fetched SVGs.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/` (to the page), `/panel`, `/panel/panel.js`, `/panel/panel.css`.
pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let root = warp::path::end()
        .and(warp::get())
        .map(|| warp::redirect::see_other(Uri::from_static("/panel")).into_response());
    let index = warp::path!("panel")
        .and(warp::get())
        .map(|| file(INDEX, "text/html; charset=utf-8"));
    let script = warp::path!("panel" / "panel.js")
        .and(warp::get())
        .map(|| file(SCRIPT, "text/javascript; charset=utf-8"));
    let style = warp::path!("panel" / "panel.css")
        .and(warp::get())
        .map(|| file(STYLE, "text/css; charset=utf-8"));
    root.or(index).unify().or(script).unify().or(style).unify()
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut r = warp::reply::with_status(body, StatusCode::OK).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // A new binary may bring a new page: always revalidate.
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}
