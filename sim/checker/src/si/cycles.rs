//! Dependency cycles: the graph (data edges, plus process edges for the session and strong
//! models and realtime edges for the strong ones), its strongly connected components, and
//! within each a short witness of the most severe cycle class the model forbids.
//!
//! Within a component the classes are searched in order G0, G1c, G-single, G-nonadjacent,
//! G2-item, first over data edges, then with the model's order edges too. A witness is named
//! `-process` or `-realtime` when it takes such an edge, or a data edge whose order was derived
//! through one.
//! Each search is exhaustive for its class given that the earlier ones found nothing, which is
//! what makes the cheap ones possible: G-single prunes by a topological rank of the (then
//! acyclic) non-rw graph, and G-nonadjacent looks for a cycle in a graph whose edges are
//! "rw then non-rw" or "non-rw".

use super::explain;
use super::graph::{Exhausted, Graph, NO_EXTRA, Scratch, bfs_path, sccs, topo_rank};
use super::txns::{FxMap, TxnIdx, Txns, to_u32};
use super::{Analysis, DepEdge, Model, dep};
use crate::history::Outcome;

/// Marks a node outside every component.
const NO_COMPONENT: u32 = u32::MAX;
/// In the G-nonadjacent search graph: a plain non-rw edge, or an rw edge then a non-rw one.
const PLAIN: u8 = 1;
const RW_THEN_PLAIN: u8 = 2;

/// One edge of a witness cycle, with the single dependency kind it stands for.
pub(crate) type Step = (u32, u32, u8);

/// An edge as the graph builder takes it: `(src, dst, kind mask, payload)`.
pub(crate) type RawEdge = (u32, u32, u8, u32);

/// A forbidden cycle found: its class (`G0`, `G1c`, ...) and its steps.
#[derive(Debug, Clone)]
pub(crate) struct Witness {
    pub class: &'static str,
    pub steps: Vec<Step>,
    /// A sentence appended to the explanation (why a tried version order is shown).
    pub note: Option<String>,
}

/// What the search over the inferred graph found.
#[derive(Debug)]
pub(crate) struct Found {
    pub witnesses: Vec<Witness>,
    /// Per transaction: whether it lies in a component that holds a forbidden cycle.
    pub in_bad_component: Vec<bool>,
    /// Whether the budget ran out before every component was examined.
    pub exhausted: bool,
}

/// The in-graph transactions and the edges of the dependency graph for `model`: every
/// inferred data edge between them, plus `order` (realtime and process edges).
pub(crate) fn graph_edges<'a>(
    txns: &Txns<'a>,
    a: &Analysis<'a>,
    order: &[RawEdge],
) -> (Vec<u32>, Vec<RawEdge>) {
    let nodes: Vec<u32> = (0..to_u32(txns.txns.len())).filter(|&t| a.in_graph(txns, t)).collect();
    let mut raw: Vec<RawEdge> = a
        .edges
        .iter()
        .filter(|e| a.in_graph(txns, e.src) && a.in_graph(txns, e.dst))
        .map(|e| (e.src, e.dst, e.kind, NO_EXTRA))
        .collect();
    raw.extend_from_slice(order);
    (nodes, raw)
}

/// Finds a witness of the most severe forbidden cycle class in each strongly connected
/// component of `g` among `nodes` (or only the first such witness), spending `budget`.
pub(crate) fn find(
    g: &Graph,
    nodes: &[u32],
    model: Model,
    budget: &mut u64,
    first_only: bool,
) -> Found {
    let n = g.len();
    let order_kinds = model.order_kinds();
    let mut f = Finder {
        g,
        s: Scratch::new(n),
        comp_of: vec![NO_COMPONENT; n],
        rank: vec![0; n],
        sub_of: vec![NO_COMPONENT; n],
        budget: *budget,
    };
    let comps = sccs(g, &mut f.s, nodes, dep::DATA | order_kinds, |_| true);
    for (c, comp) in comps.iter().enumerate() {
        for &v in comp {
            f.comp_of[v as usize] = to_u32(c);
        }
    }
    let mut found =
        Found { witnesses: Vec::new(), in_bad_component: vec![false; n], exhausted: false };
    for (c, comp) in comps.iter().enumerate() {
        let passes: &[u8] = if order_kinds != 0 { &[0, order_kinds] } else { &[0] };
        let hit = passes.iter().try_fold(None, |hit, &extra| match hit {
            Some(hit) => Ok(Some(hit)),
            None => f.classify(comp, to_u32(c), extra, model.forbids_g2_item()),
        });
        match hit {
            Ok(Some((class, steps))) => {
                found.witnesses.push(Witness { class, steps, note: None });
                for &v in comp {
                    found.in_bad_component[v as usize] = true;
                }
                if first_only {
                    break;
                }
            }
            Ok(None) => {}
            Err(Exhausted) => {
                found.exhausted = true;
                break;
            }
        }
    }
    *budget = f.budget;
    found
}

/// Records the witnesses as anomalies, each explained edge by edge.
pub(crate) fn report_all<'a>(
    txns: &Txns<'a>,
    model: Model,
    a: &mut Analysis<'a>,
    witnesses: &[Witness],
) {
    // Explanations look edges up by (src, dst, kind), the reason that needs the fewest order
    // kinds first; sort only when there is one to explain.
    if !witnesses.is_empty() {
        a.edges.sort_unstable_by_key(|e| (e.src, e.dst, e.kind, e.why.order_kinds()));
    }
    for w in witnesses {
        report(txns, model, a, w);
    }
}

/// Realtime edges (T1 completed before T2 was invoked), through a frontier of the latest
/// completions so each transaction gets edges only from its immediate predecessors; and
/// process edges from each committed transaction to the next one of its process. Only the
/// kinds `model` orders by.
pub(crate) fn order_edges(txns: &Txns<'_>, model: Model, nodes: &[u32]) -> Vec<RawEdge> {
    let kinds = model.order_kinds();
    let mut raw = Vec::new();
    let op = |t: u32| txns.op(t);
    if kinds & dep::REALTIME != 0 {
        // (time, 0 = invoke / 1 = completion, txn): at equal times nothing is ordered.
        let mut events: Vec<(i64, u8, u32)> = Vec::with_capacity(2 * nodes.len());
        for &t in nodes {
            events.push((op(t).invoke_ns, 0, t));
            if op(t).outcome == Outcome::Ok
                && let Some(done) = op(t).complete_ns
            {
                events.push((done, 1, t));
            }
        }
        events.sort_unstable();
        let mut frontier: Vec<u32> = Vec::new();
        for (_, kind, t) in events {
            if kind == 0 {
                raw.extend(frontier.iter().map(|&p| (p, t, dep::REALTIME, NO_EXTRA)));
            } else {
                let invoked = op(t).invoke_ns;
                frontier.retain(|&p| op(p).complete_ns.is_none_or(|done| done >= invoked));
                frontier.push(t);
            }
        }
    }
    if kinds & dep::PROCESS != 0 {
        let mut last_ok: FxMap<u64, u32> = FxMap::default();
        for &t in nodes {
            if let Some(&p) = last_ok.get(&op(t).process) {
                raw.push((p, t, dep::PROCESS, NO_EXTRA));
            }
            if op(t).outcome == Outcome::Ok {
                last_ok.insert(op(t).process, t);
            }
        }
    }
    raw
}

/// The searches' shared state over one graph.
struct Finder<'g> {
    g: &'g Graph,
    s: Scratch,
    comp_of: Vec<u32>,
    rank: Vec<u32>,
    sub_of: Vec<u32>,
    budget: u64,
}

impl Finder<'_> {
    /// The most severe forbidden class with a cycle in component `c`, over data edges plus
    /// `extra` kinds.
    fn classify(
        &mut self,
        nodes: &[u32],
        c: u32,
        extra: u8,
        g2_item: bool,
    ) -> Result<Option<(&'static str, Vec<Step>)>, Exhausted> {
        if let Some(cycle) = self.any_cycle(nodes, c, dep::WW | extra)? {
            return Ok(Some(("G0", cycle)));
        }
        if let Some(cycle) = self.any_cycle(nodes, c, dep::WW | dep::WR | extra)? {
            return Ok(Some(("G1c", cycle)));
        }
        if let Some(cycle) = self.single(nodes, c, dep::WW | dep::WR | extra)? {
            return Ok(Some(("G-single", cycle)));
        }
        if let Some(cycle) = self.nonadjacent(nodes, c, dep::WW | dep::WR | extra)? {
            return Ok(Some(("G-nonadjacent", cycle)));
        }
        if g2_item && let Some(cycle) = self.adjacent(nodes, c, dep::DATA | extra)? {
            return Ok(Some(("G2-item", cycle)));
        }
        Ok(None)
    }

    /// A short cycle over `allowed` edges, if any.
    fn any_cycle(
        &mut self,
        nodes: &[u32],
        c: u32,
        allowed: u8,
    ) -> Result<Option<Vec<Step>>, Exhausted> {
        let comp_of = &self.comp_of;
        let subs = sccs(self.g, &mut self.s, nodes, allowed, |w| comp_of[w as usize] == c);
        let Some(sub) = subs.first() else { return Ok(None) };
        let start = sub[0];
        let path = bfs_path(
            self.g,
            &mut self.s,
            start,
            start,
            allowed,
            |w| comp_of[w as usize] == c,
            &mut self.budget,
        )?;
        let path = path.expect("a node of a strongly connected component lies on a cycle");
        Ok(Some(path.into_iter().map(|(u, v, m)| (u, v, label(m))).collect()))
    }

    /// A cycle of exactly one rw edge and `plain` edges, if any. Assumes the `plain` edges are
    /// acyclic within the component (else G0 or G1c was found first).
    fn single(&mut self, nodes: &[u32], c: u32, plain: u8) -> Result<Option<Vec<Step>>, Exhausted> {
        let comp_of = &self.comp_of;
        topo_rank(self.g, nodes, plain, |w| comp_of[w as usize] == c, &mut self.rank);
        for &u in nodes {
            for (v, m, _) in self.g.succ(u) {
                let rank = &self.rank;
                if m & dep::RW == 0
                    || m & plain != 0
                    || comp_of[v as usize] != c
                    || rank[v as usize] > rank[u as usize]
                {
                    continue;
                }
                let top = rank[u as usize];
                let member = |w: u32| comp_of[w as usize] == c && rank[w as usize] <= top;
                if let Some(path) =
                    bfs_path(self.g, &mut self.s, v, u, plain, member, &mut self.budget)?
                {
                    let mut cycle = vec![(u, v, dep::RW)];
                    cycle.extend(path.into_iter().map(|(x, y, m)| (x, y, label(m))));
                    return Ok(Some(cycle));
                }
            }
        }
        Ok(None)
    }

    /// A cycle of several rw edges, none adjacent (assuming no G-single): a cycle, containing a
    /// rw-then-plain step, in the graph of plain steps and rw-then-plain steps.
    fn nonadjacent(
        &mut self,
        nodes: &[u32],
        c: u32,
        plain: u8,
    ) -> Result<Option<Vec<Step>>, Exhausted> {
        let g = self.g;
        let comp_of = &self.comp_of;
        // Local ids: the component's nodes in order.
        for (i, &v) in nodes.iter().enumerate() {
            self.rank[v as usize] = to_u32(i);
        }
        let local = &self.rank;
        let mut edges: Vec<(u32, u32, u8, u32)> = Vec::new();
        for &u in nodes {
            let before = edges.len();
            for (v, m, _) in g.succ(u) {
                if comp_of[v as usize] != c {
                    continue;
                }
                if m & plain != 0 {
                    edges.push((local[u as usize], local[v as usize], PLAIN, NO_EXTRA));
                }
                if m & dep::RW != 0 {
                    let steps =
                        g.succ(v).filter(|&(w, m2, _)| m2 & plain != 0 && comp_of[w as usize] == c);
                    for (w, _, _) in steps {
                        edges.push((local[u as usize], local[w as usize], RW_THEN_PLAIN, v));
                    }
                }
            }
            let spent = (edges.len() - before) as u64 + 1;
            self.budget = self.budget.checked_sub(spent).ok_or(Exhausted)?;
        }
        let h = Graph::build(nodes.len(), edges);
        let mut hs = Scratch::new(nodes.len());
        let all: Vec<u32> = (0..to_u32(nodes.len())).collect();
        for (i, sub) in sccs(&h, &mut hs, &all, PLAIN | RW_THEN_PLAIN, |_| true).iter().enumerate()
        {
            for &x in sub {
                self.sub_of[x as usize] = to_u32(i);
            }
            let sub_of = &self.sub_of;
            let member = |x: u32| sub_of[x as usize] == to_u32(i);
            let entry = sub.iter().find_map(|&x| {
                h.succ(x)
                    .find(|&(z, m, _)| m & RW_THEN_PLAIN != 0 && member(z))
                    .map(|(z, _, mid)| (x, z, mid))
            });
            let found = match entry {
                Some((x, z, mid)) => {
                    bfs_path(&h, &mut hs, z, x, PLAIN | RW_THEN_PLAIN, member, &mut self.budget)?
                        .map(|path| (x, z, mid, path))
                }
                None => None,
            };
            for &x in sub {
                self.sub_of[x as usize] = NO_COMPONENT;
            }
            if let Some((x, z, mid, path)) = found {
                let global = |x: u32| nodes[x as usize];
                let mut cycle = Vec::new();
                self.expand(&mut cycle, global(x), mid, global(z), plain);
                for (p, q, m) in path {
                    if m & PLAIN != 0 {
                        cycle.push((
                            global(p),
                            global(q),
                            label(g.edge(global(p), global(q)).0 & plain),
                        ));
                    } else {
                        let mid = h.edge(p, q).1;
                        self.expand(&mut cycle, global(p), mid, global(q), plain);
                    }
                }
                return Ok(Some(simple_nonadjacent(cycle)));
            }
        }
        Ok(None)
    }

    fn expand(&self, cycle: &mut Vec<Step>, u: u32, mid: u32, w: u32, plain: u8) {
        assert_ne!(mid, NO_EXTRA, "an rw-then-plain step {u}->{w} lost its middle node");
        cycle.push((u, mid, dep::RW));
        cycle.push((mid, w, label(self.g.edge(mid, w).0 & plain)));
    }

    /// Any cycle through an rw edge over `allowed` edges (G2-item once the others are ruled out).
    fn adjacent(
        &mut self,
        nodes: &[u32],
        c: u32,
        allowed: u8,
    ) -> Result<Option<Vec<Step>>, Exhausted> {
        let comp_of = &self.comp_of;
        let subs = sccs(self.g, &mut self.s, nodes, allowed, |w| comp_of[w as usize] == c);
        for (i, sub) in subs.iter().enumerate() {
            for &x in sub {
                self.sub_of[x as usize] = to_u32(i);
            }
            let sub_of = &self.sub_of;
            let member = |x: u32| sub_of[x as usize] == to_u32(i);
            let entry = sub.iter().find_map(|&u| {
                self.g
                    .succ(u)
                    .find(|&(v, m, _)| m & dep::RW != 0 && member(v))
                    .map(|(v, _, _)| (u, v))
            });
            let found = match entry {
                Some((u, v)) => {
                    bfs_path(self.g, &mut self.s, v, u, allowed, member, &mut self.budget)?
                        .map(|path| (u, v, path))
                }
                None => None,
            };
            for &x in sub {
                self.sub_of[x as usize] = NO_COMPONENT;
            }
            if let Some((u, v, path)) = found {
                let mut cycle = vec![(u, v, dep::RW)];
                cycle.extend(path.into_iter().map(|(x, y, m)| (x, y, label(m))));
                return Ok(Some(cycle));
            }
        }
        Ok(None)
    }
}

/// Whether a closed walk has an rw step and no two rw steps adjacent (cyclically).
fn is_nonadjacent(walk: &[Step]) -> bool {
    let rw = |i: usize| walk[i % walk.len()].2 == dep::RW;
    !walk.is_empty() && (0..walk.len()).any(rw) && !(0..walk.len()).any(|i| rw(i) && rw(i + 1))
}

/// The search finds a closed walk, which may pass a transaction twice; split it at repeated
/// transactions while one part keeps the G-nonadjacent shape, so the witness reads as a cycle.
fn simple_nonadjacent(mut walk: Vec<Step>) -> Vec<Step> {
    'split: loop {
        for j in 1..walk.len() {
            if let Some(i) = (0..j).find(|&i| walk[i].0 == walk[j].0) {
                let inner: Vec<Step> = walk[i..j].to_vec();
                let outer: Vec<Step> = walk[..i].iter().chain(&walk[j..]).copied().collect();
                if is_nonadjacent(&inner) {
                    walk = inner;
                    continue 'split;
                }
                if is_nonadjacent(&outer) {
                    walk = outer;
                    continue 'split;
                }
            }
        }
        return walk;
    }
}

/// The single kind an edge stands for in a witness: data before order, rw last.
fn label(mask: u8) -> u8 {
    [dep::WW, dep::WR, dep::PROCESS, dep::REALTIME, dep::RW]
        .into_iter()
        .find(|&k| mask & k != 0)
        .unwrap_or_else(|| panic!("witness edge with empty mask {mask}"))
}

/// Records a witness cycle, named by its class and by the order edges it needs.
fn report<'a>(txns: &Txns<'a>, model: Model, a: &mut Analysis<'a>, w: &Witness) {
    let (class, steps) = (w.class, &w.steps[..]);
    // A data edge whose order was derived through process or realtime edges needs them too.
    let derived_kinds = steps
        .iter()
        .filter(|s| s.2 & dep::DATA != 0)
        .filter_map(|&(u, v, k)| edge_reason(&a.edges, u, v, k))
        .fold(0, |kinds, e| kinds | e.why.order_kinds());
    let has = |k: u8| steps.iter().any(|s| s.2 == k) || derived_kinds & k != 0;
    let suffix = if has(dep::REALTIME) {
        "-realtime"
    } else if has(dep::PROCESS) {
        "-process"
    } else {
        ""
    };
    let kind = format!("{class}{suffix}");
    let mut witnesses: Vec<TxnIdx> = Vec::new();
    for &(u, _, _) in steps {
        if !witnesses.contains(&u) {
            witnesses.push(u);
        }
    }
    let explanation = || {
        let mut names: Vec<String> = steps.iter().map(|s| txns.name(s.0)).collect();
        names.push(txns.name(steps[0].0));
        let why: Vec<String> =
            steps.iter().map(|&(u, v, k)| step_sentence(txns, &a.edges, u, v, k)).collect();
        let mut text = format!(
            "{kind} cycle {}: {}. That is {}, which {} forbids.",
            names.join(" -> "),
            why.join("; "),
            explain::class_meaning(class),
            model.name()
        );
        if let Some(note) = &w.note {
            text.push(' ');
            text.push_str(note);
        }
        text
    };
    let explanation = explanation();
    a.found.add(txns, &kind, None, &witnesses, || explanation);
}

/// The first inferred edge `u -> v` of `kind` in `edges`, sorted by `(src, dst, kind)`.
fn edge_reason<'e, 'a>(
    edges: &'e [DepEdge<'a>],
    u: u32,
    v: u32,
    kind: u8,
) -> Option<&'e DepEdge<'a>> {
    let i = edges.partition_point(|e| (e.src, e.dst, e.kind) < (u, v, kind));
    edges.get(i).filter(|e| (e.src, e.dst, e.kind) == (u, v, kind))
}

fn step_sentence(txns: &Txns<'_>, edges: &[DepEdge<'_>], u: u32, v: u32, kind: u8) -> String {
    let text = if kind & dep::DATA != 0 {
        let e = edge_reason(edges, u, v, kind)
            .unwrap_or_else(|| panic!("witness edge {u}->{v} ({}) has no reason", dep::name(kind)));
        explain::data_edge(txns, e)
    } else {
        explain::order_edge(txns, u, v, kind)
    };
    format!("{text} ({})", dep::name(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_split_into_cycles_that_keep_their_shape() {
        let (ww, rw, wr) = (dep::WW, dep::RW, dep::WR);
        // 0 -rw-> 1 -ww-> 2 -rw-> 0 ... passes 0 twice: 0 -rw-> 3 -wr-> 4 -rw-> 5 -ww-> 0.
        let walk = vec![
            (0, 1, rw),
            (1, 2, ww),
            (2, 0, rw),
            (0, 3, rw),
            (3, 4, wr),
            (4, 5, rw),
            (5, 0, ww),
        ];
        assert!(!is_nonadjacent(&walk[..3]));
        let cycle = simple_nonadjacent(walk);
        assert_eq!(cycle, vec![(0, 3, rw), (3, 4, wr), (4, 5, rw), (5, 0, ww)]);
        assert!(is_nonadjacent(&cycle));
        assert_eq!(label(rw | ww), ww);
        assert_eq!(label(dep::REALTIME | dep::PROCESS), dep::PROCESS);
    }
}
