//! Several discador processes on one MariaDB database.
//!
//! - **Identity and heartbeat.** Every process has an id (`PROCESO_ID`) and upserts its row in
//!   `procesos` every `LATIDO_MS`, stamped with the database's clock. A process whose row is older
//!   than `PROCESO_CADUCA_MS` (by the database's clock) is dead for its peers.
//! - **Leases.** `bases.proceso` names the one process that runs a campaign. At every heartbeat the
//!   lease loop takes each ACTIVA campaign whose owner is nobody, dead or itself (one conditional
//!   UPDATE: two processes cannot both win), reconciles the calls a dead owner left in flight, and
//!   starts it; for the campaigns it owns it applies the state and settings recorded in the database
//!   (by any process's API) to its runner. A live owner keeps its lease while the campaign is paused
//!   or stopped (its calls may still be in flight); a clean exit gives the leases back.
//! - **Fencing.** A process that cannot write its heartbeat stops dialing before a peer can take
//!   its campaigns (one `LATIDO_MS` before `PROCESO_CADUCA_MS`, see `Procesos::run`); once it writes again, the lease loop resumes only the
//!   campaigns it still owns.
//! - **Shared caps** (`caps`): `CPS_MAXIMO` and `CPS_POR_GATEWAY` hold for all processes together.
//! - **Live figures**: each process publishes its campaigns' live figures with its heartbeat, so
//!   estado shows the same figures on every process.

pub mod caps;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::dialer::{recovery, Dialer, LiveStats};
use crate::domain::{CampaignName, CampaignState};
use crate::store::{Beat, Campaign, Store, StoreError};

use caps::SharedCaps;

/// Errors of this module's settings and of the SQLite single-process lock.
#[derive(Debug, thiserror::Error)]
pub enum ProcesoError {
    #[error("PROCESO_ID debe tener de 1 a 64 caracteres [A-Za-z0-9_.-], no {0:?}")]
    BadId(String),
    #[error(
        "SOCKET_ANUNCIADO debe ser host:puerto (letras, dígitos, '.', '-' y un puerto de 1 a \
         65535; 64 caracteres como máximo), no {0:?}"
    )]
    BadAnnounced(String),
    #[error(
        "la base SQLite {db} ya la usa otro proceso de discador (bloqueo en {lock}); SQLite admite \
         un solo proceso: para varios procesos use MariaDB (DATABASE_URL=mysql://...)"
    )]
    Locked { db: String, lock: String },
    #[error("no se pudo abrir el archivo de bloqueo {lock}: {why}")]
    LockFile { lock: String, why: String },
}

/// Checks `PROCESO_ID`: `[A-Za-z0-9_.-]{1,64}` (it is stored in `procesos.id` and in logs).
pub fn check_process_id(raw: &str) -> Result<String, ProcesoError> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ProcesoError::BadId(raw.to_owned()))
    }
}

/// Checks `SOCKET_ANUNCIADO`: `host:port`, with a host of letters, digits, `.` and `-` only, so it
/// is safe inside an originate's variables (see `dialer::originate::is_dial_safe`).
pub fn check_announced(raw: &str) -> Result<String, ProcesoError> {
    let bad = || ProcesoError::BadAnnounced(raw.to_owned());
    let (host, port) = raw.rsplit_once(':').ok_or_else(bad)?;
    // At most 64 in all: it is published in `procesos.socket`.
    let host_ok = !host.is_empty()
        && raw.len() <= 64
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    let port_ok =
        port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
    if host_ok && port_ok && crate::dialer::originate::is_dial_safe(raw) {
        Ok(raw.to_owned())
    } else {
        Err(bad())
    }
}

/// `<host>-<pid>-<4 random hex>`, cut to the allowed characters and length: unique per run, and
/// readable in `procesos` and in the logs.
pub fn default_process_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(40)
        .collect();
    let host = if host.is_empty() {
        "discador".to_owned()
    } else {
        host
    };
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The host name as recorded in `procesos.host`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Settings of the heartbeat and the lease loop.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub id: String,
    pub latido: Duration,
    pub caduca: Duration,
    /// Where the API listens (published in `procesos.api`).
    pub api: String,
    /// Where FreeSWITCH reaches the controller (published in `procesos.socket`).
    pub socket: String,
}

/// What a process publishes with every heartbeat (`procesos.demanda`, JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Demanda {
    /// Demand per shared-cap scope: the sum of the effective rates of the campaigns dialing here.
    #[serde(default)]
    pub ambitos: BTreeMap<String, f64>,
    /// Live figures of the campaigns run here, by name.
    #[serde(default)]
    pub campanas: BTreeMap<String, LiveStats>,
}

/// The heartbeat, fencing and lease loop of this process; cheap to clone.
#[derive(Clone)]
pub struct Procesos {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProcessSettings,
    store: Store,
    dialer: Dialer,
    caps: SharedCaps,
    /// Dialing is not allowed: no heartbeat written yet, or none for too long.
    fenced: AtomicBool,
    /// Shutting down: heartbeats go on (the leases stay held until the results are written), but
    /// no campaign is taken or started any more.
    closing: AtomicBool,
    /// What the live peers published at their last heartbeats, by peer id.
    peers: Mutex<HashMap<String, Demanda>>,
    /// One lease pass at a time, and never during an API command of this process (which records
    /// a state and acts on the runner: a pass that read the state before the command must not
    /// act on the runner after it).
    pass: tokio::sync::Mutex<()>,
    /// The first heartbeat was written.
    alive: tokio::sync::watch::Sender<bool>,
}

impl Procesos {
    pub fn new(settings: ProcessSettings, dialer: Dialer, caps: SharedCaps) -> Procesos {
        Procesos {
            inner: Arc::new(Inner {
                store: dialer.store().clone(),
                settings,
                dialer,
                caps,
                fenced: AtomicBool::new(true),
                closing: AtomicBool::new(false),
                peers: Mutex::new(HashMap::new()),
                pass: tokio::sync::Mutex::new(()),
                alive: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    /// This process's id.
    pub fn id(&self) -> &str {
        &self.inner.settings.id
    }

    /// Whether this process may not dial now (no current heartbeat, or shutting down).
    pub fn fenced(&self) -> bool {
        self.inner.fenced.load(Ordering::Acquire) || self.inner.closing.load(Ordering::Acquire)
    }

    /// Shutdown has begun: no lease is taken and no runner started from now on; heartbeats go on
    /// until [`Procesos::leave`].
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn caduca(&self) -> Duration {
        self.inner.settings.caduca
    }

    /// Holds the lease loop off while an API command records a state and acts on its runner.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.pass.lock().await
    }

    /// Waits until the first heartbeat is written: before it, a lease taken here would look dead
    /// to the peers.
    pub async fn wait_alive(&self) {
        let mut rx = self.inner.alive.subscribe();
        let _ = rx.wait_for(|a| *a).await;
    }

    /// Takes a campaign's lease if nobody, a dead process or this one holds it. Taken from nobody
    /// or a dead process, the calls left in flight are reconciled first (they belong to nobody
    /// now). `false`: a live peer runs it (or this process is fenced, or the database failed).
    pub async fn acquire(&self, c: &Campaign) -> bool {
        if self.fenced() {
            return false;
        }
        let lease = match self.store().lease(&c.nombre, self.caduca()).await {
            Ok(Some(l)) => l,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(campana = %c.nombre, error = %e, "no se pudo leer el dueño de la campaña");
                return false;
            }
        };
        if lease.proceso.as_deref() == Some(self.id()) {
            return true;
        }
        if lease.vivo {
            return false;
        }
        self.take(c).await
    }

    /// The conditional UPDATE, then the reconciliation of what the previous owner left.
    async fn take(&self, c: &Campaign) -> bool {
        match self
            .store()
            .take_lease(c.nombre.as_str(), self.id(), self.caduca())
            .await
        {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(campana = %c.nombre, error = %e, "no se pudo tomar la campaña");
                return false;
            }
        }
        tracing::info!(campana = %c.nombre, proceso = %self.id(), "campaña tomada por este proceso");
        if self.inner.dialer.has_runner(&c.nombre) {
            // Ours already (e.g. taken back after fencing): our tracker follows its calls.
            return true;
        }
        match self.store().in_flight(c).await {
            Ok(v) if v.is_empty() => {}
            Ok(v) => recovery::recover_campaign(&self.inner.dialer, c, v).await,
            Err(e) => {
                tracing::warn!(campana = %c.nombre, error = %e, "no se pudieron leer las llamadas en curso");
            }
        }
        true
    }

    /// Start-up: takes the campaigns left with calls in flight by nobody or a dead process (never a
    /// live peer's) and returns them, for recovery.
    pub async fn take_for_recovery(&self, c: &Campaign) -> bool {
        match self.store().lease(&c.nombre, self.caduca()).await {
            Ok(Some(l)) if l.proceso.as_deref() == Some(self.id()) || !l.vivo => self
                .store()
                .take_lease(c.nombre.as_str(), self.id(), self.caduca())
                .await
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Who runs a campaign: the owner's id (`None`: nobody alive), and its live figures as its
    /// owner published them when the owner is a peer.
    pub async fn owner(&self, n: &CampaignName) -> Option<(String, Option<LiveStats>)> {
        let lease = self.store().lease(n, self.caduca()).await.ok()??;
        let owner = lease.proceso.filter(|_| lease.vivo)?;
        if owner == self.id() {
            return Some((owner, None));
        }
        let live = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&owner)
            .and_then(|d| d.campanas.get(n.as_str()).cloned());
        Some((owner, live))
    }

    /// What this process publishes now.
    fn demanda(&self) -> Demanda {
        let dialer = &self.inner.dialer;
        let mut d = Demanda::default();
        for (c, live) in dialer.all_live() {
            if live.en_marcha {
                let cps = live.cps_efectivo.max(0.0);
                *d.ambitos.entry("total".to_owned()).or_default() += cps;
                *d.ambitos
                    .entry(format!("gw:{}", dialer.gateway_of(&c)))
                    .or_default() += cps;
                // Any node may carry any of its calls: its demand on each node with a
                // `cps` budget is all of it.
                for node in dialer.pool().nodes().iter().filter(|n| n.pacer.is_some()) {
                    *d.ambitos
                        .entry(format!("nodo:{}", node.nombre))
                        .or_default() += cps;
                }
            }
            d.campanas.insert(c.nombre.to_string(), live);
        }
        d
    }

    /// Starts the heartbeat and lease loop; it runs until aborted.
    pub fn spawn(&self) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run().await })
    }

    /// The heartbeat loop. Fencing: dialing stops when no heartbeat was written for
    /// `PROCESO_CADUCA_MS − LATIDO_MS`, measured from the moment the last written one was *sent*.
    /// Its stamp in the database is later than that, and a peer takes a lease only when the stamp
    /// is older than `PROCESO_CADUCA_MS` by the database's clock, at one of its heartbeats: so this
    /// process has stopped dialing before any peer can start.
    async fn run(self) {
        let latido = self.inner.settings.latido;
        let fence_after = self.caduca().saturating_sub(latido);
        let mut tick = tokio::time::interval(latido);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ok: Option<Instant> = None;
        let host = host_name();
        loop {
            tick.tick().await;
            let sent = Instant::now();
            let demanda = self.demanda();
            let json = serde_json::to_string(&demanda).unwrap_or_default();
            let beat = Beat {
                id: self.id(),
                host: &host,
                pid: std::process::id(),
                api: &self.inner.settings.api,
                socket: &self.inner.settings.socket,
                demanda: &json,
            };
            let wrote = tokio::time::timeout(latido, self.store().heartbeat(&beat)).await;
            match wrote {
                Ok(Ok(())) => {
                    last_ok = Some(sent);
                    self.inner.alive.send_replace(true);
                    if self.inner.fenced.swap(false, Ordering::AcqRel) {
                        tracing::info!(proceso = %self.id(), "latido escrito: este proceso puede marcar");
                    }
                    self.after_beat(&demanda).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(proceso = %self.id(), error = %e, "no se pudo escribir el latido");
                }
                Err(_) => {
                    tracing::warn!(proceso = %self.id(), "el latido no se escribió a tiempo");
                }
            }
            let stale = last_ok.is_none_or(|t| t.elapsed() >= fence_after);
            let closing = self.inner.closing.load(Ordering::Acquire);
            if stale
                && last_ok.is_some()
                && !closing
                && !self.inner.fenced.swap(true, Ordering::AcqRel)
            {
                let paused = self.inner.dialer.pause_all_locally();
                tracing::error!(
                    proceso = %self.id(),
                    campanas = paused,
                    "sin latido: este proceso deja de marcar (otro puede tomar sus campañas)"
                );
            }
        }
    }

    /// After a heartbeat: the peers' demands and figures, the shared caps, then the leases.
    async fn after_beat(&self, own: &Demanda) {
        match self.store().live_peers(self.id(), self.caduca()).await {
            Ok(peers) => {
                let parsed: HashMap<String, Demanda> = peers
                    .into_iter()
                    .map(|p| {
                        let d = p
                            .demanda
                            .as_deref()
                            .and_then(|j| serde_json::from_str(j).ok())
                            .unwrap_or_default();
                        (p.id, d)
                    })
                    .collect();
                let demands: Vec<&BTreeMap<String, f64>> =
                    parsed.values().map(|d| &d.ambitos).collect();
                self.inner.caps.apply(&own.ambitos, &demands);
                *self.inner.peers.lock().unwrap_or_else(|e| e.into_inner()) = parsed;
            }
            Err(e) => tracing::warn!(error = %e, "no se pudieron leer los otros procesos"),
        }
        if self.inner.dialer.recovered() {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "revisión de campañas fallida; se reintenta en el próximo latido");
            }
        }
    }

    /// One pass of the lease loop (see the module doc).
    pub async fn pass(&self) -> Result<(), StoreError> {
        let _one = self.inner.pass.lock().await;
        if self.fenced() {
            return Ok(());
        }
        let leases: HashMap<String, crate::store::Lease> = self
            .store()
            .leases(self.caduca())
            .await?
            .into_iter()
            .map(|l| (l.nombre.clone(), l))
            .collect();
        let campaigns = self.store().campaigns().await?;
        let dialer = &self.inner.dialer;
        for c in campaigns {
            let Some(lease) = leases.get(c.nombre.as_str()) else {
                continue;
            };
            let mine = lease.proceso.as_deref() == Some(self.id());
            let free = lease.proceso.is_none() || !lease.vivo;
            if mine {
                self.apply(c).await;
            } else if free && c.estado == CampaignState::Activa {
                if self.take(&c).await {
                    tracing::info!(campana = %c.nombre, "iniciando campaña activa");
                    dialer.start(c, None);
                }
            } else if !free && dialer.has_runner(&c.nombre) {
                // A peer holds it now (taken while this process was cut off): its runner here
                // must not dial.
                tracing::warn!(campana = %c.nombre, dueno = ?lease.proceso, "la campaña la ejecuta otro proceso; se detiene aquí");
                dialer.stop(&c.nombre);
            }
        }
        Ok(())
    }

    /// Brings the local runner of a campaign this process owns to the state and settings recorded
    /// in the database (possibly by a peer's API).
    async fn apply(&self, c: Campaign) {
        let dialer = &self.inner.dialer;
        match c.estado {
            CampaignState::Activa => {
                if !dialer.is_running(&c.nombre) {
                    // Read again: the runner may have just finished the campaign or paused it
                    // itself (it records the state first) since the list was read.
                    let Ok(Some(c)) = self.store().campaign(&c.nombre).await else {
                        return;
                    };
                    if c.estado != CampaignState::Activa || dialer.is_running(&c.nombre) {
                        return;
                    }
                    tracing::info!(campana = %c.nombre, "campaña activa: marcando");
                    dialer.start(c, None);
                } else if dialer
                    .campaign(c.nombre.as_str())
                    .is_some_and(|running| !same_settings(&running, &c))
                {
                    // Read again: this process's own PATCH may have just given the runner newer
                    // settings than the list read.
                    let Ok(Some(c)) = self.store().campaign(&c.nombre).await else {
                        return;
                    };
                    if dialer
                        .campaign(c.nombre.as_str())
                        .is_some_and(|running| !same_settings(&running, &c))
                    {
                        tracing::info!(campana = %c.nombre, "configuración cambiada por otro proceso: aplicada");
                        dialer.update(c);
                    }
                }
            }
            CampaignState::Pausada if dialer.is_running(&c.nombre) => {
                dialer.pause(&c.nombre);
            }
            CampaignState::Detenida if dialer.has_runner(&c.nombre) => {
                dialer.stop(&c.nombre);
            }
            CampaignState::Finalizada if dialer.is_running(&c.nombre) => {
                dialer.stop(&c.nombre);
            }
            _ => {}
        }
    }

    /// A clean exit: gives back every lease and deletes this process's row (after the results are
    /// written: the next owner then reconciles only the calls nobody tracks).
    pub async fn leave(&self) {
        if let Err(e) = self.store().leave(self.id()).await {
            tracing::warn!(proceso = %self.id(), error = %e, "no se pudieron liberar las campañas de este proceso; otro las tomará cuando caduque su latido");
        }
    }
}

/// Whether a runner's settings are those recorded (state and bookkeeping aside).
fn same_settings(running: &Campaign, stored: &Campaign) -> bool {
    let mut a = running.clone();
    a.estado = stored.estado;
    a.motivo = stored.motivo.clone();
    a.actualizada = stored.actualizada;
    a == *stored
}

/// SQLite serves one process: the service holds an exclusive lock on `<db>.lock` beside the file
/// while it runs (released when the returned file is dropped, or by the OS if the process dies).
pub fn lock_sqlite(db_path: &str) -> Result<std::fs::File, ProcesoError> {
    let lock = format!("{db_path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| ProcesoError::LockFile {
            lock: lock.clone(),
            why: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ProcesoError::Locked {
            db: db_path.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(ProcesoError::LockFile {
            lock,
            why: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ids_are_checked() {
        for ok in [
            "a",
            "discador-1",
            "host.example_2-123-ab12",
            &"x".repeat(64),
        ] {
            assert_eq!(check_process_id(ok).unwrap(), ok);
        }
        for bad in ["", "a b", "a/b", "ñ", "a;b", "a'b", &"x".repeat(65)] {
            let e = check_process_id(bad).unwrap_err().to_string();
            assert!(e.starts_with("PROCESO_ID"), "{e}");
        }
        let id = default_process_id();
        assert!(check_process_id(&id).is_ok(), "{id}");
        assert!(id.contains(&format!("-{}-", std::process::id())), "{id}");
    }

    #[test]
    fn the_announced_socket_is_dial_safe() {
        for ok in ["10.0.0.7:8084", "discador-1.local:9000"] {
            assert_eq!(check_announced(ok).unwrap(), ok);
        }
        for bad in [
            "10.0.0.7",
            ":8084",
            "10.0.0.7:0",
            "10.0.0.7:70000",
            "h:80,x",
            "h:8084 async",
            "${x}:80",
            "[::1]:8084",
            "h:80}",
            &format!("{}:8084", "h".repeat(60)),
        ] {
            let e = check_announced(bad).unwrap_err().to_string();
            assert!(e.starts_with("SOCKET_ANUNCIADO"), "{e}");
        }
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("discador_lock_{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db").display().to_string();
        let first = lock_sqlite(&db).unwrap();
        let e = lock_sqlite(&db).unwrap_err().to_string();
        assert!(
            e.contains("MariaDB") && e.contains(&format!("{db}.lock")),
            "{e}"
        );
        drop(first);
        assert!(lock_sqlite(&db).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
