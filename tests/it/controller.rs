//! The outbound-socket controller against the real switch's own bytes: a scripted FreeSWITCH that
//! answers the controller's commands with frames captured from FreeSWITCH 1.10.12
//! (`tests/fixtures/esl-transcripts/*.outbound.from-fs`), obeying the rules the captures show:
//! `myevents` carries no CUSTOM event, a lingering socket stays open after the hangup, a missing
//! application hangs the call up without completing.

use crate::common;

use std::path::Path;
use std::time::Duration;

use discador::controller::{Controller, ControllerSettings};
use discador::dialer::originate::DialTemplate;
use discador::dialer::{Dialer, DialerSettings};
use discador::domain::{AmdMode, CampaignName, Gateway};
use discador::esl::{EventFormat, InboundClient, InboundConfig, OutboundConfig, OutboundServer};
use discador::store::{NewCampaign, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// One frame of a capture: its bytes and, for events, a few headers.
#[derive(Clone, Debug)]
struct Captured {
    bytes: Vec<u8>,
    content_type: String,
    event: String,
    application: String,
    application_uuid: String,
    subclass: String,
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or("")
}

/// Splits a `from-fs` capture into frames (headers, blank line, `Content-Length` body).
fn frames(scenario: &str) -> Vec<Captured> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/esl-transcripts")
        .join(format!("{scenario}.outbound.from-fs"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let end = data[i..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| i + p + 2)
            .expect("complete header block");
        let head = String::from_utf8_lossy(&data[i..end]).into_owned();
        let len: usize = header(&head, "Content-Length").parse().unwrap_or(0);
        let body = String::from_utf8_lossy(&data[end..end + len]).into_owned();
        out.push(Captured {
            bytes: data[i..end + len].to_vec(),
            content_type: header(&head, "Content-Type").to_owned(),
            event: header(&body, "Event-Name").to_owned(),
            application: header(&body, "Application").to_owned(),
            application_uuid: header(&body, "Application-UUID").to_owned(),
            subclass: header(&body, "Event-Subclass").to_owned(),
        });
        i = end + len;
    }
    out
}

/// What the scripted switch saw the controller do.
#[derive(Debug, Default)]
struct Seen {
    commands: Vec<String>,
    /// The controller closed the socket (after `exit`, or by itself).
    closed: bool,
}

impl Seen {
    fn executed(&self, app: &str) -> Vec<String> {
        self.commands
            .iter()
            .filter(|c| c.contains(&format!("execute-app-name: {app}\n")))
            .map(|c| header(c, "execute-app-arg").to_owned())
            .collect()
    }
}

/// Reads one command (up to its blank line).
async fn read_command(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(p) = buf.windows(2).position(|w| w == b"\n\n") {
            let cmd: Vec<u8> = buf.drain(..p + 2).collect();
            return Some(String::from_utf8_lossy(&cmd).into_owned());
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

/// The frames of `scenario` that FreeSWITCH sent about application `app` (its EXECUTE and
/// EXECUTE_COMPLETE), with the captured Application-UUID replaced by `id` (same length: the
/// Content-Length stays right).
fn app_frames(all: &[Captured], app: &str, id: &str) -> Vec<Vec<u8>> {
    let mine: Vec<&Captured> = all.iter().filter(|f| f.application == app).collect();
    let Some(captured_id) = mine
        .iter()
        .map(|f| f.application_uuid.clone())
        .find(|u| !u.is_empty())
    else {
        return Vec::new();
    };
    mine.iter()
        .filter(|f| f.application_uuid == captured_id)
        .map(|f| {
            String::from_utf8_lossy(&f.bytes)
                .replace(&captured_id, id)
                .into_bytes()
        })
        .collect()
}

/// The frames of application `template` in the capture, rewritten as those of `app` (name and
/// Application-UUID replaced, Content-Length recomputed): how the switch reports an application
/// the capture's client never ran (e.g. `avmd_stop` before the hangup).
fn retargeted_frames(all: &[Captured], template: &str, app: &str, id: &str) -> Vec<Vec<u8>> {
    app_frames(all, template, id)
        .into_iter()
        .map(|frame| {
            let text = String::from_utf8_lossy(&frame).into_owned();
            let (head, body) = text.split_once("\n\n").expect("framed");
            let body = body
                .replace(
                    &format!("Application: {template}\n"),
                    &format!("Application: {app}\n"),
                )
                .replace(
                    &format!("variable_current_application: {template}\n"),
                    &format!("variable_current_application: {app}\n"),
                );
            let head: String = head
                .lines()
                .map(|l| {
                    if l.starts_with("Content-Length: ") {
                        format!("Content-Length: {}\n", body.len())
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            format!("{head}\n{body}").into_bytes()
        })
        .collect()
}

/// Plays FreeSWITCH for one call: connects to the controller and answers its commands with the
/// capture's frames.
async fn scripted_switch(controller: std::net::SocketAddr, scenario: &str) -> Seen {
    scripted_switch_with_audio(controller, scenario, Audio::None).await
}

/// What the scripted switch streams after a `unicast` (`amd: integrado`).
#[derive(Clone, Copy, Debug)]
enum Audio {
    /// No packet at all.
    None,
    /// Packets nobody can read: empty, odd-sized linear, oversized.
    Garbage,
    /// Half a second of silence (µ-law), then nothing: a stream that stops.
    Stops,
}

/// Sends `audio` to the controller's audio socket named in a `unicast` command.
fn stream(cmd: &str, audio: Audio) {
    let (ip, port) = (header(cmd, "remote-ip"), header(cmd, "remote-port"));
    let to: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("unicast remote");
    tokio::spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let packets: Vec<Vec<u8>> = match audio {
            Audio::None => vec![],
            Audio::Garbage => (0..100)
                .map(|i| match i % 2 {
                    0 => vec![],
                    _ => vec![0x7f; 3000],
                })
                .collect(),
            Audio::Stops => (0..25).map(|_| vec![0xff; 160]).collect(),
        };
        for p in packets {
            let _ = sock.send_to(&p, to).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

async fn scripted_switch_with_audio(
    controller: std::net::SocketAddr,
    scenario: &str,
    audio: Audio,
) -> Seen {
    let all = frames(scenario);
    let mut sock = TcpStream::connect(controller)
        .await
        .expect("controller listens");
    let mut buf = Vec::new();
    let mut seen = Seen::default();
    let mut custom = false;
    let mut hung_up = false;
    let hangup: Vec<&Captured> = all
        .iter()
        .filter(|f| {
            f.event == "CHANNEL_HANGUP"
                || f.event == "CHANNEL_HANGUP_COMPLETE"
                || f.content_type == "text/disconnect-notice"
        })
        .filter(|f| !String::from_utf8_lossy(&f.bytes).contains("disconnect\nContent-Length"))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(cmd)) =
        tokio::time::timeout_at(deadline, read_command(&mut sock, &mut buf)).await
    {
        seen.commands.push(cmd.clone());
        let verb = cmd.split_whitespace().next().unwrap_or("").to_owned();
        let mut out: Vec<Vec<u8>> = Vec::new();
        match verb.as_str() {
            "connect" => out.push(all[0].bytes.clone()),
            "myevents" => out.push(reply("+OK Events Enabled")),
            "event" => {
                custom = cmd.contains("CUSTOM");
                out.push(reply("+OK event listener enabled plain"));
            }
            "linger" => {
                let secs = cmd.split_whitespace().nth(1).unwrap_or("");
                out.push(reply(&if secs.is_empty() {
                    "+OK will linger".to_owned()
                } else {
                    format!("+OK will linger {secs} seconds")
                }));
            }
            "exit" => {
                out.push(reply("+OK bye"));
                for f in out {
                    let _ = sock.write_all(&f).await;
                }
                seen.closed = true;
                return seen;
            }
            "sendmsg" => {
                out.push(reply("+OK"));
                if hung_up {
                    // FreeSWITCH accepts a command after the hangup and never runs it.
                } else {
                    if header(&cmd, "call-command") == "unicast" {
                        stream(&cmd, audio);
                    }
                    let app = header(&cmd, "execute-app-name").to_owned();
                    let id = header(&cmd, "Event-UUID").to_owned();
                    let frames = app_frames(&all, &app, &id);
                    if frames.is_empty() && header(&cmd, "call-command") == "execute" {
                        // Not in the capture: an application this switch does not have hangs
                        // the call up (transcript `missing-app`), or one that only completes.
                        let template = ["set", "avmd_start", "amd"]
                            .into_iter()
                            .find(|t| !app_frames(&all, t, &id).is_empty());
                        match template {
                            Some(t) if scenario != "missing-app" => {
                                out.extend(retargeted_frames(&all, t, &app, &id));
                            }
                            _ => {
                                out.extend(hangup.iter().map(|f| f.bytes.clone()));
                                hung_up = true;
                            }
                        }
                    } else {
                        out.extend(frames);
                    }
                    if app == "avmd_start" && custom {
                        out.extend(
                            all.iter()
                                .filter(|f| f.subclass == "avmd%3A%3Abeep")
                                .map(|f| f.bytes.clone()),
                        );
                    }
                    // A transfer ends the socket application; the call lives on elsewhere.
                    if header(&cmd, "call-command") == "hangup" {
                        out.extend(hangup.iter().map(|f| f.bytes.clone()));
                        hung_up = true;
                    }
                }
            }
            other => panic!("unexpected command {other:?}: {cmd:?}"),
        }
        for f in out {
            if sock.write_all(&f).await.is_err() {
                return seen;
            }
        }
    }
    // The controller closed the socket (or went silent until the deadline).
    seen.closed = tokio::time::Instant::now() < deadline;
    seen
}

struct Rig {
    _db: common::TestDb,
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

/// The real controller (with a dialer on a throw-away store) serving on a free port, for a
/// campaign `CAPTURA` (the captures' `discador_campana`) with AMD mode `amd`.
async fn controller(amd: AmdMode) -> Rig {
    let db = common::TestDb::new(common::Backend::Sqlite);
    let store = Store::connect(&discador::config::Secret::new(db.url()))
        .await
        .expect("store");
    let mut c = NewCampaign::new(CampaignName::parse("CAPTURA").unwrap());
    c.amd = amd;
    store.create_campaign(&c).await.expect("campaign");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let esl = InboundClient::start(InboundConfig {
        addr: closed.to_string(),
        password: discador::config::Secret::new("ClueCon"),
        events: vec![],
        format: EventFormat::Plain,
        backoff_min: Duration::from_secs(5),
        backoff_max: Duration::from_secs(5),
        command_timeout: Duration::from_secs(1),
    });
    let pool = discador::dialer::pool::Pool::new(
        vec![discador::dialer::pool::NodeSetup {
            nombre: "test".into(),
            direccion: closed.to_string(),
            esl,
            cps: None,
            canales: 10,
        }],
        Duration::from_secs(15),
    );
    let (dialer, _writer) = Dialer::new(
        store,
        pool,
        DialerSettings {
            cps_maximo: 10.0,
            canales_maximos: 10,
            template: DialTemplate::parse("sofia/gateway/{gateway}/{telefono}").unwrap(),
            default_gateway: Gateway::parse("gw_pstn").unwrap(),
            gateway_cps: vec![],
            max_intentos_dia: 0,
            clock: discador::clock::Clock::system(),
            eventos: discador::events::Eventos::default(),
            metrics: Default::default(),
            socket_anunciado: None,
        },
    );
    let (server, addr) = OutboundServer::bind(
        "127.0.0.1:0",
        OutboundConfig {
            max_sessions: 10,
            idle_timeout: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    let controller = Controller::new(
        dialer,
        ControllerSettings {
            amd_timeout: Duration::from_secs(10),
            avmd_window: Duration::from_secs(15),
            ..ControllerSettings::default()
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(server.run(
        move |session| controller.clone().handle(session),
        stop.clone(),
    ));
    Rig {
        _db: db,
        addr,
        stop,
    }
}

#[tokio::test]
async fn mod_amd_on_a_person_transfers_to_humano() {
    let rig = controller(AmdMode::ModAmd).await;
    let seen = scripted_switch(rig.addr, "amd-human").await;
    assert!(seen.closed, "{seen:?}");
    assert_eq!(seen.executed("amd").len(), 1);
    assert!(seen
        .executed("set")
        .contains(&"discador_resultado=HUMANO".to_owned()));
    assert!(seen
        .executed("set")
        .contains(&"discador_amd_resultado=HUMAN".to_owned()));
    assert_eq!(seen.executed("transfer"), vec!["humano XML discador"]);
    assert!(
        seen.commands.iter().any(|c| c.starts_with("linger ")),
        "linger is bounded: {:?}",
        seen.commands
    );
    rig.stop.cancel();
}

#[tokio::test]
async fn mod_amd_on_a_machine_transfers_to_maquina() {
    let rig = controller(AmdMode::ModAmd).await;
    let seen = scripted_switch(rig.addr, "amd-machine").await;
    assert!(seen
        .executed("set")
        .contains(&"discador_resultado=MAQUINA".to_owned()));
    assert!(seen
        .executed("set")
        .contains(&"discador_amd_causa=MAXWORDS".to_owned()));
    assert_eq!(seen.executed("transfer"), vec!["maquina XML discador"]);
    rig.stop.cancel();
}

/// The beep only reaches a socket that subscribed `CUSTOM avmd::beep` (transcripts `avmd-machine`
/// and `avmd-machine-myevents-only`).
#[tokio::test]
async fn avmd_subscribes_the_beep_and_hears_it() {
    let rig = controller(AmdMode::Avmd).await;
    let seen = scripted_switch(rig.addr, "avmd-machine").await;
    assert!(
        seen.commands
            .iter()
            .any(|c| c.trim() == "event plain CUSTOM avmd::beep"),
        "{:?}",
        seen.commands
    );
    assert!(
        seen.executed("set")
            .contains(&"discador_amd_causa=BEEP".to_owned()),
        "{:?}",
        seen.commands
    );
    assert_eq!(seen.executed("transfer"), vec!["maquina XML discador"]);
    rig.stop.cancel();
}

/// A missing application hangs the call up with no completion: the controller stops at the hangup
/// (it does not wait for the completion, nor transfer a call that is gone) and closes the socket.
#[tokio::test]
async fn a_missing_application_ends_control_at_the_hangup() {
    let rig = controller(AmdMode::ModAmd).await;
    let t0 = tokio::time::Instant::now();
    let seen = scripted_switch(rig.addr, "missing-app").await;
    assert!(seen.closed, "{seen:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(seen.executed("transfer").is_empty(), "{seen:?}");
    rig.stop.cancel();
}

/// Issue 15: the service's own detector never stalls a call on bad audio. No packet, packets
/// nobody can read, or a stream that stops: NOTSURE (the campaign's rule: a person) by the end of
/// the analysis time (5 s), and the call goes on.
#[tokio::test]
async fn the_integrated_detector_decides_notsure_on_bad_audio() {
    for audio in [Audio::None, Audio::Garbage, Audio::Stops] {
        let rig = controller(AmdMode::Integrado).await;
        let t0 = tokio::time::Instant::now();
        let seen = scripted_switch_with_audio(rig.addr, "amd-human", audio).await;
        let took = t0.elapsed();
        assert!(
            seen.commands
                .iter()
                .any(|c| header(c, "call-command") == "unicast" && header(c, "flags") == "native"),
            "{audio:?}: {:?}",
            seen.commands
        );
        assert!(
            seen.executed("set")
                .contains(&"discador_amd_resultado=NOTSURE".to_owned()),
            "{audio:?}: {:?}",
            seen.commands
        );
        assert_eq!(
            seen.executed("transfer"),
            vec!["humano XML discador"],
            "{audio:?}"
        );
        assert!(took < Duration::from_secs(7), "{audio:?} took {took:?}");
        if matches!(audio, Audio::Stops) {
            assert!(
                took < Duration::from_secs(4),
                "a stopped stream is not waited for: {took:?}"
            );
        }
        rig.stop.cancel();
    }
}
