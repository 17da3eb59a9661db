//! A compact dependency graph (CSR, one bitmask of dependency kinds per edge), iterative
//! Tarjan SCCs and breadth-first path search, both restricted by edge kinds and node sets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks a node not yet visited by Tarjan.
const UNVISITED: u32 = u32::MAX;
/// An edge without a payload.
pub(crate) const NO_EXTRA: u32 = u32::MAX;

/// Adjacency in compressed sparse rows; parallel edges are merged into one mask.
#[derive(Debug)]
pub(crate) struct Graph {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    masks: Vec<u8>,
    /// A payload per edge (the middle node of a two-step edge), or [`NO_EXTRA`].
    extra: Vec<u32>,
}

impl Graph {
    /// Builds the graph of `n` nodes from `(src, dst, mask, extra)` edges; merged parallel
    /// edges keep the first payload that is not [`NO_EXTRA`].
    pub(crate) fn build(n: usize, mut edges: Vec<(u32, u32, u8, u32)>) -> Graph {
        edges.sort_unstable_by_key(|e| (e.0, e.1));
        let mut offsets = vec![0u32; n + 1];
        let mut targets = Vec::with_capacity(edges.len());
        let mut masks: Vec<u8> = Vec::with_capacity(edges.len());
        let mut extra = Vec::with_capacity(edges.len());
        let mut last: Option<(u32, u32)> = None;
        for (s, d, m, x) in edges {
            assert!((s as usize) < n && (d as usize) < n, "edge {s}->{d} outside {n} nodes");
            if last == Some((s, d)) {
                *masks.last_mut().expect("merged edge has a predecessor") |= m;
                let kept = extra.last_mut().expect("merged edge has a predecessor");
                if *kept == NO_EXTRA {
                    *kept = x;
                }
                continue;
            }
            last = Some((s, d));
            offsets[s as usize + 1] += 1;
            targets.push(d);
            masks.push(m);
            extra.push(x);
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Graph { offsets, targets, masks, extra }
    }

    /// The number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The edges leaving `u` as `(target, mask, extra)`.
    pub(crate) fn succ(&self, u: u32) -> impl ExactSizeIterator<Item = (u32, u8, u32)> + '_ {
        let (a, b) = (self.offsets[u as usize] as usize, self.offsets[u as usize + 1] as usize);
        (a..b).map(move |e| (self.targets[e], self.masks[e], self.extra[e]))
    }

    /// The mask and payload of the edge `u -> v`, or `(0, NO_EXTRA)`.
    pub(crate) fn edge(&self, u: u32, v: u32) -> (u8, u32) {
        let (a, b) = (self.offsets[u as usize] as usize, self.offsets[u as usize + 1] as usize);
        match self.targets[a..b].binary_search(&v) {
            Ok(i) => (self.masks[a + i], self.extra[a + i]),
            Err(_) => (0, NO_EXTRA),
        }
    }
}

/// Per-node working arrays reused by every search over one graph.
#[derive(Debug)]
pub(crate) struct Scratch {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<u32>,
    calls: Vec<(u32, u32)>,
    /// BFS: the generation that last reached a node, its parent and the edge mask used.
    seen_gen: Vec<u32>,
    parent: Vec<u32>,
    parent_mask: Vec<u8>,
    generation: u32,
    queue: Vec<u32>,
}

impl Scratch {
    pub(crate) fn new(n: usize) -> Scratch {
        Scratch {
            index: vec![UNVISITED; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            calls: Vec::new(),
            seen_gen: vec![0; n],
            parent: vec![0; n],
            parent_mask: vec![0; n],
            generation: 0,
            queue: Vec::new(),
        }
    }
}

/// The strongly connected components with at least two nodes, among `nodes`, over edges whose
/// mask meets `allowed` and whose target satisfies `member` (which must imply being in `nodes`).
pub(crate) fn sccs(
    g: &Graph,
    s: &mut Scratch,
    nodes: &[u32],
    allowed: u8,
    member: impl Fn(u32) -> bool,
) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut counter = 0u32;
    for &root in nodes {
        if s.index[root as usize] != UNVISITED {
            continue;
        }
        open(s, root, &mut counter, g);
        while let Some(&(v, e)) = s.calls.last() {
            if e < g.offsets[v as usize + 1] {
                s.calls.last_mut().expect("non-empty").1 += 1;
                let (w, m) = (g.targets[e as usize], g.masks[e as usize]);
                if m & allowed == 0 || !member(w) {
                    continue;
                }
                if s.index[w as usize] == UNVISITED {
                    open(s, w, &mut counter, g);
                } else if s.on_stack[w as usize] {
                    s.low[v as usize] = s.low[v as usize].min(s.index[w as usize]);
                }
                continue;
            }
            s.calls.pop();
            if let Some(&(p, _)) = s.calls.last() {
                s.low[p as usize] = s.low[p as usize].min(s.low[v as usize]);
            }
            if s.low[v as usize] == s.index[v as usize] {
                let mut comp = Vec::new();
                loop {
                    let w = s.stack.pop().expect("tarjan stack holds the component");
                    s.on_stack[w as usize] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.reverse();
                    out.push(comp);
                }
            }
        }
    }
    for &v in nodes {
        s.index[v as usize] = UNVISITED;
    }
    out
}

fn open(s: &mut Scratch, v: u32, counter: &mut u32, g: &Graph) {
    s.index[v as usize] = *counter;
    s.low[v as usize] = *counter;
    *counter += 1;
    s.stack.push(v);
    s.on_stack[v as usize] = true;
    s.calls.push((v, g.offsets[v as usize]));
}

/// A path as `(src, dst, mask)` steps.
pub(crate) type Path = Vec<(u32, u32, u8)>;

/// Raised when a search spends its edge-visit budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted;

/// A shortest path `from -> ... -> to` (a cycle when `from == to`) over edges whose mask meets
/// `allowed` and nodes satisfying `member`, as `(src, dst, mask & allowed)` steps.
pub(crate) fn bfs_path(
    g: &Graph,
    s: &mut Scratch,
    from: u32,
    to: u32,
    allowed: u8,
    member: impl Fn(u32) -> bool,
    budget: &mut u64,
) -> Result<Option<Path>, Exhausted> {
    s.generation += 1;
    let generation = s.generation;
    s.queue.clear();
    s.queue.push(from);
    s.seen_gen[from as usize] = generation;
    let mut head = 0;
    while head < s.queue.len() {
        let u = s.queue[head];
        head += 1;
        let (a, b) = (g.offsets[u as usize] as usize, g.offsets[u as usize + 1] as usize);
        *budget = budget.checked_sub((b - a) as u64 + 1).ok_or(Exhausted)?;
        for e in a..b {
            let (w, m) = (g.targets[e], g.masks[e] & allowed);
            if m == 0 {
                continue;
            }
            if w == to {
                let mut path = vec![(u, w, m)];
                let mut x = u;
                while x != from {
                    let p = s.parent[x as usize];
                    path.push((p, x, s.parent_mask[x as usize]));
                    x = p;
                }
                path.reverse();
                return Ok(Some(path));
            }
            if s.seen_gen[w as usize] == generation || !member(w) {
                continue;
            }
            s.seen_gen[w as usize] = generation;
            s.parent[w as usize] = u;
            s.parent_mask[w as usize] = m;
            s.queue.push(w);
        }
    }
    Ok(None)
}

/// A topological rank of `nodes` over edges meeting `allowed` between members, so that a path
/// over such edges only climbs in rank; when they form a cycle every node gets rank 0.
pub(crate) fn topo_rank(
    g: &Graph,
    nodes: &[u32],
    allowed: u8,
    member: impl Fn(u32) -> bool,
    rank: &mut [u32],
) {
    let mut indegree: Vec<u32> = Vec::with_capacity(nodes.len());
    let local = |v: u32, rank: &[u32]| rank[v as usize];
    // Use `rank` as a node -> local index map while computing in-degrees.
    for (i, &v) in nodes.iter().enumerate() {
        rank[v as usize] = i as u32;
        indegree.push(0);
    }
    for &v in nodes {
        for (w, m, _) in g.succ(v) {
            if m & allowed != 0 && member(w) {
                indegree[local(w, rank) as usize] += 1;
            }
        }
    }
    // Lowest node first: node ids follow invoke order, so ranks stay close to it and the
    // rank windows the G-single search explores stay about as wide as the concurrency.
    let mut ready: BinaryHeap<Reverse<u32>> = nodes
        .iter()
        .copied()
        .filter(|&v| indegree[local(v, rank) as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order: Vec<u32> = Vec::with_capacity(nodes.len());
    while let Some(Reverse(v)) = ready.pop() {
        order.push(v);
        for (w, m, _) in g.succ(v) {
            if m & allowed != 0 && member(w) {
                let d = &mut indegree[local(w, rank) as usize];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(w));
                }
            }
        }
    }
    // On a cycle no rank is sound for pruning: give every node the same one.
    let complete = order.len() == nodes.len();
    for &v in nodes {
        rank[v as usize] = 0;
    }
    if complete {
        for (i, &v) in order.iter().enumerate() {
            rank[v as usize] = i as u32;
        }
    }
}

/// A rank per node (`u32::MAX` outside `nodes`) from a topological order of the components of
/// `nodes` over edges meeting `allowed`: the nodes of one strongly connected component share a
/// rank, and an edge between components climbs. Among components that could come next, the one
/// with the smallest deadline comes first: the smallest `key` among its members, and the
/// smallest `start` and deadline of any node an edge leads to from them (so a transaction whose
/// key says little, like one that never completed, still comes before the first one known to
/// follow it).
pub(crate) fn condensed_rank(
    g: &Graph,
    s: &mut Scratch,
    nodes: &[u32],
    allowed: u8,
    key: impl Fn(u32) -> u64,
    start: impl Fn(u32) -> u64,
) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    let mut comp = vec![NONE; g.len()];
    let mut members: Vec<Vec<u32>> = sccs(g, s, nodes, allowed, |_| true);
    for (c, m) in members.iter().enumerate() {
        for &v in m {
            comp[v as usize] = c as u32;
        }
    }
    for &v in nodes {
        if comp[v as usize] == NONE {
            comp[v as usize] = members.len() as u32;
            members.push(vec![v]);
        }
    }
    let mut deadline: Vec<u64> =
        members.iter().map(|m| m.iter().map(|&v| key(v)).min().unwrap_or(u64::MAX)).collect();
    let first = topological(g, &comp, &members, allowed, &deadline);
    for &c in first.iter().rev() {
        for &v in &members[c as usize] {
            for w in crossing(g, &comp, allowed, v) {
                let after = deadline[comp[w as usize] as usize].min(start(w));
                deadline[c as usize] = deadline[c as usize].min(after);
            }
        }
    }
    let mut rank = vec![NONE; g.len()];
    for (r, c) in topological(g, &comp, &members, allowed, &deadline).into_iter().enumerate() {
        for &v in &members[c as usize] {
            rank[v as usize] = r as u32;
        }
    }
    assert!(nodes.iter().all(|&v| rank[v as usize] != NONE), "the condensation is acyclic");
    rank
}

/// The components in a topological order, the smallest `priority` first among those ready.
fn topological(
    g: &Graph,
    comp: &[u32],
    members: &[Vec<u32>],
    allowed: u8,
    priority: &[u64],
) -> Vec<u32> {
    let mut indegree = vec![0u32; members.len()];
    for v in members.iter().flatten() {
        for w in crossing(g, comp, allowed, *v) {
            indegree[comp[w as usize] as usize] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<(u64, u32)>> = (0..members.len() as u32)
        .filter(|&c| indegree[c as usize] == 0)
        .map(|c| Reverse((priority[c as usize], c)))
        .collect();
    let mut order = Vec::with_capacity(members.len());
    while let Some(Reverse((_, c))) = ready.pop() {
        order.push(c);
        for &v in &members[c as usize] {
            for w in crossing(g, comp, allowed, v) {
                let cw = comp[w as usize];
                indegree[cw as usize] -= 1;
                if indegree[cw as usize] == 0 {
                    ready.push(Reverse((priority[cw as usize], cw)));
                }
            }
        }
    }
    order
}

/// The targets of `v`'s edges meeting `allowed` into another component.
fn crossing<'g>(
    g: &'g Graph,
    comp: &'g [u32],
    allowed: u8,
    v: u32,
) -> impl Iterator<Item = u32> + 'g {
    g.succ(v)
        .filter(move |&(w, m, _)| m & allowed != 0 && comp[w as usize] != comp[v as usize])
        .map(|(w, _, _)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_ring_is_one_component_without_recursion() {
        let n = 300_000u32;
        let edges = (0..n).map(|i| (i, (i + 1) % n, 1u8, NO_EXTRA)).collect();
        let g = Graph::build(n as usize, edges);
        let mut s = Scratch::new(n as usize);
        let nodes: Vec<u32> = (0..n).collect();
        let comps = sccs(&g, &mut s, &nodes, 1, |_| true);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].len(), n as usize);
        // Edges of another kind are invisible.
        assert!(sccs(&g, &mut s, &nodes, 2, |_| true).is_empty());
        let mut budget = u64::MAX;
        let cycle = bfs_path(&g, &mut s, 5, 5, 1, |_| true, &mut budget).expect("budget");
        assert_eq!(cycle.expect("ring is a cycle").len(), n as usize);
    }

    #[test]
    fn components_and_paths_respect_kinds_and_members() {
        // 0 <-> 1 by kind 1; 1 -> 2 -> 0 by kind 2; 3 isolated.
        let edges =
            vec![(0, 1, 1, NO_EXTRA), (1, 0, 1, NO_EXTRA), (1, 2, 2, 7), (2, 0, 2, NO_EXTRA)];
        let g = Graph::build(4, edges);
        assert_eq!(g.edge(1, 2), (2, 7));
        assert_eq!(g.edge(2, 1), (0, NO_EXTRA));
        let mut s = Scratch::new(4);
        let all = [0, 1, 2, 3];
        assert_eq!(sccs(&g, &mut s, &all, 1, |_| true), vec![vec![0, 1]]);
        assert_eq!(sccs(&g, &mut s, &all, 3, |_| true), vec![vec![0, 1, 2]]);
        assert_eq!(sccs(&g, &mut s, &all, 3, |w| w != 1), Vec::<Vec<u32>>::new());
        let mut budget = 100;
        let path = bfs_path(&g, &mut s, 1, 0, 3, |_| true, &mut budget).expect("budget");
        assert_eq!(path, Some(vec![(1, 0, 1)]));
        let path = bfs_path(&g, &mut s, 1, 0, 2, |_| true, &mut budget).expect("budget");
        assert_eq!(path, Some(vec![(1, 2, 2), (2, 0, 2)]));
        let mut empty = 0;
        assert_eq!(bfs_path(&g, &mut s, 1, 0, 3, |_| true, &mut empty), Err(Exhausted));
    }

    #[test]
    fn topological_rank_climbs_along_edges() {
        let edges = vec![(2, 1, 1, NO_EXTRA), (1, 0, 1, NO_EXTRA), (2, 0, 1, NO_EXTRA)];
        let g = Graph::build(3, edges);
        let mut rank = vec![9; 3];
        topo_rank(&g, &[0, 1, 2], 1, |_| true, &mut rank);
        assert!(rank[2] < rank[1] && rank[1] < rank[0], "{rank:?}");
        let cyclic = Graph::build(2, vec![(0, 1, 1, NO_EXTRA), (1, 0, 1, NO_EXTRA)]);
        topo_rank(&cyclic, &[0, 1], 1, |_| true, &mut rank);
        assert_eq!(&rank[..2], &[0, 0]);
    }
}
