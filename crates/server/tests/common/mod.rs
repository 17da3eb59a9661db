//! The madsim workload shared by the fault tests: a five-store cluster, clients that append
//! unique values to their own keys (read + cas, resolved exactly once) and scan them back,
//! register ops on shared keys, a nemesis, and the checks (linearizability of the history,
//! per-client appends, liveness after the faults stop, identical replicas).
//!
//! Every run is a pure function of its seed. A failure prints the seed and how to replay it:
//! `MINIKV_SIM_SEED=<seed> RUSTFLAGS="--cfg madsim" cargo test -p minikv-server --test <file> <test>`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::time::Instant;
use minikv_checker::lin::{LinConfig, check_with};
use minikv_checker::report::Validity;
use minikv_client::{ClientConfig, RawClient};
use minikv_proto::metapb::{Peer, PeerRole, StoreId};
use minikv_proto::raftpb::ConfChangeType;
use minikv_runtime::Clock;
use minikv_server::sim_cluster::{FIRST_REGION_ID, SimCluster, SimClusterConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

pub const STORES: u64 = 5;
/// After the faults stop, clients must finish and the cluster must serve within this long.
pub const LIVENESS_MS: u64 = 10_000;
const SHARED_KEYS: u64 = 4;
const OWN_KEYS: u64 = 2;

/// Runs `f` once per seed in its own simulator. `MINIKV_SIM_SEED` replaces the seed list.
pub fn run_seeded<F, Fut>(test: &str, file: &str, seeds: &[u64], f: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let seeds: Vec<u64> = match std::env::var("MINIKV_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("MINIKV_SIM_SEED must be a u64")],
        Err(_) => seeds.to_vec(),
    };
    for seed in seeds {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| runtime.block_on(f(seed)))) {
            eprintln!(
                "{test}: FAILED with seed {seed}; replay: MINIKV_SIM_SEED={seed} \
                 RUSTFLAGS=\"--cfg madsim\" cargo test -p minikv-server --test {file} {test}"
            );
            resume_unwind(panic);
        }
    }
}

/// Which faults run beside the workload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub partitions: bool,
    pub loss: bool,
    pub crashes: bool,
    pub log_gc: bool,
    pub membership: bool,
    /// Not a fault: leader leases on (safe here, where no clock is skewed).
    pub lease_read: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub clients: u64,
    pub run_ms: u64,
    pub faults: Faults,
}

/// JSON-lines history shared by every client task.
#[derive(Debug, Clone)]
pub struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
    origin: Instant,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder { lines: Arc::new(Mutex::new(Vec::new())), origin: Instant::now() }
    }

    fn event(&self, process: u64, kind: &str, f: &str, key: &str, value: &str) {
        let time = self.origin.elapsed().as_nanos();
        self.lines.lock().unwrap().push(format!(
            r#"{{"process":{process},"type":"{kind}","f":"{f}","key":"{key}","value":{value},"time":{time}}}"#
        ));
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.lock().unwrap().join("\n");
        s.push('\n');
        s
    }
}

fn json_str(s: &Option<String>) -> String {
    s.as_ref().map_or("null".to_string(), |s| format!("\"{s}\""))
}

fn opt_bytes(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_ref().map(|b| String::from_utf8(b.clone()).expect("values are utf-8"))
}

/// One workload client.
struct Worker {
    index: u64,
    client: RawClient,
    rng: ChaCha8Rng,
    history: Recorder,
    process: u64,
    incarnation: u64,
    counter: u64,
    /// Acknowledged appends of each own key, in order.
    model: BTreeMap<String, Vec<u64>>,
    /// An append abandoned when the run ended: (key, value), applied or not.
    pending: Option<(String, u64)>,
    ok_ops: Arc<AtomicU64>,
}

impl Worker {
    fn retire(&mut self) {
        self.incarnation += 1;
        self.process = self.incarnation * 1_000 + self.index;
    }

    fn next_value(&mut self) -> u64 {
        self.counter += 1;
        (self.index + 1) * 1_000_000 + self.counter
    }

    fn own_prefix(&self) -> String {
        format!("own/{:02}/", self.index)
    }

    fn own_key(&self, j: u64) -> String {
        format!("{}{j}", self.own_prefix())
    }

    async fn read(&mut self, key: &str, numeric: bool) -> Option<Option<String>> {
        self.history.event(self.process, "invoke", "read", key, "null");
        match self.client.get(key.as_bytes()).await {
            Ok(v) => {
                let v = opt_bytes(&v);
                let json =
                    if numeric { v.clone().unwrap_or("null".to_string()) } else { json_str(&v) };
                self.history.event(self.process, "ok", "read", key, &json);
                self.ok_ops.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            Err(_) => {
                self.history.event(self.process, "fail", "read", key, "null");
                None
            }
        }
    }

    /// A cas recorded in the history: `Some(true)` swapped, `Some(false)` compare failed,
    /// `None` unknown or failed to run.
    async fn cas(
        &mut self,
        key: &str,
        old: Option<String>,
        new: String,
        json: &str,
    ) -> Option<bool> {
        self.history.event(self.process, "invoke", "cas", key, json);
        let result = self
            .client
            .cas(key.as_bytes(), old.as_deref().map(str::as_bytes), Some(new.as_bytes()))
            .await;
        match result {
            Ok((true, _)) => {
                self.history.event(self.process, "ok", "cas", key, json);
                self.ok_ops.fetch_add(1, Ordering::Relaxed);
                Some(true)
            }
            Ok((false, _)) => {
                self.history.event(self.process, "fail", "cas", key, json);
                Some(false)
            }
            Err(e) if e.is_unknown() => {
                self.history.event(self.process, "info", "cas", key, json);
                self.retire();
                None
            }
            // Never ran: a `fail` cas would tell the checker the compare failed.
            Err(_) => {
                self.history.event(self.process, "info", "cas", key, json);
                self.retire();
                None
            }
        }
    }

    /// Appends a fresh value to own key `j` exactly once: read, then cas; an unknown cas is
    /// resolved by reading again (only this client writes the key, and a stale cas can never
    /// apply after the value moved on).
    async fn append(&mut self, j: u64, give_up: &AtomicBool) {
        let key = self.own_key(j);
        let v = self.next_value();
        let acked = self.model.get(&key).cloned().unwrap_or_default();
        loop {
            if give_up.load(Ordering::Relaxed) {
                // The run is over: leave v unresolved (the final check allows it).
                self.model.entry(key.clone()).or_default();
                self.pending = Some((key, v));
                return;
            }
            let Some(current) = self.read(&key, false).await else { continue };
            let list = parse_list(&current);
            let mut with_v = acked.clone();
            with_v.push(v);
            if list == with_v {
                break;
            }
            assert_eq!(
                list, acked,
                "client {}: key {key} holds {list:?}, expected the acked appends {acked:?} \
                 (pending {v})",
                self.index
            );
            let new = join_list(&with_v);
            let json = format!("[{}, \"{new}\"]", json_str(&current));
            if self.cas(&key, current, new, &json).await == Some(true) {
                break;
            }
        }
        self.model.insert(key, {
            let mut m = acked;
            m.push(v);
            m
        });
    }

    /// Scans the client's own keys; they must equal the acked appends exactly.
    async fn scan_own(&mut self) -> bool {
        let prefix = self.own_prefix();
        let end = format!("own/{:02}0", self.index);
        let Ok(kvs) = self.client.scan(prefix.as_bytes(), end.as_bytes(), 100).await else {
            return false;
        };
        let got: BTreeMap<String, Vec<u64>> = kvs
            .into_iter()
            .map(|(k, v)| {
                let k = String::from_utf8(k).unwrap();
                (k, parse_list(&Some(String::from_utf8(v).unwrap())))
            })
            .collect();
        let mut expected: BTreeMap<String, Vec<u64>> = self
            .model
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((key, v)) = &self.pending {
            // An append abandoned at the end of the run may or may not have happened.
            if got.get(key).is_some_and(|l| l.last() == Some(v)) {
                expected.entry(key.clone()).or_default().push(*v);
            }
        }
        assert_eq!(
            got, expected,
            "client {}: scan of own keys differs from its appends",
            self.index
        );
        true
    }

    async fn register_op(&mut self) {
        let key = format!("r{}", self.rng.next_u64() % SHARED_KEYS);
        match self.rng.next_u64() % 3 {
            0 => {
                self.read(&key, true).await;
            }
            1 => {
                let v = self.next_value();
                self.history.event(self.process, "invoke", "write", &key, &v.to_string());
                match self.client.put(key.as_bytes(), v.to_string().as_bytes()).await {
                    Ok(()) => {
                        self.history.event(self.process, "ok", "write", &key, &v.to_string());
                        self.ok_ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_unknown() => {
                        self.history.event(self.process, "info", "write", &key, &v.to_string());
                        self.retire();
                    }
                    Err(_) => {
                        self.history.event(self.process, "fail", "write", &key, &v.to_string())
                    }
                }
            }
            _ => {
                // Expect a value some client may have written recently: own last or null.
                let old = if self.rng.next_u64().is_multiple_of(4) || self.counter == 0 {
                    None
                } else {
                    let who = self.rng.next_u64() % 3;
                    Some((self.index + 1 + who) * 1_000_000 + self.counter.saturating_sub(who))
                };
                let new = self.next_value();
                let json =
                    format!("[{}, {new}]", old.map_or("null".to_string(), |o| o.to_string()));
                self.history.event(self.process, "invoke", "cas", &key, &json);
                let res = self
                    .client
                    .cas(
                        key.as_bytes(),
                        old.map(|o| o.to_string().into_bytes()).as_deref(),
                        Some(new.to_string().as_bytes()),
                    )
                    .await;
                match res {
                    Ok((true, _)) => {
                        self.history.event(self.process, "ok", "cas", &key, &json);
                        self.ok_ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((false, _)) => self.history.event(self.process, "fail", "cas", &key, &json),
                    Err(e) if e.is_unknown() => {
                        self.history.event(self.process, "info", "cas", &key, &json);
                        self.retire();
                    }
                    // Never ran: a `fail` cas would tell the checker the compare failed.
                    Err(_) => {
                        self.history.event(self.process, "info", "cas", &key, &json);
                        self.retire();
                    }
                }
            }
        }
    }
}

fn parse_list(v: &Option<String>) -> Vec<u64> {
    match v {
        None => Vec::new(),
        Some(s) if s.is_empty() => Vec::new(),
        Some(s) => s.split(',').map(|x| x.parse().expect("appended values are integers")).collect(),
    }
}

fn join_list(l: &[u64]) -> String {
    l.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Shared state between the test's main task, the workers and the nemesis.
#[derive(Debug, Default)]
struct Flags {
    faults_over: AtomicBool,
    give_up: AtomicBool,
}

async fn worker_loop(mut w: Worker, flags: Arc<Flags>) -> Worker {
    while !flags.faults_over.load(Ordering::Relaxed) {
        match w.rng.next_u64() % 10 {
            0..=4 => {
                let j = w.rng.next_u64() % OWN_KEYS;
                w.append(j, &flags.give_up).await;
            }
            5 => {
                w.scan_own().await;
            }
            _ => w.register_op().await,
        }
    }
    // Liveness phase: one more append per own key, then a scan that must succeed.
    for j in 0..OWN_KEYS {
        w.append(j, &flags.give_up).await;
    }
    while !flags.give_up.load(Ordering::Relaxed) {
        if w.scan_own().await {
            break;
        }
    }
    w
}

fn store_config(faults: &Faults, seed: u64) -> SimClusterConfig {
    let mut config = SimClusterConfig::new(STORES, seed);
    config.store.lease_read = faults.lease_read;
    if faults.log_gc {
        config.store.raft_log_gc_count_limit = 100;
        config.store.raft_log_gc_threshold_entries = 50;
        config.store.raft_log_gc_tick_interval_ticks = 2;
    }
    config
}

/// The nemesis: re-draws faults on its own schedule until `faults_over`.
/// What the nemesis did, so that a test can see its faults really happened.
#[derive(Debug, Default, Clone, Copy)]
struct FaultCounts {
    partitions: u64,
    crashes: u64,
    conf_changes_tried: u64,
    conf_changes: u64,
}

async fn nemesis(
    cluster: Arc<Mutex<SimCluster>>,
    faults: Faults,
    seed: u64,
    flags: Arc<Flags>,
    admin: Option<RawClient>,
) -> FaultCounts {
    let mut counts = FaultCounts::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e656d65);
    let mut admin = admin;
    let mut next_peer_id = 1_000;
    let mut down: BTreeMap<StoreId, u64> = BTreeMap::new();
    let start = Instant::now();
    let mut crashed_all = false;
    let step_ms = 50;
    let mut step = 0u64;
    if faults.loss {
        cluster.lock().unwrap().set_packet_loss(0.1);
    }
    while !flags.faults_over.load(Ordering::Relaxed) {
        madsim::time::sleep(Duration::from_millis(step_ms)).await;
        step += 1;
        let now = start.elapsed().as_millis() as u64;
        if faults.partitions && step.is_multiple_of(3) {
            // Every election timeout (10 ticks of 10 ms, randomized up to 2x): a new partition.
            let c = cluster.lock().unwrap();
            c.heal();
            let mut ids = c.store_ids();
            for i in (1..ids.len()).rev() {
                ids.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            match rng.next_u64() % 3 {
                0 => {
                    c.partition(&ids[..1], &ids[1..]);
                    counts.partitions += 1;
                }
                1 => {
                    c.partition(&ids[..2], &ids[2..]);
                    counts.partitions += 1;
                }
                _ => {}
            }
        }
        if faults.crashes {
            let mut c = cluster.lock().unwrap();
            let back: Vec<StoreId> =
                down.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
            for id in back {
                c.restart(id);
                down.remove(&id);
            }
            if !crashed_all && now >= 1_000 {
                // Power loss everywhere at once.
                crashed_all = true;
                for id in c.store_ids() {
                    c.crash(id);
                    counts.crashes += 1;
                    down.insert(id, now + 100 + rng.next_u64() % 200);
                }
            } else if down.len() < 2 && step.is_multiple_of(4) {
                let id = rng.next_u64() % STORES + 1;
                if let std::collections::btree_map::Entry::Vacant(slot) = down.entry(id) {
                    c.crash(id);
                    counts.crashes += 1;
                    slot.insert(now + 100 + rng.next_u64() % 300);
                }
            }
        }
        if faults.membership
            && step.is_multiple_of(2)
            && let Some(admin) = admin.as_mut()
        {
            let (region, leader) = {
                let c = cluster.lock().unwrap();
                let leader = c.leader();
                (
                    leader.and_then(|l| {
                        c.probe(l).peers.get(&FIRST_REGION_ID).map(|s| s.region.clone())
                    }),
                    leader,
                )
            };
            let (Some(region), Some(leader)) = (region, leader) else { continue };
            let voters = region.peers.len() as u64;
            // Never below three voters, judged on the view the change is pinned to.
            let remove = voters > 3 && (voters == STORES || rng.next_u64() % 2 == 0);
            let change = if remove {
                let candidates: Vec<Peer> =
                    region.peers.iter().filter(|p| p.store_id != leader).cloned().collect();
                let victim =
                    candidates[(rng.next_u64() % candidates.len() as u64) as usize].clone();
                (ConfChangeType::RemoveNode, victim)
            } else {
                let missing: Vec<StoreId> =
                    (1..=STORES).filter(|s| region.peer_on_store(*s).is_none()).collect();
                let store_id = missing[(rng.next_u64() % missing.len() as u64) as usize];
                next_peer_id += 1;
                (
                    ConfChangeType::AddNode,
                    Peer { id: next_peer_id, store_id, role: PeerRole::Voter },
                )
            };
            // Errors are expected under faults; the next round tries again.
            counts.conf_changes_tried += 1;
            // Pinned to the epoch it was decided on: a stale decision fails, it is not replayed.
            if admin.change_peer_in(&region, change.0, change.1).await.is_ok() {
                counts.conf_changes += 1;
            }
        }
    }
    let mut c = cluster.lock().unwrap();
    c.heal();
    c.set_packet_loss(0.0);
    for id in c.store_ids() {
        c.restart(id);
    }
    counts
}

/// Runs one scenario in the current simulator and checks everything.
pub async fn run_scenario(seed: u64, scenario: Scenario) {
    let cluster = SimCluster::start(store_config(&scenario.faults, seed));
    let addrs = cluster.addrs();
    let cluster = Arc::new(Mutex::new(cluster));
    let history = Recorder::new();
    let flags = Arc::new(Flags::default());
    let ok_ops = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for index in 0..scenario.clients {
        let node = cluster.lock().unwrap().client_node(&format!("client-{index}"));
        let (addrs, history, flags, ok_ops) =
            (addrs.clone(), history.clone(), flags.clone(), ok_ops.clone());
        workers.push(node.spawn(async move {
            let client = RawClient::connect(ClientConfig::new(addrs), Clock::new(), "0.0.0.0:0")
                .await
                .expect("bind client");
            let w = Worker {
                index,
                client,
                rng: ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000).wrapping_add(index)),
                history,
                process: index,
                incarnation: 0,
                counter: 0,
                model: BTreeMap::new(),
                pending: None,
                ok_ops,
            };
            worker_loop(w, flags).await
        }));
    }
    let admin_node = cluster.lock().unwrap().client_node("admin");
    let nemesis_task = {
        let (cluster, flags) = (cluster.clone(), flags.clone());
        let faults = scenario.faults;
        admin_node.spawn(async move {
            let admin = if faults.membership {
                let mut config = ClientConfig::new(addrs);
                config.request_timeout_ms = 500;
                config.rpc_timeout_ms = 200;
                Some(
                    RawClient::connect(config, Clock::new(), "0.0.0.0:0")
                        .await
                        .expect("bind admin"),
                )
            } else {
                None
            };
            nemesis(cluster, faults, seed, flags, admin).await
        })
    };
    madsim::time::sleep(Duration::from_millis(scenario.run_ms)).await;
    flags.faults_over.store(true, Ordering::Relaxed);
    let counts = nemesis_task.await.expect("nemesis");
    let f = scenario.faults;
    assert!(!f.partitions || counts.partitions > 0, "seed {seed}: no partition happened");
    assert!(!f.crashes || counts.crashes >= STORES, "seed {seed}: too few crashes {counts:?}");
    assert!(
        !f.membership || counts.conf_changes_tried >= 2,
        "seed {seed}: too few conf changes {counts:?}"
    );
    let membership_only = f.membership && !f.partitions && !f.loss && !f.crashes;
    assert!(
        !membership_only || counts.conf_changes >= 5,
        "seed {seed}: too few conf changes {counts:?}"
    );
    let healed = Instant::now();
    let ok_during_faults = ok_ops.load(Ordering::Relaxed);
    // Liveness: every client finishes its last appends and a scan within the bound.
    let mut finished = Vec::new();
    for w in workers {
        let left = Duration::from_millis(LIVENESS_MS).saturating_sub(healed.elapsed());
        match madsim::time::timeout(left, w).await {
            Ok(w) => finished.push(w.expect("worker")),
            Err(_) => {
                flags.give_up.store(true, Ordering::Relaxed);
                panic!(
                    "seed {seed}: liveness: a client did not finish within {LIVENESS_MS} ms after \
                     the faults stopped\n{}",
                    history.text()
                );
            }
        }
    }
    // The nemesis is done and dropped its handle: the cluster is ours alone now.
    let cluster = Arc::into_inner(cluster).expect("only the test holds the cluster");
    let cluster = cluster.into_inner().expect("cluster lock");
    check_replicas(&cluster, seed).await;
    if scenario.faults.lease_read {
        // Counted since each store's last restart: the liveness phase reads after the heal.
        let lease_reads: u64 = cluster
            .store_ids()
            .into_iter()
            .filter_map(|id| cluster.probe(id).peers.get(&FIRST_REGION_ID).map(|p| p.lease_reads))
            .sum();
        assert!(lease_reads > 0, "seed {seed}: no read was served from a lease");
    }
    if scenario.faults.log_gc {
        let c = &cluster;
        for id in c.store_ids() {
            let span = c.probe(id).max_applied_minus_truncated;
            assert!(
                span < 200,
                "seed {seed}: store {id}: applied - truncated reached {span} (GC every 100)"
            );
        }
        let truncated =
            c.leader().map_or(0, |l| c.probe(l).peers[&FIRST_REGION_ID].truncated_index);
        assert!(truncated > 0, "seed {seed}: the log was never truncated");
    }
    let text = history.text();
    let parsed = minikv_checker::parse_history(&text)
        .unwrap_or_else(|e| panic!("seed {seed}: history does not parse: {e}\n{text}"));
    let config = LinConfig { max_steps_per_key: 20_000_000, ..LinConfig::default() };
    let report = check_with(&parsed, &config);
    assert!(
        report.verdict.valid == Validity::Valid,
        "seed {seed}: history is not linearizable ({:?}): {:?}\n{:?}\n{text}",
        report.verdict.valid,
        report.verdict.anomalies,
        report.failure
    );
    let total_ok = ok_ops.load(Ordering::Relaxed);
    assert!(total_ok >= scenario.clients * 3, "seed {seed}: only {total_ok} operations succeeded");
    eprintln!(
        "seed {seed}: {} clients, {} ops in history, {ok_during_faults} ok during faults, {total_ok} ok in all, \
         recovered in {} ms, faults {counts:?}",
        scenario.clients,
        parsed.ops.len(),
        healed.elapsed().as_millis()
    );
    drop(finished);
}

/// After the faults: within the liveness bound, every member of the region applies the same
/// index and holds byte-identical data.
async fn check_replicas(c: &SimCluster, seed: u64) {
    let start = Instant::now();
    loop {
        let leader = c.leader();
        if let Some(leader) = leader {
            let status = c.probe(leader).peers[&FIRST_REGION_ID].clone();
            let members: Vec<StoreId> = status.region.peers.iter().map(|p| p.store_id).collect();
            let applied: Vec<u64> = members
                .iter()
                .map(|id| c.probe(*id).peers.get(&FIRST_REGION_ID).map_or(0, |s| s.applied_index))
                .collect();
            if applied.iter().all(|a| *a == applied[0]) {
                let reference = c.data(leader);
                for id in &members {
                    assert_eq!(
                        c.data(*id),
                        reference,
                        "seed {seed}: store {id} diverges from leader {leader}"
                    );
                }
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_millis(LIVENESS_MS),
            "seed {seed}: replicas did not converge within {LIVENESS_MS} ms"
        );
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
}
