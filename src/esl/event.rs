//! A FreeSWITCH event: ordered headers plus an optional body.
//!
//! The same type serves the client (events parsed from `text/event-plain` / `text/event-json`), the
//! outbound socket (the channel data of the `connect` reply) and the simulator (events it renders),
//! so that what the simulator emits is parsed by exactly the code that parses real FreeSWITCH.

use std::fmt;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::EslError;
use super::urlenc;

/// One FreeSWITCH event. Header names keep FreeSWITCH's spelling and order; values are stored
/// decoded (no URL escapes). The serialization's own `Content-Length` is not a header of the event:
/// it is consumed when parsing and recomputed when rendering.
///
/// All names and values live in one string buffer indexed by spans: a HANGUP_COMPLETE has 150-300
/// headers, and two allocations per event instead of two per header is what makes decoding fast.
#[derive(Clone, Default)]
pub struct Event {
    /// Names and values, back to back. Replaced values leave their old bytes behind (unused).
    buf: String,
    /// `(name, value)` byte ranges into `buf`, in header order.
    spans: Vec<(Range<usize>, Range<usize>)>,
    body: Option<String>,
}

impl PartialEq for Event {
    /// Same headers in the same order and same body (the buffer layout does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body && self.headers().eq(other.headers())
    }
}

impl Eq for Event {}

impl fmt::Debug for Event {
    /// Short on purpose: a HANGUP_COMPLETE has ~150 headers and would flood a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("unique_id", &self.unique_id())
            .field("headers", &self.spans.len())
            .field("body_len", &self.body.as_ref().map(String::len))
            .finish()
    }
}

impl Event {
    /// An empty event with no headers.
    pub fn empty() -> Self {
        Event::default()
    }

    /// An event whose first header is `Event-Name: <name>`, as FreeSWITCH orders them.
    pub fn new(name: &str) -> Self {
        let mut e = Event::default();
        e.push("Event-Name", name);
        e
    }

    /// Builds an event from already-decoded `(name, value)` pairs.
    pub fn from_headers<I, K, V>(headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut e = Event::default();
        for (k, v) in headers {
            e.push(k.as_ref(), v.as_ref());
        }
        e
    }

    fn name_at(&self, i: usize) -> &str {
        self.spans
            .get(i)
            .and_then(|(n, _)| self.buf.get(n.clone()))
            .unwrap_or("")
    }

    fn push_str(&mut self, s: &str) -> Range<usize> {
        let start = self.buf.len();
        self.buf.push_str(s);
        start..self.buf.len()
    }

    /// Appends a header (duplicates allowed, as in FreeSWITCH).
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> &mut Self {
        let n = self.push_str(name.as_ref());
        let v = self.push_str(value.as_ref());
        self.spans.push((n, v));
        self
    }

    /// Builder form of [`Event::push`].
    pub fn with(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.push(name, value);
        self
    }

    /// Replaces the value of the first header called `name`, or appends it.
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) -> &mut Self {
        let found = (0..self.spans.len()).find(|&i| self.name_at(i) == name);
        match found {
            Some(i) => {
                let v = self.push_str(value.as_ref());
                if let Some(span) = self.spans.get_mut(i) {
                    span.1 = v;
                }
            }
            None => {
                self.push(name, value);
            }
        }
        self
    }

    /// Removes every header called `name` (exact spelling).
    pub fn remove(&mut self, name: &str) {
        let buf = &self.buf;
        self.spans
            .retain(|(n, _)| buf.get(n.clone()).is_some_and(|k| k != name));
    }

    /// Sets or clears the body (e.g. a BACKGROUND_JOB's `+OK <uuid>\n`).
    pub fn set_body(&mut self, body: Option<String>) -> &mut Self {
        self.body = body;
        self
    }

    /// Builder form of [`Event::set_body`].
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Headers in FreeSWITCH's order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|(n, v)| {
            (
                self.buf.get(n.clone()).unwrap_or(""),
                self.buf.get(v.clone()).unwrap_or(""),
            )
        })
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the event has no header.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// Value of the first header called `name`. Exact spelling first; FreeSWITCH's names are
    /// case-sensitive in practice, but a case-insensitive fallback keeps lookups of hand-written
    /// names (`unique-id`) working.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| *k == name)
            .or_else(|| self.headers().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v)
    }

    /// `Event-Name` (e.g. `CHANNEL_ANSWER`, `BACKGROUND_JOB`, `CUSTOM`).
    pub fn name(&self) -> Option<&str> {
        self.get("Event-Name")
    }

    /// `Event-Subclass` of a CUSTOM event (e.g. `avmd::beep`).
    pub fn subclass(&self) -> Option<&str> {
        self.get("Event-Subclass")
    }

    /// The channel's `Unique-ID` (falls back to `Channel-Unique-ID`, which some events carry alone).
    pub fn unique_id(&self) -> Option<&str> {
        self.get("Unique-ID")
            .or_else(|| self.get("Channel-Unique-ID"))
    }

    /// `Job-UUID` of a BACKGROUND_JOB event.
    pub fn job_uuid(&self) -> Option<&str> {
        self.get("Job-UUID")
    }

    /// `Hangup-Cause` (e.g. `NORMAL_CLEARING`, `USER_BUSY`, `NO_ANSWER`).
    pub fn hangup_cause(&self) -> Option<&str> {
        self.get("Hangup-Cause")
    }

    /// The channel variable `name`, carried as the header `variable_<name>`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Channel variables carried by this event, as `(name, value)` without the `variable_` prefix.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers()
            .filter_map(|(k, v)| k.strip_prefix("variable_").map(|name| (name, v)))
    }

    /// `Application-UUID` of CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE: the `Event-UUID` we sent
    /// with the `sendmsg` that started the application.
    pub fn application_uuid(&self) -> Option<&str> {
        self.get("Application-UUID")
    }

    /// `Application` of CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE.
    pub fn application(&self) -> Option<&str> {
        self.get("Application")
    }

    /// `Application-Response` of CHANNEL_EXECUTE_COMPLETE.
    pub fn application_response(&self) -> Option<&str> {
        self.get("Application-Response")
    }

    /// Parses the body of a `text/event-plain` frame: URL-encoded `Name: value` lines, an empty
    /// line, then — when the block has a `Content-Length` — exactly that many bytes of body.
    pub fn parse_plain(text: &str) -> Result<Event, EslError> {
        // The buffer starts as a copy of the whole text (one memcpy): names and values that need
        // no decoding are spans into it, decoded values are appended after it.
        let mut buf = String::with_capacity(text.len() + text.len() / 4);
        buf.push_str(text);
        let mut e = Event {
            buf,
            spans: Vec::with_capacity(text.len() / 40 + 4),
            body: None,
        };
        let mut scratch = Vec::new();
        let mut body_len: Option<usize> = None;
        let bytes = text.as_bytes();
        let mut pos = 0;
        // One pass per line finds its end, its first ':' and whether it has a '%' (three
        // separate searches per line cost more than the decoding itself on 300-header events).
        while pos < bytes.len() {
            let (colon, end, pct) = scan_line(bytes, pos);
            let next = end + 1;
            let line_end = if end > pos && bytes.get(end - 1) == Some(&b'\r') {
                end - 1
            } else {
                end
            };
            if line_end == pos {
                pos = next;
                break;
            }
            let colon = colon
                .filter(|&c| c < line_end)
                .ok_or_else(|| EslError::InvalidEvent("event header line without ':'".into()))?;
            // ':' and line breaks are ASCII, so these are char boundaries; `get` keeps it panic-free.
            let name = text.get(pos..colon).unwrap_or("");
            let mut vstart = colon + 1;
            if bytes.get(vstart) == Some(&b' ') {
                vstart += 1;
            }
            let value = text.get(vstart.min(line_end)..line_end).unwrap_or("");
            if name.len() == 14 && name.eq_ignore_ascii_case("Content-Length") {
                body_len = Some(parse_len(value)?);
            } else {
                let n = pos..pos + name.len();
                let v = if pct {
                    let start = e.buf.len();
                    urlenc::decode_into(value, &mut e.buf, &mut scratch);
                    start..e.buf.len()
                } else {
                    let start = vstart.min(line_end);
                    start..line_end
                };
                e.spans.push((n, v));
            }
            pos = next;
        }
        let rest = text.get(pos.min(text.len())..).unwrap_or("");
        if let Some(n) = body_len {
            let b = rest.get(..n).ok_or_else(|| {
                EslError::InvalidEvent("event body shorter than its Content-Length".into())
            })?;
            e.body = Some(b.to_owned());
        }
        Ok(e)
    }

    /// Parses the body of a `text/event-json` frame: one JSON object of string values, the nested
    /// body under `_body`. Non-string values are turned into text (arrays in FreeSWITCH's
    /// `ARRAY::a|:b` form) rather than rejected.
    pub fn parse_json(text: &str) -> Result<Event, EslError> {
        let OrderedObject(pairs) = serde_json::from_str(text)
            .map_err(|e| EslError::InvalidEvent(format!("bad JSON event: {e}")))?;
        let mut e = Event::default();
        for (k, v) in pairs {
            if k == "_body" {
                e.body = Some(json_to_text(v));
            } else if !k.eq_ignore_ascii_case("Content-Length") {
                e.push(k, json_to_text(v));
            }
        }
        Ok(e)
    }

    /// Renders the event as FreeSWITCH's `switch_event_serialize` does: `Name: url-encoded value`
    /// lines, then `Content-Length: N` + empty line + body when there is a body, else an empty line.
    pub fn to_plain(&self) -> String {
        let mut out = String::with_capacity(self.buf.len() * 5 / 4 + 64);
        for (k, v) in self.headers() {
            out.push_str(k);
            out.push_str(": ");
            urlenc::encode_into(v, &mut out);
            out.push('\n');
        }
        match self.body.as_deref() {
            Some(b) if !b.is_empty() => {
                out.push_str("Content-Length: ");
                out.push_str(&b.len().to_string());
                out.push_str("\n\n");
                out.push_str(b);
            }
            _ => out.push('\n'),
        }
        out
    }

    /// Renders the event as FreeSWITCH's `switch_event_serialize_json` does: an object of string
    /// values in header order, plus `Content-Length` and `_body` when there is a body.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.buf.len() * 5 / 4 + 64);
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, k: &str, v: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(out, k);
            out.push(':');
            push_json_string(out, v);
        };
        for (k, v) in self.headers() {
            field(&mut out, k, v);
        }
        if let Some(b) = self.body.as_deref() {
            field(&mut out, "Content-Length", &b.len().to_string());
            field(&mut out, "_body", b);
        }
        out.push('}');
        out
    }
}

/// Finds, from `pos`, the end of the line (index of its `\n`, or the text length), its first `:`
/// and whether the value after it contains a `%`. Values are skipped eight bytes at a time when
/// they hold neither `\n` nor `%` (plain SWAR, safe code): most of a big event's bytes are values.
fn scan_line(bytes: &[u8], pos: usize) -> (Option<usize>, usize, bool) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    const PCT: u64 = LO * b'%' as u64;
    fn has_zero_byte(x: u64) -> bool {
        x.wrapping_sub(LO) & !x & HI != 0
    }
    let mut i = pos;
    let colon = loop {
        match bytes.get(i) {
            None => return (None, bytes.len(), false),
            Some(b'\n') => return (None, i, false),
            Some(b':') => break i,
            Some(_) => i += 1,
        }
    };
    let mut pct = false;
    i = colon + 1;
    loop {
        let word = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes);
        match word {
            Some(w) if !has_zero_byte(w ^ NL) && !has_zero_byte(w ^ PCT) => i += 8,
            _ => break,
        }
    }
    loop {
        match bytes.get(i) {
            None => return (Some(colon), bytes.len(), pct),
            Some(b'\n') => return (Some(colon), i, pct),
            Some(b'%') => pct = true,
            Some(_) => {}
        }
        i += 1;
    }
}

/// Splits `Name: value` at the first `:`, dropping the one space FreeSWITCH writes after it (only
/// that one, so a value's own leading spaces survive a round trip).
pub(crate) fn split_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    Some((name, value.strip_prefix(' ').unwrap_or(value)))
}

/// Parses a `Content-Length` value: decimal digits only, at most 10 of them.
pub(crate) fn parse_len(value: &str) -> Result<usize, EslError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EslError::BadContentLength);
    }
    v.parse().map_err(|_| EslError::BadContentLength)
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping of a &str cannot fail; the fallback keeps this panic-free regardless.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

fn json_to_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(items) => {
            let mut out = String::from("ARRAY::");
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push_str("|:");
                }
                out.push_str(&json_to_text(item));
            }
            out
        }
        other => other.to_string(),
    }
}

/// A JSON object read as an ordered list of pairs (serde_json's `Map` sorts keys unless a crate
/// feature is enabled; header order matters to us and to byte-faithful re-rendering).
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(64).min(1024));
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    pairs.push((k, v));
                }
                Ok(OrderedObject(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Event {
        Event::new("BACKGROUND_JOB")
            .with("Core-UUID", "ab0d8c40-4cd9-4c76-a5a1-e5a84a64b56e")
            .with("Event-Date-Local", "2024-01-02 10:11:12")
            .with("Job-UUID", "7f4de4bc-17d7-11dd-b7a0-db4edd065621")
            .with("Job-Command", "originate")
            .with_body("+OK 7f4db78a-17d7-11dd-b7a0-db4edd065621\n")
    }

    #[test]
    fn plain_round_trip_with_body() {
        let e = job();
        let text = e.to_plain();
        assert!(text.contains("Event-Date-Local: 2024-01-02%2010%3A11%3A12\n"));
        assert!(text.ends_with("Content-Length: 41\n\n+OK 7f4db78a-17d7-11dd-b7a0-db4edd065621\n"));
        let back = Event::parse_plain(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.job_uuid(),
            Some("7f4de4bc-17d7-11dd-b7a0-db4edd065621")
        );
        assert_eq!(back.name(), Some("BACKGROUND_JOB"));
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let e = job().with("variable_amd_result", "MACHINE");
        let text = e.to_json();
        assert!(text.starts_with("{\"Event-Name\":\"BACKGROUND_JOB\",\"Core-UUID\""));
        assert!(text.contains("\"_body\":\"+OK 7f4db78a-17d7-11dd-b7a0-db4edd065621\\n\""));
        let back = Event::parse_json(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.variable("amd_result"), Some("MACHINE"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Event::parse_plain("no colon here\n\n").is_err());
        assert!(Event::parse_plain("A: b\nContent-Length: 99\n\nshort").is_err());
        assert!(Event::parse_plain("A: b\nContent-Length: x\n\n").is_err());
        assert!(Event::parse_json("[1,2]").is_err());
        assert!(Event::parse_json("{\"a\":").is_err());
        let e = Event::parse_json("{\"a\":1,\"b\":[\"x\",\"y\"],\"c\":null}").unwrap();
        assert_eq!(e.get("a"), Some("1"));
        assert_eq!(e.get("b"), Some("ARRAY::x|:y"));
        assert_eq!(e.get("c"), Some(""));
    }

    #[test]
    fn lookups() {
        let e = Event::new("CHANNEL_EXECUTE_COMPLETE")
            .with("Unique-ID", "u1")
            .with("Application-UUID", "a1")
            .with("variable_amd_result", "HUMAN");
        assert_eq!(e.unique_id(), Some("u1"));
        assert_eq!(e.get("unique-id"), Some("u1"));
        assert_eq!(e.application_uuid(), Some("a1"));
        assert_eq!(e.variable("amd_result"), Some("HUMAN"));
        assert_eq!(
            e.variables().collect::<Vec<_>>(),
            vec![("amd_result", "HUMAN")]
        );
        assert_eq!(e.hangup_cause(), None);
    }
}
