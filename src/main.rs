//! `discador`: `serve` (default) runs the service; `migrate` creates the database and applies the
//! migrations, then exits; `sim` runs the FreeSWITCH simulator; `demo` dials a campaign end to end
//! through the simulator.

use clap::{Parser, Subcommand};

use discador::config::{Config, LogFormat, Secret};
use discador::{app, demo, sim, store, telemetry};
use tokio_util::sync::CancellationToken;

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
            default_value = discador::config::DEFAULT_DATABASE_URL,
            hide_env_values = true
        )]
        database_url: Secret,
        #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Run the FreeSWITCH simulator (inbound ESL, calls, outbound socket legs).
    Sim(sim::SimConfig),
    /// Dial a demo campaign end to end through the simulator and show its progress.
    Demo(demo::DemoArgs),
    /// Copy campaigns, numbers, CDRs and the do-not-call list to another database (e.g. from the
    /// SQLite file to MariaDB). Safe to run again; stop the service on the source first.
    Copy {
        /// Source DATABASE_URL (only read). Also from the environment, which keeps a password out of
        /// the process list.
        #[arg(long, env = "COPY_FROM_URL", hide_env_values = true)]
        from: Secret,
        /// Destination DATABASE_URL (created and migrated if needed).
        #[arg(long, env = "COPY_TO_URL", hide_env_values = true)]
        to: Secret,
    },
}

/// `serve` is the default: `discador` and `discador --api-listen …` both run the service.
fn args_with_default_subcommand() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    let first = args.get(1).map(String::as_str);
    let explicit = matches!(
        first,
        Some(
            "serve"
                | "migrate"
                | "copy"
                | "sim"
                | "demo"
                | "help"
                | "-h"
                | "--help"
                | "-V"
                | "--version"
        )
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
        Cmd::Copy { from, to } => {
            telemetry::init(LogFormat::Text);
            let report = discador::copy::copy(&from, &to).await?;
            let mut campaigns: Vec<_> = report.numeros.iter().collect();
            campaigns.sort();
            for (nombre, n) in campaigns {
                println!("campaña {nombre}: {n} números copiados");
            }
            println!(
                "{} campañas nuevas, {} llamadas, {} intentos recientes, {} números en la lista de \
                 no llamar",
                report.campanas_nuevas, report.llamadas, report.intentos, report.dnc
            );
            Ok(())
        }
        Cmd::Sim(cfg) => {
            telemetry::init(LogFormat::Text);
            let stop = CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                on_signal.cancel();
            });
            sim::run(cfg, stop).await
        }
        Cmd::Demo(args) => {
            telemetry::init_with_default(args.config.log_format, "warn");
            demo::run(args, shutdown_signal()).await
        }
    }
}
