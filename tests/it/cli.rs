//! The `discador` binary as an operator runs it.

use std::process::{Command, Stdio};

/// Logs going to a file or a pipe (systemd, `> log`, `| grep`) carry no ANSI colour escapes: colour
/// is for a terminal only.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("discador-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("logs.db");
    let out = Command::new(env!("CARGO_BIN_EXE_discador"))
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .stdin(Stdio::null())
        .output()
        .expect("run discador migrate");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.trim().is_empty(), "migrate logged nothing: {out:?}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in piped logs: {text:?}"
    );
}

/// `make demo` as a new user runs it, twice on the same database: the second run starts while the
/// first one's campaign is in the file (start-up recovery must be over before it starts its own).
#[test]
fn the_demo_dials_a_campaign_end_to_end_twice_on_one_database() {
    let dir = std::env::temp_dir().join(format!("discador-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_discador"))
            .args(["demo", "--salir", "--numeros", "40", "--cps", "50"])
            .args(["--api-listen", "127.0.0.1:0"])
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run discador demo")
    };
    let first = run();
    let second = run();
    let _ = std::fs::remove_dir_all(&dir);
    for out in [first, second] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(text.contains("FINALIZADA"), "{text}");
        assert!(text.contains("40 insertados"), "{text}");
        // The campaign's script ran: people heard its message (30 % of random numbers are people).
        let escucharon: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("\"escucharon\": "))
            .and_then(|v| v.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no escucharon in {text}"));
        assert!(escucharon > 0, "{text}");
    }
}
