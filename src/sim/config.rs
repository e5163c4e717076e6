//! Settings of `discador sim`: where it listens, how strict it is (sessions per second, max
//! sessions), how long each simulated phase lasts, how outcomes are chosen and which faults it
//! injects. Every field is also a CLI flag so the same values drive `make demo`, the tests and the
//! benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

use super::outcome::{Mix, OutcomeRule};

/// Durations of the simulated call phases, in milliseconds of *unscaled* time.
///
/// They are multiplied by [`SimConfig::time_scale`] before use, so a test can run a "20 s" call in
/// 20 ms without changing the shape of the call.
#[derive(Clone, Debug, clap::Args)]
pub struct Timings {
    /// Ringing before a human or a machine answers.
    #[arg(long = "ring-ms", default_value_t = 4_000)]
    #[arg(help = "Timbrado antes de que atienda una persona o una máquina.")]
    pub ring_ms: u64,
    /// Delay before a busy / rejected / failed destination gives up (unallocated is immediate).
    #[arg(long = "reject-ms", default_value_t = 800)]
    #[arg(
        help = "Demora hasta que un destino ocupado / rechazado / fallido se da por vencido (uno inexistente es inmediato)."
    )]
    pub reject_ms: u64,
    /// Talk time of a call transferred to the human extension.
    #[arg(long = "talk-ms", default_value_t = 20_000)]
    #[arg(help = "Tiempo de conversación de una llamada transferida a la extensión de personas.")]
    pub talk_ms: u64,
    /// Time the `amd` application listens before it decides.
    #[arg(long = "amd-ms", default_value_t = 2_500)]
    #[arg(help = "Tiempo que escucha la aplicación `amd` antes de decidir.")]
    pub amd_ms: u64,
    /// Length of one `playback` (and of the machine extension's message).
    #[arg(long = "playback-ms", default_value_t = 3_000)]
    #[arg(help = "Duración de un `playback` (y del mensaje de la extensión de máquinas).")]
    pub playback_ms: u64,
    /// Time from `avmd_start` to the answering machine's beep.
    #[arg(long = "beep-ms", default_value_t = 4_000)]
    #[arg(help = "Tiempo desde `avmd_start` hasta el beep del contestador.")]
    pub beep_ms: u64,
    /// A call that nobody drives (no transfer, no hangup) is cut after this long (ALLOTTED_TIMEOUT).
    #[arg(long = "max-call-ms", default_value_t = 600_000)]
    #[arg(
        help = "Una llamada que nadie maneja (sin transferencia ni corte) se corta tras este tiempo (ALLOTTED_TIMEOUT)."
    )]
    pub max_call_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            ring_ms: 4_000,
            reject_ms: 800,
            talk_ms: 20_000,
            amd_ms: 2_500,
            playback_ms: 3_000,
            beep_ms: 4_000,
            max_call_ms: 600_000,
        }
    }
}

/// Faults the simulator injects on inbound ESL connections, to test the dialer's recovery.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Faults {
    /// Close each inbound connection after it has been sent this many events.
    #[arg(long = "fault-drop-after")]
    #[arg(help = "Cierra cada conexión entrante después de enviarle esta cantidad de eventos.")]
    pub drop_after_events: Option<u64>,
    /// Delay every reply (command/reply and api/response) by this many milliseconds (not scaled).
    #[arg(long = "fault-delay-ms")]
    #[arg(
        help = "Demora cada respuesta (command/reply y api/response) esta cantidad de milisegundos (sin escalar)."
    )]
    pub reply_delay_ms: Option<u64>,
    /// Send a garbage (unparseable) frame every this many events.
    #[arg(long = "fault-garbage-every")]
    #[arg(
        help = "Envía una trama basura (imposible de interpretar) cada esta cantidad de eventos."
    )]
    pub garbage_every_events: Option<u64>,
    /// Answer every `auth` with `-ERR invalid`, whatever the password.
    #[arg(long = "fault-refuse-auth")]
    #[arg(help = "Responde `-ERR invalid` a todo `auth`, sea cual sea la clave.")]
    pub refuse_auth: bool,
}

/// Settings of the simulator (`discador sim`).
#[derive(Clone, Debug, clap::Args)]
pub struct SimConfig {
    /// Address of the inbound event socket (FreeSWITCH's `event_socket.conf.xml` listen-ip:port).
    #[arg(long, default_value = "127.0.0.1:8021")]
    #[arg(
        help = "Dirección del event socket entrante (el listen-ip:port de `event_socket.conf.xml` de FreeSWITCH)."
    )]
    pub listen: SocketAddr,

    /// Event socket password. Never logged.
    #[arg(long, default_value = "ClueCon", hide_default_value = true)]
    #[arg(help = "Clave del event socket. Nunca se escribe en los logs.")]
    pub password: Secret,

    /// Address the `socket` dialplan application connects to (the controller's outbound socket).
    #[arg(long = "socket", default_value = "127.0.0.1:8084")]
    #[arg(
        help = "Dirección a la que se conecta la aplicación `socket` del dialplan (el socket saliente del controlador)."
    )]
    pub socket_addr: SocketAddr,

    /// FreeSWITCH's `sessions-per-second` (switch.conf.xml). See `limits` for the exact rule.
    #[arg(long = "sessions-per-second", default_value_t = 30)]
    #[arg(
        help = "El `sessions-per-second` de FreeSWITCH (switch.conf.xml): originates admitidos por segundo."
    )]
    pub sps: u32,

    /// FreeSWITCH's `max-sessions`: live channels allowed at once.
    #[arg(long = "max-sessions", default_value_t = 1000)]
    #[arg(help = "El `max-sessions` de FreeSWITCH: canales en curso admitidos a la vez.")]
    pub max_sessions: u32,

    /// Factor applied to every simulated duration (0.01 runs a 20 s call in 200 ms). Pacing limits
    /// (sessions per second) are real time and are NOT scaled.
    #[arg(long = "time-scale", default_value_t = 1.0)]
    #[arg(
        help = "Factor que se aplica a toda duración simulada (0.01 hace una llamada de 20 s en 200 ms).",
        long_help = "Factor que se aplica a toda duración simulada (0.01 hace una llamada de 20 s en 200 ms). Los límites de ritmo (sesiones por segundo) son en tiempo real y NO se escalan."
    )]
    pub time_scale: f64,

    /// Outcome mix, e.g. `humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2`.
    /// Without it, the destination's last digit decides (see the module docs).
    #[arg(long)]
    #[arg(
        help = "Mezcla de resultados, p. ej. `humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2`.",
        long_help = "Mezcla de resultados, p. ej. `humano=60,maquina=15,ocupado=10,no_contesta=10,invalido=3,falla=2`. Sin ella, decide el último dígito del destino."
    )]
    pub mix: Option<Mix>,

    /// Seed of the mix: the same seed and number always give the same outcome.
    #[arg(long, default_value_t = 0)]
    #[arg(
        help = "Semilla de la mezcla: la misma semilla y el mismo número dan siempre el mismo resultado."
    )]
    pub seed: u64,

    /// Phase durations.
    #[command(flatten)]
    pub timings: Timings,

    /// Fault injection.
    #[command(flatten)]
    pub faults: Faults,

    /// Append every originate received to this CSV file (`timestamp_us,uuid,destination,job_uuid`).
    #[arg(long = "originate-log")]
    #[arg(
        help = "Agrega cada originate recibido a este archivo CSV (`timestamp_us,uuid,destination,job_uuid`)."
    )]
    pub originate_log: Option<PathBuf>,

    /// Value of `FreeSWITCH-Hostname` / `FreeSWITCH-Switchname` in events.
    #[arg(long, default_value = "discador-sim")]
    #[arg(help = "Valor de `FreeSWITCH-Hostname` / `FreeSWITCH-Switchname` en los eventos.")]
    pub hostname: String,

    /// Seconds between HEARTBEAT events (FreeSWITCH fires one every 20 s; 0 disables). Real time,
    /// not scaled.
    #[arg(long = "heartbeat-secs", default_value_t = 20)]
    #[arg(
        help = "Segundos entre eventos HEARTBEAT (FreeSWITCH emite uno cada 20 s; 0 los desactiva). Tiempo real, sin escalar."
    )]
    pub heartbeat_secs: u64,

    /// A module this switch lacks (repeatable): `mod_amd` (third-party, often absent) or
    /// `mod_avmd` (not built by default). Its applications then hang the call up with
    /// DESTINATION_OUT_OF_ORDER, as FreeSWITCH does, and `module_exists` answers `false`.
    #[arg(long = "no-module", value_name = "MODULO")]
    #[arg(
        help = "Un módulo que este switch no tiene (repetible): `mod_amd` o `mod_avmd`.",
        long_help = "Un módulo que este switch no tiene (repetible): `mod_amd` (de terceros, a menudo ausente) o `mod_avmd` (no se compila por defecto). Sus aplicaciones cortan entonces la llamada con DESTINATION_OUT_OF_ORDER, como hace FreeSWITCH, y `module_exists` responde `false`."
    )]
    pub missing_modules: Vec<String>,

    /// The gateways this switch has (repeatable). An originate through any other gets
    /// `-ERR INVALID_GATEWAY` and no channel. Empty (the default): every gateway name exists.
    #[arg(long = "gateway-name", value_name = "NOMBRE")]
    #[arg(
        help = "Los gateways que tiene este switch (repetible). Vacío (el valor por defecto): existe cualquiera.",
        long_help = "Los gateways que tiene este switch (repetible). Un originate por cualquier otro recibe `-ERR INVALID_GATEWAY` y ningún canal. Vacío (el valor por defecto): existe cualquier nombre de gateway."
    )]
    pub gateways: Vec<String>,

    /// FreeSWITCH's sounds directory (`global_getvar sounds_dir`): relative files are played from
    /// here, and `file_exists` and `playback` look at the real files, as the switch does.
    #[arg(long = "sounds-dir", default_value = "/usr/share/freeswitch/sounds")]
    #[arg(
        help = "Directorio de sonidos de FreeSWITCH (`global_getvar sounds_dir`).",
        long_help = "Directorio de sonidos de FreeSWITCH (`global_getvar sounds_dir`): los archivos relativos se reproducen desde aquí, y `file_exists` y `playback` miran los archivos reales, como el switch."
    )]
    pub sounds_dir: PathBuf,
}

impl Default for SimConfig {
    /// The CLI defaults. In-process tests usually set `listen` to `127.0.0.1:0` and a small
    /// `time_scale`.
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8021)),
            password: Secret::new("ClueCon"),
            socket_addr: SocketAddr::from(([127, 0, 0, 1], 8084)),
            sps: 30,
            max_sessions: 1000,
            time_scale: 1.0,
            mix: None,
            seed: 0,
            timings: Timings::default(),
            faults: Faults::default(),
            originate_log: None,
            hostname: "discador-sim".to_owned(),
            heartbeat_secs: 20,
            missing_modules: Vec::new(),
            gateways: Vec::new(),
            sounds_dir: PathBuf::from("/usr/share/freeswitch/sounds"),
        }
    }
}

impl SimConfig {
    /// Defaults for in-process tests: an ephemeral port (read it from `SimHandle::addr`) and
    /// every duration 100 times shorter (a 4 s ring lasts 40 ms, `originate_timeout=30` 300 ms).
    pub fn for_tests() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 0.01,
            ..SimConfig::default()
        }
    }
}

/// Why a configuration cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimConfigError {
    #[error("time-scale debe ser un número finito > 0 (se recibió {0})")]
    TimeScale(f64),
    #[error("sessions-per-second debe ser al menos 1")]
    Sps,
    #[error("max-sessions debe ser al menos 1")]
    MaxSessions,
}

impl SimConfig {
    /// Rejects values that would make the simulator meaningless (a zero or negative time scale).
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(SimConfigError::TimeScale(self.time_scale));
        }
        if self.sps == 0 {
            return Err(SimConfigError::Sps);
        }
        if self.max_sessions == 0 {
            return Err(SimConfigError::MaxSessions);
        }
        Ok(())
    }

    /// Whether the switch has module `name` (`module_exists`): the modules a dialer asks about,
    /// minus those configured missing.
    pub fn has_module(&self, name: &str) -> bool {
        const LOADED: &[&str] = &[
            "mod_amd",
            "mod_avmd",
            "mod_commands",
            "mod_dptools",
            "mod_event_socket",
            "mod_sofia",
            "mod_loopback",
            "mod_dialplan_xml",
        ];
        LOADED.contains(&name) && !self.missing_modules.iter().any(|m| m == name)
    }

    /// Whether the module application `app` belongs to is loaded: `amd` needs mod_amd, `avmd_*`
    /// mod_avmd; the others are core applications. (Which applications the simulator runs at all
    /// is the socket leg's list.)
    pub fn has_module_for(&self, app: &str) -> bool {
        match app {
            "amd" => self.has_module("mod_amd"),
            "avmd" | "avmd_start" | "avmd_stop" => self.has_module("mod_avmd"),
            _ => true,
        }
    }

    /// The file `playback` opens for `arg`: relative paths under the sounds directory. `None` for
    /// what is not a file (`silence_stream://…`, `tone_stream://…`), which always plays.
    pub fn sound_file(&self, arg: &str) -> Option<PathBuf> {
        if arg.contains("://") {
            return None;
        }
        let path = std::path::Path::new(arg);
        Some(if path.is_absolute() {
            path.to_owned()
        } else {
            self.sounds_dir.join(path)
        })
    }

    /// Whether gateway `name` exists (every name does when no list is configured).
    pub fn has_gateway(&self, name: &str) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == name)
    }

    /// The outcome rule these settings select.
    pub fn rule(&self) -> OutcomeRule {
        match &self.mix {
            Some(mix) => OutcomeRule::Mix {
                mix: mix.clone(),
                seed: self.seed,
            },
            None => OutcomeRule::LastDigit,
        }
    }

    /// `ms` of simulated time as a real duration, after the time scale.
    pub fn scaled_ms(&self, ms: u64) -> Duration {
        scale(Duration::from_millis(ms), self.time_scale)
    }

    /// `secs` of simulated time as a real duration, after the time scale.
    pub fn scaled_secs(&self, secs: u64) -> Duration {
        scale(Duration::from_secs(secs), self.time_scale)
    }
}

/// Multiplies a duration by a factor validated as finite and positive; saturates instead of
/// panicking on absurd products.
fn scale(d: Duration, factor: f64) -> Duration {
    let secs = d.as_secs_f64() * factor;
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_shrinks_durations() {
        let cfg = SimConfig {
            time_scale: 0.01,
            ..SimConfig::default()
        };
        assert_eq!(cfg.scaled_ms(20_000), Duration::from_millis(200));
        assert_eq!(cfg.scaled_secs(30), Duration::from_millis(300));
    }

    #[test]
    fn invalid_scale_is_rejected() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let cfg = SimConfig {
                time_scale: bad,
                ..SimConfig::default()
            };
            assert!(cfg.validate().is_err(), "{bad} accepted");
        }
        assert!(SimConfig::default().validate().is_ok());
    }

    #[test]
    fn debug_never_prints_the_password() {
        let cfg = SimConfig {
            password: Secret::new("s3cr3t-pw"),
            ..SimConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cr3t-pw"));
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        sim: SimConfig,
    }

    #[test]
    fn flags_parse_as_documented() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "sim",
            "--listen",
            "127.0.0.1:18021",
            "--sessions-per-second",
            "50",
            "--max-sessions",
            "20",
            "--time-scale",
            "0.01",
            "--mix",
            "humano=60,maquina=40",
            "--seed",
            "9",
            "--ring-ms",
            "100",
            "--fault-drop-after",
            "3",
            "--fault-refuse-auth",
            "--originate-log",
            "/tmp/o.csv",
        ])
        .expect("valid flags");
        let sim = cli.sim;
        assert_eq!(sim.listen.port(), 18021);
        assert_eq!((sim.sps, sim.max_sessions), (50, 20));
        assert_eq!(sim.timings.ring_ms, 100);
        assert_eq!(sim.faults.drop_after_events, Some(3));
        assert!(sim.faults.refuse_auth);
        assert!(matches!(sim.rule(), OutcomeRule::Mix { seed: 9, .. }));
        assert!(Cli::try_parse_from(["sim", "--mix", "nadie=1"]).is_err());
        let defaults = Cli::try_parse_from(["sim"]).expect("defaults").sim;
        assert_eq!(defaults.sps, SimConfig::default().sps);
        assert_eq!(defaults.socket_addr, SimConfig::default().socket_addr);
        assert_eq!(defaults.heartbeat_secs, SimConfig::default().heartbeat_secs);
    }
}
