//! Raw batches as transactions (the harness's `batch` workload): a batch seen half applied, two
//! batches seen fractured and a stale scan are not strict serializable; deletes (writes of
//! `null`) make a read of `null` ambiguous, which must never raise a false alarm.

mod support;

use minikv_checker::history::History;
use minikv_checker::report::{Validity, Verdict};
use minikv_checker::si::{Model, check};
use support::hist;

/// Transactions one after another, each invoked and completed at once: `(invoke, done)`.
fn serial(txns: &[(&str, &str)]) -> History {
    let events: Vec<(u64, &str, &str)> = txns
        .iter()
        .enumerate()
        .flat_map(|(p, (invoke, done))| [(p as u64, "invoke", *invoke), (p as u64, "ok", *done)])
        .collect();
    hist(&events)
}

fn strict(h: &History) -> Verdict {
    check(h, Model::StrictSerializable)
}

const BATCH_1: &str = r#"[["w","a",1],["w","b",1]]"#;
const BATCH_2: &str = r#"[["w","a",2],["w","b",2]]"#;
const READ_AB: &str = r#"[["r","a",null],["r","b",null]]"#;

#[test]
fn whole_batches_are_valid() {
    let h = serial(&[
        (BATCH_1, BATCH_1),
        (READ_AB, r#"[["r","a",1],["r","b",1]]"#),
        (BATCH_2, BATCH_2),
        (READ_AB, r#"[["r","a",2],["r","b",2]]"#),
    ]);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Valid, "{:#?}", v.anomalies);
}

#[test]
fn a_batch_seen_half_applied_is_invalid() {
    // Concurrent with the batch, the read sees its write of `a` but not of `b`.
    let h = hist(&[
        (0, "invoke", BATCH_1),
        (1, "invoke", READ_AB),
        (1, "ok", r#"[["r","a",1],["r","b",null]]"#),
        (0, "ok", BATCH_1),
    ]);
    for model in [Model::SnapshotIsolation, Model::Serializable, Model::StrictSerializable] {
        let v = check(&h, model);
        assert_eq!(v.valid, Validity::Invalid, "{model:?}: {:#?}", v.anomalies);
    }
}

#[test]
fn two_batches_seen_fractured_are_invalid() {
    let h = serial(&[
        (BATCH_1, BATCH_1),
        (BATCH_2, BATCH_2),
        (READ_AB, r#"[["r","a",1],["r","b",2]]"#),
    ]);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Invalid, "{:#?}", v.anomalies);
}

#[test]
fn a_stale_scan_is_serializable_but_not_strict() {
    let h = serial(&[(BATCH_1, BATCH_1), (READ_AB, r#"[["r","a",null],["r","b",null]]"#)]);
    assert_eq!(check(&h, Model::Serializable).valid, Validity::Valid);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Invalid, "{:#?}", v.anomalies);
}

#[test]
fn a_null_read_after_a_delete_is_valid() {
    let h = serial(&[
        (BATCH_1, BATCH_1),
        (r#"[["w","b",null]]"#, r#"[["w","b",null]]"#),
        (READ_AB, r#"[["r","a",1],["r","b",null]]"#),
    ]);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Valid, "{:#?}", v.anomalies);
}

#[test]
fn fractured_reads_of_a_deleted_key_are_still_caught() {
    let h = serial(&[
        (BATCH_1, BATCH_1),
        (BATCH_2, BATCH_2),
        (READ_AB, r#"[["r","a",1],["r","b",2]]"#),
        (r#"[["w","b",null]]"#, r#"[["w","b",null]]"#),
    ]);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Invalid, "{:#?}", v.anomalies);
}

#[test]
fn a_failed_delete_leaves_null_reads_meaningful() {
    let h = hist(&[
        (0, "invoke", BATCH_1),
        (0, "ok", BATCH_1),
        (1, "invoke", r#"[["w","b",null]]"#),
        (1, "fail", r#"[["w","b",null]]"#),
        (2, "invoke", READ_AB),
        (2, "ok", r#"[["r","a",1],["r","b",null]]"#),
    ]);
    let v = strict(&h);
    assert_eq!(v.valid, Validity::Invalid, "{:#?}", v.anomalies);
}
