//! Every file in scenarios/ runs at a fixed seed and must pass, twice, with the same trace
//! hash (determinism), and every fault kind each phase configures must have struck in that
//! phase (a nemesis that silently stops would otherwise pass). A failure prints the command
//! that replays it.

#![cfg(madsim)]

use minikv_sim::scenario::{self, Scenario};
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
    for (phase, kinds) in configured_faults(&s).iter().enumerate() {
        let struck = struck_in_phase(&first.trace, phase);
        for kind in kinds {
            assert!(
                struck.iter().any(|k| k.starts_with(kind)),
                "{name}: phase {phase} configures `{kind}` faults but none struck (struck: \
                 {struck:?})\nreplay: {replay} --trace FILE"
            );
        }
    }
}

/// The fault kinds each phase configures, as the nemesis names them in the trace.
fn configured_faults(s: &Scenario) -> Vec<Vec<&'static str>> {
    s.phases
        .iter()
        .map(|p| {
            let f = &p.faults;
            [
                (f.partition.is_some(), "partition"),
                (f.clog.is_some(), "clog"),
                (f.loss.is_some(), "loss"),
                (f.latency.is_some(), "latency"),
                (f.kill.is_some(), "kill"),
                (f.pause.is_some(), "pause"),
                (f.clock.is_some(), "clock"),
                (f.disk.is_some(), "disk"),
                (f.membership.is_some(), "membership"),
            ]
            .into_iter()
            .filter_map(|(on, kind)| on.then_some(kind))
            .collect()
        })
        .collect()
}

/// The fault kinds the trace shows striking during `phase` (`nemesis <kind>: ...` lines
/// between that phase's start and the next phase's, or the heal).
fn struck_in_phase(trace: &str, phase: usize) -> Vec<String> {
    let (start, next) = (format!("phase {phase} ("), format!("phase {} (", phase + 1));
    let lines = trace.lines().skip_while(|l| !l.contains(&start)).skip(1);
    let lines = lines.take_while(|l| !l.contains(&next) && !l.contains("faults healed"));
    let mut kinds: Vec<String> = lines
        .filter_map(|l| l.rsplit_once(" nemesis ")?.1.split_once(':'))
        .map(|(kind, _)| kind.to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
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
