//! The append + register workload on five stores with 1, 5 and 20 clients, without faults and
//! with each fault alone. Replay a failure with the seed it prints (see `common::run_seeded`).

#![cfg(madsim)]

mod common;

use common::{Faults, Scenario, run_scenario, run_seeded};

const FILE: &str = "sim_workload";

fn run(test: &str, seeds: &[u64], clients: u64, run_ms: u64, faults: Faults) {
    run_seeded(test, FILE, seeds, |seed| run_scenario(seed, Scenario { clients, run_ms, faults }));
}

#[test]
fn one_client_no_faults() {
    run("one_client_no_faults", &[1, 2], 1, 2_000, Faults::default());
}

#[test]
fn five_clients_no_faults() {
    run("five_clients_no_faults", &[3], 5, 2_000, Faults::default());
}

#[test]
fn twenty_clients_no_faults() {
    run("twenty_clients_no_faults", &[4], 20, 2_000, Faults::default());
}
