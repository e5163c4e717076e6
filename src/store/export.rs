//! A campaign's CDRs (`llamadas`) read for the export and for its charts: pages by key for a
//! streamed export, and counts made in the database for the charts, so that neither ever holds a
//! whole campaign in memory.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::rows::{to_naive, CdrRow};
use super::{Backend, Store, StoreError};
use crate::domain::CampaignName;

/// Most points of the attempts chart: a day at one per minute. A longer campaign gets wider
/// buckets (see [`minutes_per_point`]), so the chart and its query stay bounded.
pub const MAX_POINTS: i64 = 1440;

/// Bucket widths tried in order, in minutes: round ones, so that the time axis reads well.
const WIDTHS: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

/// Which CDRs to export, on `inicio`: `desde` inclusive, `hasta` exclusive; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdrRange {
    pub desde: Option<DateTime<Utc>>,
    pub hasta: Option<DateTime<Utc>>,
}

/// Attempts and answered calls of one bucket of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesPoint {
    /// The bucket's first minute (UTC).
    pub minuto: DateTime<Utc>,
    pub intentos: u64,
    /// Attempts answered by anyone (a person or a machine): `contestada` is set.
    pub contestadas: u64,
}

/// What the campaign's calls chart shows (the results chart reads [`Store::result_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSeries {
    /// Width of each point, in minutes (1 unless the campaign spans more than [`MAX_POINTS`]
    /// minutes).
    pub minutos_por_punto: u32,
    /// Every bucket from the first CDR's to the last one's, empty ones included (0, 0); empty
    /// without CDRs.
    pub puntos: Vec<SeriesPoint>,
}

/// The bucket width (minutes) and the aligned origin (minutes since the epoch) for CDRs whose
/// `inicio` falls between the minutes `first` and `last` (since the epoch): the narrowest of
/// [`WIDTHS`] that needs at most [`MAX_POINTS`] points, else whole days. The origin is a multiple
/// of the width, so buckets start at round times (14:00, 14:15…).
pub fn minutes_per_point(first: i64, last: i64) -> (i64, i64) {
    let points = |w: i64| (last - first.div_euclid(w) * w) / w + 1;
    let w = WIDTHS
        .iter()
        .copied()
        .find(|w| points(*w) <= MAX_POINTS)
        .unwrap_or_else(|| {
            let days = ((last - first + 1) / (MAX_POINTS * 1440)).max(1);
            let mut w = days * 1440;
            while points(w) > MAX_POINTS {
                w += 1440;
            }
            w
        });
    (w, first.div_euclid(w) * w)
}

/// The earliest and latest instants both backends store (MySQL's `DATETIME` range): the bounds of
/// an open range.
fn open_bounds() -> (NaiveDateTime, NaiveDateTime) {
    let lo = NaiveDate::from_ymd_opt(1000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let hi =
        NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999));
    match (lo, hi) {
        (Some(lo), Some(hi)) => (lo, hi),
        // Both dates are valid constants; this arm only keeps the code free of `unwrap`.
        _ => (NaiveDateTime::MIN, NaiveDateTime::MAX),
    }
}

impl Store {
    /// Up to `limit` CDRs of campaign `n` in `range`, in `(inicio, id)` order, after `after` (the
    /// last row of the previous page; `None` for the first). A short page is the last one. Pages
    /// are independent statements: rows written meanwhile with a later `inicio` are picked up,
    /// none is ever sent twice.
    pub async fn cdr_page(
        &self,
        n: &CampaignName,
        range: &CdrRange,
        after: Option<&CdrRow>,
        limit: u32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        // Bounds outside the stored range are clamped to it: MySQL's `DATETIME` starts at year
        // 1000, RFC 3339 at year 0.
        let (lo, hi) = open_bounds();
        let hasta = range.hasta.map(to_naive).unwrap_or(hi).clamp(lo, hi);
        let cursor = match after {
            Some(r) => (r.inicio, r.id),
            None => (
                range.desde.map(to_naive).unwrap_or(lo).clamp(lo, hi),
                i64::MIN,
            ),
        };
        on_backend!(self.cdr_page(n, hasta, cursor, limit))
    }

    /// The campaign's CDRs per `resultado`, by name, counted by the database.
    pub async fn result_counts(&self, n: &CampaignName) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(on_backend!(self.result_counts(n))?
            .into_iter()
            .map(|r| (r.resultado, u64::try_from(r.n).unwrap_or(0)))
            .collect())
    }

    /// The campaign's attempts and answers over time, counted by the database (two statements:
    /// the span, then the buckets; a CDR written between them may be missing from the points).
    pub async fn call_series(&self, n: &CampaignName) -> Result<CallSeries, StoreError> {
        let span = on_backend!(self.cdr_span(n))?;
        let (Some(desde), Some(hasta)) = (span.desde, span.hasta) else {
            return Ok(CallSeries {
                minutos_por_punto: 1,
                puntos: Vec::new(),
            });
        };
        let minute = |t: NaiveDateTime| t.and_utc().timestamp().div_euclid(60);
        let (first, last) = (minute(desde), minute(hasta));
        let (width, origin) = minutes_per_point(first, last);
        let len = ((last - origin) / width + 1) as usize;
        let origin_at = DateTime::from_timestamp(origin * 60, 0).unwrap_or_default();
        let mut puntos: Vec<SeriesPoint> = (0..len)
            .map(|i| SeriesPoint {
                minuto: origin_at + chrono::Duration::minutes(i as i64 * width),
                intentos: 0,
                contestadas: 0,
            })
            .collect();
        let rows = on_backend!(self.cdr_buckets(n, to_naive(origin_at), width * 60))?;
        for r in rows {
            // A CDR written after the span was read may fall past the last bucket: left out.
            if let Some(p) = usize::try_from(r.punto)
                .ok()
                .and_then(|i| puntos.get_mut(i))
            {
                p.intentos = u64::try_from(r.intentos).unwrap_or(0);
                p.contestadas = u64::try_from(r.contestadas).unwrap_or(0);
            }
        }
        Ok(CallSeries {
            minutos_por_punto: u32::try_from(width).unwrap_or(u32::MAX),
            puntos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_or_less_is_one_point_per_minute() {
        assert_eq!(minutes_per_point(100, 100), (1, 100));
        assert_eq!(minutes_per_point(100, 100 + MAX_POINTS - 1), (1, 100));
    }

    #[test]
    fn longer_campaigns_get_round_wider_buckets_within_the_bound() {
        // One minute more than a day: two-minute buckets, aligned on even minutes.
        assert_eq!(minutes_per_point(101, 101 + MAX_POINTS), (2, 100));
        // A week: 10-minute buckets (7 * 1440 / 5 > 1440).
        let (w, o) = minutes_per_point(1_000_003, 1_000_003 + 7 * 1440);
        assert_eq!((w, o), (10, 1_000_000));
        // Five years: whole days, never more than the bound.
        for span in [1440 * 1440, 5 * 365 * 1440, 1440 * 1440 * 3 + 17] {
            let (w, o) = minutes_per_point(7, 7 + span);
            assert_eq!(w % 1440, 0, "{span}");
            assert!((7 + span - o) / w < MAX_POINTS, "{span}: width {w}");
        }
        for first in [0, 59, 61, 1439] {
            for span in [
                0, 1, 1439, 1440, 1441, 2880, 2881, 10_000, 100_000, 2_073_000,
            ] {
                let (w, o) = minutes_per_point(first, first + span);
                assert!(o <= first && first - o < w, "{first} {span}");
                assert!((first + span - o) / w < MAX_POINTS, "{first} {span}");
            }
        }
    }
}
