//! Campaign and table names: the only identifiers ever spliced into SQL.
//!
//! Values are always bound; identifiers cannot be, so a name is accepted only if it matches
//! `^[A-Za-z][A-Za-z0-9_]{0,47}$` — no quote, backtick, space or unicode can reach a query — and is
//! still backtick-quoted by [`CampaignName::quoted`] so that a reserved word (`select`) stays a name.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted name: 48 characters, well under MySQL's 64-character identifier limit.
const MAX_LEN: usize = 48;

/// Names of the service's own tables that a campaign must never take (diesel's bookkeeping tables
/// and SQLite's own `sqlite_*` are refused by prefix).
const RESERVED: [&str; 6] = [
    "bases",
    "llamadas",
    "dnc",
    "intentos_telefono",
    "procesos",
    "nodos",
];

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("el nombre está vacío")]
    Empty,
    #[error("el nombre tiene más de {MAX_LEN} caracteres")]
    TooLong,
    #[error("el nombre debe empezar con una letra")]
    BadStart,
    #[error("el nombre solo admite letras, dígitos y '_'")]
    BadChar,
    #[error("el nombre '{0}' está reservado")]
    Reserved(String),
}

fn check(raw: &str) -> Result<(), NameError> {
    let mut chars = raw.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if raw.chars().count() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    if !first.is_ascii_alphabetic() {
        return Err(NameError::BadStart);
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(NameError::BadChar);
    }
    let lower = raw.to_ascii_lowercase();
    // `sqlite_*` names belong to SQLite itself (the embedded backend refuses to create them).
    if RESERVED.contains(&lower.as_str())
        || lower.starts_with("__diesel")
        || lower.starts_with("sqlite_")
    {
        return Err(NameError::Reserved(raw.to_owned()));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Accepts `^[A-Za-z][A-Za-z0-9_]{0,47}$` that is not a reserved name.
            pub fn parse(raw: &str) -> Result<Self, NameError> {
                check(raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as a MySQL identifier, backtick-quoted. Safe because `parse` admits no
            /// backtick; the quoting only protects reserved words.
            pub fn quoted(&self) -> String {
                format!("`{}`", self.0)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(raw: &str) -> Result<Self, NameError> {
                Self::parse(raw)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// Name of a campaign (`bases.nombre`), e.g. `PRUEBA`.
    CampaignName
);
identifier!(
    /// Name of a campaign's numbers table. By default the campaign's own name ("cada campaña tiene su
    /// propia tabla"); a campaign may adopt an existing table instead.
    TableName
);

impl From<&CampaignName> for TableName {
    fn from(n: &CampaignName) -> Self {
        // Same grammar, same reserved list: a valid campaign name is a valid table name.
        TableName(n.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "PRUEBA",
            "a",
            "Campana_2024",
            "select",
            &format!("A{}", "b".repeat(47)),
        ] {
            assert_eq!(
                CampaignName::parse(ok).map(|n| n.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "a".repeat(49);
        let cases: [(&str, NameError); 9] = [
            ("", NameError::Empty),
            ("x`; DROP TABLE bases; --", NameError::BadChar),
            ("1abc", NameError::BadStart),
            ("_abc", NameError::BadStart),
            ("o'brien", NameError::BadChar),
            ("campaña", NameError::BadChar),
            (&long, NameError::TooLong),
            ("BASES", NameError::Reserved("BASES".into())),
            ("Llamadas", NameError::Reserved("Llamadas".into())),
        ];
        for (raw, err) in cases {
            assert_eq!(CampaignName::parse(raw), Err(err), "{raw:?}");
        }
        assert!(TableName::parse("dnc").is_err());
        assert!(TableName::parse("Intentos_Telefono").is_err());
    }

    #[test]
    fn quoted_uses_backticks() {
        let n = CampaignName::parse("select").unwrap(); // valid literal
        assert_eq!(n.quoted(), "`select`");
    }

    proptest! {
        #[test]
        fn parsed_names_are_safe_identifiers(raw in "\\PC{0,60}") {
            if let Ok(n) = CampaignName::parse(&raw) {
                prop_assert!(n.as_str().len() <= MAX_LEN);
                prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            }
        }

        #[test]
        fn grammar_names_round_trip(raw in "[A-Za-z][A-Za-z0-9_]{0,47}") {
            let lower = raw.to_ascii_lowercase();
            prop_assume!(!RESERVED.contains(&lower.as_str()));
            let n = CampaignName::parse(&raw).unwrap(); // matches the grammar by construction
            let json = serde_json::to_string(&n).unwrap(); // a string always serializes
            prop_assert_eq!(serde_json::from_str::<CampaignName>(&json).ok(), Some(n));
        }
    }
}
