//! Snapshot isolation and serializability, black box, in the style of Elle.
//!
//! The pipeline: convert every transaction once ([`txns`]); infer each key's version order from
//! the reads and derive ww/wr/rw dependencies plus the non-cycle anomalies ([`list`] for
//! list-append keys, [`register`] for rw-registers with unique written values); add process
//! edges for the session and strong models and realtime edges for the strong ones; order
//! register writes by the dependencies between their writers ([`visibility`]); find strongly
//! connected components and, within each, a short witness cycle of the most severe class the
//! model forbids ([`cycles`]); last, search the register write orders nothing fixes for one
//! without a forbidden cycle ([`search`]).
//!
//! Inference is conservative: an edge is added only when the history implies it, so a cycle is
//! a real anomaly; a cycle the search reports closes under every order it could try. The
//! search answers `unknown` when its budget runs out, never a guess. Indeterminate (`info`)
//! transactions join the graph only when a read observes one of their writes; failed
//! transactions are aborted and never join it.

mod cycles;
mod explain;
pub mod generate;
mod graph;
mod list;
mod register;
mod search;
mod txns;
mod visibility;

use std::collections::BTreeMap;
use std::collections::HashMap;

use serde_json::Value;

use crate::history::{History, Outcome};
use crate::report::{Anomaly, Validity, Verdict};
use txns::{KeyId, TxnIdx, Txns};

/// The consistency model a history is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Forbids G0, G1a, G1b, G1c, G-single, G-nonadjacent and the non-cycle anomalies;
    /// allows G2-item (write skew).
    SnapshotIsolation,
    /// Snapshot isolation, plus the realtime (and process) variants of its forbidden cycles.
    StrongSnapshotIsolation,
    /// Snapshot isolation, plus the process variants of its forbidden cycles: each process sees
    /// its own earlier transactions (Elle's strong session SI; what PolySI and most papers call
    /// SI). No realtime order between processes.
    StrongSessionSnapshotIsolation,
    /// Adya's PL-3: no dependency cycle at all.
    Serializable,
    /// Serializable, plus process order (Elle's strong session serializable).
    StrongSessionSerializable,
    /// Serializable, plus realtime (and process) order.
    StrictSerializable,
}

impl Model {
    /// The model's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Model::SnapshotIsolation => "snapshot-isolation",
            Model::StrongSnapshotIsolation => "strong-snapshot-isolation",
            Model::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            Model::Serializable => "serializable",
            Model::StrongSessionSerializable => "strong-session-serializable",
            Model::StrictSerializable => "strict-serializable",
        }
    }

    /// Every model, weakest first within each family.
    pub const ALL: [Model; 6] = [
        Model::SnapshotIsolation,
        Model::StrongSessionSnapshotIsolation,
        Model::StrongSnapshotIsolation,
        Model::Serializable,
        Model::StrongSessionSerializable,
        Model::StrictSerializable,
    ];

    /// Parses a command-line model name.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The order edges (`dep::PROCESS`, `dep::REALTIME`) that join the dependency graph.
    pub(crate) fn order_kinds(self) -> u8 {
        match self {
            Model::SnapshotIsolation | Model::Serializable => 0,
            Model::StrongSessionSnapshotIsolation | Model::StrongSessionSerializable => {
                dep::PROCESS
            }
            Model::StrongSnapshotIsolation | Model::StrictSerializable => dep::ORDER,
        }
    }

    /// Whether G2-item (cycles with adjacent anti-dependencies) is forbidden.
    fn forbids_g2_item(self) -> bool {
        matches!(
            self,
            Model::Serializable | Model::StrongSessionSerializable | Model::StrictSerializable
        )
    }
}

/// Limits of a check; the defaults suit histories of millions of transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiConfig {
    /// Edge visits the cycle searches may spend in total; when they run out without finding a
    /// forbidden anomaly the verdict is `Unknown`, never a guess.
    pub cycle_search_edge_visits_max: u64,
    /// Anomalies of one kind kept in the verdict; the rest are counted in the last one kept.
    pub anomalies_per_kind_max: usize,
    /// Edge visits the inference of register write orders from the dependencies between their
    /// writers may spend; orders it does not reach are left to the search.
    pub version_order_inference_edge_visits_max: u64,
    /// Region checks the search over register write orders that nothing fixes may spend (each
    /// also spends edge visits of the cycle search's budget); when they run out before every
    /// region is settled the verdict is `Unknown`. 0 leaves every such order unknown.
    pub version_order_search_steps_max: u64,
}

impl Default for SiConfig {
    fn default() -> Self {
        SiConfig {
            cycle_search_edge_visits_max: 200_000_000,
            anomalies_per_kind_max: 16,
            version_order_inference_edge_visits_max: 100_000_000,
            version_order_search_steps_max: 10_000,
        }
    }
}

/// Checks a transactional history against `model` with the default limits.
pub fn check(history: &History, model: Model) -> Verdict {
    check_with(history, model, &SiConfig::default())
}

/// Checks a transactional history against `model`.
pub fn check_with(history: &History, model: Model, config: &SiConfig) -> Verdict {
    let txns = match Txns::from_history(history) {
        Ok(txns) => txns,
        Err(message) => {
            return Verdict {
                valid: Validity::Unknown,
                anomalies: vec![Anomaly {
                    kind: "malformed-txn".to_string(),
                    key: None,
                    txns: Vec::new(),
                    explanation: message,
                }],
            };
        }
    };
    let mut analysis = Analysis::new(&txns, config.anomalies_per_kind_max);
    list::analyze(&txns, &mut analysis);
    let keys = register::analyze(&txns, &mut analysis);
    analysis.settle();
    let (nodes, mut raw) = cycles::graph_edges(&txns, &analysis, &[]);
    let order = cycles::order_edges(&txns, model, &nodes);
    raw.extend_from_slice(&order);
    let derived = (!keys.is_empty()).then(|| {
        let mut visits = config.version_order_inference_edge_visits_max;
        let derived =
            visibility::derive(&txns, model, &mut analysis, &keys, (&nodes, &raw), &mut visits);
        raw = cycles::graph_edges(&txns, &analysis, &order).1;
        derived
    });
    let graph = graph::Graph::build(txns.txns.len(), raw);
    let mut budget = config.cycle_search_edge_visits_max;
    let found = cycles::find(&graph, &nodes, model, &mut budget, false);
    let mut witnesses = found.witnesses;
    let mut search_exhausted = false;
    if let Some(derived) = derived.filter(|d| !d.open.is_empty() && !found.exhausted) {
        let search = search::Search {
            txns: &txns,
            model,
            keys: &keys,
            derived: &derived,
            graph: &graph,
            nodes: &nodes,
            in_bad_component: &found.in_bad_component,
            steps_max: config.version_order_search_steps_max,
        };
        let searched = search.run(&mut budget);
        analysis.edges.extend(searched.edges);
        witnesses.extend(searched.witnesses);
        search_exhausted = searched.exhausted;
    }
    cycles::report_all(&txns, model, &mut analysis, &witnesses);
    let anomalies = analysis.found.finish();
    let valid = if !anomalies.is_empty() {
        Validity::Invalid
    } else if found.exhausted || search_exhausted {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let mut anomalies = anomalies;
    if valid == Validity::Unknown {
        let explanation = if found.exhausted {
            format!(
                "the cycle search spent its {} edge visits before proving every strongly \
                 connected component free of anomalies the model forbids",
                config.cycle_search_edge_visits_max
            )
        } else {
            format!(
                "the search over register write orders that nothing in the history fixes spent \
                 its budget ({} region checks, {} edge visits) before finding, for every group \
                 of such writes, an order without a cycle the model forbids or proof that none \
                 exists",
                config.version_order_search_steps_max, config.cycle_search_edge_visits_max
            )
        };
        anomalies.push(Anomaly {
            kind: "search-budget-exhausted".to_string(),
            key: None,
            txns: Vec::new(),
            explanation,
        });
    }
    Verdict { valid, anomalies }
}

/// A dependency kind, one bit each, so one graph edge can carry several.
pub(crate) mod dep {
    pub const WW: u8 = 1;
    pub const WR: u8 = 2;
    pub const RW: u8 = 4;
    pub const PROCESS: u8 = 8;
    pub const REALTIME: u8 = 16;
    pub const DATA: u8 = WW | WR | RW;
    pub const ORDER: u8 = PROCESS | REALTIME;

    pub fn name(kind: u8) -> &'static str {
        match kind {
            WW => "ww",
            WR => "wr",
            RW => "rw",
            PROCESS => "process",
            REALTIME => "realtime",
            _ => panic!("{kind} is not a single dependency kind"),
        }
    }
}

/// Why a data dependency holds; rendered into sentences only for witness cycles.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why<'a> {
    /// `dst` appended `elem` right after `src`'s `prev` in the key's version order.
    ListWw { prev: &'a Value, elem: &'a Value },
    /// `dst` appended `elem`, never observed, after `src`'s `prev`, the last observed element.
    ListWwTail { prev: &'a Value, elem: &'a Value },
    /// `dst` read `version`, whose last element `src` appended.
    ListWr { version: &'a [Value] },
    /// `src` read `version`, without `next`, which `dst` appended.
    ListRw { version: &'a [Value], next: &'a Value },
    /// `dst` read `value`, which `src` wrote.
    RegWr { value: &'a Value },
    /// `dst` read `old`, written by `src`, and overwrote it with `new`.
    RegWw { old: &'a Value, new: &'a Value },
    /// `src` read `old` (`Null`: the initial state), which `dst`'s write of `new` follows.
    RegRw { old: &'a Value, new: &'a Value },
    /// `src` wrote `old` and precedes `dst`, which wrote `new`, through a chain of the
    /// dependency kinds in `via`; the other order of the two writes would close a cycle of them.
    RegWwDerived { old: &'a Value, new: &'a Value, via: u8 },
    /// `src` read `old`, a version a write of `dst`'s `new` follows by a derived order (see
    /// `RegWwDerived`; `via` as there).
    RegRwDerived { old: &'a Value, new: &'a Value, via: u8 },
    /// Nothing orders `src`'s write of `old` and `dst`'s of `new`; the version order search
    /// tried this one.
    RegWwTried { old: &'a Value, new: &'a Value },
}

/// One inferred data dependency `src -> dst`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DepEdge<'a> {
    pub src: TxnIdx,
    pub dst: TxnIdx,
    /// One of `dep::WW`, `dep::WR`, `dep::RW`.
    pub kind: u8,
    pub key: KeyId,
    pub why: Why<'a>,
}

/// What the inference passes produce: edges, which txns were observed, non-cycle anomalies.
#[derive(Debug)]
pub(crate) struct Analysis<'a> {
    pub edges: Vec<DepEdge<'a>>,
    /// Edges into indeterminate transactions, kept only if some read observes them.
    pending: Vec<DepEdge<'a>>,
    /// Whether some read observed a write of this transaction (decides `info` membership).
    pub observed: Vec<bool>,
    pub found: Found,
}

impl Why<'_> {
    /// The order kinds (`dep::ORDER` bits) this reason rests on, beyond data dependencies.
    pub(crate) fn order_kinds(&self) -> u8 {
        match *self {
            Why::RegWwDerived { via, .. } | Why::RegRwDerived { via, .. } => via & dep::ORDER,
            _ => 0,
        }
    }
}

impl<'a> Analysis<'a> {
    fn new(txns: &Txns<'a>, per_kind_max: usize) -> Analysis<'a> {
        Analysis {
            edges: Vec::with_capacity(2 * txns.mops.len()),
            pending: Vec::new(),
            observed: vec![false; txns.txns.len()],
            found: Found::new(per_kind_max),
        }
    }

    /// Adds a dependency edge; self-dependencies carry no information and are dropped.
    pub fn edge(&mut self, src: TxnIdx, dst: TxnIdx, kind: u8, key: KeyId, why: Why<'a>) {
        if src != dst {
            self.edges.push(DepEdge { src, dst, kind, key, why });
        }
    }

    /// Adds an edge into a transaction that may not have committed: kept if `dst` committed
    /// or, once every read is known, some read observed one of its writes.
    pub fn edge_if_committed(
        &mut self,
        txns: &Txns<'_>,
        src: TxnIdx,
        dst: TxnIdx,
        kind: u8,
        key: KeyId,
        why: Why<'a>,
    ) {
        match txns.outcome(dst) {
            Outcome::Ok => self.edge(src, dst, kind, key, why),
            Outcome::Indeterminate if src != dst => {
                self.pending.push(DepEdge { src, dst, kind, key, why });
            }
            _ => {}
        }
    }

    /// Keeps the pending edges whose indeterminate target turned out to be observed.
    fn settle(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let observed = &self.observed;
        self.edges.extend(pending.into_iter().filter(|e| observed[e.dst as usize]));
    }

    /// Whether `t` is a node of the dependency graph: committed, or indeterminate but observed.
    pub fn in_graph(&self, txns: &Txns<'_>, t: TxnIdx) -> bool {
        match txns.outcome(t) {
            Outcome::Ok => true,
            Outcome::Indeterminate => self.observed[t as usize],
            Outcome::Fail => false,
        }
    }
}

/// Anomalies found so far, at most `per_kind_max` of each kind, in discovery order.
#[derive(Debug)]
pub(crate) struct Found {
    per_kind_max: usize,
    anomalies: Vec<Anomaly>,
    /// kind -> (kept, dropped)
    counts: BTreeMap<String, (usize, usize)>,
}

impl Found {
    fn new(per_kind_max: usize) -> Found {
        Found { per_kind_max, anomalies: Vec::new(), counts: BTreeMap::new() }
    }

    /// Records an anomaly; `txns` are dense txn indices, mapped to `Op::id`s here.
    pub fn add(
        &mut self,
        txns: &Txns<'_>,
        kind: &str,
        key: Option<KeyId>,
        witnesses: &[TxnIdx],
        explanation: impl FnOnce() -> String,
    ) {
        let count = self.counts.entry(kind.to_string()).or_insert((0, 0));
        if count.0 >= self.per_kind_max {
            count.1 += 1;
            return;
        }
        count.0 += 1;
        self.anomalies.push(Anomaly {
            kind: kind.to_string(),
            key: key.map(|k| txns.key_name(k).to_string()),
            txns: witnesses.iter().map(|&t| txns.op(t).id).collect(),
            explanation: explanation(),
        });
    }

    fn finish(mut self) -> Vec<Anomaly> {
        let mut last_of_kind: HashMap<&str, usize> = HashMap::new();
        for (i, a) in self.anomalies.iter().enumerate() {
            last_of_kind.insert(a.kind.as_str(), i);
        }
        let notes: Vec<(usize, usize)> = self
            .counts
            .iter()
            .filter(|(_, (_, dropped))| *dropped > 0)
            .map(|(kind, (_, dropped))| (last_of_kind[kind.as_str()], *dropped))
            .collect();
        for (i, dropped) in notes {
            let a = &mut self.anomalies[i];
            a.explanation.push_str(&format!(" ({dropped} more {} anomalies not shown.)", a.kind));
        }
        self.anomalies
    }
}
