//! The nemesis: one task per fault kind of a phase, each drawing from its own seeded stream,
//! each undoing its faults when the phase ends. Parameters a scenario leaves open are picked
//! here (swarm testing) and recorded for the report.

mod net;
mod node;
mod targeted;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::NodeHandle;
use madsim::task::JoinHandle;
use madsim::time::Instant;
use minikv_proto::metapb::StoreId;
use minikv_server::sim_cluster::{NodeKind, SimCluster};
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use toml::Spanned;

use crate::scenario::{Between, FaultsSpec};

pub use net::Links;

/// What the nemesis did and picked, for the report.
#[derive(Debug, Default)]
pub struct Stats {
    pub faults: BTreeMap<String, u64>,
    pub swarm: BTreeMap<String, String>,
}

/// Everything a fault task touches; clones share it.
#[derive(Debug, Clone)]
pub struct World {
    pub cluster: Arc<Mutex<SimCluster>>,
    pub stats: Arc<Mutex<Stats>>,
    pub links: Arc<Mutex<Links>>,
    /// The cluster's own message latency, restored after a latency fault.
    pub base_latency_ms: Between,
}

impl World {
    pub fn cluster(&self) -> std::sync::MutexGuard<'_, SimCluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one fault of `kind` and traces what it did.
    pub fn fault(&self, kind: &str, what: &str) {
        tracing::info!(target: "minikv::sim", "nemesis {kind}: {what}");
        *self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .faults
            .entry(kind.into())
            .or_default() += 1;
    }

    /// Counts `n` faults of `kind` the disks injected on their own.
    pub fn count(&self, kind: &str, n: u64) {
        if n > 0 {
            tracing::info!(target: "minikv::sim", "nemesis {kind}: {n}");
            *self
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .faults
                .entry(kind.into())
                .or_default() += n;
        }
    }

    fn pick(&self, key: String, value: String) {
        tracing::info!(target: "minikv::sim", "swarm picked {key} = {value}");
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).swarm.insert(key, value);
    }

    /// Puts everything back: links, loss, latency, power, pauses, clocks, disk fault rates.
    pub fn heal_all(&self) {
        let mut c = self.cluster();
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clear(&c);
        c.heal();
        c.set_packet_loss(0.0);
        minikv_hooks::set_message_rule(None);
        c.set_latency_ms(self.base_latency_ms.min, self.base_latency_ms.max);
        for id in c.node_ids() {
            c.resume(id);
            c.restart(id);
            c.clock(id).reset();
            let disk = c.disk(id);
            let mut config = disk.config();
            config.read_error_ppm = 0;
            disk.set_config(config);
            disk.clear_read_errors();
        }
    }
}

/// One fault task's view: its stream, the phase's end, the ids of the nodes it attacks.
#[derive(Debug)]
pub struct Ctx {
    pub world: World,
    pub rng: ChaCha8Rng,
    pub end: Instant,
    /// The nodes of the group this task attacks (stores, or PD nodes).
    pub stores: Vec<StoreId>,
    pub group: NodeKind,
    /// Prefix of swarm keys: `p<phase>.<kind>`.
    pub prefix: String,
}

impl Ctx {
    /// The node leading the group's region (the first region, or the PD region).
    pub fn leader(&self) -> Option<StoreId> {
        self.leader_term().map(|(id, _)| id)
    }

    /// [`Ctx::leader`] and its term.
    pub fn leader_term(&self) -> Option<(StoreId, u64)> {
        self.world.cluster().group_leader_term(self.group)
    }

    /// What the trace calls a node of the group: `store`, or `pd`.
    pub fn noun(&self) -> &'static str {
        match self.group {
            NodeKind::Store => "store",
            NodeKind::Pd => "pd",
        }
    }

    /// Whether the phase is over.
    pub fn over(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Sleeps `ms`, but never past the phase's end.
    pub async fn sleep_ms(&self, ms: u64) {
        let left = self.end.saturating_duration_since(Instant::now());
        madsim::time::sleep(Duration::from_millis(ms).min(left)).await;
    }

    /// Waits a random time in `every`; false once the phase is over (the round must not run).
    pub async fn next_round(&mut self, every: Between) -> bool {
        let wait = self.in_range(every);
        self.sleep_ms(wait).await;
        !self.over()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.next_u64() % n }
    }

    pub fn in_range(&mut self, b: Between) -> u64 {
        b.min + self.below(b.max - b.min + 1)
    }

    /// The scenario's range, or one the seed picks inside `[lo, hi]` (`[x, 2x]`).
    pub fn between(
        &mut self,
        given: &Option<Spanned<Between>>,
        name: &str,
        lo: u64,
        hi: u64,
    ) -> Between {
        if let Some(b) = given {
            return *b.get_ref();
        }
        let x = self.in_range(Between::new(lo, hi));
        let b = Between::new(x, x * 2);
        self.world.pick(format!("{}.{name}", self.prefix), format!("[{}, {}]", b.min, b.max));
        b
    }

    /// The scenario's value, or one the seed picks in `[lo, hi]`.
    pub fn value(&mut self, given: &Option<Spanned<u64>>, name: &str, lo: u64, hi: u64) -> u64 {
        if let Some(v) = given {
            return *v.get_ref();
        }
        let v = self.in_range(Between::new(lo, hi));
        self.world.pick(format!("{}.{name}", self.prefix), v.to_string());
        v
    }

    /// A random permutation of the stores.
    pub fn shuffled_stores(&mut self) -> Vec<StoreId> {
        let mut ids = self.stores.clone();
        for i in (1..ids.len()).rev() {
            ids.swap(i, self.below(i as u64 + 1) as usize);
        }
        ids
    }
}

/// Starts the phase's fault tasks against `group` on `node`. They end (and undo their faults)
/// by `end`. The PD group's tasks draw from streams of their own (`nemesis/p<phase>/pd-<kind>`)
/// and name their picks `p<phase>.pd-<kind>`.
pub fn start(
    world: &World,
    node: &NodeHandle,
    (faults, group): (&FaultsSpec, NodeKind),
    phase: usize,
    seed: u64,
    end: Instant,
) -> Vec<JoinHandle<()>> {
    let stores = match group {
        NodeKind::Store => world.cluster().store_ids(),
        NodeKind::Pd => world.cluster().pd_ids(),
    };
    let mut tasks = Vec::new();
    let tag = if group == NodeKind::Pd { "pd-" } else { "" };
    let ctx = |kind: &str| Ctx {
        world: world.clone(),
        rng: crate::streams::stream(seed, &format!("nemesis/p{phase}/{tag}{kind}")),
        end,
        stores: stores.clone(),
        group,
        prefix: format!("p{phase}.{tag}{kind}"),
    };
    if let Some(s) = faults.partition.clone() {
        tasks.push(node.spawn(net::partition(ctx("partition"), s)));
    }
    if let Some(s) = faults.clog.clone() {
        tasks.push(node.spawn(net::clog(ctx("clog"), s)));
    }
    if let Some(s) = faults.loss.clone() {
        tasks.push(node.spawn(net::loss(ctx("loss"), s)));
    }
    if let Some(s) = faults.latency.clone() {
        tasks.push(node.spawn(net::latency(ctx("latency"), s)));
    }
    if let Some(s) = faults.kill.clone() {
        tasks.push(node.spawn(node::kill(ctx("kill"), s)));
    }
    if let Some(s) = faults.pause.clone() {
        tasks.push(node.spawn(node::pause(ctx("pause"), s)));
    }
    if let Some(s) = faults.clock.clone() {
        tasks.push(node.spawn(node::clock(ctx("clock"), s)));
    }
    if let Some(s) = faults.disk.clone() {
        tasks.push(node.spawn(node::disk(ctx("disk"), s)));
    }
    if let Some(s) = faults.membership.clone() {
        tasks.push(node.spawn(node::membership(ctx("membership"), s)));
    }
    if let Some(s) = faults.message.clone() {
        tasks.push(node.spawn(targeted::message(ctx("message"), s)));
    }
    if let Some(s) = faults.depose.clone() {
        tasks.push(node.spawn(targeted::depose(ctx("depose"), s)));
    }
    if let Some(s) = faults.strike.clone() {
        tasks.push(node.spawn(targeted::strike(ctx("strike"), s)));
    }
    if let Some(s) = faults.lose.clone() {
        tasks.push(node.spawn(node::lose(ctx("lose"), s)));
    }
    tasks
}
