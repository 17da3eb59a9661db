//! Hand-written histories for future reads, register write orders derived from the
//! dependencies between writers, the search over write orders nothing fixes, and the session
//! models; each checked for its exact verdict and anomaly kinds. Last, generated snapshot-
//! isolated register histories with blind writes must pass, and quickly.

mod support;

use minikv_checker::history::{History, Op, OpFn, Outcome};
use minikv_checker::report::{Validity, Verdict};
use minikv_checker::si::{Model, SiConfig, check, check_with};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use support::hist;

/// Transactions that all run concurrently: every invoke, then every completion.
fn concurrent(txns: &[(u64, &str)]) -> History {
    let mut events: Vec<(u64, &str, &str)> = txns.iter().map(|&(p, v)| (p, "invoke", v)).collect();
    events.extend(txns.iter().map(|&(p, v)| (p, "ok", v)));
    hist(&events)
}

/// Transactions one after another (each completes before the next is invoked).
fn serial(txns: &[(u64, &str)]) -> History {
    let events: Vec<(u64, &str, &str)> =
        txns.iter().flat_map(|&(p, v)| [(p, "invoke", v), (p, "ok", v)]).collect();
    hist(&events)
}

fn kinds(v: &Verdict) -> Vec<&str> {
    let mut k: Vec<&str> = v.anomalies.iter().map(|a| a.kind.as_str()).collect();
    k.sort_unstable();
    k
}

/// Checks under `model` with `config` and asserts the verdict and sorted anomaly kinds.
fn expect_with(
    h: &History,
    model: Model,
    config: &SiConfig,
    valid: Validity,
    expected: &[&str],
) -> Verdict {
    let v = check_with(h, model, config);
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(kinds(&v), want, "{model:?}: {:#?}", v.anomalies);
    assert_eq!(v.valid, valid, "{model:?}: {:#?}", v.anomalies);
    v
}

/// Checks under `model` and asserts the sorted anomaly kinds (none: valid).
fn expect(h: &History, model: Model, expected: &[&str]) -> Verdict {
    let valid = if expected.is_empty() { Validity::Valid } else { Validity::Invalid };
    expect_with(h, model, &SiConfig::default(), valid, expected)
}

fn all_models(h: &History, expected: &[&str]) {
    for m in Model::ALL {
        expect(h, m, expected);
    }
}

// ---- future reads and internal consistency ----

#[test]
fn reading_your_own_later_append_is_a_future_read() {
    let h = serial(&[(0, r#"[["r","x",[1]],["append","x",1]]"#)]);
    all_models(&h, &["future-read"]);
    let v = check(&h, Model::SnapshotIsolation);
    assert!(v.anomalies[0].explanation.contains("T0 itself appends only later"), "{v:#?}");
    // After an earlier append of its own, a read may end with it but not hold a later one.
    let h = serial(&[(0, r#"[["append","x",1],["r","x",[2,1]],["append","x",2]]"#)]);
    all_models(&h, &["future-read"]);
}

#[test]
fn reading_your_own_later_register_write_is_a_future_read() {
    let h = serial(&[(0, r#"[["r","x",3],["w","x",3]]"#)]);
    all_models(&h, &["future-read"]);
    let h = serial(&[(0, r#"[["r","x",3],["w","x",4],["w","x",3]]"#)]);
    all_models(&h, &["future-read"]);
}

#[test]
fn a_read_after_your_own_write_must_see_it() {
    for case in
        [r#"[["w","x",1],["r","x",null]]"#, r#"[["r","x",null],["w","x",1],["r","x",null]]"#]
    {
        all_models(&serial(&[(0, case)]), &["internal"]);
    }
    for case in [r#"[["append","x",1],["r","x",[]]]"#, r#"[["append","x",1],["r","x",[2]]]"#] {
        all_models(&serial(&[(0, r#"[["append","x",2]]"#), (1, case)]), &["internal"]);
    }
    let fine = serial(&[(0, r#"[["w","x",1],["r","x",1],["w","x",2],["r","x",2]]"#)]);
    all_models(&fine, &[]);
}

// ---- register write orders from the dependencies between their writers ----

/// T0 writes x=1 and y=1; T1 reads T0's y and blindly overwrites x with 2, and writes z;
/// T2 reads T1's z but x=1. T1's x=2 must follow T0's x=1 (T1 saw T0), so T2 read a stale x.
const VISIBLE_WRITER: [(u64, &str); 3] = [
    (0, r#"[["w","x",1],["w","y",1]]"#),
    (1, r#"[["r","y",1],["w","x",2],["w","z",2]]"#),
    (2, r#"[["r","x",1],["r","z",2]]"#),
];

#[test]
fn a_write_that_saw_another_writer_follows_its_version() {
    let h = serial(&VISIBLE_WRITER);
    let v = expect(&h, Model::SnapshotIsolation, &["G-single"]);
    let text = &v.anomalies[0].explanation;
    let why = "T2 read x=1, a version T1's write of 2 follows (an order write-write or write-read \
               dependencies fix)";
    assert!(text.contains(why), "{text}");
    all_models(&h, &["G-single"]);
    // The order is inferred, not searched for: no search step is needed to find the cycle.
    let no_search = SiConfig { version_order_search_steps_max: 0, ..SiConfig::default() };
    expect_with(&h, Model::SnapshotIsolation, &no_search, Validity::Invalid, &["G-single"]);
}

#[test]
fn derived_orders_chain_through_several_writers() {
    // T0 -> T1 -> T2 by what they read; all three blindly write x. T3 reads T2's w=3 and
    // T1's x=2, which T2 overwrote.
    let h = serial(&[
        (0, r#"[["w","x",1],["w","u",1]]"#),
        (1, r#"[["r","u",1],["w","x",2],["w","v",2]]"#),
        (2, r#"[["r","v",2],["w","x",3],["w","w",3]]"#),
        (3, r#"[["r","x",2],["r","w",3]]"#),
    ]);
    let no_search = SiConfig { version_order_search_steps_max: 0, ..SiConfig::default() };
    expect_with(&h, Model::SnapshotIsolation, &no_search, Validity::Invalid, &["G-single"]);
    let fine = serial(&[
        (0, r#"[["w","x",1],["w","u",1]]"#),
        (1, r#"[["r","u",1],["w","x",2],["w","v",2]]"#),
        (2, r#"[["r","v",2],["w","x",3],["w","w",3]]"#),
        (3, r#"[["r","x",3],["r","w",3]]"#),
    ]);
    all_models(&fine, &[]);
}

/// T0 then T1 on process 0 blindly write x; T2, on process 1, sees T1's z but T0's x.
const SESSION_STALE: [(u64, &str); 3] = [
    (0, r#"[["w","x",1]]"#),
    (0, r#"[["w","x",2],["w","z",2]]"#),
    (1, r#"[["r","x",1],["r","z",2]]"#),
];

#[test]
fn process_order_orders_writes_for_session_models_only() {
    let h = serial(&SESSION_STALE);
    // Without session order T1's write may precede T0's: nothing is wrong.
    expect(&h, Model::SnapshotIsolation, &[]);
    expect(&h, Model::Serializable, &[]);
    // A session sees its own writes in order: T0's x=1 precedes T1's x=2, so T2 read stale x.
    let v = expect(&h, Model::StrongSessionSnapshotIsolation, &["G-single-process"]);
    assert!(v.anomalies[0].explanation.contains("write-write, write-read or process"), "{v:#?}");
    expect(&h, Model::StrongSessionSerializable, &["G-single-process"]);
    // The strong models order by process too, and name the anomaly by the weaker order.
    expect(&h, Model::StrongSnapshotIsolation, &["G-single-process"]);
    expect(&h, Model::StrictSerializable, &["G-single-process"]);
    // On two processes, only the realtime models order the writes.
    let two = serial(&[SESSION_STALE[0], (3, SESSION_STALE[1].1), SESSION_STALE[2]]);
    expect(&two, Model::StrongSessionSnapshotIsolation, &[]);
    expect(&two, Model::StrongSnapshotIsolation, &["G-single-realtime"]);
}

// ---- the search over write orders nothing fixes ----

/// TiDB's lost update, blind: both read x and y at their initial state, each writes one of
/// them, and both blindly write z. Either order of the z writes closes a G-single.
const BLIND_LOST_UPDATE: [(u64, &str); 2] = [
    (0, r#"[["r","x",null],["r","y",null],["w","x",1],["w","z",1]]"#),
    (1, r#"[["r","x",null],["r","y",null],["w","y",2],["w","z",2]]"#),
];

#[test]
fn a_lost_update_between_blind_writers_is_found() {
    let h = concurrent(&BLIND_LOST_UPDATE);
    for model in [
        Model::SnapshotIsolation,
        Model::StrongSessionSnapshotIsolation,
        Model::StrongSnapshotIsolation,
    ] {
        let v = expect(&h, model, &["G-single"]);
        let text = &v.anomalies[0].explanation;
        assert!(text.contains("Nothing in the history orders all the writes to z"), "{text}");
        assert!(text.contains("(nothing in the history orders the two writes)"), "{text}");
    }
    // Serializability already forbids the write skew on x and y.
    for model in [Model::Serializable, Model::StrongSessionSerializable, Model::StrictSerializable]
    {
        expect(&h, model, &["G2-item"]);
    }
    // Without the blind writes to z it is plain write skew, which SI allows.
    let skew = concurrent(&[
        (0, r#"[["r","x",null],["r","y",null],["w","x",1]]"#),
        (1, r#"[["r","x",null],["r","y",null],["w","y",2]]"#),
    ]);
    expect(&skew, Model::SnapshotIsolation, &[]);
}

#[test]
fn blind_writes_read_out_of_order_fail_under_every_order() {
    // T2 sees T0's x and T1's y: whichever order x and y take, some cycle is forbidden
    // (G-single, or G0 when the two keys disagree).
    let h = concurrent(&[
        (0, r#"[["w","x",1],["w","y",1]]"#),
        (1, r#"[["w","x",2],["w","y",2]]"#),
        (2, r#"[["r","x",1],["r","y",2]]"#),
    ]);
    all_models(&h, &["G-single"]);
    // Seeing both writes of one transaction is fine, whichever it is.
    for reads in [r#"[["r","x",1],["r","y",1]]"#, r#"[["r","x",2],["r","y",2]]"#] {
        let h = concurrent(&[
            (0, r#"[["w","x",1],["w","y",1]]"#),
            (1, r#"[["w","x",2],["w","y",2]]"#),
            (2, reads),
        ]);
        all_models(&h, &[]);
    }
}

/// T0 completes first, so x=1 is tried before x=2; only the other order explains T2's reads.
const SECOND_ORDER_ONLY: [(u64, &str); 3] = [
    (0, r#"[["w","x",1]]"#),
    (1, r#"[["w","x",2],["w","y",2]]"#),
    (2, r#"[["r","x",1],["r","y",2]]"#),
];

#[test]
fn an_order_other_than_the_first_tried_can_explain_the_history() {
    let h = concurrent(&SECOND_ORDER_ONLY);
    all_models(&h, &[]);
    // One step checks the first order only: the search cannot finish, so it says unknown.
    let one_step = SiConfig { version_order_search_steps_max: 1, ..SiConfig::default() };
    let v = expect_with(
        &h,
        Model::SnapshotIsolation,
        &one_step,
        Validity::Unknown,
        &["search-budget-exhausted"],
    );
    assert!(v.anomalies[0].explanation.contains("register write orders"), "{v:#?}");
    // The first order's cycle check needs more than one edge visit.
    let no_edges = SiConfig { cycle_search_edge_visits_max: 1, ..SiConfig::default() };
    expect_with(
        &h,
        Model::SnapshotIsolation,
        &no_edges,
        Validity::Unknown,
        &["search-budget-exhausted"],
    );
}

// ---- generated histories ----

/// A register history that is snapshot-isolated by construction: a small MVCC store where
/// each transaction reads the snapshot at its invoke (plus its own writes) and commits at its
/// completion unless a key it writes was committed since (first committer wins). Writes are
/// blind, of values unique per key; a key retires after `writes_per_key_max` writes.
fn register_history(seed: u64, txn_count: usize, process_count: usize) -> History {
    const ACTIVE_KEYS: u64 = 8;
    const WRITES_PER_KEY_MAX: u64 = 16;
    struct Running {
        op: usize,
        snapshot_seq: u64,
        /// `(key, Some(value))` writes, `(key, None)` reads.
        plan: Vec<(u64, Option<u64>)>,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n;
    // Per key: committed (commit sequence, value), and values handed out.
    let mut versions: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut issued: Vec<u64> = Vec::new();
    let mut active: Vec<u64> = Vec::new();
    for k in 0..ACTIVE_KEYS {
        active.push(k);
        versions.push(Vec::new());
        issued.push(0);
    }
    let mut running: Vec<Option<Running>> = (0..process_count).map(|_| None).collect();
    let mut ops: Vec<Op> = Vec::new();
    let (mut now_ns, mut commit_seq) = (0i64, 0u64);
    let mops = |plan: &[(u64, Option<u64>)], reads: Option<&[Value]>| -> Value {
        let list = plan.iter().enumerate().map(|(i, &(k, w))| match w {
            Some(v) => json!(["w", k, v]),
            None => json!(["r", k, reads.map_or(Value::Null, |r| r[i].clone())]),
        });
        Value::Array(list.collect())
    };
    while ops.len() < txn_count || running.iter().any(Option::is_some) {
        let p = below(process_count as u64) as usize;
        now_ns += 1 + below(50) as i64;
        match running[p].take() {
            None if ops.len() < txn_count => {
                let mut plan = Vec::new();
                for _ in 0..1 + below(4) {
                    let slot = below(ACTIVE_KEYS) as usize;
                    let k = active[slot];
                    if below(2) == 0 {
                        plan.push((k, None));
                        continue;
                    }
                    issued[k as usize] += 1;
                    plan.push((k, Some(issued[k as usize])));
                    if issued[k as usize] >= WRITES_PER_KEY_MAX {
                        active[slot] = versions.len() as u64;
                        versions.push(Vec::new());
                        issued.push(0);
                    }
                }
                ops.push(Op {
                    id: ops.len(),
                    process: p as u64,
                    f: OpFn::Txn,
                    key: None,
                    value: mops(&plan, None),
                    result: None,
                    outcome: Outcome::Indeterminate,
                    invoke_ns: now_ns,
                    complete_ns: None,
                    invoke_line: ops.len() + 1,
                    complete_line: None,
                });
                running[p] = Some(Running { op: ops.len() - 1, snapshot_seq: commit_seq, plan });
            }
            None => {}
            Some(txn) => {
                let conflict = txn.plan.iter().any(|&(k, w)| {
                    w.is_some()
                        && versions[k as usize].last().is_some_and(|v| v.0 > txn.snapshot_seq)
                });
                let info = below(100) == 0;
                let commit = !conflict && below(100) != 0 && (!info || below(2) == 0);
                let mut reads = Vec::new();
                let mut own: Vec<(u64, u64)> = Vec::new();
                for &(k, w) in &txn.plan {
                    let seen = own.iter().rev().find(|o| o.0 == k).map(|o| o.1).or_else(|| {
                        let vs = &versions[k as usize];
                        vs.iter().rev().find(|v| v.0 <= txn.snapshot_seq).map(|v| v.1)
                    });
                    reads.push(json!(seen));
                    if let Some(v) = w {
                        own.push((k, v));
                    }
                }
                let op = &mut ops[txn.op];
                op.complete_line = Some(txn_count + txn.op + 1);
                if info {
                    op.result = Some(op.value.clone());
                } else {
                    op.outcome = if commit { Outcome::Ok } else { Outcome::Fail };
                    op.complete_ns = Some(now_ns);
                    op.result =
                        Some(if commit { mops(&txn.plan, Some(&reads)) } else { op.value.clone() });
                }
                if commit {
                    commit_seq += 1;
                    for &(k, v) in &own {
                        versions[k as usize].push((commit_seq, v));
                    }
                }
            }
        }
    }
    History { ops }
}

#[test]
fn generated_si_register_histories_with_blind_writes_pass() {
    for seed in 0..4 {
        let h = register_history(seed, 3000, 6);
        for model in [
            Model::SnapshotIsolation,
            Model::StrongSessionSnapshotIsolation,
            Model::StrongSnapshotIsolation,
        ] {
            let v = check(&h, model);
            assert_eq!(v.valid, Validity::Valid, "seed {seed} {model:?}: {:#?}", v.anomalies);
        }
    }
}

#[test]
fn a_large_register_history_checks_quickly() {
    let h = register_history(7, 50_000, 20);
    let started = std::time::Instant::now();
    let v = check(&h, Model::SnapshotIsolation);
    assert_eq!(v.valid, Validity::Valid, "{:#?}", v.anomalies);
    let v = check(&h, Model::StrongSnapshotIsolation);
    assert_eq!(v.valid, Validity::Valid, "{:#?}", v.anomalies);
    eprintln!("50,000 register txns, two models: {:?}", started.elapsed());
}
