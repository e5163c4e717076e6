//! Calls per second.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Highest accepted rate. Far above any carrier's cap (3–50 CPS); it only rejects typos.
const MAX_CPS: f64 = 1000.0;
/// Highest accepted ceiling on the sum of all campaigns (`CPS_MAXIMO`): several campaigns of up to
/// [`MAX_CPS`] each may share it.
const MAX_TOTAL_CPS: f64 = 10_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CpsError {
    #[error("cps debe ser un número finito mayor que 0 y como máximo {MAX_CPS}")]
    OutOfRange,
    #[error("debe ser un número finito mayor que 0 y como máximo {MAX_TOTAL_CPS}")]
    TotalOutOfRange,
}

/// Originates per second of one campaign; fractional rates (0.5 = one call every 2 s) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cps(f64);

impl Cps {
    pub fn parse(v: f64) -> Result<Self, CpsError> {
        if v.is_finite() && v > 0.0 && v <= MAX_CPS {
            Ok(Cps(v))
        } else {
            Err(CpsError::OutOfRange)
        }
    }

    /// A ceiling on the sum of all campaigns' rates (`CPS_MAXIMO`): up to 10,000.
    pub fn parse_total(v: f64) -> Result<Self, CpsError> {
        if v.is_finite() && v > 0.0 && v <= MAX_TOTAL_CPS {
            Ok(Cps(v))
        } else {
            Err(CpsError::TotalOutOfRange)
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for Cps {
    /// One call per second: the gentlest useful default for a new campaign.
    fn default() -> Self {
        Cps(1.0)
    }
}

impl TryFrom<f64> for Cps {
    type Error = CpsError;
    fn try_from(v: f64) -> Result<Self, CpsError> {
        Cps::parse(v)
    }
}

impl Serialize for Cps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Cps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cps::parse(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds() {
        assert!(Cps::parse(0.5).is_ok());
        assert!(Cps::parse(1000.0).is_ok());
        for bad in [0.0, -1.0, 1000.0001, f64::NAN, f64::INFINITY] {
            assert!(Cps::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Cps>("0").is_err());
        assert_eq!(serde_json::from_str::<Cps>("2.5").ok(), Some(Cps(2.5)));
    }

    proptest! {
        #[test]
        fn accepted_rates_are_in_range(v in proptest::num::f64::ANY) {
            if let Ok(c) = Cps::parse(v) {
                prop_assert!(c.get() > 0.0 && c.get() <= MAX_CPS);
            }
        }
    }
}
