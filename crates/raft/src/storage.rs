//! The `Storage` trait Raft reads its durable log through, and `MemStorage`, an in-memory one.
//!
//! The read side is used by the Raft state machine; the write side only by `RawNode::persist`,
//! so everything handed to the network has been written first (persist-before-send).

use std::cell::Cell;

use minikv_proto::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

use crate::errors::{Error, Result, StorageError};

/// What a node restarts from: its hard state and its configuration as of `Config::applied`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
}

/// Durable Raft state: the log, the hard state and the latest snapshot.
pub trait Storage {
    /// The persisted hard state and the configuration to restart with.
    fn initial_state(&self) -> Result<RaftState>;
    /// Entries in `[low, high)`, cut after `max_size_bytes` (but at least one entry if any).
    fn entries(&self, low: u64, high: u64, max_size_bytes: Option<u64>) -> Result<Vec<Entry>>;
    /// The term of the entry at `index`; the snapshot's index is answerable too.
    fn term(&self, index: u64) -> Result<u64>;
    /// Index of the first entry still in the log (snapshot index + 1 after compaction).
    fn first_index(&self) -> Result<u64>;
    /// Index of the last entry (the snapshot index when the log is empty).
    fn last_index(&self) -> Result<u64>;
    /// The latest snapshot; `request_index` is the index the follower needs it to cover.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot>;
    /// Appends `entries`, first truncating any existing suffix that conflicts with them.
    fn append(&mut self, entries: &[Entry]) -> Result<()>;
    /// `append` that may move the entries out of `entries` instead of cloning them (a storage
    /// keeping `Entry` values avoids a copy). On error `entries` must be left as given.
    /// `RawNode::persist` calls this one.
    fn append_moving(&mut self, entries: &mut Vec<Entry>) -> Result<()> {
        self.append(entries)
    }
    /// Replaces the hard state.
    fn set_hard_state(&mut self, hs: HardState) -> Result<()>;
    /// Replaces the whole log with `snapshot`.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()>;
}

/// An in-memory `Storage`. Cloning it is how tests model a crash: the clone is what was persisted.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    hard_state: HardState,
    /// The configuration the node restarts with (set by the application as it applies changes).
    conf_state: ConfState,
    /// The latest snapshot (index 0 = none yet; its metadata still carries the boot config).
    snapshot: Snapshot,
    /// Index of `entries[0]`; every index below it is compacted. Always >= 1.
    first_index: u64,
    /// Term of the entry at `first_index - 1` (kept so the boundary term stays answerable).
    boundary_term: u64,
    /// Entries `first_index ..= first_index + entries.len() - 1`, indexes contiguous.
    entries: Vec<Entry>,
    /// The next `snapshot()` call fails with `SnapshotTemporarilyUnavailable` (tests).
    /// A `Cell` because `snapshot` takes `&self` yet must consume the trigger.
    snapshot_unavailable_once: Cell<bool>,
}

impl MemStorage {
    /// An empty storage with no configuration. Such a node learns its configuration only from a
    /// snapshot; a node joining a cluster whose boot configuration is still in the log (not
    /// compacted) should use `new_with_conf_state` with that boot configuration instead.
    pub fn new() -> Self {
        MemStorage { first_index: 1, ..Default::default() }
    }

    /// A bootstrapped storage: the configuration `cs` is known at index 0.
    pub fn new_with_conf_state(cs: ConfState) -> Self {
        let mut store = MemStorage::new();
        store.snapshot.metadata.conf_state = cs.clone();
        store.conf_state = cs;
        store
    }

    fn last(&self) -> u64 {
        self.first_index + self.entries.len() as u64 - 1
    }

    /// Drops every entry with index < `compact_index`. The application must have created a
    /// snapshot covering `compact_index - 1` first, or lagging followers could never catch up.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        if compact_index <= self.first_index {
            return Ok(());
        }
        if compact_index > self.last() + 1 {
            return Err(Error::Store(StorageError::Unavailable));
        }
        if compact_index > self.snapshot.metadata.index + 1 {
            return Err(Error::Store(StorageError::Other(format!(
                "compact to {compact_index} would pass the latest snapshot at {}",
                self.snapshot.metadata.index
            ))));
        }
        let drop_count = (compact_index - self.first_index) as usize;
        self.boundary_term = self.entries[drop_count - 1].term;
        self.entries.drain(..drop_count);
        self.first_index = compact_index;
        Ok(())
    }

    /// Records the application's snapshot `data` of the state at `index` (with `cs`, or the
    /// current configuration) as the snapshot to send to followers that need compacted entries.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        cs: Option<ConfState>,
        data: Vec<u8>,
    ) -> Result<Snapshot> {
        if index <= self.snapshot.metadata.index {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        if index > self.last() {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let term = self.term(index)?;
        let conf_state = cs.unwrap_or_else(|| self.conf_state.clone());
        self.snapshot = Snapshot { data, metadata: SnapshotMetadata { conf_state, index, term } };
        Ok(self.snapshot.clone())
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Sets the configuration the node restarts with.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Makes the next `snapshot()` call return `SnapshotTemporarilyUnavailable`.
    pub fn trigger_snapshot_unavailable(&mut self) {
        self.snapshot_unavailable_once.set(true);
    }

    /// Checks that `entries` can be appended and truncates the conflicting suffix they replace.
    /// Returns how many leading entries to skip (already compacted, hence committed and
    /// identical); the rest are to be appended.
    fn prepare_append(&mut self, entries: &[Entry]) -> usize {
        let Some(first_new) = entries.first() else { return 0 };
        assert!(
            first_new.index <= self.last() + 1,
            "append would leave a gap: last index {}, first new entry {}",
            self.last(),
            first_new.index
        );
        let skip = (self.first_index.saturating_sub(first_new.index) as usize).min(entries.len());
        if let Some(first_kept) = entries.get(skip) {
            self.entries.truncate((first_kept.index - self.first_index) as usize);
        }
        skip
    }

    /// Every entry still in the log (tests and debugging).
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        Ok(RaftState { hard_state: self.hard_state, conf_state: self.conf_state.clone() })
    }

    fn entries(&self, low: u64, high: u64, max_size_bytes: Option<u64>) -> Result<Vec<Entry>> {
        if low < self.first_index {
            return Err(Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first_index) as usize;
        let hi = (high - self.first_index) as usize;
        Ok(limit_size(&self.entries[lo..hi], max_size_bytes))
    }

    fn term(&self, index: u64) -> Result<u64> {
        if index + 1 == self.first_index {
            return Ok(self.boundary_term);
        }
        if index == self.snapshot.metadata.index {
            return Ok(self.snapshot.metadata.term);
        }
        if index < self.first_index {
            return Err(Error::Store(StorageError::Compacted));
        }
        if index > self.last() {
            return Err(Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(index - self.first_index) as usize].term)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.first_index)
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot> {
        if self.snapshot_unavailable_once.replace(false) {
            return Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let keep_from = self.prepare_append(entries);
        self.entries.extend_from_slice(&entries[keep_from..]);
        Ok(())
    }

    fn append_moving(&mut self, entries: &mut Vec<Entry>) -> Result<()> {
        let keep_from = self.prepare_append(entries);
        if keep_from > 0 {
            entries.drain(..keep_from);
        }
        self.entries.append(entries);
        Ok(())
    }

    fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.hard_state = hs;
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = &snapshot.metadata;
        if meta.index <= self.snapshot.metadata.index {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        self.first_index = meta.index + 1;
        self.boundary_term = meta.term;
        self.entries.clear();
        self.conf_state = meta.conf_state.clone();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.snapshot = snapshot;
        Ok(())
    }
}

/// The longest prefix of `entries` within `max_size_bytes`, but at least one entry.
pub(crate) fn limit_size(entries: &[Entry], max_size_bytes: Option<u64>) -> Vec<Entry> {
    let Some(max) = max_size_bytes else { return entries.to_vec() };
    let mut size = 0u64;
    let mut count = 0;
    for e in entries {
        size += e.size_bytes();
        if count > 0 && size > max {
            break;
        }
        count += 1;
    }
    entries[..count].to_vec()
}
