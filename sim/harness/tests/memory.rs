//! A run releases what it held, whatever its verdict, and one that outgrows its budget ends as
//! its own `crash`: a sweep's memory stays flat. Runs here count their allocations with the
//! harness's counting allocator, as the `minikv-sim` binary does.

#![cfg(madsim)]

use std::path::Path;

use minikv_sim::memory::{CountingAlloc, thread_live_bytes};
use minikv_sim::scenario::Scenario;
use minikv_sim::{RunOptions, Verdict, runner};

#[global_allocator]
static ALLOCATOR: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

fn canary(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/canaries").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `seeds` and returns each run's verdict, with the bytes this thread still held after it.
fn held_after_each(scenario: &Scenario, seeds: std::ops::Range<u64>) -> Vec<(Verdict, i64)> {
    seeds
        .map(|seed| {
            let verdict = runner::run(scenario, seed, &RunOptions::default()).report.verdict;
            (verdict, thread_live_bytes())
        })
        .collect()
}

#[test]
fn crashed_runs_release_their_memory() {
    const SEEDS: u64 = 24;
    let scenario = canary("store-panic.toml");
    let runs = held_after_each(&scenario, 0..SEEDS);
    let crashes = runs.iter().filter(|(v, _)| *v == Verdict::Crash).count();
    assert!(crashes as u64 >= SEEDS * 3 / 4, "the planted panic crashed only {crashes} of {SEEDS}");
    // After a few runs the thread's lazily built state is in place; from then on what is
    // held must not grow with the runs. A leaking crash held several MB each.
    let settled = runs[3].1;
    let last = runs[runs.len() - 1].1;
    let slack_bytes = 1 << 20;
    assert!(
        last - settled <= slack_bytes,
        "held {settled} bytes after run 4 and {last} after run {SEEDS}: crashed runs leak \
         ({} crashes)",
        crashes
    );
}

#[test]
fn a_run_over_its_memory_budget_is_a_crash() {
    let mut scenario = canary("store-panic.toml");
    scenario.cluster.canary = None;
    scenario.check.memory_budget_mb = 1;
    let report = runner::run(&scenario, 1, &RunOptions::default()).report;
    assert_eq!(report.verdict, Verdict::Crash, "{}", report.summary());
    let message = report.message.unwrap_or_default();
    assert!(message.contains("memory budget exceeded"), "{message}");
}

#[test]
fn a_run_over_its_message_budget_is_a_crash() {
    let mut scenario = canary("store-panic.toml");
    scenario.cluster.canary = None;
    scenario.check.message_budget = 500;
    let report = runner::run(&scenario, 1, &RunOptions::default()).report;
    assert_eq!(report.verdict, Verdict::Crash, "{}", report.summary());
    let message = report.message.unwrap_or_default();
    assert!(message.contains("message budget exceeded"), "{message}");
}
