//! CDR export: `GET /campana/{nombre}/llamadas?desde=…&hasta=…&formato=csv|json`.
//!
//! The body is streamed: a producer task reads the campaign's CDRs page by page (keyset pagination
//! on `(inicio, id)`, see [`crate::store::Store::cdr_page`]), encodes each page and hands it to the
//! response through a channel of [`CHANNEL_PAGES`] pages. The channel is the back-pressure: a slow
//! client stops the reads, so a campaign of millions of CDRs is exported in the memory of a few
//! pages. Everything that can be refused (name, parameters, unknown campaign, database down) is
//! checked, and the first page read, before the status line is sent, so those are ordinary JSON
//! errors. A database error after that cannot change the status any more: the producer logs it and
//! ends the body with an error, which makes hyper abort the chunked transfer (no terminating
//! chunk), so the client sees a broken download instead of a file that merely looks complete.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use warp::http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use warp::reply::Response;
use warp::Reply;

use super::{existing, path_name, ApiError, AppState};
use crate::domain::CampaignName;
use crate::store::{CdrRange, CdrRow, Store, StoreError};

/// CDRs per page read from the database: big enough that a page costs one round trip for a few
/// hundred kilobytes of output, small enough that a page in memory is nothing.
pub const PAGE_ROWS: u32 = 2000;

/// Encoded pages waiting for the client: the most the export holds beyond the page being read.
const CHANNEL_PAGES: usize = 2;

/// Longest parameter value echoed back in an error message.
const ECHO_MAX: usize = 40;

/// The export's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formato {
    Csv,
    Json,
}

/// The validated query of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    pub range: CdrRange,
    pub formato: Formato,
}

/// Why the body of an export ended early (after the status line went out).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("exportación interrumpida por un error de la base de datos: {0}")]
    Store(#[from] StoreError),
    #[error("exportación interrumpida: no se pudo codificar una llamada: {0}")]
    Encode(String),
}

/// A value as it may be echoed in a message: at most [`ECHO_MAX`] characters.
fn echo(v: &str) -> String {
    let mut s: String = v.chars().take(ECHO_MAX).collect();
    if v.chars().count() > ECHO_MAX {
        s.push('…');
    }
    s
}

/// Parses an instant of `desde` / `hasta`: RFC 3339 (`2026-11-28T14:00:00Z`,
/// `2026-11-28T11:00:00.250-03:00`) or a date `AAAA-MM-DD`, meaning 00:00:00 UTC of that day.
/// A `+` of an offset sent unencoded arrives as a space (form encoding) and is read as `+`.
/// Kept to the millisecond (truncated), the precision of `inicio`.
pub fn parse_instant(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "{field}: '{}' no es una fecha AAAA-MM-DD ni un instante RFC 3339 \
             (2026-11-28T14:00:00Z)",
            echo(raw)
        ))
    };
    if raw.len() > 64 {
        return Err(bad());
    }
    if raw.len() == 10 {
        let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())?;
        let t = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
        return Ok(t.and_utc());
    }
    // Only the space where an offset's sign goes (`… 03:00`): a space between date and time is
    // RFC 3339's own alternative to `T`.
    let fixed = match raw.rfind(' ') {
        Some(i) if raw.len() - i == 6 => format!("{}+{}", &raw[..i], &raw[i + 1..]),
        _ => raw.to_owned(),
    };
    let t = DateTime::parse_from_rfc3339(&fixed).map_err(|_| bad())?;
    use chrono::SubsecRound;
    Ok(t.with_timezone(&Utc).trunc_subsecs(3))
}

/// Reads the query string's pairs: `desde`, `hasta`, `formato`, each at most once; anything else
/// is refused, naming it (a misspelt `dsde` must not silently export everything).
pub fn parse_query(pairs: &[(String, String)]) -> Result<ExportQuery, ApiError> {
    let mut desde = None;
    let mut hasta = None;
    let mut formato = None;
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "desde" => &mut desde,
            "hasta" => &mut hasta,
            "formato" => &mut formato,
            other => {
                return Err(ApiError::invalid(format!(
                    "parámetro desconocido '{}': se admiten desde, hasta y formato",
                    echo(other)
                )))
            }
        };
        if slot.replace(v.as_str()).is_some() {
            return Err(ApiError::invalid(format!("{k}: se indicó más de una vez")));
        }
    }
    let formato = match formato {
        None | Some("csv") => Formato::Csv,
        Some("json") => Formato::Json,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "formato: '{}' no es csv ni json",
                echo(other)
            )))
        }
    };
    let range = CdrRange {
        desde: desde.map(|v| parse_instant("desde", v)).transpose()?,
        hasta: hasta.map(|v| parse_instant("hasta", v)).transpose()?,
    };
    if let (Some(d), Some(h)) = (range.desde, range.hasta) {
        if d >= h {
            return Err(ApiError::invalid(
                "desde: debe ser anterior a hasta (desde se incluye, hasta no)",
            ));
        }
    }
    Ok(ExportQuery { range, formato })
}

/// One CDR as exported: every column of `llamadas`, named as in the table; instants in RFC 3339
/// UTC with milliseconds; absent values empty (CSV) or `null` (JSON).
#[derive(Debug, Serialize)]
pub struct CdrOut<'a> {
    pub id: i64,
    pub campana: &'a str,
    pub numero_id: i64,
    pub telefono: &'a str,
    pub intento: i32,
    pub uuid: &'a str,
    pub nodo: &'a str,
    pub estado: &'a str,
    pub resultado: &'a str,
    pub causa: Option<&'a str>,
    pub amd_resultado: Option<&'a str>,
    pub amd_causa: Option<&'a str>,
    pub inicio: String,
    pub contestada: Option<String>,
    pub fin: String,
    pub billsec: i32,
    pub duracion: i32,
    pub disposicion: Option<&'a str>,
    pub mensaje_ms: Option<i32>,
    pub teclas: Option<&'a str>,
    pub accion: Option<&'a str>,
    pub transferida_a: Option<&'a str>,
    pub agente_contesto: Option<bool>,
    pub tras_beep_ms: Option<i32>,
    pub amd_inicial: Option<&'a str>,
}

/// `2026-11-28T14:00:00.123Z`.
pub fn instant(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> From<&'a CdrRow> for CdrOut<'a> {
    fn from(r: &'a CdrRow) -> Self {
        CdrOut {
            id: r.id,
            campana: &r.campana,
            numero_id: r.numero_id,
            telefono: &r.telefono,
            intento: r.intento,
            uuid: &r.uuid,
            nodo: &r.nodo,
            estado: &r.estado,
            resultado: &r.resultado,
            causa: r.causa.as_deref(),
            amd_resultado: r.amd_resultado.as_deref(),
            amd_causa: r.amd_causa.as_deref(),
            inicio: instant(r.inicio),
            contestada: r.contestada.map(instant),
            fin: instant(r.fin),
            billsec: r.billsec,
            duracion: r.duracion,
            disposicion: r.disposicion.as_deref(),
            mensaje_ms: r.mensaje_ms,
            teclas: r.teclas.as_deref(),
            accion: r.accion.as_deref(),
            transferida_a: r.transferida_a.as_deref(),
            agente_contesto: r.agente_contesto,
            tras_beep_ms: r.tras_beep_ms,
            amd_inicial: r.amd_inicial.as_deref(),
        }
    }
}

/// Turns pages of CDRs into the bytes of one document.
///
/// CSV: RFC 4180 through the `csv` crate, header row first, every field quoted when it holds a
/// comma, quote, CR or LF, so no value (`teclas`, `transferida_a`, a FreeSWITCH cause) can add a
/// column or a row. Values are written as stored, not altered against spreadsheet formula
/// injection (a leading `'` would corrupt data meant for other programs, and a `+` leads every
/// E.164 number): the values that reach a CDR are FreeSWITCH's, the campaign's settings and DTMF
/// digits, not free text of the called party. JSON: one array, written element by element.
pub struct Encoder {
    formato: Formato,
    started: bool,
}

impl Encoder {
    pub fn new(formato: Formato) -> Self {
        Encoder {
            formato,
            started: false,
        }
    }

    /// The bytes of `rows`, after what earlier pages wrote (the header or `[` come first).
    pub fn page(&mut self, rows: &[CdrRow]) -> Result<Bytes, ExportError> {
        let first = !std::mem::replace(&mut self.started, true);
        match self.formato {
            Formato::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(first)
                    .from_writer(Vec::with_capacity(rows.len() * 256 + 512));
                if first && rows.is_empty() {
                    // The header comes from serializing a record; with no record, write it by hand.
                    w.write_record(CSV_HEADER)
                        .map_err(|e| ExportError::Encode(e.to_string()))?;
                }
                for r in rows {
                    w.serialize(CdrOut::from(r))
                        .map_err(|e| ExportError::Encode(e.to_string()))?;
                }
                w.into_inner()
                    .map(Bytes::from)
                    .map_err(|e| ExportError::Encode(e.to_string()))
            }
            Formato::Json => {
                let mut buf = Vec::with_capacity(rows.len() * 512 + 2);
                for (i, r) in rows.iter().enumerate() {
                    buf.extend_from_slice(if first && i == 0 { b"[\n" } else { b",\n" });
                    serde_json::to_writer(&mut buf, &CdrOut::from(r))
                        .map_err(|e| ExportError::Encode(e.to_string()))?;
                }
                if first && rows.is_empty() {
                    buf.push(b'[');
                }
                Ok(Bytes::from(buf))
            }
        }
    }

    /// What closes the document.
    pub fn end(&self) -> Bytes {
        match self.formato {
            Formato::Csv => Bytes::new(),
            Formato::Json => Bytes::from_static(b"\n]\n"),
        }
    }
}

/// The CSV header when there is no row to take it from: [`CdrOut`]'s fields, in order.
const CSV_HEADER: [&str; 25] = [
    "id",
    "campana",
    "numero_id",
    "telefono",
    "intento",
    "uuid",
    "nodo",
    "estado",
    "resultado",
    "causa",
    "amd_resultado",
    "amd_causa",
    "inicio",
    "contestada",
    "fin",
    "billsec",
    "duracion",
    "disposicion",
    "mensaje_ms",
    "teclas",
    "accion",
    "transferida_a",
    "agente_contesto",
    "tras_beep_ms",
    "amd_inicial",
];

/// Where the pages come from: the store, or a test's fake (to check the error path).
pub trait PageSource: Send + 'static {
    fn next_page(
        &mut self,
        after: Option<&CdrRow>,
    ) -> impl std::future::Future<Output = Result<Vec<CdrRow>, StoreError>> + Send;
}

/// A campaign's CDRs in a range, from the store.
pub struct StorePages {
    pub store: Store,
    pub name: CampaignName,
    pub range: CdrRange,
    pub page_rows: u32,
}

impl PageSource for StorePages {
    async fn next_page(&mut self, after: Option<&CdrRow>) -> Result<Vec<CdrRow>, StoreError> {
        self.store
            .cdr_page(&self.name, &self.range, after, self.page_rows)
            .await
    }
}

/// Starts the producer of an export whose first page is already read; returns the channel the
/// response body reads. The producer stops when the document is complete, at the first error (sent
/// as the channel's last item, after which the body fails) or when the client goes away (the
/// receiver is dropped).
pub fn spawn_producer<P: PageSource>(
    mut source: P,
    first: Vec<CdrRow>,
    page_rows: u32,
    mut encoder: Encoder,
    campana: String,
) -> mpsc::Receiver<Result<Bytes, ExportError>> {
    let (tx, rx) = mpsc::channel(CHANNEL_PAGES);
    tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let mut page = first;
        let mut total: u64 = 0;
        loop {
            let last_page = (page.len() as u64) < u64::from(page_rows);
            total += page.len() as u64;
            let bytes = match encoder.page(&page) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(campana, error = %e, filas = total, "exportación interrumpida");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if tx.send(Ok(bytes)).await.is_err() {
                tracing::info!(
                    campana,
                    filas = total,
                    "exportación abandonada por el cliente"
                );
                return;
            }
            if last_page {
                break;
            }
            let after = page.pop();
            page = match source.next_page(after.as_ref()).await {
                Ok(p) => p,
                Err(e) => {
                    let e = ExportError::from(e);
                    tracing::error!(campana, error = %e, filas = total, "exportación interrumpida");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
        }
        let _ = tx.send(Ok(encoder.end())).await;
        tracing::info!(
            campana,
            filas = total,
            segundos = t0.elapsed().as_secs_f64(),
            "exportación de llamadas completa"
        );
    });
    rx
}

/// Exports the campaign's CDRs (every column of `llamadas`, one row per attempt) with `inicio` in
/// [`desde`, `hasta`), by `inicio` then `id`. `desde` / `hasta`: RFC 3339 instants
/// (`2026-11-28T14:00:00Z`; a `+` offset must be sent as `%2B`, or it arrives as a space, which is
/// also accepted) or dates `AAAA-MM-DD`, meaning 00:00:00 UTC of that day; both optional. The body
/// is streamed: an error of the database in the middle of it breaks the transfer instead of ending
/// the file early.
#[utoipa::path(get, path = "/campana/{nombre}/llamadas",
    summary = "Exporta las llamadas (CDR) de una campaña",
    description = "Todas las columnas de `llamadas`, una fila por intento, ordenadas por `inicio` y `id`, \
        con `inicio` en [`desde`, `hasta`). Se transmite a medida que se lee: un error de la base de datos \
        a mitad de camino corta la transferencia en lugar de terminar el archivo antes de tiempo. \
        `amd_resultado` es el veredicto de la detección (HUMAN, MACHINE o NOTSURE; \
        SIT si se oyó un tono SIT: el número no existe, resultado NUMERO_INVALIDO) y `amd_causa` su motivo. \
        `amd_inicial` (la última columna) es nula salvo que un pitido de contestador oído durante el \
        mensaje a la persona haya corregido el veredicto: entonces guarda el primero (HUMAN o NOTSURE), \
        `amd_resultado` es MACHINE, `amd_causa` LATE_BEEP y `resultado` MAQUINA.",
    params(
        ("nombre" = String, Path, description = "Nombre de la campaña"),
        ("desde" = Option<String>, Query, description = "Instante inicial, incluido, sobre `inicio`: RFC 3339 (`2026-11-28T14:00:00Z`) o fecha `AAAA-MM-DD` (00:00:00 UTC de ese día)"),
        ("hasta" = Option<String>, Query, description = "Instante final, excluido, en el mismo formato que `desde`"),
        ("formato" = Option<String>, Query, description = "`csv` (por omisión) o `json` (un arreglo JSON)"),
    ),
    responses(
        (status = 200, description = "Las llamadas (CDR), una fila por intento, en CSV con encabezado o como arreglo JSON; transmitidas a medida que se leen", content_type = "text/csv", body = String),
        (status = 400, description = "Nombre, `desde`, `hasta` o `formato` inválidos (el mensaje nombra el parámetro)", body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 404, description = "No existe la campaña", body = super::ErrorBody),
        (status = 503, description = "La base de datos no está disponible", body = super::ErrorBody),
    ))]
pub async fn exportar_llamadas(
    nombre: String,
    pairs: Vec<(String, String)>,
    st: AppState,
) -> Response {
    match export(nombre, pairs, st).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn export(
    nombre: String,
    pairs: Vec<(String, String)>,
    st: AppState,
) -> Result<Response, ApiError> {
    let name = path_name(&nombre)?;
    let q = parse_query(&pairs)?;
    existing(&st, &name).await?;
    let mut source = StorePages {
        store: st.store.clone(),
        name: name.clone(),
        range: q.range,
        page_rows: PAGE_ROWS,
    };
    // The first page before the status line: a database that is down is a 503, not a broken body.
    let first = source.next_page(None).await?;
    let rx = spawn_producer(
        source,
        first,
        PAGE_ROWS,
        Encoder::new(q.formato),
        name.to_string(),
    );
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = warp::reply::stream(body).into_response();
    let (ct, ext) = match q.formato {
        Formato::Csv => ("text/csv; charset=utf-8", "csv"),
        Formato::Json => ("application/json", "json"),
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    // The name is `[A-Za-z][A-Za-z0-9_]*` (validated): nothing to escape in the header.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}-llamadas.{ext}\""))
    {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The routes of the CDR export and of the charts (`super::charts`), for `super::routes` to mount
/// among the protected ones.
pub(super) fn routes<S>(
    s: S,
) -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone
where
    S: warp::Filter<Extract = (AppState,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    use super::charts;
    use warp::Filter;
    let exportar = warp::path!("campana" / String / "llamadas")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(s.clone())
        .then(exportar_llamadas);
    let llamadas = warp::path!("campana" / String / "grafico" / "llamadas.svg")
        .and(warp::get())
        .and(s.clone())
        .then(charts::grafico_llamadas);
    let resultados = warp::path!("campana" / String / "grafico" / "resultados.svg")
        .and(warp::get())
        .and(s.clone())
        .then(charts::grafico_resultados);
    let serie = warp::path!("campana" / String / "serie")
        .and(warp::get())
        .and(s)
        .then(charts::serie);
    exportar
        .or(llamadas)
        .unify()
        .or(resultados)
        .unify()
        .or(serie)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn q(pairs: &[(&str, &str)]) -> Result<ExportQuery, ApiError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_query(&v)
    }

    #[test]
    fn instants_are_rfc3339_or_a_utc_date() {
        let at = |s: &str| parse_instant("desde", s).map(|t| t.to_rfc3339());
        assert_eq!(at("2026-11-28").unwrap(), "2026-11-28T00:00:00+00:00");
        assert_eq!(
            at("2026-11-28T14:00:00Z").unwrap(),
            "2026-11-28T14:00:00+00:00"
        );
        assert_eq!(
            at("2026-11-28T11:00:00.2509-03:00").unwrap(),
            "2026-11-28T14:00:00.250+00:00"
        );
        // `+03:00` sent unencoded in a query string arrives as ` 03:00`.
        assert_eq!(
            at("2026-11-28T17:00:00 03:00").unwrap(),
            "2026-11-28T14:00:00+00:00"
        );
        assert_eq!(
            at("2026-11-28 14:00:00Z").unwrap(),
            "2026-11-28T14:00:00+00:00"
        );
        assert_eq!(
            at("2026-11-28 17:00:00 03:00").unwrap(),
            "2026-11-28T14:00:00+00:00"
        );
        for bad in [
            "2026-13-45",
            "2026-02-30",
            "28/11/2026",
            "2026-11-28T14:00:00",
            "",
            "hoy",
            &"9".repeat(5000),
        ] {
            let e = parse_instant("desde", bad).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.mensaje.starts_with("desde: "), "{}", e.mensaje);
            assert!(
                e.mensaje.len() < 200,
                "the value is echoed in full: {}",
                e.mensaje
            );
        }
    }

    #[test]
    fn query_names_the_faulty_parameter() {
        assert_eq!(q(&[]).unwrap().formato, Formato::Csv);
        assert_eq!(q(&[("formato", "json")]).unwrap().formato, Formato::Json);
        let msg = |p: &[(&str, &str)]| q(p).unwrap_err().mensaje;
        assert!(msg(&[("formato", "xml")]).starts_with("formato: 'xml'"));
        assert!(msg(&[("hasta", "2026-13-45")]).starts_with("hasta: "));
        assert!(msg(&[("dsde", "2026-01-01")]).contains("'dsde'"));
        assert!(msg(&[("desde", "2026-01-01"), ("desde", "2026-01-02")]).starts_with("desde: "));
        assert!(msg(&[("desde", "2026-01-02"), ("hasta", "2026-01-02")]).starts_with("desde: "));
        let ok = q(&[("desde", "2026-01-01"), ("hasta", "2026-01-02T00:00:00Z")]).unwrap();
        assert_eq!(
            ok.range.desde.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
    }

    fn row(id: i64, teclas: &str) -> CdrRow {
        let t = NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_milli_opt(14, 0, 0, 5)
            .unwrap();
        CdrRow {
            id,
            campana: "PRUEBA".into(),
            numero_id: id,
            telefono: "+5491100000006".into(),
            intento: 1,
            uuid: format!("u-{id}"),
            nodo: "fs1".into(),
            estado: "COMPLETADO".into(),
            resultado: "HUMANO".into(),
            causa: Some("NORMAL_CLEARING".into()),
            amd_resultado: None,
            amd_causa: None,
            inicio: t,
            contestada: Some(t),
            fin: t,
            billsec: 3,
            duracion: 4,
            disposicion: None,
            mensaje_ms: None,
            teclas: Some(teclas.into()),
            accion: None,
            transferida_a: Some("=HYPERLINK(\"x\")".into()),
            agente_contesto: Some(true),
            tras_beep_ms: None,
            amd_inicial: Some("HUMAN".into()),
        }
    }

    #[test]
    fn csv_quotes_what_would_break_it_and_keeps_values() {
        let mut e = Encoder::new(Formato::Csv);
        let mut out = e.page(&[row(1, "1,2\"3\n#")]).unwrap().to_vec();
        out.extend_from_slice(&e.page(&[row(2, "9")]).unwrap());
        out.extend_from_slice(&e.end());
        let mut r = csv::Reader::from_reader(out.as_slice());
        assert_eq!(r.headers().unwrap().len(), 25);
        assert_eq!(r.headers().unwrap(), CSV_HEADER.as_slice());
        let recs: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(&recs[0][19], "1,2\"3\n#");
        assert_eq!(&recs[0][21], "=HYPERLINK(\"x\")");
        assert_eq!(&recs[0][12], "2026-11-28T14:00:00.005Z");
        assert_eq!(&recs[0][11], "", "NULL is an empty field");
        assert_eq!(&recs[1][0], "2");
        assert_eq!(
            &recs[0][24], "HUMAN",
            "the first verdict of a corrected one"
        );
    }

    #[test]
    fn empty_exports_are_valid_documents() {
        let mut e = Encoder::new(Formato::Csv);
        let csv = e.page(&[]).unwrap();
        assert_eq!(
            std::str::from_utf8(&csv).unwrap().trim_end(),
            CSV_HEADER.join(",")
        );
        let mut e = Encoder::new(Formato::Json);
        let mut doc = e.page(&[]).unwrap().to_vec();
        doc.extend_from_slice(&e.end());
        assert_eq!(
            serde_json::from_slice::<Vec<serde_json::Value>>(&doc)
                .unwrap()
                .len(),
            0
        );
        let mut e = Encoder::new(Formato::Json);
        let mut doc = e.page(&[row(1, "1"), row(2, "2")]).unwrap().to_vec();
        doc.extend_from_slice(&e.page(&[row(3, "3")]).unwrap());
        doc.extend_from_slice(&e.end());
        let v: Vec<serde_json::Value> = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2]["teclas"], "3");
        assert_eq!(v[0]["amd_causa"], serde_json::Value::Null);
    }

    /// Pages 1 and 2 come, then the database fails.
    struct Failing {
        served: u32,
    }

    impl PageSource for Failing {
        async fn next_page(&mut self, _: Option<&CdrRow>) -> Result<Vec<CdrRow>, StoreError> {
            self.served += 1;
            if self.served > 1 {
                return Err(StoreError::Unavailable("conexión perdida".into()));
            }
            Ok(vec![row(3, "3"), row(4, "4")])
        }
    }

    #[tokio::test]
    async fn a_database_error_mid_stream_ends_the_body_with_an_error() {
        let rx = spawn_producer(
            Failing { served: 0 },
            vec![row(1, "1"), row(2, "2")],
            2,
            Encoder::new(Formato::Json),
            "PRUEBA".into(),
        );
        let items: Vec<_> = tokio_stream::wrappers::ReceiverStream::new(rx)
            .collect()
            .await;
        assert_eq!(items.len(), 3, "two pages, then the error");
        assert!(items[0].is_ok() && items[1].is_ok());
        assert!(matches!(items[2], Err(ExportError::Store(_))));
    }

    #[tokio::test]
    async fn a_short_page_is_the_last_one() {
        let rx = spawn_producer(
            Failing { served: 5 },
            vec![row(1, "1")],
            2,
            Encoder::new(Formato::Csv),
            "PRUEBA".into(),
        );
        let items: Vec<_> = tokio_stream::wrappers::ReceiverStream::new(rx)
            .collect()
            .await;
        assert!(
            items.iter().all(|i| i.is_ok()),
            "no read after a short page"
        );
        assert_eq!(items.len(), 2, "the page, then the (empty) end");
    }
}
