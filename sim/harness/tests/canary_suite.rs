//! The canary suite at its budgets, CI's short version of `cargo xtask canaries`: every
//! planted bug (`minikv_hooks::Canary`) must be caught by the standard sweep (every file in
//! scenarios/, seed-major) within its seed budget in `sim/harness/canaries.toml`, and the
//! scenario and seed that caught it must pass without it. A harness whose checks cannot fail
//! is worthless; this proves on every test run that each one still can.

#![cfg(madsim)]

use minikv_hooks::Canary;
use minikv_sim::canaries::{Budgets, budgets_path, hunt_all};
use minikv_sim::scenario::{self, Scenario};
use minikv_sim::{RunOptions, runner};

#[test]
fn every_canary_is_caught_within_its_budget_and_its_seed_passes_without_it() {
    let budgets = Budgets::load(&budgets_path()).unwrap_or_else(|e| panic!("{e}"));
    let dir = scenario::scenarios_dir();
    let scenarios: Vec<(String, Scenario)> = scenario::list(&dir)
        .unwrap()
        .into_iter()
        .map(|name| {
            let path = scenario::resolve(&name, &dir).unwrap();
            (name, Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect();
    let run = |s: &Scenario, seed| runner::run(s, seed, &RunOptions::default());
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let seeds_of = |c: Canary| budgets.0[&c];
    let hunts = hunt_all(Canary::ALL, &scenarios, &seeds_of, true, jobs, &run, &|_| {});
    let report: Vec<String> = hunts.iter().map(|h| h.line()).collect();
    let failed: Vec<&String> =
        hunts.iter().zip(&report).filter(|(h, _)| !h.ok()).map(|(_, line)| line).collect();
    assert!(
        failed.is_empty(),
        "canaries missed or unconfirmed (cargo xtask canaries --budgets):\n{}\n\nall:\n{}",
        failed.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"),
        report.join("\n")
    );
}
