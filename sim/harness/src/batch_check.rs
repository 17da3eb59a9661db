//! The checks of the `batch` workload's history: its raw multi-key operations, recorded as
//! transactions, judged as operations on one object (`batch-atomic`: one region's batch is one
//! Raft command and its scan one read of one snapshot, so every operation must take effect at
//! one instant inside its interval; that is strict serializability, decided by a search rather
//! than inferred) and key by key (`batch-keys`: each key's projection linearizable, which
//! names the key when one goes wrong). Pure functions of the parsed history, so that tests can
//! feed them bad histories; outside `cfg(madsim)` for the same reason.

use minikv_checker::history::{History, OpFn};
use minikv_checker::lin::{self, LinConfig};
use minikv_checker::report::{Validity, Verdict};

use crate::report::CheckResult;

/// Anomalies quoted in a failed check's detail; the rest are counted.
const MAX_QUOTED: usize = 3;
/// Steps the linearizability search may spend on one key's projection. A key sees a few
/// hundred operations per run; a search that needs more is reported, not waited for.
const LIN_STEPS_PER_KEY_MAX: u64 = 20_000_000;

/// The transactions of `history` that touch a key starting with `prefix` (one workload
/// instance's operations), keeping their ids and lines so that reports point into the file.
pub fn instance_txns(history: &History, prefix: &str) -> History {
    let mine = |op: &&minikv_checker::history::Op| {
        op.f == OpFn::Txn
            && op.value.as_array().is_some_and(|mops| {
                mops.iter().any(|m| {
                    m.get(1).and_then(|k| k.as_str()).is_some_and(|k| k.starts_with(prefix))
                })
            })
    };
    History { ops: history.ops.iter().filter(mine).cloned().collect() }
}

/// `batch-atomic`: linearizability of the transactions as operations on one object.
/// `violations` are the workload's own findings (answers that do not answer the request),
/// which fail it too.
pub fn atomic(txns: &History, violations: &[String]) -> CheckResult {
    let verdict = lin::multi::check_txns(txns, lin::multi::DEFAULT_MAX_STEPS);
    let mut result = from_verdict(&verdict, "linearizable as one object");
    if !violations.is_empty() {
        let quoted: Vec<&str> = violations.iter().take(MAX_QUOTED).map(String::as_str).collect();
        let mut detail = format!(
            "{} answers do not answer their request: {}",
            violations.len(),
            quoted.join("; ")
        );
        if let Some(d) = result.detail.take() {
            detail = format!("{detail}; {d}");
        }
        result = CheckResult { valid: false, ms: 0, detail: Some(detail) };
    }
    result
}

/// `batch-keys`: linearizability of every key's projection of the transactions.
pub fn keys(txns: &History) -> CheckResult {
    let projected = match lin::project_txns(txns) {
        Ok(p) => p,
        Err(e) => {
            let detail = Some(format!("the transactions do not project onto keys: {e}"));
            return CheckResult { valid: false, ms: 0, detail };
        }
    };
    let config = LinConfig { max_steps_per_key: LIN_STEPS_PER_KEY_MAX, ..LinConfig::default() };
    from_verdict(&lin::check_with(&projected, &config).verdict, "linearizable per key")
}

fn from_verdict(verdict: &Verdict, model: &str) -> CheckResult {
    let valid = verdict.valid == Validity::Valid;
    let detail = (!valid).then(|| {
        let quoted: Vec<String> = verdict
            .anomalies
            .iter()
            .take(MAX_QUOTED)
            .map(|a| format!("{}: {}", a.kind, a.explanation))
            .collect();
        let more = verdict.anomalies.len().saturating_sub(MAX_QUOTED);
        let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
        format!("{:?} under {model}: {}{more}", verdict.valid, quoted.join("; "))
    });
    CheckResult { valid, ms: 0, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minikv_checker::parse_history;

    /// A history from `(process, type, micro-ops)` events, 10 ns apart.
    fn hist(events: &[(u64, &str, &str)]) -> History {
        let text: Vec<String> = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, v))| {
                format!(r#"{{"process":{p},"type":"{t}","f":"txn","value":{v},"time":{}}}"#, 10 * i)
            })
            .collect();
        parse_history(&text.join("\n")).expect("test history parses")
    }

    const PUT: &str = r#"[["w","p0/b00",1],["w","p0/b01",1]]"#;
    const SCAN: &str = r#"[["r","p0/b00",null],["r","p0/b01",null]]"#;

    fn both(h: &History) -> (bool, bool) {
        (atomic(h, &[]).valid, keys(h).valid)
    }

    #[test]
    fn whole_batches_and_deletes_pass_both() {
        let h = hist(&[
            (0, "invoke", PUT),
            (0, "ok", PUT),
            (1, "invoke", r#"[["w","p0/b01",null]]"#),
            (1, "ok", r#"[["w","p0/b01",null]]"#),
            (2, "invoke", SCAN),
            (2, "ok", r#"[["r","p0/b00",1],["r","p0/b01",null]]"#),
        ]);
        assert_eq!(both(&h), (true, true));
    }

    #[test]
    fn a_half_applied_batch_fails_batch_atomic() {
        let h = hist(&[
            (0, "invoke", PUT),
            (1, "invoke", SCAN),
            (1, "ok", r#"[["r","p0/b00",1],["r","p0/b01",null]]"#),
            (0, "ok", PUT),
        ]);
        let result = atomic(&h, &[]);
        assert!(!result.valid);
        assert!(result.detail.unwrap().contains("as one object"));
        assert!(keys(&h).valid, "each key alone is linearizable");
    }

    #[test]
    fn a_resurrected_value_fails_batch_keys() {
        let h = hist(&[
            (0, "invoke", PUT),
            (0, "ok", PUT),
            (1, "invoke", r#"[["w","p0/b01",null]]"#),
            (1, "ok", r#"[["w","p0/b01",null]]"#),
            (2, "invoke", SCAN),
            (2, "ok", r#"[["r","p0/b00",1],["r","p0/b01",1]]"#),
        ]);
        let result = keys(&h);
        assert!(!result.valid);
        assert!(result.detail.unwrap().contains("p0/b01"));
        assert!(!atomic(&h, &[]).valid);
    }

    #[test]
    fn a_stale_read_fails_both() {
        let h = hist(&[(0, "invoke", PUT), (0, "ok", PUT), (1, "invoke", SCAN), (1, "ok", SCAN)]);
        assert_eq!(both(&h), (false, false));
    }

    #[test]
    fn a_malformed_answer_fails_batch_atomic() {
        let h = hist(&[(0, "invoke", PUT), (0, "ok", PUT)]);
        let result = atomic(&h, &["a scan answered key p0/z".to_string()]);
        assert!(!result.valid);
        assert!(result.detail.unwrap().contains("p0/z"));
    }

    #[test]
    fn instances_are_told_apart_by_prefix() {
        let h = hist(&[
            (0, "invoke", PUT),
            (0, "ok", PUT),
            (1, "invoke", r#"[["w","p1/b00",7]]"#),
            (1, "ok", r#"[["w","p1/b00",7]]"#),
        ]);
        let p1 = instance_txns(&h, "p1/b");
        assert_eq!(p1.ops.len(), 1);
        assert_eq!(p1.ops[0].id, 1, "ids are the history's");
        assert_eq!(instance_txns(&h, "p0/b").ops.len(), 1);
    }
}
