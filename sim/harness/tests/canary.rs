//! Canaries: a planted bug must be caught. A harness whose checks cannot fail is worthless;
//! this proves, on every test run, that an acknowledged write the store then loses reaches
//! the history and fails it: register writes the linearizability check, batches and deletes
//! of the batch workload its own two checks.

#![cfg(madsim)]

use std::path::Path;

use minikv_sim::scenario::Scenario;
use minikv_sim::{RunOptions, Verdict, runner};

/// Seeds tried before declaring the canary silent.
const MAX_SEEDS: u64 = 10;

#[test]
fn planted_early_acks_fail_linearizability() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/canaries/early-acks.toml");
    let canary = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(canary.cluster.canary.is_some(), "the canary scenario must plant its bug");
    let caught = (0..MAX_SEEDS).find_map(|seed| {
        let out = runner::run(&canary, seed, &RunOptions::default());
        let lin = &out.report.checks["linearizable"];
        (out.report.verdict == Verdict::Fail && !lin.valid).then_some((seed, out))
    });
    let Some((seed, out)) = caught else {
        panic!("no seed in 0..{MAX_SEEDS} caught the planted early acknowledgements");
    };
    let detail = out.report.checks["linearizable"].detail.clone().unwrap_or_default();
    assert!(detail.contains("cannot be linearized"), "seed {seed}: {detail}");
    // The same seed without the bug passes: the failure is the bug's, not the harness's.
    let mut fixed = canary.clone();
    fixed.cluster.canary = None;
    let out = runner::run(&fixed, seed, &RunOptions::default());
    assert_eq!(out.report.verdict, Verdict::Pass, "{}", out.report.summary());
}

#[test]
fn planted_early_acks_fail_the_batch_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/canaries/early-acks-batch.toml");
    let canary = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let caught = (0..MAX_SEEDS).find_map(|seed| {
        let out = runner::run(&canary, seed, &RunOptions::default());
        let failed = |name: &str| !out.report.checks[name].valid;
        let both = failed("batch-atomic") && failed("batch-keys");
        (out.report.verdict == Verdict::Fail && both).then_some((seed, out))
    });
    let Some((seed, out)) = caught else {
        panic!("no seed in 0..{MAX_SEEDS} caught the planted early acknowledgements");
    };
    let detail = out.report.checks["batch-atomic"].detail.clone().unwrap_or_default();
    assert!(detail.contains("cannot be placed"), "seed {seed}: {detail}");
    assert!(out.report.checks["linearizable"].valid, "no register ops: nothing else to fail");
    let mut fixed = canary.clone();
    fixed.cluster.canary = None;
    let out = runner::run(&fixed, seed, &RunOptions::default());
    assert_eq!(out.report.verdict, Verdict::Pass, "{}", out.report.summary());
}
