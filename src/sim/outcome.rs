//! What happens to a dialed number: chosen by its last digit (the default, so a test picks an
//! outcome by picking a number) or by a weighted mix that is deterministic per number and seed
//! (so a retried number meets the same fate, as a real busy line would).

use std::fmt;
use std::str::FromStr;

/// The fate of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `USER_BUSY` after the reject delay.
    Busy,
    /// Rings until `originate_timeout`, then `NO_ANSWER`.
    NoAnswer,
    /// `UNALLOCATED_NUMBER`, immediately.
    Unallocated,
    /// An answering machine: answers; `amd` says MACHINE, `avmd_start` hears a beep.
    Machine,
    /// `CALL_REJECTED` after the reject delay.
    Rejected,
    /// `NORMAL_TEMPORARY_FAILURE` after the reject delay.
    TemporaryFailure,
    /// A person: answers; `amd` says HUMAN.
    Human,
    /// A person whom `amd` cannot classify: answers; `amd` says NOTSURE.
    HumanNotSure,
}

/// The three verdicts of FreeSWITCH's `amd` application (`amd_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmdVerdict {
    Human,
    Machine,
    NotSure,
}

impl AmdVerdict {
    /// Value of `amd_result`.
    pub fn result(self) -> &'static str {
        match self {
            AmdVerdict::Human => "HUMAN",
            AmdVerdict::Machine => "MACHINE",
            AmdVerdict::NotSure => "NOTSURE",
        }
    }

    /// Value of `amd_cause`, one of the causes mod_amd reports for that verdict.
    pub fn cause(self) -> &'static str {
        match self {
            AmdVerdict::Human => "HUMAN",
            AmdVerdict::Machine => "LONGGREETING",
            AmdVerdict::NotSure => "TOOLONG",
        }
    }
}

impl Outcome {
    /// The hangup cause of a call that is never answered; `None` for outcomes that answer.
    pub fn failure_cause(self) -> Option<&'static str> {
        match self {
            Outcome::Busy => Some("USER_BUSY"),
            Outcome::NoAnswer => Some("NO_ANSWER"),
            Outcome::Unallocated => Some("UNALLOCATED_NUMBER"),
            Outcome::Rejected => Some("CALL_REJECTED"),
            Outcome::TemporaryFailure => Some("NORMAL_TEMPORARY_FAILURE"),
            Outcome::Machine | Outcome::Human | Outcome::HumanNotSure => None,
        }
    }

    /// What `amd` concludes on this call (meaningful only for answering outcomes).
    pub fn amd(self) -> AmdVerdict {
        match self {
            Outcome::Machine => AmdVerdict::Machine,
            Outcome::HumanNotSure => AmdVerdict::NotSure,
            _ => AmdVerdict::Human,
        }
    }

    /// The default rule: the destination's last digit (see the table in the module docs).
    /// `None` when the destination does not end in a digit.
    pub fn by_last_digit(destination: &str) -> Option<Outcome> {
        let digit = destination.chars().last()?.to_digit(10)?;
        Some(match digit {
            0 => Outcome::Busy,
            1 => Outcome::NoAnswer,
            2 => Outcome::Unallocated,
            3 => Outcome::Machine,
            4 => Outcome::Rejected,
            5 => Outcome::TemporaryFailure,
            9 => Outcome::HumanNotSure,
            _ => Outcome::Human, // 6, 7, 8
        })
    }
}

/// How outcomes are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum OutcomeRule {
    /// By the destination's last digit.
    LastDigit,
    /// By a weighted mix, deterministic per (seed, destination).
    Mix { mix: Mix, seed: u64 },
}

impl OutcomeRule {
    /// The outcome for `destination` (already validated as digits). A destination without a final
    /// digit under the last-digit rule is treated as a human, the harmless default.
    pub fn outcome(&self, destination: &str) -> Outcome {
        match self {
            OutcomeRule::LastDigit => Outcome::by_last_digit(destination).unwrap_or(Outcome::Human),
            OutcomeRule::Mix { mix, seed } => mix.pick(stable_hash(*seed, destination)),
        }
    }
}

/// A weighted outcome mix, parsed from `humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2`.
///
/// Keys (Spanish, like the results they produce): `humano`, `dudoso` (human, AMD NOTSURE),
/// `maquina`, `ocupado`, `no_contesta`, `invalido` (UNALLOCATED_NUMBER), `rechazada`,
/// `falla` (NORMAL_TEMPORARY_FAILURE). Weights are relative; they need not sum to 100.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// (outcome, weight) with weight > 0, in the order given.
    weights: Vec<(Outcome, u32)>,
    total: u64,
}

/// Why a `--mix` value was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MixError {
    #[error("mix entry `{0}` is not key=weight")]
    Entry(String),
    #[error("unknown mix key `{0}` (humano, dudoso, maquina, ocupado, no_contesta, invalido, rechazada, falla)")]
    Key(String),
    #[error("weight of `{0}` is not a whole number")]
    Weight(String),
    #[error("mix key `{0}` given twice")]
    Duplicate(String),
    #[error("the mix has no positive weight")]
    Empty,
}

impl Mix {
    /// The outcome for a 64-bit hash: buckets laid out in the order given.
    fn pick(&self, hash: u64) -> Outcome {
        let mut point = hash % self.total.max(1);
        for (outcome, weight) in &self.weights {
            let w = u64::from(*weight);
            if point < w {
                return *outcome;
            }
            point -= w;
        }
        // Unreachable when total is the sum of the weights; keep a harmless answer anyway.
        Outcome::Human
    }
}

fn mix_key(key: &str) -> Option<Outcome> {
    Some(match key {
        "humano" => Outcome::Human,
        "dudoso" => Outcome::HumanNotSure,
        "maquina" => Outcome::Machine,
        "ocupado" => Outcome::Busy,
        "no_contesta" => Outcome::NoAnswer,
        "invalido" => Outcome::Unallocated,
        "rechazada" => Outcome::Rejected,
        "falla" => Outcome::TemporaryFailure,
        _ => return None,
    })
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: Vec<(Outcome, u32)> = Vec::new();
        let mut seen: Vec<Outcome> = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, weight) = entry
                .split_once('=')
                .ok_or_else(|| MixError::Entry(entry.to_owned()))?;
            let key = key.trim();
            let outcome = mix_key(key).ok_or_else(|| MixError::Key(key.to_owned()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| MixError::Weight(key.to_owned()))?;
            if seen.contains(&outcome) {
                return Err(MixError::Duplicate(key.to_owned()));
            }
            seen.push(outcome);
            if weight > 0 {
                weights.push((outcome, weight));
            }
        }
        let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(MixError::Empty);
        }
        Ok(Mix { weights, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (outcome, weight) in &self.weights {
            let key = match outcome {
                Outcome::Human => "humano",
                Outcome::HumanNotSure => "dudoso",
                Outcome::Machine => "maquina",
                Outcome::Busy => "ocupado",
                Outcome::NoAnswer => "no_contesta",
                Outcome::Unallocated => "invalido",
                Outcome::Rejected => "rechazada",
                Outcome::TemporaryFailure => "falla",
            };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{key}={weight}")?;
        }
        Ok(())
    }
}

/// FNV-1a over the seed and the number, finished with the splitmix64 mixer: stable across Rust
/// versions and platforms (unlike `DefaultHasher`), so a seed reproduces a run exactly.
fn stable_hash(seed: u64, destination: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.to_le_bytes().iter().chain(destination.as_bytes()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_digit_table() {
        let expected = [
            ("5550", Outcome::Busy),
            ("5551", Outcome::NoAnswer),
            ("5552", Outcome::Unallocated),
            ("5553", Outcome::Machine),
            ("5554", Outcome::Rejected),
            ("5555", Outcome::TemporaryFailure),
            ("5556", Outcome::Human),
            ("5557", Outcome::Human),
            ("5558", Outcome::Human),
            ("5559", Outcome::HumanNotSure),
        ];
        for (number, outcome) in expected {
            assert_eq!(Outcome::by_last_digit(number), Some(outcome), "{number}");
        }
        assert_eq!(Outcome::by_last_digit("555x"), None);
        assert_eq!(Outcome::by_last_digit(""), None);
    }

    #[test]
    fn mix_parses_and_rejects() {
        let mix: Mix = "humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2"
            .parse()
            .expect("valid mix");
        assert_eq!(mix.total, 100);
        assert_eq!(
            mix.to_string(),
            "humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2"
        );
        assert_eq!("x=1".parse::<Mix>(), Err(MixError::Key("x".into())));
        assert_eq!(
            "humano".parse::<Mix>(),
            Err(MixError::Entry("humano".into()))
        );
        assert_eq!(
            "humano=-1".parse::<Mix>(),
            Err(MixError::Weight("humano".into()))
        );
        assert_eq!("humano=0".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!(
            "humano=1,humano=2".parse::<Mix>(),
            Err(MixError::Duplicate("humano".into()))
        );
    }

    #[test]
    fn mix_is_deterministic_and_follows_weights() {
        let mix: Mix = "humano=70,ocupado=30".parse().expect("valid mix");
        let rule = OutcomeRule::Mix { mix, seed: 7 };
        let mut humans = 0;
        for n in 0..10_000u32 {
            let number = format!("34600{n:06}");
            let first = rule.outcome(&number);
            assert_eq!(first, rule.outcome(&number), "not deterministic");
            if first == Outcome::Human {
                humans += 1;
            }
        }
        // 70 % ± 3 points over 10,000 numbers.
        assert!((6_700..=7_300).contains(&humans), "humans = {humans}");
    }

    #[test]
    fn seed_changes_the_draw() {
        let mix: Mix = "humano=50,ocupado=50".parse().expect("valid mix");
        let a = OutcomeRule::Mix {
            mix: mix.clone(),
            seed: 1,
        };
        let b = OutcomeRule::Mix { mix, seed: 2 };
        let differ = (0..200)
            .filter(|n| {
                let number = format!("600{n:04}");
                a.outcome(&number) != b.outcome(&number)
            })
            .count();
        assert!(
            differ > 50,
            "seeds give nearly the same draw ({differ}/200 differ)"
        );
    }
}
