//! Turns one key's operations into the search's input: interned states, definite operations
//! with their effects, and indeterminate operations grouped into interchangeable classes.
//!
//! Two reductions keep the search small. Values that no operation ever observes (no read
//! returns them, no cas compares against them) cannot be told apart, so on keys without appends
//! they all become one state, `UNOBSERVED`. Indeterminate operations with the same effect are
//! interchangeable once invoked, so the search counts how many of a class it has used instead
//! of remembering which ones.

use rustc_hash::{FxHashMap, FxHashSet};

use serde_json::Value;

use crate::history::{Op, OpFn, Outcome, RegValue};

/// Interned state id.
pub(crate) type StateId = u32;

/// The state that stands for every value no operation observes.
pub(crate) const UNOBSERVED: StateId = 0;

/// The state of a register not yet looked at, which may hold anything: where a window of the
/// history starts (`Start::Any`). It becomes the first value an operation observes or sets; a
/// failed cas or an append leaves it as it is, which allows more than the register would (any
/// state at all afterwards), never less.
pub(crate) const ANY_STATE: StateId = StateId::MAX;

/// Where a model's register starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// At the key's initial value (`null`): the model covers the key from its first operation.
    Initial,
    /// At `ANY_STATE`: the model covers a window of the key's history.
    Any,
}

/// What a definite (ok, or failed cas) operation does to the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Legal when the state equals the value read.
    Read(StateId),
    Write(StateId),
    /// Appends the interned string `suffix` (an id in `States::suffixes`).
    Append(u32),
    /// Legal when the state equals `old`; then the state becomes `new`.
    Cas {
        old: StateId,
        new: StateId,
    },
    /// A failed compare: legal when the state differs from `old`; the state is unchanged.
    CasFail(StateId),
}

/// An operation that completed, and so must be linearized inside its interval.
#[derive(Debug, Clone)]
pub(crate) struct DefOp {
    /// Index into the history's `ops`.
    pub op_index: usize,
    pub call_ns: i64,
    pub ret_ns: i64,
    pub effect: Effect,
}

/// Indeterminate operations with one effect; each may be applied once, any time after its
/// invoke, or never.
#[derive(Debug, Clone)]
pub(crate) struct IndetClass {
    pub effect: Effect,
    /// Invoke times, ascending, with the op index of each.
    pub calls: Vec<(i64, usize)>,
}

/// The interned register states of one key.
#[derive(Debug, Default)]
pub(crate) struct States {
    values: Vec<Option<RegValue>>,
    ids: FxHashMap<RegValue, StateId>,
    suffixes: Vec<String>,
    append_cache: FxHashMap<(StateId, u32), StateId>,
    /// Bytes held by the tables above (approximate), for the memory budget.
    pub bytes: usize,
}

impl States {
    fn new() -> States {
        let mut states = States::default();
        states.values.push(None); // UNOBSERVED
        states
    }

    fn intern(&mut self, value: RegValue) -> StateId {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let id = StateId::try_from(self.values.len()).expect("fewer than 2^32 states per key");
        self.bytes += 48 + reg_len(&value) * 2;
        self.values.push(Some(value.clone()));
        self.ids.insert(value, id);
        id
    }

    /// The state's value; `None` for `UNOBSERVED` and `ANY_STATE`.
    pub fn value(&self, id: StateId) -> Option<&RegValue> {
        self.values.get(id as usize)?.as_ref()
    }

    /// Applies `effect` to `state`: the next state if the operation is legal there.
    pub fn step(&mut self, state: StateId, effect: Effect) -> Option<StateId> {
        if state == ANY_STATE {
            return Some(match effect {
                Effect::Read(v) | Effect::Write(v) | Effect::Cas { new: v, .. } => v,
                Effect::CasFail(_) | Effect::Append(_) => ANY_STATE,
            });
        }
        match effect {
            Effect::Read(v) => (state == v).then_some(state),
            Effect::Write(v) => Some(v),
            Effect::Cas { old, new } => (state == old).then_some(new),
            Effect::CasFail(old) => (state != old).then_some(state),
            Effect::Append(suffix) => Some(self.append(state, suffix)),
        }
    }

    fn append(&mut self, state: StateId, suffix: u32) -> StateId {
        if let Some(&next) = self.append_cache.get(&(state, suffix)) {
            return next;
        }
        let mut text = match self.value(state) {
            Some(RegValue::Str(s)) => s.clone(),
            other => panic!("append on a string key found non-string state {other:?}"),
        };
        text.push_str(&self.suffixes[suffix as usize]);
        let next = self.intern(RegValue::Str(text));
        self.append_cache.insert((state, suffix), next);
        self.bytes += 32;
        next
    }
}

fn reg_len(v: &RegValue) -> usize {
    match v {
        RegValue::Str(s) => s.len(),
        _ => 8,
    }
}

/// Converts a JSON value to a register value: `null`, integers and strings map directly; any
/// other JSON is compared by its text.
pub(crate) fn reg_value(v: &Value) -> RegValue {
    match v {
        Value::Null => RegValue::Nil,
        Value::String(s) => RegValue::Str(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RegValue::Int(i),
            None => RegValue::Str(n.to_string()),
        },
        other => RegValue::Str(other.to_string()),
    }
}

/// On string keys every value is a string and `null` is "".
fn as_string(v: RegValue) -> RegValue {
    match v {
        RegValue::Nil => RegValue::Str(String::new()),
        RegValue::Int(i) => RegValue::Str(i.to_string()),
        s @ RegValue::Str(_) => s,
    }
}

/// One key's search input.
#[derive(Debug)]
pub(crate) struct KeyModel {
    pub states: States,
    pub initial: StateId,
    pub defs: Vec<DefOp>,
    pub classes: Vec<IndetClass>,
    /// Whether states are strings (the key has appends): reads then see extensions.
    pub strings: bool,
    /// Every op that can replace the state (writes and cas, definite or not), by invoke time.
    pub resets: Vec<Reset>,
    /// On non-string keys, indices into `resets` of the ops producing each state.
    pub resets_by_value: FxHashMap<StateId, Vec<u32>>,
}

/// Where an op comes from: a definite op or an indeterminate class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Def(u32),
    Class(u32),
}

/// An op that can replace the state with `value`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reset {
    pub call_ns: i64,
    pub value: StateId,
    pub source: Source,
}

/// The state an op that replaces the state (rather than extending or reading it) sets.
pub(crate) fn reset_value(effect: Effect) -> Option<StateId> {
    match effect {
        Effect::Write(v) | Effect::Cas { new: v, .. } => Some(v),
        Effect::Read(_) | Effect::CasFail(_) | Effect::Append(_) => None,
    }
}

impl States {
    /// Whether the string state `later` extends the string state `earlier`.
    pub fn extends(&self, later: StateId, earlier: StateId) -> bool {
        if earlier == ANY_STATE {
            return true;
        }
        match (self.value(later), self.value(earlier)) {
            (Some(RegValue::Str(l)), Some(RegValue::Str(e))) => l.starts_with(e.as_str()),
            _ => later == earlier,
        }
    }
}

/// A register value as read from the history: integers inline, strings by index into the
/// key's string table (rare: only appends and string values use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RawValue {
    Nil,
    Int(i64),
    Str(u32),
}

/// One operation as the model needs it, read from the history in one sequential pass (the
/// history is large and a key's operations are spread all over it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyOp {
    /// Index into the history's `ops`.
    pub op_index: u32,
    pub f: OpFn,
    pub outcome: Outcome,
    /// What a read returned, what a write or append wrote, a cas's `old`.
    pub a: RawValue,
    /// A cas's `new`.
    pub b: RawValue,
    pub call_ns: i64,
    /// `i64::MAX` when the operation never completed.
    pub ret_ns: i64,
}

/// One key's operations in invoke order, in parts read from consecutive stretches of the
/// history (possibly on different threads).
#[derive(Debug, Default)]
pub(crate) struct KeyOps {
    pub parts: Vec<KeyPart>,
}

impl KeyOps {
    /// Every op with the part that holds its strings, in invoke order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyPart, &KeyOp)> + Clone {
        self.parts.iter().flat_map(|part| part.ops.iter().map(move |o| (part, o)))
    }

    /// History op indices, in invoke order.
    pub fn indices(&self) -> Vec<usize> {
        self.iter().map(|(_, o)| o.op_index as usize).collect()
    }
}

/// A key's operations from one stretch of the history.
#[derive(Debug, Default)]
pub(crate) struct KeyPart {
    pub ops: Vec<KeyOp>,
    /// The strings `RawValue::Str` points at (one entry per mention, not deduplicated).
    strings: Vec<String>,
}

impl KeyPart {
    fn raw(&mut self, v: &Value) -> RawValue {
        match reg_value(v) {
            RegValue::Nil => RawValue::Nil,
            RegValue::Int(i) => RawValue::Int(i),
            RegValue::Str(s) => {
                let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 strings");
                self.strings.push(s);
                RawValue::Str(id)
            }
        }
    }

    fn value(&self, raw: RawValue) -> RegValue {
        match raw {
            RawValue::Nil => RegValue::Nil,
            RawValue::Int(i) => RegValue::Int(i),
            RawValue::Str(s) => RegValue::Str(self.strings[s as usize].clone()),
        }
    }

    /// Appends history op `op_index`. Transactions must have been excluded by the caller.
    pub fn push(&mut self, op_index: usize, op: &Op) {
        let (a, b) = match op.f {
            OpFn::Read => (self.raw(op.result.as_ref().unwrap_or(&Value::Null)), RawValue::Nil),
            OpFn::Write | OpFn::Append => (self.raw(&op.value), RawValue::Nil),
            OpFn::Cas => match &op.value {
                Value::Array(pair) if pair.len() == 2 => (self.raw(&pair[0]), self.raw(&pair[1])),
                other => panic!(
                    "op {} cas value {other} is not [old, new]; the parser checks this",
                    op.id
                ),
            },
            OpFn::Txn => panic!("op {} is a transaction; the caller filters them", op.id),
        };
        self.ops.push(KeyOp {
            op_index: u32::try_from(op_index).expect("fewer than 2^32 operations"),
            f: op.f,
            outcome: op.outcome,
            a,
            b,
            call_ns: op.invoke_ns,
            ret_ns: op.complete_ns.unwrap_or(i64::MAX),
        });
    }
}

/// Builds the model of one key.
pub(crate) fn build(key: &KeyOps) -> KeyModel {
    build_from(key.iter().map(|(part, o)| (part, *o)), Start::Initial)
}

/// Builds a model of `ops` (some of a key's operations, in any order) starting at `start`.
pub(crate) fn build_from<'a>(
    ops: impl Iterator<Item = (&'a KeyPart, KeyOp)> + Clone,
    start: Start,
) -> KeyModel {
    let strings = ops.clone().any(|(_, o)| o.f == OpFn::Append);
    // Values some operation observes (unused on string keys, where every value is kept).
    let mut observed: FxHashSet<RegValue> = FxHashSet::default();
    if !strings {
        for (part, o) in ops.clone() {
            match (o.f, o.outcome) {
                (OpFn::Read, Outcome::Ok) | (OpFn::Cas, _) => {
                    observed.insert(part.value(o.a));
                }
                _ => {}
            }
        }
    }
    let mut states = States::new();
    let id_of = |states: &mut States, part: &KeyPart, raw: RawValue| -> StateId {
        let v = part.value(raw);
        if strings {
            states.intern(as_string(v))
        } else if observed.contains(&v) {
            states.intern(v)
        } else {
            UNOBSERVED
        }
    };
    let initial = match start {
        Start::Initial => id_of(&mut states, &KeyPart::default(), RawValue::Nil),
        Start::Any => ANY_STATE,
    };
    let mut defs = Vec::new();
    let mut class_of: FxHashMap<(u8, StateId, StateId), usize> = FxHashMap::default();
    let mut classes: Vec<IndetClass> = Vec::new();
    let mut suffix_ids: FxHashMap<String, u32> = FxHashMap::default();
    for (part, o) in ops {
        let effect = match o.f {
            OpFn::Read => Effect::Read(id_of(&mut states, part, o.a)),
            OpFn::Write => Effect::Write(id_of(&mut states, part, o.a)),
            OpFn::Append => {
                let RegValue::Str(s) = as_string(part.value(o.a)) else {
                    unreachable!("as_string returns strings")
                };
                let next = u32::try_from(states.suffixes.len()).expect("fewer than 2^32 suffixes");
                let id = *suffix_ids.entry(s.clone()).or_insert_with(|| {
                    states.bytes += 32 + s.len();
                    states.suffixes.push(s);
                    next
                });
                Effect::Append(id)
            }
            OpFn::Cas => {
                let old = id_of(&mut states, part, o.a);
                let new = id_of(&mut states, part, o.b);
                if o.outcome == Outcome::Fail {
                    Effect::CasFail(old)
                } else {
                    Effect::Cas { old, new }
                }
            }
            OpFn::Txn => unreachable!("KeyPart::push refuses transactions"),
        };
        let i = o.op_index as usize;
        match o.outcome {
            Outcome::Fail if o.f != OpFn::Cas => {} // never happened
            Outcome::Ok | Outcome::Fail => {
                defs.push(DefOp { op_index: i, call_ns: o.call_ns, ret_ns: o.ret_ns, effect });
            }
            Outcome::Indeterminate => {
                let tag = match effect {
                    // An indeterminate read tells nothing.
                    Effect::Read(_) | Effect::CasFail(_) => continue,
                    Effect::Cas { old, new } if old == new => continue,
                    Effect::Write(v) => (0, v, 0),
                    Effect::Append(s) => (1, s, 0),
                    Effect::Cas { old, new } => (2, old, new),
                };
                let class = *class_of.entry(tag).or_insert_with(|| {
                    classes.push(IndetClass { effect, calls: Vec::new() });
                    classes.len() - 1
                });
                classes[class].calls.push((o.call_ns, i));
            }
        }
    }
    // Without a failed cas on the key, nothing can tell that the state became UNOBSERVED:
    // indeterminate operations that lead there only make later reads impossible.
    let any_cas_fail = defs.iter().any(|d| matches!(d.effect, Effect::CasFail(_)));
    if !any_cas_fail {
        classes.retain(|c| {
            !matches!(c.effect, Effect::Write(UNOBSERVED) | Effect::Cas { new: UNOBSERVED, .. })
        });
    }
    for c in &mut classes {
        c.calls.sort_unstable();
    }
    let mut resets: Vec<Reset> = Vec::new();
    for (d, def) in defs.iter().enumerate() {
        if let Some(value) = reset_value(def.effect) {
            let source = Source::Def(u32::try_from(d).expect("fewer than 2^32 ops per key"));
            resets.push(Reset { call_ns: def.call_ns, value, source });
        }
    }
    for (c, class) in classes.iter().enumerate() {
        if let Some(value) = reset_value(class.effect) {
            let source = Source::Class(u32::try_from(c).expect("fewer than 2^32 classes"));
            resets.extend(class.calls.iter().map(|&(call_ns, _)| Reset { call_ns, value, source }));
        }
    }
    resets.sort_by_key(|r| r.call_ns);
    let mut resets_by_value: FxHashMap<StateId, Vec<u32>> = FxHashMap::default();
    if !strings {
        for (i, r) in resets.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 ops per key");
            resets_by_value.entry(r.value).or_default().push(i);
        }
    }
    KeyModel { states, initial, defs, classes, strings, resets, resets_by_value }
}
