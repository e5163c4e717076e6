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
