//! Linearizable reads: ReadIndex confirmed by a heartbeat quorum, forwarding, lease reads.

use minikv_proto::raftpb::{INVALID_ID, Message, MessageType, NodeId};

use super::network::*;
use crate::config::{Config, ReadOnlyOption};
use crate::errors::Error;
use crate::raft::ReadState;

fn read(nt: &mut Network, at: NodeId, ctx: &[u8]) {
    nt.send(vec![Message {
        to: at,
        msg_type: MessageType::ReadIndex,
        context: ctx.to_vec(),
        ..Default::default()
    }]);
}

fn reads(nt: &mut Network, id: NodeId) -> Vec<ReadState> {
    std::mem::take(&mut nt.peer_mut(id).read_states)
}

#[test]
fn safe_read_index_is_confirmed_by_a_heartbeat_quorum() {
    // Raft §8: the leader exchanges heartbeats with a majority before answering a read.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.propose(1, b"x");
    read(&mut nt, 1, b"ctx1");
    assert_eq!(reads(&mut nt, 1), vec![ReadState { index: 2, request_ctx: b"ctx1".to_vec() }]);
    let hb: Vec<_> = nt
        .log
        .iter()
        .filter(|m| m.msg_type == MessageType::Heartbeat && m.context == b"ctx1")
        .collect();
    assert_eq!(hb.len(), 2, "the ctx rides on a heartbeat round");
}

#[test]
fn read_index_is_not_served_without_a_quorum() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(1);
    read(&mut nt, 1, b"ctx");
    assert!(reads(&mut nt, 1).is_empty());
    nt.recover();
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(reads(&mut nt, 1).len(), 1, "the pending read is confirmed by a later round");
}

#[test]
fn follower_forwards_read_index_to_the_leader() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.propose(1, b"x");
    read(&mut nt, 2, b"from-2");
    assert_eq!(reads(&mut nt, 2), vec![ReadState { index: 2, request_ctx: b"from-2".to_vec() }]);
    assert!(reads(&mut nt, 1).is_empty());
}

#[test]
fn read_index_on_follower_without_leader_is_dropped() {
    let mut nt = Network::new(&[1, 2, 3]);
    read(&mut nt, 2, b"nobody");
    assert!(reads(&mut nt, 2).is_empty());
    assert!(nt.log.iter().all(|m| m.msg_type == MessageType::ReadIndex));
}

#[test]
fn leader_defers_reads_until_it_commits_in_its_term() {
    // Raft §8: a new leader's commit index may be stale until its no-op commits.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.ignore(MessageType::AppendResponse);
    nt.campaign(1);
    assert_eq!(nt.peer(1).raft_log.committed, 0);
    read(&mut nt, 1, b"early");
    assert!(reads(&mut nt, 1).is_empty());
    assert_eq!(nt.peer(1).pending_read_index_messages.len(), 1);
    nt.recover();
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(nt.peer(1).raft_log.committed, 1);
    assert_eq!(reads(&mut nt, 1), vec![ReadState { index: 1, request_ctx: b"early".to_vec() }]);
}

#[test]
fn single_voter_answers_reads_at_once() {
    let mut nt = Network::new(&[1]);
    nt.campaign(1);
    read(&mut nt, 1, b"solo");
    assert_eq!(reads(&mut nt, 1), vec![ReadState { index: 1, request_ctx: b"solo".to_vec() }]);
}

#[test]
fn lease_based_reads_are_answered_without_a_round() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| {
        c.check_quorum = true;
        c.read_only_option = ReadOnlyOption::LeaseBased;
    });
    nt.campaign(1);
    let before = nt.log.len();
    read(&mut nt, 1, b"lease");
    assert_eq!(reads(&mut nt, 1).len(), 1);
    assert_eq!(nt.log.len(), before + 1, "only the local ReadIndex message itself");
}

#[test]
fn lease_based_requires_check_quorum() {
    let c = Config { read_only_option: ReadOnlyOption::LeaseBased, ..cfg(1, 10, 1) };
    assert!(matches!(c.validate(), Err(Error::ConfigInvalid(_))));
    assert!(Config { check_quorum: true, ..c }.validate().is_ok());
}

#[test]
fn later_confirmation_releases_earlier_reads_in_order() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.ignore(MessageType::HeartbeatResponse);
    read(&mut nt, 1, b"a");
    read(&mut nt, 1, b"b");
    assert_eq!(nt.peer(1).read_only.pending_read_count(), 2);
    nt.recover();
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    let ctxs: Vec<Vec<u8>> = reads(&mut nt, 1).into_iter().map(|r| r.request_ctx).collect();
    assert_eq!(ctxs, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn read_index_in_joint_config_needs_both_majorities() {
    use minikv_proto::raftpb::{
        ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    };
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    r.become_candidate();
    r.become_leader();
    let mut m = msg(2, 1, MessageType::AppendResponse, 1);
    m.index = 1;
    r.step(m).unwrap();
    let cc = ConfChangeV2 {
        transition: ConfChangeTransition::JointExplicit,
        changes: vec![
            ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 4 },
            ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 5 },
            ConfChangeSingle { change_type: ConfChangeType::RemoveNode, node_id: 3 },
            ConfChangeSingle { change_type: ConfChangeType::RemoveNode, node_id: 2 },
        ],
        ..Default::default()
    };
    r.apply_conf_change(&cc).unwrap();
    r.step(Message {
        msg_type: MessageType::ReadIndex,
        context: b"j".to_vec(),
        ..Default::default()
    })
    .unwrap();
    let hb_ack = |r: &mut crate::raft::Raft<crate::storage::MemStorage>, from| {
        let mut m = msg(from, 1, MessageType::HeartbeatResponse, 1);
        m.context = b"j".to_vec();
        r.step(m).unwrap();
    };
    hb_ack(&mut r, 2);
    assert!(r.read_states.is_empty(), "old half confirmed, new half not");
    hb_ack(&mut r, 4);
    assert_eq!(r.read_states.len(), 1);
}
