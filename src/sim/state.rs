//! What every task of the simulator shares: settings, the core identity, the event bus, the
//! session gate, the originate log, the registry of live calls and the list of finished ones.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::bus::{Core, EventBus};
use super::channel::Channel;
use super::config::SimConfig;
use super::limits::SessionGate;
use super::originate_log::OriginateLog;
use super::outcome::OutcomeRule;

/// A call that has ended, as the simulator saw it (for in-process assertions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedCall {
    pub uuid: String,
    /// The number dialed.
    pub destination: String,
    /// Final hangup cause (`NORMAL_CLEARING`, `USER_BUSY`, …).
    pub cause: String,
    pub answered: bool,
    /// `amd_result` if the `amd` application ran (HUMAN / MACHINE / NOTSURE).
    pub amd: Option<String>,
    /// The last extension the call was transferred to (`humano`, `maquina`, …).
    pub transferred_to: Option<String>,
    /// `billsec` as written in CHANNEL_HANGUP_COMPLETE.
    pub billsec: u64,
    /// All channel variables at the end (the `{}` vars, `discador_*`, `amd_*`…).
    pub vars: Vec<(String, String)>,
    /// When the channel was destroyed (with `OriginateRecord::at`, the call's span: tests check
    /// that one number is never in two calls at once).
    pub ended: std::time::Instant,
}

/// How many finished calls and originate records are kept in memory. The oldest are dropped
/// beyond it, so a simulator left running for days does not grow without bound; the
/// `--originate-log` file keeps every originate.
pub const MEMORY_CAP: usize = 100_000;

/// Orders sent to a call's task from outside (API `uuid_kill`, `hupall`, inbound `sendmsg`).
#[derive(Debug)]
pub enum CallCtl {
    Hangup(String),
}

/// Registry entry of a live call.
#[derive(Debug, Clone)]
pub struct LiveCall {
    pub channel: Arc<Mutex<Channel>>,
    pub ctl: mpsc::UnboundedSender<CallCtl>,
}

/// Locks a std mutex, recovering from poisoning: the protected data (counters, channel fields)
/// stays consistent field by field, and a simulator must keep serving after a bug in one task.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a connection runs API commands. Set by the simulator's root from `api`: the API starts
/// calls, and a call's socket leg runs API commands, so the call modules reach the API through
/// this instead of importing it back.
#[derive(Clone, Copy)]
pub struct ApiRunner {
    /// `api <command>`: its output.
    pub execute: fn(Arc<Shared>, String) -> BoxFuture<'static, String>,
    /// `bgapi <command>` with the client's Job-UUID, if any: the job's UUID.
    pub start_bgapi: fn(&Arc<Shared>, &str, Option<&str>) -> String,
}

impl std::fmt::Debug for ApiRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiRunner")
    }
}

#[derive(Debug)]
pub struct Shared {
    pub cfg: SimConfig,
    pub api: ApiRunner,
    pub rule: OutcomeRule,
    pub core: Core,
    pub bus: EventBus,
    pub gate: Arc<SessionGate>,
    pub log: OriginateLog,
    pub calls: Mutex<HashMap<String, LiveCall>>,
    pub finished: Mutex<VecDeque<FinishedCall>>,
    pub shutdown: CancellationToken,
    /// Bumped by `SimHandle::drop_connections`: every inbound connection closes abruptly.
    pub drop_gen: watch::Sender<u64>,
    pub started: Instant,
    tasks: Mutex<JoinSet<()>>,
}

impl Shared {
    pub fn new(cfg: SimConfig, log: OriginateLog, api: ApiRunner) -> Shared {
        let rule = cfg.rule();
        let core = Core::new(&cfg.hostname);
        let gate = SessionGate::new(cfg.sps, cfg.max_sessions);
        let (drop_gen, _) = watch::channel(0);
        Shared {
            cfg,
            api,
            rule,
            core,
            bus: EventBus::new(),
            gate,
            log,
            calls: Mutex::new(HashMap::new()),
            finished: Mutex::new(VecDeque::new()),
            shutdown: CancellationToken::new(),
            drop_gen,
            started: Instant::now(),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Spawns a task that `SimHandle::shutdown` will wait for; finished tasks are reaped here so
    /// the set does not grow with the number of calls.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut set = lock(&self.tasks);
        while set.try_join_next().is_some() {}
        set.spawn(fut);
    }

    /// Takes every tracked task (for shutdown).
    pub fn take_tasks(&self) -> JoinSet<()> {
        std::mem::take(&mut *lock(&self.tasks))
    }

    /// Records a finished call, dropping the oldest beyond [`MEMORY_CAP`].
    pub fn push_finished(&self, call: FinishedCall) {
        let mut list = lock(&self.finished);
        if list.len() >= MEMORY_CAP {
            list.pop_front();
        }
        list.push_back(call);
    }

    pub fn live_calls(&self) -> usize {
        lock(&self.calls).len()
    }

    pub fn call(&self, uuid: &str) -> Option<LiveCall> {
        lock(&self.calls).get(uuid).cloned()
    }

    /// Asks a live call to hang up; false when no such call.
    pub fn kill(&self, uuid: &str, cause: &str) -> bool {
        match self.call(uuid) {
            Some(call) => call.ctl.send(CallCtl::Hangup(cause.to_owned())).is_ok(),
            None => false,
        }
    }

    /// Snapshot of live channels (for `show channels`), oldest first.
    pub fn channels(&self) -> Vec<Channel> {
        let calls: Vec<LiveCall> = lock(&self.calls).values().cloned().collect();
        let mut chans: Vec<Channel> = calls.iter().map(|c| lock(&c.channel).clone()).collect();
        chans.sort_by_key(|c| c.created_us);
        chans
    }
}
