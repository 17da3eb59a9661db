//! Seeded list-append histories that are snapshot-isolated by construction: a small MVCC store
//! where each transaction reads the snapshot at its invoke, and commits at its completion
//! unless a key it appends to was committed since (first committer wins). With one process the
//! history is strictly serializable. Tests and the benchmark use it.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};

use crate::history::{History, Op, OpFn, Outcome};

/// The shape of a generated history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAppendConfig {
    pub seed: u64,
    pub txn_count: usize,
    pub process_count: usize,
    /// Keys in use at any time; a key retires after `appends_per_key_max` appends and a fresh
    /// one replaces it, as Elle's generator does, so reads stay short.
    pub active_key_count: usize,
    pub appends_per_key_max: usize,
    pub micro_ops_per_txn_max: usize,
    /// Chance of a micro-op being a read rather than an append.
    pub read_percent: u64,
    /// Chance that a transaction that could commit aborts anyway, and that its client never
    /// learns the outcome (`info`; it commits or not at random).
    pub abort_permille: u64,
    pub info_permille: u64,
}

impl Default for ListAppendConfig {
    fn default() -> Self {
        ListAppendConfig {
            seed: 0,
            txn_count: 1000,
            process_count: 5,
            active_key_count: 10,
            appends_per_key_max: 32,
            micro_ops_per_txn_max: 4,
            read_percent: 50,
            abort_permille: 10,
            info_permille: 10,
        }
    }
}

/// One key's committed state: its elements, and the length after each commit.
#[derive(Debug, Default)]
struct KeyState {
    elems: Vec<u64>,
    /// (commit sequence number, length) per committed version, ascending.
    versions: Vec<(u64, usize)>,
    /// Elements handed out so far, committed or not (element values are 1, 2, ...).
    issued: u64,
}

impl KeyState {
    fn snapshot(&self, seq: u64) -> &[u64] {
        let i = self.versions.partition_point(|&(s, _)| s <= seq);
        let len = if i == 0 { 0 } else { self.versions[i - 1].1 };
        &self.elems[..len]
    }

    fn committed_since(&self, seq: u64) -> bool {
        self.versions.last().is_some_and(|&(s, _)| s > seq)
    }
}

/// A micro-op before it runs: read a key, or append a value.
#[derive(Debug, Clone, Copy)]
enum Planned {
    Read(usize),
    Append(usize, u64),
}

/// A transaction in flight.
#[derive(Debug)]
struct Running {
    op_index: usize,
    snapshot_seq: u64,
    plan: Vec<Planned>,
}

/// Generates a snapshot-isolated list-append history.
pub fn list_append(config: &ListAppendConfig) -> History {
    assert!(config.process_count > 0 && config.active_key_count > 0, "bad config {config:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let mut keys: Vec<KeyState> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    for _ in 0..config.active_key_count {
        active.push(keys.len());
        keys.push(KeyState::default());
    }
    let mut running: Vec<Option<Running>> = (0..config.process_count).map(|_| None).collect();
    let mut ops: Vec<Op> = Vec::with_capacity(config.txn_count);
    let (mut time_ns, mut line, mut commit_seq) = (0i64, 0usize, 0u64);
    while ops.len() < config.txn_count || running.iter().any(Option::is_some) {
        let p = below(config.process_count as u64) as usize;
        time_ns += 1 + below(100) as i64;
        line += 1;
        match running[p].take() {
            None if ops.len() < config.txn_count => {
                let n = 1 + below(config.micro_ops_per_txn_max as u64) as usize;
                let mut plan = Vec::with_capacity(n);
                for _ in 0..n {
                    let slot = below(active.len() as u64) as usize;
                    let k = active[slot];
                    if below(100) < config.read_percent {
                        plan.push(Planned::Read(k));
                        continue;
                    }
                    keys[k].issued += 1;
                    plan.push(Planned::Append(k, keys[k].issued));
                    if keys[k].issued as usize >= config.appends_per_key_max {
                        active[slot] = keys.len();
                        keys.push(KeyState::default());
                    }
                }
                let value = Value::Array(plan.iter().map(|m| planned_json(m, None)).collect());
                ops.push(Op {
                    id: ops.len(),
                    process: p as u64,
                    f: OpFn::Txn,
                    key: None,
                    value,
                    result: None,
                    outcome: Outcome::Indeterminate,
                    invoke_ns: time_ns,
                    complete_ns: None,
                    invoke_line: line,
                    complete_line: None,
                });
                running[p] =
                    Some(Running { op_index: ops.len() - 1, snapshot_seq: commit_seq, plan });
            }
            None => {}
            Some(txn) => {
                let conflict = txn.plan.iter().any(|m| {
                    matches!(*m, Planned::Append(k, _) if keys[k].committed_since(txn.snapshot_seq))
                });
                let info = below(1000) < config.info_permille;
                let commit =
                    !conflict && below(1000) >= config.abort_permille && (!info || below(2) == 0);
                let op = &mut ops[txn.op_index];
                op.complete_line = Some(line);
                if info {
                    op.result = Some(op.value.clone());
                } else if commit {
                    op.outcome = Outcome::Ok;
                    op.complete_ns = Some(time_ns);
                    op.result = Some(run(&txn, &keys));
                } else {
                    op.outcome = Outcome::Fail;
                    op.complete_ns = Some(time_ns);
                    op.result = Some(op.value.clone());
                }
                if commit {
                    commit_seq += 1;
                    for m in &txn.plan {
                        if let Planned::Append(k, v) = *m {
                            keys[k].elems.push(v);
                            let len = keys[k].elems.len();
                            match keys[k].versions.last_mut() {
                                Some(last) if last.0 == commit_seq => last.1 = len,
                                _ => keys[k].versions.push((commit_seq, len)),
                            }
                        }
                    }
                }
            }
        }
    }
    History { ops }
}

/// The completed micro-ops: each read sees the snapshot plus the transaction's own appends.
fn run(txn: &Running, keys: &[KeyState]) -> Value {
    let mut own: Vec<(usize, u64)> = Vec::new();
    let mut out = Vec::with_capacity(txn.plan.len());
    for m in &txn.plan {
        match *m {
            Planned::Append(k, v) => {
                own.push((k, v));
                out.push(planned_json(m, None));
            }
            Planned::Read(k) => {
                let mut seen: Vec<u64> = keys[k].snapshot(txn.snapshot_seq).to_vec();
                seen.extend(own.iter().filter(|o| o.0 == k).map(|o| o.1));
                out.push(planned_json(m, Some(seen)));
            }
        }
    }
    Value::Array(out)
}

fn planned_json(m: &Planned, read: Option<Vec<u64>>) -> Value {
    match *m {
        Planned::Read(k) => json!(["r", k, read]),
        Planned::Append(k, v) => json!(["append", k, v]),
    }
}
