//! Snapshot tests of short traces: the first lines of the info-level trace of a few scenarios
//! at fixed seeds. A change in behaviour shows up as a diff; review it with
//! `cargo insta review` (see the README) and accept it only if the change was meant.

#![cfg(madsim)]

use minikv_sim::scenario::{self, Scenario};
use minikv_sim::{RunOptions, runner};

/// Lines kept per snapshot: enough to show bootstrap, the first election and the first faults.
const LINES: usize = 60;
/// A trace shorter than this means the run did not get far enough to be worth a snapshot.
const MIN_LINES: usize = 15;

fn head_of_trace(name: &str, seed: u64) -> String {
    let path = scenario::resolve(name, &scenario::scenarios_dir()).unwrap();
    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let out = runner::run(&s, seed, &RunOptions::default());
    let head: Vec<&str> = out.trace.lines().take(LINES).collect();
    assert!(head.len() >= MIN_LINES, "{name}: only {} trace lines", head.len());
    head.join("\n")
}

#[test]
fn basic_seed_7() {
    insta::assert_snapshot!(head_of_trace("basic", 7));
}

#[test]
fn partitions_seed_7() {
    insta::assert_snapshot!(head_of_trace("partitions", 7));
}

#[test]
fn crashes_seed_7() {
    insta::assert_snapshot!(head_of_trace("crashes", 7));
}
