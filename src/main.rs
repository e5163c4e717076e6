//! `discador`: `serve` (default) runs the service; `migrate` creates the database and applies the
//! migrations, then exits; `sim` runs the FreeSWITCH simulator; `demo` dials a campaign end to end
//! through the simulator.

use clap::{Arg, Command, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[command(
        about = "Ejecuta el servicio: API REST, discador y socket saliente (predeterminado)."
    )]
    Serve(Config),
    /// Create the database if missing and apply pending migrations.
    #[command(about = "Crea la base de datos si falta y aplica las migraciones pendientes.")]
    Migrate {
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = discador::config::DEFAULT_DATABASE_URL,
            hide_env_values = true
        )]
        #[arg(
            help = "Base de datos: `sqlite://discador.db` (archivo embebido) o `mysql://usuario:clave@host:puerto/base`.",
            long_help = "Base de datos: `sqlite://discador.db` (un archivo embebido, que se crea si falta; la predeterminada) o `mysql://usuario:clave@host:puerto/base` (MySQL/MariaDB; la base se crea si falta)."
        )]
        database_url: Secret,
        #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        #[arg(help = "Líneas de log `text` o `json`.")]
        log_format: LogFormat,
    },
    /// Run the FreeSWITCH simulator (inbound ESL, calls, outbound socket legs).
    #[command(
        about = "Ejecuta el simulador de FreeSWITCH (ESL entrante, llamadas, tramos por socket saliente)."
    )]
    Sim(sim::SimConfig),
    /// Dial a demo campaign end to end through the simulator and show its progress.
    #[command(
        about = "Marca una campaña de demostración de punta a punta con el simulador y muestra su avance."
    )]
    Demo(demo::DemoArgs),
    /// Copy campaigns, numbers, CDRs and the do-not-call list to another database (e.g. from the
    /// SQLite file to MariaDB). Safe to run again; stop the service on the source first.
    #[command(
        about = "Copia campañas, números, CDR y la lista de no llamar a otra base de datos (p. ej. del archivo SQLite a MariaDB). Se puede repetir sin riesgo; detenga antes el servicio sobre el origen."
    )]
    Copy {
        /// Source DATABASE_URL (only read). Also from the environment, which keeps a password out of
        /// the process list.
        #[arg(long, env = "COPY_FROM_URL", hide_env_values = true)]
        #[arg(
            value_name = "URL",
            help = "DATABASE_URL de origen (solo se lee). También desde el entorno, lo que deja la clave fuera de la lista de procesos."
        )]
        from: Secret,
        /// Destination DATABASE_URL (created and migrated if needed).
        #[arg(long, env = "COPY_TO_URL", hide_env_values = true)]
        #[arg(
            value_name = "URL",
            help = "DATABASE_URL de destino (se crea y se migra si hace falta)."
        )]
        to: Secret,
    },
}

/// clap's own texts in Spanish, the same for every (sub)command: the `Usage:` heading (the
/// template), `Options:`/`Commands:`/`Arguments:` (headings), the help and version flags, the help
/// subcommand, `[default: …]` and `[possible values: …]`.
const HELP_TEMPLATE: &str =
    "{before-help}{about-with-newline}\nUso: {usage}\n\n{all-args}{after-help}";
const OPTIONS_HEADING: &str = "Opciones";
const ARGUMENTS_HEADING: &str = "Argumentos";

/// The CLI with clap's texts in Spanish (see [`HELP_TEMPLATE`]).
fn localized_command() -> Command {
    let mut cmd = localize_before_build(Cli::command(), None);
    // The help and version flags and the help subcommand exist once built.
    cmd.build();
    localize_after_build(cmd)
}

fn localize_before_build(cmd: Command, parent: Option<&str>) -> Command {
    let name = match parent {
        Some(parent) => format!("{parent} {}", cmd.get_name()),
        None => cmd.get_name().to_owned(),
    };
    let usage = if cmd.has_subcommands() {
        format!("{name} [COMANDO] [OPCIONES]")
    } else {
        format!("{name} [OPCIONES]")
    };
    cmd.help_template(HELP_TEMPLATE)
        .subcommand_help_heading("Comandos")
        .subcommand_value_name("COMANDO")
        .override_usage(usage)
        .mut_subcommands(|sub| localize_before_build(sub, Some(&name)))
}

fn localize_after_build(cmd: Command) -> Command {
    let is_help = cmd.get_name() == "help";
    let cmd = cmd.mut_args(|arg| localize_arg(arg, is_help));
    let cmd = if is_help {
        // Built by clap, after `localize_before_build`.
        cmd.about("Muestra esta ayuda o la del comando indicado")
            .help_template(HELP_TEMPLATE)
            .subcommand_help_heading("Comandos")
            .subcommand_value_name("COMANDO")
            .override_usage("discador help [COMANDO]")
    } else {
        cmd
    };
    cmd.mut_subcommands(localize_after_build)
}

fn localize_arg(arg: Arg, in_help_subcommand: bool) -> Arg {
    let mut arg = match arg.get_id().as_str() {
        "help" => arg
            .help("Muestra esta ayuda")
            .long_help("Muestra esta ayuda (con -h, un resumen)"),
        "version" => arg.help("Muestra la versión"),
        _ if in_help_subcommand => arg.help("El comando cuya ayuda se muestra"),
        _ => arg,
    };
    if arg.get_help_heading().is_none() {
        let heading = if arg.is_positional() {
            ARGUMENTS_HEADING
        } else {
            OPTIONS_HEADING
        };
        arg = arg.help_heading(heading);
    }
    let mut notes = Vec::new();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if arg.get_action().takes_values() && !arg.is_hide_default_value_set() {
        arg = arg.hide_default_value(true);
        if defaults.iter().any(|v| !v.is_empty()) {
            notes.push(format!("[por defecto: {}]", defaults.join(" ")));
        }
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_owned())
        .collect();
    if !values.is_empty() && !arg.is_hide_possible_values_set() {
        arg = arg.hide_possible_values(true);
        notes.push(format!("[valores posibles: {}]", values.join(", ")));
    }
    if notes.is_empty() {
        return arg;
    }
    let notes = notes.join(" ");
    let help = arg.get_help().map(|h| format!("{h} {notes}"));
    let long_help = arg.get_long_help().map(|h| format!("{h}\n\n{notes}"));
    let arg = arg.help(help.unwrap_or(notes));
    match long_help {
        Some(long) => arg.long_help(long),
        None => arg,
    }
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

/// The command line, or the process ends: help and version on stdout, a usage error on stderr
/// in Spanish (see [`spanish_error`]).
fn parse_cli() -> Cli {
    let parsed = localized_command()
        .try_get_matches_from(args_with_default_subcommand())
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprint!("{}", spanish_error(&e.render().to_string()));
            std::process::exit(e.exit_code());
        }
    }
}

/// clap's usage errors, rendered in English, with their fixed phrases in Spanish (the values,
/// flags and reasons inside them are ours already).
fn spanish_error(text: &str) -> String {
    const PHRASES: &[(&str, &str)] = &[
        ("Usage:", "Uso:"),
        ("For more information, try", "Para más información, use"),
        ("unexpected argument '", "argumento inesperado '"),
        ("unexpected value '", "valor inesperado '"),
        ("' found; no more were expected", "'; no se esperaban más"),
        ("' found", "'"),
        ("invalid value '", "valor inválido '"),
        ("a value is required for '", "falta un valor para '"),
        ("' but none was supplied", "'"),
        ("' for '", "' para '"),
        (
            "the following required arguments were not provided:",
            "faltan estos argumentos obligatorios:",
        ),
        ("unrecognized subcommand '", "comando desconocido '"),
        (
            "requires a subcommand but one was not provided",
            "necesita un comando",
        ),
        ("the argument '", "el argumento '"),
        ("' cannot be used multiple times", "' no se puede repetir"),
        ("' cannot be used with", "' no se puede usar con"),
        (
            "one or more of the other specified arguments",
            "alguno de los otros argumentos",
        ),
        (
            "equal sign is needed when assigning values to '",
            "se necesita '=' para dar valor a '",
        ),
        ("[possible values: ", "[valores posibles: "),
        ("[subcommands: ", "[comandos: "),
        (
            "a similar argument exists:",
            "existe un argumento parecido:",
        ),
        (
            "a similar subcommand exists:",
            "existe un comando parecido:",
        ),
        ("a similar value exists:", "existe un valor parecido:"),
        (
            "some similar arguments exist:",
            "existen argumentos parecidos:",
        ),
        (
            "some similar subcommands exist:",
            "existen comandos parecidos:",
        ),
        ("some similar values exist:", "existen valores parecidos:"),
        ("to pass '", "para pasar '"),
        ("' as a value, use '", "' como valor, use '"),
        ("tip:", "sugerencia:"),
        ("unknown cause", "causa desconocida"),
    ];
    PHRASES
        .iter()
        .fold(text.to_owned(), |t, (en, es)| t.replace(en, es))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Not `main() -> Result`: that prints `Error: …` and `Caused by:`.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = parse_cli();
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
