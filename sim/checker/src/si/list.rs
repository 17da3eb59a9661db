//! List-append keys: each key's version order from the reads, ww/wr/rw edges, and the
//! non-cycle anomalies (aborted, intermediate and garbage reads, duplicates, incompatible
//! orders, internal inconsistency, future reads, lost and dirty updates).
//!
//! A list's versions are prefixes of one another, so the longest read is the key's known order
//! and every other read must be a prefix of it; a read is then just a length. Elements no read
//! observed were appended after every observed one, which gives edges to unobserved committed
//! appends too (Elle leaves those out).

use std::collections::hash_map::Entry;

use serde_json::Value;

use super::explain::{list, value};
use super::txns::{FxMap, KeyId, Mop, TxnIdx, Txns, ValKey};
use super::{Analysis, Why, dep};
use crate::history::Outcome;

const NO_WRITER: TxnIdx = TxnIdx::MAX;

/// Who appended an element to a key.
#[derive(Debug, Clone, Copy)]
struct AppendRef {
    txn: TxnIdx,
    /// Whether this is the transaction's last append to the key.
    last: bool,
    /// Appended more than once: its writer cannot be told, so it yields no edges.
    ambiguous: bool,
}

/// A read of the state a transaction found in the store: its own appends stripped.
#[derive(Debug, Clone, Copy)]
struct ExtRead<'a> {
    txn: TxnIdx,
    key: KeyId,
    elems: &'a [Value],
    /// The transaction also appends to the key (for lost updates).
    writes_key: bool,
}

/// Per-transaction state of one key while walking its micro-ops.
#[derive(Debug)]
struct KeyState<'a> {
    key: KeyId,
    /// The list the transaction last read, if it read the key.
    known: Option<&'a [Value]>,
    /// Its own appends since then.
    own: Vec<&'a Value>,
}

pub(crate) fn analyze<'a>(txns: &Txns<'a>, a: &mut Analysis<'a>) {
    let is_list = list_keys(txns);
    if !is_list.iter().any(|&l| l) {
        return;
    }
    let appends_by_key = index_appends(txns, &is_list);
    let reads = external_reads(txns, &is_list, a);
    // Group reads by key, keeping history order within a key.
    let mut by_key: Vec<Vec<ExtRead<'a>>> = vec![Vec::new(); is_list.len()];
    for r in reads {
        by_key[r.key as usize].push(r);
    }
    let mut pass = KeyPass { txns, appender: FxMap::default(), seen: FxMap::default() };
    for (k, reads) in by_key.iter().enumerate() {
        if is_list[k] && !reads.is_empty() {
            pass.run(super::txns::to_u32(k), reads, &appends_by_key[k], a);
        }
    }
}

/// A key holds lists if anything appends to it, or reads a list from it and nothing writes it.
fn list_keys(txns: &Txns<'_>) -> Vec<bool> {
    let n = txns.key_names.len();
    let (mut appended, mut written, mut list_read) =
        (vec![false; n], vec![false; n], vec![false; n]);
    for mop in &txns.mops {
        match *mop {
            Mop::Append { key, .. } => appended[key as usize] = true,
            Mop::Write { key, .. } => written[key as usize] = true,
            Mop::Read { key, value } => list_read[key as usize] |= value.is_array(),
        }
    }
    (0..n).map(|k| appended[k] || (list_read[k] && !written[k])).collect()
}

/// One append: its transaction, its element, and whether it is the transaction's last append
/// to the key.
type Append<'a> = (TxnIdx, &'a Value, bool);

/// Every append of every transaction (whatever its outcome), by key, in history order.
fn index_appends<'a>(txns: &Txns<'a>, is_list: &[bool]) -> Vec<Vec<Append<'a>>> {
    let mut by_key: Vec<Vec<Append<'a>>> = vec![Vec::new(); is_list.len()];
    let mut later_keys: Vec<KeyId> = Vec::new();
    for t in 0..super::txns::to_u32(txns.txns.len()) {
        later_keys.clear();
        // Walk backwards so the first append met per key is the transaction's last.
        for mop in txns.mops(t).iter().rev() {
            let Mop::Append { key, value } = *mop else { continue };
            if !is_list[key as usize] {
                continue;
            }
            let last = !later_keys.contains(&key);
            if last {
                later_keys.push(key);
            }
            by_key[key as usize].push((t, value, last));
        }
    }
    for appends in &mut by_key {
        appends.reverse();
        appends.sort_by_key(|&(t, _, _)| t);
    }
    by_key
}

/// Each committed transaction's reads of the store, checked against its own earlier micro-ops.
fn external_reads<'a>(txns: &Txns<'a>, is_list: &[bool], a: &mut Analysis<'a>) -> Vec<ExtRead<'a>> {
    let mut reads = Vec::with_capacity(txns.mops.len() / 2);
    let mut states: Vec<KeyState<'a>> = Vec::new();
    for t in 0..super::txns::to_u32(txns.txns.len()) {
        if txns.outcome(t) != Outcome::Ok {
            continue;
        }
        states.clear();
        let mops = txns.mops(t);
        for mop in mops {
            let key = mop.key();
            if !is_list[key as usize] {
                continue;
            }
            let st = match states.iter().position(|s| s.key == key) {
                Some(i) => &mut states[i],
                None => {
                    states.push(KeyState { key, known: None, own: Vec::new() });
                    states.last_mut().expect("just pushed")
                }
            };
            match *mop {
                Mop::Append { value, .. } => st.own.push(value),
                Mop::Write { .. } => {}
                Mop::Read { value, .. } => {
                    let elems: &'a [Value] = match value {
                        Value::Null => &[],
                        Value::Array(v) => v,
                        other => {
                            a.found.add(txns, "garbage-read", Some(key), &[t], || {
                                format!(
                                    "{} read {}={}, which is not a list",
                                    txns.name(t),
                                    txns.key_name(key),
                                    super::explain::value(other)
                                )
                            });
                            continue;
                        }
                    };
                    let writes_key =
                        mops.iter().any(|m| matches!(m, Mop::Append { key: k, .. } if *k == key));
                    if let Some(ext) = read_in_txn(txns, t, key, st, elems, a) {
                        reads.push(ExtRead { txn: t, key, elems: ext, writes_key });
                    }
                    st.known = Some(elems);
                    st.own.clear();
                }
            }
        }
    }
    reads
}

/// Checks a read against the transaction's own earlier reads and appends of the key; returns
/// the part of it that came from the store, if any.
fn read_in_txn<'a>(
    txns: &Txns<'a>,
    t: TxnIdx,
    key: KeyId,
    st: &KeyState<'a>,
    elems: &'a [Value],
    a: &mut Analysis<'a>,
) -> Option<&'a [Value]> {
    let own_matches = |tail: &[Value]| tail.iter().zip(&st.own).all(|(x, y)| x == *y);
    let own_list =
        || format!("[{}]", st.own.iter().map(|v| value(v)).collect::<Vec<_>>().join(", "));
    if let Some(known) = st.known {
        let consistent = elems.len() == known.len() + st.own.len()
            && elems[..known.len()] == *known
            && own_matches(&elems[known.len()..]);
        if !consistent {
            a.found.add(txns, "internal", Some(key), &[t], || {
                format!(
                    "{} read {k}={}, then appended {} and read {k}={}: its own reads and appends \
                     disagree",
                    txns.name(t),
                    list(known),
                    own_list(),
                    list(elems),
                    k = txns.key_name(key),
                )
            });
        }
        return None;
    }
    let m = st.own.len();
    if m == 0 {
        return Some(elems);
    }
    if elems.len() >= m && own_matches(&elems[elems.len() - m..]) {
        // What came from the store cannot hold the transaction's own, uncommitted appends.
        let before = &elems[..elems.len() - m];
        if !before.iter().any(|e| st.own.contains(&e)) {
            return Some(before);
        }
    }
    a.found.add(txns, "internal", Some(key), &[t], || {
        format!(
            "{} appended {} to {k} and then read {k}={}, which does not end with its own appends",
            txns.name(t),
            own_list(),
            list(elems),
            k = txns.key_name(key),
        )
    });
    None
}

/// The analysis of one key; the maps are per key (small, so lookups stay in cache) and their
/// allocations are reused between keys.
struct KeyPass<'p, 'a> {
    txns: &'p Txns<'a>,
    /// The key's elements -> who appended them.
    appender: FxMap<ValKey<'a>, AppendRef>,
    /// The key's order: element -> position.
    seen: FxMap<ValKey<'a>, usize>,
}

impl<'a> KeyPass<'_, 'a> {
    fn run(
        &mut self,
        k: KeyId,
        reads: &[ExtRead<'a>],
        appends: &[Append<'a>],
        a: &mut Analysis<'a>,
    ) {
        let txns = self.txns;
        self.appender.clear();
        for &(txn, value, last) in appends {
            match self.appender.entry(ValKey::of(value)) {
                Entry::Vacant(v) => {
                    v.insert(AppendRef { txn, last, ambiguous: false });
                }
                Entry::Occupied(mut o) => o.get_mut().ambiguous = true,
            }
        }
        let longest = reads
            .iter()
            .enumerate()
            .fold(0, |best, (i, r)| if r.elems.len() > reads[best].elems.len() { i } else { best });
        let order = reads[longest].elems;
        let order_reader = reads[longest].txn;
        let writers = self.order_writers(k, order, order_reader, a);
        let aborted = |w: TxnIdx| w != NO_WRITER && txns.outcome(w) == Outcome::Fail;
        let first_aborted = writers.iter().position(|&(w, _)| aborted(w));
        if let Some(i) = first_aborted {
            self.dirty_update(k, order, &writers, i, a);
        }
        // ww along the order, skipping aborted and unknown writers.
        let mut prev: Option<usize> = None;
        for (i, &(w, _)) in writers.iter().enumerate() {
            if w == NO_WRITER || aborted(w) {
                continue;
            }
            if let Some(p) = prev {
                let why = Why::ListWw { prev: &order[p], elem: &order[i] };
                a.edge(writers[p].0, w, dep::WW, k, why);
            }
            prev = Some(i);
        }
        // Committed appends no read observed come after every observed element.
        let mut tail: Vec<(TxnIdx, &'a Value)> = Vec::new();
        for &(t, v, _) in appends {
            let unseen = !self.seen.contains_key(&ValKey::of(v));
            if unseen && txns.outcome(t) != Outcome::Fail && tail.last().is_none_or(|l| l.0 != t) {
                tail.push((t, v));
            }
        }
        if let Some(p) = prev {
            for &(t, v) in &tail {
                let why = Why::ListWwTail { prev: &order[p], elem: v };
                a.edge_if_committed(txns, writers[p].0, t, dep::WW, k, why);
            }
        }
        let mut lost: FxMap<usize, (TxnIdx, bool)> = FxMap::default();
        let mut incompatible_reported = false;
        for r in reads {
            if r.writes_key {
                self.future_read(k, r, a);
            }
            let n = r.elems.len();
            let prefix =
                n <= order.len() && (std::ptr::eq(r.elems, order) || r.elems == &order[..n]);
            if !prefix {
                if !incompatible_reported {
                    incompatible_reported = true;
                    a.found.add(
                        txns,
                        "incompatible-order",
                        Some(k),
                        &[order_reader, r.txn],
                        || {
                            format!(
                                "{} read {key}={} and {} read {key}={}: neither is a prefix of the \
                             other, so no order of appends to {key} explains both",
                                txns.name(order_reader),
                                list(order),
                                txns.name(r.txn),
                                list(r.elems),
                                key = txns.key_name(k),
                            )
                        },
                    );
                }
                self.stray_read(k, r, a);
                continue;
            }
            if let Some(i) = first_aborted.filter(|&i| i < n) {
                let w = writers[i].0;
                a.found.add(txns, "G1a", Some(k), &[r.txn, w], || {
                    format!(
                        "{} read {key}={}, including {}, which {} appended, but {} aborted",
                        txns.name(r.txn),
                        list(r.elems),
                        value(&order[i]),
                        txns.name(w),
                        txns.name(w),
                        key = txns.key_name(k),
                    )
                });
            }
            if n > 0 {
                let (w, last) = writers[n - 1];
                if w != NO_WRITER && w != r.txn && !aborted(w) {
                    a.edge(w, r.txn, dep::WR, k, Why::ListWr { version: r.elems });
                    if !last {
                        self.intermediate(k, r, w, a);
                    }
                }
            }
            if n < order.len() {
                let w = writers[n].0;
                if w != NO_WRITER && !aborted(w) {
                    a.edge(r.txn, w, dep::RW, k, Why::ListRw { version: r.elems, next: &order[n] });
                }
            } else {
                for &(t, v) in &tail {
                    let why = Why::ListRw { version: r.elems, next: v };
                    a.edge_if_committed(txns, r.txn, t, dep::RW, k, why);
                }
            }
            if r.writes_key {
                match lost.entry(n) {
                    Entry::Vacant(v) => {
                        v.insert((r.txn, false));
                    }
                    Entry::Occupied(mut o) if !o.get().1 && o.get().0 != r.txn => {
                        let first = o.get().0;
                        o.get_mut().1 = true;
                        a.found.add(txns, "lost-update", Some(k), &[first, r.txn], || {
                            format!(
                                "{} and {} both read {key}={} and both appended to {key}, and \
                                 both committed: one update is lost",
                                txns.name(first),
                                txns.name(r.txn),
                                list(r.elems),
                                key = txns.key_name(k),
                            )
                        });
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
    }

    /// Maps each position of the key's order to its writer and whether it was that writer's
    /// last append to the key; reports duplicates and garbage in the order itself.
    fn order_writers(
        &mut self,
        k: KeyId,
        order: &'a [Value],
        reader: TxnIdx,
        a: &mut Analysis<'a>,
    ) -> Vec<(TxnIdx, bool)> {
        self.seen.clear();
        let mut writers = Vec::with_capacity(order.len());
        for (i, e) in order.iter().enumerate() {
            let vk = ValKey::of(e);
            writers.push(match self.appender.get(&vk) {
                Some(r) if !r.ambiguous => {
                    a.observed[r.txn as usize] = true;
                    (r.txn, r.last)
                }
                _ => (NO_WRITER, false),
            });
            if self.seen.insert(vk, i).is_some() {
                self.duplicate(k, reader, order, e, a);
            }
        }
        self.garbage(k, reader, order, a);
        writers
    }

    /// A read that is not a prefix of the order: check its elements on their own.
    fn stray_read(&mut self, k: KeyId, r: &ExtRead<'a>, a: &mut Analysis<'a>) {
        let txns = self.txns;
        let mut local: FxMap<ValKey<'_>, ()> = FxMap::default();
        for e in r.elems {
            if local.insert(ValKey::of(e), ()).is_some() {
                self.duplicate(k, r.txn, r.elems, e, a);
            }
            if let Some(w) = self.appender.get(&ValKey::of(e)).filter(|w| !w.ambiguous) {
                a.observed[w.txn as usize] = true;
                if txns.outcome(w.txn) == Outcome::Fail {
                    a.found.add(txns, "G1a", Some(k), &[r.txn, w.txn], || {
                        format!(
                            "{} read {key}={}, including {}, which {} appended, but {} aborted",
                            txns.name(r.txn),
                            list(r.elems),
                            value(e),
                            txns.name(w.txn),
                            txns.name(w.txn),
                            key = txns.key_name(k),
                        )
                    });
                }
            }
        }
        self.garbage(k, r.txn, r.elems, a);
        if let Some(last) = r.elems.last()
            && let Some(w) = self.appender.get(&ValKey::of(last))
            && !w.ambiguous
            && w.txn != r.txn
            && txns.outcome(w.txn) != Outcome::Fail
        {
            a.edge(w.txn, r.txn, dep::WR, k, Why::ListWr { version: r.elems });
        }
    }

    /// A read holding an element its own transaction appends only later. (Its earlier appends
    /// were stripped from the read, and finding them in what is left is an `internal` anomaly.)
    fn future_read(&self, k: KeyId, r: &ExtRead<'a>, a: &mut Analysis<'a>) {
        let txns = self.txns;
        let own = |e: &&Value| {
            self.appender.get(&ValKey::of(e)).is_some_and(|w| !w.ambiguous && w.txn == r.txn)
        };
        if let Some(e) = r.elems.iter().find(own) {
            a.found.add(txns, "future-read", Some(k), &[r.txn], || {
                format!(
                    "{} read {key}={}, including {}, which {} itself appends only later: a \
                     transaction cannot observe its own future write",
                    txns.name(r.txn),
                    list(r.elems),
                    value(e),
                    txns.name(r.txn),
                    key = txns.key_name(k),
                )
            });
        }
    }

    fn duplicate(
        &self,
        k: KeyId,
        reader: TxnIdx,
        elems: &[Value],
        e: &Value,
        a: &mut Analysis<'a>,
    ) {
        let txns = self.txns;
        a.found.add(txns, "duplicate-elements", Some(k), &[reader], || {
            format!(
                "{} read {key}={}, which contains {} more than once",
                txns.name(reader),
                list(elems),
                value(e),
                key = txns.key_name(k),
            )
        });
    }

    /// Reports the first element of `elems` that no transaction appended.
    fn garbage(&self, k: KeyId, reader: TxnIdx, elems: &[Value], a: &mut Analysis<'a>) {
        let txns = self.txns;
        let stray = elems.iter().find(|e| !self.appender.contains_key(&ValKey::of(e)));
        if let Some(e) = stray {
            a.found.add(txns, "garbage-read", Some(k), &[reader], || {
                format!(
                    "{} read {key}={}, containing {}, which no transaction appended to {key}",
                    txns.name(reader),
                    list(elems),
                    value(e),
                    key = txns.key_name(k),
                )
            });
        }
    }

    fn intermediate(&self, k: KeyId, r: &ExtRead<'a>, w: TxnIdx, a: &mut Analysis<'a>) {
        let txns = self.txns;
        let last = r.elems.last().map(value).unwrap_or_default();
        a.found.add(txns, "G1b", Some(k), &[r.txn, w], || {
            format!(
                "{} read {key}={}, ending in {last}, an intermediate state of {}: {} appended \
                 {last} and then appended more to {key} in the same transaction",
                txns.name(r.txn),
                list(r.elems),
                txns.name(w),
                txns.name(w),
                key = txns.key_name(k),
            )
        });
    }

    /// An aborted append followed in the order by a committed one: the latter built on it.
    fn dirty_update(
        &self,
        k: KeyId,
        order: &[Value],
        writers: &[(TxnIdx, bool)],
        first_aborted: usize,
        a: &mut Analysis<'a>,
    ) {
        let txns = self.txns;
        let bad = writers[first_aborted].0;
        let later = writers[first_aborted + 1..]
            .iter()
            .position(|&(w, _)| w != NO_WRITER && w != bad && txns.outcome(w) != Outcome::Fail);
        if let Some(j) = later.map(|j| j + first_aborted + 1) {
            let good = writers[j].0;
            a.found.add(txns, "dirty-update", Some(k), &[bad, good], || {
                format!(
                    "{} appended {} to {key} and aborted, yet {}'s committed append of {} follows \
                     it in {key}'s order {}: {} built on an aborted write",
                    txns.name(bad),
                    value(&order[first_aborted]),
                    txns.name(good),
                    value(&order[j]),
                    list(order),
                    txns.name(good),
                    key = txns.key_name(k),
                )
            });
        }
    }
}
