//! The Event Socket framing, as tokio-util codecs for both ends of a connection.
//!
//! A message is a header block — lines ended by `\n` (or `\r\n`), closed by an empty line — and,
//! when the block has a `Content-Length`, exactly that many bytes of body. Both directions use it:
//! [`EslCodec`] is the client end (decodes FreeSWITCH's [`Frame`]s, encodes our [`Command`]s) and
//! [`CommandCodec`] the server end used by the simulator and the fake peers of the tests (decodes
//! [`RawCommand`]s, encodes [`Frame`]s).
//!
//! Memory is bounded: a header block larger than [`FrameLimits::max_header`] or a `Content-Length`
//! above [`FrameLimits::max_body`] is an [`EslError::FrameTooLarge`] before anything is buffered
//! beyond the cap.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::command::Command;
use super::error::EslError;
use super::event::{parse_len, split_header};
use super::frame::Frame;

/// Size caps of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest header block, terminator included (default 64 KiB).
    pub max_header: usize,
    /// Largest body (default 16 MiB).
    pub max_body: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_header: 64 * 1024,
            max_body: 16 * 1024 * 1024,
        }
    }
}

/// Ordered `(name, value)` header pairs.
type Headers = Vec<(String, String)>;

/// Header lines of one message; the first line is kept apart when it is a command line.
struct RawMessage {
    first_line: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

enum State {
    /// Looking for the end of a header block; `scanned` bytes are known not to contain it.
    Head { scanned: usize },
    /// Header block parsed, waiting for `len` bytes of body.
    Body {
        first_line: Option<String>,
        headers: Vec<(String, String)>,
        len: usize,
    },
}

/// The shared framing state machine.
struct Framer {
    limits: FrameLimits,
    state: State,
    /// True on the server end: the first line is a command (`api status`), not a `Name: value`.
    command_mode: bool,
}

/// Finds the end of the header block in `buf`, starting the search at `from`. Returns the length
/// of the block (without its final line break) and the number of bytes to consume.
fn find_block_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some((nl, nl + 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((nl, nl + 3)),
            // Not enough bytes yet to tell whether this is the terminator: look again later.
            (None, _) | (Some(b'\r'), None) => return None,
            _ => i = nl + 1,
        }
    }
    None
}

impl Framer {
    fn new(limits: FrameLimits, command_mode: bool) -> Self {
        Framer {
            limits,
            state: State::Head { scanned: 0 },
            command_mode,
        }
    }

    /// Takes one whole message (headers, then a `Content-Length` body) off `src`, or `None` until
    /// it has arrived. Long on purpose: a single pass over the bytes with every limit checked
    /// where it applies (the hot path of every event).
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, EslError> {
        loop {
            match &mut self.state {
                State::Head { scanned } => {
                    if *scanned == 0 {
                        // Stray line breaks between messages carry nothing; skip them.
                        let skip = src
                            .iter()
                            .take_while(|&&b| b == b'\n' || b == b'\r')
                            .count();
                        src.advance(skip);
                    }
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let from = scanned.saturating_sub(2);
                    let Some((block_len, consumed)) = find_block_end(src, from) else {
                        if src.len() > self.limits.max_header {
                            return Err(EslError::FrameTooLarge {
                                what: "header block",
                                size: src.len(),
                                limit: self.limits.max_header,
                            });
                        }
                        *scanned = src.len();
                        return Ok(None);
                    };
                    if consumed > self.limits.max_header {
                        return Err(EslError::FrameTooLarge {
                            what: "header block",
                            size: consumed,
                            limit: self.limits.max_header,
                        });
                    }
                    let block = src.split_to(consumed);
                    let (first_line, headers) = self.parse_block(&block[..block_len])?;
                    let len = match headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
                    {
                        None => {
                            self.state = State::Head { scanned: 0 };
                            return Ok(Some(RawMessage {
                                first_line,
                                headers,
                                body: None,
                            }));
                        }
                        Some((_, v)) => parse_len(v)?,
                    };
                    if len > self.limits.max_body {
                        self.state = State::Head { scanned: 0 };
                        return Err(EslError::FrameTooLarge {
                            what: "body",
                            size: len,
                            limit: self.limits.max_body,
                        });
                    }
                    self.state = State::Body {
                        first_line,
                        headers,
                        len,
                    };
                }
                State::Body { len, .. } => {
                    let len = *len;
                    if src.len() < len {
                        // Reserve what is missing (bounded by max_body) so big bodies are read in
                        // few reallocations.
                        src.reserve(len - src.len());
                        return Ok(None);
                    }
                    let body = src.split_to(len).freeze();
                    let State::Body {
                        first_line,
                        headers,
                        ..
                    } = std::mem::replace(&mut self.state, State::Head { scanned: 0 })
                    else {
                        // Unreachable: we are in the Body arm; kept panic-free anyway.
                        return Err(EslError::Malformed("framing state lost"));
                    };
                    return Ok(Some(RawMessage {
                        first_line,
                        headers,
                        body: Some(body),
                    }));
                }
            }
        }
    }

    fn parse_block(&self, block: &[u8]) -> Result<(Option<String>, Headers), EslError> {
        let text = std::str::from_utf8(block).map_err(|_| EslError::InvalidUtf8("header block"))?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first_line = if self.command_mode {
            lines.next().map(|l| l.trim().to_owned())
        } else {
            None
        };
        let mut headers = Vec::with_capacity(4);
        for line in lines {
            let (k, v) =
                split_header(line).ok_or(EslError::Malformed("header line without ':'"))?;
            headers.push((k.trim().to_owned(), v.to_owned()));
        }
        Ok((first_line, headers))
    }
}

/// Client end: decodes FreeSWITCH's frames, encodes our commands.
pub struct EslCodec {
    framer: Framer,
}

impl EslCodec {
    pub fn new() -> Self {
        EslCodec::with_limits(FrameLimits::default())
    }
    pub fn with_limits(limits: FrameLimits) -> Self {
        EslCodec {
            framer: Framer::new(limits, false),
        }
    }
}

impl Default for EslCodec {
    fn default() -> Self {
        EslCodec::new()
    }
}

impl Decoder for EslCodec {
    type Item = Frame;
    type Error = EslError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, EslError> {
        Ok(self
            .framer
            .decode(src)?
            .map(|m| Frame::new(m.headers, m.body)))
    }
}

impl Encoder<&Command> for EslCodec {
    type Error = EslError;
    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), EslError> {
        item.encode_into(dst);
        Ok(())
    }
}

impl Encoder<Command> for EslCodec {
    type Error = EslError;
    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), EslError> {
        item.encode_into(dst);
        Ok(())
    }
}

/// A command as received by a server (the simulator, a test's fake FreeSWITCH): the command line,
/// its headers (`Job-UUID`, `call-command`…) and its optional body. Its `Debug` output hides the
/// argument of `auth`/`userauth`, so logging a received command cannot leak the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RawCommand {
    line: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl std::fmt::Debug for RawCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = matches!(self.verb(), "auth" | "userauth");
        f.debug_struct("RawCommand")
            .field(
                "line",
                &if secret {
                    "auth ***"
                } else {
                    self.line.as_str()
                },
            )
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .finish()
    }
}

impl RawCommand {
    /// The whole command line, e.g. `bgapi originate sofia/gateway/gw/123 &park()`.
    pub fn line(&self) -> &str {
        &self.line
    }
    /// The first word, lower-cased by FreeSWITCH's parser too (`api`, `bgapi`, `sendmsg`…).
    pub fn verb(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or("")
    }
    /// Everything after the first word, trimmed (`status`, `plain CHANNEL_ANSWER`…).
    pub fn args(&self) -> &str {
        self.line
            .trim_start()
            .split_once(char::is_whitespace)
            .map_or("", |(_, rest)| rest.trim())
    }
    /// Headers in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// First header called `name`, case-insensitive (`sendmsg` headers are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::frame::find_header(&self.headers, name)
    }
    /// `Job-UUID` of a `bgapi`.
    pub fn job_uuid(&self) -> Option<&str> {
        self.header("Job-UUID")
    }
    /// Raw body bytes.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }
    /// Body as text (empty when none).
    pub fn body_str(&self) -> Result<&str, EslError> {
        match &self.body {
            None => Ok(""),
            Some(b) => std::str::from_utf8(b).map_err(|_| EslError::InvalidUtf8("command body")),
        }
    }
}

/// Server end: decodes clients' commands, encodes frames.
pub struct CommandCodec {
    framer: Framer,
}

impl CommandCodec {
    pub fn new() -> Self {
        CommandCodec::with_limits(FrameLimits::default())
    }
    pub fn with_limits(limits: FrameLimits) -> Self {
        CommandCodec {
            framer: Framer::new(limits, true),
        }
    }
}

impl Default for CommandCodec {
    fn default() -> Self {
        CommandCodec::new()
    }
}

impl Decoder for CommandCodec {
    type Item = RawCommand;
    type Error = EslError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawCommand>, EslError> {
        Ok(self.framer.decode(src)?.map(|m| RawCommand {
            line: m.first_line.unwrap_or_default(),
            headers: m.headers,
            body: m.body,
        }))
    }
}

impl Encoder<&Frame> for CommandCodec {
    type Error = EslError;
    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), EslError> {
        item.encode_into(dst)
    }
}

impl Encoder<Frame> for CommandCodec {
    type Error = EslError;
    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), EslError> {
        item.encode_into(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::frame::FrameKind;

    fn decode_all(codec: &mut EslCodec, bytes: &[u8]) -> Result<Vec<Frame>, EslError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn many_frames_in_one_read_lf_and_crlf() {
        let bytes = b"Content-Type: auth/request\n\nContent-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\nContent-Length: 6\nContent-Type: api/response\n\n+OK hi";
        let frames = decode_all(&mut EslCodec::new(), bytes).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].kind(), FrameKind::AuthRequest);
        assert_eq!(frames[1].reply_text(), Some("+OK accepted"));
        assert_eq!(frames[2].body_str().unwrap(), "+OK hi");
    }

    #[test]
    fn byte_by_byte_gives_the_same_frames() {
        let bytes = b"Content-Length: 6\nContent-Type: api/response\n\n+OK hi\n\nContent-Type: command/reply\nReply-Text: -ERR no\n\n";
        let whole = decode_all(&mut EslCodec::new(), bytes).unwrap();
        let mut codec = EslCodec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, whole);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn caps_and_bad_lengths_are_clean_errors() {
        let limits = FrameLimits {
            max_header: 32,
            max_body: 8,
        };
        let mut c = EslCodec::with_limits(limits);
        let mut buf = BytesMut::from(&b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(EslError::FrameTooLarge {
                what: "header block",
                ..
            })
        ));
        let mut c = EslCodec::with_limits(limits);
        let mut buf = BytesMut::from(&b"Content-Length: 9\n\n"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(EslError::FrameTooLarge { what: "body", .. })
        ));
        for bad in [
            &b"Content-Length: -1\n\n"[..],
            b"Content-Length: 99999999999999999999\n\n",
            b"Content-Length: 1e3\n\n",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(matches!(
                EslCodec::new().decode(&mut buf),
                Err(EslError::BadContentLength)
            ));
        }
        let mut buf = BytesMut::from(&b"Content-Type: \xff\xfe\n\n"[..]);
        assert!(matches!(
            EslCodec::new().decode(&mut buf),
            Err(EslError::InvalidUtf8(_))
        ));
        let mut buf = BytesMut::from(&b"no colon\n\n"[..]);
        assert!(matches!(
            EslCodec::new().decode(&mut buf),
            Err(EslError::Malformed(_))
        ));
    }

    #[test]
    fn server_end_decodes_commands_and_encodes_frames() {
        let mut c = CommandCodec::new();
        let mut buf = BytesMut::from(
            &b"auth ClueCon\n\nbgapi originate x &park()\nJob-UUID: j1\n\nsendmsg u1\ncall-command: execute\nexecute-app-name: playback\ncontent-type: text/plain\ncontent-length: 3\n\nabc"[..],
        );
        let a = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!((a.verb(), a.args()), ("auth", "ClueCon"));
        let b = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(b.verb(), "bgapi");
        assert_eq!(b.args(), "originate x &park()");
        assert_eq!(b.job_uuid(), Some("j1"));
        assert!(!format!("{a:?}").contains("ClueCon"));
        let s = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(s.header("Call-Command"), Some("execute"));
        assert_eq!(s.body_str().unwrap(), "abc");
        assert!(c.decode(&mut buf).unwrap().is_none());

        let mut out = BytesMut::new();
        c.encode(Frame::api_response("+OK\n"), &mut out).unwrap();
        c.encode(Frame::command_reply("+OK accepted"), &mut out)
            .unwrap();
        assert_eq!(
            &out[..],
            b"Content-Type: api/response\nContent-Length: 4\n\n+OK\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"
        );
        assert!(c
            .encode(Frame::command_reply("+OK\nX: y"), &mut out)
            .is_err());
    }
}
