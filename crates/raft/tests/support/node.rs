//! One simulated node: a RawNode (absent while crashed), its disk, and a durable state machine.
//!
//! Crash model: the node's `MemStorage` is its synced disk (RawNode::persist writes it). A crash
//! keeps a clone of that storage and drops the RawNode; whatever a Ready held that was not
//! persisted yet is lost. The state machine (the applied entries and the applied conf state) is
//! durable and applied one entry at a time, atomically; so a restart passes
//! `Config.applied = <last applied index>` and Raft must resume at the next entry. Installing a
//! snapshot is atomic with persisting the Ready that carries it. A state-machine snapshot's data
//! is the whole applied sequence, encoded with minikv-proto's codec.

use minikv_raft::{
    ConfChangeV2, ConfState, Config, Entry, EntryType, MemStorage, NodeId, RawNode, Snapshot,
    Storage,
};

use super::invariants::{Check, Invariants, describe};

/// The durable state machine of one node.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    /// Every entry applied, in index order from index 1 (entry i sits at position i - 1).
    pub applied: Vec<Entry>,
    /// The conf state as of the last applied entry.
    pub conf_state: ConfState,
}

impl StateMachine {
    pub fn applied_index(&self) -> u64 {
        self.applied.len() as u64
    }

    /// Encodes the whole applied sequence as snapshot data.
    pub fn snapshot_data(&self) -> Vec<u8> {
        minikv_proto::encode(&self.applied).expect("entries encode")
    }

    /// Replaces the state with a snapshot's; every restored entry is checked as committed.
    pub fn restore(&mut self, id: NodeId, snap: &Snapshot, inv: &mut Invariants) -> Check {
        let index = snap.metadata.index;
        if index <= self.applied_index() {
            return Err(format!(
                "node {id}: Ready carried a snapshot at index {index}, not above applied index {}",
                self.applied_index()
            ));
        }
        let entries: Vec<Entry> = minikv_proto::decode(&snap.data).map_err(|e| {
            format!("node {id}: snapshot at index {index} has undecodable data: {e}")
        })?;
        if entries.len() as u64 != index {
            return Err(format!(
                "node {id}: snapshot at index {index} holds {} entries",
                entries.len()
            ));
        }
        let last = entries.last().expect("index > 0");
        if last.term != snap.metadata.term {
            return Err(format!(
                "node {id}: snapshot metadata says (index {index}, term {}) but its last entry is {}",
                snap.metadata.term,
                describe(last)
            ));
        }
        for (pos, e) in entries.iter().enumerate() {
            if e.index != pos as u64 + 1 {
                return Err(format!(
                    "node {id}: snapshot entry at position {pos} is {}",
                    describe(e)
                ));
            }
            inv.observe_committed(id, e)?;
        }
        self.applied = entries;
        self.conf_state = snap.metadata.conf_state.clone();
        Ok(())
    }
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct SimNode {
    pub id: NodeId,
    /// `None` while crashed.
    pub raw: Option<RawNode<MemStorage>>,
    /// The disk while crashed (while up, the disk is `raw.store()`).
    pub disk: Option<MemStorage>,
    pub sm: StateMachine,
    /// Bumped by every crash; feeds the election-jitter seed of the next incarnation.
    pub incarnation: u64,
    /// Snapshots this node installed from Readies.
    pub snapshots_installed: u64,
    /// Conf changes this node applied.
    pub conf_changes_applied: u64,
}

impl SimNode {
    pub fn new(config: &Config, voters: &[NodeId], learners: &[NodeId]) -> Result<Self, String> {
        let cs = ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..Default::default()
        };
        let raw = RawNode::new(config, MemStorage::new_with_conf_state(cs.clone()))
            .map_err(|e| format!("node {}: RawNode::new at bootstrap failed: {e:?}", config.id))?;
        Ok(SimNode {
            id: config.id,
            raw: Some(raw),
            disk: None,
            sm: StateMachine { applied: Vec::new(), conf_state: cs },
            incarnation: 0,
            snapshots_installed: 0,
            conf_changes_applied: 0,
        })
    }

    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// The persisted storage, whether the node is up or down.
    pub fn disk(&self) -> &MemStorage {
        match (&self.raw, &self.disk) {
            (Some(raw), _) => raw.store(),
            (None, Some(disk)) => disk,
            (None, None) => panic!("node {} has neither a RawNode nor a disk", self.id),
        }
    }

    /// Drops the RawNode and keeps only what was persisted.
    pub fn crash(&mut self) {
        let raw = self.raw.take().expect("crash of a node that is down");
        self.disk = Some(raw.store().clone());
        self.incarnation += 1;
    }

    /// Rebuilds the RawNode from the persisted disk; `Config.applied` is the durable applied index.
    pub fn restart(&mut self, template: &Config, rng_seed: u64) -> Check {
        let disk = self.disk.take().expect("restart of a node that is up");
        let config =
            Config { id: self.id, applied: self.sm.applied_index(), rng_seed, ..template.clone() };
        let raw = RawNode::new(&config, disk).map_err(|e| {
            format!(
                "node {}: RawNode::new on restart (applied {}) failed: {e:?}",
                self.id, config.applied
            )
        })?;
        self.raw = Some(raw);
        Ok(())
    }

    /// Applies one committed entry to the state machine (and, for a conf change, to Raft and the
    /// disk's conf state), checking it is the next index and agrees with every other committed view.
    pub fn apply(&mut self, e: &Entry, inv: &mut Invariants) -> Check {
        let id = self.id;
        let expected = self.sm.applied_index() + 1;
        if e.index != expected {
            return Err(format!(
                "node {id}: asked to apply {} but the next index is {expected}",
                describe(e)
            ));
        }
        inv.observe_committed(id, e)?;
        // What is applied must already be durable: the entry on this node's disk, and the commit
        // index that covers it in the persisted hard state (a restart passes `applied` back).
        let disk = self.disk();
        let persisted_commit = disk.hard_state().commit;
        if e.index > persisted_commit {
            return Err(format!(
                "node {id}: applying {} beyond the persisted commit index {persisted_commit}",
                describe(e)
            ));
        }
        match disk.term(e.index) {
            Ok(term) if term == e.term => {}
            other => {
                return Err(format!(
                    "node {id}: applying {} but the disk has term {other:?} at that index",
                    describe(e)
                ));
            }
        }
        if e.entry_type == EntryType::ConfChange {
            let cc: ConfChangeV2 = minikv_proto::decode(&e.data).map_err(|err| {
                format!("node {id}: conf change entry {} does not decode: {err}", describe(e))
            })?;
            let raw = self.raw.as_mut().expect("apply on a node that is up");
            let cs = raw.apply_conf_change(&cc).map_err(|err| {
                format!("node {id}: apply_conf_change({cc:?}) at index {} failed: {err:?}", e.index)
            })?;
            raw.store_mut().set_conf_state(cs.clone());
            self.sm.conf_state = cs;
            self.conf_changes_applied += 1;
        }
        self.sm.applied.push(e.clone());
        Ok(())
    }

    /// Checks the whole persisted log: log matching links, committed entries agree, and the
    /// persisted hard state. Also records everything up to the persisted commit as committed.
    pub fn check_disk(&self, inv: &mut Invariants) -> Check {
        let id = self.id;
        let disk = self.disk();
        let err =
            |what: &str, e: minikv_raft::Error| format!("node {id}: storage {what} failed: {e:?}");
        let first = disk.first_index().map_err(|e| err("first_index", e))?;
        let last = disk.last_index().map_err(|e| err("last_index", e))?;
        let hs = disk.hard_state();
        inv.observe_hard_state(id, hs)?;
        if first > last + 1 {
            return Err(format!("node {id}: storage first index {first} > last index {last} + 1"));
        }
        let mut prev_term = disk.term(first - 1).map_err(|e| err("term(first - 1)", e))?;
        if last >= first {
            let entries = disk.entries(first, last + 1, None).map_err(|e| err("entries", e))?;
            if entries.len() as u64 != last + 1 - first {
                return Err(format!(
                    "node {id}: storage returned {} entries for [{first}, {last}]",
                    entries.len()
                ));
            }
            for (e, index) in entries.iter().zip(first..) {
                if e.index != index {
                    return Err(format!(
                        "node {id}: storage holds {} at index {index}",
                        describe(e)
                    ));
                }
                inv.observe_log_entry(id, e, prev_term)?;
                if index <= hs.commit {
                    inv.observe_committed(id, e)?;
                }
                prev_term = e.term;
            }
        }
        if hs.commit > last {
            return Err(format!(
                "node {id}: persisted commit {} beyond last index {last}",
                hs.commit
            ));
        }
        Ok(())
    }

    /// Leader completeness: a new leader's persisted log holds every entry known committed.
    pub fn check_leader_complete(&self, term: u64, inv: &Invariants) -> Check {
        let disk = self.disk();
        let first =
            disk.first_index().map_err(|e| format!("node {}: first_index: {e:?}", self.id))?;
        let last = disk.last_index().map_err(|e| format!("node {}: last_index: {e:?}", self.id))?;
        let max = inv.max_committed_index();
        if max > last {
            return Err(format!(
                "node {} became leader of term {term} with last index {last}, but index {max} is committed",
                self.id
            ));
        }
        for index in first.saturating_sub(1).max(1)..=max {
            let Some(known) = inv.committed_at(index) else { continue };
            let term_here =
                disk.term(index).map_err(|e| format!("node {}: term({index}): {e:?}", self.id))?;
            if term_here != known.term {
                return Err(format!(
                    "node {} became leader of term {term} with term {term_here} at index {index}, \
                     but {} is committed",
                    self.id,
                    describe(known)
                ));
            }
        }
        Ok(())
    }
}
