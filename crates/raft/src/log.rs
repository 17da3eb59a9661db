//! `RaftLog`: the unstable (not yet persisted) tail over the storage view, plus the commit and
//! apply cursors. Invariant: `first_index - 1 <= applied <= committed <= last_index`.

use minikv_hooks::{Canary, Probe, canary, probe};
use minikv_proto::raftpb::{Entry, Snapshot};

use crate::errors::{Error, Result, StorageError};
use crate::storage::Storage;

/// Entries and a snapshot received or proposed but not yet written to storage.
#[derive(Debug, Clone, Default)]
pub struct Unstable {
    /// A snapshot to install; when set, `offset == snapshot.index + 1`.
    pub snapshot: Option<Snapshot>,
    /// Entries `offset ..`, contiguous.
    pub entries: Vec<Entry>,
    /// Index of `entries[0]` (or where the next entry would go).
    pub offset: u64,
}

impl Unstable {
    fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.last() {
            Some(e) => Some(e.index),
            None => self.snapshot.as_ref().map(|s| s.metadata.index),
        }
    }

    fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let snap = self.snapshot.as_ref()?;
            return (snap.metadata.index == index).then_some(snap.metadata.term);
        }
        self.entries.get((index - self.offset) as usize).map(|e| e.term)
    }

    /// Entries up to `index` (with `term`) are now in storage.
    fn stable_to(&mut self, index: u64, term: u64) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            return; // Replaced by a newer, conflicting append since the Ready was built.
        }
        self.entries.drain(..(index + 1 - self.offset) as usize);
        self.offset = index + 1;
    }

    fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.metadata.index == index) {
            self.snapshot = None;
        }
    }

    fn restore(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.offset = snapshot.metadata.index + 1;
        self.snapshot = Some(snapshot);
    }

    fn truncate_and_append(&mut self, mut entries: Vec<Entry>) {
        let after = entries[0].index;
        if after == self.offset + self.entries.len() as u64 {
            self.entries.append(&mut entries);
        } else if after <= self.offset {
            // Replaces everything unstable; storage's conflicting suffix is truncated on persist.
            self.offset = after;
            self.entries = entries;
        } else {
            self.entries.truncate((after - self.offset) as usize);
            self.entries.append(&mut entries);
        }
    }

    /// Moves out the entries `offset ..= index` if they are still the ones with `(index, term)`
    /// at their end (log matching: then they are the entries a Ready carried), and marks them
    /// stable. Returns None, changing nothing, if they were replaced since.
    fn take_stable_to(&mut self, first: u64, index: u64, term: u64) -> Option<Vec<Entry>> {
        if first != self.offset || index < self.offset || self.maybe_term(index) != Some(term) {
            return None;
        }
        let count = (index + 1 - self.offset) as usize;
        self.offset = index + 1;
        if count == self.entries.len() {
            // Keep a buffer of the same size for the next batch of unstable entries.
            return Some(std::mem::replace(&mut self.entries, Vec::with_capacity(count)));
        }
        Some(self.entries.drain(..count).collect())
    }

    fn slice(&self, low: u64, high: u64) -> &[Entry] {
        assert!(
            self.offset <= low && low <= high && high <= self.offset + self.entries.len() as u64,
            "unstable slice [{low}, {high}) out of bounds [{}, {})",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        &self.entries[(low - self.offset) as usize..(high - self.offset) as usize]
    }
}

/// The log as Raft sees it: storage followed by the unstable tail.
#[derive(Debug)]
pub struct RaftLog<S: Storage> {
    pub store: S,
    pub unstable: Unstable,
    /// Highest index known committed. Invariant: `applied <= committed <= last_index()`.
    pub committed: u64,
    /// Highest index the application has applied. Invariant: `applied <= committed`.
    pub applied: u64,
}

fn store_err(e: Error) -> StorageError {
    match e {
        Error::Store(se) => se,
        other => StorageError::Other(other.to_string()),
    }
}

impl<S: Storage> RaftLog<S> {
    pub fn new(store: S) -> Self {
        let first = store.first_index().expect("storage first_index");
        let last = store.last_index().expect("storage last_index");
        RaftLog {
            store,
            unstable: Unstable { snapshot: None, entries: Vec::new(), offset: last + 1 },
            committed: first - 1,
            applied: first - 1,
        }
    }

    pub fn first_index(&self) -> u64 {
        self.unstable
            .maybe_first_index()
            .unwrap_or_else(|| self.store.first_index().expect("storage first_index"))
    }

    pub fn last_index(&self) -> u64 {
        self.unstable
            .maybe_last_index()
            .unwrap_or_else(|| self.store.last_index().expect("storage last_index"))
    }

    /// The term at `index`; `Compacted` below the first index - 1, `Unavailable` past the last.
    pub fn term(&self, index: u64) -> std::result::Result<u64, StorageError> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.store.term(index).map_err(store_err)
    }

    pub fn last_term(&self) -> u64 {
        let last = self.last_index();
        self.term(last).unwrap_or_else(|e| panic!("term of the last index {last} unreadable: {e}"))
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// A candidate's log (last term `term`, last index `last`) is at least as up to date as
    /// ours. Raft §5.4.1.
    pub fn is_up_to_date(&self, last: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && last >= self.last_index())
    }

    /// Follower side of Append: if our entry at `index` has `log_term`, appends `entries`
    /// (truncating a conflicting suffix), advances commit, and returns the last new index.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        entries: &[Entry],
    ) -> Option<u64> {
        self.maybe_append_owned(index, log_term, committed, entries.to_vec())
    }

    /// `maybe_append` taking the entries by value, so the new ones are moved, not cloned.
    pub fn maybe_append_owned(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        mut entries: Vec<Entry>,
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + entries.len() as u64;
        let conflict = self.find_conflict(&entries);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with the committed prefix (committed {})",
                self.committed
            );
            if conflict <= self.last_index() {
                probe(Probe::RaftLogConflictTruncated);
            }
            entries.drain(..(conflict - (index + 1)) as usize);
            self.append_owned(entries);
        }
        // Only the prefix up to `last_new` is known to match the leader's log.
        let shared =
            if canary(Canary::RaftFollowerCommitUnchecked) { self.last_index() } else { last_new };
        self.commit_to(committed.min(shared));
        Some(last_new)
    }

    /// Index of the first entry that is new or whose term differs from ours (0 if none).
    pub fn find_conflict(&self, entries: &[Entry]) -> u64 {
        entries.iter().find(|e| !self.match_term(e.index, e.term)).map_or(0, |e| e.index)
    }

    /// The largest index <= `index` whose term is <= `term`, and that term (fast backtracking).
    pub fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        loop {
            match self.term(index) {
                Ok(t) if t > term && index > 0 => index -= 1,
                Ok(t) => return (index, t),
                Err(_) => return (index, 0),
            }
        }
    }

    /// Appends to the unstable tail; returns the new last index.
    pub fn append(&mut self, entries: &[Entry]) -> u64 {
        self.append_owned(entries.to_vec())
    }

    /// `append` taking the entries by value, so they are moved into the log, not cloned.
    pub fn append_owned(&mut self, entries: Vec<Entry>) -> u64 {
        let Some(first) = entries.first() else { return self.last_index() };
        assert!(
            first.index > self.committed,
            "appending at {} would overwrite committed entries (committed {})",
            first.index,
            self.committed
        );
        self.unstable.truncate_and_append(entries);
        self.last_index()
    }

    pub fn commit_to(&mut self, to_commit: u64) {
        if self.committed >= to_commit {
            return;
        }
        assert!(
            to_commit <= self.last_index(),
            "commit {to_commit} is past the last index {}; was the log truncated or lost?",
            self.last_index()
        );
        self.committed = to_commit;
    }

    /// Commits `max_index` if its entry belongs to `term`. Raft §5.4.2: a leader only commits
    /// entries of its own term by counting replicas.
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index <= self.committed {
            return false;
        }
        if self.term(max_index).is_ok_and(|t| t == term) {
            self.commit_to(max_index);
            return true;
        }
        probe(Probe::RaftCommitWaitsForOwnTerm);
        if canary(Canary::RaftFigure8) {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, index: u64) {
        if index == 0 || index <= self.applied {
            return;
        }
        assert!(index <= self.committed, "applied {index} is past committed {}", self.committed);
        self.applied = index;
    }

    pub fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    /// Like `stable_to`, but hands back the unstable entries `first ..= index` instead of
    /// dropping them, so the caller can move them into storage. None (and nothing changed) if
    /// the unstable tail no longer starts at `first` or no longer holds `(index, term)`.
    pub fn take_stable_to(&mut self, first: u64, index: u64, term: u64) -> Option<Vec<Entry>> {
        self.unstable.take_stable_to(first, index, term)
    }

    /// Undoes `take_stable_to(first, ..)` that returned `entries` (storage refused them).
    pub fn untake_stable(&mut self, first: u64, mut entries: Vec<Entry>) {
        let unstable = &mut self.unstable;
        assert_eq!(
            unstable.offset,
            first + entries.len() as u64,
            "untake_stable of [{first}, +{}) does not end at the unstable offset",
            entries.len()
        );
        entries.append(&mut unstable.entries);
        unstable.entries = entries;
        unstable.offset = first;
    }

    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Entries `[low, high)` from storage and the unstable tail, cut at `max_size_bytes`.
    pub fn slice(&self, low: u64, high: u64, max_size_bytes: Option<u64>) -> Result<Vec<Entry>> {
        if low >= high {
            return Ok(Vec::new());
        }
        if low < self.first_index() {
            return Err(Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index() + 1,
            "slice [{low}, {high}) past the last index {}",
            self.last_index()
        );
        let offset = self.unstable.offset;
        let mut out = Vec::new();
        if low < offset {
            out = self.store.entries(low, high.min(offset), max_size_bytes)?;
            if (out.len() as u64) < high.min(offset) - low {
                return Ok(out); // Size limit reached inside storage.
            }
        }
        if high > offset {
            let unstable = self.unstable.slice(low.max(offset), high);
            // The size limit applies to the whole result: count what fits before cloning, so
            // every entry is cloned once and only if it is returned.
            let Some(max) = max_size_bytes else {
                out.extend_from_slice(unstable);
                return Ok(out);
            };
            let mut size = 0u64;
            for (i, e) in out.iter().enumerate() {
                size += e.size_bytes();
                if i > 0 && size > max {
                    out.truncate(i);
                    return Ok(out);
                }
            }
            let mut count = 0;
            for e in unstable {
                size += e.size_bytes();
                if (out.len() + count) > 0 && size > max {
                    break;
                }
                count += 1;
            }
            out.extend_from_slice(&unstable[..count]);
        }
        Ok(out)
    }

    /// Entries from `index` to the end, cut at `max_size_bytes`.
    pub fn entries(&self, index: u64, max_size_bytes: Option<u64>) -> Result<Vec<Entry>> {
        self.slice(index, self.last_index() + 1, max_size_bytes)
    }

    pub fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    /// Committed entries not yet applied.
    pub fn next_entries(&self, max_size_bytes: Option<u64>) -> Vec<Entry> {
        let low = (self.applied + 1).max(self.first_index());
        if self.committed < low {
            return Vec::new();
        }
        self.slice(low, self.committed + 1, max_size_bytes).unwrap_or_else(|e| {
            panic!("committed entries [{low}, {}] unreadable: {e}", self.committed)
        })
    }

    pub fn has_next_entries(&self) -> bool {
        self.committed + 1 > (self.applied + 1).max(self.first_index())
    }

    /// The snapshot to send a follower: the pending unstable one or the storage's.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.store.snapshot(request_index),
        }
    }

    /// Replaces the log with `snapshot` (installed on the next persist).
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.metadata.index;
        self.unstable.restore(snapshot);
    }

    /// Panics with context if a log invariant is broken.
    pub fn check_invariants(&self) {
        let (first, last) = (self.first_index(), self.last_index());
        assert!(
            self.applied <= self.committed && self.committed <= last,
            "log invariant broken: applied {} <= committed {} <= last {last}",
            self.applied,
            self.committed
        );
        assert!(first >= 1 && first <= last + 1, "log invariant broken: first {first} last {last}");
        let stored_last = self.store.last_index().expect("storage last_index");
        assert!(
            self.unstable.snapshot.is_some() || self.unstable.offset <= stored_last + 1,
            "log invariant broken: unstable offset {} leaves a gap after storage last {stored_last}",
            self.unstable.offset
        );
    }
}
