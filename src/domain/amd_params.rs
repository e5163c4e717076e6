//! The JSON form of the integrated detector's parameters ([`AmdParams`]), as the API and the
//! `bases.amd_integrado` column hold them, and its validation.
//!
//! Every field is optional in the JSON: [`parse`] merges the given ones onto a base (the defaults
//! on create, the campaign's current parameters on change), so a change names only what it changes.
//! Each field has a range, and `total_analysis_ms` must exceed `initial_silence_ms` and
//! `greeting_ms` (otherwise those rules could never fire). Errors name the field as
//! `amd_integrado.<campo>`.

use serde::{Deserialize, Serialize};

use super::settings::{Limit, SettingError};
use crate::amd::AmdParams;

const fn limit(field: &'static str, min: u32, max: u32, default: u32) -> Limit {
    Limit {
        field,
        min,
        max,
        default,
    }
}

pub const INITIAL_SILENCE_MS: Limit = limit("amd_integrado.initial_silence_ms", 500, 10_000, 3500);
pub const GREETING_MS: Limit = limit("amd_integrado.greeting_ms", 500, 10_000, 2500);
pub const AFTER_GREETING_SILENCE_MS: Limit =
    limit("amd_integrado.after_greeting_silence_ms", 200, 5_000, 800);
pub const TOTAL_ANALYSIS_MS: Limit = limit("amd_integrado.total_analysis_ms", 1_000, 15_000, 6500);
pub const MIN_WORD_MS: Limit = limit("amd_integrado.min_word_ms", 20, 1_000, 100);
pub const BETWEEN_WORDS_SILENCE_MS: Limit =
    limit("amd_integrado.between_words_silence_ms", 20, 1_000, 100);
pub const MAXIMUM_WORDS: Limit = limit("amd_integrado.maximum_words", 1, 20, 7);
pub const MAXIMUM_WORD_MS: Limit = limit("amd_integrado.maximum_word_ms", 500, 15_000, 5000);
pub const SILENCE_THRESHOLD: Limit = limit("amd_integrado.silence_threshold", 16, 8_192, 256);

/// Parameters of the integrated answering-machine detector (`amd: integrado`), in ms of the
/// call's audio. Any subset may be given; the others keep their value. Shown always whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "Parámetros del detector de contestadores integrado (`amd: integrado`), en ms del audio de la llamada. Se puede indicar cualquier subconjunto; los demás conservan su valor. Se muestran siempre completos."
)]
pub struct AmdParamsJson {
    /// Nobody spoke by then ⇒ NOTSURE / INITIALSILENCE. 500..=10000, default 3500 (people
    /// answer up to 3 s late).
    #[schema(example = 3500)]
    pub initial_silence_ms: Option<i64>,
    /// Speech since the first word adds up to this ⇒ MACHINE / LONGGREETING. 500..=10000,
    /// default 2500.
    #[schema(example = 2500)]
    pub greeting_ms: Option<i64>,
    /// Silence after a short greeting ⇒ HUMAN. 200..=5000, default 800.
    #[schema(example = 800)]
    pub after_greeting_silence_ms: Option<i64>,
    /// No decision by then ⇒ NOTSURE / TOOLONG. 1000..=15000, greater than `initial_silence_ms`
    /// and `greeting_ms`; default 6500.
    #[schema(example = 6500)]
    pub total_analysis_ms: Option<i64>,
    /// A voiced run shorter than this is noise, not a word. 20..=1000, default 100.
    #[schema(example = 100)]
    pub min_word_ms: Option<i64>,
    /// The silence that separates two words. 20..=1000, default 100.
    #[schema(example = 100)]
    pub between_words_silence_ms: Option<i64>,
    /// This many words ⇒ MACHINE / MAXWORDS. 1..=20, default 7.
    #[schema(example = 7)]
    pub maximum_words: Option<i64>,
    /// One word this long ⇒ MACHINE / LONGWORD (a tone, music). 500..=15000, default 5000.
    #[schema(example = 5000)]
    pub maximum_word_ms: Option<i64>,
    /// Minimum voice level (mean absolute amplitude, 16-bit samples) above the adaptive noise
    /// floor. 16..=8192, default 256.
    #[schema(example = 256)]
    pub silence_threshold: Option<i64>,
}

/// `base` with the fields `json` gives, each range-checked, then the rules between fields.
pub fn parse(base: &AmdParams, json: &AmdParamsJson) -> Result<AmdParams, SettingError> {
    fn field(l: Limit, v: Option<i64>, base: u32) -> Result<u32, SettingError> {
        v.map_or(Ok(base), |v| l.check(v))
    }
    let threshold = field(
        SILENCE_THRESHOLD,
        json.silence_threshold,
        u32::from(base.silence_threshold),
    )?;
    let p = AmdParams {
        initial_silence_ms: field(
            INITIAL_SILENCE_MS,
            json.initial_silence_ms,
            base.initial_silence_ms,
        )?,
        greeting_ms: field(GREETING_MS, json.greeting_ms, base.greeting_ms)?,
        after_greeting_silence_ms: field(
            AFTER_GREETING_SILENCE_MS,
            json.after_greeting_silence_ms,
            base.after_greeting_silence_ms,
        )?,
        total_analysis_ms: field(
            TOTAL_ANALYSIS_MS,
            json.total_analysis_ms,
            base.total_analysis_ms,
        )?,
        min_word_ms: field(MIN_WORD_MS, json.min_word_ms, base.min_word_ms)?,
        between_words_silence_ms: field(
            BETWEEN_WORDS_SILENCE_MS,
            json.between_words_silence_ms,
            base.between_words_silence_ms,
        )?,
        maximum_words: field(MAXIMUM_WORDS, json.maximum_words, base.maximum_words)?,
        maximum_word_ms: field(MAXIMUM_WORD_MS, json.maximum_word_ms, base.maximum_word_ms)?,
        silence_threshold: u16::try_from(threshold).map_err(|_| SettingError::OutOfRange {
            field: SILENCE_THRESHOLD.field,
            min: SILENCE_THRESHOLD.min,
            max: SILENCE_THRESHOLD.max,
        })?,
    };
    if p.total_analysis_ms <= p.initial_silence_ms || p.total_analysis_ms <= p.greeting_ms {
        return Err(SettingError::Invalid {
            field: TOTAL_ANALYSIS_MS.field,
            value: p.total_analysis_ms.to_string(),
            rule: "debe ser mayor que initial_silence_ms y que greeting_ms",
        });
    }
    Ok(p)
}

/// The whole JSON form of `p` (every field given).
pub fn to_json(p: &AmdParams) -> AmdParamsJson {
    AmdParamsJson {
        initial_silence_ms: Some(p.initial_silence_ms.into()),
        greeting_ms: Some(p.greeting_ms.into()),
        after_greeting_silence_ms: Some(p.after_greeting_silence_ms.into()),
        total_analysis_ms: Some(p.total_analysis_ms.into()),
        min_word_ms: Some(p.min_word_ms.into()),
        between_words_silence_ms: Some(p.between_words_silence_ms.into()),
        maximum_words: Some(p.maximum_words.into()),
        maximum_word_ms: Some(p.maximum_word_ms.into()),
        silence_threshold: Some(p.silence_threshold.into()),
    }
}

/// The form stored in `bases.amd_integrado`: `None` (NULL) for the defaults, so a campaign that
/// never changed them follows the service's defaults.
pub fn to_db(p: &AmdParams) -> Option<String> {
    (*p != AmdParams::default()).then(|| serde_json::to_string(&to_json(p)).unwrap_or_default())
}

/// Reads `bases.amd_integrado` (NULL: the defaults). Fields missing from the stored JSON keep
/// their default. The error names the field.
pub fn from_db(raw: Option<&str>) -> Result<AmdParams, String> {
    let Some(raw) = raw else {
        return Ok(AmdParams::default());
    };
    let json: AmdParamsJson =
        serde_json::from_str(raw).map_err(|e| format!("amd_integrado: {e}"))?;
    parse(&AmdParams::default(), &json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: serde_json::Value) -> AmdParamsJson {
        serde_json::from_value(v).unwrap()
    }

    fn err(base: &AmdParams, v: serde_json::Value) -> String {
        parse(base, &json(v)).unwrap_err().to_string()
    }

    #[test]
    fn limits_default_to_the_detectors_defaults() {
        let d = AmdParams::default();
        let from_limits = AmdParams {
            initial_silence_ms: INITIAL_SILENCE_MS.default,
            greeting_ms: GREETING_MS.default,
            after_greeting_silence_ms: AFTER_GREETING_SILENCE_MS.default,
            total_analysis_ms: TOTAL_ANALYSIS_MS.default,
            min_word_ms: MIN_WORD_MS.default,
            between_words_silence_ms: BETWEEN_WORDS_SILENCE_MS.default,
            maximum_words: MAXIMUM_WORDS.default,
            maximum_word_ms: MAXIMUM_WORD_MS.default,
            silence_threshold: SILENCE_THRESHOLD.default as u16,
        };
        assert_eq!(from_limits, d);
        assert_eq!(parse(&d, &AmdParamsJson::default()), Ok(d.clone()));
    }

    #[test]
    fn given_fields_are_merged_onto_the_base() {
        let d = AmdParams::default();
        let p = parse(&d, &json(serde_json::json!({"greeting_ms": 2000}))).unwrap();
        assert_eq!(
            p,
            AmdParams {
                greeting_ms: 2000,
                ..d.clone()
            }
        );
        // A second change keeps the first.
        let q = parse(&p, &json(serde_json::json!({"maximum_words": 4}))).unwrap();
        assert_eq!(
            q,
            AmdParams {
                greeting_ms: 2000,
                maximum_words: 4,
                ..d.clone()
            }
        );
        // Every field is read into its own slot.
        let all = serde_json::json!({
            "initial_silence_ms": 3000, "greeting_ms": 2000, "after_greeting_silence_ms": 700,
            "total_analysis_ms": 6000, "min_word_ms": 120, "between_words_silence_ms": 60,
            "maximum_words": 5, "maximum_word_ms": 4000, "silence_threshold": 300});
        let p = parse(&d, &json(all.clone())).unwrap();
        assert_eq!(
            p,
            AmdParams {
                initial_silence_ms: 3000,
                greeting_ms: 2000,
                after_greeting_silence_ms: 700,
                total_analysis_ms: 6000,
                min_word_ms: 120,
                between_words_silence_ms: 60,
                maximum_words: 5,
                maximum_word_ms: 4000,
                silence_threshold: 300,
            }
        );
        assert_eq!(serde_json::to_value(to_json(&p)).unwrap(), all);
        assert_eq!(parse(&d, &to_json(&p)), Ok(p));
    }

    #[test]
    fn every_field_is_range_checked_and_named() {
        let d = AmdParams::default();
        let cases: [(&str, i64, i64); 9] = [
            ("initial_silence_ms", 500, 10_000),
            ("greeting_ms", 500, 10_000),
            ("after_greeting_silence_ms", 200, 5_000),
            ("total_analysis_ms", 1_000, 15_000),
            ("min_word_ms", 20, 1_000),
            ("between_words_silence_ms", 20, 1_000),
            ("maximum_words", 1, 20),
            ("maximum_word_ms", 500, 15_000),
            ("silence_threshold", 16, 8_192),
        ];
        for (field, min, max) in cases {
            // The bounds themselves are accepted (with room for the cross-field rule).
            for ok in [min, max] {
                let mut v = serde_json::json!({ field: ok, "total_analysis_ms": 15_000 });
                if field == "total_analysis_ms" {
                    v = serde_json::json!({ field: ok, "initial_silence_ms": 500,
                        "greeting_ms": 500 });
                }
                assert!(parse(&d, &json(v.clone())).is_ok(), "{v}");
            }
            for bad in [min - 1, max + 1, -1, i64::MAX, i64::MIN] {
                let e = err(&d, serde_json::json!({ field: bad }));
                assert!(
                    e.starts_with(&format!("amd_integrado.{field}:")),
                    "{field}={bad} → {e}"
                );
            }
        }
    }

    #[test]
    fn total_analysis_must_exceed_initial_silence_and_greeting() {
        let d = AmdParams::default();
        for v in [
            serde_json::json!({"total_analysis_ms": 2000, "initial_silence_ms": 2500}),
            serde_json::json!({"total_analysis_ms": 2500, "initial_silence_ms": 2500}),
            serde_json::json!({"total_analysis_ms": 3000, "greeting_ms": 3000}),
            serde_json::json!({"greeting_ms": 7000}),
            serde_json::json!({"initial_silence_ms": 6500}),
        ] {
            let e = err(&d, v.clone());
            assert!(
                e.starts_with("amd_integrado.total_analysis_ms:"),
                "{v} → {e}"
            );
        }
        // The rule applies to the merged result: raising both together is fine.
        let p = parse(
            &d,
            &json(serde_json::json!({"greeting_ms": 7000, "total_analysis_ms": 7001})),
        )
        .unwrap();
        assert_eq!((p.greeting_ms, p.total_analysis_ms), (7000, 7001));
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        assert!(serde_json::from_value::<AmdParamsJson>(serde_json::json!({"otro": 1})).is_err());
        assert!(serde_json::from_value::<AmdParamsJson>(serde_json::json!("x")).is_err());
        assert!(
            serde_json::from_value::<AmdParamsJson>(serde_json::json!({"greeting_ms": 1.5}))
                .is_err()
        );
    }

    #[test]
    fn stored_form() {
        let d = AmdParams::default();
        assert_eq!(to_db(&d), None);
        assert_eq!(from_db(None), Ok(d.clone()));
        let p = AmdParams {
            maximum_words: 4,
            ..d.clone()
        };
        let raw = to_db(&p).unwrap();
        assert_eq!(from_db(Some(&raw)), Ok(p));
        // A partial value (edited by hand) keeps the defaults for the rest.
        assert_eq!(
            from_db(Some(r#"{"greeting_ms": 2000}"#)).map(|p| p.greeting_ms),
            Ok(2000)
        );
        // Values that no longer parse are errors naming the field, never panics.
        for (raw, field) in [
            (r#"{"greeting_ms": 10}"#, "amd_integrado.greeting_ms:"),
            (r#"{"otro": 1}"#, "amd_integrado:"),
            ("no es json", "amd_integrado:"),
            (
                r#"{"total_analysis_ms": 1000}"#,
                "amd_integrado.total_analysis_ms:",
            ),
        ] {
            let e = from_db(Some(raw)).unwrap_err();
            assert!(e.starts_with(field), "{raw} → {e}");
        }
    }
}
