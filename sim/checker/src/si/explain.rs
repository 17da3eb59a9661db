//! Sentences a person can follow: values, versions and dependency edges in words.

use serde_json::Value;

use super::txns::{TxnIdx, Txns};
use super::{DepEdge, Why, dep};

/// Elements shown from each end of a long list before eliding the middle.
const LIST_ELEMENTS_SHOWN_PER_END: usize = 4;

/// A scalar value as written in histories; `null` reads as `nil`.
pub(crate) fn value(v: &Value) -> String {
    match v {
        Value::Null => "nil".to_string(),
        other => other.to_string(),
    }
}

/// A list version, with the middle elided when long.
pub(crate) fn list(elems: &[Value]) -> String {
    let shown = LIST_ELEMENTS_SHOWN_PER_END;
    let join = |s: &[Value]| s.iter().map(value).collect::<Vec<_>>().join(", ");
    if elems.len() <= 2 * shown + 1 {
        format!("[{}]", join(elems))
    } else {
        format!(
            "[{}, ... {} more ..., {}]",
            join(&elems[..shown]),
            elems.len() - 2 * shown,
            join(&elems[elems.len() - shown..])
        )
    }
}

/// One dependency edge `src -> dst` in words.
pub(crate) fn data_edge(txns: &Txns<'_>, e: &DepEdge<'_>) -> String {
    let (s, d) = (txns.name(e.src), txns.name(e.dst));
    let k = txns.key_name(e.key);
    match e.why {
        Why::ListWw { prev, elem } => {
            format!("{d} appended {} to {k} right after {s}'s {}", value(elem), value(prev))
        }
        Why::ListWwTail { prev, elem } => format!(
            "{d} appended {} to {k}, which no read observed, so it follows {s}'s {}, the last \
             element observed",
            value(elem),
            value(prev)
        ),
        Why::ListWr { version } => {
            let last = version.last().map(value).unwrap_or_default();
            format!("{d} read {k}={}, whose last element {last} {s} appended", list(version))
        }
        Why::ListRw { version, next } => format!(
            "{s} read {k}={} without {}, which {d} appended later in {k}'s order",
            list(version),
            value(next)
        ),
        Why::RegWr { value: v } => format!("{d} read {k}={}, which {s} wrote", value(v)),
        Why::RegWw { old, new } => format!(
            "{d} read {k}={}, written by {s}, and overwrote it with {}",
            value(old),
            value(new)
        ),
        Why::RegRw { old, new } if old.is_null() => format!(
            "{s} read {k}=nil (the initial state), which {d}'s write of {} follows",
            value(new)
        ),
        Why::RegWwDerived { old, new, via } => format!(
            "{d}'s write of {k}={} follows {s}'s {}, since {s} precedes {d} through {} \
             dependencies",
            value(new),
            value(old),
            kinds(via)
        ),
        Why::RegRwDerived { old, new, via } => format!(
            "{s} read {k}={}, a version {d}'s write of {} follows (an order {} dependencies \
             fix)",
            value(old),
            value(new),
            kinds(via)
        ),
        Why::RegWwTried { old, new } => format!(
            "{d}'s write of {k}={} is taken to follow {s}'s {} (nothing in the history orders \
             the two writes)",
            value(new),
            value(old)
        ),
        Why::RegRw { old, new } => {
            format!("{s} read {k}={}, a version {d}'s write of {} follows", value(old), value(new))
        }
    }
}

/// Dependency kinds in words: "write-write, write-read or process".
fn kinds(mask: u8) -> String {
    let names: Vec<&str> = [
        (dep::WW, "write-write"),
        (dep::WR, "write-read"),
        (dep::PROCESS, "process"),
        (dep::REALTIME, "realtime"),
    ]
    .into_iter()
    .filter(|&(k, _)| mask & k != 0)
    .map(|(_, name)| name)
    .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => panic!("no dependency kind in {mask}"),
    }
}

/// A realtime or process edge in words.
pub(crate) fn order_edge(txns: &Txns<'_>, src: TxnIdx, dst: TxnIdx, kind: u8) -> String {
    let (s, d) = (txns.name(src), txns.name(dst));
    let (so, dop) = (txns.op(src), txns.op(dst));
    match kind {
        dep::PROCESS => format!("{s} and then {d} ran on process {}", so.process),
        _ => format!(
            "{s} completed (at {} ns) before {d} began (at {} ns)",
            so.complete_ns.unwrap_or_default(),
            dop.invoke_ns
        ),
    }
}

/// A cycle class's meaning, appended after its witness.
pub(crate) fn class_meaning(class: &str) -> &'static str {
    let base = class.split("-realtime").next().unwrap_or(class);
    let base = base.split("-process").next().unwrap_or(base);
    match base {
        "G0" => "a cycle of write-write dependencies only (write cycle)",
        "G1c" => "a cycle of write-write and write-read dependencies (circular information flow)",
        "G-single" => "a cycle with exactly one anti-dependency (read skew)",
        "G-nonadjacent" => "a cycle with several anti-dependencies, no two of them adjacent",
        _ => "a cycle with adjacent anti-dependencies (write skew)",
    }
}
