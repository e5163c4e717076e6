//! `discador`: `serve` (default) runs the service; `migrate` creates the database and applies the
//! migrations, then exits.

use clap::{Parser, Subcommand};

use discador::config::{Config, LogFormat, Secret};
use discador::{app, store, telemetry};

#[derive(Parser)]
#[command(
    name = "discador",
    version,
    about = "Discador de campañas sobre FreeSWITCH"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service: REST API, dialer, outbound socket (default).
    Serve(Config),
    /// Create the database if missing and apply pending migrations.
    Migrate {
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "mysql://root@127.0.0.1:3306/discador",
            hide_env_values = true
        )]
        database_url: Secret,
        #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
}

/// `serve` is the default: `discador` and `discador --api-listen …` both run the service.
fn args_with_default_subcommand() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    let first = args.get(1).map(String::as_str);
    let explicit = matches!(
        first,
        Some("serve" | "migrate" | "help" | "-h" | "--help" | "-V" | "--version")
    );
    if !explicit && first.is_none_or(|a| a.starts_with('-')) {
        args.insert(1, "serve".into());
    }
    args
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(args_with_default_subcommand());
    match cli.cmd {
        Cmd::Serve(cfg) => {
            telemetry::init(cfg.log_format);
            app::serve(cfg, shutdown_signal()).await
        }
        Cmd::Migrate {
            database_url,
            log_format,
        } => {
            telemetry::init(log_format);
            store::Store::connect(&database_url).await?;
            tracing::info!("base de datos lista");
            Ok(())
        }
    }
}
