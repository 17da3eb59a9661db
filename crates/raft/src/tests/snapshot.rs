//! Snapshots: restoring, ignoring stale ones, sending them to followers that need compacted
//! entries, and the snapshot progress state.

use minikv_proto::raftpb::{INVALID_ID, MessageType};

use super::network::*;
use crate::errors::{Error, StorageError};
use crate::progress::ProgressState;
use crate::raft::{Raft, StateRole};
use crate::storage::{MemStorage, Storage};

/// Leader 1 of [1, 2] whose storage is compacted through index 10 (snapshot at 10, term 1).
fn compacted_leader() -> Raft<MemStorage> {
    let mut store = store_with_log(&[1, 2], &[1; 11]);
    store.create_snapshot(10, None, b"state@10".to_vec()).unwrap();
    store.compact(11).unwrap();
    let mut hs = store.hard_state();
    hs.term = 1;
    hs.commit = 11;
    store.set_hard_state(hs).unwrap();
    let mut r = new_raft_with(&cfg(1, 10, 1), store);
    r.become_candidate();
    r.become_leader();
    take_msgs(&mut r);
    r
}

#[test]
fn restore_replaces_log_and_configuration() {
    let mut r = new_raft(1, &[1, 2], 10, 1);
    assert!(r.restore(snapshot(11, 11, &[1, 2, 3])));
    assert_eq!(r.raft_log.last_index(), 11);
    assert_eq!(r.raft_log.term(11), Ok(11));
    assert_eq!(r.raft_log.committed, 11);
    assert_eq!(r.prs.conf_state().voters, vec![1, 2, 3]);
    assert!(r.raft_log.unstable.snapshot.is_some(), "installed on the next persist");
}

#[test]
fn restore_ignores_snapshot_at_or_below_commit() {
    let mut r = raft_with_log(1, &[1, 2], &[1, 1, 1]);
    r.raft_log.commit_to(3);
    assert!(!r.restore(snapshot(2, 1, &[1, 2])));
    assert!(!r.restore(snapshot(3, 1, &[1, 2])));
    assert_eq!(r.raft_log.last_index(), 3);
}

#[test]
fn restore_fast_forwards_commit_when_log_already_matches() {
    let mut r = raft_with_log(1, &[1, 2], &[1, 1, 1]);
    r.raft_log.commit_to(1);
    assert!(!r.restore(snapshot(2, 1, &[1, 2])));
    assert_eq!(r.raft_log.committed, 2);
    assert_eq!(r.raft_log.last_index(), 3, "the matching log is kept");
}

#[test]
fn leader_sends_snapshot_when_entries_are_compacted() {
    let mut r = compacted_leader();
    // Follower 2 rejects at the probe; its log ends before the compacted prefix.
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.next_idx = 5;
    pr.recent_active = true;
    r.send_append(2);
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].msg_type, MessageType::Snapshot);
    assert_eq!(msgs[0].snapshot.as_ref().unwrap().metadata.index, 10);
    assert_eq!(r.prs.progress[&2].state, ProgressState::Snapshot);
    assert_eq!(r.prs.progress[&2].pending_snapshot, 10);
}

#[test]
fn leader_does_not_send_snapshot_to_inactive_peer() {
    let mut r = compacted_leader();
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.next_idx = 5;
    pr.recent_active = false;
    r.send_append(2);
    assert!(take_msgs(&mut r).is_empty());
}

#[test]
fn temporarily_unavailable_snapshot_is_retried_later() {
    let mut r = compacted_leader();
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.next_idx = 5;
    pr.recent_active = true;
    r.raft_log.store.trigger_snapshot_unavailable();
    r.send_append(2);
    assert!(take_msgs(&mut r).is_empty(), "nothing sent while the snapshot is being built");
    assert_eq!(r.prs.progress[&2].state, ProgressState::Probe);
    // The next heartbeat response retries, and the snapshot is there now.
    r.step(msg(2, 1, MessageType::HeartbeatResponse, r.term)).unwrap();
    let msgs = take_msgs(&mut r);
    assert!(msgs.iter().any(|m| m.msg_type == MessageType::Snapshot));
}

#[test]
fn snapshot_state_pauses_replication() {
    let mut r = compacted_leader();
    r.prs.progress.get_mut(&2).unwrap().become_snapshot(10);
    r.step(propose(1, b"x")).unwrap();
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    let msgs = take_msgs(&mut r);
    assert!(msgs.iter().all(|m| m.msg_type == MessageType::Heartbeat), "{msgs:?}");
}

#[test]
fn snapshot_finish_and_failure_move_back_to_probe() {
    for (reject, want_next) in [(false, 11), (true, 1)] {
        let mut r = compacted_leader();
        let pr = r.prs.progress.get_mut(&2).unwrap();
        pr.matched = 0;
        pr.become_snapshot(10);
        let mut m = msg(2, 1, MessageType::SnapshotStatus, 0);
        m.reject = reject;
        r.step(m).unwrap();
        let pr = &r.prs.progress[&2];
        assert_eq!(pr.state, ProgressState::Probe, "reject={reject}");
        assert_eq!(pr.next_idx, want_next, "reject={reject}");
        assert!(pr.probe_sent, "waits for a heartbeat response before probing");
    }
}

#[test]
fn append_response_after_snapshot_resumes_replication() {
    let mut r = compacted_leader();
    r.prs.progress.get_mut(&2).unwrap().become_snapshot(10);
    let mut m = msg(2, 1, MessageType::AppendResponse, r.term);
    m.index = 10;
    r.step(m).unwrap();
    let pr = &r.prs.progress[&2];
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.matched, 10);
    assert!(take_msgs(&mut r).iter().any(|m| m.msg_type == MessageType::Append && m.index == 10));
}

#[test]
fn follower_installs_snapshot_from_message() {
    let mut r = new_raft(2, &[1, 2], 10, 1);
    let mut m = msg(1, 2, MessageType::Snapshot, 2);
    m.snapshot = Some(Box::new(snapshot(11, 2, &[1, 2])));
    r.step(m).unwrap();
    assert_eq!(r.raft_log.committed, 11);
    assert_eq!(r.leader_id, 1);
    let resp = take_msgs(&mut r);
    assert_eq!(
        (resp[0].msg_type, resp[0].index, resp[0].reject),
        (MessageType::AppendResponse, 11, false)
    );
    persist(&mut r);
    assert_eq!(r.raft_log.store.first_index(), Ok(12));
    assert_eq!(r.raft_log.store.term(11), Ok(2));
}

#[test]
fn slow_follower_catches_up_through_snapshot() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    for i in 0..20u8 {
        nt.propose(1, &[i]);
    }
    nt.persist_all();
    let leader = nt.peer_mut(1);
    let committed = leader.raft_log.committed;
    leader.raft_log.store.create_snapshot(committed, None, b"app".to_vec()).unwrap();
    leader.raft_log.store.compact(committed + 1).unwrap();
    nt.recover();
    // Heartbeats make 3 active again and reveal it needs compacted entries.
    for _ in 0..3 {
        nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    }
    assert!(nt.log.iter().any(|m| m.msg_type == MessageType::Snapshot && m.to == 3));
    assert_eq!(nt.peer(3).raft_log.committed, committed);
    // The leader is told the snapshot finished; replication resumes.
    nt.send(vec![msg(3, 1, MessageType::SnapshotStatus, 0)]);
    nt.propose(1, b"after");
    assert_eq!(nt.peer(3).raft_log.committed, nt.peer(1).raft_log.committed);
    assert_eq!(nt.peer(3).role, StateRole::Follower);
}

#[test]
fn memstorage_refuses_compaction_past_its_snapshot() {
    let mut s = store_with_log(&[1], &[1, 1, 1]);
    assert!(matches!(s.compact(3), Err(Error::Store(StorageError::Other(_)))));
    s.create_snapshot(2, None, vec![]).unwrap();
    s.compact(3).unwrap();
    assert_eq!(s.first_index(), Ok(3));
    assert_eq!(s.term(2), Ok(1));
    assert_eq!(s.entries(2, 3, None), Err(Error::Store(StorageError::Compacted)));
}
