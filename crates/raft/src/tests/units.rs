//! Unit tests of the building blocks: storage, log, quorum, progress, inflights, config.

use std::collections::{BTreeMap, BTreeSet};

use minikv_proto::raftpb::{Entry, HardState};

use super::network::*;
use crate::config::Config;
use crate::errors::{Error, StorageError};
use crate::log::RaftLog;
use crate::progress::{Inflights, Progress, ProgressState};
use crate::quorum::{JointConfig, MajorityConfig, VoteResult};
use crate::read_only::ReadOnly;
use crate::storage::{MemStorage, Storage, limit_size};

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

#[test]
fn majority_committed_index() {
    let acked: BTreeMap<u64, u64> = [(1, 5), (2, 3), (3, 9), (4, 1), (5, 7)].into();
    let f = |id| acked.get(&id).copied();
    assert_eq!(MajorityConfig::new(set(&[1])).committed_index(f), 5);
    assert_eq!(MajorityConfig::new(set(&[1, 2])).committed_index(f), 3);
    assert_eq!(MajorityConfig::new(set(&[1, 2, 3])).committed_index(f), 5);
    assert_eq!(MajorityConfig::new(set(&[1, 2, 3, 4, 5])).committed_index(f), 5);
    assert_eq!(MajorityConfig::new(set(&[1, 2, 6])).committed_index(f), 3, "missing counts as 0");
    assert_eq!(MajorityConfig::new(set(&[])).committed_index(f), u64::MAX);
}

#[test]
fn joint_committed_index_is_the_minimum_of_both_halves() {
    let acked: BTreeMap<u64, u64> = [(1, 5), (2, 3), (3, 9), (4, 1), (5, 7)].into();
    let f = |id| acked.get(&id).copied();
    let j = JointConfig {
        incoming: MajorityConfig::new(set(&[1, 3, 5])),
        outgoing: MajorityConfig::new(set(&[2, 4, 1])),
    };
    assert_eq!(j.committed_index(f), 3);
    assert_eq!(JointConfig::new(set(&[1, 3, 5])).committed_index(f), 7);
    assert_eq!(JointConfig::default().committed_index(f), 0);
}

#[test]
fn majority_and_joint_vote_results() {
    let votes: BTreeMap<u64, bool> = [(1, true), (2, false), (3, true), (4, false)].into();
    let f = |id| votes.get(&id).copied();
    assert_eq!(MajorityConfig::new(set(&[1, 3, 5])).vote_result(f), VoteResult::Won);
    assert_eq!(MajorityConfig::new(set(&[1, 2, 5])).vote_result(f), VoteResult::Pending);
    assert_eq!(MajorityConfig::new(set(&[2, 4, 5])).vote_result(f), VoteResult::Lost);
    assert_eq!(MajorityConfig::default().vote_result(f), VoteResult::Won);
    let j = JointConfig {
        incoming: MajorityConfig::new(set(&[1, 3])),
        outgoing: MajorityConfig::new(set(&[2, 4, 5])),
    };
    assert_eq!(j.vote_result(f), VoteResult::Lost);
    let j = JointConfig {
        incoming: MajorityConfig::new(set(&[1, 3])),
        outgoing: MajorityConfig::new(set(&[1, 2, 5])),
    };
    assert_eq!(j.vote_result(f), VoteResult::Pending);
}

#[test]
fn inflights_window() {
    let mut ins = Inflights::new(3);
    ins.add(5);
    ins.add(7);
    ins.add(9);
    assert!(ins.full());
    ins.free_to(6);
    assert_eq!(ins.count(), 2);
    ins.free_first_one();
    assert_eq!(ins.count(), 1);
    ins.free_to(100);
    assert_eq!(ins.count(), 0);
}

#[test]
#[should_panic(expected = "inflight window of 1 is full")]
fn inflights_overflow_panics() {
    let mut ins = Inflights::new(1);
    ins.add(1);
    ins.add(2);
}

#[test]
fn progress_decrements_on_rejection() {
    // Replicate: a rejection above match falls back to match + 1; a stale one is ignored.
    let mut p = Progress::new(10, 8);
    p.matched = 5;
    p.state = ProgressState::Replicate;
    assert!(!p.maybe_decr_to(4, 4));
    assert!(p.maybe_decr_to(9, 9));
    assert_eq!(p.next_idx, 6);
    // Probe: only a rejection of the last probe counts; the hint moves next back further.
    let mut p = Progress::new(10, 8);
    assert!(!p.maybe_decr_to(5, 5), "not the outstanding probe");
    assert!(p.maybe_decr_to(9, 3));
    assert_eq!(p.next_idx, 4);
    assert!(p.maybe_decr_to(3, 100));
    assert_eq!(p.next_idx, 3, "never forward");
}

#[test]
fn progress_update_and_pause() {
    let mut p = Progress::new(5, 2);
    assert!(!p.is_paused());
    p.probe_sent = true;
    assert!(p.is_paused());
    assert!(p.maybe_update(4));
    assert!(!p.is_paused(), "an ack resumes probing");
    assert_eq!((p.matched, p.next_idx), (4, 5));
    assert!(!p.maybe_update(3));
    p.become_snapshot(10);
    assert!(p.is_paused());
    p.become_probe();
    assert_eq!(p.next_idx, 11, "after a snapshot, probe past it");
}

#[test]
fn memstorage_term_entries_and_bounds() {
    let s = store_with_log(&[1], &[1, 2, 3]);
    assert_eq!(s.first_index(), Ok(1));
    assert_eq!(s.last_index(), Ok(3));
    assert_eq!(s.term(0), Ok(0));
    assert_eq!(s.term(2), Ok(2));
    assert_eq!(s.term(4), Err(Error::Store(StorageError::Unavailable)));
    assert_eq!(s.entries(1, 4, None).unwrap().len(), 3);
    assert_eq!(s.entries(1, 5, None), Err(Error::Store(StorageError::Unavailable)));
    assert_eq!(s.entries(1, 4, Some(0)).unwrap().len(), 1, "at least one entry");
}

#[test]
fn memstorage_append_truncates_conflicts() {
    let mut s = store_with_log(&[1], &[1, 1, 1]);
    s.append(&[Entry { term: 2, index: 2, ..Default::default() }]).unwrap();
    assert_eq!(s.last_index(), Ok(2));
    assert_eq!(s.term(2), Ok(2));
    s.append(&[Entry { term: 2, index: 3, ..Default::default() }]).unwrap();
    assert_eq!(s.last_index(), Ok(3));
}

#[test]
#[should_panic(expected = "append would leave a gap")]
fn memstorage_append_with_gap_panics() {
    let mut s = store_with_log(&[1], &[1]);
    let _ = s.append(&[Entry { term: 1, index: 5, ..Default::default() }]);
}

#[test]
fn memstorage_snapshot_lifecycle() {
    let mut s = store_with_log(&[1, 2], &[1, 1, 2, 2]);
    let snap = s.create_snapshot(3, None, b"data".to_vec()).unwrap();
    assert_eq!((snap.metadata.index, snap.metadata.term), (3, 2));
    assert_eq!(snap.metadata.conf_state.voters, vec![1, 2]);
    assert_eq!(
        s.create_snapshot(2, None, vec![]),
        Err(Error::Store(StorageError::SnapshotOutOfDate))
    );
    assert_eq!(s.snapshot(0), Ok(snap.clone()));
    s.trigger_snapshot_unavailable();
    assert_eq!(s.snapshot(0), Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)));
    assert_eq!(s.snapshot(0), Ok(snap.clone()), "only the next call fails");
    // A follower's storage installs it, replacing its log.
    let mut f = store_with_log(&[1, 2], &[1]);
    f.apply_snapshot(snap.clone()).unwrap();
    assert_eq!((f.first_index(), f.last_index(), f.term(3)), (Ok(4), Ok(3), Ok(2)));
    assert_eq!(f.apply_snapshot(snap), Err(Error::Store(StorageError::SnapshotOutOfDate)));
    assert_eq!(f.initial_state().unwrap().conf_state.voters, vec![1, 2]);
}

#[test]
fn memstorage_clone_is_a_crash_image() {
    let mut s = store_with_log(&[1], &[1]);
    s.set_hard_state(HardState { term: 1, vote: 1, commit: 1 }).unwrap();
    let image = s.clone();
    s.append(&[Entry { term: 1, index: 2, ..Default::default() }]).unwrap();
    assert_eq!(image.last_index(), Ok(1));
    assert_eq!(image.hard_state(), HardState { term: 1, vote: 1, commit: 1 });
}

#[test]
fn limit_size_keeps_at_least_one() {
    let e = vec![entry(1, 1, &[0; 10]), entry(1, 2, &[0; 10]), entry(1, 3, &[0; 10])];
    assert_eq!(limit_size(&e, None).len(), 3);
    assert_eq!(limit_size(&e, Some(0)).len(), 1);
    assert_eq!(limit_size(&e, Some(68)).len(), 2);
    assert_eq!(limit_size(&e, Some(1000)).len(), 3);
}

#[test]
fn raft_log_reads_across_storage_and_unstable() {
    let mut log = RaftLog::new(store_with_log(&[1], &[1, 1]));
    log.append(&[entry(2, 3, b"a"), entry(2, 4, b"b")]);
    assert_eq!(log.last_index(), 4);
    assert_eq!(log.term(4), Ok(2));
    let all = log.slice(1, 5, None).unwrap();
    assert_eq!(all.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    // Truncating into the stored part replaces the tail.
    log.append(&[entry(3, 2, b"c")]);
    assert_eq!(log.last_index(), 2);
    assert_eq!(log.term(2), Ok(3));
    assert_eq!(log.slice(1, 3, None).unwrap()[1].data, b"c".to_vec());
}

#[test]
fn raft_log_find_conflict() {
    let log = RaftLog::new(store_with_log(&[1], &[1, 2, 3]));
    assert_eq!(log.find_conflict(&[]), 0);
    assert_eq!(log.find_conflict(&ents(&[1, 2, 3])), 0);
    assert_eq!(log.find_conflict(&ents(&[1, 2, 3, 4])), 4, "new entry");
    assert_eq!(log.find_conflict(&ents(&[1, 4])), 2, "term mismatch");
    assert_eq!(log.find_conflict_by_term(3, 2), (2, 2));
    assert_eq!(log.find_conflict_by_term(3, 0), (0, 0));
}

#[test]
fn raft_log_stale_stable_to_is_ignored() {
    let mut log = RaftLog::new(MemStorage::new());
    log.append(&[entry(1, 1, b""), entry(1, 2, b"")]);
    log.append(&[entry(2, 2, b"")]);
    log.stable_to(2, 1); // A persist of the old index-2 entry: must not drop the new one.
    assert_eq!(log.unstable_entries().len(), 2);
    log.stable_to(2, 2);
    assert!(log.unstable_entries().is_empty());
}

#[test]
#[should_panic(expected = "would overwrite committed entries")]
fn raft_log_refuses_to_overwrite_committed() {
    let mut log = RaftLog::new(store_with_log(&[1], &[1, 1]));
    log.commit_to(2);
    log.append(&[entry(2, 2, b"")]);
}

#[test]
#[should_panic(expected = "is past the last index")]
fn raft_log_commit_past_last_panics() {
    let mut log = RaftLog::new(store_with_log(&[1], &[1]));
    log.commit_to(5);
}

#[test]
fn raft_log_next_entries_respects_applied() {
    let mut log = RaftLog::new(store_with_log(&[1], &[1, 1, 1]));
    log.commit_to(2);
    assert_eq!(log.next_entries(None).len(), 2);
    log.applied_to(1);
    assert_eq!(log.next_entries(None).len(), 1);
    assert!(log.has_next_entries());
    log.applied_to(2);
    assert!(!log.has_next_entries());
}

#[test]
fn config_validation() {
    assert!(cfg(1, 10, 1).validate().is_ok());
    let bad = [
        Config { id: 0, ..cfg(1, 10, 1) },
        cfg(1, 10, 0),
        cfg(1, 2, 2),
        Config { max_inflight_msgs: 0, ..cfg(1, 10, 1) },
    ];
    for c in bad {
        assert!(matches!(c.validate(), Err(Error::ConfigInvalid(_))), "{c:?}");
    }
}

#[test]
fn read_only_queue_advances_through_ctx() {
    let mut ro = ReadOnly::new(crate::config::ReadOnlyOption::Safe);
    for (i, ctx) in [b"a", b"b", b"c"].iter().enumerate() {
        let m = minikv_proto::raftpb::Message { context: ctx.to_vec(), ..Default::default() };
        ro.add_request(i as u64 + 1, m, 1);
    }
    assert_eq!(ro.recv_ack(2, b"b").unwrap(), &set(&[1, 2]));
    assert!(ro.recv_ack(2, b"zzz").is_none());
    let done = ro.advance(b"b");
    assert_eq!(done.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(ro.pending_read_count(), 1);
    assert_eq!(ro.last_pending_request_ctx(), Some(b"c".to_vec()));
}
