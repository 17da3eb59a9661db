//! The version orders nothing in a history fixes: a bounded search over the orders of each
//! register key's writes that remain unordered after inference ([`super::visibility`]).
//!
//! A history is valid only if some version order of every key leaves no cycle the model
//! forbids, and invalid only if every order closes one. The orders that matter are grouped
//! into regions: strongly connected components of the dependency graph with each open key's
//! writers and readers joined through a hub node. Every edge some order could add lies inside
//! one region, so regions are searched independently. In each, the order the inference ranked
//! (a topological order of the dependencies, completion time where nothing orders) is checked
//! first; only when it closes a forbidden cycle does a depth-first search place the writers one
//! at a time, checking the region after each placement and pruning on the first forbidden
//! cycle. The search is bounded by `SiConfig::version_order_search_steps_max` region checks and
//! the shared edge-visit budget; when either runs out the answer is `unknown`, never a guess.

use serde_json::Value;

use super::cycles::{self, RawEdge, Witness};
use super::graph::{Exhausted, Graph, NO_EXTRA, Scratch, sccs};
use super::register::KeyVersions;
use super::txns::{FxMap, KeyId, TxnIdx, Txns, to_u32};
use super::visibility::Derived;
use super::{DepEdge, Model, Why, dep};

/// Marks the edges between a key's hub and its writers and readers (region finding only).
const HUB: u8 = 32;

/// What the search found beyond the inferred graph.
#[derive(Debug, Default)]
pub(crate) struct Searched<'a> {
    /// One witness per region where every version order closes a forbidden cycle.
    pub witnesses: Vec<Witness>,
    /// The tried edges those witnesses use, so their explanations can name them.
    pub edges: Vec<DepEdge<'a>>,
    /// Whether a budget ran out before every region was settled.
    pub exhausted: bool,
}

/// The inputs of a search over one history.
pub(crate) struct Search<'p, 'a> {
    pub txns: &'p Txns<'a>,
    pub model: Model,
    pub keys: &'p [KeyVersions<'a>],
    pub derived: &'p Derived,
    /// The inferred dependency graph, order edges included, and its nodes.
    pub graph: &'p Graph,
    pub nodes: &'p [u32],
    /// Transactions in components that already hold a forbidden cycle: their regions are
    /// invalid whatever the order, so they are not searched.
    pub in_bad_component: &'p [bool],
    pub steps_max: u64,
}

impl<'a> Search<'_, 'a> {
    /// Searches every region that holds an open key; spends `budget` edge visits.
    pub(crate) fn run(&self, budget: &mut u64) -> Searched<'a> {
        let mut out = Searched::default();
        let mut steps = 0u64;
        for region in self.regions() {
            let mut r = RegionSearch {
                model: self.model,
                budget,
                steps: &mut steps,
                max: self.steps_max,
                region: &region,
            };
            match r.search() {
                Ok(None) => {}
                Ok(Some((witness, edges))) => {
                    out.witnesses.push(witness);
                    out.edges.extend(edges);
                }
                Err(Exhausted) => {
                    out.exhausted = true;
                    break;
                }
            }
        }
        out
    }

    /// The regions holding an open key, except those that already hold a forbidden cycle.
    fn regions(&self) -> Vec<Region<'a>> {
        let n = self.graph.len();
        let allowed = dep::DATA | self.model.order_kinds();
        let open = &self.derived.open;
        let mut raw: Vec<RawEdge> = Vec::new();
        for &u in self.nodes {
            for (v, m, _) in self.graph.succ(u) {
                if m & allowed != 0 {
                    raw.push((u, v, m & allowed, NO_EXTRA));
                }
            }
        }
        let mut all: Vec<u32> = self.nodes.to_vec();
        for (j, key) in open.iter().enumerate() {
            let hub = to_u32(n + j);
            all.push(hub);
            for &w in &key.writers {
                raw.extend([(w, hub, HUB, NO_EXTRA), (hub, w, HUB, NO_EXTRA)]);
            }
            for &(_, reader, _) in &self.keys[key.index].reads {
                raw.push((reader, hub, HUB, NO_EXTRA));
            }
        }
        let joined = Graph::build(n + open.len(), raw);
        let mut scratch = Scratch::new(n + open.len());
        let mut regions = Vec::new();
        for comp in sccs(&joined, &mut scratch, &all, allowed | HUB, |_| true) {
            let (txns, hubs): (Vec<u32>, Vec<u32>) = comp.iter().partition(|&&v| (v as usize) < n);
            if hubs.is_empty() || txns.iter().any(|&t| self.in_bad_component[t as usize]) {
                continue;
            }
            regions.push(self.region(txns, &hubs));
        }
        regions
    }

    /// One region's transactions (local ids are positions in `nodes`), the inferred edges
    /// among them, and its open keys.
    fn region(&self, mut nodes: Vec<u32>, hubs: &[u32]) -> Region<'a> {
        nodes.sort_unstable();
        let local: FxMap<u32, u32> =
            nodes.iter().enumerate().map(|(i, &t)| (t, to_u32(i))).collect();
        let allowed = dep::DATA | self.model.order_kinds();
        let mut base = Vec::new();
        for &u in &nodes {
            for (v, m, _) in self.graph.succ(u) {
                if let Some(&lv) = local.get(&v).filter(|_| m & allowed != 0) {
                    base.push((local[&u], lv, m & allowed, NO_EXTRA));
                }
            }
        }
        let n = self.graph.len();
        let mut keys = Vec::new();
        for &hub in hubs {
            let open = &self.derived.open[hub as usize - n];
            let kv = &self.keys[open.index];
            let value: FxMap<TxnIdx, &'a Value> = kv.writers.iter().copied().collect();
            let index: FxMap<TxnIdx, usize> =
                open.writers.iter().enumerate().map(|(i, &w)| (w, i)).collect();
            let mut readers = vec![Vec::new(); open.writers.len()];
            for &(w, r, v) in &kv.reads {
                if let (Some(&i), Some(&lr)) = (index.get(&w), local.get(&r)) {
                    readers[i].push((lr, v));
                }
            }
            let writers = open.writers.iter().map(|&w| (local[&w], value[&w])).collect();
            keys.push(RegionKey { key: kv.key, writers, readers });
        }
        keys.sort_by_key(|k| k.key);
        let key_names = keys.iter().map(|k| self.txns.key_name(k.key)).collect::<Vec<_>>();
        Region { nodes, base, keys, key_names: key_names.join(", ") }
    }
}

/// A region: transactions by local id, the inferred edges among them, its open keys.
struct Region<'a> {
    nodes: Vec<u32>,
    base: Vec<RawEdge>,
    keys: Vec<RegionKey<'a>>,
    key_names: String,
}

/// An open key of a region: writers (local id, value written) in ranked order, and per writer
/// the reads of its versions (local reader id, value read).
struct RegionKey<'a> {
    key: KeyId,
    writers: Vec<(u32, &'a Value)>,
    readers: Vec<Vec<(u32, &'a Value)>>,
}

/// Flips the repair phase may make before the search proper takes over.
const REPAIR_FLIPS_MAX: usize = 64;

/// A tried edge: as the region's graph takes it, with its reason for explanations, and the
/// placement it stands for: writer `writer` of key `key` right after writer `after`.
#[derive(Debug, Clone, Copy)]
struct Tried<'a> {
    raw: RawEdge,
    dep: DepEdge<'a>,
    key: usize,
    after: usize,
    writer: usize,
}

impl Tried<'_> {
    /// Whether the witness cycle `w` takes this edge.
    fn in_cycle(&self, w: &Witness) -> bool {
        w.steps.iter().any(|&(u, v, k)| (self.raw.0, self.raw.1) == (u, v) && self.raw.2 & k != 0)
    }
}

/// The keys (region indices) whose tried edges the cycle `w` uses.
fn keys_in(w: &Witness, tried: &[Tried<'_>]) -> Vec<usize> {
    let mut keys = Vec::new();
    for t in tried.iter().filter(|t| t.in_cycle(w)) {
        if !keys.contains(&t.key) {
            keys.push(t.key);
        }
    }
    keys
}

/// Moves `first` to the front of `order`, keeping the relative order of the rest.
fn promote(order: &mut [usize], first: &[usize]) {
    order.sort_by_key(|k| !first.contains(k));
}

/// The search over one region.
struct RegionSearch<'s, 'a> {
    model: Model,
    budget: &'s mut u64,
    /// Region checks so far (over all regions) and their maximum.
    steps: &'s mut u64,
    max: u64,
    region: &'s Region<'a>,
}

/// One level of the depth-first search: choosing the next writer of the key at `at` in the
/// search's key order.
struct Frame {
    at: usize,
    /// The next candidate writer index to try.
    next: usize,
    /// The writer this frame placed, if any.
    placed: Option<usize>,
    /// `tried.len()` before this frame's placement.
    tried_len: usize,
}

impl<'a> RegionSearch<'_, 'a> {
    /// `None` if some order of the open keys' writers leaves no forbidden cycle, else the
    /// forbidden cycle under the ranked order and the tried edges it uses.
    ///
    /// The ranked order is checked first. If it fails, a repair phase flips, one at a time,
    /// adjacent writers whose tried edges the last cycle found uses (a writer misranked, say one
    /// that never completed, is usually one flip away). If that fails too, a depth-first
    /// search settles it: writers are placed one at a time, the keys the first cycle used
    /// first, and a placement after which the region (with only the placed keys' tried edges)
    /// has a forbidden cycle is undone, since every completion keeps that cycle. Each time a
    /// key is complete, the ranked order for the keys not yet placed is tried as a shortcut;
    /// if it fails, the keys its cycle uses are placed next.
    fn search(&mut self) -> Result<Option<(Witness, Vec<DepEdge<'a>>)>, Exhausted> {
        let keys = &self.region.keys;
        let ranked: Vec<Vec<usize>> = keys.iter().map(|k| (0..k.writers.len()).collect()).collect();
        let all_ranked = self.all_chains(&ranked);
        let Some(first) = self.check(&all_ranked)? else { return Ok(None) };
        if self.repair(ranked.clone())? {
            return Ok(None);
        }
        let mut key_order: Vec<usize> = (0..keys.len()).collect();
        promote(&mut key_order, &keys_in(&first, &all_ranked));
        let mut tried: Vec<Tried<'a>> = Vec::new();
        let mut order: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        let mut used: Vec<Vec<bool>> = keys.iter().map(|k| vec![false; k.writers.len()]).collect();
        let mut stack = vec![Frame { at: 0, next: 0, placed: None, tried_len: 0 }];
        while let Some(top) = stack.last_mut() {
            let j = key_order[top.at];
            if let Some(x) = top.placed.take() {
                used[j][x] = false;
                order[j].pop();
                tried.truncate(top.tried_len);
            }
            let m = keys[j].writers.len();
            while top.next < m && used[j][top.next] {
                top.next += 1;
            }
            if top.next == m {
                stack.pop();
                continue;
            }
            let x = top.next;
            top.next += 1;
            top.placed = Some(x);
            used[j][x] = true;
            if let Some(&p) = order[j].last() {
                self.chain(j, p, x, &mut tried);
            }
            order[j].push(x);
            if tried.len() > top.tried_len && self.check(&tried)?.is_some() {
                continue;
            }
            let at = if order[j].len() == m { top.at + 1 } else { top.at };
            if at == keys.len() {
                return Ok(None);
            }
            if at > top.at {
                let mut shortcut = tried.clone();
                let rest = key_order[at..].iter().map(|&k| (k, &ranked[k]));
                for (k, writers) in rest {
                    for pair in writers.windows(2) {
                        self.chain(k, pair[0], pair[1], &mut shortcut);
                    }
                }
                match self.check(&shortcut)? {
                    None => return Ok(None),
                    // Its cycle uses ranked edges of keys not placed yet: place those next.
                    Some(w) => promote(&mut key_order[at..], &keys_in(&w, &shortcut)),
                }
            }
            stack.push(Frame { at, next: 0, placed: None, tried_len: tried.len() });
        }
        Ok(Some(self.explain(first, &all_ranked)))
    }

    /// Whether flipping adjacent writers, starting from `orders`, finds orders without a
    /// forbidden cycle. A flip is kept if it leaves fewer components with one (or as many,
    /// failing that), and is never undone.
    fn repair(&mut self, mut orders: Vec<Vec<usize>>) -> Result<bool, Exhausted> {
        let mut bad = self.check_all(&self.all_chains(&orders))?;
        let mut done: Vec<(usize, usize, usize)> = Vec::new();
        for _ in 0..REPAIR_FLIPS_MAX {
            if bad.is_empty() {
                return Ok(true);
            }
            let tried = self.all_chains(&orders);
            let mut flips: Vec<(usize, usize, usize)> = Vec::new();
            for t in tried.iter().filter(|t| bad.iter().any(|w| t.in_cycle(w))) {
                let flip = (t.key, t.after, t.writer);
                let undo = (t.key, t.writer, t.after);
                if !flips.contains(&flip) && !done.contains(&undo) {
                    flips.push(flip);
                }
            }
            let mut sideways = None;
            let mut better = None;
            for flip in flips {
                swap(&mut orders[flip.0], flip.1, flip.2);
                let after = self.check_all(&self.all_chains(&orders))?;
                swap(&mut orders[flip.0], flip.1, flip.2);
                if after.len() < bad.len() {
                    better = Some((flip, after));
                    break;
                }
                if after.len() == bad.len() && sideways.is_none() {
                    sideways = Some((flip, after));
                }
            }
            let Some((flip, after)) = better.or(sideways) else { return Ok(false) };
            swap(&mut orders[flip.0], flip.1, flip.2);
            done.push(flip);
            bad = after;
        }
        Ok(bad.is_empty())
    }

    /// The tried edges of every key in `orders` (writer indices per key, in order).
    fn all_chains(&self, orders: &[Vec<usize>]) -> Vec<Tried<'a>> {
        let mut out = Vec::new();
        for (j, order) in orders.iter().enumerate() {
            for pair in order.windows(2) {
                self.chain(j, pair[0], pair[1], &mut out);
            }
        }
        out
    }

    /// The edges of writer `x` immediately following writer `p` of key `j`.
    fn chain(&self, j: usize, p: usize, x: usize, out: &mut Vec<Tried<'a>>) {
        let r = self.region;
        let k = &r.keys[j];
        let ((pw, old), (xw, new)) = (k.writers[p], k.writers[x]);
        let global = |l: u32| r.nodes[l as usize];
        let edge = |src: u32, kind: u8, why: Why<'a>| {
            let dep = DepEdge { src: global(src), dst: global(xw), kind, key: k.key, why };
            Tried { raw: (src, xw, kind, NO_EXTRA), dep, key: j, after: p, writer: x }
        };
        out.push(edge(pw, dep::WW, Why::RegWwTried { old, new }));
        for &(reader, seen) in k.readers[p].iter().filter(|rd| rd.0 != xw) {
            out.push(edge(reader, dep::RW, Why::RegRw { old: seen, new }));
        }
    }

    /// One step: the first forbidden cycle in the region with the `tried` edges, if any.
    fn check(&mut self, tried: &[Tried<'a>]) -> Result<Option<Witness>, Exhausted> {
        Ok(self.cycles(tried, true)?.into_iter().next())
    }

    /// One step: a forbidden cycle per component of the region with the `tried` edges.
    fn check_all(&mut self, tried: &[Tried<'a>]) -> Result<Vec<Witness>, Exhausted> {
        self.cycles(tried, false)
    }

    fn cycles(&mut self, tried: &[Tried<'a>], first_only: bool) -> Result<Vec<Witness>, Exhausted> {
        *self.steps += 1;
        if *self.steps > self.max {
            return Err(Exhausted);
        }
        let r = self.region;
        let mut raw = r.base.clone();
        raw.extend(tried.iter().map(|t| t.raw));
        let g = Graph::build(r.nodes.len(), raw);
        let all: Vec<u32> = (0..to_u32(r.nodes.len())).collect();
        let found = cycles::find(&g, &all, self.model, self.budget, first_only);
        if found.exhausted {
            return Err(Exhausted);
        }
        Ok(found.witnesses)
    }

    /// The witness under the ranked order, in global ids, with a note and its tried edges.
    fn explain(&self, w: Witness, ranked: &[Tried<'a>]) -> (Witness, Vec<DepEdge<'a>>) {
        let r = self.region;
        let global = |l: u32| r.nodes[l as usize];
        let steps: Vec<_> = w.steps.iter().map(|&(u, v, k)| (global(u), global(v), k)).collect();
        let used = ranked.iter().filter(|t| t.in_cycle(&w)).map(|t| t.dep).collect();
        let note = format!(
            "Nothing in the history orders all the writes to {}, and every order of them closes \
             a cycle {} forbids (the search checked {} orders and partial orders); this cycle \
             follows the order they were ranked in.",
            r.key_names,
            self.model.name(),
            self.steps,
        );
        (Witness { class: w.class, steps, note: Some(note) }, used)
    }
}

/// Swaps writers `a` and `b` in a key's order.
fn swap(order: &mut [usize], a: usize, b: usize) {
    let i = order.iter().position(|&w| w == a).expect("a flipped writer is in its key's order");
    let j = order.iter().position(|&w| w == b).expect("a flipped writer is in its key's order");
    order.swap(i, j);
}
