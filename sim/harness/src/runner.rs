//! One run: builds the cluster, runs every phase's workloads with its faults beside them,
//! heals, holds the workloads to the liveness bound, waits for the replicas to converge, then
//! checks the history and the Raft audit and assembles the report.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::Runtime;
use madsim::time::Instant;
use minikv_checker::lin::{LinConfig, check_with};
use minikv_checker::report::Validity;
use minikv_hooks::{Canary, Session, SessionConfig};
use minikv_proto::metapb::StoreId;
use minikv_server::ProbeState;
use minikv_server::sim_cluster::{FIRST_REGION_ID, NodeKind, SimCluster, SimClusterConfig};

use crate::history::Recorder;
use crate::memory;
use crate::nemesis::{self, Links, Stats, World};
use crate::placement;
use crate::report::{CheckResult, Report, Verdict};
use crate::scenario::Scenario;
use crate::trace::Trace;
use crate::workload::{self, Env, Workload};
use crate::{RunOptions, RunOutput};

/// Simulated time allowed beyond the phases and three liveness bounds before the run is
/// declared hung.
const HANG_MARGIN_MS: u64 = 60_000;

/// What the simulation itself concluded (the history checks come after).
#[derive(Debug, Default)]
struct SimResult {
    /// Why liveness was missed, if it was.
    liveness: Option<String>,
    /// Replicas differ after convergence.
    replicas: Option<CheckResult>,
    /// The `raft-log` check, when the scenario asks for it.
    raft_log: Option<CheckResult>,
    workload_checks: Vec<(String, CheckResult)>,
    /// PD's counters for the report (leader changes, operators).
    pd: BTreeMap<String, u64>,
    /// Runs with PD: the replicas were placed, and balanced.
    placement: Option<CheckResult>,
    balance: Option<CheckResult>,
}

/// Runs `scenario` with `seed` in a fresh madsim runtime on the calling thread.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunOutput {
    let wall = std::time::Instant::now();
    let c = &scenario.cluster;
    let latency = *c.latency_ms.get_ref();
    let mut config = madsim::Config::default();
    config.net.send_latency =
        Duration::from_millis(latency.min)..Duration::from_millis(latency.max + 1);
    let mut runtime = Runtime::with_seed_and_config(seed, config);
    // madsim runs the whole simulation on this thread: the store's hooks read this session.
    let canaries: Vec<Canary> = c.canary.map(|n| n.0).into_iter().collect();
    let hooks = Session::start(&SessionConfig {
        seed,
        canaries,
        buggify_enable_ppm: u32::try_from(*c.buggify_enable_ppm.get_ref()).unwrap_or(u32::MAX),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let limit_ms =
        scenario.duration_ms() + 3 * scenario.check.liveness_ms.get_ref() + HANG_MARGIN_MS;
    runtime.set_time_limit(Duration::from_millis(limit_ms));
    let (trace, history) =
        runtime.block_on(async { (Trace::new(options.trace_level), Recorder::new()) });
    let stats = Arc::new(Mutex::new(Stats::default()));
    let world_slot = Arc::new(Mutex::new(None));
    let budget = Budget {
        start_live_bytes: memory::thread_live_bytes(),
        memory_bytes: scenario.check.memory_budget_mb.saturating_mul(1 << 20),
        messages: scenario.check.message_budget,
    };
    let outcome = {
        let _guard = tracing::subscriber::set_default(trace.subscriber());
        let parts = Parts { trace: trace.clone(), history: history.clone(), stats: stats.clone() };
        let sim = simulate(scenario, seed, budget, parts, world_slot.clone());
        catch_unwind(AssertUnwindSafe(|| runtime.block_on(sim)))
    };
    let sim_ms = runtime
        .block_on(async { madsim::time::Instant::now() })
        .duration_since(trace.origin())
        .as_millis() as u64;
    if outcome.is_err() {
        release_after_panic(&mut runtime, &world_slot);
    }
    drop(runtime);
    let tally = hooks.finish();
    let history_text = history.text();
    let mut checks = BTreeMap::new();
    let mut pd = BTreeMap::new();
    let (mut verdict, mut message) = (Verdict::Pass, None);
    match outcome {
        Err(panic) => {
            let m = panic_message(&*panic);
            // The time limit is madsim's; reaching it means the run hung.
            let hung = m.contains("time limit");
            verdict = if hung { Verdict::Liveness } else { Verdict::Crash };
            message =
                Some(if hung { format!("the run hung past {limit_ms} simulated ms") } else { m });
        }
        Ok(sim) => {
            pd = sim.pd;
            for (name, check) in sim.workload_checks {
                checks.insert(name, check);
            }
            if let Some(r) = sim.replicas {
                checks.insert("replicas".to_string(), r);
            }
            if let Some(r) = sim.raft_log {
                checks.insert("raft-log".to_string(), r);
            }
            if let Some(r) = sim.placement {
                checks.insert("placement".to_string(), r);
            }
            if let Some(r) = sim.balance {
                checks.insert("balance".to_string(), r);
            }
            let live = CheckResult { valid: sim.liveness.is_none(), ms: 0, detail: sim.liveness };
            checks.insert("liveness".to_string(), live);
        }
    }
    if verdict != Verdict::Crash {
        checks.insert("linearizable".to_string(), check_linearizable(scenario, &history_text));
    }
    checks.insert("raft-audit".to_string(), trace.with_auditor(|a| audit_result(a)));
    // A safety violation outranks a liveness miss; both outrank a pass.
    if verdict != Verdict::Crash {
        let failed = |liveness: bool| {
            checks.iter().find(|(name, c)| !c.valid && (name.as_str() == "liveness") == liveness)
        };
        if let Some((name, c)) = failed(false).or(failed(true)) {
            verdict = if name == "liveness" { Verdict::Liveness } else { Verdict::Fail };
            message = Some(format!("check {name}: {}", c.detail.clone().unwrap_or_default()));
        }
    }
    let stats = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
    let report = Report {
        scenario: scenario.name.clone(),
        seed,
        verdict,
        sim_ms,
        wall_ms: wall.elapsed().as_millis() as u64,
        ops: history.counts(),
        faults: stats.faults,
        checks,
        trace_hash: trace.hash(),
        swarm: stats.swarm,
        message,
        canaries: tally.canaries.iter().map(|c| c.to_string()).collect(),
        buggify: tally.buggify.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        probes: tally.probes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        pd,
    };
    RunOutput { report, history: history_text, trace: trace.text() }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "a panic without a message".to_string()
    }
}

fn audit_result(a: &crate::audit::Auditor) -> CheckResult {
    let valid = a.violation_count == 0 && a.entries() > 0;
    let detail = if a.entries() == 0 {
        Some("no applied entry was audited: the stores emitted no audit events".to_string())
    } else if a.violation_count > 0 {
        Some(format!("{} violations: {}", a.violation_count, a.violations.join("; ")))
    } else {
        None
    };
    CheckResult { valid, ms: 0, detail }
}

fn check_linearizable(scenario: &Scenario, text: &str) -> CheckResult {
    let start = std::time::Instant::now();
    let ms = || start.elapsed().as_millis() as u64;
    let history = match minikv_checker::parse_history(text) {
        Ok(h) => h,
        Err(e) => {
            let detail = Some(format!("the history does not parse: {e}"));
            return CheckResult { valid: false, ms: ms(), detail };
        }
    };
    let config = LinConfig {
        max_steps_per_key: scenario.check.lin_max_steps_per_key,
        ..LinConfig::default()
    };
    let report = check_with(&history, &config);
    let valid = report.verdict.valid == Validity::Valid;
    let detail = (!valid).then(|| {
        let what: Vec<String> =
            report.verdict.anomalies.iter().take(3).map(|a| a.explanation.clone()).collect();
        format!("{:?}: {}", report.verdict.valid, what.join("; "))
    });
    CheckResult { valid, ms: ms(), detail }
}

fn cluster_config(scenario: &Scenario, seed: u64) -> SimClusterConfig {
    let c = &scenario.cluster;
    let mut config = SimClusterConfig::new(*c.stores.get_ref(), seed);
    config.tick_interval_ms = *c.tick_ms.get_ref();
    config.ready_batch_window_ms = c.ready_batch_window_ms;
    config.store.election_tick = *c.election_ticks.get_ref() as usize;
    config.store.heartbeat_tick = *c.heartbeat_ticks.get_ref() as usize;
    config.store.raft_log_gc_count_limit = *c.log_gc_count_limit.get_ref();
    config.store.raft_log_gc_threshold_entries = c.log_gc_threshold_entries;
    config.store.raft_log_gc_tick_interval_ticks = *c.log_gc_tick_ticks.get_ref();
    config.store.snapshot_chunk_size_bytes = *c.snapshot_chunk_bytes.get_ref() as usize;
    config.store.lease_read = c.lease_read;
    config.store.lease_margin_ticks = c.lease_margin_ticks;
    config.pd_nodes = *c.pd_nodes.get_ref();
    config.pd.tso_window_ms = *c.pd_tso_window_ms.get_ref();
    config.pd.max_replicas = *c.pd_max_replicas.get_ref() as usize;
    config.pd.max_store_down_ms = *c.pd_max_store_down_ms.get_ref();
    config.pd.heartbeat_interval_ms = *c.pd_heartbeat_ms.get_ref();
    config
}

/// What a run may use before it ends as a `crash`: memory its thread holds beyond what it held
/// at the start, and messages on the simulated network.
#[derive(Debug, Clone, Copy)]
struct Budget {
    start_live_bytes: i64,
    memory_bytes: u64,
    messages: u64,
}

impl Budget {
    /// Panics (the run's `crash`) when the run is over a budget.
    fn enforce(&self) {
        let held_bytes = memory::thread_live_bytes().saturating_sub(self.start_live_bytes);
        assert!(
            held_bytes <= self.memory_bytes as i64,
            "memory budget exceeded: the run holds {} MiB, over check.memory_budget_mb = {}",
            held_bytes >> 20,
            self.memory_bytes >> 20
        );
        let messages = madsim::net::NetSim::current().stat().msg_count;
        assert!(
            messages <= self.messages,
            "message budget exceeded: {messages} messages, over check.message_budget = {}",
            self.messages
        );
    }
}

/// The run's shared recorders, which outlive the simulation.
struct Parts {
    trace: Trace,
    history: Recorder,
    stats: Arc<Mutex<Stats>>,
}

/// The world of a run, kept where the runner can reach it if the simulation panics.
type WorldSlot = Arc<Mutex<Option<World>>>;

/// A run that panicked (a store bug, a budget, madsim's time limit) left every node's tasks
/// alive, holding one another through wakers and channels, so dropping the runtime would not
/// free them: a sweep over a crashing bug grew to tens of GB. Kill every node, as a passing
/// run does at its end, and let the executor drop their tasks.
fn release_after_panic(runtime: &mut Runtime, slot: &WorldSlot) {
    let world = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    runtime.set_time_limit(Duration::MAX);
    let release = async move {
        if let Some(world) = world {
            world.cluster().shutdown();
        }
        madsim::time::sleep(Duration::from_millis(1)).await;
    };
    // A task that panics again while being dropped is of no further interest.
    let _ = catch_unwind(AssertUnwindSafe(|| runtime.block_on(release)));
}

async fn simulate(
    scenario: &Scenario,
    seed: u64,
    budget: Budget,
    parts: Parts,
    world_slot: WorldSlot,
) -> SimResult {
    let Parts { trace, history, stats } = parts;
    trace.name_node(madsim::plugin::node(), "main");
    tracing::info!(target: "minikv::sim", "scenario {} seed {seed}", scenario.name);
    let cluster = SimCluster::start(cluster_config(scenario, seed));
    for id in cluster.store_ids() {
        trace.name_node(cluster.node_id(id), &format!("s{id}"));
    }
    for id in cluster.pd_ids() {
        trace.name_node(cluster.node_id(id), &format!("pd{id}"));
    }
    let addrs = cluster.addrs();
    let pd_addrs = cluster.pd_addrs();
    let tso_log = workload::TsoLog::new();
    let world = World {
        cluster: Arc::new(Mutex::new(cluster)),
        stats,
        links: Arc::new(Mutex::new(Links::default())),
        base_latency_ms: *scenario.cluster.latency_ms.get_ref(),
    };
    *world_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(world.clone());
    let nemesis_node = world.cluster().client_node("nemesis");
    trace.name_node(nemesis_node.id(), "nemesis");
    let run_over = Arc::new(AtomicBool::new(false));
    let supervisor = nemesis_node.spawn(supervise(world.clone(), budget, run_over.clone()));
    let give_up = Arc::new(AtomicBool::new(false));
    let liveness_ms = *scenario.check.liveness_ms.get_ref();
    let bound = Duration::from_millis(liveness_ms);
    let mut stuck = None;
    let mut workloads: Vec<Box<dyn Workload>> = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate() {
        let duration_ms = *phase.duration_ms.get_ref();
        tracing::info!(target: "minikv::sim", "phase {i} ({}) starts for {duration_ms} ms", phase.name);
        let env = Env {
            addrs: addrs.clone(),
            pd_addrs: pd_addrs.clone(),
            tso_log: tso_log.clone(),
            phase: i as u64,
            history: history.clone(),
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            give_up: give_up.clone(),
            instance: format!("p{i}"),
        };
        let mut started = workload::build(&phase.workloads, &env);
        for w in &mut started {
            let mut n = 0;
            w.start(&mut |name| {
                let node = world.cluster().client_node(name);
                trace.name_node(node.id(), &format!("p{i}{}{n}", &w_letter(name)));
                n += 1;
                node
            });
        }
        let end = Instant::now() + Duration::from_millis(duration_ms);
        let mut tasks =
            nemesis::start(&world, &nemesis_node, (&phase.faults, NodeKind::Store), i, seed, end);
        tasks.extend(nemesis::start(
            &world,
            &nemesis_node,
            (&phase.pd_faults, NodeKind::Pd),
            i,
            seed,
            end,
        ));
        madsim::time::sleep_until(end).await;
        for t in tasks {
            t.await.expect("a nemesis task panicked");
        }
        env.stop.store(true, Ordering::Relaxed);
        // Clients stop after their current operation; one stuck retrying against a cluster
        // that never recovers is a liveness failure, not a hang.
        let join = async {
            for w in &mut started {
                w.join().await;
            }
        };
        let joined = madsim::time::timeout(bound, join).await.is_ok();
        workloads.extend(started);
        if !joined {
            give_up.store(true, Ordering::Relaxed);
            stuck = Some(format!(
                "phase {i} ({}): the clients did not stop within {liveness_ms} ms after the phase ended",
                phase.name
            ));
            break;
        }
    }
    world.heal_all();
    tracing::info!(target: "minikv::sim", "faults healed; workloads finish within {liveness_ms} ms");
    let healed = Instant::now();
    let mut result = SimResult::default();
    let finished = match stuck {
        Some(why) => Err(why),
        None => {
            let finish = async {
                for w in &mut workloads {
                    w.finish().await;
                }
            };
            madsim::time::timeout(bound, finish).await.map_err(|_| {
                format!("the workloads did not finish within {liveness_ms} ms after the heal")
            })
        }
    };
    if let Err(why) = finished {
        give_up.store(true, Ordering::Relaxed);
        result.liveness = Some(why);
    } else {
        let left = bound.saturating_sub(healed.elapsed());
        let pd = *scenario.cluster.pd_nodes.get_ref() > 0;
        let max_replicas = pd.then(|| *scenario.cluster.pd_max_replicas.get_ref());
        match converge(&world, left, max_replicas).await {
            Ok((check, placed)) => {
                result.replicas = Some(check);
                if let Some(placed) = placed {
                    result.placement = Some(placed);
                    result.balance = Some(placement::balance(&world.cluster()));
                }
            }
            Err(why) => result.liveness = Some(why),
        }
    }
    tracing::info!(
        target: "minikv::sim",
        "finished {} ms after the heal",
        healed.elapsed().as_millis()
    );
    if let Some(max) = &scenario.check.raft_log_entries_max {
        result.raft_log = Some(check_raft_log(&world.cluster(), *max.get_ref()));
    }
    for w in &workloads {
        result.workload_checks.extend(w.check());
        for (k, v) in w.metrics() {
            tracing::info!(target: "minikv::sim", "metric {k} = {v}");
        }
    }
    let lease_reads: u64 = {
        let c = world.cluster();
        c.store_ids()
            .iter()
            .flat_map(|id| c.probe(*id).peers.into_values().map(|p| p.lease_reads))
            .sum()
    };
    tracing::info!(target: "minikv::sim", "metric store.lease_reads = {lease_reads}");
    run_over.store(true, Ordering::Relaxed);
    let pd_leader_changes = supervisor.await.expect("the supervisor panicked");
    if !world.cluster().pd_ids().is_empty() {
        tracing::info!(target: "minikv::sim", "metric pd.leader_changes = {pd_leader_changes}");
        result.pd.insert("leader_changes".into(), pd_leader_changes);
        for (key, n) in pd_operator_counts(&world.cluster()) {
            tracing::info!(target: "minikv::sim", "metric pd.{key} = {n}");
            result.pd.insert(key, n);
        }
    }
    drop(workloads);
    world_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    world.cluster().shutdown();
    // Let the executor drop the killed tasks before the runtime goes.
    madsim::time::sleep(Duration::from_millis(1)).await;
    result
}

/// Operators by kind and outcome (`operators.replica.created`), and those a new PD leader
/// carried on (`operators.restored`), summed over the PD nodes; only those that happened.
fn pd_operator_counts(c: &SimCluster) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for id in c.pd_ids() {
        let Some(stats) = c.pd_stats(id) else { continue };
        let stats = stats.snapshot();
        if stats.operators_restored > 0 {
            *out.entry("operators.restored".to_string()).or_default() += stats.operators_restored;
        }
        for (kind, n) in stats.operators {
            for (what, v) in [
                ("created", n.created),
                ("finished", n.finished),
                ("cancelled", n.cancelled),
                ("timed_out", n.timed_out),
            ] {
                if v > 0 {
                    *out.entry(format!("operators.{kind}.{what}")).or_default() += v;
                }
            }
        }
    }
    out
}

/// A short letter for a workload client's trace name (`p0r3`, `p1a0`).
fn w_letter(node_name: &str) -> &'static str {
    [("-append-", "a"), ("-batch-", "b"), ("-readers-", "d"), ("-fresh-", "f"), ("-tso-", "t")]
        .iter()
        .find(|(part, _)| node_name.contains(part))
        .map_or("r", |(_, letter)| letter)
}

/// A node that stopped itself on an error is restarted after a pause, as a supervisor
/// (systemd, Kubernetes) would. It also holds the run to its budget.
/// It watches the PD leader too, and returns how often it changed.
async fn supervise(world: World, budget: Budget, over: Arc<AtomicBool>) -> u64 {
    const RESTART_AFTER_MS: u64 = 200;
    let mut failed_since: BTreeMap<StoreId, Instant> = BTreeMap::new();
    let mut pd_leader: Option<(u64, u64)> = None;
    let mut pd_leader_changes = 0;
    while !over.load(Ordering::Relaxed) {
        madsim::time::sleep(Duration::from_millis(50)).await;
        budget.enforce();
        let mut c = world.cluster();
        c.reap_finished_tasks();
        if let Some((id, term)) = c.pd_leader_term()
            && pd_leader.is_none_or(|(_, seen)| term > seen)
        {
            if pd_leader.is_some() {
                pd_leader_changes += 1;
            }
            pd_leader = Some((id, term));
            tracing::info!(target: "minikv::sim", "PD leader is pd{id} in term {term}");
        }
        for id in c.node_ids() {
            if !c.has_failed(id) {
                failed_since.remove(&id);
                continue;
            }
            let since = *failed_since.entry(id).or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(RESTART_AFTER_MS) {
                c.restart(id);
                failed_since.remove(&id);
                let what = if c.pd_ids().contains(&id) { "PD node" } else { "store" };
                drop(c);
                world.fault("fail-stop-restart", &format!("supervisor restarts {what} {id}"));
                c = world.cluster();
            }
        }
    }
    pd_leader_changes
}

/// Waits until every member of the region applied the same index, then compares their data
/// byte for byte. `Err` if they do not converge within `bound`.
/// With `max_replicas` (a run with PD), it first waits for PD to place the replicas (see
/// `placement::replicas_placed`), and returns that check too.
async fn converge(
    world: &World,
    bound: Duration,
    max_replicas: Option<u64>,
) -> Result<(CheckResult, Option<CheckResult>), String> {
    let start = Instant::now();
    loop {
        let unplaced = {
            let c = world.cluster();
            match max_replicas.map(|m| placement::replicas_placed(&c, m)) {
                Some(Err(why)) => Some(why),
                placed => {
                    if let Some(check) = compare_replicas(&c) {
                        let placement = placed.map(|summary| {
                            let summary = summary.expect("placed");
                            tracing::info!(target: "minikv::sim", "placement: {summary}");
                            CheckResult { valid: true, ms: 0, detail: None }
                        });
                        return Ok((check, placement));
                    }
                    None
                }
            }
        };
        if start.elapsed() >= bound {
            return Err(match unplaced {
                Some(why) => {
                    format!("PD did not place the replicas within the liveness bound: {why}")
                }
                None => format!(
                    "the replicas of region {FIRST_REGION_ID} did not converge within the liveness bound"
                ),
            });
        }
        madsim::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `raft-log` check: no store's live log (applied minus truncated index, as its probe saw
/// it on every tick since the cluster started) held more than `max` entries, and some replica's
/// log was truncated, so that log GC both ran and kept up.
fn check_raft_log(c: &SimCluster, max: u64) -> CheckResult {
    let probes: Vec<(StoreId, ProbeState)> =
        c.store_ids().into_iter().map(|id| (id, c.probe(id))).collect();
    let (span, id) =
        probes.iter().map(|(id, p)| (p.max_applied_minus_truncated, *id)).max().unwrap_or((0, 0));
    let truncated = probes
        .iter()
        .filter_map(|(_, p)| p.peers.get(&FIRST_REGION_ID).map(|s| s.truncated_index))
        .max()
        .unwrap_or(0);
    tracing::info!(
        target: "minikv::sim",
        "raft log: longest live log {span} entries (store {id}), truncated to index {truncated}"
    );
    let detail = if span > max {
        Some(format!(
            "store {id}'s live Raft log reached {span} entries, over check.raft_log_entries_max = {max}"
        ))
    } else if truncated == 0 {
        Some("no replica's Raft log was ever truncated".to_string())
    } else {
        None
    };
    CheckResult { valid: detail.is_none(), ms: 0, detail }
}

/// The first key (in key order) whose value differs between a replica and the leader's.
fn first_difference(replica: &[(Vec<u8>, Vec<u8>)], leader: &[(Vec<u8>, Vec<u8>)]) -> String {
    let show = |v: Option<&Vec<u8>>| {
        v.map_or("absent".to_string(), |v| format!("{:?}", String::from_utf8_lossy(v)))
    };
    let (mut r, mut l) = (replica.iter().peekable(), leader.iter().peekable());
    loop {
        let key = match (r.peek(), l.peek()) {
            (None, None) => return "none".to_string(),
            (Some((rk, _)), Some((lk, _))) => rk.min(lk).clone(),
            (Some((k, _)), None) | (None, Some((k, _))) => k.clone(),
        };
        let rv = r.next_if(|(k, _)| *k == key).map(|(_, v)| v);
        let lv = l.next_if(|(k, _)| *k == key).map(|(_, v)| v);
        if rv != lv {
            return format!(
                "key {:?}: replica {}, leader {}",
                String::from_utf8_lossy(&key),
                show(rv),
                show(lv)
            );
        }
    }
}

/// `None` while the members have not applied the same index.
fn compare_replicas(c: &SimCluster) -> Option<CheckResult> {
    let leader = c.leader()?;
    let status = c.probe(leader).peers.get(&FIRST_REGION_ID)?.clone();
    let members: Vec<StoreId> = status.region.peers.iter().map(|p| p.store_id).collect();
    let applied: Vec<Option<u64>> = members
        .iter()
        .map(|id| c.probe(*id).peers.get(&FIRST_REGION_ID).map(|s| s.applied_index))
        .collect();
    if applied.iter().any(|a| *a != Some(status.applied_index)) {
        return None;
    }
    let reference = c.data(leader);
    for id in &members {
        let data = c.data(*id);
        if data != reference {
            let detail = format!(
                "store {id} holds {} pairs, leader store {leader} holds {} at applied index {}; \
                 first difference: {}",
                data.len(),
                reference.len(),
                status.applied_index,
                first_difference(&data, &reference)
            );
            tracing::info!(target: "minikv::sim", "replicas differ: {detail}");
            return Some(CheckResult { valid: false, ms: 0, detail: Some(detail) });
        }
    }
    tracing::info!(
        target: "minikv::sim",
        "replicas {members:?} identical at applied index {} ({} pairs)",
        status.applied_index,
        reference.len()
    );
    Some(CheckResult { valid: true, ms: 0, detail: None })
}
