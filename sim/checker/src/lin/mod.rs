//! Linearizability of register histories, checked key by key (P-compositionality).
//!
//! Each key is a register supporting read, write, append and cas; `prepare` builds its model
//! and `search` looks for a linearization, while `refute` looks for cheaper proofs that there
//! is none. A key whose search runs out of budget is `Unknown`; the history is `Invalid` as
//! soon as one key has no linearization. Transactions on other keys are skipped (`txns`).

pub mod generate;
pub mod multi;
mod prepare;
mod refute;
mod search;
mod txns;

use rustc_hash::FxHashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::history::{History, Op, OpFn, Outcome};
use crate::parse::fn_name;
use crate::report::{Anomaly, Validity, Verdict};

use prepare::{KeyOps, KeyPart};
use refute::Windows;
use search::{Budget, Search, SearchOutcome};

pub use txns::project_txns;

/// Default memory budget for one key's search.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 1 << 30;
/// Default step budget for one key's search (a step is one move tried).
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 200_000_000;

/// Limits and parallelism of a check.
#[derive(Clone, Copy)]
pub struct LinConfig<'a> {
    /// Memory the searches may hold at once, shared by the worker threads.
    pub max_memory_bytes: usize,
    pub max_steps_per_key: u64,
    /// Worker threads for independent keys; 1 (the default) runs on the caller's thread.
    /// The verdict does not depend on it.
    pub threads: usize,
    /// Polled during long searches; returning `true` makes the remaining work `Unknown`
    /// (the command uses it for its wall-clock budget).
    pub should_stop: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// Whether to look for refutations beside the search (`refute`: the value check and
    /// windows). On by default; off, a verdict is the search's alone, which tests of the
    /// refutations' soundness and measurements of what they save need.
    pub refute: bool,
}

impl std::fmt::Debug for LinConfig<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinConfig")
            .field("max_memory_bytes", &self.max_memory_bytes)
            .field("max_steps_per_key", &self.max_steps_per_key)
            .field("threads", &self.threads)
            .field("should_stop", &self.should_stop.is_some())
            .field("refute", &self.refute)
            .finish()
    }
}

impl Default for LinConfig<'_> {
    fn default() -> Self {
        LinConfig {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_steps_per_key: DEFAULT_MAX_STEPS_PER_KEY,
            threads: 1,
            should_stop: None,
            refute: true,
        }
    }
}

/// Why a key is not linearizable, with what a person needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    pub key: Option<String>,
    /// The operation (index into `History::ops`) that no linearization could place.
    pub op: usize,
    /// Operations whose intervals overlap it.
    pub concurrent: Vec<usize>,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<usize>,
    /// Every operation on the key, in invoke order.
    pub key_ops: Vec<usize>,
    pub reason: FailureReason,
}

/// How a key was found not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The search of the whole key found no linearization; `prefix` is the longest it found.
    Search,
    /// `op` reads (or succeeds a cas against) a value that neither the initial value nor any
    /// operation invoked by the time `op` returned could have written. `first_producer` is the
    /// earliest operation that could write it, invoked too late, if there is one.
    Unproduced { first_producer: Option<usize> },
    /// The `ops` definite operations of a window of the key's history, invoked from `from_ns`
    /// and returned by `to_ns`, have no linearization, from any state the register could hold
    /// when the window starts (together with every operation that might take effect inside
    /// it). `prefix` is the longest linearization found within the window.
    Window { from_ns: i64, to_ns: i64, ops: usize },
}

/// What a refutation tells of a failure; `KeyFailure` adds the rest.
#[derive(Debug)]
pub(crate) struct KeyFailureParts {
    pub op: usize,
    pub prefix: Vec<usize>,
    pub reason: FailureReason,
}

/// A full linearizability report: the verdict plus the first failing key's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinReport {
    pub verdict: Verdict,
    pub keys: usize,
    pub failure: Option<KeyFailure>,
}

/// Checks with the default budgets on the caller's thread.
pub fn check(history: &History) -> Verdict {
    check_with(history, &LinConfig::default()).verdict
}

enum KeyResult {
    Valid,
    Invalid(Box<KeyFailure>),
    Unknown {
        steps: u64,
        memory_bytes: usize,
    },
    /// Not finished when another key was found not linearizable.
    Skipped,
}

/// Step limit per key in the first round; each later round multiplies it by `ROUND_GROWTH`.
/// Keys are searched in rounds so that one key that is hard to decide does not hold up the
/// verdict when another key is quickly found not linearizable.
const FIRST_ROUND_STEPS: u64 = 1 << 12;
const ROUND_GROWTH: u64 = 4;

/// Checks every register key; see `LinConfig`. Transactions are left to the transactional
/// checkers (`si`, or `project_txns` for stores that promise per-key linearizability of their
/// multi-key operations) as long as none touches a key the register operations use; a history
/// where one does is `Unknown` ("unsupported"), since the register's value would depend on
/// operations this checker does not model.
pub fn check_with(history: &History, config: &LinConfig<'_>) -> LinReport {
    if let Some(anomaly) = txns::txn_on_register_key(history) {
        let verdict = Verdict { valid: Validity::Unknown, anomalies: vec![anomaly] };
        return LinReport { verdict, keys: 0, failure: None };
    }
    let ops = &history.ops;
    let keys = partition(ops, config.threads);
    let threads = config.threads.max(1).min(keys.len().max(1));
    let budget = Budget {
        max_memory_bytes: config.max_memory_bytes / threads,
        max_steps: config.max_steps_per_key,
        should_stop: config.should_stop,
    };
    let mut results: Vec<Option<KeyResult>> = (0..keys.len()).map(|_| None).collect();
    let mut pending: Vec<Live> =
        (0..keys.len()).map(|slot| Live { slot, search: None, windows: None }).collect();
    let mut limit = FIRST_ROUND_STEPS;
    while !pending.is_empty() {
        let outcomes = run_round(&mut pending, &keys, &budget, limit, threads, config.refute);
        let mut still = Vec::new();
        let mut invalid = false;
        for (live, outcome) in pending.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Advance::Searched(outcome) => outcome,
                Advance::Refuted(parts) => {
                    invalid = true;
                    let failure = failure_from(ops, &keys[live.slot].1, parts);
                    results[live.slot] = Some(KeyResult::Invalid(Box::new(failure)));
                    continue;
                }
            };
            let result = match outcome {
                SearchOutcome::Paused => {
                    still.push(live);
                    continue;
                }
                SearchOutcome::Linearizable => KeyResult::Valid,
                SearchOutcome::Unknown { steps, memory_bytes } => {
                    KeyResult::Unknown { steps, memory_bytes }
                }
                SearchOutcome::NotLinearizable { .. } => {
                    invalid = true;
                    let failure = failure_of(ops, &keys[live.slot].1, &budget);
                    KeyResult::Invalid(Box::new(failure))
                }
            };
            results[live.slot] = Some(result);
        }
        if invalid {
            for live in still.drain(..) {
                results[live.slot] = Some(KeyResult::Skipped);
            }
        }
        // Paused searches hold their caches: give up on the largest until they fit.
        let mut held: usize = still.iter().map(Live::memory_bytes).sum();
        while held > config.max_memory_bytes {
            let (at, _) = still
                .iter()
                .enumerate()
                .max_by_key(|(i, l)| (l.memory_bytes(), std::cmp::Reverse(*i)))
                .expect("memory is held by some search");
            let live = still.remove(at);
            let search = live.search.as_ref().expect("a paused search exists");
            let memory_bytes = search.memory_bytes();
            held -= memory_bytes;
            let steps = search.steps;
            results[live.slot] = Some(KeyResult::Unknown { steps, memory_bytes });
        }
        pending = still;
        limit = limit.saturating_mul(ROUND_GROWTH);
    }
    let results = results.into_iter().map(|r| r.expect("every key has a result")).collect();
    summarize(history, &keys, results)
}

/// A round gives a paused key's windows this fraction (1 / divisor) of the steps its search has
/// taken so far: windows then add at most about a third to the work on a key that has a
/// linearization, and refute a short impossible stretch in a few rounds.
const WINDOW_STEPS_DIVISOR: u64 = 4;

/// What a round did for one key.
enum Advance {
    Searched(SearchOutcome),
    /// A refutation found the key not linearizable.
    Refuted(KeyFailureParts),
}

/// Advances every pending search to `limit` steps, on up to `threads` threads. Before a key's
/// first search it looks for an operation that observes a value nothing could have produced;
/// after each round that leaves the search unfinished, it searches windows of the key's history
/// (see `WINDOW_STEPS_DIVISOR`), so that a key with no linearization
/// is refuted early whenever a short stretch of its history shows it.
fn run_round<'k>(
    pending: &mut [Live<'k>],
    keys: &'k [(Option<&str>, KeyOps)],
    budget: &Budget<'_>,
    limit: u64,
    threads: usize,
    refute: bool,
) -> Vec<Advance> {
    let advance = |live: &mut Live<'k>| {
        let key = &keys[live.slot].1;
        if live.search.is_none() {
            let model = prepare::build(key);
            if let Some(parts) = refute.then(|| refute::unproduced(&model)).flatten() {
                return Advance::Refuted(parts);
            }
            live.search = Some(Search::new(model, false));
        }
        let search = live.search.as_mut().expect("the key's search was just built");
        let outcome = search.run(budget, limit);
        if outcome != SearchOutcome::Paused {
            // Finished: free its tables now rather than at the end of the round.
            live.search = None;
            live.windows = None;
            return Advance::Searched(outcome);
        }
        if !refute {
            return Advance::Searched(outcome);
        }
        let windows = live.windows.get_or_insert_with(|| Windows::new(key));
        if let Some(parts) = windows.refute(budget, limit / WINDOW_STEPS_DIVISOR) {
            live.search = None;
            live.windows = None;
            return Advance::Refuted(parts);
        }
        Advance::Searched(outcome)
    };
    if threads == 1 || pending.len() == 1 {
        return pending.iter_mut().map(advance).collect();
    }
    let next = AtomicUsize::new(0);
    let cells: Vec<Mutex<(&mut Live<'k>, Option<Advance>)>> =
        pending.iter_mut().map(|l| Mutex::new((l, None))).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(cell) = cells.get(i) else { break };
                    let mut cell = cell.lock().expect("no worker panicked");
                    let outcome = advance(cell.0);
                    cell.1 = Some(outcome);
                }
            });
        }
    });
    cells
        .into_iter()
        .map(|c| c.into_inner().expect("no worker panicked").1.expect("every search ran"))
        .collect()
}

fn summarize(
    history: &History,
    keys: &[(Option<&str>, KeyOps)],
    results: Vec<KeyResult>,
) -> LinReport {
    let mut anomalies = Vec::new();
    let mut unknown = Vec::new();
    let mut failure = None;
    for ((key, _), result) in keys.iter().zip(results) {
        match result {
            KeyResult::Valid | KeyResult::Skipped => {}
            KeyResult::Invalid(f) => {
                anomalies.push(Anomaly {
                    kind: "nonlinearizable".to_string(),
                    key: key.map(str::to_string),
                    txns: Vec::new(),
                    explanation: explain(history, &f),
                });
                failure.get_or_insert(*f);
            }
            KeyResult::Unknown { steps, memory_bytes } => unknown.push(Anomaly {
                kind: "unknown".to_string(),
                key: key.map(str::to_string),
                txns: Vec::new(),
                explanation: format!(
                    "{}: the search ran out of budget after {steps} steps holding {} MiB",
                    key_name(*key),
                    memory_bytes >> 20
                ),
            }),
        }
    }
    let valid = if !anomalies.is_empty() {
        Validity::Invalid
    } else if !unknown.is_empty() {
        anomalies = unknown;
        Validity::Unknown
    } else {
        Validity::Valid
    };
    LinReport { verdict: Verdict { valid, anomalies }, keys: keys.len(), failure }
}

/// Stretches of the history shorter than this are grouped by key on one thread.
const MIN_PARTITION_OPS_PER_THREAD: usize = 1 << 16;

/// Groups ops by key, keys in ascending order (the anonymous register first): one pass over
/// the history, in consecutive stretches on up to `threads` threads.
fn partition(ops: &[Op], threads: usize) -> Vec<(Option<&str>, KeyOps)> {
    let threads = threads.clamp(1, (ops.len() / MIN_PARTITION_OPS_PER_THREAD).max(1));
    partition_in(ops, threads)
}

/// `partition` in exactly `threads` stretches.
fn partition_in(ops: &[Op], threads: usize) -> Vec<(Option<&str>, KeyOps)> {
    let stretch = ops.len().div_ceil(threads).max(1);
    let stretches: Vec<Vec<(Option<&str>, KeyPart)>> = if threads == 1 {
        vec![partition_stretch(ops, 0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = ops
                .chunks(stretch)
                .enumerate()
                .map(|(i, chunk)| scope.spawn(move || partition_stretch(chunk, i * stretch)))
                .collect();
            handles.into_iter().map(|h| h.join().expect("a partition thread panicked")).collect()
        })
    };
    let mut slot_of: FxHashMap<Option<&str>, usize> = FxHashMap::default();
    let mut keys: Vec<(Option<&str>, KeyOps)> = Vec::new();
    for (key, part) in stretches.into_iter().flatten() {
        let slot = *slot_of.entry(key).or_insert_with(|| {
            keys.push((key, KeyOps::default()));
            keys.len() - 1
        });
        keys[slot].1.parts.push(part);
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

/// Groups `ops` (the history's ops from index `first` on) by key, keys in first-seen order.
fn partition_stretch(ops: &[Op], first: usize) -> Vec<(Option<&str>, KeyPart)> {
    let mut slot_of: FxHashMap<Option<&str>, usize> = FxHashMap::default();
    let mut keys: Vec<(Option<&str>, KeyPart)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.f == OpFn::Txn {
            continue;
        }
        let key = op.key.as_deref();
        let slot = *slot_of.entry(key).or_insert_with(|| {
            keys.push((key, KeyPart::default()));
            keys.len() - 1
        });
        keys[slot].1.push(first + i, op);
    }
    keys
}

/// A key whose search is not finished: its position in the key list, the search, built when
/// the key is first worked on, and its windows, cut after the first round.
struct Live<'k> {
    slot: usize,
    search: Option<Search>,
    windows: Option<Windows<'k>>,
}

impl Live<'_> {
    fn memory_bytes(&self) -> usize {
        self.search.as_ref().map_or(0, Search::memory_bytes)
            + self.windows.as_ref().map_or(0, Windows::memory_bytes)
    }
}

/// Every refutation `check_with` may use, on every key, run to the end without the search:
/// the value check, then windows of every size from `first_window_ops` up. The first failure
/// found, if any. For tests of their soundness (a refutation must never fire on a key that has
/// a linearization); `check_with` is the checker.
#[doc(hidden)]
pub fn refute_only(history: &History, first_window_ops: usize) -> Option<KeyFailure> {
    let budget = Budget { max_memory_bytes: usize::MAX, max_steps: u64::MAX, should_stop: None };
    partition(&history.ops, 1).iter().find_map(|(_, key)| {
        let parts = refute::unproduced(&prepare::build(key)).or_else(|| {
            let mut windows = Windows::with_first_size(key, first_window_ops);
            windows.refute(&budget, u64::MAX)
        })?;
        Some(failure_from(&history.ops, key, parts))
    })
}

/// Explains a key found not linearizable: searches it again, recording the deepest
/// linearization (the search is deterministic, so it fails the same way).
fn failure_of(ops: &[Op], key_ops: &KeyOps, budget: &Budget<'_>) -> KeyFailure {
    let mut search = Search::new(prepare::build(key_ops), true);
    let SearchOutcome::NotLinearizable { stuck_at } = search.run(budget, u64::MAX) else {
        panic!("a repeated search of the same key gave a different verdict")
    };
    let model = search.model();
    let stuck_def = search.returning_at(stuck_at);
    let prefix = search.best_path_ops();
    let op = model.defs[stuck_def as usize].op_index;
    failure_from(ops, key_ops, KeyFailureParts { op, prefix, reason: FailureReason::Search })
}

fn failure_from(ops: &[Op], key_ops: &KeyOps, parts: KeyFailureParts) -> KeyFailure {
    let KeyFailureParts { op, prefix, reason } = parts;
    let indices = key_ops.indices();
    KeyFailure {
        key: ops[op].key.clone(),
        op,
        concurrent: concurrent_with(ops, &indices, op),
        prefix,
        key_ops: indices,
        reason,
    }
}

/// Operations on the same key whose intervals overlap op `target`'s.
fn concurrent_with(ops: &[Op], indices: &[usize], target: usize) -> Vec<usize> {
    let t = &ops[target];
    let t_end = t.complete_ns.unwrap_or(i64::MAX);
    indices
        .iter()
        .copied()
        .filter(|&i| i != target)
        .filter(|&i| {
            let o = &ops[i];
            let happened = !(o.outcome == Outcome::Fail && o.f != OpFn::Cas);
            happened && o.invoke_ns <= t_end && o.complete_ns.unwrap_or(i64::MAX) >= t.invoke_ns
        })
        .collect()
}

fn key_name(key: Option<&str>) -> String {
    match key {
        Some(k) => format!("key {k:?}"),
        None => "the register".to_string(),
    }
}

/// A one-line description of an operation: what it did, when, and where in the file.
pub fn describe(op: &Op) -> String {
    let what = match (op.f, op.outcome) {
        (OpFn::Read, Outcome::Ok) => {
            format!("read {}", op.result.as_ref().map_or("null".to_string(), |v| v.to_string()))
        }
        (OpFn::Cas, Outcome::Fail) => format!("cas {} (compare failed)", op.value),
        (OpFn::Txn, Outcome::Ok) => {
            format!("txn {}", op.result.as_ref().unwrap_or(&op.value))
        }
        (f, Outcome::Ok) => format!("{} {}", fn_name(f), op.value),
        (f, Outcome::Fail) => format!("{} {} (failed)", fn_name(f), op.value),
        (f, Outcome::Indeterminate) => format!("{} {} (indeterminate)", fn_name(f), op.value),
    };
    let end = match (op.complete_ns, op.complete_line) {
        (Some(t), Some(line)) => format!("completed at {t} ns (line {line})"),
        (None, Some(line)) => format!("info on line {line}"),
        _ => "never completed".to_string(),
    };
    format!(
        "op {} (process {}, {what}, invoked at {} ns (line {}), {end})",
        op.id, op.process, op.invoke_ns, op.invoke_line
    )
}

/// The sentence that reports `failure`: the key, the op, the prefix length, concurrent ops.
pub fn explain(history: &History, failure: &KeyFailure) -> String {
    let ops = &history.ops;
    let key = key_name(failure.key.as_deref());
    let op = describe(&ops[failure.op]);
    let mut text = match &failure.reason {
        FailureReason::Search => format!(
            "{key}: {op} cannot be linearized; the longest linearizable prefix found places {} \
             of the key's {} operations",
            failure.prefix.len(),
            failure.key_ops.len()
        ),
        FailureReason::Unproduced { first_producer } => {
            let mut text = format!(
                "{key}: {op} cannot be linearized: it observes a value that neither the initial \
                 value nor any operation invoked before it returned could have written"
            );
            if let Some(p) = first_producer {
                text.push_str(&format!("; the first that could is {}", describe(&ops[*p])));
            }
            text
        }
        FailureReason::Window { from_ns, to_ns, ops: window_ops } => format!(
            "{key}: {op} cannot be linearized: the {window_ops} operations invoked from \
             {from_ns} ns and returned by {to_ns} ns have no linearization from any value the \
             key could hold at {from_ns} ns; the longest linearizable prefix found there places \
             {} operations",
            failure.prefix.len()
        ),
    };
    if failure.concurrent.is_empty() {
        text.push_str("; no operation is concurrent with it");
    } else {
        /// Concurrent operations named in the sentence; the rest are counted.
        const MAX_NAMED: usize = 12;
        text.push_str("; concurrent with: ");
        let list: Vec<String> =
            failure.concurrent.iter().take(MAX_NAMED).map(|&i| describe(&ops[i])).collect();
        text.push_str(&list.join("; "));
        if failure.concurrent.len() > MAX_NAMED {
            let more = failure.concurrent.len() - MAX_NAMED;
            text.push_str(&format!("; and {more} more"));
        }
    }
    text.push('.');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lin::generate::{RegisterWorkload, generate};

    /// What the search sees of a key, in a comparable form.
    fn model_text(key: &KeyOps) -> String {
        let m = prepare::build(key);
        format!("{:?} {:?} {:?} {:?} {:?}", m.initial, m.defs, m.classes, m.strings, m.resets)
    }

    #[test]
    fn partition_in_stretches_builds_the_same_models() {
        let w =
            RegisterWorkload { seed: 11, ops: 2_000, processes: 6, keys: 5, ..Default::default() };
        let generated = generate(&w);
        // A key with appends and string values, in the middle of the history so that its
        // string tables span stretches.
        let mut text = String::new();
        for (i, p) in (0..40).zip([900u64, 901].iter().cycle()) {
            let (f, v) = if i % 3 == 0 { ("read", "null") } else { ("append", "\"x\"") };
            let t = 1_000_000 + i;
            text.push_str(&format!(
                "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"s\",\"value\":{v},\"time\":{t}}}\n"
            ));
            let v = if f == "read" { "\"xx\"" } else { v };
            text.push_str(&format!(
                "{{\"process\":{p},\"type\":\"info\",\"f\":\"{f}\",\"key\":\"s\",\"value\":{v},\"time\":{t}}}\n"
            ));
        }
        let mut lines: Vec<&str> = generated.lines().collect();
        let middle = lines.len() / 2 - 40;
        lines.splice(middle..middle, text.lines());
        let text = lines.join("\n");
        let h = crate::parse_history(&text).expect("parses");
        let one = partition_in(&h.ops, 1);
        for threads in [2, 3, 7] {
            let many = partition_in(&h.ops, threads);
            assert_eq!(one.len(), many.len(), "{threads} stretches");
            for ((k1, a), (k2, b)) in one.iter().zip(&many) {
                assert_eq!(k1, k2);
                assert_eq!(a.indices(), b.indices(), "key {k1:?}, {threads} stretches");
                assert_eq!(model_text(a), model_text(b), "key {k1:?}, {threads} stretches");
            }
        }
    }
}
