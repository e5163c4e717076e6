//! The pool of FreeSWITCH nodes one discador process dials through (`FREESWITCH_NODOS`).
//!
//! Each node has its own ESL link, its own modules and refusal back-off (`node.rs`), the gateways
//! it has, its own channel capacity and sessions-per-second budget, and a drained flag an operator
//! sets through the API (stored in the database so that every process sharing it obeys). The runner
//! picks a node for every call at dial time ([`Pool::choose`]); the call's CDR names the node that
//! carried it. A node whose link stays down longer than `NODO_PERDIDO_S` is *lost*: its calls are
//! declared cut (see `recovery.rs`).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::Secret;
use crate::domain::{AmdMode, Cps};
use crate::esl::{ConnState, InboundClient};

use super::node::{self, Modules, Node};
use super::pacing::Pacer;

/// One entry of `FREESWITCH_NODOS`: `nombre=host:puerto[;clave=X][;cps=N][;canales=N]`.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub nombre: String,
    pub host: String,
    pub puerto: u16,
    /// `None`: `FREESWITCH_PASSWORD`.
    pub clave: Option<Secret>,
    /// The switch's sessions-per-second budget for our originates (`None`: no node limit).
    pub cps: Option<Cps>,
    /// Its channel capacity (`None`: `CANALES_MAXIMOS`).
    pub canales: Option<NonZeroU32>,
}

/// `FREESWITCH_NODOS` parsed (empty: the single node of `FREESWITCH_HOST`/`FREESWITCH_PORT`).
#[derive(Clone, Debug, Default)]
pub struct NodeSpecs(pub Vec<NodeSpec>);

/// A node's name: `[A-Za-z0-9_-]{1,32}`.
pub fn valid_node_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `FREESWITCH_NODOS`. Errors name the node by position and never repeat a `clave`.
pub fn parse_nodes(raw: &str) -> Result<NodeSpecs, String> {
    let mut out: Vec<NodeSpec> = Vec::new();
    for (i, item) in raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let n = i + 1;
        let mut parts = item.split(';').map(str::trim);
        let head = parts.next().unwrap_or("");
        let Some((nombre, addr)) = head.split_once('=') else {
            return Err(format!(
                "FREESWITCH_NODOS: el nodo n.º {n} no sigue la forma nombre=host:puerto"
            ));
        };
        let nombre = nombre.trim();
        if !valid_node_name(nombre) {
            return Err(format!(
                "FREESWITCH_NODOS: el nombre del nodo n.º {n} debe tener de 1 a 32 letras, \
                 dígitos, '_' o '-'"
            ));
        }
        if out.iter().any(|o| o.nombre == nombre) {
            return Err(format!("FREESWITCH_NODOS: el nodo {nombre} está repetido"));
        }
        let (host, puerto) = addr
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| format!("FREESWITCH_NODOS: el nodo {nombre} necesita host:puerto"))?;
        let host_ok = !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
        if !host_ok {
            return Err(format!(
                "FREESWITCH_NODOS: el host del nodo {nombre} no es válido"
            ));
        }
        let puerto: u16 =
            puerto.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("FREESWITCH_NODOS: el puerto del nodo {nombre} no es válido")
            })?;
        let mut spec = NodeSpec {
            nombre: nombre.to_owned(),
            host: host.to_owned(),
            puerto,
            clave: None,
            cps: None,
            canales: None,
        };
        for opt in parts.filter(|p| !p.is_empty()) {
            let Some((key, value)) = opt.split_once('=') else {
                return Err(format!(
                    "FREESWITCH_NODOS: en el nodo {nombre} se espera opción=valor"
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "clave" if spec.clave.is_none() && !value.is_empty() => {
                    spec.clave = Some(Secret::new(value))
                }
                "clave" => {
                    return Err(format!(
                        "FREESWITCH_NODOS: la clave del nodo {nombre} está vacía o repetida"
                    ))
                }
                "cps" if spec.cps.is_none() => {
                    let v: f64 = value.parse().map_err(|_| {
                        format!(
                            "FREESWITCH_NODOS: cps del nodo {nombre}: {value:?} no es un número"
                        )
                    })?;
                    spec.cps =
                        Some(Cps::parse(v).map_err(|e| {
                            format!("FREESWITCH_NODOS: cps del nodo {nombre}: {e}")
                        })?);
                }
                "canales" if spec.canales.is_none() => {
                    spec.canales = Some(value.parse::<NonZeroU32>().map_err(|_| {
                        format!(
                            "FREESWITCH_NODOS: canales del nodo {nombre}: {value:?} no es un \
                             entero mayor que 0"
                        )
                    })?);
                }
                "cps" | "canales" => {
                    return Err(format!(
                        "FREESWITCH_NODOS: {key} repetido en el nodo {nombre}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "FREESWITCH_NODOS: opción desconocida en el nodo {nombre} (se admiten \
                         clave, cps y canales)"
                    ))
                }
            }
        }
        out.push(spec);
    }
    Ok(NodeSpecs(out))
}

/// The gateways `sofia status` lists (`profile::name  gateway  ...` rows). `None`: the answer is
/// not that table (an error, another program), so the node's gateways stay unknown and do not
/// exclude it.
pub fn parse_gateways(body: &str) -> Option<Vec<String>> {
    if !body.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("Name") && w.next() == Some("Type")
    }) {
        return None;
    }
    let mut gws: Vec<String> = body
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t').map(str::trim);
            let name = cols.next()?;
            (cols.next()? == "gateway").then_some(name)
        })
        .map(|name| name.rsplit("::").next().unwrap_or(name).to_owned())
        .collect();
    gws.sort();
    gws.dedup();
    Some(gws)
}

/// What the pool needs to build one node.
pub struct NodeSetup {
    pub nombre: String,
    pub direccion: String,
    pub esl: InboundClient,
    pub cps: Option<f64>,
    pub canales: u32,
}

/// One FreeSWITCH node of the pool.
pub struct PoolNode {
    pub nombre: String,
    /// `host:port` of its event socket.
    pub direccion: String,
    pub esl: InboundClient,
    /// Its modules and its refusal back-off.
    pub node: Node,
    /// Its `core_uuid` at the last connection.
    pub core: tokio::sync::Mutex<Option<String>>,
    gateways: Mutex<Option<Vec<String>>>,
    drained: AtomicBool,
    /// Its `cps` budget (after the campaign's, the gateway's and the global pacers).
    pub pacer: Option<Pacer>,
    cps: Option<f64>,
    channels: Arc<Semaphore>,
    capacity: u32,
    /// Since when its link is down (`None`: connected).
    down_since: Mutex<Option<Instant>>,
    lost: AtomicBool,
    originates: AtomicU64,
    changes: Arc<watch::Sender<u64>>,
}

/// A call's hold on one channel of its node; dropping it frees the channel and wakes runners
/// waiting for a node.
pub struct NodePermit {
    _permit: OwnedSemaphorePermit,
    changes: Arc<watch::Sender<u64>>,
}

impl Drop for NodePermit {
    fn drop(&mut self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl std::fmt::Debug for NodePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodePermit")
    }
}

/// Whether a node can take a call of a campaign now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Connected, not drained, with the module and the gateway, and a free channel.
    Yes,
    /// Everything but a free channel.
    Full,
    No,
}

impl PoolNode {
    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The link's connection generation, while connected.
    pub fn generation(&self) -> Option<u64> {
        match *self.esl.state().borrow() {
            ConnState::Connected { generation } => Some(generation),
            _ => None,
        }
    }

    pub fn connected(&self) -> bool {
        self.esl.state().borrow().is_connected()
    }

    /// The node's state as the API shows it.
    pub fn estado(&self) -> &'static str {
        if self.lost.load(Ordering::Acquire) {
            return "perdido";
        }
        match *self.esl.state().borrow() {
            ConnState::Connected { .. } => "conectado",
            ConnState::Connecting => "conectando",
            ConnState::AuthFailed => "clave_incorrecta",
            ConnState::Disconnected { .. } => "desconectado",
        }
    }

    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    pub fn set_drained(&self, drained: bool) {
        if self.drained.swap(drained, Ordering::AcqRel) != drained {
            tracing::info!(nodo = %self.nombre, drenado = drained, "nodo drenado/activado");
            self.bump();
        }
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    pub fn modules(&self) -> Modules {
        *self.node.modules.borrow()
    }

    pub fn gateways(&self) -> Option<Vec<String>> {
        self.gateways
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn cps(&self) -> Option<f64> {
        self.cps
    }

    /// Calls holding one of its channels now.
    pub fn live_calls(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.channels.available_permits())
    }

    pub fn originates(&self) -> u64 {
        self.originates.load(Ordering::Relaxed)
    }

    pub fn count_originate(&self) {
        self.originates.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the switch, at a new connection, which modules and gateways it has.
    pub async fn learn(&self) {
        let modules = Modules::ask(&self.esl).await;
        self.node.modules.send_replace(modules);
        let gateways = match self.esl.api("sofia status").await {
            Ok(body) => parse_gateways(&body),
            Err(_) => None,
        };
        tracing::info!(
            nodo = %self.nombre,
            mod_amd = ?modules.mod_amd,
            mod_avmd = ?modules.mod_avmd,
            gateways = ?gateways,
            "módulos y gateways del nodo"
        );
        *self.gateways.lock().unwrap_or_else(|e| e.into_inner()) = gateways;
        self.bump();
    }

    /// The link went down: what the switch said may no longer hold.
    pub fn link_down(&self) {
        self.node.modules.send_replace(Modules::default());
        let mut down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_none() {
            *down = Some(Instant::now());
        }
        drop(down);
        self.bump();
    }

    pub fn link_up(&self) {
        *self.down_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.lost.store(false, Ordering::Release);
        self.bump();
    }

    /// Since when the link is down, if it is.
    pub fn down_since(&self) -> Option<Instant> {
        *self.down_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the node lost if its link has been down since `since` (the same outage).
    pub fn mark_lost(&self, since: Instant) -> bool {
        if self.down_since() == Some(since) && !self.connected() {
            self.lost.store(true, Ordering::Release);
            self.bump();
            return true;
        }
        false
    }

    /// Whether this node can take a call needing `amd`'s module and (when known) `gateway`.
    pub fn fit(&self, amd: AmdMode, gateway: Option<&str>) -> Fit {
        if !self.connected() || self.drained() {
            return Fit::No;
        }
        let modules = self.modules();
        if !modules.known_for(amd) || modules.missing_for(amd).is_some() {
            return Fit::No;
        }
        if let (Some(gw), Some(list)) = (gateway, self.gateways()) {
            if !list.iter().any(|g| g == gw) {
                return Fit::No;
            }
        }
        if self.channels.available_permits() == 0 {
            return Fit::Full;
        }
        Fit::Yes
    }

    fn try_permit(&self) -> Option<NodePermit> {
        let permit = self.channels.clone().try_acquire_owned().ok()?;
        Some(NodePermit {
            _permit: permit,
            changes: self.changes.clone(),
        })
    }

    /// Asks the switch whether it has channel `uuid`. `None` when it could not be asked.
    pub async fn exists(&self, uuid: &Uuid) -> Option<bool> {
        match node::ask_true_false(&self.esl, &format!("uuid_exists {}", uuid.hyphenated())).await {
            Ok(exists) => Some(exists),
            Err(why) => {
                tracing::warn!(nodo = %self.nombre, %uuid, error = %why, "uuid_exists sin respuesta clara");
                None
            }
        }
    }
}

/// A node's answer to "do you have this call?", for [`combine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Has,
    HasNot,
    /// Down (not yet lost), or could not answer.
    Unknown,
    /// Down longer than `NODO_PERDIDO_S`.
    Lost,
}

/// Whether a call whose node is unknown still exists: yes if any node has it; no if every node
/// said no or is lost; otherwise unknown (kept tracked, the sweep asks again).
pub fn combine(answers: &[Answer]) -> Option<bool> {
    if answers.contains(&Answer::Has) {
        return Some(true);
    }
    if answers.contains(&Answer::Unknown) {
        return None;
    }
    Some(false)
}

/// A node as [`pick`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub nombre: &'a str,
    pub fit: Fit,
    pub free: usize,
    pub capacity: u32,
}

/// The usable node with the most free capacity (free channels / capacity); ties by name.
pub fn pick(candidates: &[Candidate<'_>]) -> Option<usize> {
    let share = |c: &Candidate<'_>| c.free as f64 / f64::from(c.capacity.max(1));
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.fit == Fit::Yes)
        .min_by(|(_, a), (_, b)| {
            share(b)
                .partial_cmp(&share(a))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.nombre.cmp(b.nombre))
        })
        .map(|(i, _)| i)
}

/// Why no node can take a call now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoNode {
    /// Some node fits but has no free channel: wait for one.
    Full,
    /// None fits (down, drained, without the module or the gateway).
    None,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    nodes: Vec<Arc<PoolNode>>,
    changes: Arc<watch::Sender<u64>>,
    lost_after: Duration,
}

impl Pool {
    /// A pool of `nodes` (at least one); a node down longer than `lost_after` is lost.
    pub fn new(nodes: Vec<NodeSetup>, lost_after: Duration) -> Pool {
        assert!(!nodes.is_empty(), "a pool needs a node");
        let changes = Arc::new(watch::Sender::new(0u64));
        let now = Instant::now();
        let nodes = nodes
            .into_iter()
            .map(|s| {
                let canales = s.canales.max(1);
                Arc::new(PoolNode {
                    nombre: s.nombre,
                    direccion: s.direccion,
                    esl: s.esl,
                    node: Node::default(),
                    core: tokio::sync::Mutex::new(None),
                    gateways: Mutex::new(None),
                    drained: AtomicBool::new(false),
                    pacer: s.cps.map(Pacer::new),
                    cps: s.cps,
                    channels: Arc::new(Semaphore::new(canales as usize)),
                    capacity: canales,
                    // Not connected yet: an outage from the start (a node that never comes up
                    // is lost after `lost_after`).
                    down_since: Mutex::new(Some(now)),
                    lost: AtomicBool::new(false),
                    originates: AtomicU64::new(0),
                    changes: changes.clone(),
                })
            })
            .collect();
        Pool {
            inner: Arc::new(PoolInner {
                nodes,
                changes,
                lost_after,
            }),
        }
    }

    pub fn nodes(&self) -> &[Arc<PoolNode>] {
        &self.inner.nodes
    }

    pub fn get(&self, nombre: &str) -> Option<&Arc<PoolNode>> {
        self.inner.nodes.iter().find(|n| n.nombre == nombre)
    }

    /// The first node (the only one without `FREESWITCH_NODOS`).
    pub fn first(&self) -> &Arc<PoolNode> {
        &self.inner.nodes[0]
    }

    pub fn lost_after(&self) -> Duration {
        self.inner.lost_after
    }

    /// Changes whenever a node connects, disconnects, learns its modules, is drained or frees a
    /// channel.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    pub fn any_connected(&self) -> bool {
        self.inner.nodes.iter().any(|n| n.connected())
    }

    /// The modules of the connected nodes together: loaded if any has it, missing if every
    /// connected node said it does not, unknown otherwise.
    pub fn modules(&self) -> Modules {
        let connected: Vec<Modules> = self
            .inner
            .nodes
            .iter()
            .filter(|n| n.connected())
            .map(|n| n.modules())
            .collect();
        let join = |get: fn(&Modules) -> Option<bool>| {
            if connected.iter().any(|m| get(m) == Some(true)) {
                Some(true)
            } else if !connected.is_empty() && connected.iter().all(|m| get(m) == Some(false)) {
                Some(false)
            } else {
                None
            }
        };
        Modules {
            mod_amd: join(|m| m.mod_amd),
            mod_avmd: join(|m| m.mod_avmd),
        }
    }

    /// Whether every connected node listed its gateways and none has `gateway` (a campaign
    /// through it cannot be dialed anywhere, as if every switch refused it with INVALID_GATEWAY).
    pub fn lacks_gateway(&self, gateway: &str) -> bool {
        let connected: Vec<&Arc<PoolNode>> =
            self.inner.nodes.iter().filter(|n| n.connected()).collect();
        !connected.is_empty()
            && connected.iter().all(|n| {
                n.gateways()
                    .is_some_and(|list| !list.iter().any(|g| g == gateway))
            })
    }

    /// A node for a call of a campaign with `amd` through `gateway` (`None`: the dial template
    /// does not name a gateway), with one of its channels.
    pub fn choose(
        &self,
        amd: AmdMode,
        gateway: Option<&str>,
    ) -> Result<(Arc<PoolNode>, NodePermit), NoNode> {
        let candidates: Vec<Candidate<'_>> = self
            .inner
            .nodes
            .iter()
            .map(|n| Candidate {
                nombre: &n.nombre,
                fit: n.fit(amd, gateway),
                free: n.channels.available_permits(),
                capacity: n.capacity,
            })
            .collect();
        if let Some(i) = pick(&candidates) {
            let node = &self.inner.nodes[i];
            if let Some(permit) = node.try_permit() {
                return Ok((node.clone(), permit));
            }
            return Err(NoNode::Full);
        }
        if candidates.iter().any(|c| c.fit == Fit::Full) {
            Err(NoNode::Full)
        } else {
            Err(NoNode::None)
        }
    }

    /// Whether any node has call `uuid` (see [`combine`]), and which.
    pub async fn exists(&self, uuid: &Uuid) -> (Option<bool>, Option<Arc<PoolNode>>) {
        let mut answers = Vec::with_capacity(self.inner.nodes.len());
        for n in &self.inner.nodes {
            let answer = if n.lost() {
                Answer::Lost
            } else if !n.connected() {
                Answer::Unknown
            } else {
                match n.exists(uuid).await {
                    Some(true) => return (Some(true), Some(n.clone())),
                    Some(false) => Answer::HasNot,
                    None => Answer::Unknown,
                }
            };
            answers.push(answer);
        }
        (combine(&answers), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse() {
        let v =
            parse_nodes(" fs1=10.0.0.1:8021 , fs-2=fs2.local:8022;clave=otra;cps=30;canales=200,")
                .unwrap()
                .0;
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].nombre.as_str(), v[0].host.as_str(), v[0].puerto),
            ("fs1", "10.0.0.1", 8021)
        );
        assert!(v[0].clave.is_none() && v[0].cps.is_none() && v[0].canales.is_none());
        assert_eq!(v[1].clave.as_ref().unwrap().expose(), "otra");
        assert_eq!(v[1].cps.unwrap().get(), 30.0);
        assert_eq!(v[1].canales.unwrap().get(), 200);
        assert!(parse_nodes("").unwrap().0.is_empty());
        let v = parse_nodes("v6=[::1]:8021").unwrap().0;
        assert_eq!((v[0].host.as_str(), v[0].puerto), ("[::1]", 8021));
    }

    #[test]
    fn hostile_nodes_are_refused_without_the_password() {
        for bad in [
            "fs1",
            "=h:1",
            "fs 1=h:1",
            "fs1=h",
            "fs1=h:0",
            "fs1=h:99999",
            "fs1=h:x",
            "fs1=:8021",
            "fs1=h;rm -rf:8021",
            "fs1=h:1,fs1=g:2",
            "fs1=h:1;cps=0",
            "fs1=h:1;cps=abc",
            "fs1=h:1;canales=0",
            "fs1=h:1;canales=-3",
            "fs1=h:1;otra=1",
            "fs1=h:1;clave=",
            "fs1=h:1;cps=1;cps=2",
            "fs1=h:1;sinvalor",
            "nombre_demasiado_largo_para_un_nodo_x=h:1",
        ] {
            let err = parse_nodes(bad).expect_err(bad);
            assert!(err.starts_with("FREESWITCH_NODOS:"), "{err}");
        }
        let err = parse_nodes("fs1=h:1;clave=SuperSecreta;otra=1").unwrap_err();
        assert!(!err.contains("SuperSecreta"), "{err}");
        let err = parse_nodes("fs1=h:1;clave=SuperSecreta;cps=x").unwrap_err();
        assert!(!err.contains("SuperSecreta"), "{err}");
        let err = parse_nodes("fs1=h:1;clave=a;clave=SuperSecreta").unwrap_err();
        assert!(!err.contains("SuperSecreta"), "{err}");
    }

    #[test]
    fn gateway_rows_of_sofia_status() {
        let body = "                     Name\t   Type\t                                      Data\tState\n\
=================================================================================================\n\
                 external\tprofile\t             sip:mod_sofia@127.0.0.1:18780\tRUNNING (0)\n\
        external::gw_pstn\tgateway\t            sip:FreeSWITCH@127.0.0.1:18790\tNOREG\n\
        carrier::gw_movil\tgateway\t            sip:FreeSWITCH@127.0.0.1:18791\tREGED\n\
                  carrier\tprofile\t             sip:mod_sofia@127.0.0.1:18790\tRUNNING (0)\n\
=================================================================================================\n\
2 profiles 0 aliases\n";
        assert_eq!(
            parse_gateways(body),
            Some(vec!["gw_movil".to_owned(), "gw_pstn".to_owned()])
        );
        assert_eq!(parse_gateways("-ERR sofia Command not found!\n"), None);
        assert_eq!(
            parse_gateways("-USAGE: sofia status gateway <name>\n"),
            None
        );
        let empty = "Name\tType\tData\tState\n====\n0 profiles 0 aliases\n";
        assert_eq!(parse_gateways(empty), Some(vec![]));
    }

    #[test]
    fn exists_needs_every_node_or_one_yes() {
        use Answer::*;
        assert_eq!(combine(&[HasNot, Has]), Some(true));
        assert_eq!(combine(&[Unknown, Has]), Some(true));
        assert_eq!(combine(&[HasNot, HasNot]), Some(false));
        assert_eq!(combine(&[HasNot, Lost]), Some(false));
        assert_eq!(combine(&[HasNot, Unknown]), None);
        assert_eq!(combine(&[Unknown]), None);
        assert_eq!(combine(&[Lost, Lost]), Some(false));
    }

    #[test]
    fn the_node_with_most_free_capacity_wins() {
        let c = |nombre, fit, free, capacity| Candidate {
            nombre,
            fit,
            free,
            capacity,
        };
        // 5/10 free beats 30/100 free.
        let v = [c("a", Fit::Yes, 30, 100), c("b", Fit::Yes, 5, 10)];
        assert_eq!(pick(&v), Some(1));
        // Ties by name.
        let v = [c("b", Fit::Yes, 5, 10), c("a", Fit::Yes, 10, 20)];
        assert_eq!(pick(&v), Some(1));
        // An unusable node is never chosen, however free.
        let v = [c("a", Fit::No, 100, 100), c("b", Fit::Yes, 1, 10)];
        assert_eq!(pick(&v), Some(1));
        let v = [c("a", Fit::No, 100, 100), c("b", Fit::Full, 0, 10)];
        assert_eq!(pick(&v), None);
    }
}
