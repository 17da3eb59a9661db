//! Workloads: what the clients do. Each has setup (its clients connect), run (until the phase
//! stops it), finish (the liveness step after the heal), check and metrics; the registry builds
//! them by the names scenario files use (`[phase.workloads.<name>]`).

mod append;
mod batch;
mod readers;
mod register;
mod tso;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use minikv_client::{ClientConfig, RawClient};
use minikv_proto::metapb::StoreId;
use minikv_runtime::Clock;
use rand_chacha::ChaCha8Rng;

use crate::history::{Kind, Recorder, json_opt};
use crate::report::CheckResult;
use crate::scenario::WorkloadsSpec;

pub use append::Append;
pub use batch::Batch;
pub use readers::Readers;
pub use register::Register;
pub use tso::{Tso, TsoLog};

/// A future a workload returns (run on the runner's task; no `Send` needed).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What a workload needs from the run.
#[derive(Debug, Clone)]
pub struct Env {
    pub addrs: BTreeMap<StoreId, SocketAddr>,
    /// Every PD node's service address (empty without PD nodes).
    pub pd_addrs: BTreeMap<u64, SocketAddr>,
    /// The run's TSO answers, every phase's (the tso workload's).
    pub tso_log: TsoLog,
    /// The phase's index.
    pub phase: u64,
    pub history: Recorder,
    pub seed: u64,
    /// Set when the phase ends: clients stop after their current operation.
    pub stop: Arc<AtomicBool>,
    /// Set when the run gives up (liveness missed): clients stop retrying at once.
    pub give_up: Arc<AtomicBool>,
    /// Distinguishes this instance's keys and streams from other phases' instances.
    pub instance: String,
}

impl Env {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn gave_up(&self) -> bool {
        self.give_up.load(Ordering::Relaxed)
    }
}

/// A simulated machine a client runs on.
pub struct Machine(pub madsim::runtime::NodeHandle);

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Machine({})", self.0.id())
    }
}

impl std::ops::Deref for Machine {
    type Target = madsim::runtime::NodeHandle;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A workload's clients: each runs on its own simulated machine, as a task while the phase
/// runs, and comes back to the workload between steps (run, finish) so its state can be
/// checked.
#[derive(Debug)]
pub struct Fleet<W> {
    nodes: Vec<Machine>,
    running: Vec<madsim::task::JoinHandle<W>>,
    idle: Vec<W>,
}

impl<W> Default for Fleet<W> {
    fn default() -> Self {
        Fleet { nodes: Vec::new(), running: Vec::new(), idle: Vec::new() }
    }
}

impl<W: Send + 'static> Fleet<W> {
    /// Starts a client on `node`; `client` builds it and runs its first step.
    pub fn launch<F>(&mut self, node: madsim::runtime::NodeHandle, client: F)
    where
        F: Future<Output = W> + Send + 'static,
    {
        self.running.push(node.spawn(client));
        self.nodes.push(Machine(node));
    }

    /// Starts `count` clients of workload `name`, each on its own machine (`{instance}-{name}-
    /// {index}`) with its own seeded stream: `client(index, env, rng)` is its run.
    pub fn launch_each<F, Fut>(
        &mut self,
        env: &Env,
        name: &str,
        count: u64,
        spawn: &mut dyn FnMut(&str) -> madsim::runtime::NodeHandle,
        client: F,
    ) where
        F: Fn(u64, Env, ChaCha8Rng) -> Fut,
        Fut: Future<Output = W> + Send + 'static,
    {
        for index in 0..count {
            let node = spawn(&format!("{}-{name}-{index}", env.instance));
            self.launch(node, client(index, env.clone(), client_rng(env, name, index)));
        }
    }

    /// Waits for every running client's step to end.
    pub async fn join(&mut self) {
        for handle in std::mem::take(&mut self.running) {
            self.idle.push(handle.await.expect("a workload client panicked"));
        }
    }

    /// Runs `step` on every idle client, each on its own machine, and waits for all of them.
    pub async fn each<F, Fut>(&mut self, step: F)
    where
        F: Fn(W) -> Fut,
        Fut: Future<Output = W> + Send + 'static,
    {
        for (w, node) in std::mem::take(&mut self.idle).into_iter().zip(&self.nodes) {
            self.running.push(node.spawn(step(w)));
        }
        self.join().await;
    }

    /// The clients that are back from their last step.
    pub fn clients(&self) -> &[W] {
        &self.idle
    }
}

/// One workload instance of a phase.
pub trait Workload: std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Connects the clients and spawns their run loops (each on its own simulated machine).
    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> madsim::runtime::NodeHandle);
    /// Waits for the run loops to stop after `Env::stop` (their in-flight requests end by
    /// their deadlines).
    fn join(&mut self) -> LocalFuture<'_, ()>;
    /// The liveness step: the final operations, which must succeed once the faults healed.
    fn finish(&mut self) -> LocalFuture<'_, ()>;
    /// Workload-specific checks (the history checkers run separately).
    fn check(&self) -> Vec<(String, CheckResult)>;
    /// Counters worth reporting.
    fn metrics(&self) -> BTreeMap<String, u64>;
}

/// Builds the workloads a phase names.
pub fn build(spec: &WorkloadsSpec, env: &Env) -> Vec<Box<dyn Workload>> {
    let mut out: Vec<Box<dyn Workload>> = Vec::new();
    if let Some(r) = &spec.register {
        out.push(Box::new(Register::new(r, env.clone())));
    }
    if let Some(a) = &spec.append {
        out.push(Box::new(Append::new(a, env.clone())));
    }
    if let Some(b) = &spec.batch {
        out.push(Box::new(Batch::new(b, env.clone())));
    }
    if let Some(r) = &spec.readers {
        out.push(Box::new(Readers::new(r, env.clone())));
    }
    if let Some(t) = &spec.tso {
        out.push(Box::new(Tso::new(t, env.clone())));
    }
    out
}

/// The names the registry knows.
pub const NAMES: [&str; 5] = ["register", "append", "batch", "readers", "tso"];

/// A client that records every operation in the history. A client that saw an unknown
/// outcome takes a new process id (its old process may still be "running" that operation).
#[derive(Debug)]
pub struct Client {
    pub raw: RawClient,
    pub history: Recorder,
    pub process: u64,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Ok(T),
    /// Definitely did not happen.
    Fail,
    /// May or may not have happened.
    Unknown,
}

impl Client {
    pub async fn connect(env: &Env) -> Client {
        let raw = RawClient::connect(Client::config(env), Clock::new(), "0.0.0.0:0")
            .await
            .unwrap_or_else(|e| panic!("a workload client cannot bind: {e}"));
        Client { raw, process: env.history.new_process(), history: env.history.clone() }
    }

    /// A client of a run with PD knows only PD's members, as TiKV's clients do: it finds
    /// regions, leaders and stores' addresses there. Without PD it knows every store.
    fn config(env: &Env) -> ClientConfig {
        if env.pd_addrs.is_empty() {
            return ClientConfig::new(env.addrs.clone());
        }
        let mut config = ClientConfig::new(BTreeMap::new());
        config.pd_members = env.pd_addrs.clone();
        config
    }

    fn record(&mut self, kind: Kind, f: &str, key: &str, value: &str) {
        self.history.event(self.process, kind, f, key, value);
        if kind == Kind::Info {
            self.process = self.history.new_process();
        }
    }

    /// Records an event of a multi-key operation as a transaction (`value`: its micro-ops).
    pub fn record_txn(&mut self, kind: Kind, value: &str) {
        self.history.txn_event(self.process, kind, value);
        if kind == Kind::Info {
            self.process = self.history.new_process();
        }
    }

    /// A read; `numeric` values are recorded as JSON numbers, others as strings.
    pub async fn read(&mut self, key: &str, numeric: bool) -> Outcome<Option<String>> {
        self.record(Kind::Invoke, "read", key, "null");
        match self.raw.get(key.as_bytes()).await {
            Ok(v) => {
                let v = v.map(|b| String::from_utf8_lossy(&b).into_owned());
                let json = if numeric { v.clone().unwrap_or("null".into()) } else { json_opt(&v) };
                self.record(Kind::Ok, "read", key, &json);
                Outcome::Ok(v)
            }
            // A failed read changed nothing: `fail` is always right for it.
            Err(e) => {
                tracing::debug!(target: "minikv::client", "p{} read {key}: {e}", self.process);
                self.record(Kind::Fail, "read", key, "null");
                Outcome::Fail
            }
        }
    }

    pub async fn write(&mut self, key: &str, value: &str, json: &str) -> Outcome<()> {
        self.record(Kind::Invoke, "write", key, json);
        match self.raw.put(key.as_bytes(), value.as_bytes()).await {
            Ok(()) => {
                self.record(Kind::Ok, "write", key, json);
                Outcome::Ok(())
            }
            Err(e) if e.is_unknown() => {
                self.record(Kind::Info, "write", key, json);
                Outcome::Unknown
            }
            Err(_) => {
                self.record(Kind::Fail, "write", key, json);
                Outcome::Fail
            }
        }
    }

    /// A delete, recorded as a write of `null` (what a read finds after it).
    pub async fn delete(&mut self, key: &str) -> Outcome<()> {
        self.record(Kind::Invoke, "write", key, "null");
        match self.raw.delete(key.as_bytes()).await {
            Ok(()) => {
                self.record(Kind::Ok, "write", key, "null");
                Outcome::Ok(())
            }
            Err(e) if e.is_unknown() => {
                self.record(Kind::Info, "write", key, "null");
                Outcome::Unknown
            }
            Err(_) => {
                self.record(Kind::Fail, "write", key, "null");
                Outcome::Fail
            }
        }
    }

    /// Compare-and-swap (`new` `None`: delete if it holds `old`); `Ok(false)` when the
    /// comparison failed (recorded as `fail`).
    pub async fn cas(
        &mut self,
        key: &str,
        old: Option<&str>,
        new: Option<&str>,
        json: &str,
    ) -> Outcome<bool> {
        self.record(Kind::Invoke, "cas", key, json);
        let res =
            self.raw.cas(key.as_bytes(), old.map(str::as_bytes), new.map(str::as_bytes)).await;
        match res {
            Ok((true, _)) => {
                self.record(Kind::Ok, "cas", key, json);
                Outcome::Ok(true)
            }
            Ok((false, _)) => {
                self.record(Kind::Fail, "cas", key, json);
                Outcome::Ok(false)
            }
            Err(e) if e.is_unknown() => {
                self.record(Kind::Info, "cas", key, json);
                Outcome::Unknown
            }
            // The cas definitely did not run. A `fail` cas means "the compare failed" to the
            // checker (it constrains the value), so a cas that never ran is recorded as `info`:
            // weaker, but true.
            Err(_) => {
                self.record(Kind::Info, "cas", key, json);
                Outcome::Fail
            }
        }
    }
}

/// A seeded stream for client `index` of a workload instance.
pub fn client_rng(env: &Env, workload: &str, index: u64) -> rand_chacha::ChaCha8Rng {
    crate::streams::stream(env.seed, &format!("client/{}/{workload}/{index}", env.instance))
}
