//! One simulated channel: its caller profile, state, timestamps and variables, and the channel
//! part of every event about it, in the header order of FreeSWITCH's
//! `switch_channel_event_set_data` (basic data, `Caller-*` profile, `variable_*`).

use chrono::{Local, TimeZone, Utc};

use super::bus::Core;
use super::originate::{Endpoint, OriginateRequest};
use crate::esl::Event;

/// The SIP profile the simulated gateways belong to (FreeSWITCH's stock `external`).
const GATEWAY_PROFILE: &str = "external";

/// FreeSWITCH channel states the simulator goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    Init,
    Routing,
    Execute,
    Hangup,
    Reporting,
    Destroy,
}

impl ChannelState {
    pub fn name(self) -> &'static str {
        match self {
            ChannelState::Init => "CS_INIT",
            ChannelState::Routing => "CS_ROUTING",
            ChannelState::Execute => "CS_EXECUTE",
            ChannelState::Hangup => "CS_HANGUP",
            ChannelState::Reporting => "CS_REPORTING",
            ChannelState::Destroy => "CS_DESTROY",
        }
    }

    fn number(self) -> u8 {
        match self {
            ChannelState::Init => 2,
            ChannelState::Routing => 3,
            ChannelState::Execute => 4,
            ChannelState::Hangup => 10,
            ChannelState::Reporting => 11,
            ChannelState::Destroy => 12,
        }
    }
}

/// The Q.850 value FreeSWITCH puts in `variable_hangup_cause_q850`.
pub fn q850(cause: &str) -> u32 {
    match cause {
        "UNALLOCATED_NUMBER" => 1,
        "NO_ROUTE_DESTINATION" => 3,
        "NORMAL_CLEARING" => 16,
        "USER_BUSY" => 17,
        "NO_USER_RESPONSE" => 18,
        "NO_ANSWER" => 19,
        "CALL_REJECTED" => 21,
        "DESTINATION_OUT_OF_ORDER" => 27,
        "INVALID_NUMBER_FORMAT" => 28,
        "NORMAL_UNSPECIFIED" => 31,
        "NORMAL_CIRCUIT_CONGESTION" => 34,
        "NETWORK_OUT_OF_ORDER" => 38,
        "NORMAL_TEMPORARY_FAILURE" => 41,
        "SWITCH_CONGESTION" => 42,
        "CHAN_NOT_IMPLEMENTED" => 66,
        "RECOVERY_ON_TIMER_EXPIRE" => 102,
        "ORIGINATOR_CANCEL" => 487,
        "MANAGER_REQUEST" => 503,
        "ALLOTTED_TIMEOUT" => 602,
        _ => 0,
    }
}

/// Whether `cause` is a hangup cause name FreeSWITCH knows (those accepted from clients).
/// The cause argument of `hangup` / `uuid_kill`: a known cause name, else NORMAL_CLEARING.
pub fn hangup_cause_arg(arg: &str) -> String {
    let cause = arg.trim().to_ascii_uppercase();
    if is_known_cause(&cause) {
        cause
    } else {
        "NORMAL_CLEARING".to_owned()
    }
}

pub fn is_known_cause(cause: &str) -> bool {
    q850(cause) != 0 || matches!(cause, "SYSTEM_SHUTDOWN" | "GATEWAY_DOWN" | "LOSE_RACE")
}

/// A live (or just finished) channel.
#[derive(Clone, Debug)]
pub struct Channel {
    pub uuid: String,
    /// The number dialed (stays the same after transfers; the profile's destination changes).
    pub dialed: String,
    pub name: String,
    pub state: ChannelState,
    pub answered: bool,
    pub ringing: bool,
    pub hangup_cause: Option<String>,
    pub cid_name: String,
    pub cid_number: String,
    /// Caller profile's destination: the dialed number, then each transfer's extension.
    pub destination: String,
    pub context: String,
    pub dialplan: String,
    /// `Caller-Source`: the endpoint module (`mod_sofia`, `mod_loopback`, …).
    pub source: &'static str,
    pub profile_index: u32,
    pub rdnis: Option<String>,
    /// `Caller-Transfer-Source` after a transfer: `<epoch>:<uuid>:bl_xfer:<exten>/<context>/<dialplan>`.
    pub transfer_source: Option<String>,
    pub created_us: i64,
    pub progress_us: i64,
    pub answered_us: i64,
    pub hangup_us: i64,
    pub transfer_us: i64,
    /// Channel variables, in the order they were first set.
    pub vars: Vec<(String, String)>,
    /// The application running now (`show channels`'s application / application_data).
    pub application: Option<(String, String)>,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

impl Channel {
    /// The channel an originate creates, with FreeSWITCH's basic variables then the `{}` ones.
    pub fn from_originate(uuid: &str, req: &OriginateRequest) -> Channel {
        // A gateway call is named after the gateway's SIP profile (`sofia/external/<number>`),
        // as in FreeSWITCH captures; the simulator's gateways all live on profile `external`.
        let name = match &req.endpoint {
            Endpoint::Sofia => {
                let mut parts = req.dial_string.splitn(4, '/');
                let _sofia = parts.next();
                match parts.next() {
                    Some("gateway") => format!("sofia/{GATEWAY_PROFILE}/{}", req.destination),
                    Some(profile) => format!("sofia/{profile}/{}", req.destination),
                    None => req.dial_string.clone(),
                }
            }
            Endpoint::Loopback => format!("loopback/{}-a", req.destination),
            _ => req.dial_string.clone(),
        };
        let created = now_us();
        let mut ch = Channel {
            uuid: uuid.to_owned(),
            dialed: req.destination.clone(),
            name: name.clone(),
            state: ChannelState::Init,
            answered: false,
            ringing: false,
            hangup_cause: None,
            cid_name: req.caller_id_name(),
            cid_number: req.caller_id_number(),
            destination: req.destination.clone(),
            context: "default".to_owned(),
            dialplan: "XML".to_owned(),
            source: match &req.endpoint {
                Endpoint::Loopback => "mod_loopback",
                Endpoint::User | Endpoint::Sofia => "mod_sofia",
                Endpoint::Error(_) => "mod_dptools",
            },
            profile_index: 1,
            rdnis: None,
            transfer_source: None,
            created_us: created,
            progress_us: 0,
            answered_us: 0,
            hangup_us: 0,
            transfer_us: 0,
            vars: Vec::new(),
            application: None,
        };
        ch.set_var("direction", "outbound");
        ch.set_var("is_outbound", "true");
        ch.set_var("uuid", uuid);
        ch.set_var("call_uuid", uuid);
        if req.endpoint == Endpoint::Sofia {
            if let Some(gw) = req
                .dial_string
                .strip_prefix("sofia/gateway/")
                .and_then(|r| r.split('/').next())
            {
                ch.set_var("sip_gateway_name", gw);
                ch.set_var("sip_profile_name", "gateway");
                ch.set_var("sofia_profile_name", GATEWAY_PROFILE);
            }
            ch.set_var("sip_to_user", &req.destination);
            ch.set_var("sip_req_user", &req.destination);
        }
        ch.set_var("channel_name", &name);
        for (k, v) in &req.vars {
            ch.set_var(k, v);
        }
        ch.set_var("originate_early_media", "false");
        let endpoint = match &req.endpoint {
            Endpoint::Sofia => "sofia",
            Endpoint::Loopback => "loopback",
            Endpoint::User => "user",
            Endpoint::Error(_) => "error",
        };
        ch.set_var("originate_endpoint", endpoint);
        ch
    }

    /// Sets (or replaces in place) a channel variable.
    pub fn set_var(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.vars.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn mark_ringing(&mut self) {
        self.ringing = true;
        self.progress_us = now_us();
        self.state = ChannelState::Routing;
    }

    pub fn mark_answered(&mut self) {
        self.answered = true;
        self.answered_us = now_us();
        self.set_var("endpoint_disposition", "ANSWER");
    }

    /// Enters a dialplan extension, as `switch_ivr_session_transfer` does: a new caller profile
    /// whose destination is the extension (the old destination becomes the RDNIS).
    pub fn transfer(&mut self, exten: &str, dialplan: &str, context: &str) {
        self.rdnis = Some(std::mem::replace(&mut self.destination, exten.to_owned()));
        self.dialplan = dialplan.to_owned();
        self.context = context.to_owned();
        self.profile_index += 1;
        self.transfer_us = now_us();
        self.state = ChannelState::Execute;
        let history = format!(
            "{}:{}:bl_xfer:{exten}/{context}/{dialplan}",
            self.transfer_us / 1_000_000,
            self.uuid
        );
        self.set_var("transfer_history", &history);
        self.set_var("transfer_source", &history);
        self.transfer_source = Some(history);
    }

    /// Hangs the channel up (first cause wins, as in FreeSWITCH).
    pub fn hangup(&mut self, cause: &str) {
        if self.hangup_cause.is_some() {
            return;
        }
        self.hangup_cause = Some(cause.to_owned());
        self.hangup_us = now_us();
        self.state = ChannelState::Hangup;
        self.application = None;
        self.set_var("hangup_cause", cause);
        self.set_var("hangup_cause_q850", &q850(cause).to_string());
    }

    /// `switch_channel_set_timestamps`: the CDR variables of CHANNEL_HANGUP_COMPLETE.
    pub fn set_timestamps(&mut self) {
        self.state = ChannelState::Reporting;
        let end = if self.hangup_us > 0 {
            self.hangup_us
        } else {
            now_us()
        };
        let stamp = |us: i64| -> String {
            if us <= 0 {
                return String::new();
            }
            Local
                .timestamp_micros(us)
                .single()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default()
        };
        let secs = |us: i64| (us.max(0) / 1_000_000).to_string();
        let billusec = if self.answered_us > 0 {
            (end - self.answered_us).max(0)
        } else {
            0
        };
        let duration_us = (end - self.created_us).max(0);
        let progress_us = if self.progress_us > 0 {
            (self.progress_us - self.created_us).max(0)
        } else {
            0
        };
        let answer_us = if self.answered_us > 0 {
            (self.answered_us - self.created_us).max(0)
        } else {
            0
        };
        let pairs: Vec<(&str, String)> = vec![
            ("start_stamp", stamp(self.created_us)),
            ("answer_stamp", stamp(self.answered_us)),
            ("end_stamp", stamp(end)),
            ("start_epoch", secs(self.created_us)),
            ("start_uepoch", self.created_us.to_string()),
            ("answer_epoch", secs(self.answered_us)),
            ("answer_uepoch", self.answered_us.max(0).to_string()),
            ("progress_epoch", secs(self.progress_us)),
            ("progress_uepoch", self.progress_us.max(0).to_string()),
            ("end_epoch", secs(end)),
            ("end_uepoch", end.to_string()),
            ("duration", (duration_us / 1_000_000).to_string()),
            ("billsec", (billusec / 1_000_000).to_string()),
            ("progresssec", (progress_us / 1_000_000).to_string()),
            ("answersec", (answer_us / 1_000_000).to_string()),
            ("waitsec", (answer_us / 1_000_000).to_string()),
            ("mduration", (duration_us / 1_000).to_string()),
            ("billmsec", (billusec / 1_000).to_string()),
            ("progressmsec", (progress_us / 1_000).to_string()),
            ("answermsec", (answer_us / 1_000).to_string()),
            ("waitmsec", (answer_us / 1_000).to_string()),
            ("uduration", duration_us.to_string()),
            ("billusec", billusec.to_string()),
        ];
        for (k, v) in pairs {
            self.set_var(k, &v);
        }
    }

    /// `Channel-Call-State`.
    fn call_state(&self) -> &'static str {
        if self.hangup_cause.is_some() {
            "HANGUP"
        } else if self.answered {
            "ACTIVE"
        } else if self.ringing {
            "RINGING"
        } else {
            "DOWN"
        }
    }

    /// `Answer-State`.
    fn answer_state(&self) -> &'static str {
        if self.hangup_cause.is_some() {
            "hangup"
        } else if self.answered {
            "answered"
        } else {
            "ringing"
        }
    }

    /// `show channels`'s callstate column.
    pub fn show_callstate(&self) -> &'static str {
        self.call_state()
    }

    /// Caller-profile headers with a prefix (`Caller` in events, `Channel` in the connect reply).
    pub fn push_profile(&self, ev: &mut Event, prefix: &str) {
        let p = |s: &str| format!("{prefix}-{s}");
        let t = |us: i64| us.max(0).to_string();
        ev.push(p("Direction"), "outbound");
        ev.push(p("Logical-Direction"), "outbound");
        ev.push(p("Username"), &self.cid_number);
        ev.push(p("Dialplan"), &self.dialplan);
        ev.push(p("Caller-ID-Name"), &self.cid_name);
        ev.push(p("Caller-ID-Number"), &self.cid_number);
        ev.push(p("Orig-Caller-ID-Name"), &self.cid_name);
        ev.push(p("Orig-Caller-ID-Number"), &self.cid_number);
        ev.push(p("Callee-ID-Name"), "Outbound Call");
        ev.push(p("Callee-ID-Number"), &self.dialed);
        ev.push(p("Network-Addr"), "127.0.0.1");
        ev.push(p("ANI"), &self.cid_number);
        ev.push(p("Destination-Number"), &self.destination);
        ev.push(p("Unique-ID"), &self.uuid);
        ev.push(p("Source"), self.source);
        if let Some(source) = &self.transfer_source {
            ev.push(p("Transfer-Source"), source);
        }
        ev.push(p("Context"), &self.context);
        if let Some(rdnis) = &self.rdnis {
            ev.push(p("RDNIS"), rdnis);
        }
        ev.push(p("Channel-Name"), &self.name);
        ev.push(p("Profile-Index"), self.profile_index.to_string());
        ev.push(p("Profile-Created-Time"), t(self.created_us));
        ev.push(p("Channel-Created-Time"), t(self.created_us));
        ev.push(p("Channel-Answered-Time"), t(self.answered_us));
        ev.push(p("Channel-Progress-Time"), t(self.progress_us));
        ev.push(p("Channel-Progress-Media-Time"), "0");
        ev.push(p("Channel-Hangup-Time"), t(self.hangup_us));
        ev.push(p("Channel-Transfer-Time"), t(self.transfer_us));
        ev.push(p("Channel-Resurrect-Time"), "0");
        ev.push(p("Channel-Bridged-Time"), "0");
        ev.push(p("Channel-Last-Hold"), "0");
        ev.push(p("Channel-Hold-Accum"), "0");
        ev.push(p("Screen-Bit"), "true");
        ev.push(p("Privacy-Hide-Name"), "false");
        ev.push(p("Privacy-Hide-Number"), "false");
    }

    /// `switch_channel_event_set_data`: basic data, the `Caller` profile, then every variable.
    pub fn push_channel_data(&self, ev: &mut Event) {
        ev.push("Channel-State", self.state.name());
        ev.push("Channel-Call-State", self.call_state());
        ev.push("Channel-State-Number", self.state.number().to_string());
        ev.push("Channel-Name", &self.name);
        ev.push("Unique-ID", &self.uuid);
        ev.push("Call-Direction", "outbound");
        ev.push("Presence-Call-Direction", "outbound");
        ev.push(
            "Channel-HIT-Dialplan",
            if self.profile_index > 1 {
                "true"
            } else {
                "false"
            },
        );
        ev.push("Channel-Call-UUID", &self.uuid);
        ev.push("Answer-State", self.answer_state());
        if let Some(cause) = &self.hangup_cause {
            ev.push("Hangup-Cause", cause);
        }
        self.push_profile(ev, "Caller");
        for (k, v) in &self.vars {
            // switch_channel_event_set_extended_data: an empty variable is sent as `_undef_`.
            let v = if v.is_empty() { "_undef_" } else { v.as_str() };
            ev.push(format!("variable_{k}"), v);
        }
    }

    /// A channel event (`CHANNEL_CREATE`, `CHANNEL_ANSWER`, …) with this channel's data.
    pub fn event(&self, core: &Core, name: &str) -> Event {
        let origin = match name {
            "CHANNEL_CREATE" => ("switch_core_state_machine.c", "switch_core_session_run"),
            "CHANNEL_PROGRESS" => (
                "switch_channel.c",
                "switch_channel_perform_mark_ring_ready_value",
            ),
            "CHANNEL_ANSWER" => ("switch_channel.c", "switch_channel_perform_mark_answered"),
            "CHANNEL_HANGUP" => ("switch_channel.c", "switch_channel_perform_hangup"),
            "CHANNEL_HANGUP_COMPLETE" => (
                "switch_core_state_machine.c",
                "switch_core_session_reporting_state",
            ),
            "CHANNEL_DESTROY" => (
                "switch_core_session.c",
                "switch_core_session_perform_destroy",
            ),
            _ => ("switch_channel.c", "switch_channel_event_set_data"),
        };
        let mut ev = core.event(name, origin);
        if matches!(name, "CHANNEL_HANGUP" | "CHANNEL_HANGUP_COMPLETE") {
            if let Some(cause) = &self.hangup_cause {
                ev.push("Hangup-Cause", cause);
            }
        }
        self.push_channel_data(&mut ev);
        ev
    }

    /// CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE: channel data, then the application headers
    /// (appended last, as `switch_core_session_exec` does).
    pub fn execute_event(
        &self,
        core: &Core,
        complete: bool,
        app: &str,
        data: &str,
        app_uuid: &str,
        response: &str,
    ) -> Event {
        let name = if complete {
            "CHANNEL_EXECUTE_COMPLETE"
        } else {
            "CHANNEL_EXECUTE"
        };
        let mut ev = core.event(name, ("switch_core_session.c", "switch_core_session_exec"));
        self.push_channel_data(&mut ev);
        ev.push("Application", app);
        ev.push("Application-Data", data);
        if complete {
            ev.push("Application-Response", response);
        }
        ev.push("Application-UUID", app_uuid);
        ev
    }

    /// The `connect` reply of an outbound socket: CHANNEL_DATA with the `Channel` profile first,
    /// then the channel data, then the reply headers at the bottom (mod_event_socket order).
    pub fn connect_reply(&self, core: &Core) -> Event {
        let mut ev = core.event("CHANNEL_DATA", ("mod_event_socket.c", "parse_command"));
        self.push_profile(&mut ev, "Channel");
        self.push_channel_data(&mut ev);
        ev.push("Content-Type", "command/reply");
        ev.push("Reply-Text", "+OK\n");
        ev.push("Socket-Mode", "async");
        ev.push("Control", "full");
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangup_cause_defaults_to_normal_clearing() {
        assert_eq!(hangup_cause_arg("user_busy"), "USER_BUSY");
        assert_eq!(hangup_cause_arg(""), "NORMAL_CLEARING");
        assert_eq!(hangup_cause_arg("NOT_A_CAUSE"), "NORMAL_CLEARING");
    }

    fn channel() -> Channel {
        let req = OriginateRequest::parse(
            "{origination_uuid=u1,discador_campana=PRUEBA}sofia/gateway/gw_pstn/600111226 discador XML discador",
        )
        .expect("valid");
        Channel::from_originate("u1", &req)
    }

    #[test]
    fn create_event_has_freeswitch_headers() {
        let ch = channel();
        let ev = ch.event(&Core::new("h"), "CHANNEL_CREATE");
        assert_eq!(ev.get("Unique-ID"), Some("u1"));
        assert_eq!(ev.get("Channel-Call-UUID"), Some("u1"));
        assert_eq!(ev.get("Call-Direction"), Some("outbound"));
        assert_eq!(ev.get("Answer-State"), Some("ringing"));
        assert_eq!(ev.get("Caller-Destination-Number"), Some("600111226"));
        assert_eq!(ev.get("variable_discador_campana"), Some("PRUEBA"));
        assert_eq!(ev.get("variable_sip_gateway_name"), Some("gw_pstn"));
        assert_eq!(ev.get("Channel-Name"), Some("sofia/external/600111226"));
        assert_eq!(ev.get("Hangup-Cause"), None);
    }

    #[test]
    fn hangup_complete_has_cause_twice_and_cdr_vars() {
        let mut ch = channel();
        ch.mark_ringing();
        ch.mark_answered();
        ch.transfer("discador", "XML", "discador");
        ch.hangup("NORMAL_CLEARING");
        ch.hangup("USER_BUSY"); // first cause wins
        ch.set_timestamps();
        let ev = ch.event(&Core::new("h"), "CHANNEL_HANGUP_COMPLETE");
        let causes = ev.headers().filter(|(k, _)| *k == "Hangup-Cause").count();
        assert_eq!(causes, 2);
        assert_eq!(ev.get("Hangup-Cause"), Some("NORMAL_CLEARING"));
        assert_eq!(ev.get("variable_hangup_cause_q850"), Some("16"));
        assert!(ev.get("variable_billsec").is_some());
        assert!(ev.get("variable_duration").is_some());
        assert_eq!(ev.get("Caller-Destination-Number"), Some("discador"));
        assert_eq!(ev.get("Caller-RDNIS"), Some("600111226"));
        assert_eq!(ev.get("Channel-State"), Some("CS_REPORTING"));
    }

    #[test]
    fn connect_reply_ends_with_reply_headers() {
        let ch = channel();
        let ev = ch.connect_reply(&Core::new("h"));
        let headers: Vec<(&str, &str)> = ev.headers().collect();
        let n = headers.len();
        assert_eq!(headers[n - 1], ("Control", "full"));
        assert_eq!(headers[n - 3].0, "Reply-Text");
        assert_eq!(ev.get("Channel-Unique-ID"), Some("u1"));
        assert_eq!(ev.name(), Some("CHANNEL_DATA"));
    }
}
