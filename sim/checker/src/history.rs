//! The history format (JSON lines, Jepsen-shaped) and its pairing into operations.
//!
//! Parsing lives in `parse.rs`; this module owns the types every checker reads.

use serde_json::Value;

/// What a history line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The operation's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpFn {
    Read,
    Write,
    /// String concatenation onto the register's current value (`null` counts as "").
    Append,
    /// Compare-and-swap, value `[old, new]`.
    Cas,
    /// A transaction: value is a list of micro-ops.
    Txn,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed with `ok`: it happened, and its completion value is in `Op::result`.
    Ok,
    /// Completed with `fail`: it certainly did not happen (or, for cas, the compare failed).
    Fail,
    /// Completed with `info`, or never completed: it may or may not have happened.
    Indeterminate,
}

/// A register value: JSON `null` (never written), an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegValue {
    Nil,
    Int(i64),
    Str(String),
}

/// One transaction micro-op; `Read`'s value is `None` in the invoke and filled in by `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroOp {
    Read { key: String, value: Option<Value> },
    Append { key: String, value: Value },
    Write { key: String, value: Value },
}

/// An invoke paired with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Dense index in invoke order; checkers use it to name operations.
    pub id: usize,
    pub process: u64,
    pub f: OpFn,
    /// Register key; `None` for a single anonymous register and for transactions.
    pub key: Option<String>,
    /// The invoke's value (write value, cas `[old, new]`, the txn's micro-ops as invoked).
    pub value: Value,
    /// The completion's value (`ok` read result, a txn's micro-ops with reads filled in).
    pub result: Option<Value>,
    pub outcome: Outcome,
    pub invoke_ns: i64,
    /// `None` when the operation never completed (it stays open forever).
    pub complete_ns: Option<i64>,
    /// 1-based line numbers in the source file, for error messages and reports.
    pub invoke_line: usize,
    pub complete_line: Option<usize>,
}

/// A whole parsed history: operations in invoke order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    pub ops: Vec<Op>,
}
