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

/// The help of every command is in Spanish, clap's own texts too: headings, the help and version
/// flags, default and possible values; no English word left in the descriptions.
#[test]
fn help_is_in_spanish() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_discador"))
            .args(args)
            .env_remove("LOG_FORMAT")
            .stdin(Stdio::null())
            .output()
            .expect("run discador");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let root = run(&["--help"]);
    for expected in [
        "Uso: discador",
        "Comandos:",
        "Opciones:",
        "Muestra esta ayuda",
        "Muestra la versión",
        "Ejecuta el servicio",
    ] {
        assert!(root.contains(expected), "no {expected:?} in {root}");
    }
    assert_eq!(run(&["help"]), root);
    let mut texts = vec![("--help".to_owned(), root)];
    for cmd in ["serve", "migrate", "sim", "demo", "copy"] {
        for flag in ["-h", "--help"] {
            let text = run(&[cmd, flag]);
            assert!(text.contains(&format!("Uso: discador {cmd}")), "{text}");
            assert!(text.contains("Opciones:"), "{text}");
            assert!(text.contains("Muestra esta ayuda"), "{text}");
            texts.push((format!("{cmd} {flag}"), text));
        }
    }
    assert_eq!(run(&["help", "sim"]), run(&["sim", "--help"]));
    let serve = run(&["serve", "-h"]);
    assert!(serve.contains("[por defecto: 25]"), "{serve}");
    assert!(serve.contains("[valores posibles: text, json]"), "{serve}");

    const CLAP_ENGLISH: &[&str] = &[
        "Usage:",
        "Options:",
        "Commands:",
        "Arguments:",
        "Print help",
        "Print version",
        "[default:",
        "[possible values:",
        "see more with",
        "see a summary with",
    ];
    // Whole words, as in the OpenAPI test; a flag or an identifier (`--fault-drop-after`,
    // `timestamp_us`) is one word.
    const ENGLISH: &[&str] = &[
        "the", "and", "of", "is", "are", "when", "with", "for", "to", "by", "from", "this", "that",
        "which", "or", "an", "be", "it", "its", "not", "only", "if", "on", "at", "in", "as",
        "into", "than", "until", "default", "none", "each", "every", "one", "after", "before",
        "whether",
    ];
    for (args, text) in &texts {
        for english in CLAP_ENGLISH {
            assert!(
                !text.contains(english),
                "{english:?} in `discador {args}`:\n{text}"
            );
        }
        for line in text.lines() {
            let words: Vec<_> = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .filter(|w| ENGLISH.contains(&w.to_lowercase().as_str()))
                .collect();
            assert!(
                words.is_empty(),
                "English {words:?} in `discador {args}`: {line}"
            );
        }
    }
}

/// A usage error is reported in Spanish too.
#[test]
fn usage_errors_are_in_spanish() {
    let out = Command::new(env!("CARGO_BIN_EXE_discador"))
        .args(["serve", "--cps-maximo", "x"])
        .stdin(Stdio::null())
        .output()
        .expect("run discador");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("error: valor inválido 'x' para '--cps-maximo"),
        "{text}"
    );
    assert!(
        text.contains("Para más información, use '--help'."),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_discador"))
        .args(["migrate", "--no-existe"])
        .stdin(Stdio::null())
        .output()
        .expect("run discador");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("error: argumento inesperado '--no-existe'"),
        "{text}"
    );
    assert!(text.contains("Uso: discador migrate [OPCIONES]"), "{text}");
    for english in [
        "Usage:",
        "For more information",
        "unexpected argument",
        "found",
    ] {
        assert!(!text.contains(english), "{english:?} in {text}");
    }
}
