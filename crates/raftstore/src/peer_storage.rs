//! `PeerStorage`: one peer's Raft log, hard state, apply state and region state in the engine,
//! implementing `minikv_raft::Storage`.
//!
//! Writes made through the `Storage` trait (by `RawNode::persist`) are buffered in a pending
//! batch; the store takes every peer's batch and writes them with one synced engine write
//! before any message of that Ready goes out. Nothing reads the log between `persist` and that
//! write. Snapshots are generated from an engine snapshot (the region's data and its apply
//! state from one consistent view) and installed by one batch.

use minikv_hooks::{Canary, Point, Probe, buggify, canary, probe};
use std::collections::VecDeque;
use std::sync::Arc;

use minikv_engine::{Cf, Engine, WriteBatch};
use minikv_proto::metapb::{self, PeerId, PeerRole, Region, RegionId};
use minikv_proto::raft_serverpb::{
    PeerState, RaftApplyState, RaftLocalState, RaftTruncatedState, RegionLocalState,
    RegionSnapshotData, SnapshotCfData,
};
use minikv_proto::{decode, encode};
use minikv_raft::{
    ConfState, Entry, Error as RaftError, HardState, RaftState, Snapshot, SnapshotMetadata,
    Storage, StorageError,
};

// The column family helpers moved to `cf`; re-exported so that this public path still works.
pub use crate::cf::{DATA_CFS, delete_region_data, end_bound, engine_cf};
use crate::error::Result;
use crate::keys;

/// Index (and term) at which a bootstrapped region's log starts, as if entries up to it had
/// been applied and compacted: a peer created later must receive a snapshot, never replay a
/// log that starts before the region existed.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
pub const RAFT_INIT_LOG_TERM: u64 = 5;

/// The Raft configuration a region's peer list describes.
pub fn conf_state_of(region: &Region) -> ConfState {
    let mut cs = ConfState::default();
    for p in &region.peers {
        match p.role {
            PeerRole::Voter | PeerRole::IncomingVoter => cs.voters.push(p.id),
            PeerRole::Learner => cs.learners.push(p.id),
            PeerRole::DemotingVoter => cs.voters_outgoing.push(p.id),
        }
    }
    cs
}

/// Adds to `batch` the deletion of what a destroyed peer of `region_id` holds: every raft key
/// (its log, hard state and apply state) and, given its region, the region's data.
pub(crate) fn write_clear_peer(batch: &mut WriteBatch, region_id: RegionId, data: Option<&Region>) {
    let (start, end) = keys::region_raft_range(region_id);
    batch.delete_range(Cf::Raft, &start, Some(&end));
    if let Some(region) = data {
        delete_region_data(batch, region);
    }
}

fn store_err(e: impl std::fmt::Display) -> RaftError {
    RaftError::Store(StorageError::Other(e.to_string()))
}

/// One peer's durable Raft state.
#[derive(Debug)]
pub struct PeerStorage {
    engine: Arc<Engine>,
    region_id: RegionId,
    peer_id: PeerId,
    region: Region,
    raft_state: RaftLocalState,
    apply_state: RaftApplyState,
    /// Every entry in `truncated.index + 1 ..= last_index`, as persisted (or about to be, see
    /// `pending`). The log is bounded by log GC, and keeping it here means Raft's reads of
    /// its log never touch the disk: they cannot fail (the Raft core treats a failed log read
    /// as a broken invariant) and cost no decode.
    log: VecDeque<Entry>,
    log_size_bytes: u64,
    /// Writes made since the store last took them (see the module docs).
    pending: WriteBatch,
}

impl PeerStorage {
    /// Writes the initial state of a bootstrapped region into `batch`.
    pub fn write_bootstrap_state(batch: &mut WriteBatch, region: &Region) -> Result<()> {
        let hard_state =
            HardState { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX };
        let raft_state = RaftLocalState { hard_state, last_index: RAFT_INIT_LOG_INDEX };
        let truncated = RaftTruncatedState { index: RAFT_INIT_LOG_INDEX, term: RAFT_INIT_LOG_TERM };
        let apply_state =
            RaftApplyState { applied_index: RAFT_INIT_LOG_INDEX, truncated_state: truncated };
        let region_state = RegionLocalState { state: PeerState::Normal, region: region.clone() };
        batch.put(Cf::Raft, &keys::raft_state_key(region.id), &encode(&raft_state)?);
        batch.put(Cf::Raft, &keys::apply_state_key(region.id), &encode(&apply_state)?);
        batch.put(Cf::Raft, &keys::region_state_key(region.id), &encode(&region_state)?);
        Ok(())
    }

    /// Loads an initialized peer's storage from the engine (after `write_bootstrap_state`, a
    /// snapshot, or a restart).
    pub fn load(engine: Arc<Engine>, region: Region, peer_id: PeerId) -> Result<PeerStorage> {
        let region_id = region.id;
        let raft_state: RaftLocalState =
            match engine.get(Cf::Raft, &keys::raft_state_key(region_id))? {
                Some(bytes) => decode(&bytes)?,
                None => panic!("region {region_id} has a region state but no raft state"),
            };
        let apply_state: RaftApplyState =
            match engine.get(Cf::Raft, &keys::apply_state_key(region_id))? {
                Some(bytes) => decode(&bytes)?,
                None => panic!("region {region_id} has a region state but no apply state"),
            };
        let mut storage = PeerStorage {
            engine,
            region_id,
            peer_id,
            region,
            raft_state,
            apply_state,
            log: VecDeque::new(),
            log_size_bytes: 0,
            pending: WriteBatch::new(),
        };
        storage.load_log()?;
        storage.check_invariants();
        Ok(storage)
    }

    /// A peer created by a message from its region's leader or a vote request: no data, no
    /// configuration, it waits for a snapshot. Its hard state is persisted under the region id
    /// like an initialized peer's (by `set_hard_state`), and read back here: a peer re-created
    /// after a restart keeps its term and vote, so it cannot vote twice in one term. Destroying
    /// the peer (`write_destroy`) deletes that state with the rest of its raft keys.
    pub fn new_uninitialized(
        engine: Arc<Engine>,
        region_id: RegionId,
        peer_id: PeerId,
    ) -> Result<PeerStorage> {
        let raft_state = match engine.get(Cf::Raft, &keys::raft_state_key(region_id))? {
            Some(bytes) => {
                let mut rs: RaftLocalState = decode(&bytes)?;
                // Without a region state the peer never installed a snapshot: no entries.
                rs.last_index = 0;
                rs.hard_state.commit = 0;
                rs
            }
            None => RaftLocalState::default(),
        };
        Ok(PeerStorage {
            engine,
            region_id,
            peer_id,
            region: Region { id: region_id, ..Default::default() },
            raft_state,
            apply_state: RaftApplyState::default(),
            log: VecDeque::new(),
            log_size_bytes: 0,
            pending: WriteBatch::new(),
        })
    }

    fn load_log(&mut self) -> Result<()> {
        let first = self.first();
        let last = self.raft_state.last_index;
        if first > last {
            return Ok(());
        }
        let start = keys::raft_log_key(self.region_id, first);
        let end = keys::raft_log_key(self.region_id, last + 1);
        let kvs = self.engine.scan(Cf::Raft, &start, Some(&end), usize::MAX)?;
        assert_eq!(
            kvs.len() as u64,
            last + 1 - first,
            "region {}: log [{first}, {last}] has {} entries on disk",
            self.region_id,
            kvs.len()
        );
        for (key, value) in kvs {
            let e: Entry = decode(&value)?;
            assert_eq!(keys::raft_log_index(&key), e.index, "log key and entry index differ");
            self.log_size_bytes += e.size_bytes();
            self.log.push_back(e);
        }
        Ok(())
    }

    fn first(&self) -> u64 {
        self.apply_state.truncated_state.index + 1
    }

    fn last(&self) -> u64 {
        self.raft_state.last_index
    }

    /// Panics with context when the storage's own invariants are broken.
    pub fn check_invariants(&self) {
        let truncated = self.apply_state.truncated_state.index;
        let applied = self.apply_state.applied_index;
        // Apply never runs ahead of the log it applies (on disk too: both move in one write).
        assert!(
            applied <= self.last() && applied <= self.raft_state.hard_state.commit
                || !self.is_initialized(),
            "region {}: applied {applied} past last {} or commit {}",
            self.region_id,
            self.last(),
            self.raft_state.hard_state.commit
        );
        assert!(
            truncated <= self.apply_state.applied_index || !self.is_initialized(),
            "region {}: truncated {truncated} past applied {}",
            self.region_id,
            self.apply_state.applied_index
        );
        assert_eq!(
            self.log.len() as u64,
            self.last().saturating_sub(truncated),
            "region {}: cached entries out of step with the log [{}, {}]",
            self.region_id,
            self.first(),
            self.last()
        );
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn region_id(&self) -> RegionId {
        self.region_id
    }

    /// Whether the peer knows its region (bootstrapped, or a snapshot was installed).
    pub fn is_initialized(&self) -> bool {
        !self.region.peers.is_empty()
    }

    /// The hard state as last persisted (or about to be, see `pending`).
    pub fn hard_state(&self) -> HardState {
        self.raft_state.hard_state
    }

    pub fn apply_state(&self) -> RaftApplyState {
        self.apply_state
    }

    pub fn applied_index(&self) -> u64 {
        self.apply_state.applied_index
    }

    pub fn truncated_state(&self) -> RaftTruncatedState {
        self.apply_state.truncated_state
    }

    pub fn last_index(&self) -> u64 {
        self.last()
    }

    /// Bytes of the entries still in the log.
    pub fn log_size_bytes(&self) -> u64 {
        self.log_size_bytes
    }

    /// The writes buffered since the last call.
    pub fn take_pending(&mut self) -> WriteBatch {
        std::mem::take(&mut self.pending)
    }

    /// Records that apply reached `applied_index` with `region` (both written by the caller's
    /// apply batch, see `write_apply_state`).
    pub fn set_applied(&mut self, applied_index: u64, region: Region) {
        assert!(
            applied_index >= self.apply_state.applied_index,
            "region {}: applied index moves back {} -> {applied_index}",
            self.region_id,
            self.apply_state.applied_index
        );
        self.apply_state.applied_index = applied_index;
        self.region = region;
    }

    /// Adds the apply state and region state to `batch`.
    pub fn write_apply_state(&self, batch: &mut WriteBatch) -> Result<()> {
        let region_state =
            RegionLocalState { state: PeerState::Normal, region: self.region.clone() };
        batch.put(Cf::Raft, &keys::apply_state_key(self.region_id), &encode(&self.apply_state)?);
        batch.put(Cf::Raft, &keys::region_state_key(self.region_id), &encode(&region_state)?);
        Ok(())
    }

    /// Adds the apply state and a tombstone region state (with the region as this peer's
    /// removal left it) to `batch`: this peer applied its own removal. What the peer still
    /// holds is deleted by `write_destroy` after the write, or, if the store stops first,
    /// when it opens again (see `Store::open`).
    pub fn write_removal_state(&self, batch: &mut WriteBatch) -> Result<()> {
        assert!(
            !self.region.peers.iter().any(|p| p.id == self.peer_id),
            "region {}: peer {} is still a member, not removed",
            self.region_id,
            self.peer_id
        );
        let region_state =
            RegionLocalState { state: PeerState::Tombstone, region: self.region.clone() };
        batch.put(Cf::Raft, &keys::apply_state_key(self.region_id), &encode(&self.apply_state)?);
        batch.put(Cf::Raft, &keys::region_state_key(self.region_id), &encode(&region_state)?);
        Ok(())
    }

    /// Adds only the apply state to `batch` (the region state is unchanged since it was last
    /// written).
    pub fn write_apply_index(&self, batch: &mut WriteBatch) -> Result<()> {
        batch.put(Cf::Raft, &keys::apply_state_key(self.region_id), &encode(&self.apply_state)?);
        Ok(())
    }

    /// Truncates the log through `compact_index` (an applied CompactLog), adding the deletions
    /// to `batch`; the new truncated state goes out with the next `write_apply_state`.
    /// Returns whether anything was truncated.
    pub fn compact_to(&mut self, compact_index: u64, batch: &mut WriteBatch) -> bool {
        let first = self.first();
        if compact_index < first {
            return false;
        }
        assert!(
            compact_index <= self.last(),
            "region {}: compact to {compact_index} past last {}",
            self.region_id,
            self.last()
        );
        let term = self.log[(compact_index - first) as usize].term;
        for _ in first..=compact_index {
            let e = self.log.pop_front().expect("checked against last above");
            self.log_size_bytes -= e.size_bytes();
        }
        let start = keys::raft_log_key(self.region_id, first);
        let end = keys::raft_log_key(self.region_id, compact_index + 1);
        batch.delete_range(Cf::Raft, &start, Some(&end));
        self.apply_state.truncated_state = RaftTruncatedState { index: compact_index, term };
        probe(Probe::StoreLogCompacted);
        true
    }

    /// Adds to `batch` the removal of every raft key of this peer (its log, its hard state,
    /// even if it never was initialized) and its data, and a tombstone region state, which it
    /// returns. `me` is this peer: an uninitialized peer knows no region, so its tombstone
    /// names only `me`, enough to refuse stale messages to it (or to older peers) later.
    pub fn write_destroy(
        &self,
        batch: &mut WriteBatch,
        me: &metapb::Peer,
    ) -> Result<RegionLocalState> {
        assert_eq!(me.id, self.peer_id, "region {}: destroying another peer", self.region_id);
        let initialized = self.is_initialized();
        write_clear_peer(batch, self.region_id, initialized.then_some(&self.region));
        let region = if initialized {
            self.region.clone()
        } else {
            Region { id: self.region_id, peers: vec![me.clone()], ..Default::default() }
        };
        let state = RegionLocalState { state: PeerState::Tombstone, region };
        batch.put(Cf::Raft, &keys::region_state_key(self.region_id), &encode(&state)?);
        Ok(state)
    }

    /// Builds a snapshot of the region as of its applied index from one engine snapshot.
    pub fn generate_snapshot(&self) -> Result<Snapshot> {
        let snap = self.engine.snapshot()?;
        let apply_state: RaftApplyState = match snap
            .get(Cf::Raft, &keys::apply_state_key(self.region_id))?
        {
            Some(bytes) => decode(&bytes)?,
            None => {
                panic!("region {}: generating a snapshot without an apply state", self.region_id)
            }
        };
        let region_state: RegionLocalState = match snap
            .get(Cf::Raft, &keys::region_state_key(self.region_id))?
        {
            Some(bytes) => decode(&bytes)?,
            None => {
                panic!("region {}: generating a snapshot without a region state", self.region_id)
            }
        };
        let region = region_state.region;
        let mut cfs = Vec::with_capacity(DATA_CFS.len());
        for (cf, name) in DATA_CFS {
            let mut kvs = snap.scan(cf, &region.start_key, end_bound(&region), usize::MAX)?;
            if canary(Canary::SnapshotDropsKey) {
                kvs.pop();
            }
            cfs.push(SnapshotCfData { cf: name, kvs });
        }
        snap.close();
        let index = apply_state.applied_index;
        let term = if index == apply_state.truncated_state.index {
            apply_state.truncated_state.term
        } else {
            self.term(index)?
        };
        let conf_state = conf_state_of(&region);
        let data = RegionSnapshotData { region, applied_index: index, cfs };
        Ok(Snapshot {
            data: encode(&data)?,
            metadata: SnapshotMetadata { conf_state, index, term },
        })
    }
}

impl Storage for PeerStorage {
    fn initial_state(&self) -> minikv_raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.raft_state.hard_state,
            conf_state: conf_state_of(&self.region),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size_bytes: Option<u64>,
    ) -> minikv_raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(RaftError::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(RaftError::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        // As many entries as fit in the size limit (at least one).
        let range = (low - self.first()) as usize..(high - self.first()) as usize;
        let mut out = Vec::with_capacity(range.len());
        let mut size = 0u64;
        for e in self.log.range(range) {
            size += e.size_bytes();
            if !out.is_empty() && max_size_bytes.is_some_and(|max| size > max) {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> minikv_raft::Result<u64> {
        let truncated = self.apply_state.truncated_state;
        if index == truncated.index {
            return Ok(truncated.term);
        }
        if index < truncated.index {
            return Err(RaftError::Store(StorageError::Compacted));
        }
        if index > self.last() {
            return Err(RaftError::Store(StorageError::Unavailable));
        }
        Ok(self.log[(index - self.first()) as usize].term)
    }

    fn first_index(&self) -> minikv_raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> minikv_raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64) -> minikv_raft::Result<Snapshot> {
        // An engine failure here is transient from Raft's point of view: it asks again.
        if buggify(Point::StoreSnapshotUnavailable) {
            return Err(RaftError::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let snapshot = self
            .generate_snapshot()
            .map_err(|_| RaftError::Store(StorageError::SnapshotTemporarilyUnavailable))?;
        let meta = &snapshot.metadata;
        crate::events::snapshot_generated(self.region_id, meta.index, meta.term);
        Ok(snapshot)
    }

    fn append(&mut self, entries: &[Entry]) -> minikv_raft::Result<()> {
        self.append_moving(&mut entries.to_vec())
    }

    fn append_moving(&mut self, entries: &mut Vec<Entry>) -> minikv_raft::Result<()> {
        let Some(first_new) = entries.first() else { return Ok(()) };
        assert!(
            first_new.index <= self.last() + 1,
            "region {}: append leaves a gap: last {}, first new {}",
            self.region_id,
            self.last(),
            first_new.index
        );
        // Entries at or below the truncated index are applied and identical: skip them.
        let skip = self.first().saturating_sub(first_new.index) as usize;
        let skip = skip.min(entries.len());
        let Some(first_kept) = entries.get(skip) else { return Ok(()) };
        let new_last = entries.last().expect("non-empty").index;
        let keep = (first_kept.index - self.first()) as usize;
        // Encode first: on error nothing has changed and `entries` is left as given.
        let mut encoded = Vec::with_capacity(entries.len() - skip);
        for e in &entries[skip..] {
            encoded.push(encode(e).map_err(store_err)?);
        }
        for e in self.log.range(keep..) {
            self.log_size_bytes -= e.size_bytes();
        }
        self.log.truncate(keep);
        for (e, bytes) in entries.drain(skip..).zip(encoded) {
            self.pending.put(Cf::Raft, &keys::raft_log_key(self.region_id, e.index), &bytes);
            self.log_size_bytes += e.size_bytes();
            self.log.push_back(e);
        }
        if self.last() > new_last {
            let start = keys::raft_log_key(self.region_id, new_last + 1);
            let end = keys::raft_log_key(self.region_id, self.last() + 1);
            self.pending.delete_range(Cf::Raft, &start, Some(&end));
        }
        self.raft_state.last_index = new_last;
        self.put_raft_state()
    }

    fn set_hard_state(&mut self, hs: HardState) -> minikv_raft::Result<()> {
        self.raft_state.hard_state = hs;
        self.put_raft_state()
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> minikv_raft::Result<()> {
        let meta = &snapshot.metadata;
        let data: RegionSnapshotData = decode(&snapshot.data).unwrap_or_else(|e| {
            panic!("region {}: snapshot data was validated before stepping: {e}", self.region_id)
        });
        assert_eq!(data.region.id, self.region_id, "snapshot of another region");
        assert_eq!(data.applied_index, meta.index, "snapshot data and metadata disagree");
        if meta.index <= self.apply_state.truncated_state.index && self.is_initialized() {
            return Err(RaftError::Store(StorageError::SnapshotOutOfDate));
        }
        if self.is_initialized() {
            delete_region_data(&mut self.pending, &self.region);
        }
        delete_region_data(&mut self.pending, &data.region);
        for cf_data in &data.cfs {
            let cf = engine_cf(cf_data.cf);
            for (k, v) in &cf_data.kvs {
                self.pending.put(cf, k, v);
            }
        }
        let (start, end) = keys::region_raft_range(self.region_id);
        self.pending.delete_range(Cf::Raft, &start, Some(&end));
        let hs = &mut self.raft_state.hard_state;
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        self.raft_state.last_index = meta.index;
        self.apply_state = RaftApplyState {
            applied_index: meta.index,
            truncated_state: RaftTruncatedState { index: meta.index, term: meta.term },
        };
        self.log.clear();
        self.log_size_bytes = 0;
        self.region = data.region;
        assert!(
            self.region.peers.iter().any(|p| p.id == self.peer_id),
            "region {}: snapshot installed on peer {} which it does not list",
            self.region_id,
            self.peer_id
        );
        self.put_raft_state()?;
        probe(Probe::StoreSnapshotApplied);
        self.write_apply_state_pending().map_err(store_err)
    }
}

impl PeerStorage {
    fn put_raft_state(&mut self) -> minikv_raft::Result<()> {
        let bytes = encode(&self.raft_state).map_err(store_err)?;
        self.pending.put(Cf::Raft, &keys::raft_state_key(self.region_id), &bytes);
        Ok(())
    }

    fn write_apply_state_pending(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.pending);
        self.write_apply_state(&mut batch)?;
        self.pending = batch;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use minikv_engine::{SimDisk, SimDiskConfig};
    use minikv_proto::metapb::{Peer, RegionEpoch};

    use super::*;

    fn region() -> Region {
        Region {
            id: 1,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            epoch: RegionEpoch { conf_ver: 1, version: 1 },
            peers: vec![
                Peer { id: 1, store_id: 1, role: PeerRole::Voter },
                Peer { id: 2, store_id: 2, role: PeerRole::Learner },
            ],
        }
    }

    fn bootstrapped(disk: &SimDisk) -> (Arc<Engine>, PeerStorage) {
        let engine = Arc::new(Engine::open(disk.clone()).unwrap());
        let mut batch = WriteBatch::new();
        PeerStorage::write_bootstrap_state(&mut batch, &region()).unwrap();
        engine.write(&batch, true).unwrap();
        let storage = PeerStorage::load(engine.clone(), region(), 1).unwrap();
        (engine, storage)
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8; 10], ..Default::default() }
    }

    fn flush(engine: &Engine, s: &mut PeerStorage) {
        engine.write(&s.take_pending(), true).unwrap();
    }

    #[test]
    fn bootstrap_state_is_the_initial_log_and_configuration() {
        let (_, s) = bootstrapped(&SimDisk::new(1, SimDiskConfig::default()));
        assert_eq!(s.first_index().unwrap(), RAFT_INIT_LOG_INDEX + 1);
        assert_eq!(Storage::last_index(&s).unwrap(), RAFT_INIT_LOG_INDEX);
        assert_eq!(s.term(RAFT_INIT_LOG_INDEX).unwrap(), RAFT_INIT_LOG_TERM);
        let state = s.initial_state().unwrap();
        assert_eq!(state.conf_state.voters, vec![1]);
        assert_eq!(state.conf_state.learners, vec![2]);
        assert_eq!(state.hard_state.commit, RAFT_INIT_LOG_INDEX);
        assert_eq!(s.entries(1, 6, None), Err(RaftError::Store(StorageError::Compacted)));
    }

    #[test]
    fn append_truncates_conflicts_and_survives_a_crash_once_synced() {
        let disk = SimDisk::new(2, SimDiskConfig::default());
        let (engine, mut s) = bootstrapped(&disk);
        s.append(&(6..=10).map(|i| entry(i, 6)).collect::<Vec<_>>()).unwrap();
        s.set_hard_state(HardState { term: 7, vote: 1, commit: 7 }).unwrap();
        flush(&engine, &mut s);
        s.append(&[entry(8, 7), entry(9, 7)]).unwrap();
        flush(&engine, &mut s);
        assert_eq!(Storage::last_index(&s).unwrap(), 9);
        assert_eq!(s.term(8).unwrap(), 7);
        assert_eq!(s.term(7).unwrap(), 6);
        assert_eq!(s.term(10), Err(RaftError::Store(StorageError::Unavailable)));
        assert_eq!(
            s.entries(6, 10, None).unwrap().iter().map(|e| e.term).collect::<Vec<_>>(),
            vec![6, 6, 7, 7]
        );
        assert_eq!(s.entries(6, 10, Some(15)).unwrap().len(), 1, "size limit keeps at least one");
        assert_eq!(s.entries(6, 10, Some(70)).unwrap().len(), 2);
        // A crash keeps everything synced (the unsynced append may or may not survive).
        s.append(&[entry(10, 7)]).unwrap();
        engine.write(&s.take_pending(), false).unwrap();
        drop(s);
        drop(engine);
        disk.crash();
        let engine = Arc::new(Engine::open(disk.clone()).unwrap());
        let s = PeerStorage::load(engine, region(), 1).unwrap();
        assert!(Storage::last_index(&s).unwrap() >= 9);
        assert_eq!(s.term(9).unwrap(), 7);
        assert_eq!(
            s.initial_state().unwrap().hard_state,
            HardState { term: 7, vote: 1, commit: 7 }
        );
        assert_eq!(s.entries(9, 10, None).unwrap(), vec![entry(9, 7)]);
    }

    #[test]
    fn compaction_moves_the_first_index_and_the_size() {
        let (engine, mut s) = bootstrapped(&SimDisk::new(3, SimDiskConfig::default()));
        s.append(&(6..=12).map(|i| entry(i, 6)).collect::<Vec<_>>()).unwrap();
        s.set_hard_state(HardState { term: 6, vote: 1, commit: 12 }).unwrap();
        flush(&engine, &mut s);
        let size_before = s.log_size_bytes();
        s.set_applied(10, region());
        let mut batch = WriteBatch::new();
        assert!(s.compact_to(9, &mut batch));
        assert!(!s.compact_to(9, &mut batch), "compacting twice is a no-op");
        s.write_apply_state(&mut batch).unwrap();
        engine.write(&batch, true).unwrap();
        assert_eq!(s.first_index().unwrap(), 10);
        assert_eq!(s.term(9).unwrap(), 6);
        assert_eq!(s.entries(9, 11, None), Err(RaftError::Store(StorageError::Compacted)));
        assert_eq!(s.log_size_bytes(), size_before * 3 / 7);
        let reloaded = PeerStorage::load(engine.clone(), region(), 1).unwrap();
        assert_eq!(reloaded.truncated_state(), RaftTruncatedState { index: 9, term: 6 });
        assert_eq!(reloaded.log_size_bytes(), s.log_size_bytes());
    }

    #[test]
    fn snapshot_carries_the_region_range_and_installs_on_another_store() {
        let (engine, mut s) = bootstrapped(&SimDisk::new(4, SimDiskConfig::default()));
        s.append(&[entry(6, 6)]).unwrap();
        s.set_hard_state(HardState { term: 6, vote: 1, commit: 6 }).unwrap();
        flush(&engine, &mut s);
        let mut batch = WriteBatch::new();
        for key in [&b"0-before"[..], b"apple", b"kiwi", b"zebra"] {
            batch.put(Cf::Default, key, b"v");
        }
        batch.put(Cf::Lock, b"b-lock", b"l");
        s.set_applied(6, region());
        s.write_apply_state(&mut batch).unwrap();
        engine.write(&batch, true).unwrap();
        let snap = s.snapshot(6).unwrap();
        assert_eq!((snap.metadata.index, snap.metadata.term), (6, 6));
        assert_eq!(snap.metadata.conf_state.voters, vec![1]);
        let data: RegionSnapshotData = decode(&snap.data).unwrap();
        assert_eq!(
            data.cfs[0].kvs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![b"apple".to_vec(), b"kiwi".to_vec()]
        );

        let other = Arc::new(Engine::open(SimDisk::new(5, SimDiskConfig::default())).unwrap());
        other.write(WriteBatch::new().put(Cf::Default, b"b-stale", b"x"), true).unwrap();
        let mut target = PeerStorage::new_uninitialized(other.clone(), 1, 2).unwrap();
        assert!(!target.is_initialized());
        target.apply_snapshot(snap).unwrap();
        flush(&other, &mut target);
        assert!(target.is_initialized());
        assert_eq!(target.applied_index(), 6);
        assert_eq!(target.first_index().unwrap(), 7);
        assert_eq!(other.get(Cf::Default, b"kiwi").unwrap(), Some(b"v".to_vec()));
        assert_eq!(other.get(Cf::Lock, b"b-lock").unwrap(), Some(b"l".to_vec()));
        assert_eq!(other.get(Cf::Default, b"b-stale").unwrap(), None);
        assert_eq!(other.get(Cf::Default, b"zebra").unwrap(), None);
        let reloaded = PeerStorage::load(other, region(), 2).unwrap();
        assert_eq!(reloaded.apply_state(), target.apply_state());
    }
}
