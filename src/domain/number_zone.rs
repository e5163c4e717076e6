//! The called person's time zone, derived from the called number itself.
//!
//! Regulators judge a dialer by the called person's local clock (TCPA: 8:00–21:00 local), not by
//! the campaign's. A number may carry an explicit zone; when it does not, [`derive_zone`] says the
//! zone the number's own digits determine, and `None` means they determine none, so the campaign's
//! zone applies. The derivation is pure: its data is embedded in the binary and parsed once.
//!
//! # Rules
//!
//! 1. **International or national.** A number that starts with `+` is international: its country
//!    calling code says its country. A number without `+` is national, in the country of the
//!    campaign's zone. That country is the one `zone.tab` lists for the campaign zone's name; a
//!    name `zone.tab` does not list but that tzdata's `backward` file links to a zone `zone.tab`
//!    lists (an old or alternative name: `America/Buenos_Aires` for
//!    `America/Argentina/Buenos_Aires`, `US/Eastern` for `America/New_York`) has that zone's
//!    country. A campaign zone with no country — `UTC`, `Etc/…`, and the POSIX-style names
//!    `CET`, `CST6CDT`, `EET`, `EST`, `EST5EDT`, `HST`, `MET`, `MST`, `MST7MDT`, `PST8PDT`, `WET`,
//!    which tzdata keeps only as links to one representative city (`EST` to Panama) — derives
//!    nothing for a national number.
//! 2. **Validity.** The number is parsed with libphonenumber's rules and metadata (the
//!    `phonenumber` crate; a national number with the campaign country as its default region,
//!    so its national prefix, e.g. Argentina's `0`, is understood). A number libphonenumber does
//!    not consider valid for its region derives nothing.
//! 3. **Lookup.** As libphonenumber's `PhoneNumberToTimeZonesMapper.getTimeZonesForNumber`, on
//!    its own time-zone data (`resources/timezones/map_data.txt`, lines `prefix|zone&zone…`):
//!    - a *geographic* number — libphonenumber's type fixed line, or fixed line or mobile (the
//!      NANP, where the two cannot be told apart), or mobile in a country whose mobile numbers
//!      are geographic (Mexico 52, Argentina 54, Brazil 55, Indonesia 62, China 86) — is looked
//!      up by the longest prefix of its E.164 digits (country code and national significant
//!      number) present in the map;
//!    - any other valid number (mobile elsewhere, toll-free, premium rate, VoIP, …) says nothing
//!      about where its owner is, so only its country counts: it is looked up by the longest
//!      prefix of its country calling code present in the map. So is a valid number whose type
//!      the `phonenumber` crate cannot tell (it types the national number without its leading
//!      zeros, which misses e.g. Italy's fixed lines, `06…`): the country's zone is never wrong
//!      for it, at worst less precise.
//! 4. **Result.** The matched entry's zones are taken under their canonical tzdata names (a
//!    `backward` link name becomes its target: `America/Buenos_Aires` is returned as
//!    `America/Argentina/Buenos_Aires`, `Europe/Jersey` counts as `Europe/London`, since a link
//!    keeps the same clock). If they are exactly one zone that `chrono_tz` knows, that zone is the
//!    answer. Several different zones (the country or region spans several and the digits say
//!    no more), a zone `chrono_tz` does not know, or no matching prefix at all give `None`.
//!    A shorter prefix is never tried after a longer one matched: the longer one is the more
//!    precise statement, even when it says "several".
//!
//! 5. **Without libphonenumber where the map alone decides.** Parsing and typing a number costs
//!    about 10 µs, most of a load's time. Where the answer cannot depend on the number's type —
//!    a country whose map entries all name the same zone (Argentina, the United Kingdom, most
//!    single-zone countries), or a US or Canadian area code (where every number is fixed line or
//!    mobile) — the longest prefix is the answer
//!    without parsing, and validity is not checked: a valid number gets the same answer (a
//!    proptest compares both paths), an invalid one its prefix's zone (it fails when dialed
//!    anyway).
//!
//! # Data (vendored in `src/domain/data/`, embedded with `include_str!`)
//!
//! - `timezones_map_data.txt`: `resources/timezones/map_data.txt` of libphonenumber
//!   (google/libphonenumber at commit f7e3e88c92b9, 2026-07-17; the file last changed in
//!   6e46509b686d), Copyright (C) 2012 The Libphonenumber Authors, Apache License 2.0 (its
//!   header is kept in the file).
//! - `zone.tab` and `backward`: tzdata 2025b (the release `chrono-tz` 0.10.4 is built from),
//!   public domain. `zone.tab` maps a zone name to its country, `backward` an old or
//!   alternative zone name to the current one.
//!
//! Each file is parsed defensively: a line that does not have the expected shape is skipped.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_tz::Tz;
use phonenumber::country;
use phonenumber::Type;

use super::PhoneNumber;

const MAP_DATA: &str = include_str!("data/timezones_map_data.txt");
const ZONE_TAB: &str = include_str!("data/zone.tab");
const BACKWARD: &str = include_str!("data/backward");

/// Country calling codes whose mobile numbers libphonenumber treats as geographic
/// (`PhoneNumberUtil.GEO_MOBILE_COUNTRIES`).
const GEO_MOBILE_COUNTRIES: [u16; 5] = [52, 54, 55, 62, 86];

/// Link names that stand for a POSIX-style rule, not a place: their link target is an arbitrary
/// city (`EST` → `America/Panama`), so they say no country.
const RULE_NAMES: [&str; 11] = [
    "CET", "CST6CDT", "EET", "EST", "EST5EDT", "HST", "MET", "MST", "MST7MDT", "PST8PDT", "WET",
];

/// Longest prefix the lookup tries; prefixes in the data longer than this are skipped (the data
/// has at most 9 digits; 18 keeps every prefix inside a `u64`).
const MAX_PREFIX_DIGITS: usize = 18;

/// The embedded data, parsed once.
struct Tables {
    /// Prefix of E.164 digits, as a number (a prefix never starts with `0`, so the value alone
    /// identifies it) → the zone it determines, `None` when it determines none.
    prefixes: HashMap<u64, Option<Tz>>,
    /// Length in digits of the longest prefix in `prefixes`.
    max_prefix_len: usize,
    /// Campaign zone → its country (ISO 3166 alpha-2, as `phonenumber` names regions).
    countries: HashMap<Tz, country::Id>,
    /// Country calling codes whose every entry in the map (the code's own and every longer
    /// prefix under it) determines the same answer: every number of such a country gets it,
    /// whatever its type (see [`fast_path`]).
    uniform: HashMap<u16, Option<Tz>>,
}

/// The country calling code that starts `digits` (codes are 1–3 digits and prefix-free), if
/// libphonenumber knows it.
fn calling_code(digits: &str) -> Option<u16> {
    (1..=3).find_map(|n| {
        let code: u16 = digits.get(..n)?.parse().ok()?;
        phonenumber::metadata::DATABASE
            .by_code(&code)
            .is_some()
            .then_some(code)
    })
}

/// Countries whose map entries all agree (see [`Tables::uniform`]).
fn uniform_countries(prefixes: &HashMap<u64, Option<Tz>>) -> HashMap<u16, Option<Tz>> {
    let mut seen: HashMap<u16, (bool, Option<Option<Tz>>)> = HashMap::new();
    for (prefix, zone) in prefixes {
        let Some(code) = calling_code(&prefix.to_string()) else {
            continue;
        };
        let entry = seen.entry(code).or_insert((true, None));
        match entry.1 {
            Some(first) if first != *zone => entry.0 = false,
            _ => entry.1 = Some(*zone),
        }
    }
    seen.into_iter()
        .filter(|(code, (agree, _))| *agree && prefixes.contains_key(&u64::from(*code)))
        .filter_map(|(code, (_, zone))| Some((code, zone?)))
        .collect()
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| Tables::from_text(MAP_DATA, ZONE_TAB, BACKWARD));

impl Tables {
    /// Parses the three files; a line that does not have the expected shape is skipped.
    fn from_text(map_data: &str, zone_tab: &str, backward: &str) -> Self {
        let links = parse_backward(backward);
        let canonical = |name: &str| -> Option<Tz> {
            let target = links.get(name).copied().unwrap_or(name);
            target.parse().ok()
        };

        let mut prefixes = HashMap::new();
        let mut max_prefix_len = 0;
        for line in map_data.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((prefix, zones)) = line.split_once('|') else {
                continue;
            };
            let prefix = prefix.trim();
            if prefix.is_empty()
                || prefix.len() > MAX_PREFIX_DIGITS
                || prefix.starts_with('0')
                || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                continue;
            }
            let Ok(key) = prefix.parse::<u64>() else {
                continue;
            };
            prefixes.insert(key, single_zone(zones, canonical));
            max_prefix_len = max_prefix_len.max(prefix.len());
        }

        // zone.tab: `CC<TAB>coordinates<TAB>zone[<TAB>comment]`.
        let mut countries = HashMap::new();
        let mut listed: HashMap<&str, country::Id> = HashMap::new();
        for line in zone_tab.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut cols = line.split('\t').map(str::trim);
            let (Some(code), Some(_coordinates), Some(zone)) =
                (cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            let (Ok(id), Ok(tz)) = (code.parse::<country::Id>(), zone.parse::<Tz>()) else {
                continue;
            };
            listed.insert(zone, id);
            countries.insert(tz, id);
        }
        // A link name zone.tab does not list has its target's country (rule 1).
        for (&link, &target) in &links {
            if RULE_NAMES.contains(&link) || listed.contains_key(link) {
                continue;
            }
            if let (Some(&id), Ok(tz)) = (listed.get(target), link.parse::<Tz>()) {
                countries.insert(tz, id);
            }
        }

        let uniform = uniform_countries(&prefixes);
        Tables {
            prefixes,
            max_prefix_len,
            countries,
            uniform,
        }
    }

    /// The entry for the longest prefix of `digits` in the map: `None` when no prefix matches,
    /// `Some(None)` when the matched entry determines no single zone.
    fn longest_prefix(&self, digits: &str) -> Option<Option<Tz>> {
        let take = digits.len().min(self.max_prefix_len);
        let mut key: u64 = digits.get(..take)?.parse().ok()?;
        for _ in 0..take {
            if let Some(entry) = self.prefixes.get(&key) {
                return Some(*entry);
            }
            key /= 10;
        }
        None
    }
}

/// `backward`'s `Link TARGET LINK-NAME` lines as link name → target (comments dropped).
fn parse_backward(text: &str) -> HashMap<&str, &str> {
    let mut links = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if let (Some("Link"), Some(target), Some(name)) = (words.next(), words.next(), words.next())
        {
            links.insert(name, target);
        }
    }
    links
}

/// The one zone an `&`-separated list of zone names stands for, after canonicalisation; `None`
/// for several different zones, for a name `chrono_tz` does not know, or for an empty list.
fn single_zone(zones: &str, canonical: impl Fn(&str) -> Option<Tz>) -> Option<Tz> {
    let mut found: Option<Tz> = None;
    for name in zones.split('&') {
        let tz = canonical(name.trim())?;
        match found {
            Some(f) if f != tz => return None,
            _ => found = Some(tz),
        }
    }
    found
}

/// The zone the number's own digits say, or None (then the campaign's zone applies).
///
/// The rules are the module's (see there): `+` numbers are international, others national in
/// the campaign zone's country; the number must be valid for libphonenumber; its zone is
/// libphonenumber's time-zone map's, and only when that map names exactly one zone. A number
/// is never placed by the campaign's zone itself: a New York number of a Los Angeles campaign
/// is in New York.
pub fn derive_zone(phone: &PhoneNumber, campaign_zone: Tz) -> Option<Tz> {
    let tables = &*TABLES;
    let raw = phone.as_str();
    if let Some(answer) = fast_path(tables, raw, campaign_zone) {
        return answer;
    }
    slow_path(tables, raw, campaign_zone)
}

/// libphonenumber's parse, validity and type, then the map (rules 2–4 of the module doc).
fn slow_path(tables: &Tables, raw: &str, campaign_zone: Tz) -> Option<Tz> {
    let parsed = if raw.starts_with('+') {
        phonenumber::parse(None, raw).ok()?
    } else {
        let region = tables.countries.get(&campaign_zone).copied()?;
        phonenumber::parse(Some(region), raw).ok()?
    };
    let kind = parsed.number_type(&phonenumber::metadata::DATABASE);
    // `phonenumber::is_valid` is "the metadata found for the national number types it as
    // something", the very computation `number_type` just did, except that `is_valid` keeps the
    // national number's leading zeros and `number_type` drops them. Without leading zeros the
    // two agree (`number_type_is_validity_without_leading_zeros` checks it), and running the
    // regexes once instead of twice saves about a third of the call.
    let valid = if parsed.national().zeros() == 0 {
        kind != Type::Unknown
    } else {
        phonenumber::is_valid(&parsed)
    };
    if !valid {
        return None;
    }
    let code = parsed.code().value();
    let geographic = match kind {
        Type::FixedLine | Type::FixedLineOrMobile => true,
        Type::Mobile => GEO_MOBILE_COUNTRIES.contains(&code),
        // Not geographic, or a valid number of unknown type (`phonenumber` types the national
        // number without its leading zeros, which misses e.g. Italy's fixed lines, `06…`): only
        // the country counts, which is never wrong, at worst less precise.
        _ => false,
    };
    let entry = if geographic {
        // The national number's `Display` keeps the leading zeros that belong to it (Italy).
        let digits = format!("{code}{}", parsed.national());
        tables.longest_prefix(&digits)
    } else {
        tables.longest_prefix(&code.to_string())
    };
    entry.flatten()
}

/// The answer without libphonenumber's parse and type (about 10 µs a number, most of a load's
/// time), where the map alone decides it for every valid number:
/// - a country whose entries all agree ([`Tables::uniform`]: Argentina, most single-zone
///   countries): its answer, whatever the number's type;
/// - the United States and Canada (`+1` and ten digits, an area code whose entry names one of
///   their zones): every number of such an area code is "fixed line or mobile", a geographic
///   type, so the longest prefix is the answer whatever the type. The non-geographic codes (8XX
///   toll-free, 900, 5XX) have no entry, and the NANP's other countries type their mobiles apart:
///   both take the slow path.
///
/// On this path the number's validity is not checked: a valid number gets the same answer as on
/// the slow path, and an invalid one (which fails when dialed anyway) the zone of its prefix.
/// `None`: the slow path decides.
fn fast_path(tables: &Tables, raw: &str, campaign_zone: Tz) -> Option<Option<Tz>> {
    let international = raw.strip_prefix('+');
    let code = match international {
        Some(digits) => calling_code(digits)?,
        None => {
            let region = tables.countries.get(&campaign_zone)?;
            phonenumber::metadata::DATABASE
                .by_id(region.as_ref())?
                .country_code()
        }
    };
    if let Some(answer) = tables.uniform.get(&code) {
        return Some(*answer);
    }
    if code != 1 {
        return None;
    }
    let digits = match international {
        Some(d) if d.len() == 11 => d.to_owned(),
        None if raw.len() == 10 && !raw.starts_with(['0', '1']) => format!("1{raw}"),
        None if raw.len() == 11 && raw.starts_with('1') => raw.to_owned(),
        _ => return None,
    };
    // Only in the United States and Canada is every number of an area code "fixed line or
    // mobile": the NANP's other countries (the Caribbean's +1 809, 829, …) type their mobiles
    // apart, so their numbers take the slow path, as do area codes that name several zones.
    match tables.longest_prefix(&digits) {
        Some(Some(zone))
            if matches!(
                tables.countries.get(&zone).map(|c| c.as_ref()),
                Some("US" | "CA")
            ) =>
        {
            Some(Some(zone))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use Tz::{
        America__Argentina__Buenos_Aires as BUENOS_AIRES, America__Chicago as CHICAGO,
        America__Los_Angeles as LOS_ANGELES, America__New_York as NEW_YORK,
    };

    fn num(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("test number is well-formed")
    }

    fn zone(raw: &str, campaign: Tz) -> Option<Tz> {
        derive_zone(&num(raw), campaign)
    }

    /// A guard for the tests that claim a number is valid: otherwise a `None` they expect could
    /// come from rule 2 instead of the rule they are about.
    fn assert_valid(raw: &str) {
        let parsed = phonenumber::parse(None, raw).expect("parses");
        assert!(phonenumber::is_valid(&parsed), "{raw} should be valid");
    }

    #[test]
    fn nanp_area_codes_say_their_zone() {
        assert_eq!(zone("+1 212 555 0100", Tz::UTC), Some(NEW_YORK));
        assert_eq!(zone("+1 213 555 0100", Tz::UTC), Some(LOS_ANGELES));
        assert_eq!(zone("+1 312 555 0100", Tz::UTC), Some(CHICAGO));
        // The campaign's zone plays no part in an international number.
        assert_eq!(zone("+1 213 555 0100", NEW_YORK), Some(LOS_ANGELES));
    }

    #[test]
    fn madrid_and_buenos_aires() {
        assert_eq!(zone("+34 91 123 45 67", Tz::UTC), Some(Tz::Europe__Madrid));
        // The map says `America/Buenos_Aires` (a link): the canonical name comes back.
        assert_eq!(zone("+54 11 4567 8901", Tz::UTC), Some(BUENOS_AIRES));
        // Argentina's mobiles are geographic (libphonenumber's GEO_MOBILE_COUNTRIES).
        assert_eq!(zone("+54 9 11 4567 8901", Tz::UTC), Some(BUENOS_AIRES));
    }

    #[test]
    fn national_numbers_are_in_the_campaign_zones_country() {
        // With Argentina's national prefix 0, and without it.
        assert_eq!(zone("011 4567 8901", BUENOS_AIRES), Some(BUENOS_AIRES));
        assert_eq!(zone("11 4567 8901", BUENOS_AIRES), Some(BUENOS_AIRES));
        // The old name of the campaign zone, a `backward` link, has the same country.
        assert_eq!(
            zone("011 4567 8901", Tz::America__Buenos_Aires),
            Some(BUENOS_AIRES)
        );
        assert_eq!(zone("2125550100", NEW_YORK), Some(NEW_YORK));
        assert_eq!(zone("2125550100", Tz::US__Eastern), Some(NEW_YORK));
        // The number's own region wins over the campaign's zone.
        assert_eq!(zone("2125550100", LOS_ANGELES), Some(NEW_YORK));
        // In Spain the same digits are not a valid number.
        assert_eq!(zone("2125550100", Tz::Europe__Madrid), None);
    }

    #[test]
    fn a_campaign_zone_without_a_country_derives_nothing_for_national_numbers() {
        assert_eq!(zone("5551234", Tz::UTC), None);
        assert_eq!(zone("2125550100", Tz::UTC), None);
        assert_eq!(zone("2125550100", Tz::Etc__GMTPlus5), None);
        // POSIX-style names link to an arbitrary city (EST5EDT → New York, EST → Panama).
        assert_eq!(zone("2125550100", Tz::EST5EDT), None);
        assert_eq!(zone("2125550100", Tz::EST), None);
        // International numbers do not need the campaign's country.
        assert_eq!(zone("+12125550100", Tz::UTC), Some(NEW_YORK));
    }

    #[test]
    fn several_zones_at_the_matched_prefix_give_none() {
        // Idaho: `12082|America/Boise&America/Los_Angeles`, no longer prefix for 208-200.
        assert_valid("+12082001234");
        assert_eq!(TABLES.longest_prefix("12082001234"), Some(None));
        assert_eq!(zone("+1 208 200 1234", Tz::UTC), None);
        // ...while a longer prefix that names one zone decides (`120823|America/Denver`).
        assert_eq!(zone("+1 208 230 1234", Tz::UTC), Some(Tz::America__Denver));
    }

    #[test]
    fn non_geographic_numbers_are_looked_up_by_their_country_only() {
        // Australian mobiles: the map has `614|Australia/Sydney`, but a mobile says nothing
        // about where its owner is, and `61` spans several zones.
        assert_valid("+61412345678");
        assert_eq!(
            TABLES.longest_prefix("61412345678"),
            Some(Some(Tz::Australia__Sydney))
        );
        assert_eq!(zone("+61 412 345 678", Tz::UTC), None);
        assert_eq!(
            zone("+61 2 9876 5432", Tz::UTC),
            Some(Tz::Australia__Sydney)
        );
        // Russian mobiles: `79|Europe/Moscow` is not used either.
        assert_valid("+79161234567");
        assert_eq!(zone("+7 916 123 45 67", Tz::UTC), None);
        assert_eq!(
            zone("+7 423 212 34 56", Tz::UTC),
            Some(Tz::Asia__Vladivostok)
        );
        // US toll-free.
        assert_valid("+18005550100");
        assert_eq!(zone("+1 800 555 0100", Tz::UTC), None);
    }

    #[test]
    fn zones_that_are_links_of_one_zone_count_once() {
        // `44|Europe/Guernsey&Europe/Isle_of_Man&Europe/Jersey&Europe/London`: all one clock.
        assert_valid("+447400123456");
        assert_eq!(zone("+44 7400 123456", Tz::UTC), Some(Tz::Europe__London));
        assert_eq!(zone("+44 20 7946 0000", Tz::UTC), Some(Tz::Europe__London));
    }

    #[test]
    fn leading_zero_national_numbers_fall_back_to_the_country() {
        // Rome's fixed lines start with 0; `phonenumber` types them Unknown.
        assert_valid("+390612345678");
        assert_eq!(zone("+39 06 1234 5678", Tz::UTC), Some(Tz::Europe__Rome));
    }

    #[test]
    fn invalid_numbers_give_none() {
        assert_eq!(zone("+1 212 555 010", Tz::UTC), None); // one digit short
                                                           // Mexico names several zones: the slow path checks validity.
        assert_eq!(zone("+52 55 1234", Tz::UTC), None);
        assert_eq!(zone("+999 123 4567", Tz::UTC), None); // no such country code
        assert_eq!(zone("+000", Tz::UTC), None);
        assert_eq!(zone("555", NEW_YORK), None);
        assert_eq!(zone(&"9".repeat(20), NEW_YORK), None);
        assert_eq!(zone(&format!("+{}", "9".repeat(20)), Tz::UTC), None);
    }

    /// Where the map alone decides (one zone for the whole country, or a US or Canadian area code), validity is
    /// not checked: an invalid number gets its prefix's zone (it fails when dialed anyway).
    #[test]
    fn the_fast_path_skips_validity_only_where_the_answer_cannot_depend_on_it() {
        let london = Some(Tz::Europe__London);
        assert_eq!(zone("+44 7700 900123", Tz::UTC), london); // Ofcom's drama range
        assert_eq!(zone("+44 20 7946 0000", Tz::UTC), london);
        assert!(TABLES.uniform.contains_key(&54));
        assert!(!TABLES.uniform.contains_key(&1));
        assert!(!TABLES.uniform.contains_key(&52));
        assert!(!TABLES.uniform.contains_key(&61));
        // National NANP numbers take the fast path in a US campaign.
        assert_eq!(
            fast_path(&TABLES, "2125550100", LOS_ANGELES),
            Some(Some(NEW_YORK))
        );
        assert_eq!(
            fast_path(&TABLES, "12125550100", LOS_ANGELES),
            Some(Some(NEW_YORK))
        );
        // A Dominican number (+1 829, NANP but not US/CA) takes the slow path (found by the
        // proptest below: the map says Santo Domingo, libphonenumber's rule says nothing).
        assert_eq!(fast_path(&TABLES, "+18290000000", Tz::UTC), None);
        // Australia's mobiles must not be placed by the map's 614 (Sydney): the slow path.
        assert_eq!(fast_path(&TABLES, "+61412345678", Tz::UTC), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// On every number libphonenumber considers valid, the fast path (when it answers) says
        /// what the slow path says.
        #[test]
        fn the_fast_path_agrees_with_libphonenumber_on_valid_numbers(
            raw in prop::sample::select(vec![
                "+1", "+1212", "+1208", "+1800", "+1416", "+1787", "+1809", "+1829", "+54",
                "+549", "+5411",
                "+34", "+3491", "+44", "+4420", "+447", "+33", "+49", "+39", "+81", "+55",
            ]).prop_flat_map(|p| (Just(p), "[0-9]{4,12}"))
        ) {
            let (prefix, tail) = raw;
            let number = format!("{prefix}{tail}");
            let Ok(parsed) = phonenumber::parse(None, &number) else { return Ok(()) };
            if !phonenumber::is_valid(&parsed) {
                return Ok(());
            }
            if let Some(fast) = fast_path(&TABLES, &number, Tz::UTC) {
                prop_assert_eq!(fast, slow_path(&TABLES, &number, Tz::UTC), "{}", number);
            }
        }
    }

    #[test]
    fn embedded_data_is_complete() {
        // Every prefix's zones are known to chrono_tz (otherwise the entry would silently give
        // None): the vendored map and chrono_tz's tzdata must agree.
        let links = parse_backward(BACKWARD);
        for line in MAP_DATA
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (_, zones) = line.split_once('|').expect("prefix|zones");
            for name in zones.split('&') {
                let name = links.get(name).copied().unwrap_or(name);
                assert!(name.parse::<Tz>().is_ok(), "{line}: {name}");
            }
        }
        assert_eq!(TABLES.prefixes.len(), 3295);
        assert_eq!(TABLES.max_prefix_len, 9);
        assert_eq!(
            TABLES.countries.get(&NEW_YORK).map(|c| c.as_ref()),
            Some("US")
        );
        assert_eq!(
            TABLES
                .countries
                .get(&Tz::Europe__Zagreb)
                .map(|c| c.as_ref()),
            Some("HR")
        );
        assert_eq!(
            TABLES
                .countries
                .get(&Tz::Asia__Calcutta)
                .map(|c| c.as_ref()),
            Some("IN")
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let map = "# header\n\n1|America/Chicago&America/New_York\n1212|America/New_York\n\
                   1213\n|America/Denver\n0123|Europe/Madrid\n12a4|Europe/Madrid\n\
                   1312|Not/A_Zone\n1415|\n1234567890123456789|Europe/Madrid\n\
                   1646|America/New_York&\u{e9}\n";
        let tab = "# c\nUS\t+404251-0740023\tAmerica/New_York\tEastern\nXX\t+0\tEurope/Madrid\n\
                   AR\tAmerica/Argentina/Buenos_Aires\nbroken\n";
        let back = "Link\tAmerica/New_York\tUS/Eastern # comment\nLink\tOnly_Target\n\
                    #Link\tAmerica/New_York\tEST5EDT\nLink America/New_York EST5EDT\n";
        let t = Tables::from_text(map, tab, back);
        let mut keys: Vec<_> = t.prefixes.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 1212, 1312, 1415, 1646]);
        assert_eq!(t.prefixes[&1], None);
        assert_eq!(t.prefixes[&1212], Some(NEW_YORK));
        assert_eq!(t.prefixes[&1312], None);
        assert_eq!(t.prefixes[&1415], None);
        assert_eq!(t.prefixes[&1646], None);
        assert_eq!(t.max_prefix_len, 4);
        assert_eq!(t.longest_prefix("12125550100"), Some(Some(NEW_YORK)));
        assert_eq!(t.longest_prefix("12135550100"), Some(None));
        assert_eq!(t.longest_prefix("2135550100"), None);
        assert_eq!(t.longest_prefix(""), None);
        // US from its line and from the link; the unknown country, the line without
        // coordinates and the rule name give nothing.
        let mut countries: Vec<_> = t
            .countries
            .iter()
            .map(|(tz, id)| (tz.name(), id.as_ref()))
            .collect();
        countries.sort_unstable();
        assert_eq!(
            countries,
            [("America/New_York", "US"), ("US/Eastern", "US")]
        );
    }

    #[test]
    fn number_type_is_validity_without_leading_zeros() {
        let db = &phonenumber::metadata::DATABASE;
        for raw in [
            "+12125550100",
            "+12125550",
            "+18005550100",
            "+541145678901",
            "+5491145678901",
            "+34911234567",
            "+447400123456",
            "+447700900123",
            "+61412345678",
            "+79161234567",
        ] {
            let p = phonenumber::parse(None, raw).expect("parses");
            assert_eq!(p.national().zeros(), 0);
            let valid = p.number_type(db) != Type::Unknown;
            assert_eq!(valid, phonenumber::is_valid(&p), "{raw}");
        }
    }

    proptest! {
        #[test]
        fn number_type_agrees_with_is_valid(raw in "\\+[1-9][0-9]{6,14}") {
            if let Ok(p) = phonenumber::parse(None, &raw) {
                if p.national().zeros() == 0 {
                    let valid = p.number_type(&phonenumber::metadata::DATABASE) != Type::Unknown;
                    prop_assert_eq!(valid, phonenumber::is_valid(&p));
                }
            }
        }

        #[test]
        fn never_panics(raw in "\\+?[0-9]{3,20}", campaign in prop::sample::select(vec![
            Tz::UTC, NEW_YORK, BUENOS_AIRES, Tz::Europe__Rome, Tz::Asia__Kolkata,
        ])) {
            let _ = derive_zone(&num(&raw), campaign);
        }
    }
}
