//! The `originate` command line: the only place where campaign data becomes text that FreeSWITCH
//! parses. FreeSWITCH splits a dial string on `,` and `|` (more legs), reads `{…}`, `[…]` and `<…>`
//! as variable blocks, `'` as quoting, spaces as argument separators and `^^` as a delimiter change,
//! so a value carrying any of these could add a leg, a variable or an application. Every value placed
//! here is therefore either a validated domain type (digits, a campaign name, a UUID, a number) or is
//! rejected by [`is_dial_safe`] — defence in depth, checked again right here.

use std::fmt::Write as _;
use thiserror::Error;

/// Why an originate could not be built. Never sent to FreeSWITCH.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OriginateError {
    #[error("dial template must contain {{telefono}} and only letters, digits and _ . / : @ + - = (got {0:?})")]
    BadTemplate(String),
    #[error("value for {field} is not safe in a dial string")]
    UnsafeValue { field: &'static str },
}

/// Characters that may appear in any value of a dial string or its variables: nothing that
/// FreeSWITCH treats as a separator, a quote, a block or a variable reference (`$`).
pub fn is_dial_safe(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'.' | b'/' | b':' | b'@' | b'+' | b'-' | b'=')
        })
}

/// The operator's dial-string template (`DIAL_TEMPLATE`), e.g. `sofia/gateway/{gateway}/{telefono}`.
/// Validated once at start-up: a typo there fails loudly instead of on every call.
#[derive(Clone, Debug)]
pub struct DialTemplate(String);

impl DialTemplate {
    pub fn parse(template: &str) -> Result<Self, OriginateError> {
        let bad = || OriginateError::BadTemplate(template.to_owned());
        if !template.contains("{telefono}") {
            return Err(bad());
        }
        let rest = template
            .replace("{telefono}", "x")
            .replace("{gateway}", "x");
        if !is_dial_safe(&rest) {
            return Err(bad());
        }
        Ok(DialTemplate(template.to_owned()))
    }

    /// Whether calls go through the named gateway (so a node without it cannot carry them).
    pub fn uses_gateway(&self) -> bool {
        self.0.contains("{gateway}")
    }

    fn render(&self, gateway: &str, telefono: &str) -> String {
        self.0
            .replace("{gateway}", gateway)
            .replace("{telefono}", telefono)
    }
}

/// Everything one originate needs, already validated by the domain types it came from.
#[derive(Debug, Clone)]
pub struct Originate<'a> {
    /// The call's UUID, ours (`origination_uuid`): events and the socket leg are matched by it.
    pub uuid: &'a uuid::Uuid,
    pub campana: &'a str,
    pub numero_id: i64,
    pub intento: u32,
    pub telefono: &'a str,
    pub caller_id: Option<&'a str>,
    pub gateway: &'a str,
    /// Ring time in seconds (`originate_timeout`).
    pub timeout_s: u32,
    /// `discador_socket`: where the answered leg's `socket` application connects (this process's
    /// controller, `SOCKET_ANUNCIADO`). The dialplan reads `${discador_socket}`, which falls back
    /// to the switch's global of the same name when the call does not set it.
    pub socket: Option<&'a str>,
    /// `send_silence_when_idle=-1`: while the answered leg is parked in the `socket`
    /// application, FreeSWITCH writes a frame of digital silence for every frame it reads. A
    /// message mixed into those frames (`displace_session`) then reaches the called party while
    /// the call stays parked, where `unicast` keeps streaming its audio: what the integrated
    /// detector needs to hear a voicemail beep during a person's message (a `playback` leaves the
    /// park loop, which alone sends the stream, and tears the stream down when it ends). Read
    /// once, when the park starts: it must travel with the originate.
    pub silence_when_idle: bool,
}

/// The dialplan target of every answered leg: extension `discador` in context `discador`, which
/// holds the `socket` application that connects back to our controller (see `freeswitch-conf/`).
pub const DIALPLAN_TARGET: &str = "discador XML discador";

impl Originate<'_> {
    /// `originate {vars}<dial string> discador XML discador`, or an error if any value is unsafe.
    pub fn command(&self, template: &DialTemplate) -> Result<String, OriginateError> {
        let check = |field: &'static str, v: &str| {
            if is_dial_safe(v) {
                Ok(())
            } else {
                Err(OriginateError::UnsafeValue { field })
            }
        };
        check("campana", self.campana)?;
        check("telefono", self.telefono)?;
        check("gateway", self.gateway)?;
        if let Some(cid) = self.caller_id {
            check("caller_id", cid)?;
        }
        if let Some(socket) = self.socket {
            check("discador_socket", socket)?;
        }
        let mut vars = String::with_capacity(256);
        // `write!` to a String cannot fail.
        let _ = write!(
            vars,
            "origination_uuid={},originate_timeout={},ignore_early_media=true",
            self.uuid.hyphenated(),
            self.timeout_s
        );
        if let Some(cid) = self.caller_id {
            let _ = write!(vars, ",origination_caller_id_number={cid}");
        }
        let _ = write!(
            vars,
            ",discador_campana={},discador_numero={},discador_intento={}",
            self.campana, self.numero_id, self.intento
        );
        if let Some(socket) = self.socket {
            let _ = write!(vars, ",discador_socket={socket}");
        }
        if self.silence_when_idle {
            vars.push_str(",send_silence_when_idle=-1");
        }
        Ok(format!(
            "originate {{{vars}}}{} {DIALPLAN_TARGET}",
            template.render(self.gateway, self.telefono)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> DialTemplate {
        DialTemplate::parse("sofia/gateway/{gateway}/{telefono}").unwrap()
    }

    fn call<'a>(uuid: &'a uuid::Uuid, telefono: &'a str) -> Originate<'a> {
        Originate {
            uuid,
            campana: "PRUEBA",
            numero_id: 42,
            intento: 2,
            telefono,
            caller_id: Some("+5491100000000"),
            gateway: "gw_pstn",
            timeout_s: 30,
            socket: None,
            silence_when_idle: false,
        }
    }

    #[test]
    fn builds_the_documented_command() {
        let uuid = uuid::Uuid::parse_str("0b7c1a5e-1111-4c2b-9d3e-123456789abc").unwrap();
        let cmd = call(&uuid, "+541144445555").command(&template()).unwrap();
        assert_eq!(
            cmd,
            "originate {origination_uuid=0b7c1a5e-1111-4c2b-9d3e-123456789abc,originate_timeout=30,\
             ignore_early_media=true,origination_caller_id_number=+5491100000000,\
             discador_campana=PRUEBA,discador_numero=42,discador_intento=2}\
             sofia/gateway/gw_pstn/+541144445555 discador XML discador"
        );
    }

    /// Each answered call comes back to the process that dialed it.
    #[test]
    fn the_announced_socket_travels_with_the_call() {
        let uuid = uuid::Uuid::new_v4();
        let mut c = call(&uuid, "123");
        c.socket = Some("10.0.0.7:8084");
        let cmd = c.command(&template()).unwrap();
        assert!(
            cmd.contains(",discador_intento=2,discador_socket=10.0.0.7:8084}"),
            "{cmd}"
        );
    }

    /// The integrated detector's late-beep watch needs the parked leg to write frames.
    #[test]
    fn silence_when_idle_is_asked_for_with_the_call() {
        let uuid = uuid::Uuid::new_v4();
        let mut c = call(&uuid, "123");
        assert!(!c.command(&template()).unwrap().contains("send_silence"));
        c.silence_when_idle = true;
        let cmd = c.command(&template()).unwrap();
        assert!(
            cmd.contains(",discador_intento=2,send_silence_when_idle=-1}"),
            "{cmd}"
        );
    }

    #[test]
    fn hostile_values_never_reach_the_dial_string() {
        let uuid = uuid::Uuid::new_v4();
        for evil in [
            "123,sofia/gateway/x/666",
            "123|999",
            "{absolute_codec_string=PCMA}123",
            "[leg_timeout=1]123",
            "123 &park()",
            "123'",
            "^^:123",
            "${system(rm -rf /)}",
            "123\nbgapi",
            "",
        ] {
            assert!(call(&uuid, evil).command(&template()).is_err(), "{evil:?}");
            let mut c = call(&uuid, "123");
            c.campana = evil;
            assert!(c.command(&template()).is_err(), "{evil:?}");
            let mut c = call(&uuid, "123");
            c.gateway = evil;
            assert!(c.command(&template()).is_err(), "{evil:?}");
            let mut c = call(&uuid, "123");
            c.caller_id = Some(evil);
            assert!(c.command(&template()).is_err(), "{evil:?}");
            let mut c = call(&uuid, "123");
            c.socket = Some(evil);
            assert!(c.command(&template()).is_err(), "{evil:?}");
        }
    }

    #[test]
    fn templates_are_checked_once() {
        assert!(DialTemplate::parse("loopback/{telefono}/default").is_ok());
        assert!(DialTemplate::parse("sofia/gateway/{gateway}/{telefono}").is_ok());
        for bad in [
            "sofia/gateway/gw",
            "sofia/gateway/gw/{telefono},user/1000",
            "{x=1}sofia/{telefono}",
            "sofia/ {telefono}",
        ] {
            assert!(DialTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
