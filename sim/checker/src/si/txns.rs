//! Converts a history's transactions once into a compact form: dense txn and key ids, micro-ops
//! that borrow their values from the history, so the analysis never walks JSON structure twice.

use serde_json::Value;

use crate::history::{History, Op, OpFn, Outcome};

/// Dense index of a transaction in [`Txns::txns`] (not the `Op::id`).
pub(crate) type TxnIdx = u32;
/// Dense index of a key in [`Txns::key_names`].
pub(crate) type KeyId = u32;

/// One micro-op, borrowing its value from the history.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mop<'a> {
    /// A read; `value` is what the `ok` completion says was read (`Null` when unknown).
    Read {
        key: KeyId,
        value: &'a Value,
    },
    Append {
        key: KeyId,
        value: &'a Value,
    },
    Write {
        key: KeyId,
        value: &'a Value,
    },
}

impl Mop<'_> {
    pub(crate) fn key(&self) -> KeyId {
        match *self {
            Mop::Read { key, .. } | Mop::Append { key, .. } | Mop::Write { key, .. } => key,
        }
    }
}

/// One transaction: its operation and its micro-ops (a range of [`Txns::mops`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Txn<'a> {
    pub op: &'a Op,
    pub mops_start: u32,
    pub mops_end: u32,
}

/// Every transaction of a history in compact form.
#[derive(Debug)]
pub(crate) struct Txns<'a> {
    pub txns: Vec<Txn<'a>>,
    pub mops: Vec<Mop<'a>>,
    pub key_names: Vec<String>,
}

/// A key as it appears in a micro-op: a string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyName<'a> {
    Str(&'a str),
    Int(i64),
}

static NULL: Value = Value::Null;

impl<'a> Txns<'a> {
    /// Converts every `txn` operation; other operations are ignored. An `ok` transaction's
    /// micro-ops come from its completion (reads filled in), any other's from its invoke.
    pub(crate) fn from_history(history: &'a History) -> Result<Txns<'a>, String> {
        let mut txns = Vec::new();
        let mut mops = Vec::new();
        let mut key_names = Vec::new();
        let mut key_ids: FxMap<KeyName<'a>, KeyId> = FxMap::default();
        for op in history.ops.iter().filter(|op| op.f == OpFn::Txn) {
            let source = match (&op.outcome, &op.result) {
                (Outcome::Ok, Some(result)) => result,
                _ => &op.value,
            };
            let Value::Array(list) = source else {
                return Err(format!("T{}: expected a list of micro-ops, got {source}", op.id));
            };
            let mops_start = to_u32(mops.len());
            for mop in list {
                let (f, key, value) = split_mop(op, mop)?;
                let next_id = to_u32(key_names.len());
                let key = *key_ids.entry(key).or_insert_with(|| {
                    key_names.push(match key {
                        KeyName::Str(s) => s.to_string(),
                        KeyName::Int(i) => i.to_string(),
                    });
                    next_id
                });
                mops.push(match f {
                    "r" => {
                        let value = if op.outcome == Outcome::Ok { value } else { &NULL };
                        Mop::Read { key, value }
                    }
                    "append" => Mop::Append { key, value },
                    _ => Mop::Write { key, value },
                });
            }
            txns.push(Txn { op, mops_start, mops_end: to_u32(mops.len()) });
        }
        Ok(Txns { txns, mops, key_names })
    }

    pub(crate) fn mops(&self, t: TxnIdx) -> &[Mop<'a>] {
        let txn = &self.txns[t as usize];
        &self.mops[txn.mops_start as usize..txn.mops_end as usize]
    }

    pub(crate) fn op(&self, t: TxnIdx) -> &'a Op {
        self.txns[t as usize].op
    }

    pub(crate) fn outcome(&self, t: TxnIdx) -> Outcome {
        self.txns[t as usize].op.outcome
    }

    /// How a transaction is named in explanations: `T` and its `Op::id`.
    pub(crate) fn name(&self, t: TxnIdx) -> String {
        format!("T{}", self.op(t).id)
    }

    pub(crate) fn key_name(&self, k: KeyId) -> &str {
        &self.key_names[k as usize]
    }
}

fn split_mop<'a>(op: &Op, mop: &'a Value) -> Result<(&'a str, KeyName<'a>, &'a Value), String> {
    let bad = || {
        format!(
            "T{} (line {}): micro-op {mop} is not [\"r\"|\"append\"|\"w\", key, value]",
            op.id, op.invoke_line
        )
    };
    let Value::Array(parts) = mop else { return Err(bad()) };
    let [f, key, value] = parts.as_slice() else { return Err(bad()) };
    let f = match f.as_str() {
        Some(f @ ("r" | "append" | "w")) => f,
        _ => return Err(bad()),
    };
    let key = match key {
        Value::String(s) => KeyName::Str(s),
        Value::Number(n) => KeyName::Int(n.as_i64().ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok((f, key, value))
}

/// Dense ids are `u32`; a history with more than 4 billion micro-ops is a broken invariant here.
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("{n} does not fit a dense u32 id"))
}

/// A value as a hash key: appended elements and written values are looked up by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ValKey<'a> {
    Null,
    Int(i64),
    Str(&'a str),
    /// Any other JSON value, by its compact text.
    Json(String),
}

impl<'a> ValKey<'a> {
    pub(crate) fn of(v: &'a Value) -> ValKey<'a> {
        match v {
            Value::Null => ValKey::Null,
            Value::Number(n) if n.is_i64() => ValKey::Int(n.as_i64().unwrap_or_default()),
            Value::String(s) => ValKey::Str(s),
            other => ValKey::Json(other.to_string()),
        }
    }
}

/// The checker's lookup-only map (iteration order never leaks from it).
pub(crate) type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;
