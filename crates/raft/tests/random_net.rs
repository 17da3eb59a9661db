//! Randomized network tests of minikv-raft: thousands of seeded runs of 3-, 4- and 5-node
//! clusters under drops, delays, reordering, duplicates, partitions, crash-restarts (also
//! mid-Ready), log compaction with snapshots, conf changes, leader transfers, forced elections and
//! ReadIndex reads, with Raft's safety invariants checked after every action and liveness checked
//! once the faults stop (see `support/sim.rs`).
//!
//! A failure prints its seed and replay command, e.g.
//! `RAFT_SEED=123 RAFT_SHAPE=three_nodes RAFT_TRACE=1 cargo test -p minikv-raft --test random_net replay_one_seed -- --nocapture`.
//! `RAFT_SEEDS=N` runs N seeds in every sweep instead of its CI default.

mod support;

use support::sim::{Shape, Summary, run};

const THREE_NODES: Shape = Shape {
    name: "three_nodes",
    nodes: 3,
    initial_voters: 3,
    steps: 1000,
    crashes: true,
    partitions: true,
    conf_changes: false,
    compaction: true,
    max_drop_per_mille: 200,
    max_delay_actions: 12,
    campaign_per_mille: 10,
    max_size_per_msg_bytes: None,
};

const FIVE_NODES: Shape =
    Shape { name: "five_nodes", nodes: 5, initial_voters: 5, steps: 1000, ..THREE_NODES };

/// Membership changes keep an odd voter count (see `conf_change` in support/sim/faults.rs), so a
/// 3-voter cluster needs a fourth node to swap with: 3 voters and 1 learner to start.
const FOUR_NODES_CONF: Shape =
    Shape { name: "four_nodes_conf", nodes: 4, conf_changes: true, ..THREE_NODES };

/// 3 voters and 2 learners to start; moves between 3 and 5 voters and swaps.
const FIVE_NODES_CONF: Shape =
    Shape { name: "five_nodes_conf", initial_voters: 3, conf_changes: true, ..FIVE_NODES };

/// No crashes or partitions, but a very lossy, slow, reordering network.
const THREE_NODES_LOSSY: Shape = Shape {
    name: "three_nodes_lossy",
    crashes: false,
    partitions: false,
    max_drop_per_mille: 450,
    max_delay_actions: 40,
    ..THREE_NODES
};

/// Forced elections on random nodes and one entry per Append: many terms with competing logs,
/// where committing an earlier term's entry by counting replicas ("Figure 8") would show.
const THREE_NODES_ELECTIONS: Shape = Shape {
    name: "three_nodes_elections",
    steps: 600,
    campaign_per_mille: 60,
    max_size_per_msg_bytes: Some(64),
    ..THREE_NODES
};

const SHAPES: [Shape; 6] = [
    THREE_NODES,
    FIVE_NODES,
    FOUR_NODES_CONF,
    FIVE_NODES_CONF,
    THREE_NODES_LOSSY,
    THREE_NODES_ELECTIONS,
];

/// Runs `default_seeds` seeds (or `RAFT_SEEDS`) of `shape` from `first_seed`; returns the summaries.
fn sweep(shape: Shape, first_seed: u64, default_seeds: u64) -> Vec<Summary> {
    let seeds = std::env::var("RAFT_SEEDS")
        .ok()
        .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("RAFT_SEEDS={v:?} is not a number")))
        .unwrap_or(default_seeds);
    let runs: Vec<Summary> =
        (first_seed..first_seed + seeds).map(|seed| run(seed, shape)).collect();
    println!(
        "{}: {seeds} seeds, committed index total {}, max {}, crashes {}, snapshots installed {}, \
         conf changes applied {}, leader terms {}, reads served {}",
        shape.name,
        total(&runs, |s| s.committed_index),
        runs.iter().map(|s| s.committed_index).max().unwrap_or(0),
        total(&runs, |s| s.crashes),
        total(&runs, |s| s.snapshots_installed),
        total(&runs, |s| s.conf_changes_applied),
        total(&runs, |s| s.leader_terms),
        total(&runs, |s| s.reads_served),
    );
    runs
}

/// Sums a counter over a sweep.
fn total(summaries: &[Summary], f: impl Fn(&Summary) -> u64) -> u64 {
    summaries.iter().map(f).sum()
}

#[test]
fn three_nodes_under_crashes_partitions_and_compaction() {
    let runs = sweep(THREE_NODES, 0, 500);
    assert!(total(&runs, |s| s.crashes) > 0, "the sweep never crashed a node");
    assert!(total(&runs, |s| s.snapshots_installed) > 0, "no node ever installed a snapshot");
    assert!(
        runs.iter().all(|s| s.committed_index > 0),
        "every run commits at least the liveness probe"
    );
    assert!(total(&runs, |s| s.reads_served) > 0, "no ReadIndex request was ever served");
}

#[test]
fn five_nodes_under_crashes_partitions_and_compaction() {
    let runs = sweep(FIVE_NODES, 1_000_000, 450);
    assert!(total(&runs, |s| s.crashes) > 0, "the sweep never crashed a node");
    assert!(total(&runs, |s| s.snapshots_installed) > 0, "no node ever installed a snapshot");
    assert!(runs.iter().all(|s| s.leader_terms > 0), "every run elects a leader");
}

#[test]
fn four_nodes_with_conf_changes() {
    let runs = sweep(FOUR_NODES_CONF, 2_000_000, 400);
    assert!(total(&runs, |s| s.conf_changes_applied) > 0, "no conf change was ever applied");
}

#[test]
fn five_nodes_with_conf_changes() {
    let runs = sweep(FIVE_NODES_CONF, 3_000_000, 350);
    assert!(total(&runs, |s| s.conf_changes_applied) > 0, "no conf change was ever applied");
}

#[test]
fn three_nodes_on_a_lossy_reordering_network() {
    let runs = sweep(THREE_NODES_LOSSY, 4_000_000, 400);
    assert!(
        runs.iter().all(|s| s.committed_index > 0),
        "every run commits at least the liveness probe"
    );
}

#[test]
fn three_nodes_under_forced_elections() {
    let runs = sweep(THREE_NODES_ELECTIONS, 5_000_000, 400);
    assert!(total(&runs, |s| s.leader_terms) > 400, "forced elections should elect many leaders");
}

#[test]
fn same_seed_replays_the_same_trace() {
    for shape in SHAPES {
        for seed in [7, 4_000_007] {
            let (a, b) = (run(seed, shape), run(seed, shape));
            assert_eq!(a, b, "seed {seed} of {} is not deterministic", shape.name);
        }
        assert_ne!(
            run(1, shape).trace_hash,
            run(2, shape).trace_hash,
            "seeds 1 and 2 of {} ran the same trace",
            shape.name
        );
    }
}

/// Replays `RAFT_SEED` of `RAFT_SHAPE` (default: seed 0 of every shape), printing the trace with
/// `RAFT_TRACE=1`.
#[test]
fn replay_one_seed() {
    let seed =
        std::env::var("RAFT_SEED").ok().map(|v| v.parse::<u64>().expect("RAFT_SEED is a number"));
    let shape = std::env::var("RAFT_SHAPE").ok();
    let shapes: Vec<Shape> = match &shape {
        Some(name) => vec![*SHAPES.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!("RAFT_SHAPE={name:?} is not one of {:?}", SHAPES.map(|s| s.name))
        })],
        None => SHAPES.to_vec(),
    };
    for shape in shapes {
        let summary = run(seed.unwrap_or(0), shape);
        println!("{} seed {}: {summary:?}", shape.name, seed.unwrap_or(0));
        assert!(summary.committed_index > 0, "the liveness probe commits");
    }
}
