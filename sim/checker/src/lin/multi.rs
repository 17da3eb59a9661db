//! Linearizability of one object made of many registers, whose operations read and write
//! several of them at once: the transactions of a history (micro-ops `r` and `w`; a write of
//! `null` is a delete) each taking effect at one instant inside its interval. This is what a
//! store promises for the raw batches and scans of one region (one Raft command each, or one
//! read of one engine snapshot), and it is strict serializability with every transaction's
//! version order found by the search instead of inferred (blind writes leave the inference of
//! [`crate::si`] too little to decide).
//!
//! The search is Wing & Gong's with Lowe's cache of visited configurations (the operations
//! linearized and the registers' values): an operation may come next if no other open definite
//! operation returned before it was invoked. Reads are linearized as soon as they are legal,
//! which never hurts. Indeterminate operations: one whose written value some read observed must
//! have taken effect before the first such read returned, so it becomes definite with that
//! return; one that writes only values nobody observed is left out (applying it could only
//! make later reads impossible), unless it deletes, since a read of `null` may observe that:
//! then it may take effect any time after its invoke, or never. Values must be unique per key
//! for the first rule (every workload here writes unique values).

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use super::describe;
use crate::history::{History, OpFn, Outcome};
use crate::report::{Anomaly, Validity, Verdict};

/// Configurations the search may visit before it answers `Unknown`.
pub const DEFAULT_MAX_STEPS: u64 = 500_000;

/// A value id: 0 is absent (`null`); others index the interned values.
type Val = u32;
const ABSENT: Val = 0;

#[derive(Debug, Clone, Copy)]
enum Mop {
    Read(u32, Val),
    Write(u32, Val),
}

/// An operation the search places.
#[derive(Debug, Clone)]
struct MOp {
    /// Index into the history's ops.
    op_index: usize,
    call: i64,
    /// `i64::MAX` for an optional operation (it never has to be placed).
    ret: i64,
    mops: Vec<Mop>,
}

impl MOp {
    fn optional(&self) -> bool {
        self.ret == i64::MAX
    }
}

/// The history's transactions with keys and values interned, classified as above.
struct Model {
    key_names: Vec<String>,
    values: Vec<String>,
    /// The definite ops (`..defs`) by invoke, then the optional ones by invoke.
    ops: Vec<MOp>,
    defs: usize,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Model {
    fn build(history: &History) -> Result<Model, String> {
        let mut key_ids: FxHashMap<String, u32> = FxHashMap::default();
        let mut key_names = Vec::new();
        let mut val_ids: FxHashMap<String, Val> = FxHashMap::default();
        let mut values = vec!["null".to_string()];
        let mut parsed: Vec<(usize, Vec<Mop>)> = Vec::new();
        for (i, op) in history.ops.iter().enumerate().filter(|(_, op)| op.f == OpFn::Txn) {
            let source = match (op.outcome, &op.result) {
                (Outcome::Ok, Some(result)) => result,
                _ => &op.value,
            };
            let list = source.as_array().ok_or_else(|| format!("T{}: not a list", op.id))?;
            let mut mops = Vec::with_capacity(list.len());
            for m in list {
                let bad = || format!("T{} (line {}): micro-op {m}", op.id, op.invoke_line);
                let Some([f, key, value]) = m.as_array().map(Vec::as_slice) else {
                    return Err(format!("{} is not [f, key, value]", bad()));
                };
                let key = text_of(key);
                let next = key_names.len() as u32;
                let key = *key_ids.entry(key.clone()).or_insert_with(|| {
                    key_names.push(key);
                    next
                });
                let val = if value.is_null() {
                    ABSENT
                } else {
                    let text = value.to_string();
                    let next = values.len() as Val;
                    *val_ids.entry(text.clone()).or_insert_with(|| {
                        values.push(text);
                        next
                    })
                };
                mops.push(match f.as_str() {
                    Some("r") => Mop::Read(key, val),
                    Some("w") => Mop::Write(key, val),
                    _ => return Err(format!("{}: only \"r\" and \"w\" are supported", bad())),
                });
            }
            parsed.push((i, mops));
        }
        // The first return of an ok read of each (key, value) written.
        let mut observed: FxHashMap<(u32, Val), i64> = FxHashMap::default();
        for (i, mops) in &parsed {
            let op = &history.ops[*i];
            let (Outcome::Ok, Some(ret)) = (op.outcome, op.complete_ns) else { continue };
            for m in mops {
                if let Mop::Read(k, v) = *m
                    && v != ABSENT
                {
                    let first = observed.entry((k, v)).or_insert(ret);
                    *first = (*first).min(ret);
                }
            }
        }
        let mut ops = Vec::new();
        for (op_index, mops) in parsed {
            let op = &history.ops[op_index];
            let call = op.invoke_ns;
            match (op.outcome, op.complete_ns) {
                (Outcome::Fail, _) => {}
                (Outcome::Ok, Some(ret)) => ops.push(MOp { op_index, call, ret, mops }),
                _ => {
                    // What it read is unknown: only its writes matter.
                    let writes: Vec<Mop> =
                        mops.into_iter().filter(|m| matches!(m, Mop::Write(..))).collect();
                    let seen = writes.iter().filter_map(|m| match *m {
                        Mop::Write(k, v) if v != ABSENT => observed.get(&(k, v)).copied(),
                        _ => None,
                    });
                    let deletes = writes.iter().any(|m| matches!(m, Mop::Write(_, ABSENT)));
                    // Observed before it was invoked: `ret == call` keeps that impossible.
                    let ret = match seen.min() {
                        Some(ret) => ret.max(call),
                        None if deletes => i64::MAX,
                        None => continue,
                    };
                    ops.push(MOp { op_index, call, ret, mops: writes });
                }
            }
        }
        // Definite ops first, each group by invoke.
        ops.sort_by_key(|o| (o.optional(), o.call, o.op_index));
        let defs = ops.iter().filter(|o| !o.optional()).count();
        Ok(Model { key_names, values, ops, defs })
    }
}

/// A fixed-size set of operation indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

/// A move of the walk: the op placed (`usize::MAX` at the root), the values its writes
/// replaced, and the reads placed at once after it.
struct Move {
    op: usize,
    undo: Vec<(u32, Val)>,
    reads: Vec<usize>,
}

/// One level of the walk: the moves left to try here, and the move that led here.
struct Frame {
    moves: Vec<usize>,
    next: usize,
    via: Move,
}

struct Search<'m> {
    model: &'m Model,
    state: Vec<Val>,
    done: Bits,
    /// Definite operations not yet placed.
    open: usize,
    /// The first definite op not yet placed (`defs` when none is left).
    first_open: usize,
    seen: FxHashSet<(Bits, Vec<Val>)>,
    steps: u64,
    /// The most definite operations any attempt placed, with the state and open ops there.
    deepest: (usize, Vec<Val>, Vec<usize>),
}

impl Search<'_> {
    /// Ops that may come next: invoked before every other open definite op returned. Definite
    /// ops are scanned by invoke from the first open one, up to the second smallest return
    /// seen (an op invoked later returns later still, so it can neither come next nor lower
    /// the bounds).
    fn candidates(&self) -> Vec<usize> {
        let ops = &self.model.ops;
        let (mut min_op, mut min, mut second) = (usize::MAX, i64::MAX, i64::MAX);
        let mut window = Vec::new();
        for (i, o) in ops.iter().enumerate().take(self.model.defs).skip(self.first_open) {
            if o.call >= second {
                break;
            }
            if self.done.get(i) {
                continue;
            }
            window.push(i);
            if o.ret < min {
                (min_op, min, second) = (i, o.ret, min);
            } else if o.ret < second {
                second = o.ret;
            }
        }
        window.retain(|&i| ops[i].call < if i == min_op { second } else { min });
        let optional = (self.model.defs..ops.len()).take_while(|&i| ops[i].call < min);
        window.extend(optional.filter(|&i| !self.done.get(i)));
        window
    }

    /// Applies op `i` if its reads hold; returns the values its writes replaced.
    fn apply(&mut self, i: usize) -> Option<Vec<(u32, Val)>> {
        let mut undo = Vec::new();
        for m in &self.model.ops[i].mops {
            match *m {
                Mop::Read(k, v) if self.state[k as usize] != v => {
                    for &(k, prev) in undo.iter().rev() {
                        self.state[k as usize] = prev;
                    }
                    return None;
                }
                Mop::Read(..) => {}
                Mop::Write(k, v) => {
                    undo.push((k, self.state[k as usize]));
                    self.state[k as usize] = v;
                }
            }
        }
        self.done.flip(i);
        if i < self.model.defs {
            self.open -= 1;
            while self.first_open < self.model.defs && self.done.get(self.first_open) {
                self.first_open += 1;
            }
        }
        Some(undo)
    }

    fn unapply(&mut self, i: usize, undo: &[(u32, Val)]) {
        for &(k, prev) in undo.iter().rev() {
            self.state[k as usize] = prev;
        }
        self.done.flip(i);
        if i < self.model.defs {
            self.open += 1;
            self.first_open = self.first_open.min(i);
        }
    }

    fn is_read_only(&self, i: usize) -> bool {
        self.model.ops[i].mops.iter().all(|m| matches!(m, Mop::Read(..)))
    }

    /// Places every legal read at once (never worse than later); returns those placed.
    fn place_reads(&mut self) -> Vec<usize> {
        let mut placed = Vec::new();
        loop {
            let reads: Vec<usize> =
                self.candidates().into_iter().filter(|&i| self.is_read_only(i)).collect();
            let before = placed.len();
            for i in reads {
                if self.apply(i).is_some() {
                    placed.push(i);
                }
            }
            if placed.len() == before {
                return placed;
            }
        }
    }

    /// The moves worth trying from here: writes, and optional deletes that change something.
    /// Optional ops come last (`candidates` keeps that order): most never took effect, and
    /// trying them first would explore, for each, a subtree that fails only at the next read
    /// of what it deleted.
    fn moves(&self) -> Vec<usize> {
        let ops = &self.model.ops;
        let changes = |i: usize| {
            ops[i]
                .mops
                .iter()
                .any(|m| matches!(*m, Mop::Write(k, v) if self.state[k as usize] != v))
        };
        self.candidates()
            .into_iter()
            .filter(|&i| !self.is_read_only(i) && (!ops[i].optional() || changes(i)))
            .collect()
    }

    fn note_depth(&mut self) {
        let placed = self.model.defs - self.open;
        if placed > self.deepest.0 || self.deepest.2.is_empty() {
            let open: Vec<usize> =
                (self.first_open..self.model.defs).filter(|&i| !self.done.get(i)).collect();
            self.deepest = (placed, self.state.clone(), open);
        }
    }

    fn run(&mut self, max_steps: u64) -> Option<bool> {
        let reads = self.place_reads();
        let root = Move { op: usize::MAX, undo: Vec::new(), reads };
        let mut stack = vec![Frame { moves: self.moves(), next: 0, via: root }];
        loop {
            if self.open == 0 {
                return Some(true);
            }
            let Some(frame) = stack.last_mut() else { return Some(false) };
            if frame.next == frame.moves.len() {
                self.note_depth();
                let Move { op, undo, reads } = stack.pop().expect("a frame is on the stack").via;
                for &r in reads.iter().rev() {
                    self.unapply(r, &[]);
                }
                if op != usize::MAX {
                    self.unapply(op, &undo);
                }
                continue;
            }
            let i = frame.moves[frame.next];
            frame.next += 1;
            self.steps += 1;
            if self.steps > max_steps {
                return None;
            }
            let Some(undo) = self.apply(i) else { continue };
            let reads = self.place_reads();
            if !self.seen.insert((self.done.clone(), self.state.clone())) {
                for &r in reads.iter().rev() {
                    self.unapply(r, &[]);
                }
                self.unapply(i, &undo);
                continue;
            }
            let via = Move { op: i, undo, reads };
            stack.push(Frame { moves: self.moves(), next: 0, via });
        }
    }
}

/// Checks that the transactions of `history` (other operations are ignored) are linearizable
/// as operations on one object; `Unknown` after `max_steps` configurations.
pub fn check_txns(history: &History, max_steps: u64) -> Verdict {
    let model = match Model::build(history) {
        Ok(m) => m,
        Err(e) => return verdict(Validity::Unknown, "malformed-txn", e),
    };
    let open = model.defs;
    let mut search = Search {
        model: &model,
        state: vec![ABSENT; model.key_names.len()],
        done: Bits::new(model.ops.len()),
        open,
        first_open: 0,
        seen: FxHashSet::default(),
        steps: 0,
        deepest: (0, Vec::new(), Vec::new()),
    };
    match search.run(max_steps) {
        Some(true) => Verdict { valid: Validity::Valid, anomalies: Vec::new() },
        None => verdict(
            Validity::Unknown,
            "unknown",
            format!("the search visited {max_steps} configurations without an answer"),
        ),
        Some(false) => {
            let (placed, state, stuck) = &search.deepest;
            verdict(
                Validity::Invalid,
                "nonlinearizable",
                explain(history, &model, *placed, state, stuck),
            )
        }
    }
}

fn verdict(valid: Validity, kind: &str, explanation: String) -> Verdict {
    let anomaly = Anomaly { kind: kind.to_string(), key: None, txns: Vec::new(), explanation };
    Verdict { valid, anomalies: vec![anomaly] }
}

/// The sentence for a failure: how far the deepest attempt got, the op that returns first
/// among those it could not place, and what its keys held there.
fn explain(
    history: &History,
    model: &Model,
    placed: usize,
    state: &[Val],
    stuck: &[usize],
) -> String {
    let total = model.defs;
    let Some(&first) = stuck.iter().min_by_key(|&&i| (model.ops[i].ret, i)) else {
        return format!("no linearization of the {total} operations");
    };
    let op = &model.ops[first];
    let held: Vec<String> = op
        .mops
        .iter()
        .map(|m| {
            let (Mop::Read(k, _) | Mop::Write(k, _)) = *m;
            format!("{}={}", model.key_names[k as usize], model.values[state[k as usize] as usize])
        })
        .collect();
    format!(
        "the longest linearization found places {placed} of the {total} operations; then {} \
         cannot be placed (its keys held {})",
        describe(&history.ops[op.op_index]),
        held.join(", ")
    )
}
