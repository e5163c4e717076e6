//! Parsing of the `originate` API's arguments, the way FreeSWITCH 1.10 reads them:
//!
//! ```text
//! originate <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]
//! ```
//!
//! The call URL may start with a `{k=v,k=v}` block (channel variables; a value may be quoted with
//! `'` to hold a comma or a space) and `[k=v]` blocks; the rest is `<endpoint>/<address>`. Only the
//! endpoints a dialer uses are understood (`sofia`, `loopback`, `user`, and FreeSWITCH's `error`
//! endpoint); anything else fails like FreeSWITCH with `CHAN_NOT_IMPLEMENTED`.

/// FreeSWITCH's usage string of `originate` (mod_commands), returned as `-USAGE: …`.
pub const ORIGINATE_SYNTAX: &str = "<call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]";

/// FreeSWITCH's default originate timeout when neither `originate_timeout` nor the timeout
/// argument is given (seconds).
pub const DEFAULT_ORIGINATE_TIMEOUT_SECS: u64 = 60;

/// Where the answered channel goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `<exten> [<dialplan>] [<context>]`: the channel is transferred into the dialplan.
    Extension {
        exten: String,
        dialplan: String,
        context: String,
    },
    /// `&app(args)`: the channel runs one application.
    App { name: String, args: String },
}

/// The endpoint module of the dial string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Sofia,
    Loopback,
    User,
    /// `error/<cause>`: fails at once with that cause (FreeSWITCH's mod_dptools error endpoint).
    Error(String),
}

/// A parsed `originate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginateRequest {
    /// Variables of the `{}` and `[]` blocks, in the order given.
    pub vars: Vec<(String, String)>,
    pub endpoint: Endpoint,
    /// The dial string without its variable blocks (e.g. `sofia/gateway/gw_pstn/34600111222`).
    pub dial_string: String,
    /// The number (user part) the endpoint would dial.
    pub destination: String,
    pub target: Target,
    pub cid_name: Option<String>,
    pub cid_num: Option<String>,
    pub timeout_arg: Option<u64>,
}

/// Why an `originate` cannot even be attempted. No channel exists in any of these cases.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// Wrong number of arguments: FreeSWITCH answers with its usage string.
    #[error("-USAGE: {ORIGINATE_SYNTAX}")]
    Usage,
    /// Unbalanced `{`/`[` block or unterminated quote.
    #[error("-ERR DESTINATION_OUT_OF_ORDER")]
    Parse,
    /// An endpoint module this simulator (and a default FreeSWITCH) does not have.
    #[error("-ERR CHAN_NOT_IMPLEMENTED")]
    ChanNotImplemented,
    /// `sofia/gateway/gw/` with nothing after it ("Invalid Empty Destination").
    #[error("-ERR DESTINATION_OUT_OF_ORDER")]
    EmptyDestination,
    /// `,` or `|` separated legs: FreeSWITCH would dial several legs; the simulator does not.
    #[error("-ERR CHAN_NOT_IMPLEMENTED")]
    MultiLeg,
}

impl OriginateError {
    /// The API reply body, as FreeSWITCH writes it (with the trailing newline).
    pub fn reply(&self) -> String {
        format!("{self}\n")
    }
}

impl OriginateRequest {
    /// The gateway of a `sofia/gateway/<name>/…` dial string.
    pub fn gateway(&self) -> Option<&str> {
        self.dial_string
            .strip_prefix("sofia/gateway/")
            .and_then(|rest| rest.split('/').next())
    }

    /// Parses the argument string of `originate` (everything after the word `originate`).
    pub fn parse(args: &str) -> Result<OriginateRequest, OriginateError> {
        let argv = split_args(args)?;
        if argv.len() < 2 || argv.len() > 7 {
            return Err(OriginateError::Usage);
        }
        // argv has 2..=7 items (checked just above), so [0] and [1] exist.
        let (vars, dial_string) = split_vars(&argv[0])?;
        if dial_string.contains(',') || dial_string.contains('|') || dial_string.contains(":_:") {
            return Err(OriginateError::MultiLeg);
        }
        let (endpoint, destination) = parse_dial_string(&dial_string)?;
        let target = parse_target(&argv[1], argv.get(2), argv.get(3));
        let opt = |i: usize| {
            argv.get(i)
                .filter(|s| !s.is_empty() && *s != "undef")
                .cloned()
        };
        Ok(OriginateRequest {
            vars,
            endpoint,
            dial_string,
            destination,
            target,
            cid_name: opt(4),
            cid_num: opt(5),
            timeout_arg: opt(6).and_then(|t| t.parse().ok()),
        })
    }

    /// The value of a `{}` variable (last one wins, as in FreeSWITCH).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `originate_timeout`, else the timeout argument, else FreeSWITCH's 60 s.
    pub fn timeout_secs(&self) -> u64 {
        self.var("originate_timeout")
            .or_else(|| self.var("leg_timeout"))
            .and_then(|v| v.trim().parse().ok())
            .or(self.timeout_arg)
            // 0 means "no timeout given" in FreeSWITCH, not "fail at once".
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_ORIGINATE_TIMEOUT_SECS)
    }

    /// The caller-ID number presented: `origination_caller_id_number`, else the argument.
    pub fn caller_id_number(&self) -> String {
        self.var("origination_caller_id_number")
            .map(str::to_owned)
            .or_else(|| self.cid_num.clone())
            .unwrap_or_else(|| "0000000000".to_owned())
    }

    /// The caller-ID name presented: `origination_caller_id_name`, else the argument.
    pub fn caller_id_name(&self) -> String {
        self.var("origination_caller_id_name")
            .map(str::to_owned)
            .or_else(|| self.cid_name.clone())
            .unwrap_or_else(|| "FreeSWITCH".to_owned())
    }

    /// Whether the destination looks like a number a carrier would route (`+` then digits).
    /// Anything else is answered by the network with INVALID_NUMBER_FORMAT (SIP 484).
    pub fn destination_is_well_formed(&self) -> bool {
        let digits = self
            .destination
            .strip_prefix('+')
            .unwrap_or(&self.destination);
        !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

/// Splits on blanks, honouring `'…'` quotes (removed) and `\` escapes inside them, and keeping
/// `{…}` / `[…]` blocks verbatim (their quotes and escapes are the variable parser's business).
fn split_args(input: &str) -> Result<Vec<String>, OriginateError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut depth = 0usize; // inside {…} or […]
    let mut chars = input.trim().chars();
    while let Some(c) = chars.next() {
        if depth > 0 {
            cur.push(c);
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        cur.push(next);
                    }
                }
                '\'' => in_quote = !in_quote,
                '{' | '[' if !in_quote => depth += 1,
                '}' | ']' if !in_quote => depth -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '\\' if in_quote => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            '\'' => in_quote = !in_quote,
            '{' | '[' if !in_quote => {
                depth = 1;
                cur.push(c);
            }
            c if c.is_whitespace() && !in_quote => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if in_quote || depth > 0 {
        return Err(OriginateError::Parse);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Takes the leading `{…}` / `[…]` blocks off a call URL and parses their `k=v` pairs.
fn split_vars(url: &str) -> Result<(Vec<(String, String)>, String), OriginateError> {
    let mut vars = Vec::new();
    let mut rest = url;
    loop {
        let close = match rest.chars().next() {
            Some('{') => '}',
            Some('[') => ']',
            _ => break,
        };
        let end = find_block_end(rest, close).ok_or(OriginateError::Parse)?;
        // `rest[0]` is the ASCII opening bracket and `end` the index of the ASCII closing one,
        // so both slice bounds are on char boundaries.
        parse_var_list(&rest[1..end], &mut vars)?;
        rest = &rest[end + 1..];
    }
    Ok((vars, rest.to_owned()))
}

/// Index of the bracket closing the block that starts at byte 0, skipping quoted and escaped
/// characters.
fn find_block_end(s: &str, close: char) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '\'' => in_quote = !in_quote,
            c if c == close && !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// `k=v,k='v,with,commas',k=v\,w` → pairs; quotes and escaping backslashes removed from values.
fn parse_var_list(list: &str, vars: &mut Vec<(String, String)>) -> Result<(), OriginateError> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            '\'' => in_quote = !in_quote,
            ',' if !in_quote => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if in_quote {
        return Err(OriginateError::Parse);
    }
    items.push(cur);
    for item in items.iter().filter(|i| !i.trim().is_empty()) {
        let (k, v) = item.split_once('=').ok_or(OriginateError::Parse)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(OriginateError::Parse);
        }
        vars.push((k.to_owned(), v.to_owned()));
    }
    Ok(())
}

/// `sofia/gateway/gw/NUM`, `sofia/profile/NUM@host`, `loopback/NUM[/ctx[/dp]]`, `user/NUM[@dom]`,
/// `error/CAUSE` → endpoint and the number dialed.
fn parse_dial_string(dial: &str) -> Result<(Endpoint, String), OriginateError> {
    let (module, rest) = dial
        .split_once('/')
        .ok_or(OriginateError::ChanNotImplemented)?;
    let user_part = |addr: &str| -> String {
        let addr = addr
            .strip_prefix("sips:")
            .or_else(|| addr.strip_prefix("sip:"))
            .unwrap_or(addr);
        let addr = addr.split(';').next().unwrap_or_default();
        addr.split('@').next().unwrap_or_default().to_owned()
    };
    let (endpoint, destination) = match module {
        "sofia" => {
            let addr = match rest.split_once('/') {
                Some(("gateway", gw_and_dest)) => {
                    let (_gw, dest) = gw_and_dest
                        .split_once('/')
                        .ok_or(OriginateError::EmptyDestination)?;
                    dest
                }
                Some((_profile, dest)) => dest,
                None => return Err(OriginateError::EmptyDestination),
            };
            (Endpoint::Sofia, user_part(addr))
        }
        "loopback" => (
            Endpoint::Loopback,
            rest.split('/').next().unwrap_or_default().to_owned(),
        ),
        "user" => (Endpoint::User, user_part(rest)),
        "error" => (
            Endpoint::Error(rest.trim().to_ascii_uppercase()),
            String::new(),
        ),
        _ => return Err(OriginateError::ChanNotImplemented),
    };
    if destination.is_empty() && !matches!(endpoint, Endpoint::Error(_)) {
        return Err(OriginateError::EmptyDestination);
    }
    Ok((endpoint, destination))
}

fn parse_target(exten: &str, dialplan: Option<&String>, context: Option<&String>) -> Target {
    if let Some(app) = exten.strip_prefix('&') {
        let (name, args) = match app.split_once('(') {
            Some((name, args)) => (name, args.strip_suffix(')').unwrap_or(args)),
            None => (app, ""),
        };
        return Target::App {
            name: name.to_owned(),
            args: args.to_owned(),
        };
    }
    let pick = |v: Option<&String>, default: &str| {
        v.filter(|s| !s.is_empty() && *s != "undef")
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    Target::Extension {
        exten: exten.to_owned(),
        dialplan: pick(dialplan, "XML"),
        context: pick(context, "default"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialer_originate_parses() {
        let req = OriginateRequest::parse(
            "{origination_uuid=0b6c8d0e-1111-4222-8333-944445555666,originate_timeout=25,\
             ignore_early_media=true,origination_caller_id_number=5551000,\
             discador_campana=PRUEBA,discador_numero=17,discador_intento=1}\
             sofia/gateway/gw_pstn/34600111226 discador XML discador",
        )
        .expect("valid originate");
        assert_eq!(req.destination, "34600111226");
        assert_eq!(req.endpoint, Endpoint::Sofia);
        assert_eq!(req.dial_string, "sofia/gateway/gw_pstn/34600111226");
        assert_eq!(
            req.var("origination_uuid"),
            Some("0b6c8d0e-1111-4222-8333-944445555666")
        );
        assert_eq!(req.var("discador_campana"), Some("PRUEBA"));
        assert_eq!(req.timeout_secs(), 25);
        assert_eq!(req.caller_id_number(), "5551000");
        assert_eq!(
            req.target,
            Target::Extension {
                exten: "discador".into(),
                dialplan: "XML".into(),
                context: "discador".into()
            }
        );
        assert!(req.destination_is_well_formed());
    }

    #[test]
    fn quoted_values_keep_commas_and_spaces() {
        let req = OriginateRequest::parse(
            "{origination_caller_id_name='Centro, Llamadas',x='a b'}loopback/600123456/default '&socket(127.0.0.1:8084 async full)'",
        )
        .expect("valid originate");
        assert_eq!(
            req.var("origination_caller_id_name"),
            Some("Centro, Llamadas")
        );
        assert_eq!(req.var("x"), Some("a b"));
        assert_eq!(req.endpoint, Endpoint::Loopback);
        assert_eq!(req.destination, "600123456");
        assert_eq!(
            req.target,
            Target::App {
                name: "socket".into(),
                args: "127.0.0.1:8084 async full".into()
            }
        );
        assert_eq!(req.timeout_secs(), DEFAULT_ORIGINATE_TIMEOUT_SECS);
    }

    #[test]
    fn escaped_commas_and_quotes_stay_in_values() {
        let req =
            OriginateRequest::parse(r"{a=x\,y,b='it\'s',c=z}sofia/gateway/gw/600111226 &park()")
                .expect("valid originate");
        assert_eq!(req.var("a"), Some("x,y"));
        assert_eq!(req.var("b"), Some("it's"));
        assert_eq!(req.var("c"), Some("z"));
    }

    #[test]
    fn malformed_originates_fail_like_freeswitch() {
        assert_eq!(OriginateRequest::parse(""), Err(OriginateError::Usage));
        assert_eq!(
            OriginateRequest::parse("sofia/gateway/gw/1"),
            Err(OriginateError::Usage)
        );
        assert_eq!(
            OriginateRequest::parse("{a=b sofia/gateway/gw/1 park"),
            Err(OriginateError::Parse)
        );
        assert_eq!(
            OriginateRequest::parse("foo/bar/1 park"),
            Err(OriginateError::ChanNotImplemented)
        );
        assert_eq!(
            OriginateRequest::parse("sofia/gateway/gw/ park"),
            Err(OriginateError::EmptyDestination)
        );
        assert_eq!(
            OriginateRequest::parse("sofia/gateway/gw/1,sofia/gateway/gw/2 park"),
            Err(OriginateError::MultiLeg)
        );
        assert_eq!(
            OriginateError::Usage.reply(),
            format!("-USAGE: {ORIGINATE_SYNTAX}\n")
        );
        let bad = OriginateRequest::parse("sofia/gateway/gw/12ab park").expect("parses");
        assert!(!bad.destination_is_well_formed());
    }

    #[test]
    fn parser_never_panics_on_odd_input() {
        for input in [
            "{",
            "}",
            "[",
            "{'}",
            "{=}a/b c",
            "'",
            "a/b\u{e9}/\u{1f600} &",
            "{a=\u{e9}}sofia/x/\u{e9} x",
        ] {
            let _ = OriginateRequest::parse(input);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_fails_cleanly(input in ".{0,200}") {
            let _ = OriginateRequest::parse(&input);
        }

        #[test]
        fn bracketed_noise_never_panics(input in "[{}\\[\\]',= a-z/&()0-9]{0,80}") {
            if let Ok(req) = OriginateRequest::parse(&input) {
                let _ = (req.timeout_secs(), req.caller_id_number(), req.destination_is_well_formed());
            }
        }
    }
}
