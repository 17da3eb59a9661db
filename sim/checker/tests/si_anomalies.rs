//! One hand-written history per anomaly class, checked for the exact anomaly kinds reported.

mod support;

use minikv_checker::history::History;
use minikv_checker::report::{Validity, Verdict};
use minikv_checker::si::{Model, SiConfig, check, check_with};
use support::hist;

/// A transaction invoked and completed at once; `done` is its completion's micro-ops.
fn serial<'a>(p: u64, t: &'a str, invoke: &'a str, done: &'a str) -> [(u64, &'a str, &'a str); 2] {
    [(p, "invoke", invoke), (p, t, done)]
}

fn kinds(v: &Verdict) -> Vec<&str> {
    let mut k: Vec<&str> = v.anomalies.iter().map(|a| a.kind.as_str()).collect();
    k.sort_unstable();
    k
}

/// Checks under `model` and asserts the sorted anomaly kinds; returns the verdict.
fn expect(h: &History, model: Model, expected: &[&str]) -> Verdict {
    let v = check(h, model);
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(kinds(&v), want, "{model:?}: {:#?}", v.anomalies);
    let valid = if expected.is_empty() { Validity::Valid } else { Validity::Invalid };
    assert_eq!(v.valid, valid, "{model:?}: {:#?}", v.anomalies);
    for a in &v.anomalies {
        assert!(!a.explanation.is_empty() && (!a.txns.is_empty() || a.key.is_some()), "{a:?}");
    }
    v
}

fn all_models(h: &History, expected: &[&str]) {
    for m in [
        Model::SnapshotIsolation,
        Model::StrongSnapshotIsolation,
        Model::Serializable,
        Model::StrictSerializable,
    ] {
        expect(h, m, expected);
    }
}

#[test]
fn serial_list_append_is_valid_everywhere() {
    let h = hist(
        &[
            serial(
                0,
                "ok",
                r#"[["append","x",1],["r","y",null]]"#,
                r#"[["append","x",1],["r","y",null]]"#,
            ),
            serial(
                1,
                "ok",
                r#"[["r","x",null],["append","y",1]]"#,
                r#"[["r","x",[1]],["append","y",1]]"#,
            ),
            serial(
                0,
                "ok",
                r#"[["r","x",null],["r","y",null]]"#,
                r#"[["r","x",[1]],["r","y",[1]]]"#,
            ),
        ]
        .concat(),
    );
    all_models(&h, &[]);
}

#[test]
fn g0_write_cycle() {
    // T0 and T1 run concurrently; x orders T0 before T1, y orders T1 before T0.
    let h = hist(&[
        (0, "invoke", r#"[["append","x",1],["append","y",2]]"#),
        (1, "invoke", r#"[["append","x",3],["append","y",4]]"#),
        (0, "ok", r#"[["append","x",1],["append","y",2]]"#),
        (1, "ok", r#"[["append","x",3],["append","y",4]]"#),
        (2, "invoke", r#"[["r","x",null],["r","y",null]]"#),
        (2, "ok", r#"[["r","x",[1,3]],["r","y",[4,2]]]"#),
    ]);
    let v = expect(&h, Model::SnapshotIsolation, &["G0"]);
    assert_eq!(v.anomalies[0].txns, [0, 1]);
    assert!(v.anomalies[0].explanation.contains("T1 appended 3 to x right after T0's 1"), "{v:?}");
}

#[test]
fn g1c_circular_information_flow() {
    let h = hist(&[
        (0, "invoke", r#"[["append","x",1],["r","y",null]]"#),
        (1, "invoke", r#"[["append","y",2],["r","x",null]]"#),
        (0, "ok", r#"[["append","x",1],["r","y",[2]]]"#),
        (1, "ok", r#"[["append","y",2],["r","x",[1]]]"#),
    ]);
    all_models(&h, &["G1c"]);
}

#[test]
fn g_single_read_skew() {
    let h = hist(&[
        (0, "invoke", r#"[["append","x",1],["append","y",1]]"#),
        (1, "invoke", r#"[["r","x",null],["r","y",null]]"#),
        (0, "ok", r#"[["append","x",1],["append","y",1]]"#),
        (1, "ok", r#"[["r","x",[]],["r","y",[1]]]"#),
    ]);
    let v = expect(&h, Model::SnapshotIsolation, &["G-single"]);
    let text = &v.anomalies[0].explanation;
    assert!(text.contains("T1 read x=[] without 1, which T0 appended"), "{text}");
    assert!(text.contains("T1 read y=[1], whose last element 1 T0 appended"), "{text}");
}

#[test]
fn g_nonadjacent() {
    // T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0: two anti-dependencies, not adjacent.
    let h = hist(&[
        (0, "invoke", r#"[["r","a",null],["r","c",null]]"#),
        (1, "invoke", r#"[["append","a",1]]"#),
        (2, "invoke", r#"[["r","a",null],["r","b",null]]"#),
        (3, "invoke", r#"[["append","b",1],["append","c",1]]"#),
        (1, "ok", r#"[["append","a",1]]"#),
        (3, "ok", r#"[["append","b",1],["append","c",1]]"#),
        (0, "ok", r#"[["r","a",[]],["r","c",[1]]]"#),
        (2, "ok", r#"[["r","a",[1]],["r","b",[]]]"#),
    ]);
    let v = expect(&h, Model::SnapshotIsolation, &["G-nonadjacent"]);
    let mut txns = v.anomalies[0].txns.clone();
    txns.sort_unstable();
    assert_eq!(txns, [0, 1, 2, 3]);
    expect(&h, Model::Serializable, &["G-nonadjacent"]);
}

#[test]
fn write_skew_passes_si_and_fails_serializable() {
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["r","y",null],["append","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["r","y",null],["append","y",1]]"#),
        (0, "ok", r#"[["r","x",[]],["r","y",[]],["append","x",1]]"#),
        (1, "ok", r#"[["r","x",[]],["r","y",[]],["append","y",1]]"#),
    ]);
    expect(&h, Model::SnapshotIsolation, &[]);
    expect(&h, Model::StrongSnapshotIsolation, &[]);
    expect(&h, Model::Serializable, &["G2-item"]);
    expect(&h, Model::StrictSerializable, &["G2-item"]);
}

#[test]
fn register_write_skew_passes_si_and_fails_serializable() {
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["r","y",null],["w","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["r","y",null],["w","y",2]]"#),
        (0, "ok", r#"[["r","x",null],["r","y",null],["w","x",1]]"#),
        (1, "ok", r#"[["r","x",null],["r","y",null],["w","y",2]]"#),
    ]);
    expect(&h, Model::SnapshotIsolation, &[]);
    let v = expect(&h, Model::Serializable, &["G2-item"]);
    assert!(v.anomalies[0].explanation.contains("(the initial state)"), "{v:?}");
}

#[test]
fn g1a_aborted_read() {
    let h = hist(
        &[
            serial(0, "fail", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[1]]]"#),
        ]
        .concat(),
    );
    let v = expect(&h, Model::SnapshotIsolation, &["G1a"]);
    assert_eq!(v.anomalies[0].txns, [1, 0]);
    assert_eq!(v.anomalies[0].key.as_deref(), Some("x"));
}

#[test]
fn indeterminate_writes_may_be_read() {
    let h = hist(&[
        (0, "invoke", r#"[["append","x",1]]"#),
        (0, "info", r#"[["append","x",1]]"#),
        (1, "invoke", r#"[["r","x",null]]"#),
        (1, "ok", r#"[["r","x",[1]]]"#),
    ]);
    all_models(&h, &[]);
}

#[test]
fn g1b_intermediate_read() {
    let h = hist(&[
        (0, "invoke", r#"[["append","x",1],["append","x",2]]"#),
        (1, "invoke", r#"[["r","x",null]]"#),
        (1, "ok", r#"[["r","x",[1]]]"#),
        (0, "ok", r#"[["append","x",1],["append","x",2]]"#),
    ]);
    // Reading T0's intermediate state also closes a cycle: T0 -wr-> T1 -rw-> T0.
    let v = expect(&h, Model::SnapshotIsolation, &["G1b", "G-single"]);
    let g1b = v.anomalies.iter().find(|a| a.kind == "G1b").expect("G1b reported");
    assert_eq!(g1b.txns, [1, 0]);
}

#[test]
fn register_g1a_g1b_and_garbage() {
    let h = hist(
        &[
            serial(0, "fail", r#"[["w","x",1]]"#, r#"[["w","x",1]]"#),
            serial(1, "ok", r#"[["r","x",null]]"#, r#"[["r","x",1]]"#),
            serial(2, "ok", r#"[["w","y",1],["w","y",2]]"#, r#"[["w","y",1],["w","y",2]]"#),
            serial(3, "ok", r#"[["r","y",null],["r","z",null]]"#, r#"[["r","y",1],["r","z",7]]"#),
        ]
        .concat(),
    );
    expect(&h, Model::SnapshotIsolation, &["G1a", "G1b", "garbage-read"]);
}

#[test]
fn internal_inconsistency() {
    let h = hist(&serial(
        0,
        "ok",
        r#"[["r","x",null],["append","x",1],["r","x",null]]"#,
        r#"[["r","x",[]],["append","x",1],["r","x",[]]]"#,
    ));
    expect(&h, Model::SnapshotIsolation, &["internal"]);
    let h =
        hist(&serial(0, "ok", r#"[["w","x",1],["r","x",null]]"#, r#"[["w","x",1],["r","x",2]]"#));
    expect(&h, Model::SnapshotIsolation, &["internal"]);
}

#[test]
fn own_append_seen_twice_is_internal() {
    let h = hist(&serial(
        0,
        "ok",
        r#"[["append","x",1],["r","x",null]]"#,
        r#"[["append","x",1],["r","x",[1,1]]]"#,
    ));
    expect(&h, Model::SnapshotIsolation, &["internal"]);
}

#[test]
fn read_your_own_appends_is_fine() {
    let h = hist(&serial(
        0,
        "ok",
        r#"[["append","x",1],["r","x",null],["append","x",2],["r","x",null]]"#,
        r#"[["append","x",1],["r","x",[1]],["append","x",2],["r","x",[1,2]]]"#,
    ));
    all_models(&h, &[]);
}

#[test]
fn duplicate_elements() {
    let h = hist(
        &[
            serial(0, "ok", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[1,1]]]"#),
        ]
        .concat(),
    );
    expect(&h, Model::SnapshotIsolation, &["duplicate-elements"]);
}

#[test]
fn incompatible_order() {
    let h = hist(
        &[
            serial(0, "ok", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["append","x",2]]"#, r#"[["append","x",2]]"#),
            serial(2, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[1,2]]]"#),
            serial(3, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[2,1]]]"#),
        ]
        .concat(),
    );
    let v = expect(&h, Model::SnapshotIsolation, &["incompatible-order"]);
    assert_eq!(v.anomalies[0].txns, [2, 3]);
}

#[test]
fn garbage_read() {
    let h = hist(&serial(0, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[9]]]"#));
    let v = expect(&h, Model::SnapshotIsolation, &["garbage-read"]);
    assert!(v.anomalies[0].explanation.contains("containing 9, which no transaction appended"));
}

#[test]
fn lost_update_list() {
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["append","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["append","x",2]]"#),
        (0, "ok", r#"[["r","x",[]],["append","x",1]]"#),
        (1, "ok", r#"[["r","x",[]],["append","x",2]]"#),
        (2, "invoke", r#"[["r","x",null]]"#),
        (2, "ok", r#"[["r","x",[1,2]]]"#),
    ]);
    let v = expect(&h, Model::SnapshotIsolation, &["lost-update", "G-single"]);
    let lost = v.anomalies.iter().find(|a| a.kind == "lost-update").expect("reported");
    assert_eq!(lost.txns, [0, 1]);
}

#[test]
fn lost_update_register() {
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["w","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["w","x",2]]"#),
        (0, "ok", r#"[["r","x",null],["w","x",1]]"#),
        (1, "ok", r#"[["r","x",null],["w","x",2]]"#),
    ]);
    // Whichever order the two writes take, the later one's writer read the initial state the
    // earlier one overwrote: a G-single too, as for lists.
    expect(&h, Model::SnapshotIsolation, &["lost-update", "G-single"]);
    expect(&h, Model::Serializable, &["lost-update", "G2-item"]);
}

#[test]
fn dirty_update() {
    let h = hist(
        &[
            serial(0, "fail", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["append","x",2]]"#, r#"[["append","x",2]]"#),
            serial(2, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[1,2]]]"#),
        ]
        .concat(),
    );
    let v = expect(&h, Model::SnapshotIsolation, &["G1a", "dirty-update"]);
    let dirty = v.anomalies.iter().find(|a| a.kind == "dirty-update").expect("reported");
    assert_eq!(dirty.txns, [0, 1]);
}

#[test]
fn stale_read_is_si_but_not_strong_si() {
    // T0 commits x=[1]; T1, on another process, begins afterwards and still reads x=[].
    let h = hist(
        &[
            serial(0, "ok", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[]]]"#),
        ]
        .concat(),
    );
    expect(&h, Model::SnapshotIsolation, &[]);
    expect(&h, Model::Serializable, &[]);
    let v = expect(&h, Model::StrongSnapshotIsolation, &["G-single-realtime"]);
    assert!(
        v.anomalies[0].explanation.contains("T0 completed (at 10 ns) before T1 began (at 20 ns)")
    );
    expect(&h, Model::StrictSerializable, &["G-single-realtime"]);
}

#[test]
fn stale_read_on_one_process_is_a_process_anomaly() {
    let h = hist(
        &[
            serial(0, "ok", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(0, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[]]]"#),
        ]
        .concat(),
    );
    expect(&h, Model::SnapshotIsolation, &[]);
    expect(&h, Model::StrongSnapshotIsolation, &["G-single-process"]);
}

#[test]
fn realtime_write_order_inversion_is_g0_realtime() {
    let h = hist(
        &[
            serial(0, "ok", r#"[["append","x",1]]"#, r#"[["append","x",1]]"#),
            serial(1, "ok", r#"[["append","x",2]]"#, r#"[["append","x",2]]"#),
            serial(2, "ok", r#"[["r","x",null]]"#, r#"[["r","x",[2,1]]]"#),
        ]
        .concat(),
    );
    expect(&h, Model::SnapshotIsolation, &[]);
    expect(&h, Model::StrongSnapshotIsolation, &["G0-realtime"]);
}

#[test]
fn realtime_write_skew_is_allowed_by_strong_si_only() {
    // Write skew, then a later reader: strong SI allows G2-item even with realtime edges.
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["r","y",null],["append","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["r","y",null],["append","y",1]]"#),
        (0, "ok", r#"[["r","x",[]],["r","y",[]],["append","x",1]]"#),
        (1, "ok", r#"[["r","x",[]],["r","y",[]],["append","y",1]]"#),
        (2, "invoke", r#"[["r","x",null],["r","y",null]]"#),
        (2, "ok", r#"[["r","x",[1]],["r","y",[1]]]"#),
    ]);
    expect(&h, Model::StrongSnapshotIsolation, &[]);
    expect(&h, Model::StrictSerializable, &["G2-item"]);
}

#[test]
fn malformed_micro_op_is_unknown() {
    let h = hist(&serial(0, "ok", r#"[["read","x",null]]"#, r#"[["read","x",1]]"#));
    let v = check(&h, Model::SnapshotIsolation);
    assert_eq!(v.valid, Validity::Unknown);
    assert_eq!(kinds(&v), ["malformed-txn"]);
}

#[test]
fn integer_keys_are_accepted() {
    let h = hist(
        &[
            serial(0, "ok", r#"[["append",1,1]]"#, r#"[["append",1,1]]"#),
            serial(1, "ok", r#"[["r",1,null]]"#, r#"[["r",1,[1]]]"#),
        ]
        .concat(),
    );
    all_models(&h, &[]);
}

#[test]
fn an_exhausted_search_budget_is_unknown_not_valid() {
    let h = hist(&[
        (0, "invoke", r#"[["r","x",null],["r","y",null],["append","x",1]]"#),
        (1, "invoke", r#"[["r","x",null],["r","y",null],["append","y",1]]"#),
        (0, "ok", r#"[["r","x",[]],["r","y",[]],["append","x",1]]"#),
        (1, "ok", r#"[["r","x",[]],["r","y",[]],["append","y",1]]"#),
    ]);
    let tiny = SiConfig { cycle_search_edge_visits_max: 0, ..SiConfig::default() };
    let v = check_with(&h, Model::SnapshotIsolation, &tiny);
    assert_eq!(v.valid, Validity::Unknown);
    assert_eq!(kinds(&v), ["search-budget-exhausted"]);
    assert_eq!(
        check_with(&h, Model::SnapshotIsolation, &SiConfig::default()).valid,
        Validity::Valid
    );
}

#[test]
fn anomalies_beyond_the_cap_are_counted() {
    let mut events = Vec::new();
    let reads: Vec<(String, String)> = (0..5)
        .map(|k| (format!(r#"[["r","x{k}",null]]"#), format!(r#"[["r","x{k}",[9]]]"#)))
        .collect();
    for (p, (invoke, done)) in reads.iter().enumerate() {
        events.extend(serial(p as u64, "ok", invoke, done));
    }
    let capped = SiConfig { anomalies_per_kind_max: 2, ..SiConfig::default() };
    let v = check_with(&hist(&events), Model::SnapshotIsolation, &capped);
    assert_eq!(kinds(&v), ["garbage-read", "garbage-read"]);
    assert!(v.anomalies[1].explanation.ends_with("(3 more garbage-read anomalies not shown.)"));
}
