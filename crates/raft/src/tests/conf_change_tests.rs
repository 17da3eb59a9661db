//! Membership: single-voter changes, the pending-change guard, learners, joint consensus.

use minikv_proto::raftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, EntryType,
    INVALID_ID, MessageType, NodeId,
};

use super::network::*;
use crate::errors::Error;
use crate::raft::{Raft, StateRole};
use crate::storage::MemStorage;

fn single(change_type: ConfChangeType, node_id: NodeId) -> ConfChangeV2 {
    ConfChangeV2 { changes: vec![ConfChangeSingle { change_type, node_id }], ..Default::default() }
}

fn add(id: NodeId) -> ConfChangeV2 {
    single(ConfChangeType::AddNode, id)
}

fn remove(id: NodeId) -> ConfChangeV2 {
    single(ConfChangeType::RemoveNode, id)
}

fn add_learner(id: NodeId) -> ConfChangeV2 {
    single(ConfChangeType::AddLearnerNode, id)
}

fn joint(transition: ConfChangeTransition, changes: &[(ConfChangeType, NodeId)]) -> ConfChangeV2 {
    ConfChangeV2 {
        transition,
        changes: changes
            .iter()
            .map(|&(change_type, node_id)| ConfChangeSingle { change_type, node_id })
            .collect(),
        ..Default::default()
    }
}

/// Applies every committed entry: conf changes go to the tracker. Returns applied conf changes.
fn apply_committed(r: &mut Raft<MemStorage>) -> usize {
    let (lo, hi) = (r.raft_log.applied + 1, r.raft_log.committed + 1);
    let entries = r.raft_log.slice(lo, hi, None).unwrap();
    let mut n = 0;
    for e in &entries {
        if e.entry_type == EntryType::ConfChange {
            let cc: ConfChangeV2 = minikv_proto::decode(&e.data).unwrap();
            r.apply_conf_change(&cc).unwrap();
            n += 1;
        }
    }
    if let Some(last) = entries.last() {
        r.commit_apply(last.index, &entries);
    }
    n
}

fn apply_all(nt: &mut Network) {
    let ids: Vec<NodeId> = nt.peers.keys().copied().collect();
    for id in ids {
        apply_committed(nt.peer_mut(id));
    }
}

fn single_leader() -> Raft<MemStorage> {
    let mut r = new_raft(1, &[1], 10, 1);
    r.step(hup(1)).unwrap();
    assert_eq!(r.role, StateRole::Leader);
    apply_committed(&mut r);
    take_msgs(&mut r);
    r
}

#[test]
fn add_node_creates_progress_and_voter() {
    let mut r = new_raft(1, &[1], 10, 1);
    let cs = r.apply_conf_change(&add(2)).unwrap();
    assert_eq!(cs.voters, vec![1, 2]);
    assert!(r.prs.progress.contains_key(&2));
}

#[test]
fn remove_node_drops_progress_and_voter() {
    let mut r = new_raft(1, &[1, 2], 10, 1);
    let cs = r.apply_conf_change(&remove(2)).unwrap();
    assert_eq!(cs.voters, vec![1]);
    assert!(!r.prs.progress.contains_key(&2));
}

#[test]
fn removing_all_voters_is_an_error() {
    let mut r = new_raft(1, &[1], 10, 1);
    assert!(matches!(r.apply_conf_change(&remove(1)), Err(Error::ConfChangeError(_))));
    assert_eq!(r.prs.conf_state().voters, vec![1], "configuration unchanged on error");
}

#[test]
fn second_conf_change_is_converted_to_noop_while_first_is_pending() {
    // Raft thesis §4.1: one membership change at a time.
    let mut r = single_leader();
    r.step(propose_conf_change(1, &add(2))).unwrap();
    r.step(propose_conf_change(1, &add(3))).unwrap();
    let entries = all_entries(&r);
    let kinds: Vec<EntryType> = entries.iter().map(|e| e.entry_type).collect();
    assert_eq!(kinds, vec![EntryType::Normal, EntryType::ConfChange, EntryType::Normal]);
    assert!(entries[2].data.is_empty(), "the refused change became an empty entry");
    // Once applied, a new change is accepted.
    apply_committed(&mut r);
    r.step(propose_conf_change(1, &add(3))).unwrap();
    assert_eq!(all_entries(&r).last().unwrap().entry_type, EntryType::ConfChange);
}

#[test]
fn new_leader_guards_unapplied_conf_changes_in_its_log() {
    let mut r = new_raft(1, &[1], 10, 1);
    r.step(hup(1)).unwrap();
    assert_eq!(r.pending_conf_index, 0, "the log was empty at election");
    let mut r = raft_with_log(1, &[1], &[1, 1]);
    r.step(hup(1)).unwrap();
    assert_eq!(r.pending_conf_index, 2, "entries before the no-op may hold a conf change");
}

#[test]
fn commit_after_remove_node_with_a_smaller_quorum() {
    // Removing a slow peer lets the remaining peer commit alone.
    let mut r = new_raft(1, &[1, 2], 10, 1);
    r.become_candidate();
    r.become_leader();
    let mut m = msg(2, 1, MessageType::AppendResponse, 1);
    m.index = 1;
    r.step(m).unwrap();
    apply_committed(&mut r);
    r.step(propose_conf_change(1, &remove(2))).unwrap();
    r.step(propose(1, b"hello")).unwrap();
    assert_eq!(r.raft_log.committed, 1, "2 has not acked");
    let mut m = msg(2, 1, MessageType::AppendResponse, 1);
    m.index = 2;
    r.step(m).unwrap();
    assert_eq!(r.raft_log.committed, 2, "conf change committed");
    assert_eq!(apply_committed(&mut r), 1);
    assert_eq!(r.raft_log.committed, 3, "with 1 voter the pending entry commits at once");
    assert_eq!(committed_data(&r), vec![b"hello".to_vec()]);
}

#[test]
fn nodes_outside_the_configuration_do_not_campaign() {
    let mut r = new_raft_with(&cfg(4, 10, 1), MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    for _ in 0..50 {
        r.tick();
    }
    assert_eq!(r.role, StateRole::Follower);
    assert!(take_msgs(&mut r).is_empty());
}

#[test]
fn node_with_unapplied_committed_conf_change_does_not_campaign() {
    let mut r = new_raft(1, &[1, 2], 10, 1);
    r.become_follower(1, 2);
    let data = minikv_proto::encode(&add(3)).unwrap();
    let mut m = msg(2, 1, MessageType::Append, 1);
    m.entries = vec![minikv_proto::raftpb::Entry {
        entry_type: EntryType::ConfChange,
        term: 1,
        index: 1,
        data,
        ..Default::default()
    }];
    m.commit = 1;
    r.step(m).unwrap();
    take_msgs(&mut r);
    r.step(hup(1)).unwrap();
    assert_eq!(r.role, StateRole::Follower);
    apply_committed(&mut r);
    r.step(hup(1)).unwrap();
    assert_eq!(r.role, StateRole::Candidate);
}

#[test]
fn learners_replicate_but_do_not_count_for_quorum() {
    let mut r = new_raft_with(
        &cfg(1, 10, 1),
        MemStorage::new_with_conf_state(ConfState {
            voters: vec![1],
            learners: vec![2],
            ..Default::default()
        }),
    );
    r.step(hup(1)).unwrap();
    assert_eq!(r.role, StateRole::Leader, "1 is the only voter");
    assert!(take_msgs(&mut r).iter().any(|m| m.to == 2 && m.msg_type == MessageType::Append));
    r.step(propose(1, b"x")).unwrap();
    assert_eq!(r.raft_log.committed, 2, "commits without the learner");
}

#[test]
fn learner_is_promoted_to_voter() {
    let mut nt = Network::from_peers(vec![
        new_raft_with(
            &cfg(1, 10, 1),
            MemStorage::new_with_conf_state(ConfState {
                voters: vec![1],
                learners: vec![2],
                ..Default::default()
            }),
        ),
        new_raft_with(
            &cfg(2, 10, 1),
            MemStorage::new_with_conf_state(ConfState {
                voters: vec![1],
                learners: vec![2],
                ..Default::default()
            }),
        ),
    ]);
    nt.campaign(1);
    apply_all(&mut nt);
    nt.send(vec![propose_conf_change(1, &add(2))]);
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    apply_all(&mut nt);
    assert!(!nt.peer(2).is_learner);
    assert_eq!(nt.peer(2).prs.conf_state().voters, vec![1, 2]);
    // Now 2 can win an election.
    nt.campaign(2);
    assert_eq!(nt.peer(2).role, StateRole::Leader);
}

#[test]
fn voter_demoted_to_learner() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let cs = r.apply_conf_change(&add_learner(3)).unwrap();
    assert_eq!((cs.voters, cs.learners), (vec![1, 2], vec![3]));
    assert!(r.prs.progress[&3].is_learner);
}

#[test]
fn simple_change_of_two_voters_is_refused() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let cc = joint(ConfChangeTransition::Auto, &[(ConfChangeType::AddNode, 4)]);
    r.apply_conf_change(&cc).unwrap();
    // An explicit single change cannot swap two voters at once: the changer refuses it.
    let mut changer_cc = remove(4);
    changer_cc.changes.push(ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 5 });
    // Two changes on Auto enter a joint config instead of failing.
    let cs = r.apply_conf_change(&changer_cc).unwrap();
    assert_eq!(cs.voters_outgoing, vec![1, 2, 3, 4]);
}

#[test]
fn entering_joint_config_and_leaving_it_explicitly() {
    // Raft §6: joint consensus C_old,new then C_new.
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let cc = joint(
        ConfChangeTransition::JointExplicit,
        &[(ConfChangeType::AddNode, 4), (ConfChangeType::RemoveNode, 3)],
    );
    let cs = r.apply_conf_change(&cc).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 4]);
    assert_eq!(cs.voters_outgoing, vec![1, 2, 3]);
    assert!(!cs.auto_leave);
    assert!(r.prs.progress.contains_key(&3), "outgoing voter keeps its progress");
    let cs = r.apply_conf_change(&ConfChangeV2::default()).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 4]);
    assert!(cs.voters_outgoing.is_empty());
    assert!(!r.prs.progress.contains_key(&3));
}

#[test]
fn joint_config_errors() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    assert!(matches!(
        r.apply_conf_change(&ConfChangeV2::default()),
        Err(Error::ConfChangeError(_))
    ));
    let cc = joint(ConfChangeTransition::JointImplicit, &[(ConfChangeType::AddNode, 4)]);
    r.apply_conf_change(&cc).unwrap();
    assert!(matches!(r.apply_conf_change(&cc), Err(Error::ConfChangeError(_))), "already joint");
    assert!(
        matches!(r.apply_conf_change(&add(5)), Err(Error::ConfChangeError(_))),
        "simple in joint"
    );
}

/// {1, 2, 3} -> {1, 4, 5} through an explicit joint configuration.
fn replace_2_3_with_4_5() -> ConfChangeV2 {
    joint(
        ConfChangeTransition::JointExplicit,
        &[
            (ConfChangeType::AddNode, 4),
            (ConfChangeType::AddNode, 5),
            (ConfChangeType::RemoveNode, 2),
            (ConfChangeType::RemoveNode, 3),
        ],
    )
}

#[test]
fn joint_quorum_needs_both_majorities_to_commit() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    r.become_candidate();
    r.become_leader();
    let cc = replace_2_3_with_4_5();
    r.apply_conf_change(&cc).unwrap();
    take_msgs(&mut r);
    let ack = |r: &mut Raft<MemStorage>, from| {
        let mut m = msg(from, 1, MessageType::AppendResponse, 1);
        m.index = 1;
        r.step(m).unwrap();
    };
    ack(&mut r, 2); // Old majority {1, 2} of {1, 2, 3}.
    assert_eq!(r.raft_log.committed, 0, "new half {{1, 4, 5}} has only 1");
    ack(&mut r, 4);
    assert_eq!(r.raft_log.committed, 1, "both halves have a majority");
}

#[test]
fn joint_election_needs_both_majorities() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let cc = replace_2_3_with_4_5();
    r.apply_conf_change(&cc).unwrap();
    r.step(hup(1)).unwrap();
    let targets: Vec<NodeId> = take_msgs(&mut r).iter().map(|m| m.to).collect();
    assert_eq!(targets, vec![2, 3, 4, 5], "votes requested from both halves");
    let vote = |r: &mut Raft<MemStorage>, from| {
        r.step(msg(from, 1, MessageType::RequestVoteResponse, 1)).unwrap();
    };
    vote(&mut r, 2);
    vote(&mut r, 3);
    assert_eq!(r.role, StateRole::Candidate, "old half won, new half has 1 of 3");
    vote(&mut r, 4);
    assert_eq!(r.role, StateRole::Leader);
}

#[test]
fn leader_auto_leaves_joint_config_once_applied() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    apply_all(&mut nt);
    let cc = joint(
        ConfChangeTransition::Auto,
        &[(ConfChangeType::AddLearnerNode, 3), (ConfChangeType::AddNode, 2)],
    );
    nt.send(vec![propose_conf_change(1, &cc)]);
    apply_all(&mut nt);
    assert!(nt.peer(1).prs.conf.voters.is_joint());
    assert!(nt.peer(1).prs.conf.auto_leave);
    // Applying the joint entry made the leader propose the leave; deliver and apply it.
    let leave = all_entries(nt.peer(1)).last().cloned().unwrap();
    assert_eq!(leave.entry_type, EntryType::ConfChange);
    let msgs = take_msgs(nt.peer_mut(1));
    nt.send(msgs);
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    apply_all(&mut nt);
    for id in [1, 2, 3] {
        let cs = nt.peer(id).prs.conf_state();
        assert!(cs.voters_outgoing.is_empty(), "peer {id} left the joint config");
        assert_eq!((cs.voters, cs.learners), (vec![1, 2], vec![3]), "peer {id}");
    }
}

#[test]
fn leave_joint_is_refused_at_proposal_when_not_joint() {
    let mut r = single_leader();
    r.step(propose_conf_change(1, &ConfChangeV2::default())).unwrap();
    let last = all_entries(&r).last().cloned().unwrap();
    assert_eq!(last.entry_type, EntryType::Normal, "converted to a no-op");
}

#[test]
fn demoting_an_outgoing_voter_goes_through_learners_next() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let cc = joint(ConfChangeTransition::JointExplicit, &[(ConfChangeType::AddLearnerNode, 3)]);
    let cs = r.apply_conf_change(&cc).unwrap();
    assert_eq!(cs.learners_next, vec![3]);
    assert!(cs.learners.is_empty());
    let cs = r.apply_conf_change(&ConfChangeV2::default()).unwrap();
    assert_eq!((cs.voters, cs.learners), (vec![1, 2], vec![3]));
    assert!(r.prs.progress[&3].is_learner);
}

#[test]
fn removed_leader_steps_down() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    apply_all(&mut nt);
    nt.send(vec![propose_conf_change(1, &remove(1))]);
    apply_all(&mut nt);
    assert_eq!(nt.peer(1).role, StateRole::Follower);
    let msgs = take_msgs(nt.peer_mut(1));
    nt.send(msgs);
    apply_all(&mut nt);
    // The remaining voters elect a leader among themselves; 1 never campaigns again.
    nt.campaign(2);
    assert_eq!(nt.peer(2).role, StateRole::Leader);
    assert_eq!(nt.peer(2).prs.conf_state().voters, vec![2, 3]);
    nt.campaign(1);
    assert_eq!(nt.peer(2).role, StateRole::Leader);
}

#[test]
fn conf_change_kind_classification() {
    use crate::conf_change::{ConfChangeKind, conf_change_kind};
    assert_eq!(conf_change_kind(&ConfChangeV2::default()), ConfChangeKind::LeaveJoint);
    assert_eq!(conf_change_kind(&add(2)), ConfChangeKind::Simple);
    let two = joint(
        ConfChangeTransition::Auto,
        &[(ConfChangeType::AddNode, 2), (ConfChangeType::AddNode, 3)],
    );
    assert_eq!(conf_change_kind(&two), ConfChangeKind::EnterJoint { auto_leave: true });
    let mut explicit = add(2);
    explicit.transition = ConfChangeTransition::JointExplicit;
    assert_eq!(conf_change_kind(&explicit), ConfChangeKind::EnterJoint { auto_leave: false });
}
