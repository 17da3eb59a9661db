//! Every file in scenarios/ runs at a fixed seed and must pass, twice, with the same trace
//! hash (determinism), and every fault kind each phase configures must have struck in that
//! phase (a nemesis that silently stops would otherwise pass). A failure prints the command
//! that replays it.

#![cfg(madsim)]

use minikv_sim::scenario::{self, Scenario};
use minikv_sim::trace::struck_in_phase;
use minikv_sim::{RunOptions, Verdict, runner};

/// The seed every scenario runs with here (sweeps cover the others).
const SEED: u64 = 1;

fn run_twice(name: &str) {
    let path = scenario::resolve(name, &scenario::scenarios_dir()).unwrap();
    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let first = runner::run(&s, SEED, &RunOptions::default());
    let second = runner::run(&s, SEED, &RunOptions::default());
    let replay = format!("cargo xtask sim --scenario {name} --seed {SEED}");
    assert_eq!(
        first.report.trace_hash, second.report.trace_hash,
        "{name}: same seed, different traces; find the first difference with: {replay} --check-determinism"
    );
    assert_eq!(first.history, second.history, "{name}: same seed, different histories");
    assert_eq!(first.report.verdict, Verdict::Pass, "{}\nreplay: {replay}", first.report.summary());
    for (phase, p) in s.phases.iter().enumerate() {
        let struck = struck_in_phase(&first.trace, phase);
        for kind in p.faults.kinds().into_iter().chain(p.pd_faults.kinds()) {
            assert!(
                struck.iter().any(|k| k.starts_with(kind)),
                "{name}: phase {phase} configures `{kind}` faults but none struck (struck: \
                 {struck:?})\nreplay: {replay} --trace FILE"
            );
        }
    }
}

#[test]
fn basic() {
    run_twice("basic");
}

#[test]
fn partitions() {
    run_twice("partitions");
}

#[test]
fn lossy_network() {
    run_twice("lossy-network");
}

#[test]
fn crashes() {
    run_twice("crashes");
}

#[test]
fn clock_skew() {
    run_twice("clock-skew");
}

#[test]
fn pauses() {
    run_twice("pauses");
}

#[test]
fn disk_faults() {
    run_twice("disk-faults");
}

#[test]
fn membership() {
    run_twice("membership");
}

#[test]
fn chaos() {
    run_twice("chaos");
}

#[test]
fn leases() {
    run_twice("leases");
}

#[test]
fn elections() {
    run_twice("elections");
}

#[test]
fn deposed_leaders() {
    run_twice("deposed-leaders");
}

#[test]
fn pd_chaos() {
    run_twice("pd-chaos");
}

#[test]
fn store_loss() {
    run_twice("store-loss");
}

#[test]
fn every_scenario_file_has_a_test() {
    let names = scenario::list(&scenario::scenarios_dir()).unwrap();
    let source = include_str!("scenarios.rs");
    for name in &names {
        assert!(
            source.contains(&format!("run_twice(\"{name}\")")),
            "scenarios/{name}.toml has no test in sim/harness/tests/scenarios.rs"
        );
    }
    assert!(names.len() >= 10, "{names:?}");
}
