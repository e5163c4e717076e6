//! Typed ESL commands, one small type each (in the spirit of eslgo), and their wire form.
//!
//! Every value that reaches FreeSWITCH is checked when the command is built: a `\r` or `\n` would
//! end the command line or a header early and let the rest be read as another command or header
//! (command injection), so such values are refused with [`EslError::InvalidCommand`].

use std::fmt;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::codec::RawCommand;
use super::error::EslError;
use crate::secret::Secret;

/// Application arguments longer than this go in the `sendmsg` body instead of the
/// `execute-app-arg` header, as the mod_event_socket documentation recommends for long arguments.
pub const MAX_HEADER_ARG: usize = 1024;

/// Event serialization asked of FreeSWITCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventFormat {
    #[default]
    Plain,
    Json,
    Xml,
}

impl EventFormat {
    /// The keyword used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
            EventFormat::Xml => "xml",
        }
    }

    /// Parses `plain` / `json` / `xml` (case-insensitive).
    pub fn parse(s: &str) -> Option<EventFormat> {
        match s.to_ascii_lowercase().as_str() {
            "plain" => Some(EventFormat::Plain),
            "json" => Some(EventFormat::Json),
            "xml" => Some(EventFormat::Xml),
            _ => None,
        }
    }
}

impl fmt::Display for EventFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn no_line_break(value: &str, what: &'static str) -> Result<(), EslError> {
    if value.contains(['\r', '\n']) {
        return Err(EslError::InvalidCommand(what));
    }
    Ok(())
}

fn non_empty_line(value: &str, what: &'static str) -> Result<(), EslError> {
    no_line_break(value, what)?;
    if value.trim().is_empty() {
        return Err(EslError::InvalidCommand(what));
    }
    Ok(())
}

/// A single word: no whitespace at all (event names, uuids, header names, causes).
fn word(value: &str, what: &'static str) -> Result<(), EslError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EslError::InvalidCommand(what));
    }
    Ok(())
}

fn header_name(value: &str, what: &'static str) -> Result<(), EslError> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EslError::InvalidCommand(what));
    }
    Ok(())
}

/// `auth <password>`. The password never appears in `Debug` output or errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    password: Secret,
}

impl Auth {
    pub fn new(password: &Secret) -> Result<Self, EslError> {
        non_empty_line(
            password.expose(),
            "the password is empty or contains a line break",
        )?;
        Ok(Auth {
            password: password.clone(),
        })
    }
    /// The password, for the one place that checks it.
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

/// `api <command>`: runs synchronously, the answer is an `api/response`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    command: String,
}

impl Api {
    pub fn new(command: &str) -> Result<Self, EslError> {
        non_empty_line(command, "api command is empty or contains a line break")?;
        Ok(Api {
            command: command.to_owned(),
        })
    }
    pub fn command(&self) -> &str {
        &self.command
    }
}

/// `bgapi <command>` with our own `Job-UUID` header, so the BACKGROUND_JOB event can be matched to
/// the request without waiting for the reply first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgApi {
    command: String,
    job_uuid: Uuid,
}

impl BgApi {
    pub fn new(command: &str, job_uuid: Uuid) -> Result<Self, EslError> {
        non_empty_line(command, "bgapi command is empty or contains a line break")?;
        Ok(BgApi {
            command: command.to_owned(),
            job_uuid,
        })
    }
    pub fn command(&self) -> &str {
        &self.command
    }
    pub fn job_uuid(&self) -> Uuid {
        self.job_uuid
    }
}

/// `event <format> <names…>`: subscribe to events (`ALL`, `CHANNEL_ANSWER`, `CUSTOM avmd::beep`…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    format: EventFormat,
    names: Vec<String>,
}

impl Subscribe {
    pub fn new<S: AsRef<str>>(format: EventFormat, names: &[S]) -> Result<Self, EslError> {
        if names.is_empty() {
            return Err(EslError::InvalidCommand("event subscription without names"));
        }
        for n in names {
            word(n.as_ref(), "event name is empty or contains whitespace")?;
        }
        Ok(Subscribe {
            format,
            names: names.iter().map(|n| n.as_ref().to_owned()).collect(),
        })
    }
    pub fn format(&self) -> EventFormat {
        self.format
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// `filter <header> <value>` (only events whose header matches pass), or `filter delete …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    delete: bool,
    header: String,
    value: Option<String>,
}

impl Filter {
    /// Keep only events whose `header` equals `value`.
    pub fn add(header: &str, value: &str) -> Result<Self, EslError> {
        word(header, "filter header is empty or contains whitespace")?;
        non_empty_line(value, "filter value is empty or contains a line break")?;
        Ok(Filter {
            delete: false,
            header: header.to_owned(),
            value: Some(value.to_owned()),
        })
    }
    /// Remove a filter (`value` None removes every filter on `header`).
    pub fn delete(header: &str, value: Option<&str>) -> Result<Self, EslError> {
        word(header, "filter header is empty or contains whitespace")?;
        if let Some(v) = value {
            non_empty_line(v, "filter value is empty or contains a line break")?;
        }
        Ok(Filter {
            delete: true,
            header: header.to_owned(),
            value: value.map(str::to_owned),
        })
    }
    /// `filter delete …`.
    pub fn is_delete(&self) -> bool {
        self.delete
    }
    pub fn header(&self) -> &str {
        &self.header
    }
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// `nixevent <names…>`: unsubscribe from some events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NixEvent {
    names: Vec<String>,
}

impl NixEvent {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<Self, EslError> {
        if names.is_empty() {
            return Err(EslError::InvalidCommand("nixevent without names"));
        }
        for n in names {
            word(n.as_ref(), "event name is empty or contains whitespace")?;
        }
        Ok(NixEvent {
            names: names.iter().map(|n| n.as_ref().to_owned()).collect(),
        })
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// `myevents` (outbound: this channel's events) or `myevents <uuid> [format]` (inbound).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MyEvents {
    uuid: Option<String>,
    format: Option<EventFormat>,
}

impl MyEvents {
    /// Plain `myevents`, as sent on an outbound socket.
    pub fn new() -> Self {
        MyEvents::default()
    }
    /// `myevents <uuid> [format]`, as sent on an inbound connection.
    pub fn for_uuid(uuid: &str, format: Option<EventFormat>) -> Result<Self, EslError> {
        word(uuid, "myevents uuid is empty or contains whitespace")?;
        Ok(MyEvents {
            uuid: Some(uuid.to_owned()),
            format,
        })
    }
    /// `myevents <format>`, as sent on an outbound socket that wants another format.
    pub fn with_format(format: EventFormat) -> Self {
        MyEvents {
            uuid: None,
            format: Some(format),
        }
    }
    pub fn uuid(&self) -> Option<&str> {
        self.uuid.as_deref()
    }
    pub fn format(&self) -> Option<EventFormat> {
        self.format
    }
}

/// `linger [seconds]`: keep the outbound socket open after hangup to receive the last events.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Linger {
    seconds: Option<u32>,
}

impl Linger {
    pub fn new(seconds: Option<u32>) -> Self {
        Linger { seconds }
    }
    /// `None`: a bare `linger`, which FreeSWITCH takes as forever (`Linger-Time: -1`).
    pub fn seconds(&self) -> Option<u32> {
        self.seconds
    }
}

/// Transport of a `unicast` sendmsg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnicastTransport {
    Udp,
    Tcp,
}

/// `sendmsg [uuid]` with its headers (`call-command: execute|hangup|unicast…`) and optional body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMsg {
    uuid: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl SendMsg {
    fn base(call_command: &str) -> Self {
        SendMsg {
            uuid: None,
            headers: vec![("call-command".into(), call_command.into())],
            body: None,
        }
    }

    /// `call-command: execute` of `app` with `arg`. Long arguments go in the body.
    pub fn execute(app: &str, arg: &str) -> Result<Self, EslError> {
        word(app, "application name is empty or contains whitespace")?;
        no_line_break(arg, "application argument contains a line break")?;
        let mut m = SendMsg::base("execute");
        m.headers.push(("execute-app-name".into(), app.to_owned()));
        if arg.len() > MAX_HEADER_ARG {
            m.body = Some(arg.to_owned());
        } else if !arg.is_empty() {
            m.headers.push(("execute-app-arg".into(), arg.to_owned()));
        }
        Ok(m)
    }

    /// `call-command: hangup` with `hangup-cause: <cause>` (e.g. `NORMAL_CLEARING`).
    pub fn hangup(cause: &str) -> Result<Self, EslError> {
        if cause.is_empty()
            || !cause
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(EslError::InvalidCommand(
                "hangup cause must be an upper-case cause name",
            ));
        }
        let mut m = SendMsg::base("hangup");
        m.headers.push(("hangup-cause".into(), cause.to_owned()));
        Ok(m)
    }

    /// `call-command: unicast`: stream the channel's media to/from a socket.
    pub fn unicast(
        local: SocketAddr,
        remote: SocketAddr,
        transport: UnicastTransport,
        native: bool,
    ) -> Self {
        let mut m = SendMsg::base("unicast");
        m.headers.push(("local-ip".into(), local.ip().to_string()));
        m.headers
            .push(("local-port".into(), local.port().to_string()));
        m.headers
            .push(("remote-ip".into(), remote.ip().to_string()));
        m.headers
            .push(("remote-port".into(), remote.port().to_string()));
        let t = match transport {
            UnicastTransport::Udp => "udp",
            UnicastTransport::Tcp => "tcp",
        };
        m.headers.push(("transport".into(), t.into()));
        if native {
            m.headers.push(("flags".into(), "native".into()));
        }
        m
    }

    /// `call-command: nounicast`: stop streaming the channel's media.
    pub fn nounicast() -> Self {
        SendMsg::base("nounicast")
    }

    /// The channel it is addressed to (none on an outbound socket: its own).
    pub fn target(&self) -> Option<&str> {
        self.uuid.as_deref()
    }
    /// First header called `name`, case-insensitive (`call-command`, `execute-app-name`…).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body: an application argument too long for a header.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
    /// The application argument: `execute-app-arg`, else the body.
    pub fn app_arg(&self) -> &str {
        self.get("execute-app-arg")
            .or(self.body.as_deref())
            .unwrap_or("")
    }

    /// Addresses the message to a channel (required on inbound connections).
    pub fn uuid(mut self, uuid: &str) -> Result<Self, EslError> {
        word(uuid, "sendmsg uuid is empty or contains whitespace")?;
        self.uuid = Some(uuid.to_owned());
        Ok(self)
    }

    /// `event-lock: true`: the application runs to its end before the next queued message.
    pub fn event_lock(mut self) -> Self {
        self.headers.push(("event-lock".into(), "true".into()));
        self
    }

    /// `Event-UUID: <uuid>`: comes back as `Application-UUID` in CHANNEL_EXECUTE(_COMPLETE).
    pub fn event_uuid(mut self, uuid: Uuid) -> Self {
        self.headers.push(("Event-UUID".into(), uuid.to_string()));
        self
    }

    /// `loops: <n>`: run the application n times.
    pub fn loops(mut self, n: u32) -> Self {
        self.headers.push(("loops".into(), n.to_string()));
        self
    }

    /// Any other header, validated.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, EslError> {
        header_name(
            name,
            "sendmsg header name must be letters, digits, '-' or '_'",
        )?;
        no_line_break(value, "sendmsg header value contains a line break")?;
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }
}

/// Every command a client (us) sends, in wire order of the ESL documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Auth(Auth),
    Api(Api),
    BgApi(BgApi),
    Event(Subscribe),
    Filter(Filter),
    NixEvent(NixEvent),
    NoEvents,
    MyEvents(MyEvents),
    Linger(Linger),
    NoLinger,
    SendMsg(SendMsg),
    /// Outbound socket: ask for the channel data.
    Connect,
    Exit,
}

macro_rules! from_variant {
    ($t:ident, $v:ident) => {
        impl From<$t> for Command {
            fn from(c: $t) -> Self {
                Command::$v(c)
            }
        }
    };
}
from_variant!(Auth, Auth);
from_variant!(Api, Api);
from_variant!(BgApi, BgApi);
from_variant!(Subscribe, Event);
from_variant!(Filter, Filter);
from_variant!(NixEvent, NixEvent);
from_variant!(MyEvents, MyEvents);
from_variant!(Linger, Linger);
from_variant!(SendMsg, SendMsg);

impl TryFrom<&RawCommand> for Command {
    type Error = EslError;

    /// Reads a command as FreeSWITCH's mod_event_socket reads it (the server end: the simulator).
    /// The same checks as the constructors apply, so a command that could not have been built
    /// cannot be read either; a verb outside [`Command`] is `InvalidCommand`. One flat arm per
    /// command (long on purpose: the mirror of `encode_into`, arm for arm).
    fn try_from(raw: &RawCommand) -> Result<Self, EslError> {
        let args = raw.args();
        let words: Vec<&str> = args.split_whitespace().collect();
        Ok(match raw.verb().to_ascii_lowercase().as_str() {
            "auth" => Command::Auth(Auth::new(&Secret::new(args))?),
            "api" => Command::Api(Api::new(args)?),
            "bgapi" => {
                // FreeSWITCH makes a Job-UUID when the client sends none.
                let job = match raw.job_uuid() {
                    Some(j) => Uuid::parse_str(j.trim())
                        .map_err(|_| EslError::InvalidCommand("Job-UUID is not a UUID"))?,
                    None => Uuid::new_v4(),
                };
                Command::BgApi(BgApi::new(args, job)?)
            }
            "event" => {
                let (format, names) = match words.split_first() {
                    Some((f, rest)) => match EventFormat::parse(f) {
                        Some(format) => (format, rest),
                        None => (EventFormat::Plain, &words[..]),
                    },
                    None => (EventFormat::Plain, &words[..]),
                };
                Command::Event(Subscribe::new(format, names)?)
            }
            "filter" => Command::Filter(match words.as_slice() {
                ["delete", header] => Filter::delete(header, None)?,
                ["delete", header, value @ ..] => Filter::delete(header, Some(&value.join(" ")))?,
                [header, value @ ..] if !value.is_empty() => Filter::add(header, &value.join(" "))?,
                _ => {
                    return Err(EslError::InvalidCommand(
                        "filter needs a header and a value",
                    ))
                }
            }),
            "nixevent" => Command::NixEvent(NixEvent::new(&words)?),
            "noevents" => Command::NoEvents,
            "myevents" => Command::MyEvents(match words.as_slice() {
                [] => MyEvents::new(),
                [f] if EventFormat::parse(f).is_some() => {
                    MyEvents::with_format(EventFormat::parse(f).unwrap_or(EventFormat::Plain))
                }
                [uuid] => MyEvents::for_uuid(uuid, None)?,
                [uuid, f, ..] => MyEvents::for_uuid(uuid, EventFormat::parse(f))?,
            }),
            // `atoi`: leading digits, 0 when none; a negative number is forever, like none.
            "linger" => Command::Linger(Linger::new(match words.first() {
                None => None,
                Some(w) if w.starts_with('-') => None,
                Some(w) => Some(
                    w.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .unwrap_or(0),
                ),
            })),
            "nolinger" => Command::NoLinger,
            "sendmsg" => {
                let mut m = SendMsg {
                    uuid: None,
                    headers: Vec::new(),
                    body: None,
                };
                if let Some(uuid) = words.first() {
                    m = m.uuid(uuid)?;
                }
                for (k, v) in raw.headers() {
                    if k.eq_ignore_ascii_case("content-length")
                        || k.eq_ignore_ascii_case("content-type")
                    {
                        continue;
                    }
                    m = m.header(k, v)?;
                }
                if raw.body().is_some() {
                    m.body = Some(raw.body_str()?.to_owned());
                }
                Command::SendMsg(m)
            }
            "connect" => Command::Connect,
            "exit" => Command::Exit,
            _ => {
                return Err(EslError::InvalidCommand(
                    "not a command this client or server knows",
                ))
            }
        })
    }
}

impl Command {
    /// The command's first word (`auth`, `bgapi`…), safe to log (never the arguments).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Auth(_) => "auth",
            Command::Api(_) => "api",
            Command::BgApi(_) => "bgapi",
            Command::Event(_) => "event",
            Command::Filter(_) => "filter",
            Command::NixEvent(_) => "nixevent",
            Command::NoEvents => "noevents",
            Command::MyEvents(_) => "myevents",
            Command::Linger(_) => "linger",
            Command::NoLinger => "nolinger",
            Command::SendMsg(_) => "sendmsg",
            Command::Connect => "connect",
            Command::Exit => "exit",
        }
    }

    /// Appends the wire form (command line, headers, empty line, body) to `dst`. One flat arm per
    /// command (long on purpose: the wire form of every command in one table).
    pub fn encode_into(&self, dst: &mut BytesMut) {
        let mut s = String::with_capacity(64);
        match self {
            Command::Auth(a) => {
                s.push_str("auth ");
                s.push_str(a.password.expose());
                s.push_str("\n\n");
            }
            Command::Api(a) => {
                s.push_str("api ");
                s.push_str(&a.command);
                s.push_str("\n\n");
            }
            Command::BgApi(b) => {
                s.push_str("bgapi ");
                s.push_str(&b.command);
                s.push_str("\nJob-UUID: ");
                s.push_str(&b.job_uuid.to_string());
                s.push_str("\n\n");
            }
            Command::Event(e) => {
                s.push_str("event ");
                s.push_str(e.format.as_str());
                for n in &e.names {
                    s.push(' ');
                    s.push_str(n);
                }
                s.push_str("\n\n");
            }
            Command::Filter(f) => {
                s.push_str("filter ");
                if f.delete {
                    s.push_str("delete ");
                }
                s.push_str(&f.header);
                if let Some(v) = &f.value {
                    s.push(' ');
                    s.push_str(v);
                }
                s.push_str("\n\n");
            }
            Command::NixEvent(n) => {
                s.push_str("nixevent");
                for name in &n.names {
                    s.push(' ');
                    s.push_str(name);
                }
                s.push_str("\n\n");
            }
            Command::NoEvents => s.push_str("noevents\n\n"),
            Command::MyEvents(m) => {
                s.push_str("myevents");
                if let Some(u) = &m.uuid {
                    s.push(' ');
                    s.push_str(u);
                }
                if let Some(f) = m.format {
                    s.push(' ');
                    s.push_str(f.as_str());
                }
                s.push_str("\n\n");
            }
            Command::Linger(l) => {
                s.push_str("linger");
                if let Some(secs) = l.seconds {
                    s.push(' ');
                    s.push_str(&secs.to_string());
                }
                s.push_str("\n\n");
            }
            Command::NoLinger => s.push_str("nolinger\n\n"),
            Command::SendMsg(m) => {
                s.push_str("sendmsg");
                if let Some(u) = &m.uuid {
                    s.push(' ');
                    s.push_str(u);
                }
                s.push('\n');
                for (k, v) in &m.headers {
                    s.push_str(k);
                    s.push_str(": ");
                    s.push_str(v);
                    s.push('\n');
                }
                match &m.body {
                    Some(b) => {
                        s.push_str("content-type: text/plain\ncontent-length: ");
                        s.push_str(&b.len().to_string());
                        s.push_str("\n\n");
                        s.push_str(b);
                    }
                    None => s.push('\n'),
                }
            }
            Command::Connect => s.push_str("connect\n\n"),
            Command::Exit => s.push_str("exit\n\n"),
        }
        dst.put_slice(s.as_bytes());
    }

    /// The wire form as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode_into(&mut b);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(c: impl Into<Command>) -> String {
        String::from_utf8(c.into().to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn wire_forms_match_the_documentation() {
        assert_eq!(
            wire(Auth::new(&Secret::new("ClueCon")).unwrap()),
            "auth ClueCon\n\n"
        );
        assert_eq!(wire(Api::new("status").unwrap()), "api status\n\n");
        let job = Uuid::parse_str("7f4de4bc-17d7-11dd-b7a0-db4edd065621").unwrap();
        assert_eq!(
            wire(BgApi::new("originate sofia/gateway/gw/123 &park()", job).unwrap()),
            "bgapi originate sofia/gateway/gw/123 &park()\nJob-UUID: 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n\n"
        );
        assert_eq!(
            wire(
                Subscribe::new(EventFormat::Plain, &["CHANNEL_ANSWER", "BACKGROUND_JOB"]).unwrap()
            ),
            "event plain CHANNEL_ANSWER BACKGROUND_JOB\n\n"
        );
        assert_eq!(
            wire(Filter::add("Unique-ID", "abc").unwrap()),
            "filter Unique-ID abc\n\n"
        );
        assert_eq!(
            wire(Filter::delete("Unique-ID", None).unwrap()),
            "filter delete Unique-ID\n\n"
        );
        assert_eq!(wire(NixEvent::new(&["ALL"]).unwrap()), "nixevent ALL\n\n");
        assert_eq!(wire(Command::NoEvents), "noevents\n\n");
        assert_eq!(wire(MyEvents::new()), "myevents\n\n");
        assert_eq!(
            wire(MyEvents::for_uuid("u1", Some(EventFormat::Json)).unwrap()),
            "myevents u1 json\n\n"
        );
        assert_eq!(wire(Linger::new(None)), "linger\n\n");
        assert_eq!(wire(Linger::new(Some(10))), "linger 10\n\n");
        assert_eq!(wire(Command::NoLinger), "nolinger\n\n");
        assert_eq!(wire(Command::Connect), "connect\n\n");
        assert_eq!(wire(Command::Exit), "exit\n\n");
        let ev = Uuid::parse_str("0f6b3a2e-8f40-4b6a-9f1e-2b9f1c7a5d10").unwrap();
        assert_eq!(
            wire(SendMsg::execute("playback", "/tmp/test.wav").unwrap().uuid("u1").unwrap().event_lock().event_uuid(ev)),
            "sendmsg u1\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: /tmp/test.wav\nevent-lock: true\nEvent-UUID: 0f6b3a2e-8f40-4b6a-9f1e-2b9f1c7a5d10\n\n"
        );
        assert_eq!(
            wire(SendMsg::hangup("NORMAL_CLEARING").unwrap()),
            "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"
        );
        let long = "x".repeat(MAX_HEADER_ARG + 1);
        assert_eq!(
            wire(SendMsg::execute("playback", &long).unwrap()),
            format!("sendmsg\ncall-command: execute\nexecute-app-name: playback\ncontent-type: text/plain\ncontent-length: {}\n\n{long}", long.len())
        );
    }

    #[test]
    fn line_breaks_are_refused_everywhere() {
        let job = Uuid::nil();
        assert!(Auth::new(&Secret::new("a\nb")).is_err());
        assert!(Api::new("status\n\nexit").is_err());
        assert!(Api::new("").is_err());
        assert!(BgApi::new("originate x\rJob-UUID: y", job).is_err());
        assert!(Subscribe::new(EventFormat::Plain, &["A\nB"]).is_err());
        assert!(Subscribe::new::<&str>(EventFormat::Plain, &[]).is_err());
        assert!(Filter::add("A", "b\nc").is_err());
        assert!(SendMsg::execute("playback", "a\nexecute-app-name: system").is_err());
        assert!(SendMsg::execute("play back", "a").is_err());
        assert!(SendMsg::hangup("NORMAL\nX").is_err());
        assert!(SendMsg::hangup("").is_err());
        assert!(SendMsg::execute("set", "a=b").unwrap().uuid("u 1").is_err());
        assert!(SendMsg::execute("set", "a=b")
            .unwrap()
            .header("x:y", "1")
            .is_err());
        assert!(SendMsg::execute("set", "a=b")
            .unwrap()
            .header("x", "1\r")
            .is_err());
        let err = Auth::new(&Secret::new("secret\n")).unwrap_err().to_string();
        assert!(
            !err.contains("secret\n") && !err.contains("secret"),
            "{err}"
        );
    }
}
