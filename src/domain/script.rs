//! The campaign's call script: what the controller plays and does on an answered call, and the one
//! disposition each call ends with.
//!
//! Every value here reaches FreeSWITCH inside an application argument (`playback <file>`,
//! `bridge <dial string>`, `transfer <extension> XML discador`), so each type accepts only what
//! cannot add an application, a variable or a leg: no `!` `,` `|` `{` `}` `[` `]` `$` `'` `"`
//! `\`, whitespace or control characters, anywhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::settings::{text_enum, Extension, Limit, SettingError};

/// A sound file FreeSWITCH plays: relative to its sounds directory (`ivr/bienvenida.wav`) or
/// absolute (`/var/lib/discador/audio/deuda.wav`). Up to 255 characters of `[A-Za-z0-9/._+-]`,
/// no `..` segment, not ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPath(String);

impl AudioPath {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, SettingError> {
        let invalid = |rule| SettingError::Invalid {
            field,
            value: raw.chars().take(70).collect(),
            rule,
        };
        if raw.is_empty() || raw.len() > 255 {
            return Err(invalid("de 1 a 255 caracteres"));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-'))
        {
            return Err(invalid(
                "solo letras, dígitos y / . _ + - (sin espacios ni ! , { } $ comillas)",
            ));
        }
        if raw.ends_with('/') || raw.split('/').any(|seg| seg == "..") {
            return Err(invalid("un archivo, sin segmentos '..'"));
        }
        Ok(AudioPath(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Absolute: FreeSWITCH plays it as it is; otherwise from its sounds directory.
    pub fn is_absolute(&self) -> bool {
        self.0.starts_with('/')
    }

    /// The path FreeSWITCH opens, given its `sounds_dir`.
    pub fn resolve(&self, sounds_dir: &str) -> String {
        if self.is_absolute() {
            self.0.clone()
        } else {
            format!("{}/{}", sounds_dir.trim_end_matches('/'), self.0)
        }
    }
}

impl fmt::Display for AudioPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AudioPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A FreeSWITCH dial string of one leg to agents or a queue: `sofia/gateway/gw_pstn/agente1`,
/// `user/1000`, `loopback/cola_ventas/discador`. `tech/rest`, up to 255 characters of
/// `[A-Za-z0-9/._@+-]`, plus `:` before a port digit (`sofia/external/100@10.0.0.5:5060`): no
/// `{`/`[` (variables), `,`/`|`/`:_:` (more legs), `$` (expansions) or spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget(String);

impl DialTarget {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, SettingError> {
        let invalid = |rule| SettingError::Invalid {
            field,
            value: raw.chars().take(70).collect(),
            rule,
        };
        if raw.len() > 255 {
            return Err(invalid("hasta 255 caracteres"));
        }
        let bytes = raw.as_bytes();
        let chars_ok = bytes.iter().enumerate().all(|(i, &b)| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'/' | b'.' | b'_' | b'@' | b'+' | b'-')
                || (b == b':' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        let mut parts = raw.splitn(2, '/');
        let tech = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        let shape_ok = !tech.is_empty()
            && tech.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !rest.is_empty()
            && rest.split('/').all(|seg| !seg.is_empty());
        if chars_ok && shape_ok {
            Ok(DialTarget(raw.to_owned()))
        } else {
            Err(invalid(
                "una cadena de marcado tecnologia/destino (p. ej. sofia/gateway/gw/agente1, user/1000) \
                 sin { } [ ] , | $ ni espacios",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The gateway a `sofia/gateway/<name>/…` target goes through (checked with the switch).
    pub fn gateway(&self) -> Option<&str> {
        let rest = self.0.strip_prefix("sofia/gateway/")?;
        rest.split('/').next()
    }
}

/// Where `transferir` sends a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// An extension of context `discador`: the call leaves the controller for the dialplan (the
    /// IVR designers' place), as `destino_humano` does.
    Extension(Extension),
    /// Agents or a queue, bridged by the controller itself, which so sees whether an agent answered
    /// within `espera_agente_s` (otherwise the call is abandoned).
    Agents(DialTarget),
}

impl TransferTarget {
    /// A text with `/` is a dial string, anything else an extension name.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, SettingError> {
        if raw.contains('/') {
            DialTarget::parse(field, raw).map(TransferTarget::Agents)
        } else if raw.is_empty() {
            Err(SettingError::Invalid {
                field,
                value: String::new(),
                rule: "transferir necesita un destino",
            })
        } else {
            Extension::parse(field, raw).map(TransferTarget::Extension)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TransferTarget::Extension(e) => e.as_str(),
            TransferTarget::Agents(d) => d.as_str(),
        }
    }
}

/// What a key of the menu does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    Transferir(TransferTarget),
    /// Opt-out: into the DNC list at once, then `mensaje_baja`.
    NoLlamar,
    /// Play the message again.
    Repetir,
}

impl MenuAction {
    pub fn name(&self) -> &'static str {
        match self {
            MenuAction::Transferir(_) => "transferir",
            MenuAction::NoLlamar => "no_llamar",
            MenuAction::Repetir => "repetir",
        }
    }
}

/// A menu key: a DTMF digit `0`–`9`, `*` or `#`.
pub type MenuKey = char;

/// Seconds the menu waits for a key after the message ended.
pub const MENU_TIMEOUT: Limit = Limit {
    field: "menu.timeout",
    min: 1,
    max: 30,
    default: 5,
};
/// How many times the message is played while no valid key comes (a `repetir` key counts too).
pub const MENU_INTENTOS: Limit = Limit {
    field: "menu.intentos",
    min: 1,
    max: 5,
    default: 2,
};
/// Seconds a person sent to agents waits for one to answer before the call is abandoned (FTC TSR /
/// Ofcom: 2 s).
pub const ESPERA_AGENTE: Limit = Limit {
    field: "espera_agente_s",
    min: 1,
    max: 60,
    default: 2,
};

/// The keys a person may press during or after `mensaje_humano`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub opciones: BTreeMap<MenuKey, MenuAction>,
    pub timeout: u32,
    pub intentos: u32,
}

/// The JSON form of one option: `{"accion": "transferir", "destino": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "La forma JSON de una opción: `{\"accion\": \"transferir\", \"destino\": \"…\"}`."
)]
pub struct MenuOptionJson {
    /// transferir | no_llamar | repetir.
    pub accion: String,
    /// For `transferir`: an extension of context `discador`, or a dial string to agents or a
    /// queue (`sofia/gateway/gw_pstn/agente1`), which the service bridges itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destino: Option<String>,
}

/// The JSON form of the menu, as the API and the `bases.menu` column hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "La forma JSON del menú, tal como la guardan la API y la columna `bases.menu`."
)]
pub struct MenuJson {
    /// Key (`0`–`9`, `*`, `#`) → action.
    #[schema(example = json!({"1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente1"}, "9": {"accion": "no_llamar"}, "0": {"accion": "repetir"}}))]
    pub opciones: BTreeMap<String, MenuOptionJson>,
    /// Seconds to wait for a key after the message, 1..=30. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Times the message is played while no valid key comes, 1..=5. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intentos: Option<i64>,
}

impl Menu {
    /// Parses the JSON form; errors name the field (`menu.opciones.7.destino`, `menu.timeout`).
    pub fn parse(json: &MenuJson) -> Result<Menu, SettingError> {
        let invalid = |field, value: &str, rule| SettingError::Invalid {
            field,
            value: value.chars().take(70).collect(),
            rule,
        };
        if json.opciones.is_empty() {
            return Err(invalid("menu.opciones", "", "al menos una tecla"));
        }
        let mut opciones = BTreeMap::new();
        for (key, opt) in &json.opciones {
            let k = match key.as_bytes() {
                [b] if b.is_ascii_digit() || *b == b'*' || *b == b'#' => *b as char,
                _ => return Err(invalid("menu.opciones", key, "teclas 0-9, * o #")),
            };
            let action = match opt.accion.as_str() {
                "transferir" => MenuAction::Transferir(TransferTarget::parse(
                    "menu.opciones.destino",
                    opt.destino.as_deref().unwrap_or(""),
                )?),
                "no_llamar" | "repetir" if opt.destino.is_some() => {
                    return Err(invalid(
                        "menu.opciones.destino",
                        opt.destino.as_deref().unwrap_or(""),
                        "solo transferir lleva destino",
                    ))
                }
                "no_llamar" => MenuAction::NoLlamar,
                "repetir" => MenuAction::Repetir,
                other => {
                    return Err(invalid(
                        "menu.opciones.accion",
                        other,
                        "transferir, no_llamar o repetir",
                    ))
                }
            };
            opciones.insert(k, action);
        }
        let timeout = match json.timeout {
            Some(v) => MENU_TIMEOUT.check(v)?,
            None => MENU_TIMEOUT.default,
        };
        let intentos = match json.intentos {
            Some(v) => MENU_INTENTOS.check(v)?,
            None => MENU_INTENTOS.default,
        };
        Ok(Menu {
            opciones,
            timeout,
            intentos,
        })
    }

    pub fn to_json(&self) -> MenuJson {
        MenuJson {
            opciones: self
                .opciones
                .iter()
                .map(|(k, a)| {
                    let destino = match a {
                        MenuAction::Transferir(t) => Some(t.as_str().to_owned()),
                        _ => None,
                    };
                    (
                        k.to_string(),
                        MenuOptionJson {
                            accion: a.name().to_owned(),
                            destino,
                        },
                    )
                })
                .collect(),
            timeout: Some(i64::from(self.timeout)),
            intentos: Some(i64::from(self.intentos)),
        }
    }

    /// Every key of the menu, for `playback_terminators`.
    pub fn keys(&self) -> String {
        self.opciones.keys().collect()
    }

    /// The dial strings and extensions the menu may send a call to (checked with the switch).
    pub fn targets(&self) -> impl Iterator<Item = &TransferTarget> {
        self.opciones.values().filter_map(|a| match a {
            MenuAction::Transferir(t) => Some(t),
            _ => None,
        })
    }

    /// The form stored in `bases.menu`.
    pub fn to_db(&self) -> String {
        serde_json::to_string(&self.to_json()).unwrap_or_default()
    }

    /// Reads `bases.menu`.
    pub fn from_db(raw: &str) -> Result<Menu, String> {
        let json: MenuJson = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        Menu::parse(&json).map_err(|e| e.to_string())
    }
}

text_enum!(
    /// How the message is left on an answering machine.
    Voicemail {
        /// After the beep (mod_avmd listens during the greeting); without a beep within the
        /// limit, after the greeting's silence.
        TrasBeep => "tras_beep",
        /// After the greeting's silence.
        TrasSaludo => "tras_saludo",
        /// Leave nothing: hang up.
        NoDejar => "no_dejar",
    }
);

#[allow(clippy::derivable_impls)]
impl Default for Voicemail {
    fn default() -> Self {
        Voicemail::TrasBeep
    }
}

/// The whole script of a campaign. Without `mensaje_humano` a person goes to `destino_humano` as
/// before; without `mensaje_maquina` a machine goes to `destino_maquina`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub mensaje_humano: Option<AudioPath>,
    pub mensaje_maquina: Option<AudioPath>,
    /// Played after an opt-out (`no_llamar`).
    pub mensaje_baja: Option<AudioPath>,
    /// Played when no agent answered within `espera_agente_s`.
    pub mensaje_abandono: Option<AudioPath>,
    pub menu: Option<Menu>,
    pub buzon: Voicemail,
    pub espera_agente_s: u32,
}

impl Default for Script {
    /// No script: the call behaves as without one (verdict, then the campaign's destination).
    fn default() -> Self {
        Script {
            mensaje_humano: None,
            mensaje_maquina: None,
            mensaje_baja: None,
            mensaje_abandono: None,
            menu: None,
            buzon: Voicemail::default(),
            espera_agente_s: ESPERA_AGENTE.default,
        }
    }
}

impl Script {
    /// The rules between fields, checked on the whole campaign after a create or a PATCH.
    pub fn check(&self) -> Result<(), SettingError> {
        if self.menu.is_some() && self.mensaje_humano.is_none() {
            return Err(SettingError::Invalid {
                field: "menu",
                value: String::new(),
                rule: "un menú necesita mensaje_humano",
            });
        }
        Ok(())
    }

    /// Every audio file of the script with the field that names it (checked with `file_exists`).
    pub fn files(&self) -> Vec<(&'static str, &AudioPath)> {
        [
            ("mensaje_humano", &self.mensaje_humano),
            ("mensaje_maquina", &self.mensaje_maquina),
            ("mensaje_baja", &self.mensaje_baja),
            ("mensaje_abandono", &self.mensaje_abandono),
        ]
        .into_iter()
        .filter_map(|(f, p)| p.as_ref().map(|p| (f, p)))
        .collect()
    }

    /// A machine gets a message after its beep: someone must hear the beep.
    pub fn message_after_beep(&self) -> bool {
        self.mensaje_maquina.is_some() && self.buzon == Voicemail::TrasBeep
    }

    /// The script needs `mod_avmd` to hear the beep, unless the service's own detector
    /// (`amd: integrado`) does.
    pub fn needs_avmd(&self, amd: super::AmdMode) -> bool {
        self.message_after_beep() && amd != super::AmdMode::Integrado
    }
}

text_enum!(
    /// How an answered call ended: one per call, on the number row and in its `llamadas` CDR.
    Disposition {
        /// Handed to the campaign's dialplan extension (no message configured for it).
        Entregada => "ENTREGADA",
        /// The person heard the whole message (and pressed no key that did something else).
        Escucho => "ESCUCHO",
        /// The person hung up during the message.
        ColgoEnMensaje => "COLGO_EN_MENSAJE",
        /// The person hung up during answering-machine detection.
        ColgoEnDeteccion => "COLGO_EN_DETECCION",
        /// Transferred: an agent answered, or the call went to a dialplan extension.
        Transferida => "TRANSFERIDA",
        /// Sent to agents, none answered within `espera_agente_s`.
        Abandonada => "ABANDONADA",
        /// The person asked not to be called again (into the DNC list).
        Baja => "BAJA",
        /// A machine: the message was left whole.
        MensajeDejado => "MENSAJE_DEJADO",
        /// A machine: no message left (`no_dejar`, or it hung up before the message ended).
        SinMensaje => "SIN_MENSAJE",
    }
);

/// Everything the controller learned about one answered call after the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDisposition {
    pub disposicion: Disposition,
    /// Milliseconds of message played before it ended (whole, cut by a key or by the hangup).
    pub mensaje_ms: Option<u32>,
    /// Keys pressed, in order.
    pub teclas: String,
    /// The menu action taken (`transferir`, `no_llamar`, `repetir`).
    pub accion: Option<&'static str>,
    pub transferida_a: Option<String>,
    /// For a bridge to agents: whether one answered.
    pub agente_contesto: Option<bool>,
    /// A machine: milliseconds from the beep to the start of the message.
    pub tras_beep_ms: Option<i64>,
}

impl CallDisposition {
    pub fn new(disposicion: Disposition) -> Self {
        CallDisposition {
            disposicion,
            mensaje_ms: None,
            teclas: String::new(),
            accion: None,
            transferida_a: None,
            agente_contesto: None,
            tras_beep_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_paths() {
        for ok in [
            "ivr/ivr-welcome_to_freeswitch.wav",
            "/var/lib/discador/deuda+v2.wav",
            "a",
        ] {
            assert!(AudioPath::parse("mensaje_humano", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b.wav",
            "a!b",
            "a,b",
            "{x=1}a.wav",
            "${sounds}/a.wav",
            "a'b",
            "a\"b",
            "a\nb",
            "../etc/passwd",
            "ivr/",
            "a|b",
            "tone_stream://%(100,0,440)",
        ] {
            let e = AudioPath::parse("mensaje_humano", bad).unwrap_err();
            assert!(e.to_string().starts_with("mensaje_humano"), "{bad}: {e}");
        }
        assert_eq!(
            AudioPath::parse("f", "ivr/a.wav").unwrap().resolve("/s/"),
            "/s/ivr/a.wav"
        );
        assert_eq!(
            AudioPath::parse("f", "/x.wav").unwrap().resolve("/s"),
            "/x.wav"
        );
    }

    #[test]
    fn dial_targets() {
        for ok in [
            "sofia/gateway/gw_pstn/agente1",
            "user/1000@default",
            "loopback/cola/discador",
            "sofia/external/100@10.0.0.5:5060",
        ] {
            assert!(DialTarget::parse("d", ok).is_ok(), "{ok}");
        }
        for bad in [
            "sofia/gateway/gw/a,sofia/gateway/gw/b",
            "sofia/gateway/gw/a|user/1",
            "{x=y}sofia/gateway/gw/a",
            "[x=y]user/1",
            "user/${x}",
            "user/1 &park",
            "sofia/gateway/gw/a:_:user/2",
            "sofia//a",
            "/a",
            "user/",
        ] {
            assert!(DialTarget::parse("d", bad).is_err(), "{bad}");
        }
        assert_eq!(
            DialTarget::parse("d", "sofia/gateway/gw_pstn/agente1")
                .unwrap()
                .gateway(),
            Some("gw_pstn")
        );
    }

    fn menu(json: serde_json::Value) -> Result<Menu, SettingError> {
        Menu::parse(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn menus() {
        let m = menu(serde_json::json!({"opciones": {
            "1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente1"},
            "2": {"accion": "transferir", "destino": "ventas"},
            "9": {"accion": "no_llamar"}, "0": {"accion": "repetir"}}}))
        .unwrap();
        assert_eq!(m.keys(), "0129");
        assert_eq!(m.timeout, 5);
        assert_eq!(m.intentos, 2);
        assert!(matches!(
            m.opciones[&'2'],
            MenuAction::Transferir(TransferTarget::Extension(_))
        ));
        assert_eq!(Menu::from_db(&m.to_db()).unwrap(), m);

        let err = |j| menu(j).unwrap_err().to_string();
        assert!(
            err(serde_json::json!({"opciones": {"x": {"accion": "repetir"}}}))
                .starts_with("menu.opciones")
        );
        assert!(
            err(serde_json::json!({"opciones": {"12": {"accion": "repetir"}}}))
                .starts_with("menu.opciones")
        );
        assert!(
            err(serde_json::json!({"opciones": {"1": {"accion": "colgar"}}}))
                .starts_with("menu.opciones.accion")
        );
        assert!(
            err(serde_json::json!({"opciones": {"1": {"accion": "transferir"}}}))
                .starts_with("menu.opciones.destino")
        );
        assert!(err(
            serde_json::json!({"opciones": {"1": {"accion": "transferir", "destino": "a,b/c"}}})
        )
        .starts_with("menu.opciones.destino"));
        assert!(err(serde_json::json!({"opciones": {}})).starts_with("menu.opciones"));
        assert!(
            err(serde_json::json!({"opciones": {"1": {"accion": "repetir"}}, "timeout": 0}))
                .starts_with("menu.timeout")
        );
        assert!(
            serde_json::from_value::<MenuJson>(serde_json::json!({"opciones": {}, "otra": 1}))
                .is_err()
        );
    }

    #[test]
    fn a_menu_needs_a_message() {
        let s = Script {
            menu: Some(
                menu(serde_json::json!({"opciones": {"0": {"accion": "repetir"}}})).unwrap(),
            ),
            ..Script::default()
        };
        assert!(s.check().unwrap_err().to_string().starts_with("menu"));
    }

    #[test]
    fn dispositions() {
        for d in Disposition::ALL {
            assert_eq!(Disposition::parse(d.as_str()), Ok(*d));
        }
    }
}
