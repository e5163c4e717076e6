//! The calling rules, applied where numbers are claimed and again just before each originate.
//!
//! - **The called person's window.** A number may carry its own IANA zone (`zona_horaria`, given
//!   at load or derived from the number, see `domain::number_zone`); the campaign's hours and days
//!   apply in that zone, in the campaign's zone otherwise. A claimed number outside its window is
//!   given back at once, due at the instant its window opens, with `espera` HORARIO: it is not
//!   claimed again before then (no busy loop), and numbers inside their window go on being dialed.
//! - **Excluded dates** (`fechas_excluidas`, the campaign's zone): the whole campaign waits.
//! - **Attempts per rolling 24 h**: `MAX_INTENTOS_DIA` (every campaign together) and the
//!   campaign's `max_intentos_dia`. Each attempt is recorded in `intentos_telefono` when it is
//!   handed to FreeSWITCH, under one process-wide lock together with the check, so two campaigns
//!   cannot both take a number's last attempt. A number over a cap waits (`espera` TOPE_DIARIO)
//!   until the attempt that puts it over is 24 h old. Attempts are recorded while a cap applies
//!   (the service's, or the campaign's own for its numbers).
//! - **Abandon ceiling**: see `domain::rules::abandon_action`, applied by the runner.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Mutex;

use crate::domain::{first_instant, CallingWindow, Wait};
use crate::store::{Campaign, ClaimedNumber, Store, StoreError};

/// The span of the caps.
pub const DAY: Duration = Duration::hours(24);
/// How often attempts older than [`DAY`] are purged (with the next recording).
const PURGE_EVERY: Duration = Duration::minutes(10);

/// The campaign's window in a number's own zone (`None`: the campaign's zone).
pub fn window_for(campaign: &Campaign, zona: Option<Tz>) -> CallingWindow {
    let mut w = campaign.ventana.clone();
    if let Some(z) = zona {
        w.zona = z;
    }
    w
}

/// If today (in the campaign's zone) is an excluded date, the instant the exclusion ends: the
/// next midnight that starts a date not excluded. `None`: today may be dialed.
pub fn excluded_until(campaign: &Campaign, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let dates = &campaign.reglas.fechas_excluidas;
    let zone = campaign.ventana.zona;
    let mut day = now.with_timezone(&zone).date_naive();
    if !dates.contains(day) {
        return None;
    }
    while dates.contains(day) {
        day = day.succ_opt()?;
    }
    // Midnight may not exist on a DST night: the first instant of that date.
    first_instant(zone, day.and_time(NaiveTime::MIN))
}

/// A claim split by the rules: what may be dialed now, and what waits until when and why.
#[derive(Debug, Default)]
pub struct Sorted {
    pub now: Vec<ClaimedNumber>,
    pub later: Vec<(i64, DateTime<Utc>, Wait)>,
}

/// Splits claimed numbers by their own window at `now`. A window with no day enabled never
/// opens: such numbers wait a day (the campaign waits too, see the runner).
pub fn sort_by_window(
    campaign: &Campaign,
    claimed: Vec<ClaimedNumber>,
    now: DateTime<Utc>,
) -> Sorted {
    let mut sorted = Sorted::default();
    for n in claimed {
        let w = window_for(campaign, n.zona);
        if w.is_open(now) {
            sorted.now.push(n);
        } else {
            let until = w.next_open(now).unwrap_or(now + DAY);
            sorted.later.push((n.id, until, Wait::Horario));
        }
    }
    sorted
}

/// `MAX_INTENTOS_DIA` and the lock that makes check-and-record one step for the whole process.
#[derive(Debug)]
pub struct AttemptCaps {
    global: Option<u32>,
    /// The last purge of old attempts.
    gate: Mutex<Option<DateTime<Utc>>>,
}

impl AttemptCaps {
    /// `max_intentos_dia` 0: no service-wide cap.
    pub fn new(max_intentos_dia: u32) -> Self {
        AttemptCaps {
            global: (max_intentos_dia > 0).then_some(max_intentos_dia),
            gate: Mutex::new(None),
        }
    }

    /// Splits `numbers` (already inside their window) into those that may be dialed now, whose
    /// attempts are recorded at `now`, and those over a cap, with the instant they may be dialed.
    /// With no cap for this campaign, everything passes and nothing is recorded.
    pub async fn admit(
        &self,
        store: &Store,
        campaign: &Campaign,
        numbers: Vec<ClaimedNumber>,
        now: DateTime<Utc>,
    ) -> Result<Sorted, StoreError> {
        let own = campaign.reglas.max_intentos_dia;
        if (self.global.is_none() && own.is_none()) || numbers.is_empty() {
            return Ok(Sorted {
                now: numbers,
                later: Vec::new(),
            });
        }
        let mut last_purge = self.gate.lock().await;
        let phones: Vec<&str> = numbers.iter().map(|n| n.telefono.as_str()).collect();
        let attempts = store.attempts_since(&phones, now - DAY).await?;
        // Per number: its attempts in every campaign, and in this one.
        let mut seen: HashMap<String, Seen> = HashMap::new();
        for a in attempts {
            let mine = a.campana == campaign.nombre.as_str();
            let entry = seen.entry(a.telefono).or_default();
            entry.0.push(a.momento);
            if mine {
                entry.1.push(a.momento);
            }
        }
        let mut sorted = Sorted::default();
        let mut record = Vec::new();
        for n in numbers {
            let (all, mine) = seen
                .get_mut(n.telefono.as_str())
                .map(|(a, m)| (std::mem::take(a), std::mem::take(m)))
                .unwrap_or_default();
            let until = [over_cap(all, self.global, now), over_cap(mine, own, now)]
                .into_iter()
                .flatten()
                .max();
            match until {
                Some(until) => sorted.later.push((n.id, until, Wait::TopeDiario)),
                None => {
                    if let Some(uuid) = n.uuid {
                        record.push((n.telefono.clone(), uuid.hyphenated().to_string()));
                    }
                    sorted.now.push(n);
                }
            }
        }
        let purge = match *last_purge {
            Some(t) if now - t < PURGE_EVERY && t <= now => None,
            _ => Some(now - DAY),
        };
        let rows: Vec<(&str, &str, String)> = record
            .iter()
            .map(|(t, u)| (t.as_str(), campaign.nombre.as_str(), u.clone()))
            .collect();
        store.record_attempts(&rows, now, purge).await?;
        if purge.is_some() {
            *last_purge = Some(now);
        }
        Ok(sorted)
    }
}

/// A number's attempts of the last 24 h: in every campaign, and in the one claiming it.
type Seen = (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>);

/// With `cap` attempts allowed per rolling 24 h and these attempts of the last 24 h, the instant
/// the number may be dialed again (`None`: now): when the attempt that fills the cap is 24 h old.
fn over_cap(
    mut attempts: Vec<DateTime<Utc>>,
    cap: Option<u32>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let cap = cap? as usize;
    if attempts.len() < cap {
        return None;
    }
    attempts.sort_unstable();
    let until = attempts[attempts.len() - cap] + DAY;
    (until > now).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CampaignName, ExcludedDates};
    use crate::store::NewCampaign;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap() // test literals
    }

    fn campaign() -> Campaign {
        NewCampaign::new(CampaignName::parse("C").unwrap())
            .created(crate::domain::TableName::parse("C").unwrap(), Utc::now())
    }

    fn number(id: i64, zona: Option<&str>) -> ClaimedNumber {
        ClaimedNumber {
            id,
            telefono: format!("555{id:04}"),
            intentos: 0,
            uuid: Some(uuid::Uuid::new_v4()),
            datos: None,
            zona: zona.map(|z| z.parse().unwrap()),
        }
    }

    #[test]
    fn each_number_is_judged_in_its_own_zone() {
        // 09:00–21:00; at 13:30 UTC: Madrid 14:30 open, New York 08:30 closed (opens 14:00 UTC).
        let c = campaign();
        let now = utc("2026-11-27T13:30:00Z");
        let s = sort_by_window(
            &c,
            vec![
                number(1, Some("Europe/Madrid")),
                number(2, Some("America/New_York")),
                number(3, None),
            ],
            now,
        );
        let ids: Vec<i64> = s.now.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(s.later, [(2, utc("2026-11-27T14:00:00Z"), Wait::Horario)]);
    }

    #[test]
    fn the_cap_lifts_when_the_attempt_that_fills_it_is_a_day_old() {
        let t = |s: &str| utc(s);
        let now = t("2026-11-28T10:00:00Z");
        let attempts = vec![
            t("2026-11-27T12:00:00Z"),
            t("2026-11-27T11:00:00Z"),
            t("2026-11-28T09:00:00Z"),
        ];
        assert_eq!(over_cap(attempts.clone(), None, now), None);
        assert_eq!(over_cap(attempts.clone(), Some(4), now), None);
        // Three allowed, three made: free when the oldest is 24 h old.
        assert_eq!(
            over_cap(attempts.clone(), Some(3), now),
            Some(t("2026-11-28T11:00:00Z"))
        );
        // Two allowed: free when the second newest is 24 h old.
        assert_eq!(
            over_cap(attempts, Some(2), now),
            Some(t("2026-11-28T12:00:00Z"))
        );
        // Exactly at that instant the cap no longer holds.
        assert_eq!(
            over_cap(vec![t("2026-11-27T10:00:00Z")], Some(1), now),
            None
        );
    }

    #[test]
    fn an_excluded_date_ends_at_the_next_midnight_not_excluded() {
        let mut c = campaign();
        c.ventana.zona = "Europe/Madrid".parse().unwrap();
        c.reglas.fechas_excluidas = ExcludedDates::parse(&["2026-12-24", "2026-12-25"]).unwrap();
        // 23:30 UTC on the 23rd is 00:30 on the 24th in Madrid.
        assert_eq!(
            excluded_until(&c, utc("2026-12-23T23:30:00Z")),
            Some(utc("2026-12-25T23:00:00Z"))
        );
        assert_eq!(excluded_until(&c, utc("2026-12-23T22:59:59Z")), None);
        assert_eq!(excluded_until(&c, utc("2026-12-25T23:00:00Z")), None);
    }
}
