//! The append + register workload on five stores under each fault and their combinations:
//! partitions re-drawn every election timeout, 10% message loss, crashes (one store at a time
//! and all at once, losing unsynced data), log GC every 100 entries, membership changes every
//! ~100 ms. Each run checks linearizability, per-client appends, liveness within 10 simulated
//! seconds after the faults stop, and identical replicas. The last run also serves reads from
//! leader leases. Replay a failure with the seed it prints (see `common::run_seeded`).

#![cfg(madsim)]

mod common;

use common::{Faults, Scenario, run_scenario, run_seeded};

const FILE: &str = "sim_faults";
const RUN_MS: u64 = 3_000;

fn run(test: &str, seeds: &[u64], clients: u64, faults: Faults) {
    run_seeded(test, FILE, seeds, |seed| {
        run_scenario(seed, Scenario { clients, run_ms: RUN_MS, faults })
    });
}

#[test]
fn partitions() {
    run("partitions", &[11], 5, Faults { partitions: true, ..Faults::default() });
}

#[test]
fn message_loss() {
    run("message_loss", &[12], 5, Faults { loss: true, ..Faults::default() });
}

#[test]
fn crashes() {
    run("crashes", &[13], 5, Faults { crashes: true, ..Faults::default() });
}

#[test]
fn log_gc() {
    run("log_gc", &[14], 20, Faults { log_gc: true, ..Faults::default() });
}

#[test]
fn membership() {
    run("membership", &[15], 5, Faults { membership: true, ..Faults::default() });
}

#[test]
fn partitions_loss_and_crashes() {
    let faults = Faults { partitions: true, loss: true, crashes: true, ..Faults::default() };
    run("partitions_loss_and_crashes", &[16], 5, faults);
}

#[test]
fn crashes_with_log_gc_and_membership() {
    let faults = Faults { crashes: true, log_gc: true, membership: true, ..Faults::default() };
    run("crashes_with_log_gc_and_membership", &[17], 5, faults);
}

/// Every fault kind at once.
fn everything() -> Faults {
    Faults {
        partitions: true,
        loss: true,
        crashes: true,
        log_gc: true,
        membership: true,
        ..Faults::default()
    }
}

#[test]
fn everything_at_once_one_and_twenty_clients() {
    run("everything_at_once_one_and_twenty_clients", &[18], 1, everything());
    run("everything_at_once_one_and_twenty_clients", &[19], 20, everything());
}

#[test]
fn everything_at_once_with_leader_leases() {
    let faults = Faults { lease_read: true, ..everything() };
    run("everything_at_once_with_leader_leases", &[20], 5, faults);
}
