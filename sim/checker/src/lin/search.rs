//! The per-key search: a depth-first walk over "return points" in the style of Wing & Gong
//! with Lowe's just-in-time linearization and a cache of visited configurations.
//!
//! A configuration is (the next return to pass `k`, the set of still-open operations already
//! linearized, the register state, how many of each indeterminate class were used). Three
//! rules keep the walk short:
//! - an operation that never changes the state (a read, a failed cas), once legal, is
//!   linearized at once: doing it now never hurts;
//! - when the operation returning at `k` is linearized, passing its return is forced;
//! - configurations are cached only below a point where the walk had a choice, since only
//!   those can be reached twice.

use rustc_hash::FxHashSet;

use super::prepare::{DefOp, Effect, IndetClass, KeyModel, Source, StateId};

/// Limits on one key's search. Running out yields `Outcome::Unknown`, never a guess.
#[derive(Clone, Copy)]
pub(crate) struct Budget<'a> {
    pub max_memory_bytes: usize,
    pub max_steps: u64,
    /// Polled every `POLL_INTERVAL_STEPS` steps; `true` stops the search.
    pub should_stop: Option<&'a (dyn Fn() -> bool + Sync)>,
}

const POLL_INTERVAL_STEPS: u64 = 4096;

/// How one key's search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    Linearizable,
    /// No linearization: `stuck_at` is the return rank the deepest attempt could not pass.
    NotLinearizable {
        stuck_at: usize,
    },
    /// A budget ran out after `steps` steps holding `memory_bytes`.
    Unknown {
        steps: u64,
        memory_bytes: usize,
    },
    /// The step limit of this call was reached; the search can resume.
    Paused,
}

/// One step of a linearization, as the search took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Definite operation (index into `KeyModel::defs`) linearized.
    Def(u32),
    /// Indeterminate operation (index into the history's ops) applied.
    Indet(usize),
}

#[derive(Debug, Clone, Copy)]
enum Undo {
    Lin { def: u32, prev: StateId },
    Apply { class: u32, prev: StateId },
    Advance,
}

#[derive(Debug, Clone, Copy)]
enum Move {
    Def(u32),
    Class(u32),
}

struct Frame {
    moves_start: usize,
    next_move: usize,
    moves_end: usize,
    /// Undo-log length before the move that led here.
    parent_mark: usize,
    branching: bool,
}

pub(crate) struct Search {
    model: KeyModel,
    started: bool,
    /// Smallest return rank >= k whose op is a read, per k (`n` if none).
    next_read: Vec<u32>,
    /// Definite ops in order of return (index into `defs`), and each op's rank there.
    by_return: Vec<u32>,
    rank: Vec<u32>,
    /// Open definite ops at each return rank `k`: call <= ret of rank k, rank >= k.
    open_start: Vec<u32>,
    open: Vec<u32>,
    ret_ns: Vec<i64>,
    // The current configuration.
    k: usize,
    state: StateId,
    linearized: Vec<bool>,
    lin_list: Vec<u32>,
    used: Vec<u32>,
    undo: Vec<Undo>,
    frames: Vec<Frame>,
    moves: Vec<Move>,
    branching_frames: usize,
    seen: FxHashSet<Box<[u32]>>,
    seen_bytes: usize,
    pub steps: u64,
    deepest: usize,
    /// When set, the linearization at the deepest point reached.
    record: bool,
    pub best_path: Vec<Step>,
}

fn def_index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 operations per key")
}

/// Open definite ops per return rank, flattened: `open[open_start[k]..open_start[k + 1]]`.
fn open_lists(
    defs: &[DefOp],
    by_call: &[u32],
    rank: &[u32],
    ret_ns: &[i64],
) -> (Vec<u32>, Vec<u32>) {
    let n = defs.len();
    let mut open_start = Vec::with_capacity(n + 1);
    let mut open = Vec::new();
    let mut active: Vec<u32> = Vec::new();
    let mut next_call = 0;
    for (k, &ret) in ret_ns.iter().enumerate() {
        // Ties count as concurrent: an op invoked at the instant another returns may precede it.
        while next_call < n && defs[by_call[next_call] as usize].call_ns <= ret {
            active.push(by_call[next_call]);
            next_call += 1;
        }
        active.retain(|&d| rank[d as usize] as usize >= k);
        open_start.push(def_index(open.len()));
        open.extend_from_slice(&active);
    }
    open_start.push(def_index(open.len()));
    (open_start, open)
}

/// Ops that leave every state unchanged: once legal, linearizing them at once never hurts.
fn never_mutates(effect: Effect) -> bool {
    match effect {
        Effect::Read(_) | Effect::CasFail(_) => true,
        Effect::Cas { old, new } => old == new,
        Effect::Write(_) | Effect::Append(_) => false,
    }
}

enum Entered {
    Solved,
    Pruned,
    Pushed,
}

impl Search {
    pub fn new(model: KeyModel, record: bool) -> Search {
        let n = model.defs.len();
        let mut by_return: Vec<u32> = (0..n).map(def_index).collect();
        by_return.sort_by_key(|&d| (model.defs[d as usize].ret_ns, d));
        let mut rank = vec![0u32; n];
        for (r, &d) in by_return.iter().enumerate() {
            rank[d as usize] = def_index(r);
        }
        let ret_ns: Vec<i64> = by_return.iter().map(|&d| model.defs[d as usize].ret_ns).collect();
        let mut by_call: Vec<u32> = (0..n).map(def_index).collect();
        by_call.sort_by_key(|&d| (model.defs[d as usize].call_ns, d));
        let (open_start, open) = open_lists(&model.defs, &by_call, &rank, &ret_ns);
        let classes = model.classes.len();
        let state = model.initial;
        let mut next_read = vec![def_index(n); n + 1];
        for k in (0..n).rev() {
            let is_read = matches!(model.defs[by_return[k] as usize].effect, Effect::Read(_));
            next_read[k] = if is_read { def_index(k) } else { next_read[k + 1] };
        }
        Search {
            model,
            started: false,
            next_read,
            by_return,
            rank,
            open_start,
            open,
            ret_ns,
            k: 0,
            state,
            linearized: vec![false; n],
            lin_list: Vec::new(),
            used: vec![0; classes],
            undo: Vec::new(),
            frames: Vec::new(),
            moves: Vec::new(),
            branching_frames: 0,
            seen: FxHashSet::default(),
            seen_bytes: 0,
            steps: 0,
            deepest: 0,
            record,
            best_path: Vec::new(),
        }
    }

    /// Runs the search to a verdict, until the budget runs out (`Unknown`), or until it has
    /// taken `step_limit` steps in all (`Paused`; call again with a higher limit to resume).
    pub fn run(&mut self, budget: &Budget<'_>, step_limit: u64) -> SearchOutcome {
        if !self.started {
            self.started = true;
            match self.enter(0) {
                Entered::Solved => return SearchOutcome::Linearizable,
                Entered::Pruned => {
                    return SearchOutcome::NotLinearizable { stuck_at: self.deepest };
                }
                Entered::Pushed => {}
            }
        }
        while let Some(frame) = self.frames.last_mut() {
            if frame.next_move == frame.moves_end {
                let frame = self.frames.pop().expect("a frame is on the stack");
                self.moves.truncate(frame.moves_start);
                if frame.branching {
                    self.branching_frames -= 1;
                }
                self.undo_to(frame.parent_mark);
                continue;
            }
            if self.steps >= step_limit {
                return SearchOutcome::Paused;
            }
            if self.steps.is_multiple_of(POLL_INTERVAL_STEPS) && self.out_of_budget(budget) {
                return SearchOutcome::Unknown {
                    steps: self.steps,
                    memory_bytes: self.memory_bytes(),
                };
            }
            self.steps += 1;
            let frame = self.frames.last_mut().expect("a frame is on the stack");
            let mv = self.moves[frame.next_move];
            frame.next_move += 1;
            let mark = self.undo.len();
            self.apply(mv);
            if let Entered::Solved = self.enter(mark) {
                return SearchOutcome::Linearizable;
            }
        }
        SearchOutcome::NotLinearizable { stuck_at: self.deepest }
    }

    /// The key's model, for naming operations after the search.
    pub fn model(&self) -> &KeyModel {
        &self.model
    }

    /// Bytes held by the search (approximate).
    pub fn memory_bytes(&self) -> usize {
        self.seen_bytes
            + self.model.states.bytes
            + (self.open.capacity() + self.open_start.capacity()) * 4
            + (self.by_return.capacity() + self.rank.capacity()) * 4
            + self.ret_ns.capacity() * 8
            + self.undo.capacity() * std::mem::size_of::<Undo>()
            + self.moves.capacity() * std::mem::size_of::<Move>()
            + self.frames.capacity() * std::mem::size_of::<Frame>()
            + self.linearized.capacity()
            + self.next_read.capacity() * 4
            + self.best_path.capacity() * std::mem::size_of::<Step>()
    }

    fn out_of_budget(&self, budget: &Budget<'_>) -> bool {
        self.steps >= budget.max_steps
            || self.memory_bytes() > budget.max_memory_bytes
            || budget.should_stop.is_some_and(|stop| stop())
    }

    /// The deepest attempt's linearized operations, as history op indexes.
    pub fn best_path_ops(&self) -> Vec<usize> {
        self.best_path
            .iter()
            .map(|step| match *step {
                Step::Def(d) => self.model.defs[d as usize].op_index,
                Step::Indet(i) => i,
            })
            .collect()
    }

    /// The definite op returning at rank `k`.
    pub fn returning_at(&self, k: usize) -> u32 {
        self.by_return[k]
    }

    fn available(&self, class: &IndetClass) -> u32 {
        let now = self.ret_ns[self.k];
        def_index(class.calls.partition_point(|&(t, _)| t <= now))
    }

    /// Linearizes greedily, passes forced returns, then caches and lists the choices.
    fn enter(&mut self, parent_mark: usize) -> Entered {
        let n = self.by_return.len();
        loop {
            if self.k == n {
                self.note_depth();
                return Entered::Solved;
            }
            self.greedy_closure();
            let returning = self.by_return[self.k];
            if !self.linearized[returning as usize] {
                break;
            }
            self.linearized[returning as usize] = false;
            self.lin_remove(returning);
            self.k += 1;
            self.undo.push(Undo::Advance);
            self.note_depth();
        }
        if self.doomed_by_reads() || (self.branching_frames > 0 && !self.remember()) {
            self.undo_to(parent_mark);
            return Entered::Pruned;
        }
        let start = self.moves.len();
        for i in self.open_start[self.k] as usize..self.open_start[self.k + 1] as usize {
            self.push_def_move(self.open[i]);
        }
        for c in 0..self.model.classes.len() {
            let class = &self.model.classes[c];
            if self.used[c] >= self.available(class) {
                continue;
            }
            let effect = class.effect;
            if self.model.states.step(self.state, effect).is_some_and(|next| next != self.state) {
                self.moves.push(Move::Class(def_index(c)));
            }
        }
        let count = self.moves.len() - start;
        if count == 0 {
            self.undo_to(parent_mark);
            return Entered::Pruned;
        }
        let branching = count > 1;
        if branching {
            self.branching_frames += 1;
        }
        self.frames.push(Frame {
            moves_start: start,
            next_move: start,
            moves_end: self.moves.len(),
            parent_mark,
            branching,
        });
        Entered::Pushed
    }

    /// Whether some unlinearized read can no longer see its value: the state differs from it
    /// (on string keys: the value does not extend the state) and no op that could still run
    /// before the read returns sets a state the value equals (extends).
    fn doomed_by_reads(&self) -> bool {
        /// How many returns past the open ops to look at.
        const LOOKAHEAD_RETURNS: usize = 4;
        let open =
            &self.open[self.open_start[self.k] as usize..self.open_start[self.k + 1] as usize];
        let ahead_end = (self.k + LOOKAHEAD_RETURNS).min(self.by_return.len());
        let ahead = &self.by_return[self.k..ahead_end];
        let next_read = self.next_read[self.k] as usize;
        let next_read = self.by_return.get(next_read..next_read + 1).unwrap_or(&[]);
        for &d in open.iter().chain(ahead).chain(next_read) {
            if self.linearized[d as usize] {
                continue;
            }
            let def = &self.model.defs[d as usize];
            let Effect::Read(v) = def.effect else { continue };
            if !self.reachable(v, def.ret_ns) {
                return true;
            }
        }
        false
    }

    /// Whether state `v` (or, on string keys, a prefix of it) can hold by `deadline_ns`.
    fn reachable(&self, v: StateId, deadline_ns: i64) -> bool {
        /// Producers examined before giving up and assuming `v` reachable (always sound).
        const MAX_SCAN: usize = 64;
        let states = &self.model.states;
        if states.extends(v, self.state) {
            return true;
        }
        let resets = &self.model.resets;
        let usable = |i: usize| {
            let r = &resets[i];
            r.call_ns <= deadline_ns
                && match r.source {
                    Source::Def(d) => {
                        !self.linearized[d as usize] && self.rank[d as usize] as usize >= self.k
                    }
                    Source::Class(c) => {
                        let calls = &self.model.classes[c as usize].calls;
                        self.used[c as usize] < def_index(calls.len())
                    }
                }
        };
        if self.model.strings {
            let end = resets.partition_point(|r| r.call_ns <= deadline_ns);
            (0..end).rev().take(MAX_SCAN).any(|i| usable(i) && states.extends(v, resets[i].value))
                || end > MAX_SCAN
        } else {
            let Some(producers) = self.model.resets_by_value.get(&v) else {
                return false;
            };
            let end = producers.partition_point(|&i| resets[i as usize].call_ns <= deadline_ns);
            producers[..end].iter().rev().take(MAX_SCAN).any(|&i| usable(i as usize))
                || end > MAX_SCAN
        }
    }

    fn push_def_move(&mut self, d: u32) {
        if self.linearized[d as usize] {
            return;
        }
        let effect = self.model.defs[d as usize].effect;
        // Ops that leave the state unchanged are taken by the greedy closure instead.
        match self.model.states.step(self.state, effect) {
            Some(next) if !(never_mutates(effect) && next == self.state) => {
                self.moves.push(Move::Def(d));
            }
            _ => {}
        }
    }

    /// Linearizes every open op that is legal and leaves the state unchanged. (From
    /// `ANY_STATE` a read is a choice: it fixes the state.)
    fn greedy_closure(&mut self) {
        for i in self.open_start[self.k] as usize..self.open_start[self.k + 1] as usize {
            let d = self.open[i];
            if self.linearized[d as usize] {
                continue;
            }
            let effect = self.model.defs[d as usize].effect;
            if never_mutates(effect)
                && self.model.states.step(self.state, effect) == Some(self.state)
            {
                self.lin(d);
            }
        }
    }

    fn lin(&mut self, d: u32) {
        let next = self.model.states.step(self.state, self.model.defs[d as usize].effect);
        let next = next.expect("only legal ops are linearized");
        self.undo.push(Undo::Lin { def: d, prev: self.state });
        self.state = next;
        self.linearized[d as usize] = true;
        let at = self.lin_list.partition_point(|&x| x < d);
        self.lin_list.insert(at, d);
    }

    fn lin_remove(&mut self, d: u32) {
        let at = self.lin_list.partition_point(|&x| x < d);
        assert_eq!(self.lin_list.get(at), Some(&d), "op {d} is in the linearized list");
        self.lin_list.remove(at);
    }

    fn apply(&mut self, mv: Move) {
        match mv {
            Move::Def(d) => self.lin(d),
            Move::Class(c) => {
                let effect = self.model.classes[c as usize].effect;
                let next = self.model.states.step(self.state, effect);
                let next = next.expect("only legal indeterminate ops are applied");
                self.undo.push(Undo::Apply { class: c, prev: self.state });
                self.used[c as usize] += 1;
                self.state = next;
            }
        }
    }

    fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            match self.undo.pop().expect("undo log is longer than mark") {
                Undo::Lin { def, prev } => {
                    self.linearized[def as usize] = false;
                    self.lin_remove(def);
                    self.state = prev;
                }
                Undo::Apply { class, prev } => {
                    self.used[class as usize] -= 1;
                    self.state = prev;
                }
                Undo::Advance => {
                    self.k -= 1;
                    let d = self.by_return[self.k];
                    self.linearized[d as usize] = true;
                    let at = self.lin_list.partition_point(|&x| x < d);
                    self.lin_list.insert(at, d);
                }
            }
        }
    }

    /// Caches the current configuration; `false` if it was seen before.
    fn remember(&mut self) -> bool {
        let mut key = Vec::with_capacity(3 + self.lin_list.len());
        key.push(def_index(self.k));
        key.push(self.state);
        key.push(def_index(self.lin_list.len()));
        key.extend_from_slice(&self.lin_list);
        for (c, &u) in self.used.iter().enumerate() {
            if u > 0 {
                key.push(def_index(c));
                key.push(u);
            }
        }
        let bytes = key.len() * 4 + 40;
        if self.seen.insert(key.into_boxed_slice()) {
            self.seen_bytes += bytes;
            true
        } else {
            false
        }
    }

    fn note_depth(&mut self) {
        if self.k <= self.deepest && !(self.record && self.best_path.is_empty()) {
            return;
        }
        self.deepest = self.deepest.max(self.k);
        if self.record {
            self.best_path.clear();
            let mut nth = vec![0usize; self.model.classes.len()];
            for u in &self.undo {
                match *u {
                    Undo::Lin { def, .. } => self.best_path.push(Step::Def(def)),
                    Undo::Apply { class, .. } => {
                        let c = class as usize;
                        self.best_path.push(Step::Indet(self.model.classes[c].calls[nth[c]].1));
                        nth[c] += 1;
                    }
                    Undo::Advance => {}
                }
            }
        }
    }
}
