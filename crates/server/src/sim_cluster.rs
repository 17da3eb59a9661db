//! A cluster of nodes inside the madsim simulator (only under `cfg(madsim)`): one simulated
//! node per store on its own `SimDisk`, crash (power loss: unsynced data is gone) and restart,
//! partitions and packet loss, and probes into every node. Tests and benchmarks share it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use minikv_engine::{Cf, Engine, SimDisk, SimDiskConfig};
use minikv_pd::{PD_PORT, PD_REGION_ID, PdConfig, PdService, PdStats};
use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch, Store, StoreId};
use minikv_raftstore::StoreConfig;
use minikv_runtime::Clock;

use crate::config::NodeConfig;
use crate::node::Node;
use crate::pd_worker::{self, PdWorkerConfig};
use crate::probe::{NodeProbe, ProbeState};

/// The port every simulated store listens on.
pub const STORE_PORT: u16 = 20160;
/// The id of the region every simulated cluster bootstraps.
pub const FIRST_REGION_ID: u64 = 1;

/// Shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimClusterConfig {
    pub stores: u64,
    pub tick_interval_ms: u64,
    /// See `NodeConfig::ready_batch_window_ms`.
    pub ready_batch_window_ms: u64,
    pub max_pending_requests: usize,
    pub store: StoreConfig,
    /// Seeds the simulated disks (each store derives its own).
    pub disk_seed: u64,
    /// Fault rates of every store's simulated disk at start.
    pub disk: SimDiskConfig,
    /// PD nodes (each with its own store and disk, hosting the PD region), 0 for none.
    pub pd_nodes: u64,
    /// Tunables every PD node starts with (its id and addresses are filled in).
    pub pd: PdTunables,
}

/// What a scenario can set of every PD node, and of the stores' PD workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdTunables {
    pub tso_window_ms: u64,
    pub id_step: u64,
    pub storage_timeout_ms: u64,
    pub max_replicas: usize,
    pub max_store_down_ms: u64,
    pub schedule_interval_ms: u64,
    /// How often each store heartbeats PD (its store, and each region it leads).
    pub heartbeat_interval_ms: u64,
    /// A region's leader reports a peer silent this long as down.
    pub peer_down_after_ms: u64,
}

impl Default for PdTunables {
    fn default() -> Self {
        let base = PdConfig::new(0, store_addr(1), BTreeMap::new());
        PdTunables {
            tso_window_ms: base.tso_window_ms,
            id_step: base.id_step,
            storage_timeout_ms: base.storage_timeout_ms,
            max_replicas: base.max_replicas,
            max_store_down_ms: base.max_store_down_ms,
            schedule_interval_ms: base.schedule_interval_ms,
            heartbeat_interval_ms: 100,
            peer_down_after_ms: 1_000,
        }
    }
}

/// Which kind of node a simulated node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A store of the cluster's data.
    Store,
    /// A PD node: a store of the PD region, and the PD service over it.
    Pd,
}

impl SimClusterConfig {
    pub fn new(stores: u64, disk_seed: u64) -> SimClusterConfig {
        SimClusterConfig {
            stores,
            tick_interval_ms: 10,
            ready_batch_window_ms: 1,
            max_pending_requests: 4096,
            store: StoreConfig {
                snapshot_chunk_size_bytes: 256 << 10,
                max_size_per_msg_bytes: 256 << 10,
                rng_seed: disk_seed,
                ..StoreConfig::default()
            },
            disk_seed,
            disk: SimDiskConfig::default(),
            pd_nodes: 0,
            pd: PdTunables::default(),
        }
    }
}

struct SimStore {
    kind: NodeKind,
    /// A PD node's counters.
    pd_stats: Option<PdStats>,
    /// Lost for good (`lose`): never restarted.
    lost: bool,
    node: NodeHandle,
    disk: SimDisk,
    clock: Clock,
    probe: NodeProbe,
    up: bool,
    paused: bool,
    /// Set when the node stopped itself on an error (fail-stop, e.g. a disk error); cleared
    /// by `restart`.
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for SimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStore")
            .field("node", &self.node.id())
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

/// A running simulated cluster. Create it inside the simulation (`block_on`).
pub struct SimCluster {
    handle: Handle,
    stores: BTreeMap<StoreId, SimStore>,
    addrs: BTreeMap<StoreId, SocketAddr>,
    next_client_ip: u8,
    client_nodes: Vec<NodeId>,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster").field("stores", &self.stores).finish_non_exhaustive()
    }
}

/// The address of simulated store `id`.
pub fn store_addr(id: StoreId) -> SocketAddr {
    let id = u8::try_from(id).expect("at most 255 simulated stores");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, id)), STORE_PORT)
}

/// The node id of the first PD node (PD nodes are `PD_NODE_BASE + 1 ..`): PD nodes share the
/// simulated network with the stores, and their own stores' ids are their node ids.
pub const PD_NODE_BASE: u64 = 200;

/// The PD service address of PD node `id`.
pub fn pd_addr(id: u64) -> SocketAddr {
    SocketAddr::new(store_addr(id).ip(), PD_PORT)
}

/// The PD region: every key, one voter per PD node (peer id = node id).
pub fn pd_region(ids: &[u64]) -> Region {
    Region {
        id: PD_REGION_ID,
        start_key: vec![],
        end_key: vec![],
        epoch: RegionEpoch { conf_ver: 1, version: 1 },
        peers: ids.iter().map(|&id| Peer { id, store_id: id, role: PeerRole::Voter }).collect(),
    }
}

/// Region 1 over every key with one voter per store (peer id = store id).
pub fn first_region(stores: u64) -> Region {
    Region {
        id: FIRST_REGION_ID,
        start_key: vec![],
        end_key: vec![],
        epoch: RegionEpoch { conf_ver: 1, version: 1 },
        peers: (1..=stores).map(|id| Peer { id, store_id: id, role: PeerRole::Voter }).collect(),
    }
}

impl SimCluster {
    /// Starts `config.stores` nodes, each bootstrapping the first region on its first boot.
    pub fn start(config: SimClusterConfig) -> SimCluster {
        let handle = Handle::current();
        let addrs: BTreeMap<StoreId, SocketAddr> =
            (1..=config.stores).map(|id| (id, store_addr(id))).collect();
        let pd_ids: Vec<u64> = (1..=config.pd_nodes).map(|i| PD_NODE_BASE + i).collect();
        let pd_store_addrs: BTreeMap<u64, SocketAddr> =
            pd_ids.iter().map(|&id| (id, store_addr(id))).collect();
        let mut stores = BTreeMap::new();
        // With PD, the first store bootstraps the first region alone and asks PD to bootstrap
        // the cluster with it; PD's replica checker adds the other replicas. Without PD, every
        // store bootstraps it with every store as a voter.
        let pd_members: BTreeMap<u64, SocketAddr> =
            pd_ids.iter().map(|&id| (id, pd_addr(id))).collect();
        let region = if pd_ids.is_empty() { first_region(config.stores) } else { first_region(1) };
        for id in 1..=config.stores {
            let bootstrap = (pd_ids.is_empty() || id == 1).then(|| region.clone());
            let node = start_node(
                &handle,
                &config,
                (NodeKind::Store, id),
                &addrs,
                (bootstrap, &pd_members),
            );
            stores.insert(id, node);
        }
        let region = pd_region(&pd_ids);
        for &id in &pd_ids {
            let node = start_node(
                &handle,
                &config,
                (NodeKind::Pd, id),
                &pd_store_addrs,
                (Some(region.clone()), &BTreeMap::new()),
            );
            stores.insert(id, node);
        }
        SimCluster { handle, stores, addrs, next_client_ip: 1, client_nodes: Vec::new() }
    }

    /// Every store's address (what clients are configured with).
    pub fn addrs(&self) -> BTreeMap<StoreId, SocketAddr> {
        self.addrs.clone()
    }

    /// The data stores' ids (PD nodes are not among them).
    pub fn store_ids(&self) -> Vec<StoreId> {
        self.ids_of(NodeKind::Store)
    }

    /// The PD nodes' ids.
    pub fn pd_ids(&self) -> Vec<u64> {
        self.ids_of(NodeKind::Pd)
    }

    /// Every node's id, stores and PD nodes.
    pub fn node_ids(&self) -> Vec<u64> {
        self.stores.keys().copied().collect()
    }

    fn ids_of(&self, kind: NodeKind) -> Vec<u64> {
        self.stores.iter().filter(|(_, s)| s.kind == kind).map(|(id, _)| *id).collect()
    }

    /// Every PD node's service address (what PD clients are configured with).
    pub fn pd_addrs(&self) -> BTreeMap<u64, SocketAddr> {
        self.pd_ids().into_iter().map(|id| (id, pd_addr(id))).collect()
    }

    /// A new simulated machine for client tasks (its own IP, never partitioned).
    pub fn client_node(&mut self, name: &str) -> NodeHandle {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 1, self.next_client_ip));
        self.next_client_ip = self.next_client_ip.checked_add(1).expect("at most 255 clients");
        let node = self.handle.create_node().name(name).ip(ip).build();
        self.client_nodes.push(node.id());
        node
    }

    /// Frees the records madsim keeps of finished tasks. madsim remembers every task a node
    /// ever spawned (for `kill`) until something counts them; a long run spawns one per
    /// message, and without this its memory grows by tens of MB a simulated minute. Whoever
    /// drives a long run calls this now and then (the harness's supervisor, sim-kv).
    pub fn reap_finished_tasks(&self) {
        self.handle.metrics().num_tasks();
    }

    /// Kills every task of every node, stores and client machines alike, so that the run's
    /// memory is freed when the runtime goes away (madsim drops a killed task the next time its
    /// executor gets to it; a task left waiting forever would keep everything it holds).
    pub fn shutdown(&mut self) {
        for id in self.node_ids() {
            self.resume(id);
            self.handle.kill(self.node_id(id));
            self.stores.get_mut(&id).expect("known store").up = false;
        }
        for id in &self.client_nodes {
            self.handle.kill(*id);
        }
    }

    /// The madsim node of store `id`.
    pub fn node_id(&self, id: StoreId) -> NodeId {
        self.stores[&id].node.id()
    }

    /// Powered on and not stopped on an error (it may be paused).
    pub fn is_up(&self, id: StoreId) -> bool {
        let s = &self.stores[&id];
        s.up && !s.failed.load(Ordering::Relaxed)
    }

    /// The node stopped itself on an error and waits for a restart.
    pub fn has_failed(&self, id: StoreId) -> bool {
        self.stores[&id].failed.load(Ordering::Relaxed)
    }

    pub fn is_paused(&self, id: StoreId) -> bool {
        self.stores[&id].paused
    }

    /// Freezes every task of the node (its clock keeps running, messages to it queue up).
    pub fn pause(&mut self, id: StoreId) {
        let node_id = self.node_id(id);
        let store = self.stores.get_mut(&id).expect("known store");
        if store.up && !store.paused {
            self.handle.pause(node_id);
            store.paused = true;
        }
    }

    pub fn resume(&mut self, id: StoreId) {
        let node_id = self.node_id(id);
        let store = self.stores.get_mut(&id).expect("known store");
        if store.paused {
            self.handle.resume(node_id);
            store.paused = false;
        }
    }

    /// Store `id`'s simulated disk (its fault rates can change while it runs).
    pub fn disk(&self, id: StoreId) -> SimDisk {
        self.stores[&id].disk.clone()
    }

    /// Power loss: the node's tasks die and its disk loses every unsynced write.
    pub fn crash(&mut self, id: StoreId) {
        let node_id = self.node_id(id);
        let store = self.stores.get_mut(&id).expect("known store");
        if !store.up {
            return;
        }
        if store.paused {
            self.handle.resume(node_id);
            store.paused = false;
        }
        self.handle.kill(node_id);
        store.probe.update(|p| p.engine = None);
        store.disk.crash();
        store.up = false;
    }

    /// Boots a crashed node from what its disk kept (never a lost one).
    pub fn restart(&mut self, id: StoreId) {
        let node_id = self.node_id(id);
        let store = self.stores.get_mut(&id).expect("known store");
        if store.lost || (store.up && !store.failed.load(Ordering::Relaxed)) {
            return;
        }
        // madsim's restart does not close the old incarnation's sockets; kill does.
        self.handle.kill(node_id);
        self.handle.restart(node_id);
        store.failed.store(false, Ordering::Relaxed);
        store.up = true;
    }

    /// The node is lost for good: its power is cut and it never comes back (a dead machine).
    pub fn lose(&mut self, id: StoreId) {
        self.crash(id);
        self.stores.get_mut(&id).expect("known store").lost = true;
    }

    /// Whether the node was lost for good.
    pub fn is_lost(&self, id: StoreId) -> bool {
        self.stores[&id].lost
    }

    /// PD node `id`'s counters (`None` for a store).
    pub fn pd_stats(&self, id: u64) -> Option<PdStats> {
        self.stores[&id].pd_stats.clone()
    }

    /// The node's clock (a nemesis can skew it).
    pub fn clock(&self, id: StoreId) -> Clock {
        self.stores[&id].clock.clone()
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[StoreId], b: &[StoreId]) {
        let net = NetSim::current();
        for x in a {
            for y in b {
                net.clog_link(self.node_id(*x), self.node_id(*y));
                net.clog_link(self.node_id(*y), self.node_id(*x));
            }
        }
    }

    /// Restores every link between stores.
    pub fn heal(&self) {
        let net = NetSim::current();
        for x in self.stores.keys() {
            for y in self.stores.keys() {
                if x != y {
                    net.unclog_link(self.node_id(*x), self.node_id(*y));
                }
            }
        }
    }

    /// Cuts the link from `src` to `dst` only (the other direction still delivers).
    pub fn clog_one_way(&self, src: StoreId, dst: StoreId) {
        NetSim::current().clog_link(self.node_id(src), self.node_id(dst));
    }

    pub fn unclog_one_way(&self, src: StoreId, dst: StoreId) {
        NetSim::current().unclog_link(self.node_id(src), self.node_id(dst));
    }

    /// Every message takes between `min_ms` and `max_ms` (inclusive) to arrive.
    pub fn set_latency_ms(&self, min_ms: u64, max_ms: u64) {
        let range = Duration::from_millis(min_ms)..Duration::from_millis(max_ms + 1);
        NetSim::current().update_config(|c| c.send_latency = range);
    }

    /// Drops this fraction of every message (stores and clients alike).
    pub fn set_packet_loss(&self, rate: f64) {
        NetSim::current().update_config(|c| c.packet_loss_rate = rate);
    }

    pub fn probe(&self, id: StoreId) -> ProbeState {
        self.stores[&id].probe.snapshot()
    }

    /// Fault counters of store `id`'s disk.
    pub fn disk_counters(&self, id: StoreId) -> minikv_engine::FaultCounters {
        self.stores[&id].disk.counters()
    }

    /// The store whose peer leads the first region in the highest term, among up stores.
    pub fn leader(&self) -> Option<StoreId> {
        self.leader_term().map(|(id, _)| id)
    }

    /// [`SimCluster::leader`] and its term.
    pub fn leader_term(&self) -> Option<(StoreId, u64)> {
        self.group_leader_term(NodeKind::Store)
    }

    /// The PD node whose store leads the PD region in the highest term, and the term.
    pub fn pd_leader_term(&self) -> Option<(u64, u64)> {
        self.group_leader_term(NodeKind::Pd)
    }

    /// The leader of `kind`'s region (the first region, or the PD region) and its term.
    pub fn group_leader_term(&self, kind: NodeKind) -> Option<(u64, u64)> {
        self.stores
            .iter()
            .filter(|(_, s)| s.up && s.kind == kind)
            .filter_map(|(id, s)| {
                let region = if kind == NodeKind::Pd { PD_REGION_ID } else { FIRST_REGION_ID };
                let st = s.probe.snapshot().peers.get(&region)?.clone();
                (st.role == minikv_raft::StateRole::Leader).then_some((*id, st.term))
            })
            .max_by_key(|(_, term)| *term)
    }

    /// Every `default` column family pair of store `id`'s current engine.
    pub fn data(&self, id: StoreId) -> Vec<(Vec<u8>, Vec<u8>)> {
        let engine = self.stores[&id].probe.snapshot().engine.expect("store has started");
        engine
            .scan(Cf::Default, &[], None, usize::MAX)
            .unwrap_or_else(|e| panic!("store {id}: scan failed: {e}"))
    }
}

/// A node stops itself on an error it cannot serve through (fail-stop): it says why in the
/// trace and raises the flag the cluster restarts it by.
/// The process exits: every task of the node dies and its sockets close, but the disk keeps
/// what the OS accepted (unlike a power loss).
fn fail_stop(
    (failed, probe): &(Arc<AtomicBool>, NodeProbe),
    id: StoreId,
    what: &str,
    error: &dyn std::fmt::Display,
) {
    tracing::warn!(target: "minikv::trace", "store {id} fail-stop: {what}: {error}");
    failed.store(true, Ordering::Relaxed);
    // The dead process's engine dies with it: nothing may read or write through it again.
    probe.update(|p| p.engine = None);
    Handle::current().kill(madsim::plugin::node());
}

/// Creates simulated node `id` of `kind`: its disk, clock and probe, and an init that opens
/// its engine, starts its store (bootstrapping `region` on the first boot) and, on a PD node,
/// the PD service beside it.
fn start_node(
    handle: &Handle,
    config: &SimClusterConfig,
    (kind, id): (NodeKind, u64),
    addrs: &BTreeMap<u64, SocketAddr>,
    (bootstrap, pd_members): (Option<Region>, &BTreeMap<u64, SocketAddr>),
) -> SimStore {
    let disk =
        SimDisk::new(config.disk_seed.wrapping_mul(31).wrapping_add(id), config.disk.clone());
    let clock = Clock::new();
    let probe = NodeProbe::new();
    let mut node_config = NodeConfig::new(id, addrs.clone(), config.store.clone());
    node_config.tick_interval_ms = config.tick_interval_ms;
    node_config.ready_batch_window_ms = config.ready_batch_window_ms;
    node_config.max_pending_requests = config.max_pending_requests;
    let pd_stats = (kind == NodeKind::Pd).then(PdStats::default);
    let pd_config = (kind == NodeKind::Pd).then(|| {
        let mut c = PdConfig::new(id, pd_addr(id), addrs.clone());
        c.tso_window_ms = config.pd.tso_window_ms;
        c.id_step = config.pd.id_step;
        c.storage_timeout_ms = config.pd.storage_timeout_ms;
        c.max_replicas = config.pd.max_replicas;
        c.max_store_down_ms = config.pd.max_store_down_ms;
        c.schedule_interval_ms = config.pd.schedule_interval_ms;
        c
    });
    let worker_config =
        (kind == NodeKind::Store && !pd_members.is_empty()).then(|| PdWorkerConfig {
            store: Store { id, address: addrs[&id].to_string() },
            store_addr: addrs[&id],
            pd_members: pd_members.clone(),
            bootstrap_region: bootstrap.clone(),
            heartbeat_interval_ms: config.pd.heartbeat_interval_ms,
            raft_tick_ms: config.tick_interval_ms,
            peer_down_after_ms: config.pd.peer_down_after_ms,
        });
    let booted = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let (d, c, p, r, s) = (disk.clone(), clock.clone(), probe.clone(), bootstrap, pd_stats.clone());
    let failed_flag = failed.clone();
    let name = match kind {
        NodeKind::Store => format!("store-{id}"),
        NodeKind::Pd => format!("pd-{id}"),
    };
    let node = handle
        .create_node()
        .name(name)
        .ip(addrs[&id].ip())
        .init(move || {
            // Every error below is a fail-stop (a real node would exit and be restarted by its
            // supervisor): the flag tells the cluster, the trace says why.
            let failed = (failed_flag.clone(), p.clone());
            let engine = Engine::open(d.clone()).map(Arc::new);
            let first_boot = !booted.swap(true, Ordering::Relaxed);
            let bootstrap = if first_boot { r.clone() } else { None };
            let (cfg, clock, probe) = (node_config.clone(), c.clone(), p.clone());
            let (pd_config, pd_stats) = (pd_config.clone(), s.clone());
            // The worker bootstraps the PD cluster only from the first boot's region.
            let worker_config = worker_config.clone().map(|mut w| {
                if !first_boot {
                    w.bootstrap_region = None;
                }
                w
            });
            async move {
                let engine = match engine {
                    Ok(engine) => engine,
                    Err(e) => return fail_stop(&failed, id, "cannot open engine", &e),
                };
                let node =
                    match Node::start(cfg, engine, clock.clone(), probe.clone(), bootstrap).await {
                        Ok(node) => node,
                        Err(e) => return fail_stop(&failed, id, "cannot start", &e),
                    };
                if let Some(pd_config) = pd_config {
                    let stats = pd_stats.unwrap_or_default();
                    match PdService::start(pd_config, clock.clone(), stats).await {
                        Ok(service) => drop(madsim::task::spawn(service.run())),
                        Err(e) => return fail_stop(&failed, id, "cannot start PD service", &e),
                    }
                }
                if let Some(worker) = worker_config {
                    drop(madsim::task::spawn(pd_worker::run(worker, clock, probe)));
                }
                if let Err(e) = node.run().await {
                    fail_stop(&failed, id, "stopped", &e);
                }
            }
        })
        .build();
    SimStore {
        kind,
        pd_stats,
        lost: false,
        node,
        disk,
        clock,
        probe,
        up: true,
        paused: false,
        failed,
    }
}
