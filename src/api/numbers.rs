//! `POST /campana/{nombre}/numeros`: loading numbers from CSV (streamed) or JSON.
//!
//! CSV is read straight off the request body and written in batches of [`BATCH`] rows (or
//! [`BATCH_BYTES`]) while the rest
//! is still arriving: a parser task and a writer connected by a channel of two batches, so memory
//! stays flat (≈ three batches) for a file of any length. A single line longer than [`MAX_LINE`]
//! bytes is refused (413) instead of being buffered. The load is not one transaction: batches already
//! written stay if a later one fails, and sending the same file again is harmless (numbers already
//! present count as `duplicados`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::dto::{CargaReply, ErrorLinea, NumerosJson};
use super::error::ApiError;
use crate::domain::{derive_zone, parse_zone, PhoneNumber};
use crate::store::{Campaign, InsertCounts, NewNumber, Store, StoreError};

/// Rows per INSERT: big enough to amortize the round trip (10,000 rows load 1M numbers in about
/// 8 s here, 5,000 in about 11 s; see BENCHMARKS.md).
pub const BATCH: usize = 10_000;
/// Bytes of row data per INSERT, whatever the row count: keeps memory per batch bounded for wide CSVs
/// (many or long `datos` columns), not just for many rows.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Concurrent INSERTs of one load.
const WRITERS: usize = 2;
/// Refused lines reported back in full.
const MAX_ERRORS: usize = 100;
/// Longest accepted CSV line.
const MAX_LINE: usize = 64 * 1024;
/// Largest JSON import (JSON is parsed whole; large loads should use CSV).
pub const MAX_JSON: usize = 32 * 1024 * 1024;
/// Characters of a refused value echoed back.
const MAX_VALUE: usize = 64;

/// Accumulates the answer: counts and the first refused lines.
#[derive(Default)]
struct Tally {
    reply: CargaReply,
}

impl Tally {
    fn refuse(&mut self, linea: u64, valor: &str, motivo: impl Into<String>) {
        self.reply.invalidos += 1;
        if self.reply.errores.len() < MAX_ERRORS {
            self.reply.errores.push(ErrorLinea {
                linea,
                valor: valor.chars().take(MAX_VALUE).collect(),
                motivo: motivo.into(),
            });
        }
    }

    fn add(&mut self, c: InsertCounts) {
        self.reply.insertados += c.inserted;
        self.reply.duplicados += c.duplicates;
    }
}

/// A line over the limit, recognized in the I/O error the CSV reader passes on.
#[derive(Debug, thiserror::Error)]
#[error("línea de más de {MAX_LINE} bytes")]
struct LineTooLong;

/// Refuses a line longer than `MAX_LINE` bytes while reading, so a newline-less body cannot make the
/// CSV reader buffer it whole.
struct LineLimit<R> {
    inner: R,
    run: usize,
}

impl<R: AsyncRead + Unpin> AsyncRead for LineLimit<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        for &b in &buf.filled()[before..] {
            if b == b'\n' {
                this.run = 0;
            } else {
                this.run += 1;
                if this.run > MAX_LINE {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        LineTooLong,
                    )));
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Stands for an empty line so the CSV reader (which skips blank lines and then misreports the next
/// record's line number) sees one record per line; such records are skipped, not refused.
const BLANK: u8 = 0;

/// Rewrites the CSV byte stream so that line numbers come out right: CRLF becomes LF and every empty
/// line outside quotes becomes a [`BLANK`] line. Quotes follow the CSV reader's rules: a quote opens
/// a quoted field only at the start of a field, `""` inside one is an escaped quote, and a stray quote
/// elsewhere is a literal character. State carries over chunk boundaries.
struct LineNormalizer {
    in_quotes: bool,
    /// The previous byte closed a quoted field (a `"` right after it is an escaped quote).
    just_closed: bool,
    field_start: bool,
    mid_line: bool,
    pending_cr: bool,
}

impl Default for LineNormalizer {
    fn default() -> Self {
        LineNormalizer {
            in_quotes: false,
            just_closed: false,
            field_start: true,
            mid_line: false,
            pending_cr: false,
        }
    }
}

impl LineNormalizer {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() + 8);
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    // A lone CR ends a line too (old Mac files).
                    self.newline(&mut out);
                }
            }
            let closed_before = std::mem::take(&mut self.just_closed);
            match b {
                b'"' if self.in_quotes => {
                    self.in_quotes = false;
                    self.just_closed = true;
                }
                b'"' if self.field_start || closed_before => self.in_quotes = true,
                _ if self.in_quotes => {}
                b'\r' => {
                    self.pending_cr = true;
                    continue;
                }
                b'\n' => {
                    self.newline(&mut out);
                    continue;
                }
                _ => {}
            }
            self.field_start = !self.in_quotes && b == b',';
            self.mid_line = true;
            out.push(b);
        }
        Bytes::from(out)
    }

    fn newline(&mut self, out: &mut Vec<u8>) {
        if !self.mid_line {
            out.push(BLANK);
        }
        out.push(b'\n');
        self.mid_line = false;
        self.field_start = true;
    }
}

fn read_error(e: &csv_async::Error) -> ApiError {
    if let csv_async::ErrorKind::Io(io) = e.kind() {
        if io.get_ref().is_some_and(|inner| inner.is::<LineTooLong>()) {
            return ApiError::too_large(format!("CSV: {LineTooLong}"));
        }
    }
    ApiError::invalid(format!("error leyendo el CSV: {e}"))
}

/// Writes batches as they come, with [`WRITERS`] concurrent workers: each derives its batch's
/// missing zones (see [`derive_missing`]) and INSERTs it, so two batches are derived or written at
/// once (InnoDB takes concurrent inserts into one table well). Stops at the first failure; the
/// parser then sees a closed channel.
fn spawn_writer(
    store: Store,
    campaign: Campaign,
) -> (
    mpsc::Sender<Vec<NewNumber>>,
    tokio::task::JoinHandle<Result<InsertCounts, StoreError>>,
) {
    let (tx, rx) = mpsc::channel::<Vec<NewNumber>>(WRITERS);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let task = tokio::spawn(async move {
        let workers = (0..WRITERS).map(|_| {
            let (rx, store, campaign) = (rx.clone(), store.clone(), campaign.clone());
            async move {
                let mut total = InsertCounts::default();
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(batch) = next else { return Ok(total) };
                    let inserted = match derive_missing(batch, campaign.ventana.zona).await {
                        Ok(batch) => store.insert_numbers(&campaign, &batch).await,
                        Err(e) => Err(e),
                    };
                    match inserted {
                        Ok(c) => {
                            total.inserted += c.inserted;
                            total.duplicates += c.duplicates;
                        }
                        Err(e) => {
                            rx.lock().await.close();
                            return Err(e);
                        }
                    }
                }
            }
        });
        let mut total = InsertCounts::default();
        for r in futures::future::join_all(workers).await {
            let c = r?;
            total.inserted += c.inserted;
            total.duplicates += c.duplicates;
        }
        Ok(total)
    });
    (tx, task)
}

/// Loads a CSV body: header row with a `telefono` column (any position, any case); the other columns
/// go to `datos` as a JSON object. Long on purpose: one streaming pass (bounded lines, bounded
/// batches, every bad line reported with its number) that is easiest to check whole.
pub async fn load_csv<S, B>(
    store: &Store,
    campaign: &Campaign,
    body: S,
) -> Result<CargaReply, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send,
{
    let started = Instant::now();
    let mut normalizer = LineNormalizer::default();
    let bytes = body
        .map_ok(move |mut b| {
            let chunk = b.copy_to_bytes(b.remaining());
            normalizer.feed(&chunk)
        })
        .map_err(io::Error::other);
    let reader = LineLimit {
        inner: StreamReader::new(Box::pin(bytes)),
        run: 0,
    };
    let mut rdr = csv_async::AsyncReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .create_reader(reader);
    let headers = rdr
        .byte_headers()
        .await
        .map_err(|e| read_error(&e))?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.strip_prefix("\u{feff}".as_bytes()).unwrap_or(h)
            } else {
                h
            };
            String::from_utf8_lossy(h).trim().to_owned()
        })
        .collect();
    let Some(tel_idx) = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case("telefono"))
    else {
        return Err(ApiError::invalid(
            "el CSV no tiene la columna 'telefono' en la primera línea",
        ));
    };

    let columns = Columns {
        telefono: tel_idx,
        zona: names
            .iter()
            .position(|n| n.eq_ignore_ascii_case("zona_horaria")),
    };
    let names_len: usize = names.iter().map(String::len).sum();
    let (tx, writer) = spawn_writer(store.clone(), campaign.clone());
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
    let mut record = csv_async::ByteRecord::new();
    let mut parse_error = None;
    loop {
        match rdr.read_byte_record(&mut record).await {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                parse_error = Some(read_error(&e));
                break;
            }
        }
        if record.len() == 1 && record.get(0) == Some(&[BLANK][..]) {
            continue;
        }
        let linea = record.position().map(|p| p.line()).unwrap_or(0);
        match parse_row(&record, &columns, &names) {
            Ok(n) => {
                // Row bytes plus the column names repeated in its `datos` JSON.
                batch_bytes += record.as_slice().len() + names_len + 8 * names.len();
                batch.push(n);
            }
            Err((valor, motivo)) => tally.refuse(linea, &valor, motivo),
        }
        if batch.len() >= BATCH || batch_bytes >= BATCH_BYTES {
            batch_bytes = 0;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(full).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
    }
    if !batch.is_empty() && parse_error.is_none() {
        let _ = tx.send(batch).await; // a closed channel means the writer failed: reported below
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ApiError::internal(format!("carga interrumpida: {e}")))?;
    match written {
        Ok(c) => tally.add(c),
        Err(e) => return Err(ApiError::from(e)),
    }
    if let Some(e) = parse_error {
        return Err(ApiError {
            mensaje: format!(
                "{} ({} números insertados antes del error)",
                e.mensaje, tally.reply.insertados
            ),
            ..e
        });
    }
    log_load(campaign, &tally.reply, started);
    Ok(tally.reply)
}

/// The positions of the CSV columns with a meaning of their own; the others go to `datos`.
struct Columns {
    telefono: usize,
    /// The number's own IANA zone, optional.
    zona: Option<usize>,
}

/// The zone given with a number: an IANA name (one chrono-tz does not know is refused, with the
/// field's name); empty or absent: `None`, to be derived by [`derive_missing`].
fn parse_given_zone(given: Option<&str>) -> Result<Option<chrono_tz::Tz>, String> {
    given
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .map(|z| parse_zone(z).map_err(|e| e.to_string()))
        .transpose()
}

/// Derives the zone of every number of a batch that came without one, from its own digits
/// (`derive_zone`: libphonenumber's parse and type, about 10 µs a number); `None` stays where
/// the digits say nothing (the campaign's zone applies). Run off the async workers, on the
/// writer's side of a load, so that it overlaps with the inserts.
async fn derive_missing(
    mut batch: Vec<NewNumber>,
    campaign_zone: chrono_tz::Tz,
) -> Result<Vec<NewNumber>, StoreError> {
    tokio::task::spawn_blocking(move || {
        for n in batch.iter_mut().filter(|n| n.zona.is_none()) {
            n.zona = derive_zone(&n.telefono, campaign_zone);
        }
        batch
    })
    .await
    .map_err(|e| StoreError::Database(format!("derivación de zonas interrumpida: {e}")))
}

fn parse_row(
    record: &csv_async::ByteRecord,
    columns: &Columns,
    names: &[String],
) -> Result<NewNumber, (String, String)> {
    let tel_idx = columns.telefono;
    let raw = record
        .get(tel_idx)
        .ok_or_else(|| (String::new(), "falta el teléfono".to_owned()))?;
    let text = std::str::from_utf8(raw).map_err(|_| {
        (
            String::from_utf8_lossy(raw).into_owned(),
            "codificación inválida (se espera UTF-8)".to_owned(),
        )
    })?;
    let telefono = PhoneNumber::parse(text).map_err(|e| (text.to_owned(), e.to_string()))?;
    let mut given_zone = None;
    let mut datos = serde_json::Map::new();
    for (i, field) in record.iter().enumerate() {
        if i == tel_idx {
            continue;
        }
        if Some(i) == columns.zona {
            given_zone = Some(std::str::from_utf8(field).map_err(|_| {
                (
                    text.to_owned(),
                    "zona_horaria: codificación inválida (se espera UTF-8)".to_owned(),
                )
            })?);
            continue;
        }
        let value = std::str::from_utf8(field).map_err(|_| {
            let col = names.get(i).map(String::as_str).unwrap_or("?");
            (
                text.to_owned(),
                format!("codificación inválida (se espera UTF-8) en la columna {col}"),
            )
        })?;
        let key = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("columna_{}", i + 1));
        datos.insert(key, serde_json::Value::String(value.to_owned()));
    }
    let zona = parse_given_zone(given_zone).map_err(|e| (text.to_owned(), e))?;
    Ok(NewNumber {
        telefono,
        datos: (!datos.is_empty()).then_some(serde_json::Value::Object(datos)),
        zona,
    })
}

/// Loads `{"numeros": [{"telefono": "…", …}]}`; `telefono` may be a string or an integer.
pub async fn load_json(
    store: &Store,
    campaign: &Campaign,
    body: Bytes,
) -> Result<CargaReply, ApiError> {
    let started = Instant::now();
    let parsed: NumerosJson = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_json(format!("JSON inválido: {e}")))?;
    drop(body);
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH.min(parsed.numeros.len()));
    let mut batch_bytes = 0usize;
    for (i, item) in parsed.numeros.into_iter().enumerate() {
        let linea = i as u64 + 1;
        let serde_json::Value::Object(mut obj) = item else {
            tally.refuse(
                linea,
                &item.to_string(),
                "se espera un objeto con \"telefono\"",
            );
            continue;
        };
        let raw = match obj.remove("telefono") {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(other) => {
                tally.refuse(linea, &other.to_string(), "telefono debe ser texto");
                continue;
            }
            None => {
                tally.refuse(linea, "", "falta el teléfono");
                continue;
            }
        };
        let given_zone = match obj.remove("zona_horaria") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(z)) => Some(z),
            Some(other) => {
                tally.refuse(linea, &other.to_string(), "zona_horaria debe ser texto");
                continue;
            }
        };
        let parsed = PhoneNumber::parse(&raw)
            .map_err(|e| e.to_string())
            .and_then(|telefono| Ok((telefono, parse_given_zone(given_zone.as_deref())?)));
        match parsed {
            Ok((telefono, zona)) => {
                let datos = (!obj.is_empty()).then_some(serde_json::Value::Object(obj));
                batch_bytes += raw.len() + datos.as_ref().map_or(0, |d| d.to_string().len());
                batch.push(NewNumber {
                    telefono,
                    datos,
                    zona,
                });
            }
            Err(e) => tally.refuse(linea, &raw, e),
        }
        if batch.len() >= BATCH || batch_bytes >= BATCH_BYTES {
            let full = derive_missing(std::mem::take(&mut batch), campaign.ventana.zona).await?;
            tally.add(store.insert_numbers(campaign, &full).await?);
            batch_bytes = 0;
        }
    }
    let last = derive_missing(batch, campaign.ventana.zona).await?;
    tally.add(store.insert_numbers(campaign, &last).await?);
    log_load(campaign, &tally.reply, started);
    Ok(tally.reply)
}

/// Reads a whole body, refusing (413) more than `limit` bytes whatever Content-Length claims.
pub async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut body = Box::pin(body);
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::invalid(format!("error leyendo el cuerpo: {e}")))?;
        if out.len() + chunk.remaining() > limit {
            return Err(ApiError::too_large(format!(
                "el cuerpo supera {limit} bytes"
            )));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

fn log_load(c: &Campaign, r: &CargaReply, started: Instant) {
    tracing::info!(
        campana = %c.nombre,
        insertados = r.insertados,
        duplicados = r.duplicados,
        invalidos = r.invalidos,
        segundos = started.elapsed().as_secs_f64(),
        "números cargados"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(chunks: &[&[u8]]) -> Vec<u8> {
        let mut n = LineNormalizer::default();
        chunks.iter().flat_map(|c| n.feed(c).to_vec()).collect()
    }

    #[test]
    fn normalizer_marks_blank_lines_and_drops_cr() {
        assert_eq!(normalize(&[b"h\r\na\r\n\r\nb\n\nc"]), b"h\na\n\0\nb\n\0\nc");
        // Split across chunks, CR LF at the boundary.
        assert_eq!(normalize(&[b"h\r", b"\n\r", b"\nb"]), b"h\n\0\nb");
        // Inside quotes nothing changes, escaped quotes included.
        assert_eq!(normalize(&[b"a,\"x\r\n\r\ny\"\n"]), b"a,\"x\r\n\r\ny\"\n");
        assert_eq!(
            normalize(&[b"\"a\"\"", b"\n\n\"\n\n"]),
            b"\"a\"\"\n\n\"\n\0\n"
        );
        // A stray quote inside a field is literal: later blank lines are still marked.
        assert_eq!(normalize(&[b"55\"1,x\n\nb"]), b"55\"1,x\n\0\nb");
    }
}
