//! A tiny in-memory network of `Raft` peers for tests: messages are delivered breadth-first
//! and synchronously; links can be cut, peers isolated or turned into black holes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use minikv_proto::raftpb::{
    ConfState, Entry, EntryType, Message, MessageType, NodeId, Snapshot, SnapshotMetadata,
};

use crate::config::Config;
use crate::raft::Raft;
use crate::storage::{MemStorage, Storage};

pub fn cfg(id: NodeId, election_tick: usize, heartbeat_tick: usize) -> Config {
    Config { id, election_tick, heartbeat_tick, max_inflight_msgs: 256, ..Default::default() }
}

pub fn voters(ids: &[NodeId]) -> ConfState {
    ConfState { voters: ids.to_vec(), ..Default::default() }
}

pub fn new_raft(
    id: NodeId,
    peers: &[NodeId],
    election: usize,
    heartbeat: usize,
) -> Raft<MemStorage> {
    let store = MemStorage::new_with_conf_state(voters(peers));
    Raft::new(&cfg(id, election, heartbeat), store).unwrap()
}

pub fn new_raft_with(config: &Config, store: MemStorage) -> Raft<MemStorage> {
    Raft::new(config, store).unwrap()
}

/// Entries with the given terms at indexes 1, 2, ...
pub fn ents(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry { term, index: i as u64 + 1, ..Default::default() })
        .collect()
}

pub fn entry(term: u64, index: u64, data: &[u8]) -> Entry {
    Entry { term, index, data: data.to_vec(), ..Default::default() }
}

/// A storage for `peers` whose log holds entries with `terms` (all persisted).
pub fn store_with_log(peers: &[NodeId], terms: &[u64]) -> MemStorage {
    let mut s = MemStorage::new_with_conf_state(voters(peers));
    s.append(&ents(terms)).unwrap();
    s
}

/// A peer whose log holds `terms`, at the last term, as a follower.
pub fn raft_with_log(id: NodeId, peers: &[NodeId], terms: &[u64]) -> Raft<MemStorage> {
    let mut store = store_with_log(peers, terms);
    let mut hs = store.hard_state();
    hs.term = terms.last().copied().unwrap_or(0);
    store.set_hard_state(hs).unwrap();
    new_raft_with(&cfg(id, 10, 1), store)
}

pub fn msg(from: NodeId, to: NodeId, msg_type: MessageType, term: u64) -> Message {
    Message { from, to, msg_type, term, ..Default::default() }
}

pub fn hup(id: NodeId) -> Message {
    msg(INVALID, id, MessageType::Hup, 0)
}

pub fn propose(id: NodeId, data: &[u8]) -> Message {
    Message {
        to: id,
        msg_type: MessageType::Propose,
        entries: vec![Entry { data: data.to_vec(), ..Default::default() }],
        ..Default::default()
    }
}

pub fn propose_conf_change(id: NodeId, cc: &minikv_proto::raftpb::ConfChangeV2) -> Message {
    let data = minikv_proto::encode(cc).unwrap();
    Message {
        to: id,
        msg_type: MessageType::Propose,
        entries: vec![Entry { entry_type: EntryType::ConfChange, data, ..Default::default() }],
        ..Default::default()
    }
}

const INVALID: NodeId = 0;

pub fn take_msgs(r: &mut Raft<MemStorage>) -> Vec<Message> {
    std::mem::take(&mut r.msgs)
}

/// Writes the unstable snapshot, entries and hard state to storage, as `RawNode::persist` does.
pub fn persist(r: &mut Raft<MemStorage>) {
    let hs = r.hard_state();
    let log = &mut r.raft_log;
    if let Some(s) = log.unstable.snapshot.clone() {
        log.store.apply_snapshot(s.clone()).unwrap();
        log.stable_snap_to(s.metadata.index);
    }
    let unstable = log.unstable.entries.clone();
    if let Some(last) = unstable.last() {
        log.store.append(&unstable).unwrap();
        log.stable_to(last.index, last.term);
    }
    log.store.set_hard_state(hs).unwrap();
}

/// Data of the committed entries with a payload, in order.
pub fn committed_data(r: &Raft<MemStorage>) -> Vec<Vec<u8>> {
    let log = &r.raft_log;
    log.slice(log.first_index(), log.committed + 1, None)
        .unwrap()
        .into_iter()
        .filter(|e| !e.data.is_empty() && e.entry_type == EntryType::Normal)
        .map(|e| e.data)
        .collect()
}

/// Every entry of the log (first index to last), for comparing logs across peers.
pub fn all_entries(r: &Raft<MemStorage>) -> Vec<Entry> {
    r.raft_log.entries(r.raft_log.first_index(), None).unwrap()
}

pub fn snapshot(index: u64, term: u64, peers: &[NodeId]) -> Snapshot {
    Snapshot {
        data: b"snap".to_vec(),
        metadata: SnapshotMetadata { conf_state: voters(peers), index, term },
    }
}

/// Peers plus the faults between them.
#[derive(Debug)]
pub struct Network {
    pub peers: BTreeMap<NodeId, Raft<MemStorage>>,
    /// Directed links that lose every message.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Message types lost everywhere.
    pub ignored: BTreeSet<MessageType>,
    /// Every message delivered, in order.
    pub log: Vec<Message>,
}

impl Network {
    /// Peers `ids` (election 10, heartbeat 1), bootstrapped with `ids` as voters.
    pub fn new(ids: &[NodeId]) -> Self {
        Self::new_with(ids, |_| {})
    }

    pub fn new_with(ids: &[NodeId], tweak: impl Fn(&mut Config)) -> Self {
        let peers = ids
            .iter()
            .map(|&id| {
                let mut c = cfg(id, 10, 1);
                tweak(&mut c);
                new_raft_with(&c, MemStorage::new_with_conf_state(voters(ids)))
            })
            .collect();
        Self::from_peers(peers)
    }

    pub fn from_peers(peers: Vec<Raft<MemStorage>>) -> Self {
        Network {
            peers: peers.into_iter().map(|r| (r.id, r)).collect(),
            cut: BTreeSet::new(),
            ignored: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    pub fn peer(&self, id: NodeId) -> &Raft<MemStorage> {
        &self.peers[&id]
    }

    pub fn peer_mut(&mut self, id: NodeId) -> &mut Raft<MemStorage> {
        self.peers.get_mut(&id).expect("peer exists")
    }

    /// Delivers `msgs` and everything they cause, until quiet.
    pub fn send(&mut self, msgs: Vec<Message>) {
        let mut queue: VecDeque<Message> = msgs.into();
        let mut budget = 100_000;
        while let Some(m) = queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "network did not go quiet");
            if self.cut.contains(&(m.from, m.to)) || self.ignored.contains(&m.msg_type) {
                continue;
            }
            let Some(p) = self.peers.get_mut(&m.to) else { continue };
            self.log.push(m.clone());
            let _ = p.step(m);
            // Persist before the messages go out, as RawNode enforces.
            persist(p);
            queue.extend(take_msgs(p));
        }
    }

    pub fn campaign(&mut self, id: NodeId) {
        self.send(vec![hup(id)]);
    }

    pub fn propose(&mut self, id: NodeId, data: &[u8]) {
        self.send(vec![propose(id, data)]);
    }

    /// Ticks every peer once and delivers what the ticks produced.
    pub fn tick(&mut self) {
        let mut out = Vec::new();
        for p in self.peers.values_mut() {
            p.tick();
            out.extend(take_msgs(p));
        }
        self.send(out);
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.peers.keys().copied().filter(|&o| o != id).collect();
        for o in ids {
            self.cut(id, o);
        }
    }

    pub fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(t);
    }

    pub fn recover(&mut self) {
        self.cut.clear();
        self.ignored.clear();
    }

    /// Persists every peer's unstable state (so compaction and snapshots can act on storage).
    pub fn persist_all(&mut self) {
        for p in self.peers.values_mut() {
            persist(p);
        }
    }
}
