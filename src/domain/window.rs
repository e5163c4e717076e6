//! Calling window: the hours and days a campaign may dial, in the campaign's own time zone.
//!
//! Times are wall-clock times in an IANA zone (chrono-tz), never fixed offsets, so a 09:00 start stays
//! 09:00 local across DST changes. `fin < inicio` is an overnight window (22:00–02:00) that belongs to
//! the day it starts on; `fin == inicio` means the whole day.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A day of the week, spelled as the API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weekday {
    Lun,
    Mar,
    Mie,
    Jue,
    Vie,
    Sab,
    Dom,
}

const DAY_NAMES: [&str; 7] = ["lun", "mar", "mie", "jue", "vie", "sab", "dom"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("dias: día desconocido {0:?} (se espera lun mar mie jue vie sab dom)")]
    UnknownDay(String),
    #[error("{0}: hora inválida {1:?} (formato HH:MM o HH:MM:SS)")]
    BadTime(&'static str, String),
    #[error(
        "zona_horaria: zona desconocida {0:?} (nombre IANA, p. ej. America/Argentina/Buenos_Aires)"
    )]
    UnknownZone(String),
}

/// A set of weekdays (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySet(u8);

impl DaySet {
    pub const ALL: DaySet = DaySet(0x7f);
    pub const NONE: DaySet = DaySet(0);

    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, WindowError> {
        let mut bits = 0u8;
        for n in names {
            let n = n.as_ref();
            let i = DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(n.trim()))
                .ok_or_else(|| WindowError::UnknownDay(n.chars().take(20).collect()))?;
            bits |= 1 << i;
        }
        Ok(DaySet(bits))
    }

    /// Comma-separated form stored in `bases.dias` (`lun,mar,mie`).
    pub fn parse_csv(raw: &str) -> Result<Self, WindowError> {
        let parts: Vec<&str> = raw.split(',').filter(|p| !p.trim().is_empty()).collect();
        Self::parse(&parts)
    }

    pub fn names(self) -> Vec<&'static str> {
        (0..7)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| DAY_NAMES[i])
            .collect()
    }

    pub fn to_csv(self) -> String {
        self.names().join(",")
    }

    pub fn contains(self, d: chrono::Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Parses `HH:MM` or `HH:MM:SS`.
pub fn parse_time(field: &'static str, raw: &str) -> Result<NaiveTime, WindowError> {
    NaiveTime::parse_from_str(raw, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(raw, "%H:%M"))
        .map_err(|_| WindowError::BadTime(field, raw.chars().take(20).collect()))
}

/// `HH:MM`, or `HH:MM:SS` when the seconds matter.
pub fn format_time(t: NaiveTime) -> String {
    if t.second() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

pub fn parse_zone(raw: &str) -> Result<Tz, WindowError> {
    raw.parse::<Tz>()
        .map_err(|_| WindowError::UnknownZone(raw.chars().take(64).collect()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallingWindow {
    pub inicio: NaiveTime,
    pub fin: NaiveTime,
    pub dias: DaySet,
    pub zona: Tz,
}

impl Default for CallingWindow {
    /// 09:00–21:00 every day, UTC: the common legal calling hours; campaigns set their own zone.
    fn default() -> Self {
        CallingWindow {
            inicio: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN), // constant, valid
            fin: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),   // constant, valid
            dias: DaySet::ALL,
            zona: Tz::UTC,
        }
    }
}

impl CallingWindow {
    /// Whether a call may start at `now`. The end is exclusive: a 09:00–21:00 window is closed at 21:00.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.zona);
        let t = local.time();
        let today = local.weekday();
        if self.inicio == self.fin {
            return self.dias.contains(today);
        }
        if self.inicio < self.fin {
            return self.dias.contains(today) && t >= self.inicio && t < self.fin;
        }
        // Overnight: the part after midnight belongs to the previous day's window.
        (t >= self.inicio && self.dias.contains(today))
            || (t < self.fin && self.dias.contains(today.pred()))
    }

    /// The first instant at or after `now` when the window is open; `None` if no day is enabled.
    /// A start inside a DST gap (02:30 on a spring-forward night) moves to the end of the gap; an
    /// ambiguous start (autumn) takes the earlier of the two instants.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.dias.is_empty() {
            return None;
        }
        if self.is_open(now) {
            return Some(now);
        }
        let today = now.with_timezone(&self.zona).date_naive();
        // A whole-day window opens at midnight, whatever `inicio` says.
        let start = if self.inicio == self.fin {
            NaiveTime::MIN
        } else {
            self.inicio
        };
        (0..=8)
            .filter_map(|offset| today.checked_add_signed(Duration::days(offset)))
            .filter(|d| self.dias.contains(d.weekday()))
            .filter_map(|d| first_instant(self.zona, d.and_time(start)))
            // A window that lies entirely inside a DST gap does not happen that day.
            .find(|s| *s > now && self.is_open(*s))
    }
}

/// The first instant at or after the wall-clock time `local` in `zone`: `local` itself, or, inside
/// a DST gap (02:30 on a spring-forward night), the end of the gap; of an ambiguous time
/// (autumn), the earlier instant.
pub fn first_instant(zone: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    // A DST gap is at most a few hours; step minute by minute to its end.
    (0..=240).find_map(|m| {
        zone.from_local_datetime(&(local + Duration::minutes(m)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

impl Weekday {
    pub fn as_str(self) -> &'static str {
        DAY_NAMES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap() // test literals
    }

    fn window(inicio: &str, fin: &str, dias: &[&str], zona: &str) -> CallingWindow {
        CallingWindow {
            inicio: parse_time("hora_inicio", inicio).unwrap(), // test literals
            fin: parse_time("hora_fin", fin).unwrap(),
            dias: DaySet::parse(dias).unwrap(),
            zona: parse_zone(zona).unwrap(),
        }
    }

    #[test]
    fn days_parse_and_print() {
        let d = DaySet::parse(&["lun", "VIE", "dom"]).unwrap(); // valid literal
        assert_eq!(d.to_csv(), "lun,vie,dom");
        assert_eq!(DaySet::parse_csv("lun,vie,dom"), Ok(d));
        assert!(DaySet::parse(&["monday"]).is_err());
        assert!(parse_time("hora_inicio", "25:00").is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
        assert_eq!(format_time(parse_time("x", "09:30").unwrap()), "09:30");
    }

    #[test]
    fn plain_window_in_a_zone() {
        // Buenos Aires is UTC-3 all year.
        let w = window(
            "09:00",
            "20:00",
            &["lun", "mar", "mie", "jue", "vie"],
            "America/Argentina/Buenos_Aires",
        );
        // Friday 2026-11-27 11:59 UTC = 08:59 local: closed; 12:00 UTC = 09:00 local: open.
        assert!(!w.is_open(utc("2026-11-27T11:59:59Z")));
        assert!(w.is_open(utc("2026-11-27T12:00:00Z")));
        assert!(!w.is_open(utc("2026-11-27T23:00:00Z"))); // 20:00 local, end exclusive
                                                          // Saturday closed; next opening is Monday 09:00 local.
        assert!(!w.is_open(utc("2026-11-28T15:00:00Z")));
        assert_eq!(
            w.next_open(utc("2026-11-28T15:00:00Z")),
            Some(utc("2026-11-30T12:00:00Z"))
        );
    }

    #[test]
    fn follows_dst_not_offsets() {
        let w = window(
            "09:00",
            "17:00",
            &["lun", "mar", "mie", "jue", "vie", "sab", "dom"],
            "Europe/Madrid",
        );
        // Winter: UTC+1, summer: UTC+2.
        assert!(w.is_open(utc("2026-01-15T08:00:00Z")));
        assert!(!w.is_open(utc("2026-07-15T06:30:00Z")));
        assert!(w.is_open(utc("2026-07-15T07:00:00Z")));
        assert_eq!(
            w.next_open(utc("2026-03-29T00:00:00Z")),
            Some(utc("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn start_inside_a_dst_gap_moves_to_its_end() {
        // New York springs forward on 2026-03-08: 02:00 → 03:00 local.
        let w = window("02:30", "05:00", &["dom"], "America/New_York");
        // 03:00 EDT = 07:00 UTC.
        assert_eq!(
            w.next_open(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // Autumn: 01:30 happens twice on 2026-11-01; the earlier (EDT, 05:30 UTC) is taken.
        let w = window("01:30", "04:00", &["dom"], "America/New_York");
        assert_eq!(
            w.next_open(utc("2026-11-01T04:00:00Z")),
            Some(utc("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn overnight_window_belongs_to_its_start_day() {
        let w = window("22:00", "02:00", &["vie"], "UTC");
        assert!(w.is_open(utc("2026-11-27T23:00:00Z"))); // Friday 23:00
        assert!(w.is_open(utc("2026-11-28T01:59:59Z"))); // Saturday 01:59, Friday's window
        assert!(!w.is_open(utc("2026-11-28T02:00:00Z")));
        assert!(!w.is_open(utc("2026-11-28T23:00:00Z"))); // Saturday night: not enabled
        assert!(!w.is_open(utc("2026-11-27T01:00:00Z"))); // Friday 01:00 belongs to Thursday
        assert_eq!(
            w.next_open(utc("2026-11-28T03:00:00Z")),
            Some(utc("2026-12-04T22:00:00Z"))
        );
    }

    #[test]
    fn whole_day_and_no_day() {
        let w = window("00:00", "00:00", &["lun"], "UTC");
        assert!(w.is_open(utc("2026-11-30T23:59:59Z")));
        let none = CallingWindow {
            dias: DaySet::NONE,
            ..CallingWindow::default()
        };
        assert_eq!(none.next_open(utc("2026-11-30T10:00:00Z")), None);
    }

    proptest! {
        #[test]
        fn next_open_is_open_and_not_before_now(
            secs in 1_700_000_000i64..1_900_000_000,
            h1 in 0u32..24, h2 in 0u32..24, days in 1u8..128,
            zone in prop::sample::select(vec!["UTC", "Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
        ) {
            let w = CallingWindow {
                inicio: NaiveTime::from_hms_opt(h1, 30, 0).unwrap(),
                fin: NaiveTime::from_hms_opt(h2, 0, 0).unwrap(),
                dias: DaySet(days),
                zona: parse_zone(zone).unwrap(),
            };
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let next = w.next_open(now);
            prop_assert!(next.is_some());
            let next = next.unwrap();
            prop_assert!(next >= now);
            prop_assert!(w.is_open(next), "{:?} {:?}", w, next);
        }
    }
}
