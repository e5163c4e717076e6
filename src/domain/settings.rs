//! The smaller campaign settings: AMD mode, destinations, gateway and the bounded integers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a setting was refused; names the field so the API can say which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{field}: debe estar entre {min} y {max}")]
    OutOfRange {
        field: &'static str,
        min: u32,
        max: u32,
    },
    #[error("{field}: valor inválido {value:?} ({rule})")]
    Invalid {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// An integer setting with its accepted range and default.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub field: &'static str,
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

impl Limit {
    pub fn check(&self, v: i64) -> Result<u32, SettingError> {
        u32::try_from(v)
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
            .ok_or(SettingError::OutOfRange {
                field: self.field,
                min: self.min,
                max: self.max,
            })
    }
}

/// Ring time before giving up, seconds. At least 15 s (TCPA / Ofcom), default 30 s.
pub const TIMEOUT_LLAMADA: Limit = Limit {
    field: "timeout_llamada",
    min: 15,
    max: 120,
    default: 30,
};
/// Live calls of one campaign.
pub const MAX_CANALES: Limit = Limit {
    field: "max_canales",
    min: 1,
    max: 10_000,
    default: 10,
};
/// Extra attempts after the first one.
pub const REINTENTOS: Limit = Limit {
    field: "reintentos",
    min: 0,
    max: 20,
    default: 2,
};
/// Seconds between attempts of one number (up to a week).
pub const INTERVALO_REINTENTO: Limit = Limit {
    field: "intervalo_reintento",
    min: 0,
    max: 604_800,
    default: 300,
};

macro_rules! text_enum {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty { $($(#[$vdoc])* $variant),+ }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, crate::domain::UnknownState> {
                match raw {
                    $($text => Ok($ty::$variant),)+
                    other => Err(crate::domain::UnknownState {
                        kind: stringify!($ty),
                        value: other.chars().take(40).collect(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $ty::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Answering-machine detection run by the controller on each answered call.
    AmdMode {
        /// No detection: every answered call is treated as a person.
        Ninguno => "ninguno",
        /// FreeSWITCH's `mod_amd` (voice-activity heuristics, HUMAN / MACHINE / NOTSURE).
        ModAmd => "mod_amd",
        /// `mod_avmd` (beep detection).
        Avmd => "avmd",
        /// The service's own detector (`crate::amd`) on the call's audio, streamed to it by the
        /// switch (`unicast`): works on a stock FreeSWITCH, and hears the beep too.
        Integrado => "integrado",
    }
);

text_enum!(
    /// Where an inconclusive AMD result (NOTSURE) goes. Default `humano`: hanging up on a person is
    /// the costly mistake, a machine reaching an agent is cheap.
    AmdNotSure {
        Humano => "humano",
        Maquina => "maquina",
    }
);

impl AmdMode {
    /// The FreeSWITCH module this mode runs on. Neither is in a stock build (`mod_amd` is
    /// third-party, `mod_avmd` is not built by default), and a call that runs a missing
    /// application is hung up by the switch, so the dialer checks before it dials.
    pub fn module(self) -> Option<&'static str> {
        match self {
            AmdMode::Ninguno | AmdMode::Integrado => None,
            AmdMode::ModAmd => Some("mod_amd"),
            AmdMode::Avmd => Some("mod_avmd"),
        }
    }
}

// Not derived: the enum comes from `text_enum!`, which does not take `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for AmdMode {
    fn default() -> Self {
        AmdMode::Ninguno
    }
}

#[allow(clippy::derivable_impls)]
impl Default for AmdNotSure {
    fn default() -> Self {
        AmdNotSure::Humano
    }
}

fn checked(
    field: &'static str,
    raw: &str,
    min: usize,
    extra: &[char],
    rule: &'static str,
) -> Result<String, SettingError> {
    let ok = raw.len() >= min
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(SettingError::Invalid {
            field,
            value: raw.chars().take(70).collect(),
            rule,
        })
    }
}

/// A dialplan extension in context `discador` (`destino_humano`, `destino_maquina`):
/// `^[A-Za-z0-9_+*#-]{0,64}$`. Empty means "hang up" (only sensible for the machine destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension(String);

impl Extension {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, SettingError> {
        checked(
            field,
            raw,
            0,
            &['+', '*', '#', '-'],
            "^[A-Za-z0-9_+*#-]{0,64}$",
        )
        .map(Extension)
    }
    /// The default extension of the shipped dialplan for that destination.
    pub fn named(name: &'static str) -> Self {
        Extension(name.to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// An empty destination hangs up instead of transferring.
    pub fn is_hangup(&self) -> bool {
        self.0.is_empty()
    }
}

/// A FreeSWITCH gateway name (`gw_pstn`): `^[A-Za-z0-9_.-]{1,64}$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway(String);

impl Gateway {
    pub fn parse(raw: &str) -> Result<Self, SettingError> {
        checked("gateway", raw, 1, &['.', '-'], "^[A-Za-z0-9_.-]{1,64}$").map(Gateway)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Extension {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for Gateway {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Gateway {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Gateway::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(TIMEOUT_LLAMADA.check(15), Ok(15));
        assert!(TIMEOUT_LLAMADA.check(14).is_err());
        assert!(TIMEOUT_LLAMADA.check(121).is_err());
        assert!(MAX_CANALES.check(0).is_err());
        assert!(MAX_CANALES.check(-1).is_err());
        assert!(REINTENTOS.check(i64::MAX).is_err());
        assert_eq!(INTERVALO_REINTENTO.check(604_800), Ok(604_800));
    }

    #[test]
    fn amd_texts() {
        assert_eq!(AmdMode::parse("mod_amd"), Ok(AmdMode::ModAmd));
        assert!(AmdMode::parse("MOD_AMD").is_err());
        assert_eq!(AmdNotSure::parse("maquina"), Ok(AmdNotSure::Maquina));
        for m in AmdMode::ALL {
            assert_eq!(AmdMode::parse(m.as_str()), Ok(*m));
        }
    }

    #[test]
    fn extensions_and_gateways() {
        assert!(Extension::parse("destino_humano", "").is_ok_and(|e| e.is_hangup()));
        assert!(Extension::parse("destino_humano", "*98#-1+x_").is_ok());
        for bad in ["a b", "a,b", "a{b}", "a'b", "a|b", "á"] {
            assert!(Extension::parse("destino_humano", bad).is_err(), "{bad}");
        }
        assert!(Gateway::parse("gw_pstn.1-a").is_ok());
        assert!(Gateway::parse("").is_err());
        assert!(Gateway::parse("gw/x").is_err());
        assert!(Gateway::parse(&"g".repeat(65)).is_err());
    }
}
