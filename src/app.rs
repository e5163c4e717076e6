//! Wiring of the service: store, API, and (later) dialer, started together and stopped gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::config::{Config, Secret};
use crate::store::{Store, StoreError};

/// A running service, as tests and `serve` hold it.
pub struct RunningApp {
    /// Where the API actually listens (the configured port may be 0).
    pub api_addr: SocketAddr,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningApp {
    /// Stops accepting requests, lets in-flight ones finish, and returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(()); // the server may already be gone
        }
        for t in &self.background {
            t.abort();
        }
        (&mut self.server)
            .await
            .context("el servidor HTTP terminó con error")?;
        Ok(())
    }
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
/// task creates/migrates the database as soon as it is reachable; a bad URL is a start-up error.
async fn open_store(url: &Secret) -> anyhow::Result<(Store, Option<JoinHandle<()>>)> {
    match Store::connect(url).await {
        Ok(store) => Ok((store, None)),
        Err(StoreError::Unavailable(why)) => {
            tracing::warn!(error = %why, "base de datos no disponible al arrancar; se reintenta en segundo plano");
            let store = Store::connect_lazy(url)?;
            let (bg_store, url) = (store.clone(), url.clone());
            let task = tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(delay).await;
                    match bg_store.prepare(&url).await {
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
    let (store, prepare_task) = open_store(&cfg.database_url).await?;
    let state = AppState::new(store.clone(), token);
    let listener = tokio::net::TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("no se pudo escuchar en {}", cfg.api_listen))?;
    let api_addr = listener.local_addr()?;
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
        store,
        shutdown: Some(tx),
        server,
        background: prepare_task.into_iter().collect(),
    })
}

/// Runs the service until `shutdown` resolves (Ctrl-C / SIGTERM in `main`).
pub async fn serve(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let app = spawn(cfg).await?;
    shutdown.await;
    tracing::info!("deteniendo");
    app.shutdown().await
}
