//! `cargo xtask bench raft`: committed-entry throughput of minikv-raft against tikv's raft-rs 0.7.
//!
//! Both run a 3-node cluster in memory, in one thread, with the same loop shape
//! ([`minikv_bench::run_batches`]): propose a batch of 128-byte entries on the leader, then
//! pump Readies and messages until the batch is applied on all three nodes. An entry counts once
//! it is committed on the leader and applied on all three. Messages are handed over as values
//! (no encoding) on both sides; each side persists into its own `MemStorage`; "applying" an entry
//! folds its payload into a checksum so the bytes are touched. Neither side ticks during the
//! timed run, so no heartbeats or elections interfere. Both compact their logs to the applied
//! index every `COMPACT_INTERVAL_ENTRIES` entries, so memory stays flat.
//!
//! Flags: `--entries N` (timed entries per round and implementation, default 300000), `--batch N`
//! (entries per batch, default 128), `--warmup N` (untimed entries first, default 50000),
//! `--rounds N` (alternating timed rounds per implementation, best kept, default 8), `--only
//! minikv|raft-rs` (profile one side).

use std::collections::VecDeque;

use minikv_bench::{BatchCluster, Measurement, arg_or, ratio_2dp, run_batches};

/// Nodes in the benchmarked cluster.
const NODE_COUNT: u64 = 3;
/// Payload of every proposal.
const PAYLOAD_BYTES: usize = 128;
/// Same Raft knobs on both sides.
const ELECTION_TICK: usize = 10;
const HEARTBEAT_TICK: usize = 3;
const MAX_SIZE_PER_MSG_BYTES: u64 = 1024 * 1024;
const MAX_INFLIGHT_MSGS: usize = 256;

/// Folds one applied payload into a running checksum.
fn fold(checksum: u64, data: &[u8]) -> u64 {
    data.iter().fold(checksum, |c, &b| c.rotate_left(5) ^ u64::from(b))
}

/// Per-node state-machine bookkeeping, identical for both implementations.
#[derive(Debug, Default, Clone, Copy)]
struct Applied {
    /// Index of the last applied entry (any type).
    index: u64,
    payloads: u64,
    checksum: u64,
}

/// Panics unless all nodes applied the same number of payloads with the same checksum.
fn assert_replicas_agree(applied: &[Applied]) {
    let first = applied[0];
    for (i, a) in applied.iter().enumerate() {
        assert!(
            a.payloads == first.payloads && a.checksum == first.checksum,
            "node {} applied {a:?}, node 1 applied {first:?}",
            i + 1
        );
    }
}

mod minikv {
    //! The minikv-raft side.
    use super::*;
    use minikv_raft::{Config, Entry, EntryType, MemStorage, Message, RawNode, StateRole};

    #[derive(Debug)]
    pub struct Cluster {
        nodes: Vec<RawNode<MemStorage>>,
        applied: Vec<Applied>,
        queue: VecDeque<Message>,
        leader: usize,
        delivered: u64,
    }

    impl Cluster {
        pub fn new() -> Self {
            let voters: Vec<u64> = (1..=NODE_COUNT).collect();
            let nodes = voters
                .iter()
                .map(|&id| {
                    let cs =
                        minikv_raft::ConfState { voters: voters.clone(), ..Default::default() };
                    let cfg = Config {
                        id,
                        election_tick: ELECTION_TICK,
                        heartbeat_tick: HEARTBEAT_TICK,
                        max_size_per_msg_bytes: MAX_SIZE_PER_MSG_BYTES,
                        max_inflight_msgs: MAX_INFLIGHT_MSGS,
                        rng_seed: id,
                        ..Default::default()
                    };
                    RawNode::new(&cfg, MemStorage::new_with_conf_state(cs)).expect("valid config")
                })
                .collect();
            let mut c = Cluster {
                nodes,
                applied: vec![Applied::default(); NODE_COUNT as usize],
                queue: VecDeque::new(),
                leader: 0,
                delivered: 0,
            };
            c.nodes[0].campaign().expect("campaign");
            while c.pump() {}
            assert_eq!(
                c.nodes[0].status().role,
                StateRole::Leader,
                "node 1 must win the first election"
            );
            c
        }

        fn apply(applied: &mut Applied, entries: &[Entry]) {
            for e in entries {
                applied.index = e.index;
                if e.entry_type == EntryType::Normal && !e.data.is_empty() {
                    applied.payloads += 1;
                    applied.checksum = fold(applied.checksum, &e.data);
                }
            }
        }
    }

    impl BatchCluster for Cluster {
        fn propose(&mut self, payload: Vec<u8>) {
            self.nodes[self.leader]
                .propose(Vec::new(), payload)
                .expect("leader accepts the proposal");
        }

        fn pump(&mut self) -> bool {
            let mut moved = false;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if !node.has_ready() {
                    continue;
                }
                moved = true;
                let mut rd = node.ready();
                node.persist(&mut rd).expect("persist to memory");
                self.queue.extend(rd.take_messages());
                Self::apply(&mut self.applied[i], rd.committed_entries());
                node.advance(rd);
            }
            while let Some(m) = self.queue.pop_front() {
                moved = true;
                self.delivered += 1;
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).expect("step");
            }
            moved
        }

        fn applied_on_all(&self) -> u64 {
            self.applied.iter().map(|a| a.payloads).min().unwrap_or(0)
        }

        fn compact_applied(&mut self) {
            for (node, applied) in self.nodes.iter_mut().zip(&self.applied) {
                // minikv's MemStorage compacts only below a snapshot the application created
                // (raft-rs builds its snapshot on demand instead); the state here is a checksum.
                let store = node.store_mut();
                store
                    .create_snapshot(applied.index, None, applied.checksum.to_le_bytes().to_vec())
                    .expect("snapshot at the applied index");
                store.compact(applied.index).expect("compact to the applied index");
            }
        }

        fn assert_replicas_agree(&self) {
            assert_replicas_agree(&self.applied);
        }

        fn messages_delivered(&self) -> u64 {
            self.delivered
        }
    }
}

mod raftrs {
    //! The raft-rs 0.7 side, driven with its documented Ready / LightReady loop.
    use super::*;
    use raft::eraftpb::{ConfState, Entry, EntryType, Message};
    use raft::storage::MemStorage;
    use raft::{Config, RawNode, StateRole};

    pub struct Cluster {
        nodes: Vec<RawNode<MemStorage>>,
        applied: Vec<Applied>,
        queue: VecDeque<Message>,
        leader: usize,
        delivered: u64,
    }

    impl std::fmt::Debug for Cluster {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("raftrs::Cluster").field("applied", &self.applied).finish()
        }
    }

    impl Cluster {
        pub fn new() -> Self {
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let voters: Vec<u64> = (1..=NODE_COUNT).collect();
            let nodes = voters
                .iter()
                .map(|&id| {
                    let cs = ConfState::from((voters.clone(), Vec::<u64>::new()));
                    let cfg = Config {
                        id,
                        election_tick: ELECTION_TICK,
                        heartbeat_tick: HEARTBEAT_TICK,
                        max_size_per_msg: MAX_SIZE_PER_MSG_BYTES,
                        max_inflight_msgs: MAX_INFLIGHT_MSGS,
                        ..Default::default()
                    };
                    RawNode::new(&cfg, MemStorage::new_with_conf_state(cs), &logger)
                        .expect("valid config")
                })
                .collect();
            let mut c = Cluster {
                nodes,
                applied: vec![Applied::default(); NODE_COUNT as usize],
                queue: VecDeque::new(),
                leader: 0,
                delivered: 0,
            };
            c.nodes[0].campaign().expect("campaign");
            while c.pump() {}
            assert_eq!(
                c.nodes[0].raft.state,
                StateRole::Leader,
                "node 1 must win the first election"
            );
            c
        }

        fn apply(applied: &mut Applied, entries: &[Entry]) {
            for e in entries {
                applied.index = e.index;
                if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                    applied.payloads += 1;
                    applied.checksum = fold(applied.checksum, &e.data);
                }
            }
        }
    }

    impl BatchCluster for Cluster {
        fn propose(&mut self, payload: Vec<u8>) {
            self.nodes[self.leader]
                .propose(Vec::new(), payload)
                .expect("leader accepts the proposal");
        }

        fn pump(&mut self) -> bool {
            let mut moved = false;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if !node.has_ready() {
                    continue;
                }
                moved = true;
                let mut rd = node.ready();
                // Messages a leader may send before persisting (raft-rs pipelines these).
                self.queue.extend(rd.take_messages());
                let store = node.store().clone();
                if !rd.snapshot().is_empty() {
                    store.wl().apply_snapshot(rd.snapshot().clone()).expect("apply snapshot");
                }
                Self::apply(&mut self.applied[i], rd.committed_entries());
                if !rd.entries().is_empty() {
                    store.wl().append(rd.entries()).expect("append");
                }
                if let Some(hs) = rd.hs() {
                    store.wl().set_hardstate(hs.clone());
                }
                self.queue.extend(rd.take_persisted_messages());
                let mut light = node.advance(rd);
                if let Some(commit) = light.commit_index() {
                    store.wl().mut_hard_state().set_commit(commit);
                }
                self.queue.extend(light.take_messages());
                Self::apply(&mut self.applied[i], light.committed_entries());
                node.advance_apply();
            }
            while let Some(m) = self.queue.pop_front() {
                moved = true;
                self.delivered += 1;
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).expect("step");
            }
            moved
        }

        fn applied_on_all(&self) -> u64 {
            self.applied.iter().map(|a| a.payloads).min().unwrap_or(0)
        }

        fn compact_applied(&mut self) {
            for (node, applied) in self.nodes.iter().zip(&self.applied) {
                node.store().wl().compact(applied.index).expect("compact to the applied index");
            }
        }

        fn assert_replicas_agree(&self) {
            assert_replicas_agree(&self.applied);
        }

        fn messages_delivered(&self) -> u64 {
            self.delivered
        }
    }
}

/// Which implementations a run measures (`--only minikv` or `--only raft-rs` for profiling).
fn measures(only: &str, which: &str) -> bool {
    only == "both" || only == which
}

/// The best (fastest) rounds of one implementation, by wall time and by CPU time.
#[derive(Debug, Default)]
struct Best {
    wall_entries_per_second: u64,
    cpu_entries_per_second: u64,
}

impl Best {
    fn record(&mut self, name: &str, round: u64, m: &Measurement) {
        println!(
            "round {round}: {name:<11} {} entries in {:.3} s wall ({} entries/s), {} entries/s of \
             CPU, {:.2} messages/entry",
            m.entries,
            m.elapsed.as_secs_f64(),
            m.entries_per_second(),
            m.entries_per_cpu_second(),
            m.messages as f64 / m.entries.max(1) as f64
        );
        self.wall_entries_per_second = self.wall_entries_per_second.max(m.entries_per_second());
        self.cpu_entries_per_second = self.cpu_entries_per_second.max(m.entries_per_cpu_second());
    }
}

fn main() {
    let entries: u64 = arg_or("entries", 300_000);
    let batch: u64 = arg_or("batch", 128);
    let warmup: u64 = arg_or("warmup", 50_000);
    let rounds: u64 = arg_or("rounds", 8);
    let only: String = arg_or("only", "both".to_string());
    assert!(
        ["both", "minikv", "raft-rs"].contains(&only.as_str()),
        "--only takes both, minikv or raft-rs"
    );
    println!(
        "raft bench: {NODE_COUNT} nodes in memory, one thread, {PAYLOAD_BYTES}-byte entries, \
         batches of {batch}, {entries} timed entries per round, {rounds} alternating rounds \
         (best kept), {warmup} warm-up entries"
    );
    println!(
        "entries/s = entries committed on the leader and applied on all {NODE_COUNT} nodes, \
         per wall second (and, for reference, per CPU second of the driving thread)"
    );

    if measures(&only, "minikv") {
        run_batches(&mut minikv::Cluster::new(), warmup, batch, PAYLOAD_BYTES);
    }
    if measures(&only, "raft-rs") {
        run_batches(&mut raftrs::Cluster::new(), warmup, batch, PAYLOAD_BYTES);
    }
    let (mut ours, mut theirs) = (Best::default(), Best::default());
    for round in 1..=rounds {
        // Fresh clusters per round, alternating, so both sides see the same machine load; short
        // rounds and best-of-N keep a load spike from deciding the comparison.
        if measures(&only, "minikv") {
            let m = run_batches(&mut minikv::Cluster::new(), entries, batch, PAYLOAD_BYTES);
            ours.record("minikv-raft", round, &m);
        }
        if measures(&only, "raft-rs") {
            let m = run_batches(&mut raftrs::Cluster::new(), entries, batch, PAYLOAD_BYTES);
            theirs.record("raft-rs", round, &m);
        }
    }
    let (n_cpu, m_cpu) = (ours.cpu_entries_per_second, theirs.cpu_entries_per_second);
    println!(
        "cpu time: raft: {n_cpu} entries/s, raft-rs: {m_cpu} entries/s, ratio {}",
        ratio_2dp(n_cpu, m_cpu)
    );
    let (n, m) = (ours.wall_entries_per_second, theirs.wall_entries_per_second);
    println!("raft: {n} entries/s, raft-rs: {m} entries/s, ratio {}", ratio_2dp(n, m));
}
