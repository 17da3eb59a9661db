//! Read-write registers with unique written values: wr edges from the values read, and the
//! version orders the reads imply. Every write follows the initial `nil`; a transaction that
//! read `v` and then wrote the key installed a version after `v`. A write of `null` is a delete:
//! on a key something may have deleted, a read of `null` may observe the delete rather than the
//! initial state, so it orders nothing (the key's non-null versions are still ordered as
//! usual: leaving the deletes out of the order only drops edges). The writers and readers of
//! each key are handed on ([`KeyVersions`]) so that [`super::visibility`] can order writes by
//! the dependencies between their transactions and [`super::search`] can try the orders that
//! nothing fixes.

use std::collections::hash_map::Entry;

use serde_json::Value;

use super::explain::value;
use super::txns::{FxMap, KeyId, Mop, TxnIdx, Txns, ValKey, to_u32};
use super::{Analysis, Why, dep};
use crate::history::Outcome;

/// Who wrote a value to a key.
#[derive(Debug, Clone, Copy)]
struct WriteRef {
    txn: TxnIdx,
    /// Whether this is the transaction's last write to the key.
    last: bool,
    /// Written more than once: its writer cannot be told, so it yields no edges.
    ambiguous: bool,
}

/// A committed transaction's first read of a key it had not written before.
#[derive(Debug, Clone, Copy)]
struct ExtRead<'a> {
    txn: TxnIdx,
    value: &'a Value,
    /// The transaction writes the key after reading it; `new` is its last write.
    new: Option<&'a Value>,
}

/// One register key's writers and the reads of their versions.
#[derive(Debug, Clone)]
pub(crate) struct KeyVersions<'a> {
    pub key: KeyId,
    /// Transactions that did not abort and wrote the key, with the last value each wrote, in
    /// history order.
    pub writers: Vec<(TxnIdx, &'a Value)>,
    /// `(writer, reader, value read)`: committed reads of a value one writer wrote.
    pub reads: Vec<(TxnIdx, TxnIdx, &'a Value)>,
}

/// Infers the register keys' edges and non-cycle anomalies; returns the keys that two or more
/// transactions wrote, whose version order may need more than the reads to settle.
pub(crate) fn analyze<'a>(txns: &Txns<'a>, a: &mut Analysis<'a>) -> Vec<KeyVersions<'a>> {
    let n_keys = txns.key_names.len();
    let is_register = register_keys(txns);
    if !is_register.iter().any(|&r| r) {
        return Vec::new();
    }
    let mut writer: FxMap<(KeyId, ValKey<'a>), WriteRef> = FxMap::default();
    let mut possible_writers: Vec<Vec<(TxnIdx, &'a Value)>> = vec![Vec::new(); n_keys];
    let mut deleted = vec![false; n_keys];
    let mut later_keys: Vec<KeyId> = Vec::new();
    for t in 0..to_u32(txns.txns.len()) {
        later_keys.clear();
        for mop in txns.mops(t).iter().rev() {
            let Mop::Write { key, value } = *mop else { continue };
            if !is_register[key as usize] {
                continue;
            }
            let last = !later_keys.contains(&key);
            if last {
                later_keys.push(key);
                if txns.outcome(t) != Outcome::Fail {
                    if value.is_null() {
                        deleted[key as usize] = true;
                    } else {
                        possible_writers[key as usize].push((t, value));
                    }
                }
            }
            match writer.entry((key, ValKey::of(value))) {
                Entry::Vacant(v) => {
                    v.insert(WriteRef { txn: t, last, ambiguous: false });
                }
                Entry::Occupied(mut o) => o.get_mut().ambiguous = true,
            }
        }
    }
    // Group external reads by key and value; BTreeMap-free because groups are visited in
    // first-read order, which is deterministic.
    let mut groups: FxMap<(KeyId, ValKey<'a>), usize> = FxMap::default();
    let mut group_reads: Vec<(KeyId, Vec<ExtRead<'a>>)> = Vec::new();
    for (key, read) in external_reads(txns, &is_register, a) {
        let g = *groups.entry((key, ValKey::of(read.value))).or_insert_with(|| {
            group_reads.push((key, Vec::new()));
            group_reads.len() - 1
        });
        group_reads[g].1.push(read);
    }
    let mut version_reads: Vec<Vec<(TxnIdx, TxnIdx, &'a Value)>> = vec![Vec::new(); n_keys];
    for (key, reads) in &group_reads {
        let key = *key;
        if reads[0].value.is_null() {
            if !deleted[key as usize] {
                nil_reads(txns, key, reads, &possible_writers[key as usize], a);
            }
        } else {
            let w = writer.get(&(key, ValKey::of(reads[0].value))).copied();
            value_reads(txns, key, reads, w, a, &mut version_reads[key as usize]);
        }
        lost_updates(txns, key, reads, a);
    }
    let keys = possible_writers.into_iter().zip(version_reads).enumerate();
    keys.filter(|(_, (writers, _))| writers.len() >= 2)
        .map(|(k, (writers, reads))| KeyVersions { key: to_u32(k), writers, reads })
        .collect()
}

/// A key is a register if something writes it, or reads a non-list from it.
fn register_keys(txns: &Txns<'_>) -> Vec<bool> {
    let n = txns.key_names.len();
    let (mut appended, mut written, mut scalar_read) =
        (vec![false; n], vec![false; n], vec![false; n]);
    for mop in &txns.mops {
        match *mop {
            Mop::Append { key, .. } => appended[key as usize] = true,
            Mop::Write { key, .. } => written[key as usize] = true,
            Mop::Read { key, value } => {
                scalar_read[key as usize] |= !value.is_array() && !value.is_null()
            }
        }
    }
    (0..n).map(|k| !appended[k] && (written[k] || scalar_read[k])).collect()
}

/// Each committed transaction's reads of the store, checked against its own earlier reads and
/// writes of the same key.
fn external_reads<'a>(
    txns: &Txns<'a>,
    is_register: &[bool],
    a: &mut Analysis<'a>,
) -> Vec<(KeyId, ExtRead<'a>)> {
    let mut reads = Vec::new();
    // key -> (last value read or written, whether the transaction wrote it)
    let mut state: Vec<(KeyId, &'a Value, bool)> = Vec::new();
    for t in 0..to_u32(txns.txns.len()) {
        if txns.outcome(t) != Outcome::Ok {
            continue;
        }
        state.clear();
        let mops = txns.mops(t);
        for (i, mop) in mops.iter().enumerate() {
            let key = mop.key();
            if !is_register[key as usize] {
                continue;
            }
            let slot = state.iter().position(|s| s.0 == key);
            match (*mop, slot) {
                (Mop::Write { value, .. }, Some(s)) => state[s] = (key, value, true),
                (Mop::Write { value, .. }, None) => state.push((key, value, true)),
                (Mop::Read { value, .. }, Some(s)) => {
                    let (_, expected, wrote) = state[s];
                    if value != expected {
                        a.found.add(txns, "internal", Some(key), &[t], || {
                            format!(
                                "{} {} {k}={} and then read {k}={}",
                                txns.name(t),
                                if wrote { "wrote" } else { "read" },
                                super::explain::value(expected),
                                super::explain::value(value),
                                k = txns.key_name(key),
                            )
                        });
                    }
                    state[s] = (key, value, wrote);
                }
                (Mop::Read { value, .. }, None) => {
                    state.push((key, value, false));
                    let new = mops[i + 1..].iter().rev().find_map(|m| match *m {
                        Mop::Write { key: k, value } if k == key => Some(value),
                        _ => None,
                    });
                    reads.push((key, ExtRead { txn: t, value, new }));
                }
                (Mop::Append { .. }, _) => {}
            }
        }
    }
    reads
}

/// Reads of the initial state precede every committed write of the key (indeterminate writes
/// count once something observed them).
fn nil_reads<'a>(
    txns: &Txns<'a>,
    key: KeyId,
    reads: &[ExtRead<'a>],
    writers: &[(TxnIdx, &'a Value)],
    a: &mut Analysis<'a>,
) {
    for r in reads {
        for &(w, new) in writers {
            a.edge_if_committed(txns, r.txn, w, dep::RW, key, Why::RegRw { old: r.value, new });
        }
    }
}

/// Reads of one written value: wr from its writer, and the version orders read-then-write
/// transactions imply.
fn value_reads<'a>(
    txns: &Txns<'a>,
    key: KeyId,
    reads: &[ExtRead<'a>],
    writer: Option<WriteRef>,
    a: &mut Analysis<'a>,
    version_reads: &mut Vec<(TxnIdx, TxnIdx, &'a Value)>,
) {
    let v = reads[0].value;
    let k = txns.key_name(key);
    let Some(w) = writer else {
        for r in reads {
            a.found.add(txns, "garbage-read", Some(key), &[r.txn], || {
                format!("{} read {k}={}, which no transaction wrote", txns.name(r.txn), value(v))
            });
        }
        return;
    };
    if w.ambiguous {
        return;
    }
    a.observed[w.txn as usize] = true;
    for r in reads {
        if w.txn == r.txn {
            a.found.add(txns, "future-read", Some(key), &[r.txn], || {
                format!(
                    "{} read {k}={}, a value only {} itself writes, and only later: a \
                     transaction cannot observe its own future write",
                    txns.name(r.txn),
                    value(v),
                    txns.name(r.txn),
                )
            });
            continue;
        }
        if txns.outcome(w.txn) == Outcome::Fail {
            a.found.add(txns, "G1a", Some(key), &[r.txn, w.txn], || {
                format!(
                    "{} read {k}={}, which {} wrote, but {} aborted",
                    txns.name(r.txn),
                    value(v),
                    txns.name(w.txn),
                    txns.name(w.txn)
                )
            });
            continue;
        }
        a.edge(w.txn, r.txn, dep::WR, key, Why::RegWr { value: v });
        version_reads.push((w.txn, r.txn, v));
        if !w.last {
            a.found.add(txns, "G1b", Some(key), &[r.txn, w.txn], || {
                format!(
                    "{} read {k}={}, an intermediate state of {}, which wrote {k} again later \
                     in the same transaction",
                    txns.name(r.txn),
                    value(v),
                    txns.name(w.txn)
                )
            });
        }
        if let Some(new) = r.new {
            a.edge(w.txn, r.txn, dep::WW, key, Why::RegWw { old: v, new });
            for other in reads.iter().filter(|o| o.txn != r.txn) {
                a.edge(other.txn, r.txn, dep::RW, key, Why::RegRw { old: v, new });
            }
        }
    }
}

/// Two committed transactions read the same version of a key and both wrote it.
fn lost_updates<'a>(txns: &Txns<'a>, key: KeyId, reads: &[ExtRead<'a>], a: &mut Analysis<'a>) {
    let mut writers = reads.iter().filter(|r| r.new.is_some());
    if let (Some(first), Some(second)) = (writers.next(), writers.next()) {
        a.found.add(txns, "lost-update", Some(key), &[first.txn, second.txn], || {
            format!(
                "{} and {} both read {k}={} and both wrote {k}, and both committed: one update \
                 is lost",
                txns.name(first.txn),
                txns.name(second.txn),
                value(first.value),
                k = txns.key_name(key),
            )
        });
    }
}
