//! The cluster tests: every scenario file in tests/cluster/ runs at fixed seeds and must pass.
//! Beyond the verdict, each run must show that its faults happened: every fault kind a phase
//! configures struck in that phase, every store lost power at once where a phase asks for it
//! (`faults.kill.all_at_ms`), the `raft-log` check ran where the file sets
//! `check.raft_log_entries_max`, and some reads were served from a lease where the cluster
//! serves reads from leases. A failure prints the command that replays it.
//!
//! This is the workspace's kit for cluster tests: a situation to test under a workload and
//! faults is a file here (or in scenarios/, if it belongs in sweeps). The files here give N
//! clients as N register clients on four shared keys and N append clients on two own keys
//! each. Some situations a standard scenario already covers, and they run only there
//! (`tests/scenarios.rs`, seed 1):
//! - five clients without faults: `scenarios/basic.toml`;
//! - partitions re-drawn every election timeout or so: `scenarios/partitions.toml` (every
//!   shape, not only an isolated store and two against three);
//! - crashes one store at a time, then all at once, dropping unsynced writes:
//!   `scenarios/crashes.toml` (which also tears the sectors in flight).

#![cfg(madsim)]

use std::path::{Path, PathBuf};

use minikv_sim::scenario::Scenario;
use minikv_sim::trace::{metric, struck_in_phase};
use minikv_sim::{Report, RunOptions, Verdict, runner};
use toml::Spanned;

/// Where the cluster scenarios live, and how a replay command names them (from the
/// repository's root, where `cargo xtask` runs).
const DIR: &str = "sim/harness/tests/cluster";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster")
}

fn load(name: &str) -> Scenario {
    Scenario::load(&dir().join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `tests/cluster/<name>.toml` at each seed; each run must pass and show its faults.
fn run(name: &str, seeds: &[u64]) -> Vec<Report> {
    let scenario = load(name);
    let mut reports = Vec::new();
    for &seed in seeds {
        let out = runner::run(&scenario, seed, &RunOptions::default());
        let replay = format!("cargo xtask sim --scenario {DIR}/{name}.toml --seed {seed}");
        let report = out.report;
        assert_eq!(report.verdict, Verdict::Pass, "{}\nreplay: {replay}", report.summary());
        if let Some(missing) = missing_faults(&scenario, &report, &out.trace) {
            panic!("{name} seed {seed}: {missing}\nreplay: {replay} --trace FILE");
        }
        eprintln!("{}", report.summary());
        reports.push(report);
    }
    reports
}

/// What the scenario asked for that the run does not show, if anything.
fn missing_faults(s: &Scenario, report: &Report, trace: &str) -> Option<String> {
    for (phase, p) in s.phases.iter().enumerate() {
        let struck = struck_in_phase(trace, phase);
        for kind in p.faults.kinds() {
            if !struck.iter().any(|k| k.starts_with(kind)) {
                return Some(format!(
                    "phase {phase} configures `{kind}` faults but none struck (struck: {struck:?})"
                ));
            }
        }
        let all_at_once = p.faults.kill.as_ref().is_some_and(|k| k.all_at_ms.is_some());
        if all_at_once && !trace.contains("nemesis kill: every store loses power at once") {
            return Some(format!("phase {phase}: every store never lost power at once"));
        }
    }
    if s.check.raft_log_entries_max.is_some() && !report.checks.contains_key("raft-log") {
        return Some("check.raft_log_entries_max is set but the raft-log check did not run".into());
    }
    let lease_reads = metric(trace, "store.lease_reads").unwrap_or(0);
    if s.cluster.lease_read && lease_reads == 0 {
        return Some("lease_read is on but no read was served from a lease".into());
    }
    None
}

#[test]
fn one_client() {
    run("one-client", &[1, 2]);
}

#[test]
fn twenty_clients() {
    run("twenty-clients", &[4]);
}

#[test]
fn message_loss() {
    run("message-loss", &[12]);
}

#[test]
fn log_gc() {
    run("log-gc", &[14]);
}

#[test]
fn membership_alone() {
    for report in run("membership-alone", &[15]) {
        // With no other fault in the way, most changes must go through, not just be tried.
        let changes = report.faults.get("membership").copied().unwrap_or(0);
        assert!(changes >= 5, "only {changes} membership changes succeeded\n{}", report.summary());
    }
}

#[test]
fn partitions_loss_crashes() {
    run("partitions-loss-crashes", &[16]);
}

#[test]
fn crashes_log_gc_membership() {
    run("crashes-log-gc-membership", &[17]);
}

#[test]
fn everything_one_client() {
    run("everything-one-client", &[18]);
}

#[test]
fn everything_twenty_clients() {
    run("everything-twenty-clients", &[19]);
}

#[test]
fn everything_leases() {
    run("everything-leases", &[20]);
}

/// The `raft-log` check can fail: the log-gc scenario with compaction turned off must fail it
/// (and only it), so its passing runs above mean that log GC really ran and kept up.
#[test]
fn raft_log_check_fails_when_the_log_is_never_compacted() {
    let mut s = load("log-gc");
    s.cluster.log_gc_count_limit = Spanned::new(0..0, 1_000_000);
    s.cluster.log_gc_threshold_entries = 1_000_000;
    // BUGGIFY's forced log GC would compact anyway.
    s.cluster.buggify_enable_ppm = Spanned::new(0..0, 0);
    s.phases[0].duration_ms = Spanned::new(0..0, 1_000);
    let report = runner::run(&s, 14, &RunOptions::default()).report;
    assert_eq!(report.verdict, Verdict::Fail, "{}", report.summary());
    let failed: Vec<&String> =
        report.checks.iter().filter(|(_, c)| !c.valid).map(|(name, _)| name).collect();
    assert_eq!(failed, ["raft-log"], "{}", report.summary());
}

#[test]
fn every_cluster_file_has_a_test() {
    let names = minikv_sim::scenario::list(&dir()).unwrap();
    let source = include_str!("cluster.rs");
    for name in &names {
        assert!(
            source.contains(&format!("run(\"{name}\"")),
            "{DIR}/{name}.toml has no test in sim/harness/tests/cluster.rs"
        );
    }
    assert!(names.len() >= 10, "{names:?}");
}
