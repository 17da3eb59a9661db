//! Property tests: generated snapshot-isolated list-append histories pass; one mutated read
//! makes them fail. Proptest prints the failing case (its seed included) to replay it.

use minikv_checker::history::{History, Outcome};
use minikv_checker::report::Validity;
use minikv_checker::si::generate::{ListAppendConfig, list_append};
use minikv_checker::si::{Model, check};
use proptest::prelude::*;
use serde_json::Value;

fn config(seed: u64, txns: usize, processes: usize, keys: usize) -> ListAppendConfig {
    ListAppendConfig {
        seed,
        txn_count: txns,
        process_count: processes,
        active_key_count: keys,
        appends_per_key_max: 8,
        ..ListAppendConfig::default()
    }
}

/// `(op index, micro-op index)` of every ok read, with its list.
fn reads(h: &History) -> Vec<(usize, usize, u64, Vec<Value>)> {
    let mut out = Vec::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| op.outcome == Outcome::Ok) {
        let mops = op.result.as_ref().and_then(Value::as_array).expect("ok txn has micro-ops");
        for (j, m) in mops.iter().enumerate() {
            if m[0] == "r" {
                let list = m[2].as_array().cloned().unwrap_or_default();
                out.push((i, j, m[1].as_u64().expect("integer key"), list));
            }
        }
    }
    out
}

fn set_read(h: &mut History, op: usize, mop: usize, list: Vec<Value>) {
    let result = h.ops[op].result.as_mut().expect("ok txn has a result");
    result[mop][2] = Value::Array(list);
}

/// The ways one read is corrupted.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// Drop a middle element of a read that another read of the key covers.
    DropMiddle,
    /// Insert an element nobody appended.
    Garbage,
    /// Repeat an element.
    Duplicate,
}

/// Applies `m` to some read chosen by `pick`; returns false if no read suits it.
fn mutate(h: &mut History, m: Mutation, pick: usize) -> bool {
    let all = reads(h);
    let candidates: Vec<_> = match m {
        Mutation::DropMiddle => all
            .iter()
            .filter(|(i, _, k, l)| {
                l.len() >= 2
                    && all.iter().any(|(i2, _, k2, l2)| i2 != i && k2 == k && l2.len() >= l.len())
            })
            .collect(),
        Mutation::Garbage => all.iter().collect(),
        Mutation::Duplicate => all.iter().filter(|r| !r.3.is_empty()).collect(),
    };
    if candidates.is_empty() {
        return false;
    }
    let (op, mop, _, list) = candidates[pick % candidates.len()].clone();
    let mut list = list;
    match m {
        Mutation::DropMiddle => {
            list.remove(pick % (list.len() - 1));
        }
        Mutation::Garbage => list.insert(pick % (list.len() + 1), Value::from(1_000_000u64)),
        Mutation::Duplicate => list.push(list[pick % list.len()].clone()),
    }
    set_read(h, op, mop, list);
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_si_histories_pass_strong_si(seed in any::<u64>(), processes in 1usize..8, keys in 1usize..6) {
        // The generator's snapshots are taken at invoke, so its histories are strong SI.
        let h = list_append(&config(seed, 200, processes, keys));
        for model in [Model::SnapshotIsolation, Model::StrongSnapshotIsolation] {
            let v = check(&h, model);
            prop_assert_eq!(v.valid, Validity::Valid, "seed {} {:?}: {:#?}", seed, model, v.anomalies);
        }
    }

    #[test]
    fn serial_histories_pass_strict_serializable(seed in any::<u64>(), keys in 1usize..6) {
        let h = list_append(&config(seed, 150, 1, keys));
        for model in [Model::StrictSerializable, Model::StrongSnapshotIsolation] {
            let v = check(&h, model);
            prop_assert_eq!(v.valid, Validity::Valid, "seed {} {:?}: {:#?}", seed, model, v.anomalies);
        }
    }

    #[test]
    fn one_mutated_read_fails_si(
        seed in any::<u64>(),
        processes in 1usize..6,
        which in 0usize..3,
        pick in any::<usize>(),
    ) {
        let mut h = list_append(&config(seed, 150, processes, 3));
        let m = [Mutation::DropMiddle, Mutation::Garbage, Mutation::Duplicate][which];
        prop_assume!(mutate(&mut h, m, pick));
        let v = check(&h, Model::SnapshotIsolation);
        prop_assert_eq!(v.valid, Validity::Invalid, "seed {} {:?} pick {}", seed, m, pick);
    }
}

#[test]
fn generator_produces_concurrency_aborts_and_indeterminate_txns() {
    let h = list_append(&config(7, 2000, 10, 5));
    let count = |o: Outcome| h.ops.iter().filter(|op| op.outcome == o).count();
    assert_eq!(h.ops.len(), 2000);
    assert!(count(Outcome::Fail) > 20, "fails: {}", count(Outcome::Fail));
    assert!(count(Outcome::Indeterminate) > 5, "info: {}", count(Outcome::Indeterminate));
    // Concurrent SI histories usually contain write skew, which serializability forbids.
    let v = check(&list_append(&config(7, 2000, 10, 2)), Model::Serializable);
    assert_eq!(v.valid, Validity::Invalid, "expected some G2-item in a concurrent SI history");
    assert!(v.anomalies.iter().all(|a| a.kind == "G2-item"), "{:#?}", v.anomalies);
}
