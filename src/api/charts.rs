//! A campaign's charts, drawn by the server as SVG pictures (`plotters`, SVG backend only), and
//! the same data as JSON for a page that draws its own:
//!
//! - `GET /campana/{nombre}/grafico/llamadas.svg`: attempts and answered calls per minute (or per
//!   wider bucket, see [`crate::store::MAX_POINTS`]) over the campaign's life;
//! - `GET /campana/{nombre}/grafico/resultados.svg`: CDRs per result, one bar each;
//! - `GET /campana/{nombre}/serie`: both, as JSON.
//!
//! Text needs no font: without plotters' `ttf` / `ab_glyph` features it sizes labels by an
//! estimate and writes `<text>` elements that the viewer renders with its own fonts, so nothing is
//! loaded at build or run time. plotters escapes `<`, `>`, `&`, quotes in text and attributes; the
//! campaign name, the one outside value in the pictures, is `[A-Za-z0-9_]` anyway.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::{existing, path_name, respond, ApiError, AppState};
use crate::domain::CampaignName;
use crate::store::{CallSeries, SeriesPoint};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 480;
const ATTEMPTS_COLOR: RGBColor = RGBColor(31, 119, 180);
const ANSWERED_COLOR: RGBColor = RGBColor(44, 160, 44);
/// What a picture of a campaign without CDRs says.
pub const EMPTY: &str = "Sin llamadas todavía";

/// Why a chart could not be drawn (plotters' error, as text: its type is generic over the
/// backend).
#[derive(Debug, thiserror::Error)]
#[error("no se pudo dibujar el gráfico: {0}")]
pub struct ChartError(String);

fn chart_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

/// "por minuto" or "por 15 minutos": the unit of the attempts chart.
pub fn per_bucket(minutes: u32) -> String {
    match minutes {
        1 => "por minuto".to_owned(),
        m if m % 1440 == 0 && m > 1440 => format!("por {} días", m / 1440),
        1440 => "por día".to_owned(),
        m if m % 60 == 0 => {
            let h = m / 60;
            if h == 1 {
                "por hora".to_owned()
            } else {
                format!("por {h} horas")
            }
        }
        m => format!("por {m} minutos"),
    }
}

/// A picture with only the title and [`EMPTY`].
fn empty_picture(title: &str) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let style = TextStyle::from(("sans-serif", 24).into_font()).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        root.draw_text(title, &style, (WIDTH as i32 / 2, 40))
            .map_err(chart_err)?;
        root.draw_text(EMPTY, &style, (WIDTH as i32 / 2, HEIGHT as i32 / 2))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// The time of a point on the axis: `14:05`, or `28/11 14:05` when the campaign spans days.
fn axis_time(p: &SeriesPoint, days: bool) -> String {
    if days {
        p.minuto.format("%d/%m %H:%M").to_string()
    } else {
        p.minuto.format("%H:%M").to_string()
    }
}

/// Attempts and answered calls over time: two lines, a time axis (UTC), a legend.
pub fn calls_svg(campana: &str, s: &CallSeries) -> Result<String, ChartError> {
    let unit = per_bucket(s.minutos_por_punto);
    let title = format!("Llamadas de {campana} {unit}");
    let pts = &s.puntos;
    if pts.is_empty() {
        return empty_picture(&title);
    }
    let days = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => a.minuto.date_naive() != b.minuto.date_naive(),
        _ => false,
    };
    let top = pts.iter().map(|p| p.intentos).max().unwrap_or(0).max(1);
    let y_max = top + top.div_ceil(10);
    // One point alone still gets an axis of width one.
    let x_max = (pts.len() - 1).max(1);
    // Few points (a short campaign: one minute alone draws no line) are marked as dots too.
    let dots = if pts.len() <= 60 { 4 } else { 0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0..x_max, 0..y_max)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc("Hora (UTC)")
            .y_desc(format!("Llamadas {unit}"))
            .x_labels(8)
            .x_label_formatter(&|i| pts.get(*i).map(|p| axis_time(p, days)).unwrap_or_default())
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(
                LineSeries::new(
                    pts.iter().enumerate().map(|(i, p)| (i, p.intentos)),
                    ATTEMPTS_COLOR.stroke_width(2),
                )
                .point_size(dots),
            )
            .map_err(chart_err)?
            .label("Intentos")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ATTEMPTS_COLOR.stroke_width(2))
            });
        chart
            .draw_series(
                LineSeries::new(
                    pts.iter().enumerate().map(|(i, p)| (i, p.contestadas)),
                    ANSWERED_COLOR.stroke_width(2),
                )
                .point_size(dots),
            )
            .map_err(chart_err)?
            .label("Contestadas")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ANSWERED_COLOR.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// CDRs per result: one bar per `resultado` (as the API writes them), its count above it.
pub fn results_svg(campana: &str, res: &[(String, u64)]) -> Result<String, ChartError> {
    let title = format!("Resultados de {campana}");
    if res.is_empty() {
        return empty_picture(&title);
    }
    let top = res.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let y_max = top + top.div_ceil(8);
    let last = res.len() as u32 - 1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((0u32..last).into_segmented(), 0..y_max)
            .map_err(chart_err)?;
        let name = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => res
                .get(*i as usize)
                .map(|(r, _)| r.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("Resultado")
            .y_desc("Llamadas")
            .x_labels(res.len())
            .x_label_formatter(&name)
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(ATTEMPTS_COLOR.filled())
                    .margin(12)
                    .data(res.iter().enumerate().map(|(i, (_, n))| (i as u32, *n))),
            )
            .map_err(chart_err)?;
        chart
            .draw_series(res.iter().enumerate().map(|(i, (_, n))| {
                Text::new(
                    n.to_string(),
                    (SegmentValue::CenterOf(i as u32), *n),
                    ("sans-serif", 14).into_font(),
                )
            }))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// One point of `GET /campana/{nombre}/serie`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Un punto de la serie: un minuto (o un intervalo) de la campaña.")]
pub struct PuntoSerie {
    /// Start of the bucket (UTC).
    #[schema(example = "2026-11-28T14:05:00Z")]
    pub minuto: String,
    pub intentos: u64,
    /// Attempts answered (by a person or a machine).
    pub contestadas: u64,
}

/// Body of `GET /campana/{nombre}/serie`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Respuesta de `GET /campana/{nombre}/serie`.")]
pub struct SerieReply {
    pub campana: String,
    /// Width of each point in minutes: 1 unless the campaign spans more than 1440 minutes.
    pub minutos_por_punto: u32,
    /// Every bucket from the first CDR's to the last one's, empty ones as zeros.
    pub minutos: Vec<PuntoSerie>,
    /// CDRs (attempts) per result.
    #[schema(example = json!({"HUMANO": 20, "OCUPADO": 5}))]
    pub resultados: BTreeMap<String, u64>,
}

impl SerieReply {
    pub fn new(campana: &str, s: &CallSeries, resultados: &[(String, u64)]) -> Self {
        SerieReply {
            campana: campana.to_owned(),
            minutos_por_punto: s.minutos_por_punto,
            minutos: s
                .puntos
                .iter()
                .map(|p| PuntoSerie {
                    minuto: p.minuto.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    intentos: p.intentos,
                    contestadas: p.contestadas,
                })
                .collect(),
            resultados: resultados.iter().cloned().collect(),
        }
    }
}

/// Which picture.
#[derive(Debug, Clone, Copy)]
pub enum Grafico {
    Llamadas,
    Resultados,
}

/// The campaign named in the path, validated and existing.
async fn campaign_of(nombre: &str, st: &AppState) -> Result<CampaignName, ApiError> {
    let name = path_name(nombre)?;
    existing(st, &name).await?;
    Ok(name)
}

/// Each picture reads only its own data: the results chart does not scan the CDRs by minute.
async fn picture(g: Grafico, nombre: String, st: AppState) -> Result<Response, ApiError> {
    let name = campaign_of(&nombre, &st).await?;
    let campana = name.to_string();
    let svg = match g {
        Grafico::Llamadas => calls_svg(&campana, &st.store.call_series(&name).await?),
        Grafico::Resultados => results_svg(&campana, &st.store.result_counts(&name).await?),
    }
    .map_err(|e| {
        tracing::error!(campana, error = %e, "gráfico");
        ApiError::internal("no se pudo dibujar el gráfico")
    })?;
    let mut r = Response::new(svg.into());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    // The picture changes while the campaign runs: a page that reloads it must get a new one.
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Attempts and answered calls per minute over the campaign's life, as an SVG picture (two lines,
/// time axis in UTC). A campaign longer than 1440 minutes gets wider buckets (2, 5, 10, 15, 30,
/// 60… minutes, then whole days), named in the title and the axis.
#[utoipa::path(get, path = "/campana/{nombre}/grafico/llamadas.svg",
    summary = "Gráfico de intentos y contestadas por minuto",
    description = "Imagen SVG con dos series (Intentos, Contestadas) por minuto a lo largo de la campaña, en UTC. Una campaña de más de 1440 minutos se agrupa en intervalos más anchos (2, 5, 10, 15, 30, 60… minutos o días), que el título indica.",
    params(("nombre" = String, Path, description = "Nombre de la campaña")),
    responses(
        (status = 200, description = "Gráfico SVG de intentos y contestadas por minuto; sin llamadas dice «Sin llamadas todavía»", content_type = "image/svg+xml", body = String),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn grafico_llamadas(nombre: String, st: AppState) -> Response {
    picture(Grafico::Llamadas, nombre, st)
        .await
        .unwrap_or_else(Reply::into_response)
}

/// The campaign's CDRs per result, as an SVG bar chart.
#[utoipa::path(get, path = "/campana/{nombre}/grafico/resultados.svg",
    summary = "Gráfico de llamadas por resultado",
    description = "Imagen SVG de barras: cantidad de llamadas (intentos) por `resultado`.",
    params(("nombre" = String, Path, description = "Nombre de la campaña")),
    responses(
        (status = 200, description = "Gráfico SVG de barras: llamadas por resultado", content_type = "image/svg+xml", body = String),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn grafico_resultados(nombre: String, st: AppState) -> Response {
    picture(Grafico::Resultados, nombre, st)
        .await
        .unwrap_or_else(Reply::into_response)
}

/// The data of both charts as JSON, for a page that draws them itself.
#[utoipa::path(get, path = "/campana/{nombre}/serie",
    summary = "Datos de los gráficos en JSON",
    description = "Intentos y contestadas por minuto (o por `minutos_por_punto`) y llamadas por resultado, para una página que dibuja sus propios gráficos.",
    params(("nombre" = String, Path, description = "Nombre de la campaña")),
    responses(
        (status = 200, description = "Intentos y contestadas por minuto (o por `minutos_por_punto`) y llamadas por resultado", body = SerieReply),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn serie(nombre: String, st: AppState) -> Response {
    respond(
        async {
            let name = campaign_of(&nombre, &st).await?;
            let s = st.store.call_series(&name).await?;
            let resultados = st.store.result_counts(&name).await?;
            Ok((
                StatusCode::OK,
                SerieReply::new(name.as_str(), &s, &resultados),
            ))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn series(points: &[(u64, u64)]) -> CallSeries {
        let t0: DateTime<Utc> = "2026-11-28T14:00:00Z".parse().unwrap();
        CallSeries {
            minutos_por_punto: 1,
            puntos: points
                .iter()
                .enumerate()
                .map(|(i, (a, c))| SeriesPoint {
                    minuto: t0 + chrono::Duration::minutes(i as i64),
                    intentos: *a,
                    contestadas: *c,
                })
                .collect(),
        }
    }

    fn results(counts: &[(&str, u64)]) -> Vec<(String, u64)> {
        counts.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
    }

    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .collect()
    }

    #[test]
    fn the_calls_chart_has_two_series_a_time_axis_and_spanish_labels() {
        let svg = calls_svg("PRUEBA", &series(&[(10, 4), (0, 0), (7, 7)])).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let t = texts(&doc);
        for label in [
            "Intentos",
            "Contestadas",
            "Llamadas de PRUEBA por minuto",
            "Hora (UTC)",
        ] {
            assert!(t.iter().any(|x| x == label), "{label} missing in {t:?}");
        }
        assert!(t.iter().any(|x| x == "14:00"), "time axis: {t:?}");
        // Each series is one polyline through its three points, in its own colour.
        let lines: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("points")
                    .is_some_and(|p| p.split_whitespace().count() == 3)
            })
            .filter_map(|n| n.attribute("stroke"))
            .collect();
        assert_eq!(lines, ["#1F77B4", "#2CA02C"], "{svg}");
    }

    #[test]
    fn the_results_chart_has_a_bar_and_count_per_result() {
        let s = results(&[("HUMANO", 12), ("OCUPADO", 3), ("MAQUINA", 0)]);
        let svg = results_svg("PRUEBA", &s).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let t = texts(&doc);
        for label in [
            "HUMANO",
            "OCUPADO",
            "MAQUINA",
            "12",
            "3",
            "Resultados de PRUEBA",
        ] {
            assert!(t.iter().any(|x| x == label), "{label} missing in {t:?}");
        }
    }

    #[test]
    fn an_empty_campaign_says_so_in_valid_svg() {
        for svg in [
            calls_svg("PRUEBA", &series(&[])).unwrap(),
            results_svg("PRUEBA", &[]).unwrap(),
        ] {
            let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
            assert!(texts(&doc).iter().any(|x| x == EMPTY), "{svg}");
        }
    }

    #[test]
    fn text_is_escaped() {
        // Names are validated `[A-Za-z0-9_]`; this checks plotters' escaping all the same.
        let svg = results_svg("A<&>\"B", &results(&[("<x&y>", 1)])).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let t = texts(&doc);
        assert!(t.iter().any(|x| x == "Resultados de A<&>\"B"), "{t:?}");
        assert!(t.iter().any(|x| x == "<x&y>"), "{t:?}");
    }

    #[test]
    fn bucket_units_in_spanish() {
        assert_eq!(per_bucket(1), "por minuto");
        assert_eq!(per_bucket(15), "por 15 minutos");
        assert_eq!(per_bucket(60), "por hora");
        assert_eq!(per_bucket(180), "por 3 horas");
        assert_eq!(per_bucket(1440), "por día");
        assert_eq!(per_bucket(2880), "por 2 días");
    }
}
