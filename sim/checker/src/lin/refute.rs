//! Refutations that need no search of the whole key: an operation that observes a value
//! nothing could have produced in time, and windows of the key's history that have no
//! linearization from any register state.
//!
//! Both are relaxations of the key's problem, so each is sound: when the relaxed problem has no
//! solution, the key has none either. Neither can say "linearizable"; that is the search's job.

use super::prepare::{self, Effect, KeyModel, KeyOp, KeyOps, KeyPart, Source, Start};
use super::search::{Budget, Search, SearchOutcome};
use super::{FailureReason, KeyFailureParts};
use crate::history::{OpFn, Outcome};

/// The first operation (by return) that reads, or succeeds a cas against, a value that neither
/// the initial value nor any operation invoked by the time it returned could have written.
///
/// Sound: an operation invoked after op `o` returned is linearized after `o`, so the register
/// holds such a value at `o` only if something invoked earlier (or the initial state) put it
/// there. Only keys without appends (where values are whole states) are examined.
pub(crate) fn unproduced(model: &KeyModel) -> Option<KeyFailureParts> {
    assert_ne!(model.initial, prepare::ANY_STATE, "refutes whole keys only");
    if model.strings {
        return None;
    }
    let mut first: Option<(i64, KeyFailureParts)> = None;
    for (d, def) in model.defs.iter().enumerate() {
        let v = match def.effect {
            Effect::Read(v) | Effect::Cas { old: v, .. } => v,
            Effect::Write(_) | Effect::Append(_) | Effect::CasFail(_) => continue,
        };
        if v == model.initial || first.as_ref().is_some_and(|(ret, _)| *ret <= def.ret_ns) {
            continue;
        }
        let own = Source::Def(u32::try_from(d).expect("fewer than 2^32 ops per key"));
        let producers = model.resets_by_value.get(&v).map_or(&[][..], Vec::as_slice);
        // `resets` is sorted by invoke time: the first producer is the earliest.
        let earliest =
            producers.iter().map(|&i| &model.resets[i as usize]).find(|r| r.source != own);
        if earliest.is_some_and(|r| r.call_ns <= def.ret_ns) {
            continue;
        }
        let first_producer = earliest.map(|r| match r.source {
            Source::Def(p) => model.defs[p as usize].op_index,
            Source::Class(c) => {
                let calls = &model.classes[c as usize].calls;
                let at = calls.partition_point(|&(t, _)| t < r.call_ns);
                calls[at].1
            }
        });
        let parts = KeyFailureParts {
            op: def.op_index,
            prefix: Vec::new(),
            reason: FailureReason::Unproduced { first_producer },
        };
        first = Some((def.ret_ns, parts));
    }
    first.map(|(_, parts)| parts)
}

/// Operations per window in the first pass; each later pass multiplies it by `WINDOW_GROWTH`.
const FIRST_WINDOW_OPS: usize = 4;
const WINDOW_GROWTH: usize = 2;
/// A window's search may take this many steps per operation in the window; beyond that the
/// window is inconclusive and skipped (sound: skipping only refutes less).
const WINDOW_STEPS_PER_OP: u64 = 256;
/// Windows with more optional operations than this are skipped: each is a class the search
/// scans at every step.
const MAX_OPTIONAL_OPS: usize = 256;

/// Cuts one key's history into windows and searches each on its own.
///
/// A window is `size` consecutive operations by invoke time. Its definite operations are
/// mandatory; it spans `from_ns` (the first invoke) to `to_ns` (the last return of a mandatory
/// operation). Every other operation that changes the state and whose interval meets the span
/// (including every indeterminate one invoked before `to_ns`) is optional: it may take effect
/// inside the window or not at all. Operations that change nothing are dropped outside the
/// mandatory ones. The register starts at `ANY_STATE` (at the initial value for the window that
/// starts at the key's first operation).
///
/// Sound: every operation left out that changes the state returned before `from_ns` or was
/// invoked after `to_ns`, so in any linearization of the key it comes before every mandatory
/// operation or after all of them. The stretch of that linearization from the first mandatory
/// operation to the last therefore holds only window operations (or ones that change nothing),
/// and it is a linearization of the window from the state the key had there.
pub(crate) struct Windows<'a> {
    /// The key's operations by invoke time.
    ops: Vec<(&'a KeyPart, KeyOp)>,
    /// Positions in `ops` of indeterminate operations that may change the state, ascending.
    indeterminate: Vec<usize>,
    max_definite_duration_ns: i64,
    /// The next window: its size and the position of its first operation.
    size: usize,
    next: usize,
}

fn definite(o: &KeyOp) -> bool {
    o.outcome == Outcome::Ok || (o.outcome == Outcome::Fail && o.f == OpFn::Cas)
}

fn changes_state(o: &KeyOp) -> bool {
    matches!(o.f, OpFn::Write | OpFn::Append | OpFn::Cas)
        && o.outcome != Outcome::Fail
        && !(o.f == OpFn::Cas && o.a == o.b)
}

/// `o` as an operation that may take effect once, any time after its invoke, or never.
fn optional(o: KeyOp) -> KeyOp {
    KeyOp { outcome: Outcome::Indeterminate, ret_ns: i64::MAX, ..o }
}

impl<'a> Windows<'a> {
    pub fn new(key: &'a KeyOps) -> Windows<'a> {
        Windows::with_first_size(key, FIRST_WINDOW_OPS)
    }

    /// Windows whose first pass has `first_size` operations per window (at least 2).
    pub fn with_first_size(key: &'a KeyOps, first_size: usize) -> Windows<'a> {
        assert!(first_size >= 2, "a window of {first_size} operations cannot overlap the next");
        let mut ops: Vec<(&KeyPart, KeyOp)> = key.iter().map(|(p, o)| (p, *o)).collect();
        ops.sort_by_key(|(_, o)| o.call_ns);
        let indeterminate = (0..ops.len())
            .filter(|&i| ops[i].1.outcome == Outcome::Indeterminate && changes_state(&ops[i].1))
            .collect();
        let max_definite_duration_ns = ops
            .iter()
            .filter(|(_, o)| definite(o))
            .map(|(_, o)| o.ret_ns - o.call_ns)
            .max()
            .unwrap_or(0);
        Windows { ops, indeterminate, max_definite_duration_ns, size: first_size, next: 0 }
    }

    /// Bytes held (approximate), for the memory budget.
    pub fn memory_bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<(&KeyPart, KeyOp)>()
            + self.indeterminate.capacity() * std::mem::size_of::<usize>()
    }

    /// Whether every window size worth trying was tried.
    pub fn done(&self) -> bool {
        self.size / 2 >= self.ops.len()
    }

    /// Searches windows, from where the last call stopped, until one has no linearization or
    /// about `steps` steps were spent.
    pub fn refute(&mut self, budget: &Budget<'_>, steps: u64) -> Option<KeyFailureParts> {
        let mut spent = 0;
        while !self.done() && spent < steps {
            let (at, size) = (self.next, self.size);
            self.next += size / 2;
            if self.next >= self.ops.len() || at + size >= self.ops.len() {
                self.next = 0;
                self.size *= WINDOW_GROWTH;
            }
            let Some((model, from_ns, to_ns)) = self.window(at, size) else { continue };
            let ops = model.defs.len();
            let limit = WINDOW_STEPS_PER_OP * size as u64;
            let window_budget = Budget { max_steps: limit, ..*budget };
            let mut search = Search::new(model, false);
            let outcome = search.run(&window_budget, u64::MAX);
            spent += search.steps;
            if let SearchOutcome::NotLinearizable { .. } = outcome {
                // Again, deterministically: the same steps, and nothing may stop it early.
                let (model, ..) = self.window(at, size).expect("the same window again");
                let again =
                    Budget { should_stop: None, max_memory_bytes: usize::MAX, ..window_budget };
                return Some(explain_window(model, &again, from_ns, to_ns, ops));
            }
        }
        None
    }

    /// The model of the window of `size` operations from position `at`, with its span; `None`
    /// if it is the whole key, has nothing mandatory, or has too many optional operations.
    fn window(&self, at: usize, size: usize) -> Option<(KeyModel, i64, i64)> {
        let ops = &self.ops;
        let end = (at + size).min(ops.len());
        if at == 0 && end == ops.len() {
            return None;
        }
        let range = &ops[at..end];
        let from_ns = range.first()?.1.call_ns;
        let to_ns = range.iter().filter(|(_, o)| definite(o)).map(|(_, o)| o.ret_ns).max()?;
        let mut chosen: Vec<(&KeyPart, KeyOp)> = range.to_vec();
        let mut optional_ops = 0;
        for &(part, o) in &ops[end..] {
            if o.call_ns > to_ns || optional_ops > MAX_OPTIONAL_OPS {
                break;
            }
            if changes_state(&o) {
                chosen.push((part, optional(o)));
                optional_ops += 1;
            }
        }
        let earlier = self.indeterminate.partition_point(|&i| i < at);
        optional_ops += earlier;
        chosen.extend(self.indeterminate[..earlier].iter().map(|&i| ops[i]));
        let oldest_ns = from_ns.saturating_sub(self.max_definite_duration_ns);
        for &(part, o) in ops[..at].iter().rev() {
            if o.call_ns < oldest_ns || optional_ops > MAX_OPTIONAL_OPS {
                break;
            }
            if definite(&o) && changes_state(&o) && o.ret_ns >= from_ns {
                chosen.push((part, optional(o)));
                optional_ops += 1;
            }
        }
        if optional_ops > MAX_OPTIONAL_OPS {
            return None;
        }
        let start = if at == 0 { Start::Initial } else { Start::Any };
        let model = prepare::build_from(chosen.iter().copied(), start);
        Some((model, from_ns, to_ns))
    }
}

/// Searches a window found to have no linearization again, recording the deepest attempt.
fn explain_window(
    model: KeyModel,
    budget: &Budget<'_>,
    from_ns: i64,
    to_ns: i64,
    ops: usize,
) -> KeyFailureParts {
    let mut search = Search::new(model, true);
    let SearchOutcome::NotLinearizable { stuck_at } = search.run(budget, u64::MAX) else {
        panic!("a repeated search of the same window gave a different verdict")
    };
    let model = search.model();
    let prefix = search.best_path_ops();
    KeyFailureParts {
        op: model.defs[search.returning_at(stuck_at) as usize].op_index,
        prefix,
        reason: FailureReason::Window { from_ns, to_ns, ops },
    }
}
