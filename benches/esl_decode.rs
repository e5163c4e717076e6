//! Decode throughput of the ESL codec on a stream of real-shaped plain events.
//!
//! The stream repeats, per call, the four events the dialer lives on: CHANNEL_CREATE and
//! CHANNEL_ANSWER (the headers of the captured CHANNEL_EXECUTE_COMPLETE fixture, ~90), a
//! CHANNEL_HANGUP_COMPLETE (the captured 311-header fixture) and a BACKGROUND_JOB (captured
//! fixture), each with its own Unique-ID / Job-UUID. "Decode" means what the client does per
//! event: frame it, then parse the event (URL-decoding every header), fed in 64 KiB reads.
//!
//! Run: `cargo bench --bench esl_decode` (release). Figures go to BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use discador::esl::{CommandCodec, EslCodec, Event, Frame};
use tokio_util::codec::{Decoder, Encoder};

const CALLS: usize = 2_000;
const READ_SIZE: usize = 64 * 1024;
const RUNS: usize = 7;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/esl")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn event_of(esl: &str) -> Event {
    let mut codec = EslCodec::new();
    let mut buf = BytesMut::from(esl.as_bytes());
    let frame = codec
        .decode(&mut buf)
        .expect("fixture decodes")
        .expect("one frame");
    frame.event().expect("fixture event parses")
}

fn build_stream() -> (Vec<u8>, usize) {
    let exec = event_of(&fixture("execute_complete.esl"));
    let job = event_of(&fixture("background_job_ok.esl"));
    let hangup = Event::parse_plain(&fixture("hangup_complete.body")).expect("hangup parses");

    let mut channel = exec.clone();
    for h in [
        "Application",
        "Application-Data",
        "Application-Response",
        "Application-UUID",
    ] {
        channel.remove(h);
    }
    let mut out = BytesMut::new();
    let mut enc = CommandCodec::new();
    let mut events = 0;
    for i in 0..CALLS {
        let uuid = format!("{:08x}-2be3-42a8-93dd-ab596f352c83", i);
        let mut create = channel.clone();
        create.set("Event-Name", "CHANNEL_CREATE");
        create.set("Unique-ID", uuid.as_str());
        let mut answer = channel.clone();
        answer.set("Event-Name", "CHANNEL_ANSWER");
        answer.set("Unique-ID", uuid.as_str());
        answer.set("Answer-State", "answered");
        let mut hc = hangup.clone();
        hc.set("Unique-ID", uuid.as_str());
        let mut bj = job.clone();
        bj.set("Job-UUID", format!("{:08x}-ec71-4552-b897-88721870fe16", i));
        bj.set_body(Some(format!("+OK {uuid}\n")));
        for e in [&create, &answer, &hc, &bj] {
            enc.encode(Frame::event_plain(e), &mut out)
                .expect("encodes");
            events += 1;
        }
    }
    (out.to_vec(), events)
}

fn decode_once(stream: &[u8]) -> (usize, usize) {
    let mut codec = EslCodec::new();
    let mut buf = BytesMut::with_capacity(READ_SIZE * 2);
    let mut events = 0;
    let mut headers = 0;
    for chunk in stream.chunks(READ_SIZE) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).expect("decodes") {
            let e = frame.event().expect("parses");
            headers += e.len();
            events += 1;
        }
    }
    (events, headers)
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds, Linux). The
/// machine is shared: wall time includes waiting for a core, CPU time is what one core costs.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn main() {
    let (stream, expected) = build_stream();
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut cpu: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut headers = 0;
    // One warm-up run, then the measured ones.
    decode_once(&stream);
    for _ in 0..RUNS {
        let c0 = thread_cpu();
        let t = Instant::now();
        let (events, h) = decode_once(&stream);
        times.push(t.elapsed());
        if let (Some(a), Some(b)) = (c0, thread_cpu()) {
            cpu.push(b.saturating_sub(a));
        }
        assert_eq!(events, expected);
        headers = h;
    }
    cpu.sort();
    if let Some(c) = cpu.get(cpu.len() / 2) {
        println!(
            "  CPU time (median of runs) {:?} -> {:.0} events/s on one core",
            c,
            expected as f64 / c.as_secs_f64()
        );
    }
    times.sort();
    let median = times[RUNS / 2];
    let best = times[0];
    let per_sec = |d: Duration| expected as f64 / d.as_secs_f64();
    println!(
        "esl_decode: {} events ({} headers, {:.1} MB) per run, {} runs",
        expected,
        headers,
        stream.len() as f64 / 1e6,
        RUNS
    );
    println!(
        "  median {:?} -> {:.0} events/s, {:.0} MB/s",
        median,
        per_sec(median),
        stream.len() as f64 / 1e6 / median.as_secs_f64()
    );
    println!("  best   {:?} -> {:.0} events/s", best, per_sec(best));
}
