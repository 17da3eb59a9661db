//! Orders a register key's writes by visibility: if a transaction that wrote a key precedes
//! another that wrote it through write-write, write-read and (for the models that order by
//! them) process and realtime dependencies, its version comes first. The other order would
//! close a cycle of those dependencies, a G0 or G1c the model forbids, so any version order
//! that could explain the history agrees, and a cycle found with these edges is real.
//!
//! One pass suffices: a derived write-write edge joins two transactions that a path already
//! joins, so it never makes new paths; it only adds anti-dependencies (readers of the earlier
//! version precede the later write), which no rule here follows. Orders that would feed back
//! are choices, left to [`super::search`].

use serde_json::Value;

use super::cycles::RawEdge;
use super::graph::{Graph, Scratch, condensed_rank};
use super::register::KeyVersions;
use super::txns::{FxMap, TxnIdx, Txns};
use super::{Analysis, Model, Why, dep};
use crate::history::Outcome;

/// Keys with more writers than this skip working out which writers data dependencies order
/// through other writers (a square table); an order found through process or realtime edges
/// may then be explained by them although data dependencies alone imply it.
const WRITERS_CLOSED_MAX: usize = 1024;

/// A register key whose in-graph writers the history does not put in one order.
#[derive(Debug, Clone)]
pub(crate) struct OpenKey {
    /// Index into the keys handed to [`derive`].
    pub index: usize,
    /// Its in-graph writers by rank, the order the search tries first: a topological order of
    /// the write-write, write-read and model-order dependencies (the transaction that completed
    /// first comes first where nothing orders them), so that it closes no cycle of those.
    pub writers: Vec<TxnIdx>,
}

/// What the inference leaves to the search.
#[derive(Debug)]
pub(crate) struct Derived {
    pub open: Vec<OpenKey>,
}

/// Adds the write-write edges (and the anti-dependencies they imply) that the dependencies
/// between writers fix, spending at most `budget` edge visits; keys it cannot finish stay open.
pub(crate) fn derive<'a>(
    txns: &Txns<'a>,
    model: Model,
    a: &mut Analysis<'a>,
    keys: &[KeyVersions<'a>],
    base: (&[u32], &[RawEdge]),
    budget: &mut u64,
) -> Derived {
    let n = txns.txns.len();
    let (nodes, raw) = base;
    let via = dep::WW | dep::WR | model.order_kinds();
    let visible: Vec<RawEdge> = raw.iter().copied().filter(|e| e.2 & via != 0).collect();
    let g = Graph::build(n, visible);
    let mut scratch = Scratch::new(n);
    // A transaction commits before it completes, and (if its snapshot is taken when it
    // begins) before any transaction that sees it begins.
    let completion = |t: u32| match txns.op(t) {
        op if op.outcome == Outcome::Ok => op.complete_ns.map_or(u64::MAX, ns_key),
        _ => u64::MAX,
    };
    let invoke = |t: u32| ns_key(txns.op(t).invoke_ns);
    let rank = condensed_rank(&g, &mut scratch, nodes, via, completion, invoke);
    let mut walk = Walk { g: &g, rank: &rank, mark: vec![0; n], seen: vec![0; n], stamp: 0 };
    let mut open = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let mut writers: Vec<(TxnIdx, &'a Value)> =
            key.writers.iter().copied().filter(|&(t, _)| a.in_graph(txns, t)).collect();
        if writers.len() < 2 {
            continue;
        }
        writers.sort_by_key(|&(t, _)| (rank[t as usize], t));
        let Some(pairs) = walk.pairs(&writers, model.order_kinds(), budget) else {
            open.push(OpenKey { index, writers: writers.iter().map(|w| w.0).collect() });
            continue;
        };
        let mut reads = key.reads.clone();
        reads.sort_by_key(|r| r.0);
        let value_of: FxMap<TxnIdx, &'a Value> = writers.iter().copied().collect();
        let mut fixed_next = vec![false; writers.len() - 1];
        for (i, x, via) in pairs {
            let (w, old) = writers[i];
            let new = value_of[&x];
            fixed_next[i] |= writers[i + 1].0 == x;
            if g.edge(w, x).0 & dep::WW == 0 {
                a.edge(w, x, dep::WW, key.key, Why::RegWwDerived { old, new, via });
            }
            let start = reads.partition_point(|r| r.0 < w);
            for &(_, reader, seen) in reads[start..].iter().take_while(|r| r.0 == w) {
                a.edge(reader, x, dep::RW, key.key, Why::RegRwDerived { old: seen, new, via });
            }
        }
        if fixed_next.contains(&false) {
            open.push(OpenKey { index, writers: writers.iter().map(|w| w.0).collect() });
        }
    }
    Derived { open }
}

/// A time as a sort key (times before 0 sort first).
fn ns_key(ns: i64) -> u64 {
    (ns as u64) ^ (1 << 63)
}

/// Breadth-first walks over the visibility graph, one per writer of a key.
struct Walk<'g> {
    g: &'g Graph,
    rank: &'g [u32],
    /// `stamp` of the key being walked, on its writers.
    mark: Vec<u32>,
    seen: Vec<u32>,
    stamp: u32,
}

impl Walk<'_> {
    /// `(i, x, via)`: writer `x` of the key follows `writers[i]` (sorted by rank) through a
    /// path of `via` dependencies: write-write and write-read, or, where those do not reach,
    /// process edges too, or else realtime edges too (those of `order_kinds`), so that a cycle
    /// is named by the weakest order it needs. `None` when the budget runs out.
    fn pairs(
        &mut self,
        writers: &[(TxnIdx, &Value)],
        order_kinds: u8,
        budget: &mut u64,
    ) -> Option<Vec<(usize, TxnIdx, u8)>> {
        let data = dep::WW | dep::WR;
        let mut phases = vec![data];
        if order_kinds & dep::PROCESS != 0 {
            phases.push(data | dep::PROCESS);
        }
        if order_kinds & dep::REALTIME != 0 {
            phases.push(data | order_kinds);
        }
        let m = writers.len();
        let index: FxMap<TxnIdx, usize> =
            writers.iter().enumerate().map(|(i, w)| (w.0, i)).collect();
        // Which writers earlier phases ordered, directly or (for keys with at most
        // `WRITERS_CLOSED_MAX` writers) through other writers.
        let closed = m <= WRITERS_CLOSED_MAX;
        let mut after: Vec<Vec<bool>> = vec![vec![false; m]; if closed { m } else { 0 }];
        let mut direct: FxMap<(usize, TxnIdx), ()> = FxMap::default();
        let mut pairs = Vec::new();
        for (phase, &via) in phases.iter().enumerate() {
            let found = self.later_writers(writers, via, budget)?;
            for &(i, x) in &found {
                let ordered = direct.contains_key(&(i, x)) || (closed && after[i][index[&x]]);
                if !ordered {
                    pairs.push((i, x, via));
                }
            }
            if phase + 1 == phases.len() {
                break;
            }
            // `found` is sorted by `i`; walking it backwards closes `after` transitively.
            for &(i, x) in found.iter().rev() {
                direct.insert((i, x), ());
                if closed {
                    let j = index[&x];
                    after[i][j] = true;
                    let (head, tail) = after.split_at_mut(j);
                    for (f, &t) in head[i].iter_mut().zip(&tail[0]) {
                        *f |= t;
                    }
                }
            }
        }
        Some(pairs)
    }

    /// `(i, x)`: writer `x` of the key is reachable from `writers[i]` over `allowed` edges
    /// without passing another writer (the rest follow by transitivity). `writers` are sorted
    /// by rank; `None` when the budget runs out.
    fn later_writers(
        &mut self,
        writers: &[(TxnIdx, &Value)],
        allowed: u8,
        budget: &mut u64,
    ) -> Option<Vec<(usize, TxnIdx)>> {
        self.stamp += 1;
        let key_stamp = self.stamp;
        for &(t, _) in writers {
            self.mark[t as usize] = key_stamp;
        }
        let top = self.rank[writers.last().expect("two writers or more").0 as usize];
        let mut pairs = Vec::new();
        let mut queue = Vec::new();
        for (i, &(w, _)) in writers.iter().enumerate() {
            let floor = self.rank[w as usize];
            // Writers of the same rank share a cycle of these dependencies (G0 or G1c), which
            // orders nothing.
            let mut wanted = writers.iter().filter(|x| self.rank[x.0 as usize] > floor).count();
            self.stamp += 1;
            let stamp = self.stamp;
            queue.clear();
            queue.push(w);
            let mut head = 0;
            while head < queue.len() && wanted > 0 {
                let u = queue[head];
                head += 1;
                let succ = self.g.succ(u);
                *budget = budget.checked_sub(succ.len() as u64 + 1)?;
                for (v, mask, _) in self.g.succ(u) {
                    let r = self.rank[v as usize];
                    if mask & allowed == 0
                        || r <= floor
                        || r > top
                        || self.seen[v as usize] == stamp
                    {
                        continue;
                    }
                    self.seen[v as usize] = stamp;
                    if self.mark[v as usize] == key_stamp {
                        pairs.push((i, v));
                        wanted -= 1;
                    } else {
                        queue.push(v);
                    }
                }
            }
        }
        Some(pairs)
    }
}
