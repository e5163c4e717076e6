//! The one error type of the ESL layer.
//!
//! Messages name *what* went wrong and *which* field, never the offending value: a value may be the
//! event-socket password or a caller's number, and error messages end up in logs and API bodies.

use std::time::Duration;

/// Everything that can go wrong while framing, building commands or talking to FreeSWITCH.
#[derive(Debug, thiserror::Error)]
pub enum EslError {
    /// The socket failed (connect refused, reset, broken pipe…).
    #[error("ESL i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// A header block or a body is larger than the configured cap; the connection must be dropped
    /// because the stream can no longer be re-synchronised.
    #[error("ESL frame too large: {what} of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },

    /// `Content-Length` is not a plain decimal number.
    #[error("ESL frame has an invalid Content-Length")]
    BadContentLength,

    /// A header block (or a body that must be text) is not valid UTF-8.
    #[error("ESL {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),

    /// The bytes do not follow the ESL framing (e.g. a header line without `:`).
    #[error("malformed ESL frame: {0}")]
    Malformed(&'static str),

    /// A command could not be built: a value would inject a line break, a name is not allowed…
    #[error("invalid ESL command: {0}")]
    InvalidCommand(&'static str),

    /// An event body could not be parsed (bad JSON, bad header line, unsupported format).
    #[error("invalid ESL event: {0}")]
    InvalidEvent(String),

    /// The command was not sent because there is no authenticated connection right now.
    #[error("not connected to FreeSWITCH")]
    NotConnected,

    /// The connection was lost before the answer arrived (the command may or may not have run).
    #[error("disconnected from FreeSWITCH")]
    Disconnected,

    /// FreeSWITCH refused the password. Final: the client does not retry.
    #[error("FreeSWITCH refused the event socket password")]
    AuthFailed,

    /// No answer within the configured time.
    #[error("no answer from the peer within {0:?}")]
    Timeout(Duration),

    /// FreeSWITCH answered `-ERR …` to a command.
    #[error("FreeSWITCH rejected the command: {0}")]
    CommandFailed(String),

    /// The peer sent a frame that does not fit the conversation (e.g. an event instead of a reply).
    #[error("unexpected ESL reply: {0}")]
    UnexpectedReply(String),

    /// The channel hung up while we waited for it (an outbound session): whatever we were waiting
    /// for will not come, and commands sent now are accepted but never run.
    #[error("the channel hung up ({0})")]
    HungUp(String),

    /// The client was shut down.
    #[error("ESL client shut down")]
    Shutdown,
}
