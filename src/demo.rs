//! `discador demo`: a campaign dialed end to end through the simulator, in one command.
//!
//! It starts the FreeSWITCH simulator and the real service in this process, then acts as a client
//! would, over HTTP only: creates a campaign, loads a few hundred numbers (CSV), starts it, and shows
//! its progress live until it finishes. Nothing is faked: the numbers go through the same API,
//! dialer, ESL client, outbound-socket controller, tracker and MariaDB writes as in production; the
//! simulator decides each call's outcome by the number's last digit (see `discador sim --help`).
//! The campaign has a script: people hear a message and machines get it after the beep, so each
//! call ends with its disposition (`escucharon`, `mensajes_dejados` in estado).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde_json::{json, Value};

use crate::app::RunningApp;
use crate::config::{Config, Secret};
use crate::sim::{SimConfig, SimHandle, Simulator};

/// Options of `discador demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// How many numbers the demo campaign dials.
    #[arg(long, default_value_t = 300)]
    #[arg(help = "Cuántos números marca la campaña de demostración.")]
    pub numeros: u32,
    /// The demo campaign's calls per second.
    #[arg(long, default_value_t = 25.0)]
    #[arg(help = "Llamadas por segundo de la campaña de demostración.")]
    pub cps: f64,
    /// Exit when the campaign finishes instead of serving until Ctrl-C.
    #[arg(long)]
    #[arg(help = "Termina cuando la campaña finaliza, en lugar de seguir sirviendo hasta Ctrl-C.")]
    pub salir: bool,
    /// The service's settings (only DATABASE_URL and API_LISTEN matter for the demo; FreeSWITCH is
    /// the simulator, started on a free port).
    #[command(flatten)]
    pub config: Config,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `discador demo`: the simulator and the service in this process, then one campaign dialed end to
/// end through the API, with a progress bar.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (sim, app) = start(&args).await?;
    let base = format!("http://{}", app.api_addr);
    let http = reqwest::Client::new();
    println!(
        "discador demo · simulador FreeSWITCH en {} · API en {base}",
        sim.addr
    );
    wait_ready(&http, &base).await?;
    let nombre = create_campaign(&http, &base, &args).await?;
    load_numbers(&http, &base, &nombre, args.numeros).await?;
    post(
        &http,
        &format!("{base}/discador/iniciar/"),
        json!({"nombre_campana": nombre}),
    )
    .await?;
    let started = Instant::now();
    let last = follow(&http, &base, &nombre).await?;
    println!(
        "\ncampaña {nombre} FINALIZADA en {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        serde_json::to_string_pretty(&last["estadisticas"])?
    );
    println!(
        "\nsimulador: {} originates recibidos",
        sim.originates().len()
    );
    println!("panel:        {base}/panel");
    println!("Swagger UI:   {base}/docs");
    println!("estado:       curl {base}/discador/estado/{nombre}");
    println!("campañas:     curl {base}/campanas/");
    if !args.salir {
        println!("\n(Ctrl-C para terminar)");
        shutdown.await;
    }
    app.shutdown().await?;
    sim.shutdown().await;
    Ok(())
}

/// The demo campaign's message, in the simulator's sounds directory.
const MESSAGE: &str = "bienvenida.wav";

/// A sounds directory for the simulator holding the demo's message: one second of silence, a real
/// WAV file, as the switch would need (the simulator checks that it exists, as `file_exists` does).
fn sounds_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join("discador-demo-sonidos");
    std::fs::create_dir_all(&dir).with_context(|| format!("no se pudo crear {}", dir.display()))?;
    let samples = 8000u32;
    let mut wav = Vec::with_capacity(44 + 2 * samples as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + 2 * samples).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
        wav.extend_from_slice(&v.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(2 * samples).to_le_bytes());
    wav.resize(44 + 2 * samples as usize, 0);
    std::fs::write(dir.join(MESSAGE), wav)
        .context("no se pudo escribir el mensaje de la demostración")?;
    Ok(dir)
}

/// The simulator (calls of a few seconds) and the service dialing it.
async fn start(args: &DemoArgs) -> anyhow::Result<(SimHandle, RunningApp)> {
    let socket: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let sim = Simulator::start(SimConfig {
        sounds_dir: sounds_dir()?,
        listen: "127.0.0.1:0".parse()?,
        password: Secret::new("ClueCon"),
        socket_addr: socket,
        sps: 200,
        // Calls of a few seconds: ring ~0.4 s, AMD ~0.25 s, talk ~2 s.
        time_scale: 0.1,
        ..SimConfig::default()
    })
    .await
    .context("no se pudo iniciar el simulador")?;
    let mut cfg = args.config.clone();
    cfg.freeswitch_host = "127.0.0.1".into();
    cfg.freeswitch_port = sim.addr.port();
    cfg.freeswitch_password = Secret::new("ClueCon");
    cfg.socket_listen = socket;
    if args.cps > cfg.cps_maximo.get() {
        cfg.cps_maximo = crate::domain::Cps::parse(args.cps).context("--cps")?;
    }
    let app = crate::app::spawn(cfg)
        .await
        .context("no se pudo iniciar el servicio")?;
    Ok((sim, app))
}

/// Waits until start-up recovery is over (a previous demo killed mid-campaign leaves calls in
/// `discador.db` to account for): until then a campaign cannot start.
async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let h: Value = http
            .get(format!("{base}/health"))
            .send()
            .await?
            .json()
            .await?;
        if h["arranque"] == "listo" {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("el servicio no terminó su recuperación de arranque en un minuto: {h}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_campaign(
    http: &reqwest::Client,
    base: &str,
    args: &DemoArgs,
) -> anyhow::Result<String> {
    let nombre = format!("DEMO_{}", chrono::Utc::now().format("%Y%m%d_%H%M%S"));
    let created = post(
        http,
        &format!("{base}/campanas/"),
        json!({
            "nombre": nombre, "cps": args.cps, "reintentos": 1, "intervalo_reintento": 3,
            "max_canales": 100, "amd": "mod_amd", "timeout_llamada": 15,
            "mensaje_humano": MESSAGE, "mensaje_maquina": MESSAGE, "buzon": "tras_beep",
            "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC"
        }),
    )
    .await?;
    println!(
        "campaña {} creada (tabla {})",
        nombre,
        created["tabla"].as_str().unwrap_or("?")
    );
    Ok(nombre)
}

/// `numeros` random numbers as CSV, plus one badly written one (reported, not loaded).
async fn load_numbers(
    http: &reqwest::Client,
    base: &str,
    nombre: &str,
    numeros: u32,
) -> anyhow::Result<()> {
    let mut csv = String::from("telefono,cliente\n");
    let mut rng = rand::rng();
    for i in 0..numeros {
        csv.push_str(&format!(
            "+54911{:08},cliente {i}\n",
            rng.random_range(0..100_000_000u32)
        ));
    }
    csv.push_str("12ab34,número mal escrito\n");
    let loaded: Value = http
        .post(format!("{base}/campana/{nombre}/numeros"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "números cargados: {} insertados, {} duplicados, {} inválidos",
        loaded["insertados"], loaded["duplicados"], loaded["invalidos"]
    );
    Ok(())
}

/// Shows the campaign's progress until it is FINALIZADA (at most 10 minutes); its last estado.
async fn follow(http: &reqwest::Client, base: &str, nombre: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let e: Value = http
            .get(format!("{base}/discador/estado/{nombre}"))
            .send()
            .await?
            .json()
            .await?;
        let s = &e["estadisticas"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        bar.set_length(n("total"));
        bar.set_position(n("completados") + n("errores"));
        bar.set_message(format!(
            "humanos {} (escucharon {}) · máquinas {} (mensajes {}) · errores {} · en curso {} · pendientes {} · cps {}",
            n("humanos"),
            n("escucharon"),
            n("maquinas"),
            n("mensajes_dejados"),
            n("errores"),
            n("en_curso"),
            n("pendientes"),
            s["cps_real"].as_f64().unwrap_or(0.0)
        ));
        if e["estado"] == "FINALIZADA" {
            bar.finish();
            return Ok(e);
        }
        if started.elapsed() > Duration::from_secs(600) {
            bar.abandon();
            bail!("la campaña de demostración no terminó en 10 minutos: {e}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let r = http.post(url).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {v}");
    }
    Ok(v)
}
