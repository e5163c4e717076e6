//! Wiring of the service, in the order a call travels: store, ESL client, dialer (tracker, writer,
//! runners), event pump and recovery, outbound-socket controller, and the API that steers them —
//! started together and stopped gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiLimiter, AppState};
use crate::config::{Config, Secret};
use crate::controller::{Controller, ControllerSettings};
use crate::dialer::pool::{NodeSetup, Pool};
use crate::dialer::writer::WriterHandle;
use crate::dialer::{recovery, Dialer, DialerSettings};
use crate::esl::{EventFormat, InboundClient, InboundConfig, OutboundConfig, OutboundServer};
use crate::events::Eventos;
use crate::metrics::Metrics;
use crate::procesos::caps::SharedCaps;
use crate::procesos::{Procesos, ProcessSettings};
use crate::store::{Location, Store, StoreError};

/// The events the tracker needs (BACKGROUND_JOB is always added by the client). CHANNEL_CREATE
/// tells a failed attempt from an originate the switch refused without a channel.
const EVENTS: &[&str] = &[
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
];

/// How long shutdown waits for queued results to reach the database.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown lets the outbound sessions finish the calls they control (a verdict and a
/// transfer; the longest wait is the avmd window).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running service, as tests and `serve` hold it.
pub struct RunningApp {
    /// Where the API actually listens (the configured port may be 0).
    pub api_addr: SocketAddr,
    /// Where the outbound-socket controller listens (FreeSWITCH's `socket` application target).
    pub socket_addr: SocketAddr,
    pub store: Store,
    pub dialer: Dialer,
    /// This process among its peers on the database: heartbeat, leases, shared caps.
    pub procesos: Procesos,
    /// The heartbeat and lease loop: kept until the results are written (see `shutdown`).
    heartbeat: JoinHandle<()>,
    /// SQLite: the exclusive lock on `<db>.lock`, held until the process is done.
    _sqlite_lock: Option<std::fs::File>,
    writer: WriterHandle,
    stop: CancellationToken,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    /// The outbound-socket server: drained, not aborted, at shutdown.
    outbound: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningApp {
    /// Stops accepting requests, lets in-flight ones finish, and returns.
    /// Dialing stops first (no new originates), then the API and the controller; results already
    /// known are written before this returns. Calls still up are left to FreeSWITCH and reconciled at
    /// the next start.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        // 0. No campaign is taken or (re)started any more; the heartbeat goes on, so that no peer
        //    takes these campaigns while their results are still being written.
        self.procesos.close();
        // 1. No new call: the runners stop and give their claims back.
        self.dialer.shutdown().await;
        // 2. No new request.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(()); // the server may already be gone
        }
        // 3. The calls under control get their verdict and destination (bounded).
        self.stop.cancel();
        if let Some(mut outbound) = self.outbound.take() {
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut outbound)
                .await
                .is_err()
            {
                tracing::warn!("sesiones de control sin terminar al detener; se cortan");
                outbound.abort();
            }
        }
        // 4. No more news from FreeSWITCH (the event pump, recovery and sweeps stop): what the
        //    tracker has not heard of by now is for the next start's recovery.
        for node in self.dialer.pool().nodes() {
            node.esl.shutdown().await;
        }
        for t in &self.background {
            t.abort();
        }
        for t in self.background.drain(..) {
            let _ = t.await;
        }
        // 5. Everything the tracker was told is decided (a round trip through its queue), then
        //    everything it decided is written.
        let _ = self.dialer.tracker().live().await;
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, self.writer.flushed()).await;
        if flushed.is_err() {
            tracing::warn!(
                sin_escribir = self.writer.unwritten(),
                "resultados sin escribir al detener; se reconciliarán al reiniciar"
            );
        }
        // 6. Everything this process knew is written: its leases go back and its row goes, so
        //    that a peer takes its campaigns at once and reconciles only the calls nobody tracks.
        self.heartbeat.abort();
        let _ = (&mut self.heartbeat).await;
        self.procesos.leave().await;
        (&mut self.server)
            .await
            .context("el servidor HTTP terminó con error")?;
        Ok(())
    }
}

/// The nodes of `FREESWITCH_NODOS`, or the single node of `FREESWITCH_HOST`/`FREESWITCH_PORT`
/// (named `host:port`, as CDRs have always named it).
fn node_setups(cfg: &Config) -> Vec<NodeSetup> {
    let client = |addr: &str, password: &Secret| {
        InboundClient::start(InboundConfig {
            addr: addr.to_owned(),
            password: password.clone(),
            events: EVENTS.iter().map(|e| e.to_string()).collect(),
            format: EventFormat::Plain,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
        })
    };
    if cfg.freeswitch_nodos.0.is_empty() {
        let addr = format!("{}:{}", cfg.freeswitch_host, cfg.freeswitch_port);
        return vec![NodeSetup {
            nombre: addr.clone(),
            esl: client(&addr, &cfg.freeswitch_password),
            direccion: addr,
            cps: None,
            canales: cfg.canales_maximos,
        }];
    }
    cfg.freeswitch_nodos
        .0
        .iter()
        .map(|spec| {
            let addr = format!("{}:{}", spec.host, spec.puerto);
            let password = spec.clave.as_ref().unwrap_or(&cfg.freeswitch_password);
            NodeSetup {
                nombre: spec.nombre.clone(),
                esl: client(&addr, password),
                direccion: addr,
                cps: spec.cps.map(|c| c.get()),
                canales: spec.canales.map_or(cfg.canales_maximos, |c| c.get()),
            }
        })
        .collect()
}

/// Refuses a public API without a token: the API starts and stops dialing.
fn check_exposure(cfg: &Config) -> anyhow::Result<Option<Secret>> {
    let token = cfg.api_token.clone().filter(|t| !t.expose().is_empty());
    if token.is_none() && !cfg.api_listen.ip().is_loopback() {
        anyhow::bail!(
            "API_LISTEN={} no es una dirección local: configure API_TOKEN o escuche en 127.0.0.1",
            cfg.api_listen
        );
    }
    Ok(token)
}

/// Opens the store. If MariaDB is down, the service still starts (answering 503) and a background
/// task creates/migrates the database as soon as it is reachable; a bad URL is a start-up error, and
/// so is a SQLite file that cannot be opened (a local path does not come back by waiting).
async fn open_store(url: &Secret) -> anyhow::Result<(Store, Option<JoinHandle<()>>)> {
    let server = matches!(Location::parse(url)?, Location::Mysql { .. });
    match Store::connect(url).await {
        Ok(store) => {
            tracing::info!(base = %store.describe(), "base de datos lista");
            Ok((store, None))
        }
        Err(StoreError::Unavailable(why)) if server => {
            tracing::warn!(error = %why, "base de datos no disponible al arrancar; se reintenta en segundo plano");
            let store = Store::connect_lazy(url)?;
            let bg_store = store.clone();
            let task = tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(delay).await;
                    match bg_store.prepare().await {
                        Ok(()) => {
                            tracing::info!("base de datos disponible, migraciones al día");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "base de datos aún no disponible"),
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            });
            Ok((store, Some(task)))
        }
        Err(e) => Err(e).context("no se pudo preparar la base de datos"),
    }
}

/// Starts the service on the configured addresses (port 0 allowed) and returns at once.
pub async fn spawn(cfg: Config) -> anyhow::Result<RunningApp> {
    let token = check_exposure(&cfg)?;
    cfg.check().map_err(anyhow::Error::msg)?;
    // SQLite serves one process: a second one on the same file is refused before touching it.
    let sqlite_lock = match Location::parse(&cfg.database_url)? {
        Location::Sqlite { path } => Some(crate::procesos::lock_sqlite(&path)?),
        Location::Mysql { .. } => None,
    };
    let (store, prepare_task) = open_store(&cfg.database_url).await?;
    // The controller's address first: every originate names it (SOCKET_ANUNCIADO).
    let (outbound_server, socket_addr) = bind_controller(&cfg).await?;
    let socket_anunciado = cfg.announced_socket(socket_addr);
    let listener = tokio::net::TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("no se pudo escuchar en {}", cfg.api_listen))?;
    let api_addr = listener.local_addr()?;
    // One registry per running service (tests run many in one process): see `crate::metrics`.
    let metrics = Arc::new(Metrics::new());

    // FreeSWITCH: per node one persistent, authenticated connection that reconnects by itself.
    let pool = Pool::new(
        node_setups(&cfg),
        Duration::from_secs(u64::from(cfg.nodo_perdido_s.get())),
    );

    // The dialer and what keeps it honest: the event pump feeding the tracker, and recovery.
    let (dialer, writer) = Dialer::new(
        store.clone(),
        pool,
        DialerSettings {
            cps_maximo: cfg.cps_maximo.get(),
            canales_maximos: cfg.canales_maximos,
            template: cfg.dial_template.clone(),
            default_gateway: cfg.gateway.clone(),
            gateway_cps: cfg.cps_por_gateway.0.clone(),
            max_intentos_dia: cfg.max_intentos_dia,
            clock: cfg.clock.clone(),
            eventos: Eventos::default(),
            metrics: metrics.clone(),
            socket_anunciado: socket_anunciado.clone(),
        },
    );
    let procesos = start_procesos(&cfg, &dialer, api_addr, socket_addr, socket_anunciado);
    let mut background: Vec<JoinHandle<()>> = prepare_task.into_iter().collect();
    background.push(metrics.watch_esl(dialer.pool().first().esl.state()));
    background.push(recovery::spawn_event_pump(&dialer));
    background.push(api::events::spawn_pace(dialer.clone()));
    let heartbeat = procesos.spawn();
    let (recovering, leases) = (dialer.clone(), procesos.clone());
    background.push(tokio::spawn(async move {
        recovery::recover_at_startup(&recovering, &leases).await;
    }));

    // The answered legs come back here.
    let stop = CancellationToken::new();
    let outbound = start_controller(&cfg, outbound_server, socket_addr, &dialer, stop.clone());

    let state = AppState::new(
        store.clone(),
        token,
        Some(dialer.clone()),
        metrics,
        ApiLimiter::new(cfg.api_limite_rps, cfg.api_limite_rafaga),
        stop.clone(),
        Some(procesos.clone()),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let server = warp::serve(api::routes(state))
        .incoming(listener)
        .graceful(async {
            let _ = rx.await; // a dropped sender also means "stop"
        });
    let server = tokio::spawn(server.run());
    tracing::info!(api = %api_addr, "API escuchando");
    Ok(RunningApp {
        api_addr,
        socket_addr,
        store,
        dialer,
        procesos,
        heartbeat,
        _sqlite_lock: sqlite_lock,
        writer,
        stop,
        shutdown: Some(tx),
        server,
        outbound: Some(outbound),
        background,
    })
}

/// This process among its peers: its id, heartbeat and the caps it shares with them
/// (`CPS_MAXIMO`, each `CPS_POR_GATEWAY`, each node's `cps`).
fn start_procesos(
    cfg: &Config,
    dialer: &Dialer,
    api_addr: SocketAddr,
    socket_addr: SocketAddr,
    socket_anunciado: Option<String>,
) -> Procesos {
    let id = cfg
        .proceso_id
        .clone()
        .unwrap_or_else(crate::procesos::default_process_id);
    let mut caps = SharedCaps::new();
    let d = dialer.clone();
    caps.register(
        "total",
        cfg.cps_maximo.get(),
        Arc::new(move |r| d.set_total_rate(r)),
    );
    for (gw, cps) in &cfg.cps_por_gateway.0 {
        let d = dialer.clone();
        let name = gw.as_str().to_owned();
        caps.register(
            format!("gw:{name}"),
            cps.get(),
            Arc::new(move |r| d.set_gateway_rate(&name, r)),
        );
    }
    // A node's `cps` (its sessions per second) is the switch's, whichever process dials it.
    for node in dialer.pool().nodes() {
        let Some(pacer) = &node.pacer else { continue };
        let n = node.clone();
        caps.register(
            format!("nodo:{}", node.nombre),
            pacer.rate(),
            Arc::new(move |r| {
                if let Some(p) = &n.pacer {
                    p.set_rate(r);
                }
            }),
        );
    }
    tracing::info!(proceso = %id, socket_anunciado = ?socket_anunciado, "identidad del proceso");
    Procesos::new(
        ProcessSettings {
            id,
            latido: Duration::from_millis(cfg.latido_ms),
            caduca: Duration::from_millis(cfg.proceso_caduca_ms),
            api: api_addr.to_string(),
            socket: socket_anunciado.unwrap_or_else(|| socket_addr.to_string()),
        },
        dialer.clone(),
        caps,
    )
}

/// Binds the outbound-socket server on `SOCKET_LISTEN` (before the dialer: its address goes with
/// every originate).
async fn bind_controller(cfg: &Config) -> anyhow::Result<(OutboundServer, SocketAddr)> {
    OutboundServer::bind(
        cfg.socket_listen,
        OutboundConfig {
            max_sessions: cfg.canales_maximos as usize,
            idle_timeout: Duration::from_secs(60),
        },
    )
    .await
    .with_context(|| format!("no se pudo escuchar en SOCKET_LISTEN={}", cfg.socket_listen))
}

/// Runs the outbound-socket server, handing every answered call to the controller; it drains its
/// sessions when `stop` is cancelled.
fn start_controller(
    cfg: &Config,
    outbound: OutboundServer,
    socket_addr: SocketAddr,
    dialer: &Dialer,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let controller = Controller::new(
        dialer.clone(),
        ControllerSettings {
            amd_timeout: Duration::from_millis(cfg.amd_timeout_ms),
            avmd_window: Duration::from_millis(cfg.avmd_ventana_ms),
            late_beep_window: Duration::from_millis(cfg.pitido_tardio_ms),
            ..ControllerSettings::default()
        },
    );
    let task = tokio::spawn(outbound.run(move |session| controller.clone().handle(session), stop));
    tracing::info!(socket = %socket_addr, "controlador de llamadas escuchando");
    if !socket_addr.ip().is_loopback() {
        // The outbound socket has no authentication in ESL: whoever connects is taken for
        // FreeSWITCH. Off loopback, only the switch may be able to reach it.
        tracing::warn!(socket = %socket_addr, "SOCKET_LISTEN no es local: restrinja el acceso a FreeSWITCH (firewall)");
    }
    task
}

/// Runs the service until `shutdown` resolves (Ctrl-C / SIGTERM in `main`).
pub async fn serve(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let app = spawn(cfg).await?;
    shutdown.await;
    tracing::info!("deteniendo");
    app.shutdown().await
}
