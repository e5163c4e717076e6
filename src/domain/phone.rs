//! Phone numbers.
//!
//! A number ends up inside a FreeSWITCH dial string (`sofia/gateway/gw/{telefono}`), where `,` `|`
//! `{` `}` `[` `]` `'` `^` or a space could add a leg, a channel variable or an application. So the only
//! accepted form is an optional leading `+` and 3 to 20 ASCII digits; visual separators people type
//! (space, `-`, `.`, `(`, `)`) are removed first, everything else is refused with a reason.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MIN_DIGITS: usize = 3;
const MAX_DIGITS: usize = 20;

/// Why a number was refused (Spanish: it is the `motivo` of an import error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("número vacío")]
    Empty,
    #[error("carácter no permitido {0:?}")]
    BadChar(char),
    #[error("'+' solo se admite al comienzo")]
    MisplacedPlus,
    #[error("demasiado corto: mínimo {MIN_DIGITS} dígitos")]
    TooShort,
    #[error("demasiado largo: máximo {MAX_DIGITS} dígitos")]
    TooLong,
}

/// A dialable number in its normalized form (`+5491112345678`, `1001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let mut out = String::with_capacity(raw.len().min(MAX_DIGITS + 1));
        let mut digits = 0usize;
        for c in raw.chars() {
            match c {
                ' ' | '-' | '.' | '(' | ')' => {}
                '+' if out.is_empty() => out.push('+'),
                '+' => return Err(PhoneError::MisplacedPlus),
                '0'..='9' => {
                    digits += 1;
                    if digits > MAX_DIGITS {
                        return Err(PhoneError::TooLong);
                    }
                    out.push(c);
                }
                other => return Err(PhoneError::BadChar(other)),
            }
        }
        match digits {
            0 if out.is_empty() => Err(PhoneError::Empty),
            d if d < MIN_DIGITS => Err(PhoneError::TooShort),
            _ => Ok(PhoneNumber(out)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// All but the last four digits hidden (`******1234`): what info-level logs may show.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks any string the way [`PhoneNumber::masked`] does, for raw values that were not parsed.
pub fn mask(raw: &str) -> String {
    let n = raw.chars().count();
    let keep = n.min(4);
    let tail: String = raw.chars().skip(n - keep).collect();
    format!("{}{}", "*".repeat(n - keep), tail)
}

impl TryFrom<&str> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(raw: &str) -> Result<Self, PhoneError> {
        Self::parse(raw)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_visual_separators() {
        let n = PhoneNumber::parse("+54 (11) 1234-56.78").unwrap(); // valid literal
        assert_eq!(n.as_str(), "+541112345678");
        assert_eq!(PhoneNumber::parse("100").map(|n| n.0), Ok("100".into()));
    }

    #[test]
    fn refuses_dial_string_characters() {
        for (raw, c) in [
            ("123,456", ','),
            ("123|456", '|'),
            ("{a=b}123", '{'),
            ("123}", '}'),
            ("[123]", '['),
            ("12'3", '\''),
            ("12^^3", '^'),
            ("123\n456", '\n'),
            ("123\t", '\t'),
            ("１２３", '１'),
            ("١٢٣٤", '١'),
            ("12a3", 'a'),
        ] {
            assert_eq!(
                PhoneNumber::parse(raw),
                Err(PhoneError::BadChar(c)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn length_and_plus_rules() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::parse(" - "), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::parse("+"), Err(PhoneError::TooShort));
        assert_eq!(PhoneNumber::parse("12"), Err(PhoneError::TooShort));
        assert_eq!(
            PhoneNumber::parse(&"1".repeat(21)),
            Err(PhoneError::TooLong)
        );
        assert!(PhoneNumber::parse(&"1".repeat(20)).is_ok());
        assert_eq!(PhoneNumber::parse("12+3"), Err(PhoneError::MisplacedPlus));
    }

    #[test]
    fn masks_all_but_last_four() {
        let n = PhoneNumber::parse("5491112341234").unwrap(); // valid literal
        assert_eq!(n.masked(), "*********1234");
        assert_eq!(mask("12"), "12");
    }

    proptest! {
        #[test]
        fn accepted_numbers_are_dial_safe(raw in "\\PC{0,40}") {
            if let Ok(n) = PhoneNumber::parse(&raw) {
                let s = n.as_str();
                let digits = s.trim_start_matches('+');
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()));
            }
        }

        #[test]
        fn digit_strings_round_trip(raw in "\\+?[0-9]{3,20}") {
            prop_assert_eq!(PhoneNumber::parse(&raw).map(|n| n.0), Ok(raw.clone()));
        }
    }
}
