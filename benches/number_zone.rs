//! Cost of `derive_zone` per number: loading a campaign of 1,000,000 numbers calls it once each.
//!
//! The numbers are a mix a US or Argentine campaign would load: national US numbers over many area
//! codes (campaign zone America/New_York), `+1` numbers, national Argentine numbers with and
//! without the `0` prefix (campaign zone America/Argentina/Buenos_Aires), `+34`, `+44` and `+61`
//! numbers, and one in ten invalid. The first call, which parses the embedded data, is timed
//! apart. For comparison the bench also times `phonenumber::parse` alone and with `is_valid`, the
//! part of the work that is libphonenumber's.
//!
//! Run: `cargo bench --bench number_zone` (release). Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use discador::domain::{derive_zone, PhoneNumber};

const NUMBERS: usize = 100_000;
const RUNS: usize = 7;

/// A deterministic spread of digits (no `rand`: the set is the same on every run).
fn digits(seed: u64, n: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'0' + ((x >> 33) % 10) as u8)
        })
        .collect()
}

fn numbers() -> Vec<(PhoneNumber, Tz)> {
    const AREA: [&str; 10] = [
        "212", "213", "312", "305", "415", "602", "808", "907", "208", "800",
    ];
    let ny = Tz::America__New_York;
    let ba = Tz::America__Argentina__Buenos_Aires;
    (0..NUMBERS as u64)
        .map(|i| {
            let area = AREA[(i / 10 % 10) as usize];
            let (raw, zone) = match i % 10 {
                0..=2 => (format!("{area}55{}", digits(i, 5)), ny),
                3 => (format!("+1{area}55{}", digits(i, 5)), ny),
                4 => (format!("011 4{}", digits(i, 7)), ba),
                5 => (format!("9 11 4{}", digits(i, 7)), ba),
                6 => (format!("+34 91{}", digits(i, 7)), ny),
                7 => (format!("+44 74{}", digits(i, 8)), ny),
                8 => (format!("+61 2{}", digits(i, 8)), ny),
                _ => (format!("+1 {area}{}", digits(i, 3)), ny), // too short: invalid
            };
            (PhoneNumber::parse(&raw).expect("well-formed"), zone)
        })
        .collect()
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds, Linux). The
/// machine is shared: wall time includes waiting for a core, CPU time is what one core costs.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Median wall and CPU time of `RUNS` runs of `f` (after one warm-up run), in ns per number.
fn measure(label: &str, set: &[(PhoneNumber, Tz)], f: impl Fn(&[(PhoneNumber, Tz)]) -> usize) {
    f(set);
    let mut wall = Vec::with_capacity(RUNS);
    let mut cpu = Vec::with_capacity(RUNS);
    let mut hits = 0;
    for _ in 0..RUNS {
        let c0 = thread_cpu();
        let t = Instant::now();
        hits = black_box(f(set));
        wall.push(t.elapsed());
        if let (Some(a), Some(b)) = (c0, thread_cpu()) {
            cpu.push(b.saturating_sub(a));
        }
    }
    wall.sort();
    cpu.sort();
    let per = |d: Duration| d.as_nanos() as f64 / set.len() as f64;
    print!(
        "{label}: {} numbers, {hits} with a result; wall median {:.0} ns/call (best {:.0})",
        set.len(),
        per(wall[RUNS / 2]),
        per(wall[0])
    );
    match cpu.get(cpu.len() / 2) {
        Some(c) => println!(", CPU median {:.0} ns/call", per(*c)),
        None => println!(),
    }
}

/// The two campaign zones of the set and their countries, as `derive_zone` finds them.
fn region_of(zone: Tz) -> phonenumber::country::Id {
    if zone == Tz::America__New_York {
        phonenumber::country::Id::US
    } else {
        phonenumber::country::Id::AR
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
    // a debug-build measurement has no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("number_zone: skipped (run it with `cargo bench --bench number_zone`)");
        return;
    }
    let set = numbers();

    let t = Instant::now();
    black_box(derive_zone(&set[0].0, set[0].1));
    println!("first call (parses the embedded data): {:?}", t.elapsed());

    measure("derive_zone", &set, |set| {
        set.iter()
            .filter(|(n, z)| black_box(derive_zone(n, *z)).is_some())
            .count()
    });
    measure("phonenumber::parse only", &set, |set| {
        set.iter()
            .filter(|(n, z)| {
                let raw = n.as_str();
                let region = (!raw.starts_with('+')).then_some(region_of(*z));
                black_box(phonenumber::parse(region, raw)).is_ok()
            })
            .count()
    });
    measure("phonenumber::parse + is_valid only", &set, |set| {
        set.iter()
            .filter(|(n, z)| {
                let raw = n.as_str();
                let region = (!raw.starts_with('+')).then_some(region_of(*z));
                phonenumber::parse(region, raw).is_ok_and(|p| phonenumber::is_valid(&p))
            })
            .count()
    });
}
