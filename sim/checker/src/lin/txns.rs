//! Transactions beside register operations: which histories mix them soundly, and the per-key
//! projection that lets the register checker judge multi-key operations of a store that
//! promises each key linearizable (minikv's raw batches and scans).
//!
//! A transaction `[["w","a",1],["r","b",null]]` invoked at `t0` and completed at `t1` is, seen
//! from key `a` alone, a write of 1 in `[t0, t1]`, and from `b` alone a read; if the store is
//! linearizable per key, every such projection is. The converse does not hold (a batch seen
//! half applied is linearizable key by key), so the projection complements a transactional
//! check, it does not replace one.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::history::{History, Op, OpFn, Outcome};
use crate::report::Anomaly;

/// A micro-op's key as register operations name keys (integers by their decimal text).
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The micro-ops a transaction is judged by: its completion's (reads filled in) when it
/// completed `ok`, else its invoke's.
fn micro_ops(op: &Op) -> &[Value] {
    let source = match (op.outcome, &op.result) {
        (Outcome::Ok, Some(result)) => result,
        _ => &op.value,
    };
    source.as_array().map_or(&[], Vec::as_slice)
}

/// The first transaction that touches a key a register operation also uses, as the anomaly
/// that makes the history `Unknown` to the register checker.
pub(crate) fn txn_on_register_key(history: &History) -> Option<Anomaly> {
    let txns = history.ops.iter().filter(|op| op.f == OpFn::Txn);
    // Most histories hold no transaction: then there is nothing to compare.
    txns.clone().next()?;
    let register_keys: BTreeSet<&str> = history
        .ops
        .iter()
        .filter(|op| op.f != OpFn::Txn)
        .filter_map(|op| op.key.as_deref())
        .collect();
    for op in txns {
        for mop in micro_ops(op) {
            let key = mop.as_array().and_then(|m| m.get(1)).and_then(key_text);
            if let Some(key) = key.filter(|k| register_keys.contains(k.as_str())) {
                return Some(Anomaly {
                    kind: "unsupported".to_string(),
                    key: Some(key.clone()),
                    txns: vec![op.id],
                    explanation: format!(
                        "op {} on line {} is a transaction on key {key:?}, which register \
                         operations also use; linearizability covers register operations only",
                        op.id, op.invoke_line
                    ),
                });
            }
        }
    }
    None
}

/// Every transaction of `history` as single-key register operations, one per micro-op, each
/// with the transaction's id, process, interval, outcome and lines (so that reports name the
/// history's operations; the ids are not dense): a write
/// (`null`: a delete) for `["w", k, v]`, a read for `["r", k, v]` of a transaction that
/// completed `ok` (an unfinished or failed read tells nothing). Other operations are left
/// out. Errors name the transaction: list appends have no register counterpart, and a
/// transaction that uses one key twice has no single-operation projection on it.
pub fn project_txns(history: &History) -> Result<History, String> {
    let mut ops = Vec::new();
    for op in history.ops.iter().filter(|op| op.f == OpFn::Txn) {
        let mut keys: Vec<String> = Vec::new();
        for mop in micro_ops(op) {
            let bad = || format!("T{} (line {}): micro-op {mop}", op.id, op.invoke_line);
            let Some([f, key, value]) = mop.as_array().map(Vec::as_slice) else {
                return Err(format!("{} is not [f, key, value]", bad()));
            };
            let key = key_text(key).ok_or_else(|| format!("{}: the key is not a name", bad()))?;
            if keys.contains(&key) {
                return Err(format!("{}: the transaction uses key {key:?} twice", bad()));
            }
            keys.push(key.clone());
            let (f, value, result) = match f.as_str() {
                Some("w") => (OpFn::Write, value.clone(), Some(value.clone())),
                Some("r") if op.outcome == Outcome::Ok => {
                    (OpFn::Read, Value::Null, Some(value.clone()))
                }
                Some("r") => continue,
                _ => return Err(format!("{}: only \"r\" and \"w\" project onto a key", bad())),
            };
            ops.push(Op {
                id: op.id,
                process: op.process,
                f,
                key: Some(key),
                value,
                result,
                outcome: op.outcome,
                invoke_ns: op.invoke_ns,
                complete_ns: op.complete_ns,
                invoke_line: op.invoke_line,
                complete_line: op.complete_line,
            });
        }
    }
    Ok(History { ops })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lin;
    use crate::parse_history;
    use crate::report::Validity;

    /// A history from `(process, type, f, key, value)` events, 10 ns apart; `key` "" for txns.
    fn hist(events: &[(u64, &str, &str, &str, &str)]) -> History {
        let text: Vec<String> = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, k, v))| {
                let key = if k.is_empty() { String::new() } else { format!(r#""key":"{k}","#) };
                format!(
                    r#"{{"process":{p},"type":"{t}","f":"{f}",{key}"value":{v},"time":{}}}"#,
                    10 * i
                )
            })
            .collect();
        parse_history(&text.join("\n")).expect("test history parses")
    }

    fn projected(h: &History) -> Validity {
        lin::check(&project_txns(h).expect("projects")).valid
    }

    #[test]
    fn register_ops_beside_txns_on_other_keys_are_checked() {
        let stale = hist(&[
            (0, "invoke", "write", "x", "1"),
            (0, "ok", "write", "x", "1"),
            (1, "invoke", "txn", "", r#"[["w","y",5]]"#),
            (1, "ok", "txn", "", r#"[["w","y",5]]"#),
            (0, "invoke", "read", "x", "null"),
            (0, "ok", "read", "x", "null"),
        ]);
        let report = lin::check_with(&stale, &lin::LinConfig::default());
        assert_eq!(report.verdict.valid, Validity::Invalid, "{:?}", report.verdict);
        assert_eq!(report.keys, 1, "the txn's key is not a register key");
        let on_x = hist(&[
            (0, "invoke", "write", "x", "1"),
            (0, "ok", "write", "x", "1"),
            (1, "invoke", "txn", "", r#"[["w","x",5]]"#),
            (1, "ok", "txn", "", r#"[["w","x",5]]"#),
        ]);
        let verdict = lin::check(&on_x);
        assert_eq!(verdict.valid, Validity::Unknown);
        assert_eq!(verdict.anomalies[0].kind, "unsupported");
        assert_eq!(verdict.anomalies[0].key.as_deref(), Some("x"));
    }

    #[test]
    fn a_read_of_a_deleted_value_is_not_linearizable() {
        let resurrected = hist(&[
            (0, "invoke", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (0, "ok", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (1, "invoke", "txn", "", r#"[["w","a",null]]"#),
            (1, "ok", "txn", "", r#"[["w","a",null]]"#),
            (2, "invoke", "txn", "", r#"[["r","a",null],["r","b",null]]"#),
            (2, "ok", "txn", "", r#"[["r","a",1],["r","b",1]]"#),
        ]);
        assert_eq!(projected(&resurrected), Validity::Invalid);
        let mut deleted = resurrected.clone();
        deleted.ops[2].result = Some(serde_json::json!([["r", "a", null], ["r", "b", 1]]));
        assert_eq!(projected(&deleted), Validity::Valid);
    }

    #[test]
    fn a_stale_read_of_one_key_is_not_linearizable() {
        let stale = hist(&[
            (0, "invoke", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (0, "ok", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (2, "invoke", "txn", "", r#"[["r","a",null],["r","b",null]]"#),
            (2, "ok", "txn", "", r#"[["r","a",1],["r","b",null]]"#),
        ]);
        assert_eq!(projected(&stale), Validity::Invalid);
    }

    #[test]
    fn unfinished_writes_stay_open_and_unfinished_reads_vanish() {
        let h = hist(&[
            (0, "invoke", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (0, "info", "txn", "", r#"[["w","a",1],["w","b",1]]"#),
            (1, "invoke", "txn", "", r#"[["r","a",null]]"#),
            (1, "fail", "txn", "", r#"[["r","a",null]]"#),
            (2, "invoke", "txn", "", r#"[["r","a",null],["r","b",null]]"#),
            (2, "ok", "txn", "", r#"[["r","a",1],["r","b",null]]"#),
        ]);
        let p = project_txns(&h).expect("projects");
        assert_eq!(p.ops.len(), 4, "{:?}", p.ops);
        assert!(p.ops[..2].iter().all(|o| o.outcome == Outcome::Indeterminate));
        assert_eq!(lin::check(&p).valid, Validity::Valid);
    }

    #[test]
    fn appends_and_repeated_keys_do_not_project() {
        let append = hist(&[(0, "invoke", "txn", "", r#"[["append","a",1]]"#)]);
        assert!(project_txns(&append).unwrap_err().contains("only \"r\" and \"w\""));
        let twice = hist(&[(0, "invoke", "txn", "", r#"[["r","a",null],["w","a",2]]"#)]);
        assert!(project_txns(&twice).unwrap_err().contains("twice"));
    }
}
