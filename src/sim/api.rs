//! The API commands the simulator answers (`api …` and `bgapi …`), with FreeSWITCH's output
//! formats: `status`, `version`, `uptime`, `show channels [as json]`, `show calls [as json]`,
//! `uuid_exists`, `uuid_kill`, `hupall`, `module_exists`, `global_getvar` (`core_uuid`,
//! `hostname`), `originate`. Anything else is
//! `-ERR <cmd> Command not found!`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chrono::{Local, TimeZone};

use super::call::start_call;
use super::channel::{hangup_cause_arg, Channel};
use super::limits::{Refusal, OVER_LIMIT_CAUSE};
use super::originate::OriginateRequest;
use super::originate_log::OriginateRecord;
use super::state::Shared;
use crate::domain::mask;

/// FreeSWITCH version the simulator claims to be.
pub const VERSION: &str = "1.10.12-release";

/// The API as the call modules reach it (see [`super::state::ApiRunner`]).
pub const RUNNER: super::state::ApiRunner = super::state::ApiRunner {
    execute: |shared, line| Box::pin(async move { execute(&shared, &line).await }),
    start_bgapi,
};

/// Runs one API command and returns its output (the `api/response` body).
pub async fn execute(shared: &Arc<Shared>, line: &str) -> String {
    let line = line.trim();
    let (cmd, args) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(c, a)| (c, a.trim()));
    match cmd.to_ascii_lowercase().as_str() {
        "status" => status(shared),
        "version" => format!("FreeSWITCH Version {VERSION}~64bit (-release 64bit)\n"),
        "uptime" => format!("{}\n", shared.started.elapsed().as_secs()),
        "show" => show(shared, args),
        "uuid_exists" => {
            let uuid = args.split_whitespace().next().unwrap_or("");
            if shared.call(uuid).is_some() {
                "true"
            } else {
                "false"
            }
            .to_owned()
        }
        "uuid_kill" => {
            let mut it = args.split_whitespace();
            match it.next() {
                None => "-USAGE: <uuid> [cause]\n".to_owned(),
                Some(uuid) => {
                    let cause = it
                        .next()
                        .map_or_else(|| "MANAGER_REQUEST".to_owned(), hangup_cause_arg);
                    if shared.kill(uuid, &cause) {
                        "+OK\n".to_owned()
                    } else {
                        "-ERR No such channel!\n".to_owned()
                    }
                }
            }
        }
        "hupall" => hupall(shared, args),
        "module_exists" => {
            let exists = shared
                .cfg
                .has_module(args.split_whitespace().next().unwrap_or(""));
            if exists { "true" } else { "false" }.to_owned()
        }
        "global_getvar" => match args.trim() {
            "core_uuid" => shared.core.core_uuid.clone(),
            "hostname" => shared.cfg.hostname.clone(),
            "sounds_dir" => shared.cfg.sounds_dir.display().to_string(),
            _ => String::new(),
        },
        // The real file system, as FreeSWITCH answers it.
        "file_exists" => {
            let path = std::path::Path::new(args.trim());
            (path.is_absolute() && path.is_file()).to_string()
        }
        "sofia" => sofia(shared, args),
        "xml_locate" => xml_locate(args),
        "originate" => originate(shared, args, None).await,
        _ => format!("-ERR {cmd} Command not found!\n"),
    }
}

/// Starts a `bgapi` job: the output is delivered later as a BACKGROUND_JOB event. Returns the
/// job's UUID (the client's `Job-UUID` header when given, as FreeSWITCH does).
pub fn start_bgapi(shared: &Arc<Shared>, line: &str, job_uuid: Option<&str>) -> String {
    let job = job_uuid
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let line = line.trim().to_owned();
    let (cmd, arg) = line
        .split_once(char::is_whitespace)
        .map_or((line.clone(), String::new()), |(c, a)| {
            (c.to_owned(), a.trim().to_owned())
        });
    let shared2 = Arc::clone(shared);
    let job2 = job.clone();
    shared.spawn(async move {
        let body = if cmd.eq_ignore_ascii_case("originate") {
            originate(&shared2, &arg, Some(&job2)).await
        } else {
            execute(&shared2, &line).await
        };
        let mut ev = shared2
            .core
            .event("BACKGROUND_JOB", ("mod_event_socket.c", "api_exec"));
        ev.push("Job-UUID", &job2);
        ev.push("Job-Command", &cmd);
        if !arg.is_empty() {
            ev.push("Job-Command-Arg", &arg);
        }
        ev.set_body(Some(body));
        shared2.bus.fire(ev);
    });
    job
}

/// `originate`: log it, parse it, pass the session limits, then wait for answer or failure.
async fn originate(shared: &Arc<Shared>, args: &str, job_uuid: Option<&str>) -> String {
    let parsed = OriginateRequest::parse(args);
    let (uuid, destination, vars) = match &parsed {
        Ok(req) => (
            req.var("origination_uuid").unwrap_or_default().to_owned(),
            req.destination.clone(),
            req.vars.clone(),
        ),
        Err(_) => (String::new(), String::new(), Vec::new()),
    };
    shared.log.push(OriginateRecord {
        at: Instant::now(),
        wall: SystemTime::now(),
        uuid: uuid.clone(),
        destination: destination.clone(),
        vars,
        job_uuid: job_uuid.map(str::to_owned),
    });
    let req = match parsed {
        Ok(req) => req,
        Err(e) => {
            tracing::info!(error = %e, "originate refused: malformed");
            return e.reply();
        }
    };
    if req.vars.iter().any(|(k, _)| !valid_name(k)) {
        return "-ERR DESTINATION_OUT_OF_ORDER\n".to_owned();
    }
    let uuid = if uuid.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        uuid
    };
    // "Duplicate UUID!": switch_core_session_request_uuid refuses a UUID already in use.
    if shared.call(&uuid).is_some() || !valid_name(&uuid) {
        tracing::warn!(uuid = %uuid, "originate refused: duplicate or invalid origination_uuid");
        return format!("-ERR {OVER_LIMIT_CAUSE}\n");
    }
    let permit = match shared.gate.try_acquire() {
        Ok(p) => p,
        Err(refusal) => {
            let which = match refusal {
                Refusal::Throttle => "sessions-per-second",
                Refusal::SessionLimit => "max-sessions",
            };
            tracing::warn!(uuid = %uuid, telefono = %mask(&destination), limit = which, "originate refused by session limit");
            return format!("-ERR {OVER_LIMIT_CAUSE}\n");
        }
    };
    // sofia creates the session (a sessions-per-second token is spent), then finds no such
    // gateway: `-ERR INVALID_GATEWAY` and no channel event at all.
    if let Some(gw) = req.gateway().filter(|gw| !shared.cfg.has_gateway(gw)) {
        tracing::warn!(gateway = gw, "originate refused: no such gateway");
        drop(permit);
        return "-ERR INVALID_GATEWAY\n".to_owned();
    }
    let rx = start_call(shared, req, uuid, permit);
    rx.await
        .unwrap_or_else(|_| "-ERR SYSTEM_SHUTDOWN\n".to_owned())
}

/// Names usable as a UUID or variable name in an event line.
/// `sofia status gateway <name>`, the one `sofia` command the dialer uses.
fn sofia(shared: &Shared, args: &str) -> String {
    match args.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["status", "gateway", name] if shared.cfg.has_gateway(name) => format!(
            "{sep}\nName    \t{name}\nProfile \texternal\nState   \tNOREG\nStatus  \tUP\n{sep}\n",
            sep = "=".repeat(97)
        ),
        ["status", "gateway", _] => "Invalid Gateway!\n".to_owned(),
        _ => "-USAGE: sofia status gateway <name>\n".to_owned(),
    }
}

/// `xml_locate dialplan context name discador`: the context the simulator routes, with the shipped
/// extensions (`discador`, `humano`, `maquina`), as FreeSWITCH prints it.
fn xml_locate(args: &str) -> String {
    match args.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["dialplan", "context", "name", "discador"] => {
            let ext = |name: &str| {
                format!(
                    "  <extension name=\"{name}\">\n    <condition field=\"destination_number\" \
                     expression=\"^{name}$\"></condition>\n  </extension>\n"
                )
            };
            format!(
                "<context name=\"discador\">\n{}{}{}</context>\n",
                ext("discador"),
                ext("humano"),
                ext("maquina")
            )
        }
        _ => "can't find anything\n".to_owned(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// FreeSWITCH's uptime phrase: `0 years, 0 days, 1 hours, 2 minutes, 3 seconds, 4 milliseconds,
/// 5 microseconds`.
fn uptime_phrase(up: std::time::Duration) -> String {
    let total = up.as_secs();
    let (days, rem) = (total / 86_400, total % 86_400);
    format!(
        "0 years, {days} days, {} hours, {} minutes, {} seconds, {} milliseconds, {} microseconds",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60,
        up.subsec_millis(),
        up.subsec_micros() % 1_000,
    )
}

/// The HEARTBEAT event FreeSWITCH's core fires every 20 seconds (`send_heartbeat`).
pub fn heartbeat_event(shared: &Shared) -> crate::esl::Event {
    let up = shared.gate.uptime();
    let stats = shared.gate.stats();
    let mut ev = shared
        .core
        .event("HEARTBEAT", ("switch_core.c", "send_heartbeat"));
    ev.push("Event-Info", "System Ready");
    ev.push("Up-Time", uptime_phrase(up));
    ev.push("FreeSWITCH-Version", VERSION);
    ev.push("Uptime-msec", up.as_millis().to_string());
    ev.push("Session-Count", stats.live.to_string());
    ev.push("Max-Sessions", stats.max_sessions.to_string());
    ev.push("Session-Per-Sec", stats.sps_max.to_string());
    ev.push("Session-Per-Sec-Last", stats.sps_last.to_string());
    ev.push("Session-Per-Sec-Max", stats.sps_last.to_string());
    ev.push("Session-Per-Sec-FiveMin", stats.sps_last.to_string());
    ev.push("Session-Since-Startup", stats.since_startup.to_string());
    ev.push("Session-Peak-Max", stats.peak.to_string());
    ev.push("Session-Peak-FiveMin", stats.peak.to_string());
    ev.push("Idle-CPU", "100.000000");
    ev
}

fn status(shared: &Shared) -> String {
    let up = shared.gate.uptime();
    let stats = shared.gate.stats();
    format!(
        "UP {}\n\
         FreeSWITCH ({VERSION} 64bit) is ready\n\
         {} session(s) since startup\n\
         {} session(s) - peak {}, last 5min {} \n\
         {} session(s) per Sec out of max {}, peak {}, last 5min {} \n\
         {} session(s) max\n\
         min idle cpu 0.00/100.00\n\
         Current Stack Size/Max 240K/8192K\n",
        uptime_phrase(up),
        stats.since_startup,
        stats.live,
        stats.peak,
        stats.peak,
        stats.sps_last,
        stats.sps_max,
        stats.sps_last,
        stats.sps_last,
        stats.max_sessions,
    )
}

fn hupall(shared: &Shared, args: &str) -> String {
    let mut it = args.split_whitespace();
    let cause = it
        .next()
        .map_or_else(|| "MANAGER_REQUEST".to_owned(), hangup_cause_arg);
    let filter = match (it.next(), it.next()) {
        (Some(var), Some(val)) => Some((var.to_owned(), val.to_owned())),
        _ => None,
    };
    for ch in shared.channels() {
        let matches = filter
            .as_ref()
            .is_none_or(|(var, val)| ch.var(var) == Some(val.as_str()));
        if matches {
            shared.kill(&ch.uuid, &cause);
        }
    }
    match filter {
        Some((var, val)) => {
            format!("+OK hangup all channels matching [{var}]=[{val}] with cause: {cause}\n")
        }
        None => format!("+OK hangup all channels with cause: {cause}\n"),
    }
}

/// Columns of `show channels`, in FreeSWITCH's order.
const CHANNEL_COLUMNS: &[&str] = &[
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "application",
    "application_data",
    "dialplan",
    "context",
    "read_codec",
    "read_rate",
    "read_bit_rate",
    "write_codec",
    "write_rate",
    "write_bit_rate",
    "secure",
    "hostname",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "sent_callee_name",
    "sent_callee_num",
    "initial_cid_name",
    "initial_cid_num",
    "initial_ip_addr",
    "initial_dest",
    "initial_dialplan",
    "initial_context",
];

fn channel_row(shared: &Shared, ch: &Channel) -> Vec<String> {
    let created = Local
        .timestamp_micros(ch.created_us)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let (app, app_data) = ch.application.clone().unwrap_or_default();
    let codec = if ch.answered { "PCMU" } else { "" };
    let rate = if ch.answered { "8000" } else { "" };
    let bits = if ch.answered { "64000" } else { "" };
    vec![
        ch.uuid.clone(),
        "outbound".into(),
        created,
        (ch.created_us / 1_000_000).to_string(),
        ch.name.clone(),
        ch.state.name().into(),
        ch.cid_name.clone(),
        ch.cid_number.clone(),
        "127.0.0.1".into(),
        ch.destination.clone(),
        app,
        app_data,
        ch.dialplan.clone(),
        ch.context.clone(),
        codec.into(),
        rate.into(),
        bits.into(),
        codec.into(),
        rate.into(),
        bits.into(),
        String::new(),
        shared.core.hostname.clone(),
        String::new(),
        String::new(),
        String::new(),
        ch.show_callstate().into(),
        "Outbound Call".into(),
        ch.dialed.clone(),
        String::new(),
        ch.uuid.clone(),
        String::new(),
        String::new(),
        ch.cid_name.clone(),
        ch.cid_number.clone(),
        "127.0.0.1".into(),
        ch.dialed.clone(),
        "XML".into(),
        "default".into(),
    ]
}

fn show(shared: &Shared, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let (what, json) = match words.as_slice() {
        [w] => (*w, false),
        [w, "as", "json"] => (*w, true),
        _ => return "-USAGE: show channels|calls [as json]\n".to_owned(),
    };
    if !matches!(what, "channels" | "calls") {
        return format!("-ERR Cannot find {what}!\n");
    }
    let rows: Vec<Vec<String>> = shared
        .channels()
        .iter()
        .map(|ch| channel_row(shared, ch))
        .collect();
    if json {
        if rows.is_empty() {
            return "{\"row_count\":0}\n".to_owned();
        }
        // Built by hand to keep FreeSWITCH's column order (serde_json's map would sort keys).
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let objects: Vec<String> = rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = CHANNEL_COLUMNS
                    .iter()
                    .zip(row)
                    .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        return format!(
            "{{\"row_count\":{},\"rows\":[{}]}}\n",
            rows.len(),
            objects.join(",")
        );
    }
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&CHANNEL_COLUMNS.join(","));
        out.push('\n');
        for row in &rows {
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out.push_str(&format!("\n{} total.\n", rows.len()));
    out
}
