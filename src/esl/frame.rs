//! What FreeSWITCH sends on an event socket: one framed message ("frame").
//!
//! A frame is a header block (`Content-Type`, `Reply-Text`, `Job-UUID`, …) plus an optional body of
//! `Content-Length` bytes. The same type is decoded by the client and encoded by the simulator, so the
//! constructors below reproduce FreeSWITCH's header order byte for byte.

use bytes::Bytes;

use super::error::EslError;
use super::event::Event;
use super::urlenc;

/// The message kinds FreeSWITCH sends, from `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// `auth/request`: the greeting of an inbound connection.
    AuthRequest,
    /// `command/reply`: the answer to a command (`Reply-Text: +OK …` / `-ERR …`).
    CommandReply,
    /// `api/response`: the output of `api`, in the body.
    ApiResponse,
    /// `text/event-plain`: an event as URL-encoded headers in the body.
    EventPlain,
    /// `text/event-json`: an event as a JSON object in the body.
    EventJson,
    /// `text/event-xml`: kept raw, not parsed.
    EventXml,
    /// `text/disconnect-notice`: FreeSWITCH is closing the socket (or the channel hung up).
    DisconnectNotice,
    /// `text/rude-rejection`: the connection was refused (ACL).
    RudeRejection,
    /// `log/data`: a log line after `log <level>`.
    LogData,
    /// Missing or unknown `Content-Type`.
    Other,
}

/// One decoded (or to-be-encoded) ESL message. Header values are kept as received: top-level
/// headers are not URL-encoded by FreeSWITCH except in the outbound `connect` reply, which
/// [`Frame::headers_as_event`] decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl Frame {
    /// A frame from its parts. A `Content-Length` header, if present, is rewritten on encoding to
    /// the real body length; if absent and there is a body, it is written first.
    pub fn new(headers: Vec<(String, String)>, body: Option<Bytes>) -> Self {
        Frame { headers, body }
    }

    fn with_headers(pairs: &[(&str, &str)], body: Option<Bytes>) -> Self {
        Frame {
            headers: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
        }
    }

    /// `Content-Type: auth/request`, the first thing FreeSWITCH sends on an inbound connection.
    pub fn auth_request() -> Self {
        Frame::with_headers(&[("Content-Type", "auth/request")], None)
    }

    /// `Content-Type: command/reply` with `Reply-Text: <text>` (e.g. `+OK accepted`, `-ERR invalid`).
    pub fn command_reply(text: &str) -> Self {
        Frame::with_headers(
            &[("Content-Type", "command/reply"), ("Reply-Text", text)],
            None,
        )
    }

    /// The reply to `bgapi`: `Reply-Text: +OK Job-UUID: <uuid>` plus a `Job-UUID` header.
    pub fn bgapi_reply(job_uuid: &str) -> Self {
        let text = format!("+OK Job-UUID: {job_uuid}");
        Frame::with_headers(
            &[
                ("Content-Type", "command/reply"),
                ("Reply-Text", &text),
                ("Job-UUID", job_uuid),
            ],
            None,
        )
    }

    /// `api/response` carrying `body` (FreeSWITCH writes `Content-Length` first here).
    pub fn api_response(body: impl Into<Bytes>) -> Self {
        Frame::with_headers(
            // FreeSWITCH writes an API reply's type before its length (events: the other way).
            &[("Content-Type", "api/response"), ("Content-Length", "")],
            Some(body.into()),
        )
    }

    /// An event as `text/event-plain`, exactly as FreeSWITCH frames it.
    pub fn event_plain(event: &Event) -> Self {
        Frame::with_headers(
            &[("Content-Length", ""), ("Content-Type", "text/event-plain")],
            Some(Bytes::from(event.to_plain())),
        )
    }

    /// An event as `text/event-json`, exactly as FreeSWITCH frames it.
    pub fn event_json(event: &Event) -> Self {
        Frame::with_headers(
            &[("Content-Length", ""), ("Content-Type", "text/event-json")],
            Some(Bytes::from(event.to_json())),
        )
    }

    /// `text/disconnect-notice` with FreeSWITCH's farewell text.
    pub fn disconnect_notice() -> Self {
        Frame::with_headers(
            &[
                ("Content-Type", "text/disconnect-notice"),
                ("Content-Length", ""),
            ],
            Some(Bytes::from_static(
                b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n",
            )),
        )
    }

    /// The last frame of an outbound session: the farewell, naming the channel it controlled.
    pub fn session_goodbye(uuid: &str) -> Self {
        Frame::with_headers(
            &[
                ("Content-Type", "text/disconnect-notice"),
                ("Controlled-Session-UUID", uuid),
                ("Content-Disposition", "disconnect"),
                ("Content-Length", ""),
            ],
            Some(Bytes::from_static(
                b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n",
            )),
        )
    }

    /// The notice FreeSWITCH sends on an outbound socket in `linger` mode when the channel hangs up:
    /// the socket stays open for the remaining events.
    pub fn disconnect_notice_linger(uuid: &str, channel_name: &str, linger_secs: i64) -> Self {
        let secs = linger_secs.to_string();
        Frame::with_headers(
            &[
                ("Content-Type", "text/disconnect-notice"),
                ("Controlled-Session-UUID", uuid),
                ("Content-Disposition", "linger"),
                ("Channel-Name", channel_name),
                ("Linger-Time", &secs),
                ("Content-Length", "0"),
            ],
            Some(Bytes::new()),
        )
    }

    /// `text/rude-rejection`, sent by FreeSWITCH to a client its ACL refuses.
    pub fn rude_rejection() -> Self {
        Frame::with_headers(
            &[
                ("Content-Type", "text/rude-rejection"),
                ("Content-Length", ""),
            ],
            Some(Bytes::from_static(b"Access Denied, go away.\n")),
        )
    }

    /// The reply to an outbound `connect`: the channel's data as URL-encoded headers, then
    /// `Content-Type: command/reply`, `Reply-Text`, `Socket-Mode` and `Control`. FreeSWITCH
    /// serializes this reply as an event, so even `Reply-Text` is URL-encoded (`%2BOK%0A`).
    pub fn connect_reply(channel: &Event, async_mode: bool, full: bool) -> Self {
        let mut headers: Vec<(String, String)> = channel
            .headers()
            .map(|(k, v)| (k.to_owned(), urlenc::encode(v)))
            .collect();
        headers.push(("Content-Type".into(), "command/reply".into()));
        headers.push(("Reply-Text".into(), "%2BOK%0A".into()));
        headers.push((
            "Socket-Mode".into(),
            if async_mode { "async" } else { "static" }.into(),
        ));
        headers.push((
            "Control".into(),
            if full { "full" } else { "single-channel" }.into(),
        ));
        Frame {
            headers,
            body: None,
        }
    }

    /// Headers as received, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// First header called `name` (case-insensitive: `sendmsg`-style lowercase names exist too).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Content-Type`, if present.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The kind of message, from `Content-Type`.
    pub fn kind(&self) -> FrameKind {
        match self.content_type().map(str::trim) {
            Some("auth/request") => FrameKind::AuthRequest,
            Some("command/reply") => FrameKind::CommandReply,
            Some("api/response") => FrameKind::ApiResponse,
            Some("text/event-plain") => FrameKind::EventPlain,
            Some("text/event-json") => FrameKind::EventJson,
            Some("text/event-xml") => FrameKind::EventXml,
            Some("text/disconnect-notice") => FrameKind::DisconnectNotice,
            Some("text/rude-rejection") => FrameKind::RudeRejection,
            Some("log/data") => FrameKind::LogData,
            _ => FrameKind::Other,
        }
    }

    /// `Reply-Text` of a `command/reply`.
    pub fn reply_text(&self) -> Option<&str> {
        self.header("Reply-Text")
    }

    /// True for a `command/reply` whose `Reply-Text` starts with `+OK` (or `%2BOK`: the outbound
    /// `connect` reply is URL-encoded).
    pub fn is_ok_reply(&self) -> bool {
        self.reply_text()
            .is_some_and(|t| t.starts_with("+OK") || t.starts_with("%2BOK"))
    }

    /// The raw body bytes, if any.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// The body as text (empty when there is none); invalid UTF-8 is an error.
    pub fn body_str(&self) -> Result<&str, EslError> {
        match &self.body {
            None => Ok(""),
            Some(b) => std::str::from_utf8(b).map_err(|_| EslError::InvalidUtf8("frame body")),
        }
    }

    /// Parses the event carried by a `text/event-plain` or `text/event-json` frame. XML events are
    /// kept raw (see [`Frame::body`]) and give an error here.
    pub fn event(&self) -> Result<Event, EslError> {
        match self.kind() {
            FrameKind::EventPlain => Event::parse_plain(self.body_str()?),
            FrameKind::EventJson => Event::parse_json(self.body_str()?),
            FrameKind::EventXml => Err(EslError::InvalidEvent(
                "text/event-xml is kept raw, not parsed".into(),
            )),
            _ => Err(EslError::InvalidEvent(
                "frame does not carry an event".into(),
            )),
        }
    }

    /// The frame's own headers URL-decoded into an [`Event`]: this is how the outbound `connect`
    /// reply carries the channel's data.
    pub fn headers_as_event(&self) -> Event {
        Event::from_headers(
            self.headers
                .iter()
                .map(|(k, v)| (k.clone(), urlenc::decode(v))),
        )
    }

    /// Writes the frame in wire form. A `Content-Length` header is written with the real body
    /// length; without one, a body gets `Content-Length` as first line.
    pub(crate) fn encode_into(&self, dst: &mut bytes::BytesMut) -> Result<(), EslError> {
        let body_len = self.body.as_ref().map_or(0, Bytes::len);
        let has_len = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Content-Length"));
        let mut out = String::with_capacity(64 + self.headers.len() * 32);
        if !has_len && self.body.is_some() {
            out.push_str("Content-Length: ");
            out.push_str(&body_len.to_string());
            out.push('\n');
        }
        for (k, v) in &self.headers {
            if k.is_empty() || k.contains([':', '\r', '\n']) || v.contains(['\r', '\n']) {
                return Err(EslError::Malformed("line break or ':' in a frame header"));
            }
            out.push_str(k);
            out.push_str(": ");
            if k.eq_ignore_ascii_case("Content-Length") {
                out.push_str(&body_len.to_string());
            } else {
                out.push_str(v);
            }
            out.push('\n');
        }
        out.push('\n');
        dst.reserve(out.len() + body_len);
        dst.extend_from_slice(out.as_bytes());
        if let Some(b) = &self.body {
            dst.extend_from_slice(b);
        }
        Ok(())
    }
}

/// The first of `headers` called `name`, case-insensitive: the one lookup rule of both ends of the
/// protocol (FreeSWITCH's own names are capitalised, `sendmsg` headers are lower-case).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
