//! Logging set-up: `tracing` lines as text (default) or JSON (`LOG_FORMAT=json`), filtered by
//! `RUST_LOG` (default `info`).
//!
//! Fields follow one convention across the service: `campana`, `uuid`, and `telefono` masked to its
//! last four digits at info level. Secrets are never fields: the configuration holds them in
//! [`crate::secret::Secret`], which prints `***`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Calling it twice (tests) is harmless: the first one stays.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As [`init`], with another filter when `RUST_LOG` is not set (the demo keeps quiet: its progress
/// bar is its output).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a person at a terminal: in a file, a pipe or journald the escape codes are
    // noise that breaks grep and log shippers.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
