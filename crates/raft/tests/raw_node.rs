//! The `RawNode` / `Ready` contract through the public API: persist-before-send, one Ready at a
//! time, restarts from persisted storage, snapshots, conf changes, reads, determinism.

mod cluster;

use cluster::{Cluster, config};
use minikv_raft::*;

fn boot_store(voters: &[NodeId]) -> MemStorage {
    MemStorage::new_with_conf_state(ConfState { voters: voters.to_vec(), ..Default::default() })
}

fn single_node() -> RawNode<MemStorage> {
    let store =
        MemStorage::new_with_conf_state(ConfState { voters: vec![1], ..Default::default() });
    RawNode::new(&config(1), store).unwrap()
}

/// Runs one full Ready cycle; returns (committed entry data, messages).
fn cycle(node: &mut RawNode<MemStorage>) -> (Vec<Entry>, Vec<Message>) {
    let mut rd = node.ready();
    node.persist(&mut rd).unwrap();
    let msgs = rd.take_messages();
    let committed = rd.committed_entries().to_vec();
    node.advance(rd);
    (committed, msgs)
}

#[test]
#[should_panic(expected = "persist-before-send violated")]
fn taking_messages_before_persist_panics() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.raw(1).campaign().unwrap();
    let mut rd = c.raw(1).ready();
    let _ = rd.take_messages();
}

#[test]
#[should_panic(expected = "called again before advance")]
fn second_ready_before_advance_panics() {
    let mut node = single_node();
    node.campaign().unwrap();
    let _rd = node.ready();
    let _ = node.ready();
}

#[test]
#[should_panic(expected = "never persisted")]
fn advancing_an_unpersisted_ready_panics() {
    let mut node = single_node();
    node.campaign().unwrap();
    let rd = node.ready();
    node.advance(rd);
}

#[test]
fn vote_is_durable_before_the_vote_response_is_sent() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.raw(1).campaign().unwrap();
    let mut rd = c.raw(1).ready();
    c.raw(1).persist(&mut rd).unwrap();
    let votes = rd.take_messages();
    c.raw(1).advance(rd);
    c.raw(2).step(votes.into_iter().find(|m| m.to == 2).unwrap()).unwrap();
    let mut rd = c.raw(2).ready();
    assert_eq!(rd.hard_state().map(|hs| hs.vote), Some(1));
    c.raw(2).persist(&mut rd).unwrap();
    assert_eq!(c.raw(2).store().hard_state().vote, 1, "vote persisted");
    let resp = rd.take_messages();
    assert_eq!(resp[0].msg_type, MessageType::RequestVoteResponse);
    assert!(!resp[0].reject);
    c.raw(2).advance(rd);
}

#[test]
fn single_node_start_campaign_and_propose() {
    let mut node = single_node();
    assert!(!node.has_ready());
    node.campaign().unwrap();
    let mut rd = node.ready();
    assert_eq!(rd.soft_state(), Some(&SoftState { leader_id: 1, role: StateRole::Leader }));
    assert_eq!(rd.hard_state(), Some(&HardState { term: 1, vote: 1, commit: 1 }));
    assert_eq!(rd.entries().len(), 1);
    assert_eq!(rd.committed_entries().len(), 1);
    node.persist(&mut rd).unwrap();
    assert!(rd.take_messages().is_empty());
    node.advance(rd);
    assert!(!node.has_ready());
    node.propose(b"ctx".to_vec(), b"data".to_vec()).unwrap();
    let (committed, _) = cycle(&mut node);
    assert_eq!(committed.len(), 1);
    assert_eq!(
        (committed[0].data.as_slice(), committed[0].context.as_slice()),
        (&b"data"[..], &b"ctx"[..])
    );
    assert_eq!(node.status().applied, 2);
}

#[test]
fn restart_replays_committed_entries_from_storage() {
    let mut node = single_node();
    node.campaign().unwrap();
    cycle(&mut node);
    for d in [b"a", b"b"] {
        node.propose(vec![], d.to_vec()).unwrap();
        cycle(&mut node);
    }
    let image = node.store().clone();
    let mut restarted = RawNode::new(&config(1), image.clone()).unwrap();
    let mut rd = restarted.ready();
    assert!(rd.entries().is_empty(), "nothing new to persist");
    assert!(rd.hard_state().is_none(), "hard state came from storage");
    let data: Vec<&[u8]> = rd.committed_entries().iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, vec![&b""[..], b"a", b"b"]);
    restarted.persist(&mut rd).unwrap();
    restarted.advance(rd);
    // With applied = 2 only the rest is handed out again.
    let mut again = RawNode::new(&Config { applied: 2, ..config(1) }, image).unwrap();
    let rd = again.ready();
    assert_eq!(rd.committed_entries().iter().map(|e| e.index).collect::<Vec<_>>(), vec![3]);
    let status = again.status();
    assert_eq!(
        (status.term, status.vote, status.commit, status.role),
        (1, 1, 3, StateRole::Follower)
    );
}

#[test]
fn restart_from_snapshot_resumes_after_it() {
    let mut store =
        MemStorage::new_with_conf_state(ConfState { voters: vec![1, 2], ..Default::default() });
    let snap = Snapshot {
        data: vec![],
        metadata: SnapshotMetadata {
            conf_state: ConfState { voters: vec![1, 2], ..Default::default() },
            index: 5,
            term: 2,
        },
    };
    store.apply_snapshot(snap).unwrap();
    store
        .append(&[Entry { term: 2, index: 6, data: b"six".to_vec(), ..Default::default() }])
        .unwrap();
    store.set_hard_state(HardState { term: 2, vote: 1, commit: 6 }).unwrap();
    let mut node = RawNode::new(&config(1), store).unwrap();
    let rd = node.ready();
    let idx: Vec<u64> = rd.committed_entries().iter().map(|e| e.index).collect();
    assert_eq!(idx, vec![6]);
    assert_eq!(node.status().applied, 5);
    assert_eq!(node.status().conf_state.voters, vec![1, 2]);
}

#[test]
fn step_refuses_local_messages_and_unknown_responders() {
    let mut node = single_node();
    for t in [MessageType::Hup, MessageType::Beat, MessageType::CheckQuorum] {
        let m = Message { msg_type: t, to: 1, from: 2, ..Default::default() };
        assert_eq!(node.step(m), Err(Error::StepLocalMsg), "{t:?}");
    }
    let m = Message {
        msg_type: MessageType::AppendResponse,
        to: 1,
        from: 9,
        term: 1,
        ..Default::default()
    };
    assert_eq!(node.step(m), Err(Error::StepPeerNotFound));
}

#[test]
fn new_rejects_invalid_config() {
    let store = MemStorage::new();
    let c = Config { heartbeat_tick: 0, ..config(1) };
    assert!(matches!(RawNode::new(&c, store), Err(Error::ConfigInvalid(_))));
}

#[test]
fn propose_conf_change_and_apply_it() {
    let mut node = single_node();
    node.campaign().unwrap();
    cycle(&mut node);
    let cc = ConfChangeV2 {
        changes: vec![ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 2 }],
        ..Default::default()
    };
    node.propose_conf_change(b"cc".to_vec(), cc.clone()).unwrap();
    let (committed, _) = cycle(&mut node);
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].entry_type, EntryType::ConfChange);
    let decoded: ConfChangeV2 = minikv_proto::decode(&committed[0].data).unwrap();
    assert_eq!(decoded, cc);
    let cs = node.apply_conf_change(&decoded).unwrap();
    assert_eq!(cs.voters, vec![1, 2]);
    // Adding the same node again is harmless.
    node.propose_conf_change(vec![], cc.clone()).unwrap();
    let cs = node.apply_conf_change(&cc).unwrap();
    assert_eq!(cs.voters, vec![1, 2]);
}

#[test]
fn read_index_surfaces_in_ready() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"x").unwrap();
    c.raw(2).read_index(b"r1".to_vec());
    c.stabilize();
    let rs = &c.node(2).read_states;
    assert_eq!(rs, &vec![ReadState { index: 2, request_ctx: b"r1".to_vec() }]);
}

#[test]
fn status_shows_progress_only_on_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    let s = c.raw(1).status();
    assert_eq!(s.progress.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(s.progress.values().all(|p| p.matched == 1));
    assert!(c.raw(2).status().progress.is_empty());
    assert_eq!(c.raw(2).status().leader_id, 1);
}

#[test]
fn crashed_follower_restarts_and_catches_up() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"a").unwrap();
    c.crash(3);
    c.propose(1, b"b").unwrap();
    c.restart(3);
    c.propose(1, b"c").unwrap();
    c.tick_all(2);
    assert_eq!(c.node(3).applied, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn crashed_leader_is_replaced_and_rejoins() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"a").unwrap();
    c.crash(1);
    c.tick_all(40);
    let leader = c.leader().expect("new leader");
    assert_ne!(leader, 1);
    c.propose(leader, b"b").unwrap();
    c.restart(1);
    c.tick_all(3);
    assert_eq!(c.node(1).applied, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(c.raw(1).status().leader_id, leader);
}

#[test]
fn lagging_follower_gets_snapshot_through_ready() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    for i in 0..5u8 {
        c.propose(1, &[i]).unwrap();
    }
    let leader = c.nodes.get_mut(&1).unwrap();
    let (applied, index, cs) =
        (leader.applied.clone(), leader.applied_index, leader.conf_state.clone());
    let data = minikv_proto::encode(&applied).unwrap();
    leader.raw.store_mut().create_snapshot(index, Some(cs), data).unwrap();
    leader.raw.store_mut().compact(index + 1).unwrap();
    c.heal();
    c.tick_all(3);
    assert!(c.delivered.iter().any(|m| m.msg_type == MessageType::Snapshot && m.to == 3));
    c.raw(1).report_snapshot(3, SnapshotStatus::Finish);
    c.propose(1, b"after").unwrap();
    c.tick_all(3);
    let mut want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
    want.push(b"after".to_vec());
    assert_eq!(c.node(3).applied, want);
    assert_eq!(c.raw(3).store().first_index(), Ok(index + 1));
}

#[test]
fn snapshot_send_failure_is_retried() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    c.propose(1, b"x").unwrap();
    let leader = c.nodes.get_mut(&1).unwrap();
    let (applied, index, cs) =
        (leader.applied.clone(), leader.applied_index, leader.conf_state.clone());
    leader
        .raw
        .store_mut()
        .create_snapshot(index, Some(cs), minikv_proto::encode(&applied).unwrap())
        .unwrap();
    leader.raw.store_mut().compact(index + 1).unwrap();
    c.heal();
    c.drop_types.insert(MessageType::Snapshot);
    c.tick_all(3);
    assert_eq!(c.raw(1).status().progress[&3].state, ProgressState::Snapshot);
    c.raw(1).report_snapshot(3, SnapshotStatus::Failure);
    assert_eq!(c.raw(1).status().progress[&3].state, ProgressState::Probe);
    c.drop_types.clear();
    c.tick_all(3);
    assert_eq!(c.node(3).applied, vec![b"x".to_vec()]);
}

#[test]
fn membership_change_adds_a_fresh_node_that_catches_up() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"a").unwrap();
    // A joining node starts from the cluster's boot configuration and replays the log (or gets
    // a snapshot once the log is compacted).
    c.add_node(4, boot_store(&[1, 2, 3]), config(4));
    let cc = ConfChangeV2 {
        changes: vec![ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 4 }],
        ..Default::default()
    };
    c.raw(1).propose_conf_change(vec![], cc).unwrap();
    c.stabilize();
    c.tick_all(3);
    assert_eq!(c.node(4).applied, vec![b"a".to_vec()]);
    assert_eq!(c.node(4).conf_state.voters, vec![1, 2, 3, 4]);
    // With 4 voters, two crashed nodes block commits; one does not.
    c.crash(2);
    c.propose(1, b"b").unwrap();
    assert_eq!(c.node(4).applied.last().unwrap(), b"b");
}

#[test]
fn joint_consensus_replaces_two_voters_through_raw_nodes() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    for id in [4, 5] {
        c.add_node(id, boot_store(&[1, 2, 3]), config(id));
    }
    let change = |change_type, node_id| ConfChangeSingle { change_type, node_id };
    let cc = ConfChangeV2 {
        transition: ConfChangeTransition::Auto,
        changes: vec![
            change(ConfChangeType::AddNode, 4),
            change(ConfChangeType::AddNode, 5),
            change(ConfChangeType::RemoveNode, 2),
            change(ConfChangeType::RemoveNode, 3),
        ],
        context: vec![],
    };
    c.raw(1).propose_conf_change(vec![], cc).unwrap();
    c.stabilize();
    c.tick_all(3);
    let cs = c.raw(1).status().conf_state;
    assert_eq!(cs.voters, vec![1, 4, 5]);
    assert!(cs.voters_outgoing.is_empty(), "auto-left the joint config");
    c.crash(2);
    c.crash(3);
    c.propose(1, b"new config").unwrap();
    assert_eq!(c.node(5).applied, vec![b"new config".to_vec()]);
}

#[test]
fn transfer_leader_through_raw_node() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.raw(1).transfer_leader(3);
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(c.raw(1).status().leader_id, 3);
}

#[test]
fn same_seed_same_trace() {
    let run = |seed: u64| {
        let mut c =
            Cluster::with_config(&[1, 2, 3, 4, 5], |id| Config { rng_seed: seed, ..config(id) });
        c.tick_all(30);
        let leader = c.leader().unwrap();
        c.propose(leader, b"x").unwrap();
        c.tick_all(5);
        c.delivered.iter().map(|m| (m.from, m.to, m.msg_type, m.term, m.index)).collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12), "a different seed gives a different schedule");
}
