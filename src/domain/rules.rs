//! Calling rules that protect the called person, beyond the campaign's hours: dates the campaign
//! never dials, a cap on attempts per number per rolling 24 hours, and an abandon-rate ceiling.
//!
//! Regulators judge a dialer by the called person's clock and by how often it bothers them
//! (TCPA: 8:00–21:00 at the called party's local time; several US states: at most 3 attempts per
//! 24 h; FTC TSR and Ofcom: at most 3 % of calls answered by a person abandoned). The hours are in
//! `window.rs` (applied in each number's own zone); these are the rest.

use chrono::NaiveDate;

use super::settings::Limit;

/// Most dates a campaign may exclude (ten years of holidays).
pub const MAX_FECHAS_EXCLUIDAS: usize = 1000;

/// A campaign's own cap on attempts per number per rolling 24 h (beside `MAX_INTENTOS_DIA`).
pub const MAX_INTENTOS_DIA: Limit = Limit {
    field: "max_intentos_dia",
    min: 1,
    max: 50,
    default: 0,
};

/// `tasa_abandono_maxima`, percent: FTC TSR and Ofcom allow 3 %.
pub const TASA_ABANDONO_MAXIMA: f64 = 3.0;

/// The abandon ceiling acts only once the campaign has this many calls answered by a person in
/// the last 30 days: with fewer, one abandoned call is several percent and says nothing yet.
pub const MUESTRA_MINIMA_ABANDONO: u64 = 100;

/// From this share of the ceiling on, the campaign slows down (see [`abandon_action`]).
const SLOW_FROM: f64 = 0.8;
/// The slowest a campaign goes before it pauses, as a share of its `cps`.
const SLOWEST: f64 = 0.1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("fechas_excluidas: fecha inválida {0:?} (formato AAAA-MM-DD)")]
    BadDate(String),
    #[error("fechas_excluidas: a lo sumo {MAX_FECHAS_EXCLUIDAS} fechas")]
    TooManyDates,
    #[error("tasa_abandono_maxima: debe ser un porcentaje mayor que 0 y a lo sumo 100")]
    BadRate,
}

/// The dates (in the campaign's zone) on which a campaign never dials: holidays, days of
/// mourning. Sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludedDates(Vec<NaiveDate>);

impl ExcludedDates {
    /// `AAAA-MM-DD` each; the message names the field and echoes (a bounded part of) the value.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, RulesError> {
        if raw.len() > MAX_FECHAS_EXCLUIDAS {
            return Err(RulesError::TooManyDates);
        }
        let mut dates = raw
            .iter()
            .map(|s| {
                let s = s.as_ref();
                // `%Y` alone would take "+12345-01-01" or " 2026-1-1"; the form is fixed.
                let fixed = s.len() == 10
                    && s.bytes().enumerate().all(|(i, b)| {
                        matches!(i, 4 | 7) == (b == b'-') && (b == b'-' || b.is_ascii_digit())
                    });
                fixed
                    .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .flatten()
                    .ok_or_else(|| RulesError::BadDate(s.chars().take(20).collect()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        dates.sort_unstable();
        dates.dedup();
        Ok(ExcludedDates(dates))
    }

    /// The comma-separated form stored in `bases.fechas_excluidas`.
    pub fn parse_csv(raw: &str) -> Result<Self, RulesError> {
        let parts: Vec<&str> = raw.split(',').filter(|p| !p.is_empty()).collect();
        Self::parse(&parts)
    }

    pub fn to_csv(&self) -> String {
        self.names().join(",")
    }

    pub fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect()
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.0.binary_search(&d).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks `tasa_abandono_maxima` (percent, 0 < x ≤ 100).
pub fn parse_abandon_ceiling(v: f64) -> Result<f64, RulesError> {
    if v.is_finite() && v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(RulesError::BadRate)
    }
}

/// A campaign's calling rules besides its hours.
#[derive(Debug, Clone, PartialEq)]
pub struct CallingRules {
    pub fechas_excluidas: ExcludedDates,
    /// The campaign's own cap on attempts per number per rolling 24 h; `None`: none.
    pub max_intentos_dia: Option<u32>,
    /// Percent of calls answered by a person that may be abandoned over 30 days.
    pub tasa_abandono_maxima: f64,
}

impl Default for CallingRules {
    fn default() -> Self {
        CallingRules {
            fechas_excluidas: ExcludedDates::default(),
            max_intentos_dia: None,
            tasa_abandono_maxima: TASA_ABANDONO_MAXIMA,
        }
    }
}

/// The stored form of [`CallingRules`] (`bases.reglas`, JSON), every field given.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesDb {
    fechas_excluidas: Vec<String>,
    max_intentos_dia: Option<u32>,
    tasa_abandono_maxima: f64,
}

impl CallingRules {
    /// `None` for the defaults (what a NULL column means).
    pub fn to_db(&self) -> Option<String> {
        if *self == CallingRules::default() {
            return None;
        }
        serde_json::to_string(&RulesDb {
            fechas_excluidas: self.fechas_excluidas.names(),
            max_intentos_dia: self.max_intentos_dia,
            tasa_abandono_maxima: self.tasa_abandono_maxima,
        })
        .ok()
    }

    /// A stored value that no longer parses (edited by hand) is an error naming the field.
    pub fn from_db(raw: Option<&str>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(CallingRules::default());
        };
        let db: RulesDb = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        let max = db
            .max_intentos_dia
            .map(|v| MAX_INTENTOS_DIA.check(i64::from(v)))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(CallingRules {
            fechas_excluidas: ExcludedDates::parse(&db.fechas_excluidas)
                .map_err(|e| e.to_string())?,
            max_intentos_dia: max,
            tasa_abandono_maxima: parse_abandon_ceiling(db.tasa_abandono_maxima)
                .map_err(|e| e.to_string())?,
        })
    }
}

/// Why a number that is due waits instead of being dialed: the `espera` column of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Outside the calling window in the number's own zone.
    Horario,
    /// Over the attempts per rolling 24 h (`MAX_INTENTOS_DIA` or the campaign's).
    TopeDiario,
}

impl Wait {
    pub fn as_str(self) -> &'static str {
        match self {
            Wait::Horario => "HORARIO",
            Wait::TopeDiario => "TOPE_DIARIO",
        }
    }
}

/// What the abandon rate asks of a campaign's pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbandonAction {
    /// Dial at the configured `cps`.
    Normal,
    /// Dial at this share of the configured `cps` (0.1..1).
    Slow(f64),
    /// The ceiling is reached: pause the campaign.
    Pause,
}

/// The policy: below 80 % of the ceiling (or with fewer than [`MUESTRA_MINIMA_ABANDONO`] calls
/// answered by a person) nothing changes; from 80 % of the ceiling the pace falls linearly, from
/// the full `cps` to 10 % of it just under the ceiling (fewer calls at once: fewer people waiting
/// for an agent); at the ceiling the campaign pauses, with the reason in estado.
pub fn abandon_action(abandonadas: u64, atendidas: u64, ceiling_pct: f64) -> AbandonAction {
    if atendidas < MUESTRA_MINIMA_ABANDONO || ceiling_pct <= 0.0 {
        return AbandonAction::Normal;
    }
    let rate = 100.0 * abandonadas as f64 / atendidas as f64;
    if rate >= ceiling_pct {
        return AbandonAction::Pause;
    }
    let from = SLOW_FROM * ceiling_pct;
    if rate < from {
        return AbandonAction::Normal;
    }
    let left = (ceiling_pct - rate) / (ceiling_pct - from);
    AbandonAction::Slow((SLOWEST + (1.0 - SLOWEST) * left).clamp(SLOWEST, 1.0))
}

/// The abandon rate in percent, 2 decimals (0 with no call answered by a person).
pub fn abandon_rate(abandonadas: u64, atendidas: u64) -> f64 {
    if atendidas == 0 {
        return 0.0;
    }
    (10_000.0 * abandonadas as f64 / atendidas as f64).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_sorted_and_hostile_ones_are_refused() {
        let d = ExcludedDates::parse(&["2026-12-25", "2026-01-01", "2026-12-25"]).unwrap();
        assert_eq!(d.to_csv(), "2026-01-01,2026-12-25");
        assert_eq!(ExcludedDates::parse_csv(&d.to_csv()), Ok(d.clone()));
        assert!(d.contains(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()));
        assert!(!d.contains(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()));
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "26-01-01",
            "2026-1-1",
            " 2026-01-01",
            "2026-01-01'",
            "+12345-01-01",
            "2026/01/01",
            "",
            "2026-01-01,2026-01-02",
        ] {
            let e = ExcludedDates::parse(&[bad]).unwrap_err();
            assert!(e.to_string().starts_with("fechas_excluidas"), "{bad}: {e}");
        }
        let many: Vec<String> = (0..=MAX_FECHAS_EXCLUIDAS)
            .map(|_| "2026-01-01".into())
            .collect();
        assert_eq!(ExcludedDates::parse(&many), Err(RulesError::TooManyDates));
    }

    #[test]
    fn rules_round_trip_through_the_database_form() {
        assert_eq!(CallingRules::default().to_db(), None);
        assert_eq!(CallingRules::from_db(None), Ok(CallingRules::default()));
        let r = CallingRules {
            fechas_excluidas: ExcludedDates::parse(&["2026-12-25"]).unwrap(),
            max_intentos_dia: Some(3),
            tasa_abandono_maxima: 2.5,
        };
        assert_eq!(CallingRules::from_db(r.to_db().as_deref()), Ok(r));
        let hand = r#"{"fechas_excluidas":["x"],"max_intentos_dia":null,"tasa_abandono_maxima":3}"#;
        assert!(CallingRules::from_db(Some(hand))
            .unwrap_err()
            .starts_with("fechas_excluidas"));
        assert!(CallingRules::from_db(Some("{}")).is_err());
    }

    #[test]
    fn ceiling_must_be_a_percentage() {
        assert_eq!(parse_abandon_ceiling(3.0), Ok(3.0));
        for bad in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
            assert!(parse_abandon_ceiling(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pace_falls_towards_the_ceiling_and_pauses_at_it() {
        use AbandonAction::*;
        // Too few answered calls: nothing, whatever the rate.
        assert_eq!(abandon_action(50, 99, 3.0), Normal);
        // 2 % < 2.4 % (80 % of 3 %).
        assert_eq!(abandon_action(2, 100, 3.0), Normal);
        // 2.4 %: still full speed; 2.7 %: half-way, 55 %; just under 3 %: about 10 %.
        match abandon_action(24, 1000, 3.0) {
            Normal => {}
            Slow(f) => assert!(f > 0.999, "{f}"),
            Pause => panic!("paused at 2.4 %"),
        }
        match abandon_action(25, 1000, 3.0) {
            Slow(f) => assert!((f - 0.85).abs() < 1e-9, "{f}"),
            other => panic!("{other:?}"),
        }
        match abandon_action(27, 1000, 3.0) {
            Slow(f) => assert!((f - 0.55).abs() < 1e-9, "{f}"),
            other => panic!("{other:?}"),
        }
        match abandon_action(2999, 100_000, 3.0) {
            Slow(f) => assert!((0.1..0.11).contains(&f), "{f}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(abandon_action(3, 100, 3.0), Pause);
        assert_eq!(abandon_action(100, 100, 3.0), Pause);
        assert_eq!(abandon_rate(1, 3), 33.33);
        assert_eq!(abandon_rate(0, 0), 0.0);
    }
}
