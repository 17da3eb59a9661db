//! Leader transfer (Raft thesis §3.10): catch the target up, send TimeoutNow, abort on timeout.

use minikv_proto::raftpb::{Message, MessageType, NodeId};

use super::network::*;
use crate::errors::Error;
use crate::raft::StateRole;
use crate::storage::MemStorage;

/// Steps the transfer request straight into `leader` (as its application would), then delivers
/// what it caused.
fn transfer(nt: &mut Network, leader: NodeId, to: NodeId) {
    let p = nt.peer_mut(leader);
    let m = Message {
        from: to,
        to: leader,
        msg_type: MessageType::TransferLeader,
        ..Default::default()
    };
    p.step(m).unwrap();
    let out = take_msgs(p);
    nt.send(out);
}

fn assert_leader(nt: &Network, id: NodeId, term: u64) {
    let p = nt.peer(id);
    assert_eq!((p.role, p.term, p.lead_transferee), (StateRole::Leader, term, None), "peer {id}");
    for other in nt.peers.values().filter(|p| p.id != id) {
        assert_eq!(other.leader_id, id, "peer {} follows {id}", other.id);
    }
}

#[test]
fn transfer_to_up_to_date_node() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    transfer(&mut nt, 1, 2);
    assert_leader(&nt, 2, 2);
    // And back.
    nt.propose(2, b"x");
    transfer(&mut nt, 2, 1);
    assert_leader(&nt, 1, 3);
}

#[test]
fn transfer_requested_at_a_follower_is_forwarded() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    // The request is stepped at follower 2 (e.g. by its application) and forwarded to 1.
    nt.send(vec![Message {
        from: 2,
        to: 2,
        msg_type: MessageType::TransferLeader,
        ..Default::default()
    }]);
    assert_leader(&nt, 2, 2);
}

#[test]
fn transfer_to_slow_follower_catches_it_up_first() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    nt.propose(1, b"a");
    nt.recover();
    assert_eq!(nt.peer(1).prs.progress[&3].matched, 1);
    transfer(&mut nt, 1, 3);
    assert_leader(&nt, 3, 2);
    assert_eq!(committed_data(nt.peer(3)), vec![b"a".to_vec()]);
}

#[test]
fn transfer_to_follower_needing_snapshot() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    nt.propose(1, b"a");
    nt.persist_all();
    let leader = nt.peer_mut(1);
    let committed = leader.raft_log.committed;
    leader.raft_log.store.create_snapshot(committed, None, vec![]).unwrap();
    leader.raft_log.store.compact(committed + 1).unwrap();
    nt.recover();
    nt.peer_mut(1).prs.progress.get_mut(&3).unwrap().recent_active = true;
    transfer(&mut nt, 1, 3);
    let snapshot_at = nt.log.iter().position(|m| m.msg_type == MessageType::Snapshot && m.to == 3);
    let timeout_at = nt.log.iter().position(|m| m.msg_type == MessageType::TimeoutNow);
    assert!(snapshot_at.unwrap() < timeout_at.unwrap(), "snapshot first, then TimeoutNow");
    assert_leader(&nt, 3, 2);
}

#[test]
fn transfer_to_self_is_a_no_op() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    transfer(&mut nt, 1, 1);
    assert_leader(&nt, 1, 1);
}

#[test]
fn transfer_to_non_member_is_ignored() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    transfer(&mut nt, 1, 4);
    assert_leader(&nt, 1, 1);
}

#[test]
fn transfer_aborts_after_an_election_timeout() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    transfer(&mut nt, 1, 3);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));
    for _ in 0..9 {
        nt.tick();
    }
    assert_eq!(nt.peer(1).lead_transferee, Some(3));
    nt.tick();
    assert_leader_without_isolated(&nt);
}

fn assert_leader_without_isolated(nt: &Network) {
    let p = nt.peer(1);
    assert_eq!((p.role, p.lead_transferee), (StateRole::Leader, None));
}

#[test]
fn proposals_are_dropped_during_transfer() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    transfer(&mut nt, 1, 3);
    assert_eq!(nt.peer_mut(1).step(propose(1, b"x")), Err(Error::ProposalDropped));
}

#[test]
fn transfer_interrupted_by_higher_term_vote() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    transfer(&mut nt, 1, 3);
    nt.campaign(2);
    assert_eq!((nt.peer(2).role, nt.peer(2).term), (StateRole::Leader, 2));
    assert_eq!((nt.peer(1).role, nt.peer(1).lead_transferee), (StateRole::Follower, None));
}

#[test]
fn second_transfer_to_another_node_replaces_the_first() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    transfer(&mut nt, 1, 3);
    transfer(&mut nt, 1, 2);
    assert_eq!((nt.peer(2).role, nt.peer(2).term), (StateRole::Leader, 2));
    assert_eq!(nt.peer(1).leader_id, 2);
}

#[test]
fn second_transfer_to_the_same_node_does_not_extend_the_timeout() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(3);
    transfer(&mut nt, 1, 3);
    for _ in 0..5 {
        nt.tick();
    }
    transfer(&mut nt, 1, 3);
    for _ in 0..5 {
        nt.tick();
    }
    assert_eq!(
        nt.peer(1).lead_transferee,
        None,
        "aborted one election timeout after the first request"
    );
}

#[test]
fn transfer_to_learner_is_ignored() {
    let cs = minikv_proto::raftpb::ConfState {
        voters: vec![1, 2],
        learners: vec![3],
        ..Default::default()
    };
    let peers = (1..=3)
        .map(|id| new_raft_with(&cfg(id, 10, 1), MemStorage::new_with_conf_state(cs.clone())))
        .collect();
    let mut nt = Network::from_peers(peers);
    nt.campaign(1);
    transfer(&mut nt, 1, 3);
    assert_eq!(nt.peer(1).lead_transferee, None);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
}

#[test]
fn timeout_now_to_a_non_member_does_nothing() {
    let mut r = new_raft_with(&cfg(4, 10, 1), MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    r.step(msg(1, 4, MessageType::TimeoutNow, 1)).unwrap();
    assert_eq!(r.role, StateRole::Follower);
}

#[test]
fn transfer_works_with_check_quorum_lease() {
    // The transfer's vote requests carry a context that overrides the followers' lease.
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.check_quorum = true);
    nt.campaign(1);
    transfer(&mut nt, 1, 2);
    assert_leader(&nt, 2, 2);
}

#[test]
fn transfer_works_with_pre_vote() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.pre_vote = true);
    nt.campaign(1);
    transfer(&mut nt, 1, 3);
    assert_leader(&nt, 3, 2);
}
