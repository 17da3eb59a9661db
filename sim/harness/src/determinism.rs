//! Determinism, checked: two runs of the same (scenario, seed) must give the same trace,
//! history and trace hash. `--check-determinism` runs a seed twice; a sweep re-runs a sample
//! of its seeds and every seed that does not pass, and a difference is a verdict of its own.

use crate::RunOutput;

/// How two runs of one (scenario, seed) differ, first difference first (trace, then history,
/// then trace hash); `None` when they do not.
pub fn compare(first: &RunOutput, second: &RunOutput) -> Option<String> {
    if let Some((line, a, b)) = first_difference(&first.trace, &second.trace) {
        Some(format!("NOT deterministic: trace line {line} differs\n  run 1: {a}\n  run 2: {b}"))
    } else if let Some((line, a, b)) = first_difference(&first.history, &second.history) {
        Some(format!("NOT deterministic: history line {line} differs\n  run 1: {a}\n  run 2: {b}"))
    } else if first.report.trace_hash != second.report.trace_hash {
        Some(format!(
            "NOT deterministic: equal traces but trace hashes {} and {}",
            first.report.trace_hash, second.report.trace_hash
        ))
    } else {
        None
    }
}

/// The first line (1-based) where `a` and `b` differ, with both lines (`<end>` past the end).
pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                let show = |l: Option<&str>| l.map_or_else(|| "<end>".to_string(), str::to_string);
                return Some((n, show(x), show(y)));
            }
        }
    }
    unreachable!("the loop returns at the end of the shorter text")
}
