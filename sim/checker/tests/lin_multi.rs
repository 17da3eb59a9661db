//! Linearizability of transactions as operations on one object (`lin::multi`): one short
//! history per rule, and generated histories of a linearizable object that must pass and fail
//! once one read is changed.

mod support;

use minikv_checker::history::History;
use minikv_checker::lin::multi::{DEFAULT_MAX_STEPS, check_txns};
use minikv_checker::parse_history;
use minikv_checker::report::Validity;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use support::hist;

fn valid(h: &History) -> Validity {
    check_txns(h, DEFAULT_MAX_STEPS).valid
}

const PUT_1: &str = r#"[["w","a",1],["w","b",1]]"#;
const PUT_2: &str = r#"[["w","a",2],["w","b",2]]"#;
const READ: &str = r#"[["r","a",null],["r","b",null]]"#;

#[test]
fn sequential_batches_and_reads() {
    let h = hist(&[
        (0, "invoke", PUT_1),
        (0, "ok", PUT_1),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
        (0, "invoke", r#"[["w","b",null]]"#),
        (0, "ok", r#"[["w","b",null]]"#),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",null]]"#),
    ]);
    assert_eq!(valid(&h), Validity::Valid);
}

#[test]
fn a_half_applied_batch_is_caught() {
    let h = hist(&[
        (0, "invoke", PUT_1),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",null]]"#),
        (0, "ok", PUT_1),
    ]);
    let v = check_txns(&h, DEFAULT_MAX_STEPS);
    assert_eq!(v.valid, Validity::Invalid);
    let text = &v.anomalies[0].explanation;
    assert!(text.contains(r#"cannot be placed"#) && text.contains(r#"["r","b",null]"#), "{text}");
}

#[test]
fn concurrent_batches_seen_fractured_are_caught() {
    let h = hist(&[
        (0, "invoke", PUT_1),
        (1, "invoke", PUT_2),
        (0, "ok", PUT_1),
        (1, "ok", PUT_2),
        (2, "invoke", READ),
        (2, "ok", r#"[["r","a",1],["r","b",2]]"#),
    ]);
    assert_eq!(valid(&h), Validity::Invalid);
    let mut whole = h.clone();
    whole.ops[2].result = Some(serde_json::json!([["r", "a", 1], ["r", "b", 1]]));
    assert_eq!(valid(&whole), Validity::Valid, "either order of the two batches is possible");
}

#[test]
fn two_readers_that_disagree_on_the_order_are_caught() {
    // A long fork: one reader sees the write of `a` and not of `b`, the other the reverse.
    let h = hist(&[
        (0, "invoke", r#"[["w","a",1]]"#),
        (1, "invoke", r#"[["w","b",1]]"#),
        (2, "invoke", READ),
        (3, "invoke", READ),
        (2, "ok", r#"[["r","a",1],["r","b",null]]"#),
        (3, "ok", r#"[["r","a",null],["r","b",1]]"#),
        (0, "ok", r#"[["w","a",1]]"#),
        (1, "ok", r#"[["w","b",1]]"#),
    ]);
    assert_eq!(valid(&h), Validity::Invalid);
}

#[test]
fn stale_and_resurrected_reads_are_caught() {
    let stale =
        hist(&[(0, "invoke", PUT_1), (0, "ok", PUT_1), (1, "invoke", READ), (1, "ok", READ)]);
    assert_eq!(valid(&stale), Validity::Invalid);
    let resurrected = hist(&[
        (0, "invoke", PUT_1),
        (0, "ok", PUT_1),
        (0, "invoke", r#"[["w","a",null]]"#),
        (0, "ok", r#"[["w","a",null]]"#),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
    ]);
    assert_eq!(valid(&resurrected), Validity::Invalid);
}

#[test]
fn indeterminate_writes_take_effect_before_their_first_observer_or_never() {
    let observed_late = hist(&[
        (0, "invoke", PUT_1),
        (0, "info", PUT_1),
        (1, "invoke", READ),
        (1, "ok", READ),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
    ]);
    assert_eq!(valid(&observed_late), Validity::Valid);
    let never =
        hist(&[(0, "invoke", PUT_1), (0, "info", PUT_1), (1, "invoke", READ), (1, "ok", READ)]);
    assert_eq!(valid(&never), Validity::Valid);
    // Observed by a read that returned before the write was invoked.
    let early = hist(&[
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
        (0, "invoke", PUT_1),
        (0, "info", PUT_1),
    ]);
    assert_eq!(valid(&early), Validity::Invalid);
    let failed = hist(&[
        (0, "invoke", PUT_1),
        (0, "fail", PUT_1),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
    ]);
    assert_eq!(valid(&failed), Validity::Invalid, "a failed batch never took effect");
}

#[test]
fn an_indeterminate_delete_may_explain_a_null_read() {
    let h = hist(&[
        (0, "invoke", PUT_1),
        (0, "ok", PUT_1),
        (0, "invoke", r#"[["w","b",null]]"#),
        (0, "info", r#"[["w","b",null]]"#),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",1]]"#),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",null]]"#),
        (1, "invoke", READ),
        (1, "ok", r#"[["r","a",1],["r","b",null]]"#),
    ]);
    assert_eq!(valid(&h), Validity::Valid);
    let mut back = h.clone();
    back.ops[4].result = Some(serde_json::json!([["r", "a", 1], ["r", "b", 1]]));
    assert_eq!(valid(&back), Validity::Invalid, "a delete takes effect once");
}

#[test]
fn malformed_and_budget_are_unknown() {
    let h = hist(&[(0, "invoke", r#"[["append","a",1]]"#), (0, "ok", r#"[["append","a",1]]"#)]);
    let v = check_txns(&h, DEFAULT_MAX_STEPS);
    assert_eq!((v.valid, v.anomalies[0].kind.as_str()), (Validity::Unknown, "malformed-txn"));
    let h = generated(3, 200, 4);
    let v = check_txns(&h, 1);
    assert_eq!(v.valid, Validity::Unknown, "{:?}", v.anomalies);
}

/// One generated operation: who, when, and its micro-ops `(is_write, key, value)`.
struct Gen {
    process: u64,
    call: i64,
    at: i64,
    ret: i64,
    mops: Vec<(bool, u64, Option<u64>)>,
    info: bool,
}

fn mop_json(w: bool, k: u64, v: Option<u64>) -> String {
    let f = if w { "w" } else { "r" };
    format!("[\"{f}\",\"k{k}\",{}]", v.map_or("null".to_string(), |v| v.to_string()))
}

/// A history of a linearizable object: `procs` processes run `ops` operations (batch writes of
/// fresh values, deletes, reads of several keys) over four keys, each taking effect at a
/// random instant inside its interval; one write in ten ends `info`.
fn generated(seed: u64, ops: usize, procs: u64) -> History {
    const KEYS: u64 = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut busy_until = vec![0i64; procs as usize];
    let mut next_value = 0;
    let mut gens = Vec::new();
    for _ in 0..ops {
        let process = rng.next_u64() % procs;
        let call = busy_until[process as usize] + 1 + (rng.next_u64() % 5) as i64;
        let at = call + 1 + (rng.next_u64() % 20) as i64;
        let ret = at + 1 + (rng.next_u64() % 20) as i64;
        busy_until[process as usize] = ret;
        let mut mops: Vec<(bool, u64, Option<u64>)> = match rng.next_u64() % 3 {
            0 => (0..KEYS)
                .filter(|_| rng.next_u64().is_multiple_of(2))
                .map(|k| (false, k, None))
                .collect(),
            1 => vec![(true, rng.next_u64() % KEYS, None)],
            _ => (0..KEYS)
                .filter(|_| rng.next_u64().is_multiple_of(2))
                .map(|k| {
                    next_value += 1;
                    (true, k, Some(next_value))
                })
                .collect(),
        };
        if mops.is_empty() {
            mops.push((false, 0, None));
        }
        let info = mops[0].0 && rng.next_u64().is_multiple_of(10);
        gens.push(Gen { process, call, at, ret, mops, info });
    }
    // Take effect in `at` order, filling in what each read saw.
    let mut order: Vec<usize> = (0..gens.len()).collect();
    order.sort_by_key(|&i| (gens[i].at, i));
    let mut state = [None; KEYS as usize];
    let mut done = vec![String::new(); gens.len()];
    for i in order {
        let mops: Vec<String> = gens[i]
            .mops
            .iter()
            .map(|&(w, k, v)| {
                if w {
                    state[k as usize] = v;
                }
                mop_json(w, k, if w { v } else { state[k as usize] })
            })
            .collect();
        done[i] = format!("[{}]", mops.join(","));
    }
    let mut events: Vec<(i64, String)> = Vec::new();
    for (g, done) in gens.iter().zip(done) {
        let invoke: Vec<String> = g.mops.iter().map(|&(w, k, v)| mop_json(w, k, v)).collect();
        let invoke = format!("[{}]", invoke.join(","));
        let line = |t: &str, time: i64, v: &str| {
            let p = g.process;
            format!(r#"{{"process":{p},"type":"{t}","f":"txn","value":{v},"time":{time}}}"#)
        };
        events.push((g.call, line("invoke", g.call, &invoke)));
        let end = if g.info { line("info", g.ret, &invoke) } else { line("ok", g.ret, &done) };
        events.push((g.ret, end));
    }
    events.sort_by_key(|e| e.0);
    let text: Vec<String> = events.into_iter().map(|e| e.1).collect();
    parse_history(&text.join("\n")).expect("generated histories parse")
}

#[test]
fn generated_histories_pass_and_a_changed_read_fails() {
    let mut caught = 0;
    let mut mutated = 0;
    for seed in 0..20 {
        let h = generated(seed, 200, 2 + seed % 4);
        let v = check_txns(&h, DEFAULT_MAX_STEPS);
        assert_eq!(v.valid, Validity::Valid, "seed {seed}: {:?}", v.anomalies);
        // Make one ok read return a value nobody wrote.
        let mut bad = h.clone();
        let Some(read) = bad.ops.iter_mut().find(|o| {
            o.result.as_ref().is_some_and(|r| r.to_string().starts_with("[[\"r\""))
                && o.outcome == minikv_checker::history::Outcome::Ok
        }) else {
            continue;
        };
        let mut result = read.result.clone().expect("an ok read has a result");
        result[0][2] = serde_json::json!(999_999_999);
        read.result = Some(result);
        mutated += 1;
        if check_txns(&bad, DEFAULT_MAX_STEPS).valid == Validity::Invalid {
            caught += 1;
        }
    }
    assert!(mutated >= 15 && caught == mutated, "caught {caught} of {mutated}");
}

/// A tiny random history, valid or not: `(process, call, ret, micro-ops, outcome)`.
type Tiny = Vec<(i64, i64, Vec<(bool, u64, Option<u64>)>, &'static str)>;

fn tiny(rng: &mut ChaCha8Rng) -> Tiny {
    let n = 2 + rng.next_u64() % 5;
    let mut value = 0;
    (0..n)
        .map(|_| {
            let call = (rng.next_u64() % 20) as i64;
            let ret = call + 1 + (rng.next_u64() % 10) as i64;
            let write = rng.next_u64().is_multiple_of(2);
            let keys: Vec<u64> = (0..2).filter(|_| !rng.next_u64().is_multiple_of(3)).collect();
            let mut mops = Vec::new();
            for k in keys {
                let v = if write {
                    value += 1;
                    (!rng.next_u64().is_multiple_of(4)).then_some(value)
                } else {
                    let v = rng.next_u64() % 4;
                    (v != 0).then_some(v)
                };
                mops.push((write, k, v));
            }
            let outcome = match rng.next_u64() % 6 {
                0 => "info",
                1 => "fail",
                _ => "ok",
            };
            (call, ret, mops, outcome)
        })
        .collect()
}

fn tiny_history(t: &Tiny) -> History {
    let mut events: Vec<(i64, String)> = Vec::new();
    for (p, (call, ret, mops, outcome)) in t.iter().enumerate() {
        let list: Vec<String> = mops.iter().map(|&(w, k, v)| mop_json(w, k, v)).collect();
        let list = format!("[{}]", list.join(","));
        let line = |ty: &str, time: i64| {
            format!(r#"{{"process":{p},"type":"{ty}","f":"txn","value":{list},"time":{time}}}"#)
        };
        events.push((*call, line("invoke", *call)));
        events.push((*ret, line(outcome, *ret)));
    }
    events.sort_by_key(|e| e.0);
    let text: Vec<String> = events.into_iter().map(|e| e.1).collect();
    parse_history(&text.join("\n")).expect("tiny histories parse")
}

/// The definition, by brute force: every ok op and any subset of the info ops, in some order
/// that respects real time (an info op never returns), with every ok op's reads right.
fn brute(t: &Tiny, left: &mut Vec<usize>, state: &mut [Option<u64>; 2]) -> bool {
    if left.iter().all(|&i| t[i].3 != "ok") {
        return true;
    }
    for at in 0..left.len() {
        let i = left[at];
        let blocked = left.iter().any(|&j| j != i && t[j].3 == "ok" && t[j].1 <= t[i].0);
        if blocked {
            continue;
        }
        let saved = *state;
        let mut legal = true;
        for &(w, k, v) in &t[i].2 {
            if w {
                state[k as usize] = v;
            } else if t[i].3 == "ok" && state[k as usize] != v {
                legal = false;
            }
        }
        if legal {
            left.remove(at);
            let found = brute(t, left, state);
            left.insert(at, i);
            if found {
                *state = saved;
                return true;
            }
        }
        *state = saved;
    }
    false
}

#[test]
fn tiny_histories_agree_with_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (mut valid_seen, mut invalid_seen) = (0, 0);
    for case in 0..3000 {
        let t = tiny(&mut rng);
        let mut left: Vec<usize> = (0..t.len()).filter(|&i| t[i].3 != "fail").collect();
        let want = brute(&t, &mut left, &mut [None, None]);
        let got = check_txns(&tiny_history(&t), DEFAULT_MAX_STEPS).valid;
        let want_v = if want { Validity::Valid } else { Validity::Invalid };
        assert_eq!(got, want_v, "case {case}: {t:?}");
        if want { valid_seen += 1 } else { invalid_seen += 1 }
    }
    assert!(valid_seen > 300 && invalid_seen > 300, "{valid_seen} valid, {invalid_seen} invalid");
}
