//! Tests of the allocation-saving paths: size-limited slices across the storage/unstable
//! boundary, entries moved (not cloned) into storage on persist, and the heap fallback of the
//! commit-index computation.

use std::collections::{BTreeMap, BTreeSet};

use minikv_proto::raftpb::{ConfState, Entry, HardState, Snapshot};

use super::network::*;
use crate::errors::{Error, Result, StorageError};
use crate::log::RaftLog;
use crate::quorum::MajorityConfig;
use crate::raw_node::RawNode;
use crate::storage::{MemStorage, RaftState, Storage, limit_size};

#[test]
fn slice_size_limit_spans_storage_and_unstable_like_limit_size() {
    let mut store = MemStorage::new();
    store.append(&[entry(1, 1, b"aaaa"), entry(1, 2, b"bb"), entry(1, 3, b"c")]).unwrap();
    let mut log = RaftLog::new(store);
    log.append(&[entry(1, 4, b"dddddd"), entry(1, 5, b""), entry(1, 6, b"eee")]);
    let all = log.slice(1, 7, None).unwrap();
    assert_eq!(all.len(), 6);
    for low in 1..7 {
        for high in low..=7 {
            for max in [0, 20, 26, 27, 50, 53, 80, 100, 1000] {
                let want = limit_size(&all[(low - 1) as usize..(high - 1) as usize], Some(max));
                let got = log.slice(low, high, Some(max)).unwrap();
                assert_eq!(got, want, "slice [{low}, {high}) max {max}");
            }
        }
    }
}

#[test]
fn majority_committed_index_beyond_the_stack_buffer() {
    let voters: BTreeSet<u64> = (1..=9).collect();
    let acked: BTreeMap<u64, u64> = (1..=9).map(|id| (id, id * 10)).collect();
    // Sorted descending: 90 80 70 60 50 ...; the 5th largest is acked by a majority of 9.
    assert_eq!(MajorityConfig::new(voters).committed_index(|id| acked.get(&id).copied()), 50);
}

/// A `MemStorage` whose appends fail while `fail_appends` is set.
#[derive(Debug)]
struct FlakyStorage {
    inner: MemStorage,
    fail_appends: bool,
}

impl Storage for FlakyStorage {
    fn initial_state(&self) -> Result<RaftState> {
        self.inner.initial_state()
    }
    fn entries(&self, low: u64, high: u64, max_size_bytes: Option<u64>) -> Result<Vec<Entry>> {
        self.inner.entries(low, high, max_size_bytes)
    }
    fn term(&self, index: u64) -> Result<u64> {
        self.inner.term(index)
    }
    fn first_index(&self) -> Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64) -> Result<Snapshot> {
        self.inner.snapshot(request_index)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        if self.fail_appends {
            return Err(Error::Store(StorageError::Other("disk full".into())));
        }
        self.inner.append(entries)
    }
    fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.inner.set_hard_state(hs)
    }
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        self.inner.apply_snapshot(snapshot)
    }
}

#[test]
fn failed_persist_keeps_entries_unstable_and_a_retry_persists_them() {
    let store = FlakyStorage {
        inner: MemStorage::new_with_conf_state(ConfState { voters: vec![1], ..Default::default() }),
        fail_appends: true,
    };
    let mut node = RawNode::new(&cfg(1, 10, 1), store).unwrap();
    node.campaign().unwrap();
    node.propose(vec![], b"x".to_vec()).unwrap();
    let mut rd = node.ready();
    let expected = rd.entries().to_vec();
    assert_eq!(expected.len(), 2, "the leader's no-op and the proposal");
    let err = node.persist(&mut rd).unwrap_err();
    assert_eq!(err, Error::Store(StorageError::Other("disk full".into())));
    assert!(!rd.is_persisted());
    assert_eq!(node.raft.raft_log.unstable_entries(), &expected[..], "entries stay unstable");
    assert_eq!(node.raft.raft_log.unstable.offset, 1);
    assert_eq!(node.store().inner.last_index().unwrap(), 0);

    node.store_mut().fail_appends = false;
    node.persist(&mut rd).unwrap();
    assert!(node.raft.raft_log.unstable_entries().is_empty());
    assert_eq!(node.raft.raft_log.unstable.offset, 3);
    assert_eq!(node.store().inner.all_entries(), &expected[..]);
    node.advance(rd);
}

#[test]
fn persist_moves_only_the_ready_prefix_when_more_entries_arrived() {
    let store = MemStorage::new_with_conf_state(voters(&[1]));
    let mut node = RawNode::new(&cfg(1, 10, 1), store).unwrap();
    node.campaign().unwrap();
    let mut rd = node.ready();
    assert_eq!(rd.entries().len(), 1, "the leader's no-op");
    // A proposal between ready() and persist() extends the unstable tail.
    node.propose(vec![], b"later".to_vec()).unwrap();
    node.persist(&mut rd).unwrap();
    assert_eq!(node.store().all_entries(), rd.entries());
    let unstable = node.raft.raft_log.unstable_entries();
    assert_eq!(unstable.len(), 1);
    assert_eq!((unstable[0].index, unstable[0].data.as_slice()), (2, &b"later"[..]));
    node.advance(rd);
}
