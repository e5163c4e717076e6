//! A real FreeSWITCH 1.10.12 for a test: `../shared/freeswitch/start` with the project's own
//! `freeswitch-conf/`, its own state directory and its own ports, stopped and removed on drop.
//!
//! A switch that cannot start fails the test with FreeSWITCH's own reason: a real-switch test never
//! skips silently.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Where the test bed lives, beside this repository.
pub fn bed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/freeswitch")
}

/// How to start the switch.
#[derive(Clone, Debug)]
pub struct SwitchOptions {
    /// `--sps`: sessions per second (each call is two sessions on this one-box test bed).
    pub sps: u32,
    pub max_sessions: u32,
    /// `--no-module mod_amd` / `mod_avmd`.
    pub without: Vec<&'static str>,
    /// Where its `socket` application connects (another switch's, for one app over several
    /// switches); `None`: a port of its own.
    pub socket: Option<u16>,
}

impl Default for SwitchOptions {
    fn default() -> Self {
        SwitchOptions {
            sps: 200,
            max_sessions: 1000,
            without: Vec::new(),
            socket: None,
        }
    }
}

/// The ports one switch uses.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub esl: u16,
    pub sip: u16,
    pub carrier: u16,
    /// Where the switch's `socket` application connects: the app's `SOCKET_LISTEN`.
    pub socket: u16,
    pub rtp_start: u16,
    pub rtp_end: u16,
}

/// RTP ports per switch: each call takes a pair on both of its legs.
const RTP_SPAN: u16 = 400;

/// Picks ports nobody listens on (TCP and UDP), a block per switch, so that tests run in parallel.
fn free_ports() -> Ports {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // A process-dependent start, so that two test runs at once rarely try the same blocks.
    let lane = (std::process::id() % 4) as u16;
    loop {
        let n = lane * 20 + NEXT.fetch_add(1, Ordering::Relaxed) % 20;
        let base = 21_000 + n * 40;
        let rtp = 30_000 + n * RTP_SPAN;
        let candidates = [base, base + 1, base + 2, base + 3];
        let free = candidates.iter().all(|p| {
            TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && UdpSocket::bind(("127.0.0.1", *p)).is_ok()
        });
        if free {
            return Ports {
                esl: base,
                sip: base + 1,
                carrier: base + 2,
                socket: base + 3,
                rtp_start: rtp,
                rtp_end: rtp + RTP_SPAN - 1,
            };
        }
    }
}

/// A running switch. Dropping it stops FreeSWITCH and removes its state directory.
pub struct TestSwitch {
    pub ports: Ports,
    pub state: PathBuf,
    opts: SwitchOptions,
}

impl TestSwitch {
    /// Starts a switch with the default options.
    pub fn start() -> TestSwitch {
        Self::start_with(SwitchOptions::default())
    }

    pub fn start_with(opts: SwitchOptions) -> TestSwitch {
        let state =
            std::env::temp_dir().join(format!("discador_fs_{:016x}", rand::random::<u64>()));
        let mut ports = free_ports();
        if let Some(socket) = opts.socket {
            ports.socket = socket;
        }
        let s = TestSwitch { ports, state, opts };
        s.launch();
        s
    }

    fn launch(&self) {
        let p = self.ports;
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("freeswitch-conf");
        let mut cmd = Command::new(bed().join("start"));
        cmd.arg("--state")
            .arg(&self.state)
            .arg("--conf")
            .arg(&conf)
            .args(["--esl-port", &p.esl.to_string()])
            .args(["--sip-port", &p.sip.to_string()])
            .args(["--carrier-port", &p.carrier.to_string()])
            .args(["--socket", &format!("127.0.0.1:{}", p.socket)])
            .args(["--rtp-start", &p.rtp_start.to_string()])
            .args(["--rtp-end", &p.rtp_end.to_string()])
            .args(["--sps", &self.opts.sps.to_string()])
            .args(["--max-sessions", &self.opts.max_sessions.to_string()]);
        for m in &self.opts.without {
            cmd.args(["--no-module", m]);
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (the real-switch tests need ../shared/freeswitch)",
                bed().join("start").display()
            )
        });
        assert!(
            out.status.success(),
            "FreeSWITCH did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The app's flags to dial through this switch.
    pub fn app_flags(&self) -> Vec<String> {
        vec![
            "--freeswitch-port".into(),
            self.ports.esl.to_string(),
            "--socket-listen".into(),
            format!("127.0.0.1:{}", self.ports.socket),
        ]
    }

    /// `fs_cli -x <cmd>`: the switch's own answer, trimmed.
    pub fn cli(&self, command: &str) -> String {
        let out = Command::new(bed().join("fs_cli"))
            .args(["--esl-port", &self.ports.esl.to_string(), "-x", command])
            .output()
            .expect("fs_cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Channels FreeSWITCH holds now (`show channels count`).
    pub fn channels(&self) -> usize {
        let text = self.cli("show channels count");
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("show channels count said {text:?}"))
    }

    /// Waits until FreeSWITCH holds no channel; panics with what it still holds after `within`.
    pub async fn wait_no_channels(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.channels() == 0 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "FreeSWITCH still holds channels {within:?} later:\n{}",
                    self.cli("show channels")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.state.join("freeswitch.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `kill -9` of FreeSWITCH: every call it carried is cut at once, nothing is said to anyone.
    pub fn kill9(&self) {
        let pid = self.pid().expect("FreeSWITCH's pid");
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(self.state.join("freeswitch.pid"));
    }

    /// Starts FreeSWITCH again on the same state and ports (after [`TestSwitch::kill9`]).
    pub fn restart(&self) {
        self.launch();
    }

    /// The recordings of what each answered called party heard: `<number>-<uuid>.wav`.
    pub fn recordings(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.join("rec"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// The end of FreeSWITCH's log, for a failing assertion's message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.state.join("log/freeswitch.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for TestSwitch {
    fn drop(&mut self) {
        let _ = Command::new(bed().join("stop")).arg(&self.state).status();
        if std::env::var_os("DISCADOR_KEEP_FS").is_none() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}
