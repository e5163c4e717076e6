//! Configuration of `discador serve`: every setting is an environment variable with the same name as
//! its CLI flag (`FREESWITCH_HOST` ⇔ `--freeswitch-host`), so that a systemd unit, a container and a
//! shell all configure it the same way.
//!
//! Secrets (`FREESWITCH_PASSWORD`, `API_TOKEN`, the password inside `DATABASE_URL`) are held in
//! [`Secret`], whose `Debug` and `Display` never print the value: a `tracing` field or an error body
//! built from the configuration cannot leak them.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use crate::dialer::originate::DialTemplate;
use crate::domain::{Cps, Gateway};

/// The zero-setup default: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://discador.db";

pub use crate::secret::Secret;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the service (`discador serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// FreeSWITCH event socket host (inbound ESL).
    #[arg(long, env = "FREESWITCH_HOST", default_value = "127.0.0.1")]
    #[arg(help = "Host del event socket de FreeSWITCH (ESL entrante).")]
    pub freeswitch_host: String,

    /// FreeSWITCH event socket port.
    #[arg(long, env = "FREESWITCH_PORT", default_value_t = 8021)]
    #[arg(help = "Puerto del event socket de FreeSWITCH.")]
    pub freeswitch_port: u16,

    /// Event socket password (FreeSWITCH's default is ClueCon). Never logged.
    #[arg(
        long,
        env = "FREESWITCH_PASSWORD",
        default_value = "ClueCon",
        hide_default_value = true,
        hide_env_values = true
    )]
    #[arg(
        help = "Clave del event socket (la predeterminada de FreeSWITCH es ClueCon). Nunca se escribe en los logs."
    )]
    pub freeswitch_password: Secret,

    /// A pool of FreeSWITCH nodes: `nombre=host:puerto[;clave=X][;cps=N][;canales=N]`, comma
    /// separated. Empty: the single node of `FREESWITCH_HOST`/`FREESWITCH_PORT`.
    #[arg(long, env = "FREESWITCH_NODOS", default_value = "", hide_env_values = true, value_parser = parse_nodes)]
    #[arg(
        help = "Varios nodos FreeSWITCH: `nombre=host:puerto[;clave=X][;cps=N][;canales=N]`, separados por comas. Vacío: el único nodo de FREESWITCH_HOST/FREESWITCH_PORT.",
        long_help = "Varios nodos FreeSWITCH: `nombre=host:puerto[;clave=X][;cps=N][;canales=N]`, separados por comas. `nombre`: de 1 a 32 letras, dígitos, '_' o '-', único (va en el CDR de cada llamada). `clave`: la del event socket de ese nodo (por defecto FREESWITCH_PASSWORD; nunca se escribe en los logs). `cps`: sesiones por segundo que ese nodo admite para nuestros originates, entre todos los procesos del discador que comparten la base (por defecto sin límite propio). `canales`: su capacidad de canales (por defecto CANALES_MAXIMOS). Cada llamada va al nodo conectado, no drenado, con el módulo y el gateway que necesita, que tenga más capacidad libre. Vacío: el único nodo de FREESWITCH_HOST/FREESWITCH_PORT."
    )]
    pub freeswitch_nodos: crate::dialer::pool::NodeSpecs,

    /// Seconds a node's link may stay down before its calls are declared cut by the switch.
    #[arg(long, env = "NODO_PERDIDO_S", default_value = "15", value_parser = parse_nonzero)]
    #[arg(
        help = "Segundos que la conexión con un nodo puede estar caída antes de dar por cortadas sus llamadas (contestadas: INTERRUMPIDA, con la regla de reintentos)."
    )]
    pub nodo_perdido_s: NonZeroU32,

    /// Default SIP gateway for campaigns that do not name their own.
    #[arg(long, env = "GATEWAY", default_value = "gw_pstn", value_parser = parse_gateway)]
    #[arg(help = "Gateway SIP predeterminado de las campañas que no indican uno propio.")]
    pub gateway: Gateway,

    /// Dial-string template; `{gateway}` and `{telefono}` are replaced by validated values.
    #[arg(
        long,
        env = "DIAL_TEMPLATE",
        default_value = "sofia/gateway/{gateway}/{telefono}",
        value_parser = parse_template
    )]
    #[arg(
        help = "Plantilla de la cadena de marcación; `{gateway}` y `{telefono}` se reemplazan por valores validados."
    )]
    pub dial_template: DialTemplate,

    /// Database: `sqlite://discador.db` (an embedded file, created if missing; the default) or
    /// `mysql://user:password@host:port/database` (MySQL/MariaDB; the database is created if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    #[arg(
        help = "Base de datos: `sqlite://discador.db` (archivo embebido) o `mysql://usuario:clave@host:puerto/base`.",
        long_help = "Base de datos: `sqlite://discador.db` (un archivo embebido, que se crea si falta; la predeterminada) o `mysql://usuario:clave@host:puerto/base` (MySQL/MariaDB; la base se crea si falta)."
    )]
    pub database_url: Secret,

    /// Address of the REST API. Loopback by default; a public address requires `API_TOKEN`.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8000")]
    #[arg(
        help = "Dirección de la API REST. Local por defecto; una dirección pública requiere `API_TOKEN`."
    )]
    pub api_listen: SocketAddr,

    /// Address FreeSWITCH's `socket` dialplan application connects to (outbound ESL).
    #[arg(long, env = "SOCKET_LISTEN", default_value = "127.0.0.1:8084")]
    #[arg(
        help = "Dirección a la que se conecta la aplicación `socket` del dialplan de FreeSWITCH (ESL saliente)."
    )]
    pub socket_listen: SocketAddr,

    /// Bearer token required by every endpoint but `/health`, `/docs` and the page's files
    /// (`/metrics` and the event stream included). Never logged.
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    #[arg(
        help = "Token Bearer que exigen todos los endpoints salvo `/health`, `/docs` y los archivos del panel (`/metrics` y el flujo de eventos incluidos). Nunca se escribe en los logs."
    )]
    pub api_token: Option<Secret>,

    /// API requests per second allowed to each client address (every endpoint but `/health`);
    /// over it, 429 with `Retry-After`.
    #[arg(long, env = "API_LIMITE_RPS", default_value = "50", value_parser = parse_nonzero)]
    #[arg(
        help = "Peticiones por segundo permitidas a cada dirección cliente de la API (todo salvo `/health`); por encima, 429 con `Retry-After`."
    )]
    pub api_limite_rps: NonZeroU32,

    /// Requests a client may send at once before the per-second limit applies (its burst).
    #[arg(long, env = "API_LIMITE_RAFAGA", default_value = "100", value_parser = parse_nonzero)]
    #[arg(
        help = "Peticiones que un cliente puede enviar de una vez antes de que rija el límite por segundo (su ráfaga)."
    )]
    pub api_limite_rafaga: NonZeroU32,

    /// Ceiling on the sum of all campaigns' originates per second. FreeSWITCH's `sessions-per-second`
    /// defaults to 30 and admits at most 29 in any of its one-second windows, so the default stays
    /// below it; raise both together.
    #[arg(long, env = "CPS_MAXIMO", default_value = "25", value_parser = parse_total_cps)]
    #[arg(
        help = "Tope de la suma de originates por segundo de todas las campañas.",
        long_help = "Tope de la suma de originates por segundo de todas las campañas. El `sessions-per-second` de FreeSWITCH vale 30 por defecto y admite como máximo 29 en cualquiera de sus ventanas de un segundo, así que el valor por defecto queda por debajo; suba ambos a la vez."
    )]
    pub cps_maximo: Cps,

    /// Per-gateway ceilings on originates per second, shared by every campaign that dials through
    /// the gateway: `gw_pstn=20,gw_movil=5` (a carrier's own CPS limit). Empty: none.
    #[arg(long, env = "CPS_POR_GATEWAY", default_value = "", value_parser = parse_ceilings)]
    #[arg(
        help = "Topes de originates por segundo por gateway: `gw_pstn=20,gw_movil=5`. Vacío: ninguno.",
        long_help = "Topes de originates por segundo por gateway, compartidos por todas las campañas que marcan por ese gateway: `gw_pstn=20,gw_movil=5` (el límite de CPS del propio proveedor). Vacío: ninguno."
    )]
    pub cps_por_gateway: GatewayCeilings,

    /// Ceiling on live calls across all campaigns (at least 1).
    #[arg(long, env = "CANALES_MAXIMOS", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    #[arg(help = "Tope de llamadas en curso entre todas las campañas (al menos 1).")]
    pub canales_maximos: u32,

    /// Longest wait for `mod_amd`'s verdict, in milliseconds (then NOTSURE: the campaign's rule).
    #[arg(long, env = "AMD_TIMEOUT_MS", default_value_t = 10_000)]
    #[arg(
        help = "Espera máxima del veredicto de `mod_amd`, en milisegundos (después, NOTSURE: la regla de la campaña)."
    )]
    pub amd_timeout_ms: u64,

    /// How long `avmd` listens for a voicemail beep, in milliseconds (no beep: a person).
    #[arg(long, env = "AVMD_VENTANA_MS", default_value_t = 15_000)]
    #[arg(
        help = "Cuánto escucha `avmd` el beep de un contestador, en milisegundos (sin beep: una persona)."
    )]
    pub avmd_ventana_ms: u64,

    /// After a person's verdict, how long after the answer (ms) a voicemail beep heard during
    /// the person's message or menu still corrects it to a machine (`LATE_BEEP`). 0: never.
    #[arg(long, env = "PITIDO_TARDIO_MS", default_value_t = 20_000)]
    #[arg(
        help = "Tras un veredicto de persona, hasta cuántos milisegundos después de la respuesta un pitido de contestador oído durante el mensaje o el menú lo corrige a máquina (LATE_BEEP). 0: nunca."
    )]
    pub pitido_tardio_ms: u64,

    /// Attempts per number in any rolling 24 hours, every campaign together (TCPA-style caps:
    /// several US states allow 3). A number over it waits until its oldest attempt of the last
    /// 24 h is 24 h old. 0: no cap.
    #[arg(long, env = "MAX_INTENTOS_DIA", default_value_t = 0)]
    #[arg(
        help = "Intentos por número en cualquier ventana móvil de 24 horas, entre todas las campañas. 0: sin tope.",
        long_help = "Intentos por número en cualquier ventana móvil de 24 horas, sumando todas las campañas (topes al estilo TCPA: varios estados de EE. UU. permiten 3). Un número que lo supera espera hasta que su intento más antiguo de las últimas 24 h cumpla 24 h. 0: sin tope."
    )]
    pub max_intentos_dia: u32,

    /// This process's name among several on one MariaDB (`[A-Za-z0-9_.-]{1,64}`); by default
    /// `<host>-<pid>-<4 random hex>`, new at every start.
    #[arg(long, env = "PROCESO_ID", value_parser = parse_process_id)]
    #[arg(
        help = "Nombre de este proceso entre varios sobre una misma MariaDB (`[A-Za-z0-9_.-]{1,64}`); por defecto `<host>-<pid>-<4 hex al azar>`."
    )]
    pub proceso_id: Option<String>,

    /// How often this process writes its heartbeat and re-checks its campaigns' leases (ms).
    #[arg(long, env = "LATIDO_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    #[arg(
        help = "Cada cuánto este proceso escribe su latido y revisa las campañas que ejecuta, en milisegundos."
    )]
    pub latido_ms: u64,

    /// A process whose heartbeat is older than this (ms, by the database's clock) is dead: its
    /// campaigns are taken by a peer. At least 3 × LATIDO_MS.
    #[arg(long, env = "PROCESO_CADUCA_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(150..=600_000))]
    #[arg(
        help = "Un proceso sin latido desde hace más de esto (ms, reloj de la base) se da por muerto y otro toma sus campañas. Al menos 3 × LATIDO_MS."
    )]
    pub proceso_caduca_ms: u64,

    /// `host:port` where FreeSWITCH reaches this process's `SOCKET_LISTEN`, sent with every
    /// originate (`discador_socket`) so that each answered call comes back to the process that
    /// dialed it. Default: `SOCKET_LISTEN` when it is a concrete IPv4 address; otherwise none (the
    /// switch's global `discador_socket` is used).
    #[arg(long, env = "SOCKET_ANUNCIADO", value_parser = parse_announced)]
    #[arg(
        help = "`host:puerto` con el que FreeSWITCH llega al SOCKET_LISTEN de este proceso; se envía en cada originate para que cada llamada vuelva al proceso que la marcó. Por defecto SOCKET_LISTEN si es una IPv4 concreta."
    )]
    pub socket_anunciado: Option<String>,

    /// `text` or `json` log lines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    #[arg(help = "Líneas de log `text` o `json`.")]
    pub log_format: LogFormat,

    /// The calendar clock of the calling rules: the system clock, or a manual one in tests.
    #[arg(skip)]
    pub clock: crate::clock::Clock,
}

/// `CPS_POR_GATEWAY`: a carrier's own ceiling on originates per second, per gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayCeilings(pub Vec<(Gateway, Cps)>);

// Value parsers: the configuration is checked and typed where it is read, so a bad value stops the
// process at start-up with the flag's name and the reason, and nothing downstream re-validates.

fn parse_gateway(raw: &str) -> Result<Gateway, String> {
    Gateway::parse(raw).map_err(|e| e.to_string())
}

fn parse_template(raw: &str) -> Result<DialTemplate, String> {
    DialTemplate::parse(raw).map_err(|e| e.to_string())
}

fn parse_total_cps(raw: &str) -> Result<Cps, String> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} no es un número"))?;
    Cps::parse_total(v).map_err(|e| e.to_string())
}

fn parse_process_id(raw: &str) -> Result<String, String> {
    crate::procesos::check_process_id(raw).map_err(|e| e.to_string())
}

fn parse_announced(raw: &str) -> Result<String, String> {
    crate::procesos::check_announced(raw).map_err(|e| e.to_string())
}

fn parse_nonzero(raw: &str) -> Result<NonZeroU32, String> {
    raw.trim()
        .parse::<NonZeroU32>()
        .map_err(|_| format!("{raw:?} no es un entero mayor que 0"))
}

fn parse_nodes(raw: &str) -> Result<crate::dialer::pool::NodeSpecs, String> {
    crate::dialer::pool::parse_nodes(raw)
}

fn parse_ceilings(raw: &str) -> Result<GatewayCeilings, String> {
    crate::dialer::parse_gateway_cps(raw).map(GatewayCeilings)
}

impl Config {
    /// The rules between settings that no single flag can check.
    pub fn check(&self) -> Result<(), String> {
        if self.proceso_caduca_ms < 3 * self.latido_ms {
            return Err(format!(
                "PROCESO_CADUCA_MS={} debe ser al menos 3 × LATIDO_MS={} (un par de latidos \
                 perdidos no deben bastar para que otro proceso tome las campañas)",
                self.proceso_caduca_ms, self.latido_ms
            ));
        }
        Ok(())
    }

    /// Where FreeSWITCH reaches this process's controller: `SOCKET_ANUNCIADO`, else the actual
    /// `SOCKET_LISTEN` address when it is a concrete IPv4 address (port 0 resolved), else none.
    pub fn announced_socket(&self, bound: SocketAddr) -> Option<String> {
        if let Some(s) = &self.socket_anunciado {
            return Some(s.clone());
        }
        match bound {
            SocketAddr::V4(v4) if !v4.ip().is_unspecified() => Some(v4.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: Config,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        Cli::try_parse_from(std::iter::once("discador").chain(args.iter().copied()))
            .map(|c| c.cfg)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_typed_where_they_are_read() {
        let cfg = parse(&["--cps-por-gateway", "gw_a=20, gw_b=5"]).unwrap();
        assert_eq!(cfg.gateway.as_str(), "gw_pstn");
        assert_eq!(cfg.cps_maximo.get(), 25.0);
        assert_eq!(cfg.cps_por_gateway.0.len(), 2);
        assert!(cfg.freeswitch_nodos.0.is_empty());
        assert_eq!(cfg.nodo_perdido_s.get(), 15);
        let cfg = parse(&["--freeswitch-nodos", "a=h:1,b=g:2;canales=5"]).unwrap();
        assert_eq!(cfg.freeswitch_nodos.0.len(), 2);
        assert_eq!(
            (cfg.api_limite_rps.get(), cfg.api_limite_rafaga.get()),
            (50, 100)
        );
        for (args, flag) in [
            (&["--gateway", "gw/../x"][..], "--gateway"),
            (
                &["--dial-template", "sofia/gateway/{gateway}/x"][..],
                "--dial-template",
            ),
            (&["--cps-maximo", "0"][..], "--cps-maximo"),
            (&["--cps-maximo", "abc"][..], "--cps-maximo"),
            (&["--cps-maximo", "10001"][..], "--cps-maximo"),
            (&["--cps-por-gateway", "gw_a"][..], "--cps-por-gateway"),
            (&["--canales-maximos", "0"][..], "--canales-maximos"),
            (&["--api-limite-rps", "0"][..], "--api-limite-rps"),
            (&["--api-limite-rafaga", "x"][..], "--api-limite-rafaga"),
            (&["--freeswitch-nodos", "fs1=h"][..], "--freeswitch-nodos"),
            (&["--nodo-perdido-s", "0"][..], "--nodo-perdido-s"),
        ] {
            let err = parse(args).expect_err(flag);
            assert!(err.contains(flag), "{err}");
        }
    }
}
