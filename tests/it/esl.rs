//! ESL layer, end to end: real captured bytes decoded frame by frame, commands re-encoded
//! byte-identically, property tests of the framing, the inbound client against a scripted fake
//! FreeSWITCH, and the outbound-socket server driven by a fake FreeSWITCH.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use discador::config::Secret;
use discador::esl::{
    Api, Auth, BgApi, Command, CommandCodec, ConnState, EslCodec, EslError, Event, EventFormat,
    Frame, FrameKind, FrameLimits, InboundClient, InboundConfig, JobResult, OutboundConfig,
    OutboundServer, OutboundSession, RawCommand, SendMsg, Subscribe,
};
use discador::esl::{Filter, Linger, MyEvents, NixEvent};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/esl")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let mut codec = EslCodec::new();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = codec.decode(&mut buf).expect("fixture decodes") {
        out.push(f);
    }
    assert!(buf.is_empty(), "bytes left over after the last frame");
    out
}

fn encode_frame(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    CommandCodec::new()
        .encode(f, &mut out)
        .expect("frame encodes");
    out.to_vec()
}

#[test]
fn inbound_session_fixture_decodes_frame_by_frame() {
    let bytes = fixture("inbound_session.esl");
    let frames = decode_all(&bytes);
    let kinds: Vec<FrameKind> = frames.iter().map(Frame::kind).collect();
    assert_eq!(
        kinds,
        [
            FrameKind::AuthRequest,
            FrameKind::CommandReply,
            FrameKind::CommandReply,
            FrameKind::CommandReply,
            FrameKind::EventPlain
        ]
    );
    assert_eq!(frames[1].reply_text(), Some("+OK accepted"));
    assert!(frames[2].is_ok_reply());
    assert_eq!(
        frames[3].header("Job-UUID"),
        Some("43e14ab9-38b1-4187-9f08-e13f35136bb2")
    );
    let job = frames[4].event().expect("event parses");
    assert_eq!(job.name(), Some("BACKGROUND_JOB"));
    assert_eq!(job.job_uuid(), Some("43e14ab9-38b1-4187-9f08-e13f35136bb2"));
    assert_eq!(
        job.get("Job-Command-Arg"),
        Some("sofia/external/1000@10.10.10.108:5070 &playback(C:\\\\temp\\\\misc-freeswitch_is_state_of_the_art.wav")
    );
    assert_eq!(
        JobResult::from_body(job.body().unwrap_or("")),
        JobResult::Err("RECOVERY_ON_TIMER_EXPIRE".into())
    );

    // The simulator's rendering of the same frames is byte-identical to FreeSWITCH's.
    let mut rendered = Vec::new();
    rendered.extend(encode_frame(&Frame::auth_request()));
    rendered.extend(encode_frame(&Frame::command_reply("+OK accepted")));
    rendered.extend(encode_frame(&Frame::command_reply(
        "+OK event listener enabled plain",
    )));
    rendered.extend(encode_frame(&Frame::bgapi_reply(
        "43e14ab9-38b1-4187-9f08-e13f35136bb2",
    )));
    rendered.extend(encode_frame(&Frame::event_plain(&job)));
    assert_eq!(
        String::from_utf8_lossy(&rendered),
        String::from_utf8_lossy(&bytes)
    );
}

/// Every byte FreeSWITCH 1.10.12 sent in the captured scenarios (`tests/fixtures/esl-transcripts`)
/// decodes into frames, every event parses, and re-encoding the frames gives the same bytes.
#[test]
fn every_captured_freeswitch_stream_decodes_and_re_encodes_byte_identically() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esl-transcripts");
    let mut streams = 0;
    for entry in std::fs::read_dir(&dir).expect("transcripts") {
        let path = entry.expect("entry").path();
        if !path.to_string_lossy().ends_with(".from-fs") {
            continue;
        }
        streams += 1;
        let bytes = std::fs::read(&path).expect("readable");
        let frames = decode_all(&bytes);
        assert!(!frames.is_empty(), "{}", path.display());
        let mut again = Vec::new();
        for f in &frames {
            if matches!(f.kind(), FrameKind::EventPlain) {
                let ev = f
                    .event()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(ev.name().is_some(), "{}", path.display());
            }
            again.extend(encode_frame(f));
        }
        assert!(again == bytes, "{} re-encoded differs", path.display());
    }
    assert!(streams >= 16, "only {streams} captures found");
}

#[test]
fn background_job_and_execute_complete_fixtures_round_trip_byte_identically() {
    for name in ["background_job_ok.esl", "execute_complete.esl"] {
        let bytes = fixture(name);
        let frames = decode_all(&bytes);
        assert_eq!(frames.len(), 1, "{name}");
        let event = frames[0].event().expect("event parses");
        assert_eq!(
            encode_frame(&Frame::event_plain(&event)),
            bytes,
            "{name} re-rendered differs"
        );
        // Re-encoding the decoded frame as-is is byte-identical too.
        assert_eq!(encode_frame(&frames[0]), bytes, "{name}");
    }
    let ok = decode_all(&fixture("background_job_ok.esl"))[0]
        .event()
        .unwrap();
    assert_eq!(
        JobResult::from_body(ok.body().unwrap()),
        JobResult::Ok("[Success]".into())
    );
    let done = decode_all(&fixture("execute_complete.esl"))[0]
        .event()
        .unwrap();
    assert_eq!(done.name(), Some("CHANNEL_EXECUTE_COMPLETE"));
    assert_eq!(
        done.application_uuid(),
        Some("9c016dd8-b8e6-4e64-9034-7aa0ffbf69e7")
    );
    assert_eq!(
        done.unique_id(),
        Some("81bdc2ed-2be3-42a8-93dd-ab596f352c83")
    );
    assert_eq!(done.variable("DP_MATCH"), Some("ARRAY::1000|:1000"));
    assert_eq!(done.get("Application-Data"), Some("dialed_extension=1000"));
}

#[test]
fn hangup_complete_fixture_parses_and_renders_like_freeswitch() {
    let body = fixture("hangup_complete.body");
    // The source lacks the final empty line of a serialized event; FreeSWITCH always writes it.
    let mut full = body.clone();
    full.push(b'\n');
    let frame = Frame::new(
        vec![
            ("Content-Length".into(), String::new()),
            ("Content-Type".into(), "text/event-plain".into()),
        ],
        Some(Bytes::from(full.clone())),
    );
    let wire = encode_frame(&frame);
    let frames = decode_all(&wire);
    let event = frames[0].event().expect("parses");
    assert_eq!(event.len(), 311);
    assert_eq!(event.name(), Some("CHANNEL_HANGUP_COMPLETE"));
    assert_eq!(event.hangup_cause(), Some("NORMAL_CLEARING"));
    assert_eq!(
        event.unique_id(),
        Some("37e9b766-5256-4e4b-b1ed-3767b930fec8")
    );
    assert_eq!(event.variable("billsec"), Some("5"));
    assert_eq!(event.variable("sip_from_uri"), Some("1003@192.168.56.66"));
    assert_eq!(event.variable("ringback"), Some("%(2000,4000,440,480)"));
    assert_eq!(event.variable("caller_id"), Some("\"1003\" <1003>"));
    assert!(event
        .variable("switch_m_sdp")
        .unwrap()
        .contains("\r\nm=audio 5056"));
    assert_eq!(event.to_plain().as_bytes(), &full[..]);
    // JSON rendering parses back to the same event.
    assert_eq!(Event::parse_json(&event.to_json()).unwrap(), event);
}

#[test]
fn connect_reply_fixture_gives_channel_data_and_renders_identically() {
    let bytes = fixture("connect_reply.esl");
    let frames = decode_all(&bytes);
    assert_eq!(frames.len(), 1);
    let reply = &frames[0];
    assert_eq!(reply.kind(), FrameKind::CommandReply);
    assert!(reply.is_ok_reply());
    let data = reply.headers_as_event();
    assert_eq!(data.name(), Some("CHANNEL_DATA"));
    assert_eq!(
        data.unique_id(),
        Some("c8130d8b-2109-47eb-bdbc-a8f7159f2821")
    );
    assert_eq!(data.variable("sip_from_uri"), Some("1000@3.110.42.145"));
    assert_eq!(
        data.variable("current_application_data"),
        Some("127.0.0.1:8085 async full")
    );
    assert_eq!(data.get("Reply-Text"), Some("+OK\n"));
    // The simulator's connect reply from the same channel data is byte-identical.
    let mut channel = data.clone();
    for h in ["Content-Type", "Reply-Text", "Socket-Mode", "Control"] {
        channel.remove(h);
    }
    assert_eq!(
        String::from_utf8_lossy(&encode_frame(&Frame::connect_reply(&channel, true, true))),
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn disconnect_notice_fixture() {
    let frames = decode_all(&fixture("disconnect_notice.esl"));
    assert_eq!(frames[0].kind(), FrameKind::DisconnectNotice);
    assert_eq!(frames[0].header("Content-Disposition"), Some("disconnect"));
    assert_eq!(frames[0].body(), Frame::disconnect_notice().body());
}

#[test]
fn commands_encode_as_a_real_client_sends_them() {
    let wire = |c: Command| String::from_utf8(c.to_bytes().to_vec()).unwrap();
    assert_eq!(
        wire(Auth::new(&Secret::new("ClueCon")).unwrap().into()),
        "auth ClueCon\n\n"
    );
    assert_eq!(wire(Api::new("status").unwrap().into()), "api status\n\n");
    let job = Uuid::parse_str("43e14ab9-38b1-4187-9f08-e13f35136bb2").unwrap();
    assert_eq!(
        wire(BgApi::new("originate {origination_uuid=u1}sofia/gateway/gw_pstn/5551234 &park()", job).unwrap().into()),
        "bgapi originate {origination_uuid=u1}sofia/gateway/gw_pstn/5551234 &park()\nJob-UUID: 43e14ab9-38b1-4187-9f08-e13f35136bb2\n\n"
    );
    assert_eq!(
        wire(
            Subscribe::new(
                EventFormat::Json,
                &["BACKGROUND_JOB", "CHANNEL_HANGUP_COMPLETE"]
            )
            .unwrap()
            .into()
        ),
        "event json BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE\n\n"
    );
    // The wiki's sendmsg example.
    assert_eq!(
        wire(SendMsg::execute("playback", "/tmp/test.wav").unwrap().uuid("a1b2").unwrap().into()),
        "sendmsg a1b2\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: /tmp/test.wav\n\n"
    );
    // The server end reads back what the client end writes.
    let mut buf = BytesMut::from(&wire(BgApi::new("status", job).unwrap().into())[..]);
    let cmd = CommandCodec::new().decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        (cmd.verb(), cmd.args(), cmd.job_uuid()),
        (
            "bgapi",
            "status",
            Some("43e14ab9-38b1-4187-9f08-e13f35136bb2")
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests of the framing
// ---------------------------------------------------------------------------------------------

fn header_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,15}".prop_filter("reserved", |s| {
        !s.eq_ignore_ascii_case("Content-Length") && !s.eq_ignore_ascii_case("Content-Type")
    })
}

fn event_strategy() -> impl Strategy<Value = Event> {
    (
        prop::collection::vec((header_name(), any::<String>()), 1..20),
        prop::option::of(".{1,200}"),
    )
        .prop_map(|(headers, body)| {
            let mut e = Event::from_headers(headers);
            e.set_body(body);
            e
        })
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    prop_oneof![
        "[ -~]{0,60}".prop_map(|t| Frame::command_reply(&t)),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Frame::api_response),
        event_strategy().prop_map(|e| Frame::event_plain(&e)),
        event_strategy().prop_map(|e| Frame::event_json(&e)),
        Just(Frame::auth_request()),
        Just(Frame::disconnect_notice()),
    ]
}

fn decode_stream(chunks: &[&[u8]], limits: FrameLimits) -> Result<Vec<Frame>, EslError> {
    let mut codec = EslCodec::with_limits(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), split in 0usize..2048) {
        let limits = FrameLimits { max_header: 256, max_body: 512 };
        let cut = split.min(bytes.len());
        let (a, b) = bytes.split_at(cut);
        // Client end and server end: frames or a clean error, nothing else.
        let _ = decode_stream(&[a, b], limits);
        let mut codec = CommandCodec::with_limits(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(cmd)) = codec.decode(&mut buf) {
            let _ = (cmd.verb(), cmd.args(), cmd.body_str());
        }
        // Any frame decoded from garbage can be asked for its event without panicking.
        if let Ok(frames) = decode_stream(&[&bytes], limits) {
            for f in frames { let _ = f.event(); let _ = f.headers_as_event(); }
        }
    }

    #[test]
    fn random_event_bodies_never_panic(text in ".{0,400}") {
        let _ = Event::parse_plain(&text);
        let _ = Event::parse_json(&text);
    }

    #[test]
    fn valid_frames_split_anywhere_decode_the_same(
        frames in prop::collection::vec(frame_strategy(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        crlf in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for f in &frames { wire.extend(encode_frame(f)); }
        let whole = decode_stream(&[&wire], FrameLimits::default()).unwrap();
        prop_assert_eq!(whole.len(), frames.len());
        // Byte-identical re-encoding of what was decoded.
        let mut again = Vec::new();
        for f in &whole { again.extend(encode_frame(f)); }
        prop_assert_eq!(&again, &wire);
        // Events survive the trip.
        for (orig, got) in frames.iter().zip(&whole) {
            if matches!(orig.kind(), FrameKind::EventPlain | FrameKind::EventJson) {
                prop_assert_eq!(orig.event().unwrap(), got.event().unwrap());
            }
        }
        // Split at random points: same frames.
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points { chunks.push(&wire[prev..p]); prev = p; }
        chunks.push(&wire[prev..]);
        let split = decode_stream(&chunks, FrameLimits::default()).unwrap();
        prop_assert_eq!(&split, &whole);
        // CRLF header lines decode to the same frames when there is no body to count.
        if crlf && frames.iter().all(|f| f.body().is_none()) {
            let text = String::from_utf8(wire.clone()).unwrap().replace('\n', "\r\n");
            let got = decode_stream(&[text.as_bytes()], FrameLimits::default()).unwrap();
            prop_assert_eq!(&got, &whole);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inbound client against a scripted fake FreeSWITCH
// ---------------------------------------------------------------------------------------------

type FsConn = Framed<TcpStream, CommandCodec>;

async fn expect_cmd(conn: &mut FsConn) -> RawCommand {
    tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("client sent nothing")
        .expect("client closed")
        .expect("command decodes")
}

/// Greets, checks the password, acknowledges the subscription. Returns the subscription line.
async fn fs_handshake(conn: &mut FsConn) -> String {
    conn.send(Frame::auth_request()).await.unwrap();
    let auth = expect_cmd(conn).await;
    assert_eq!(auth.line(), "auth ClueCon");
    conn.send(Frame::command_reply("+OK accepted"))
        .await
        .unwrap();
    let sub = expect_cmd(conn).await;
    assert_eq!(sub.verb(), "event");
    conn.send(Frame::command_reply("+OK event listener enabled plain"))
        .await
        .unwrap();
    sub.line().to_owned()
}

fn client_cfg(addr: std::net::SocketAddr) -> InboundConfig {
    InboundConfig {
        addr: addr.to_string(),
        password: Secret::new("ClueCon"),
        events: vec!["CHANNEL_ANSWER".into(), "CHANNEL_HANGUP_COMPLETE".into()],
        format: EventFormat::Plain,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        command_timeout: Duration::from_secs(5),
    }
}

fn job_event(job: &str, body: &str) -> Event {
    Event::new("BACKGROUND_JOB")
        .with("Job-UUID", job)
        .with("Job-Command", "originate")
        .with_body(body)
}

#[tokio::test]
async fn inbound_auth_api_bgapi_out_of_order_and_event_fan_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fs = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        let sub = fs_handshake(&mut conn).await;
        assert_eq!(
            sub,
            "event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB"
        );
        let api = expect_cmd(&mut conn).await;
        assert_eq!(api.line(), "api status");
        conn.send(Frame::api_response("UP 0 years, 0 days\n"))
            .await
            .unwrap();
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let bg = expect_cmd(&mut conn).await;
            assert_eq!(bg.verb(), "bgapi");
            let job = bg.job_uuid().unwrap().to_owned();
            conn.send(Frame::bgapi_reply(&job)).await.unwrap();
            jobs.push(job);
        }
        // Results arrive out of order: the second job first.
        conn.send(Frame::event_plain(&job_event(&jobs[1], "-ERR USER_BUSY\n")))
            .await
            .unwrap();
        let answer = Event::new("CHANNEL_ANSWER").with("Unique-ID", "u-answer");
        conn.send(Frame::event_plain(&answer)).await.unwrap();
        conn.send(Frame::event_plain(&job_event(
            &jobs[0],
            "+OK 7f4db78a-17d7-11dd-b7a0-db4edd065621\n",
        )))
        .await
        .unwrap();
        // Keep the socket open until the client leaves.
        while let Some(Ok(cmd)) = conn.next().await {
            if cmd.verb() == "exit" {
                conn.send(Frame::command_reply("+OK bye")).await.unwrap();
                break;
            }
        }
    });

    let client = InboundClient::start(client_cfg(addr));
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        *client.state().borrow(),
        ConnState::Connected { generation: 1 }
    );
    let mut reader_a = client.events();
    let mut reader_b = client.clone().events();

    assert_eq!(client.api("status").await.unwrap(), "UP 0 years, 0 days\n");
    let (j1, j2) = (Uuid::new_v4(), Uuid::new_v4());
    let job1 = client
        .bgapi("originate sofia/gateway/gw/5550001 &park()", j1)
        .await
        .unwrap();
    let job2 = client
        .bgapi("originate sofia/gateway/gw/5550002 &park()", j2)
        .await
        .unwrap();
    assert_eq!(job1.job_uuid(), j1);
    let r2 = job2.await.unwrap();
    let r1 = job1.await.unwrap();
    assert_eq!(
        r1,
        JobResult::Ok("7f4db78a-17d7-11dd-b7a0-db4edd065621".into())
    );
    assert_eq!(r2, JobResult::Err("USER_BUSY".into()));

    for reader in [&mut reader_a, &mut reader_b] {
        let mut names = Vec::new();
        for _ in 0..3 {
            let e = tokio::time::timeout(Duration::from_secs(5), reader.recv())
                .await
                .unwrap()
                .unwrap();
            names.push(e.name().unwrap_or("").to_owned());
        }
        assert_eq!(
            names,
            ["BACKGROUND_JOB", "CHANNEL_ANSWER", "BACKGROUND_JOB"]
        );
    }
    client.shutdown().await;
    fs.await.unwrap();
    assert!(matches!(
        client.api("status").await,
        Err(EslError::NotConnected)
    ));
}

#[tokio::test]
async fn inbound_wrong_password_is_final_and_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let fs = tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            let mut conn = Framed::new(sock, CommandCodec::new());
            conn.send(Frame::auth_request()).await.unwrap();
            let _auth = expect_cmd(&mut conn).await;
            conn.send(Frame::command_reply("-ERR invalid"))
                .await
                .unwrap();
            conn.send(Frame::disconnect_notice()).await.unwrap();
        }
    });
    let mut cfg = client_cfg(addr);
    cfg.password = Secret::new("wrong-secret");
    let client = InboundClient::start(cfg);
    let err = client
        .wait_connected(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, EslError::AuthFailed));
    assert!(!err.to_string().contains("wrong-secret"));
    assert_eq!(*client.state().borrow(), ConnState::AuthFailed);
    // Several back-off periods later, still a single attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(matches!(
        client.api("status").await,
        Err(EslError::NotConnected)
    ));
    client.shutdown().await;
    fs.abort();
}

#[tokio::test]
async fn inbound_reconnects_resubscribes_and_never_answers_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let fs_log = log.clone();
    let (dropped_tx, mut dropped_rx) = mpsc::channel::<()>(1);
    let fs = tokio::spawn(async move {
        // Connection 1: answers one api, then drops the connection with the second unanswered.
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        let mut lines = vec![fs_handshake(&mut conn).await];
        let a = expect_cmd(&mut conn).await;
        lines.push(a.line().to_owned());
        conn.send(Frame::api_response("first\n")).await.unwrap();
        let b = expect_cmd(&mut conn).await;
        lines.push(b.line().to_owned());
        fs_log.lock().unwrap().push(lines);
        drop(conn);
        dropped_tx.send(()).await.unwrap();
        // Connection 2: answers everything it gets.
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        let mut lines = vec![fs_handshake(&mut conn).await];
        while let Some(Ok(cmd)) = conn.next().await {
            lines.push(cmd.line().to_owned());
            if cmd.verb() == "exit" {
                conn.send(Frame::command_reply("+OK bye")).await.unwrap();
                break;
            }
            conn.send(Frame::api_response("second\n")).await.unwrap();
        }
        fs_log.lock().unwrap().push(lines);
    });

    let client = InboundClient::start(client_cfg(addr));
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert_eq!(client.api("status").await.unwrap(), "first\n");
    let lost = client.api("uuid_exists abc").await;
    assert!(matches!(lost, Err(EslError::Disconnected)), "{lost:?}");
    dropped_rx.recv().await.unwrap();

    let mut state = client.state();
    tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|s| *s == ConnState::Connected { generation: 2 }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(client.api("status").await.unwrap(), "second\n");
    client.shutdown().await;
    fs.await.unwrap();

    let log = log.lock().unwrap();
    let sub = "event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB";
    assert_eq!(log[0], [sub, "api status", "api uuid_exists abc"]);
    // Re-subscribed, and the lost command was not sent again.
    assert_eq!(log[1], [sub, "api status", "exit"]);
}

#[tokio::test]
async fn inbound_command_while_disconnected_fails_fast() {
    // A port with nobody listening.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = InboundClient::start(client_cfg(addr));
    let r = tokio::time::timeout(Duration::from_secs(1), client.api("status"))
        .await
        .expect("fails fast, does not wait for a connection");
    assert!(matches!(r, Err(EslError::NotConnected)));
    let r = tokio::time::timeout(
        Duration::from_secs(1),
        client.bgapi("status", Uuid::new_v4()),
    )
    .await
    .expect("fails fast");
    assert!(matches!(r, Err(EslError::NotConnected)));
    // Invalid input is refused before anything else.
    assert!(matches!(
        client.api("status\n\nexit").await,
        Err(EslError::InvalidCommand(_))
    ));
    client.shutdown().await;
}

#[tokio::test]
async fn inbound_bgapi_job_fails_when_connection_drops_before_result() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fs = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        fs_handshake(&mut conn).await;
        let bg = expect_cmd(&mut conn).await;
        conn.send(Frame::bgapi_reply(bg.job_uuid().unwrap()))
            .await
            .unwrap();
        // Drop without sending the BACKGROUND_JOB; refuse later reconnections quietly.
        drop(conn);
        drop(listener);
    });
    let client = InboundClient::start(client_cfg(addr));
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    let job = client
        .bgapi("originate x &park()", Uuid::new_v4())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .unwrap();
    assert!(matches!(r, Err(EslError::Disconnected)));
    client.shutdown().await;
    fs.await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Outbound-socket server driven by a fake FreeSWITCH
// ---------------------------------------------------------------------------------------------

/// Plays FreeSWITCH on one outbound connection: answers `connect` with the fixture's channel
/// data, acknowledges `myevents`/`linger`, runs `sendmsg` (emitting CHANNEL_EXECUTE_COMPLETE,
/// with `amd_result` for `amd`), and on hangup sends the linger notice, the last event, and closes.
async fn fake_fs_call(addr: std::net::SocketAddr) -> Vec<String> {
    let sock = TcpStream::connect(addr).await.unwrap();
    let mut conn = Framed::new(sock, CommandCodec::new());
    let mut seen = Vec::new();
    let uuid = "c8130d8b-2109-47eb-bdbc-a8f7159f2821";
    while let Ok(Some(Ok(cmd))) = tokio::time::timeout(Duration::from_secs(5), conn.next()).await {
        seen.push(cmd.line().to_owned());
        match cmd.verb() {
            "connect" => {
                let raw = fixture("connect_reply.esl");
                conn.get_mut().try_write(&raw).unwrap();
            }
            "myevents" => conn
                .send(Frame::command_reply("+OK Events Enabled"))
                .await
                .unwrap(),
            "linger" => conn
                .send(Frame::command_reply("+OK will linger"))
                .await
                .unwrap(),
            "sendmsg" => {
                conn.send(Frame::command_reply("+OK")).await.unwrap();
                match cmd.header("call-command") {
                    Some("execute") => {
                        let app = cmd.header("execute-app-name").unwrap_or("").to_owned();
                        let arg = cmd.header("execute-app-arg").unwrap_or("").to_owned();
                        seen.push(format!("{app}({arg})"));
                        // An unrelated event first: it must be queued, not lost.
                        let progress = Event::new("CHANNEL_PROGRESS").with("Unique-ID", uuid);
                        conn.send(Frame::event_plain(&progress)).await.unwrap();
                        let mut done = Event::new("CHANNEL_EXECUTE_COMPLETE")
                            .with("Unique-ID", uuid)
                            .with("Application", app.as_str())
                            .with("Application-Data", arg.as_str())
                            .with("Application-Response", "_none_")
                            .with("Application-UUID", cmd.header("Event-UUID").unwrap_or(""));
                        if app == "amd" {
                            done.push("variable_amd_result", "MACHINE");
                            done.push("variable_amd_cause", "LONGGREETING");
                        }
                        conn.send(Frame::event_plain(&done)).await.unwrap();
                    }
                    Some("hangup") => {
                        seen.push(format!(
                            "hangup({})",
                            cmd.header("hangup-cause").unwrap_or("")
                        ));
                        conn.send(Frame::disconnect_notice_linger(
                            uuid,
                            "sofia/internal/1000@x",
                            -1,
                        ))
                        .await
                        .unwrap();
                        let hc = Event::new("CHANNEL_HANGUP_COMPLETE")
                            .with("Unique-ID", uuid)
                            .with("Hangup-Cause", "NORMAL_CLEARING")
                            .with("variable_billsec", "7");
                        conn.send(Frame::event_plain(&hc)).await.unwrap();
                        conn.send(Frame::disconnect_notice()).await.unwrap();
                        return seen;
                    }
                    _ => {}
                }
            }
            _ => conn
                .send(Frame::command_reply("-ERR command not found"))
                .await
                .unwrap(),
        }
    }
    seen
}

#[derive(Debug, Default)]
struct CallReport {
    uuid: String,
    caller: Option<String>,
    amd_result: Option<String>,
    custom_var: Option<String>,
    last_events: Vec<String>,
    ended_with: String,
    billsec: Option<String>,
}

async fn drive_call(mut s: OutboundSession) -> Result<CallReport, EslError> {
    let mut r = CallReport {
        uuid: s.uuid().to_owned(),
        caller: s
            .channel_data()
            .get("Caller-Caller-ID-Number")
            .map(str::to_owned),
        ..CallReport::default()
    };
    s.myevents().await?;
    s.linger(1).await?;
    s.execute("answer", "").await?;
    let amd = s.execute("amd", "").await?;
    assert_eq!(amd.application(), Some("amd"));
    r.amd_result = s.variable("amd_result").map(str::to_owned);
    s.set_var("campana_id", "42").await?;
    r.custom_var = s.variable("campana_id").map(str::to_owned);
    s.hangup("NORMAL_CLEARING").await?;
    loop {
        match s.next_event().await {
            Ok(e) => r.last_events.push(e.name().unwrap_or("").to_owned()),
            Err(e) => {
                r.ended_with = e.to_string();
                break;
            }
        }
    }
    r.billsec = s.variable("billsec").map(str::to_owned);
    Ok(r)
}

#[tokio::test]
async fn outbound_session_runs_a_call_to_its_end() {
    let cfg = OutboundConfig {
        max_sessions: 4,
        idle_timeout: Duration::from_secs(5),
    };
    let (server, addr) = OutboundServer::bind("127.0.0.1:0", cfg).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server.run(
        move |session| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(drive_call(session).await).await;
            }
        },
        shutdown.clone(),
    ));
    let seen = fake_fs_call(addr).await;
    let report = rx.recv().await.unwrap().unwrap();
    assert_eq!(report.uuid, "c8130d8b-2109-47eb-bdbc-a8f7159f2821");
    assert_eq!(report.caller.as_deref(), Some("1000"));
    assert_eq!(report.amd_result.as_deref(), Some("MACHINE"));
    assert_eq!(report.custom_var.as_deref(), Some("42"));
    assert_eq!(report.billsec.as_deref(), Some("7"));
    assert_eq!(report.ended_with, EslError::Disconnected.to_string());
    // Unrelated events queued while waiting for completions are still delivered, in order.
    assert_eq!(
        report.last_events,
        [
            "CHANNEL_PROGRESS",
            "CHANNEL_PROGRESS",
            "CHANNEL_PROGRESS",
            "CHANNEL_HANGUP_COMPLETE"
        ]
    );
    assert_eq!(
        seen,
        [
            "connect",
            "myevents",
            "linger 1",
            "sendmsg c8130d8b-2109-47eb-bdbc-a8f7159f2821",
            "answer()",
            "sendmsg c8130d8b-2109-47eb-bdbc-a8f7159f2821",
            "amd()",
            "sendmsg c8130d8b-2109-47eb-bdbc-a8f7159f2821",
            "set(campana_id=42)",
            "sendmsg c8130d8b-2109-47eb-bdbc-a8f7159f2821",
            "hangup(NORMAL_CLEARING)",
        ]
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
}

/// Connects to the outbound server until it sends `connect` (a slot freed by a session that just
/// ended may take a moment to be released).
async fn connect_until_accepted(addr: std::net::SocketAddr) -> FsConn {
    for _ in 0..50 {
        let sock = TcpStream::connect(addr).await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        if let Ok(Some(Ok(cmd))) = tokio::time::timeout(Duration::from_secs(5), conn.next()).await {
            assert_eq!(cmd.verb(), "connect");
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("outbound server never accepted a session");
}

async fn within_5s<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("within 5 s")
}

#[tokio::test]
async fn outbound_silent_peer_times_out_and_cap_refuses_extra_sessions() {
    let cfg = OutboundConfig {
        max_sessions: 1,
        idle_timeout: Duration::from_millis(300),
    };
    let (server, addr) = OutboundServer::bind("127.0.0.1:0", cfg).await.unwrap();
    let (tx, mut results) = mpsc::channel::<Result<Event, EslError>>(4);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server.run(
        move |mut session| {
            let tx = tx.clone();
            async move {
                // The peer answers connect, then stays silent: bounded by idle_timeout.
                let _ = tx.send(session.next_event().await).await;
            }
        },
        shutdown.clone(),
    ));

    // 1. A peer that never answers `connect`: the server gives up and closes the socket, and the
    //    handler is never called.
    let mut silent = connect_until_accepted(addr).await;
    let end = tokio::time::timeout(Duration::from_secs(5), silent.next())
        .await
        .unwrap();
    assert!(end.is_none(), "server closes a silent peer");

    // 2. One live session holds the only slot; a second connection is refused (closed).
    let mut first = connect_until_accepted(addr).await;
    first
        .get_mut()
        .try_write(&fixture("connect_reply.esl"))
        .unwrap();
    // 2b. Over the cap the call is still connected, then hung up and left with `exit`: closing
    //     before `connect` (or an `exit` alone) would leave the called party parked.
    let second = TcpStream::connect(addr).await.unwrap();
    let mut second = Framed::new(second, CommandCodec::new());
    let cmd = within_5s(second.next()).await.unwrap().unwrap();
    assert_eq!(cmd.verb(), "connect", "over the cap: connect first");
    second
        .get_mut()
        .try_write(&fixture("connect_reply.esl"))
        .unwrap();
    let cmd = within_5s(second.next()).await.unwrap().unwrap();
    assert_eq!(cmd.verb(), "sendmsg", "over the cap: hung up");
    assert_eq!(cmd.header("call-command"), Some("hangup"));
    assert_eq!(cmd.header("hangup-cause"), Some("SWITCH_CONGESTION"));
    second
        .get_mut()
        .try_write(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
        .unwrap();
    let cmd = within_5s(second.next()).await.unwrap().unwrap();
    assert_eq!(cmd.verb(), "exit", "then left");
    second
        .get_mut()
        .try_write(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
        .unwrap();
    assert!(within_5s(second.next()).await.is_none(), "then closed");
    // The first session's handler times out on its silent peer and ends; the socket is closed.
    let r = tokio::time::timeout(Duration::from_secs(5), results.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(EslError::Timeout(_))), "{r:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), first.next())
        .await
        .unwrap();
    assert!(end.is_none());
    // Only that one session reached the handler.
    assert!(results.try_recv().is_err());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn inbound_json_events_and_late_replies_stay_matched_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fs = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        let sub = fs_handshake(&mut conn).await;
        assert!(sub.starts_with("event json "), "{sub}");
        // Two commands left unanswered until the client gave up on both and sent a third.
        let mut first_two = vec![
            expect_cmd(&mut conn).await.line().to_owned(),
            expect_cmd(&mut conn).await.line().to_owned(),
        ];
        first_two.sort();
        assert_eq!(first_two, ["api fast", "api slow"]);
        let after = expect_cmd(&mut conn).await;
        assert_eq!(after.line(), "api after");
        for text in ["stale answer\n", "stale answer\n", "after answer\n"] {
            conn.send(Frame::api_response(text)).await.unwrap();
        }
        let hangup = Event::new("CHANNEL_HANGUP_COMPLETE")
            .with("Unique-ID", "u1")
            .with("Hangup-Cause", "NO_ANSWER")
            .with("variable_sip_from_uri", "1000@example.com");
        conn.send(Frame::event_json(&hangup)).await.unwrap();
        while let Some(Ok(cmd)) = conn.next().await {
            if cmd.verb() == "exit" {
                break;
            }
        }
    });
    let mut cfg = client_cfg(addr);
    cfg.format = EventFormat::Json;
    cfg.command_timeout = Duration::from_secs(1);
    let client = InboundClient::start(cfg);
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    let mut events = client.events();
    let slow_client = client.clone();
    let slow = tokio::spawn(async move { slow_client.api("slow").await });
    let fast = client.api("fast").await;
    assert!(matches!(slow.await.unwrap(), Err(EslError::Timeout(_))));
    assert!(matches!(fast, Err(EslError::Timeout(_))));
    // The late replies are consumed in order and not handed to the next command.
    assert_eq!(client.api("after").await.unwrap(), "after answer\n");
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.hangup_cause(), Some("NO_ANSWER"));
    assert_eq!(e.variable("sip_from_uri"), Some("1000@example.com"));
    client.shutdown().await;
    fs.await.unwrap();
}

#[tokio::test]
async fn outbound_refused_sendmsg_is_an_error_and_exit_says_goodbye() {
    let cfg = OutboundConfig {
        max_sessions: 2,
        idle_timeout: Duration::from_secs(5),
    };
    let (server, addr) = OutboundServer::bind("127.0.0.1:0", cfg).await.unwrap();
    let (tx, mut results) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server.run(
        move |mut session| {
            let tx = tx.clone();
            async move {
                let refused = session.execute("playback", "/no/such.wav").await;
                let bad_name = session.set_var("bad name", "x").await;
                let exit = session.exit().await;
                let _ = tx.send((refused, bad_name, exit)).await;
            }
        },
        shutdown.clone(),
    ));
    let mut fs = connect_until_accepted(addr).await;
    fs.get_mut()
        .try_write(&fixture("connect_reply.esl"))
        .unwrap();
    let send = expect_cmd(&mut fs).await;
    assert_eq!(send.verb(), "sendmsg");
    fs.send(Frame::command_reply("-ERR invalid session id [x]"))
        .await
        .unwrap();
    let exit = expect_cmd(&mut fs).await;
    assert_eq!(exit.line(), "exit");
    fs.send(Frame::command_reply("+OK bye")).await.unwrap();
    fs.send(Frame::disconnect_notice()).await.unwrap();
    let (refused, bad_name, exit) = results.recv().await.unwrap();
    assert!(
        matches!(&refused, Err(EslError::CommandFailed(t)) if t.starts_with("-ERR invalid session")),
        "{refused:?}"
    );
    assert!(matches!(bad_name, Err(EslError::InvalidCommand(_))));
    assert!(exit.is_ok());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn large_body_in_small_reads() {
    let body: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let wire = encode_frame(&Frame::api_response(body.clone()));
    let chunks: Vec<&[u8]> = wire.chunks(64 * 1024).collect();
    let frames = decode_stream(&chunks, FrameLimits::default()).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].body().map(|b| b.len()), Some(body.len()));
    assert_eq!(frames[0].body().unwrap().as_ref(), &body[..]);
}

#[tokio::test]
async fn inbound_drops_a_hung_freeswitch_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fs = tokio::spawn(async move {
        // First connection: handshake, then silence — the socket stays open, nothing answers.
        let (sock, _) = listener.accept().await.unwrap();
        let mut hung = Framed::new(sock, CommandCodec::new());
        fs_handshake(&mut hung).await;
        assert_eq!(expect_cmd(&mut hung).await.line(), "api status");
        // Second connection: a healthy FreeSWITCH again.
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        fs_handshake(&mut conn).await;
        assert_eq!(expect_cmd(&mut conn).await.line(), "api status");
        conn.send(Frame::api_response("UP\n")).await.unwrap();
        while let Some(Ok(cmd)) = conn.next().await {
            if cmd.verb() == "exit" {
                break;
            }
        }
        drop(hung);
    });
    let mut cfg = client_cfg(addr);
    cfg.command_timeout = Duration::from_millis(200);
    let client = InboundClient::start(cfg);
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(
        client.api("status").await,
        Err(EslError::Timeout(_))
    ));
    // Three timeouts without a reply: the connection is dropped and made again.
    let mut state = client.state();
    let reconnected = tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|s| matches!(s, ConnState::Connected { generation: 2 })),
    )
    .await
    .map(|r| r.is_ok());
    assert_eq!(
        reconnected,
        Ok(true),
        "no reconnection after a hung FreeSWITCH"
    );
    assert_eq!(client.api("status").await.unwrap(), "UP\n");
    client.shutdown().await;
    fs.await.unwrap();
}

/// Every command a client can build, as the strategy of the round trip below.
fn command_strategy() -> impl Strategy<Value = Command> {
    let word = "[A-Za-z0-9_]{1,12}";
    let uuid = any::<u128>().prop_map(uuid::Uuid::from_u128);
    let format = prop_oneof![
        Just(EventFormat::Plain),
        Just(EventFormat::Json),
        Just(EventFormat::Xml)
    ];
    let names = prop::collection::vec(
        prop_oneof![
            Just("CHANNEL_ANSWER".to_owned()),
            Just("ALL".to_owned()),
            Just("CUSTOM".to_owned()),
            Just("avmd::beep".to_owned()),
            "[A-Z_]{3,12}",
        ],
        1..4,
    );
    let line = "[a-z_]{1,8}( [A-Za-z0-9_/=.{},-]{1,10}){0,3}";
    let arg = prop_oneof![
        "[a-z0-9=_/.]{0,8}( [a-z0-9=_/.]{1,8}){0,2}",
        "[a-z]{1025,1100}", // too long for a header: goes in the body
    ];
    prop_oneof![
        word.prop_map(|p| Command::Auth(Auth::new(&Secret::new(p)).unwrap())),
        line.prop_map(|c| Command::Api(Api::new(&c).unwrap())),
        (line, uuid.clone()).prop_map(|(c, j)| Command::BgApi(BgApi::new(&c, j).unwrap())),
        (format.clone(), names.clone())
            .prop_map(|(f, n)| Command::Event(Subscribe::new(f, &n).unwrap())),
        (word, word).prop_map(|(h, v)| Command::Filter(Filter::add(&h, &v).unwrap())),
        (word, prop::option::of(word))
            .prop_map(|(h, v)| Command::Filter(Filter::delete(&h, v.as_deref()).unwrap())),
        names.prop_map(|n| Command::NixEvent(NixEvent::new(&n).unwrap())),
        Just(Command::NoEvents),
        Just(Command::MyEvents(MyEvents::new())),
        format
            .clone()
            .prop_map(|f| Command::MyEvents(MyEvents::with_format(f))),
        (uuid.clone(), prop::option::of(format)).prop_map(|(u, f)| {
            Command::MyEvents(MyEvents::for_uuid(&u.to_string(), f).unwrap())
        }),
        prop::option::of(0u32..100_000).prop_map(|n| Command::Linger(Linger::new(n))),
        Just(Command::NoLinger),
        (
            word,
            arg,
            prop::option::of(uuid.clone()),
            any::<bool>(),
            prop::option::of(uuid)
        )
            .prop_map(|(app, arg, target, lock, id)| {
                let mut m = SendMsg::execute(&app, &arg).unwrap();
                if let Some(t) = target {
                    m = m.uuid(&t.to_string()).unwrap();
                }
                if lock {
                    m = m.event_lock();
                }
                if let Some(id) = id {
                    m = m.event_uuid(id);
                }
                Command::SendMsg(m)
            }),
        "[A-Z_]{3,20}".prop_map(|c| Command::SendMsg(SendMsg::hangup(&c).unwrap())),
        Just(Command::Connect),
        Just(Command::Exit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// What a client encodes, the server end reads back as the same command: the simulator
    /// dispatches on `Command` read from the wire with `TryFrom<&RawCommand>`.
    #[test]
    fn commands_round_trip_through_the_wire(cmd in command_strategy()) {
        let mut wire = BytesMut::new();
        cmd.encode_into(&mut wire);
        let raw: RawCommand = CommandCodec::new().decode(&mut wire).unwrap().expect("one command");
        prop_assert!(wire.is_empty());
        prop_assert_eq!(Command::try_from(&raw).unwrap(), cmd);
    }
}

/// Words the typed commands refuse are refused when read too, and verbs outside them are errors.
#[test]
fn unreadable_commands_are_errors() {
    let read = |wire: &str| {
        let mut buf = BytesMut::from(wire);
        let raw = CommandCodec::new().decode(&mut buf).unwrap().unwrap();
        Command::try_from(&raw)
    };
    assert!(read("bgapi status\nJob-UUID: not-a-uuid\n\n").is_err());
    assert!(read("event plain\n\n").is_err());
    assert!(read("filter onlyheader\n\n").is_err());
    assert!(read("getvar x\n\n").is_err());
    assert_eq!(
        read("linger -1\n\n").unwrap(),
        Command::Linger(Linger::new(None))
    );
    assert_eq!(
        read("linger 7x\n\n").unwrap(),
        Command::Linger(Linger::new(Some(7)))
    );
}

/// The inbound client against FreeSWITCH's own bytes (transcript `amd-human.inbound`): a scripted
/// switch answers the client's auth, subscription and `bgapi originate` with the captured frames
/// (the captured Job-UUID replaced by the client's, same length), and the client resolves the job
/// with the channel's UUID and hands every captured event to its readers, in the switch's order.
#[tokio::test]
async fn the_inbound_client_reads_a_captured_call() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/esl-transcripts/amd-human.inbound.from-fs");
    let captured = decode_all(&std::fs::read(&path).unwrap());
    let captured_job = captured
        .iter()
        .find_map(|f| f.header("Job-UUID"))
        .expect("the capture has a bgapi")
        .to_owned();
    let captured_events: Vec<String> = captured
        .iter()
        .filter_map(|f| f.event().ok())
        .filter_map(|e| e.name().map(str::to_owned))
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(sock, CommandCodec::new());
        let mut rest = captured.into_iter();
        conn.send(rest.next().unwrap()).await.unwrap(); // auth/request
        while let Some(Ok(cmd)) = conn.next().await {
            match cmd.verb() {
                "auth" | "event" => conn.send(rest.next().unwrap()).await.unwrap(),
                "bgapi" => {
                    // The job's reply, then everything the switch sent about the call.
                    let ours = cmd.job_uuid().unwrap().to_owned();
                    let mut bytes = Vec::new();
                    for f in rest.by_ref() {
                        bytes.extend(encode_frame(&f));
                    }
                    let text = String::from_utf8(bytes)
                        .unwrap()
                        .replace(&captured_job, &ours);
                    use tokio::io::AsyncWriteExt;
                    conn.get_mut().write_all(text.as_bytes()).await.unwrap();
                }
                other => panic!("unexpected {other}"),
            }
        }
    });
    let mut cfg = client_cfg(addr);
    cfg.events = [
        "CHANNEL_CREATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_ANSWER",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "BACKGROUND_JOB",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let client = InboundClient::start(cfg);
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    let mut events = client.events();
    let job = client
        .bgapi(
            "originate {origination_uuid=205e9c95-21af-49c5-9708-69e68f544962}sofia/gateway/gw_pstn/5551000001 discador XML discador",
            Uuid::new_v4(),
        )
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        result,
        JobResult::Ok("205e9c95-21af-49c5-9708-69e68f544962".into())
    );
    let mut got = Vec::new();
    while got.len() < captured_events.len() {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("every captured event arrives")
            .unwrap();
        got.push(ev.name().unwrap_or("").to_owned());
    }
    assert_eq!(got, captured_events);
}

/// A long `playback` sends no event until it ends: `execute` gives up after `idle_timeout` of
/// silence, `execute_for` waits up to its own limit.
#[tokio::test]
async fn outbound_a_long_application_waits_past_the_idle_timeout_only_when_asked() {
    let cfg = OutboundConfig {
        max_sessions: 1,
        idle_timeout: Duration::from_millis(200),
    };
    let (server, addr) = OutboundServer::bind("127.0.0.1:0", cfg).await.unwrap();
    let (tx, mut results) = mpsc::channel::<(bool, bool)>(1);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server.run(
        move |mut session| {
            let tx = tx.clone();
            async move {
                let long = session
                    .execute_for("playback", "long.wav", Duration::from_secs(5))
                    .await;
                let short = session.execute("playback", "long.wav").await;
                let _ = tx
                    .send((long.is_ok(), matches!(short, Err(EslError::Timeout(_)))))
                    .await;
            }
        },
        shutdown.clone(),
    ));
    let mut fs = connect_until_accepted(addr).await;
    fs.get_mut()
        .try_write(&fixture("connect_reply.esl"))
        .unwrap();
    let uuid = "c8130d8b-2109-47eb-bdbc-a8f7159f2821"; // the fixture's call
    for _ in 0..2 {
        let cmd = within_5s(fs.next()).await.unwrap().unwrap();
        assert_eq!(cmd.header("execute-app-name"), Some("playback"));
        let app_uuid = cmd.header("Event-UUID").unwrap().to_owned();
        fs.send(Frame::command_reply("+OK")).await.unwrap();
        // Silent for longer than idle_timeout, then the completion.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let done = Event::new("CHANNEL_EXECUTE_COMPLETE")
            .with("Unique-ID", uuid)
            .with("Application", "playback")
            .with("Application-UUID", &app_uuid);
        let _ = fs.send(Frame::event_plain(&done)).await;
    }
    let (long_ok, short_timed_out) = within_5s(results.recv()).await.unwrap();
    assert!(long_ok, "execute_for waits past idle_timeout");
    assert!(short_timed_out, "execute does not");
    shutdown.cancel();
    within_5s(run).await.unwrap();
}
