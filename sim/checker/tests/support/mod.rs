//! Helpers the transaction checker's tests share.

use minikv_checker::history::History;
use minikv_checker::parse::parse_history;

/// Builds a history from `(process, type, micro-ops)` events, 10 ns apart.
pub fn hist(events: &[(u64, &str, &str)]) -> History {
    let text: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, (p, t, v))| {
            format!(r#"{{"process":{p},"type":"{t}","f":"txn","value":{v},"time":{}}}"#, 10 * i)
        })
        .collect();
    parse_history(&text.join("\n")).expect("test history parses")
}
