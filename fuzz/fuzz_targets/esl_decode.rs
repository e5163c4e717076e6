//! Any bytes, split anywhere, through both ends of the ESL framing and the event parsers: frames or
//! a clean error, never a panic, never unbounded memory (small caps make the limits reachable).
#![no_main]

use bytes::BytesMut;
use discador::esl::{CommandCodec, EslCodec, FrameLimits};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits {
        max_header: 4096,
        max_body: 65536,
    };
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut codec = EslCodec::with_limits(limits);
    let mut buf = BytesMut::new();
    'outer: for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let _ = frame.event();
                    let _ = frame.headers_as_event();
                    let _ = frame.body_str();
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    let mut server = CommandCodec::with_limits(limits);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = server.decode(&mut buf) {
        let _ = (cmd.verb(), cmd.args(), cmd.job_uuid(), cmd.body_str());
    }
});
