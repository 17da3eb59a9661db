//! Elections: terms, votes, randomized timeouts, pre-vote and check-quorum.

use minikv_proto::raftpb::{INVALID_ID, MessageType};

use super::network::*;
use crate::raft::StateRole;

fn tick_n(r: &mut crate::raft::Raft<crate::storage::MemStorage>, n: usize) {
    for _ in 0..n {
        r.tick();
    }
}

#[test]
fn starts_as_follower() {
    // Raft §5.2: servers start as followers.
    let r = new_raft(1, &[1, 2, 3], 10, 1);
    assert_eq!(r.role, StateRole::Follower);
    assert_eq!(r.term, 0);
    assert_eq!(r.leader_id, INVALID_ID);
}

#[test]
fn every_role_adopts_a_higher_term_and_becomes_follower() {
    // Raft §5.1: a server seeing a larger term updates its term and reverts to follower.
    for role in
        [StateRole::Follower, StateRole::Candidate, StateRole::PreCandidate, StateRole::Leader]
    {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        match role {
            StateRole::Follower => r.become_follower(1, 2),
            StateRole::Candidate => r.become_candidate(),
            StateRole::PreCandidate => r.become_pre_candidate(),
            StateRole::Leader => {
                r.become_candidate();
                r.become_leader();
            }
        }
        r.step(msg(2, 1, MessageType::Append, 2)).unwrap();
        assert_eq!(r.term, 2, "{role:?}");
        assert_eq!(r.role, StateRole::Follower, "{role:?}");
        assert_eq!(r.leader_id, 2, "{role:?}: an Append names the leader");
    }
}

#[test]
fn stale_term_messages_are_ignored() {
    // Raft §5.1: a request with a stale term is rejected.
    let mut r = new_raft(1, &[1, 2], 10, 1);
    r.become_follower(2, 2);
    let before = r.raft_log.last_index();
    let mut m = msg(2, 1, MessageType::Append, 1);
    m.entries = vec![entry(1, 1, b"x")];
    r.step(m).unwrap();
    assert_eq!(r.raft_log.last_index(), before);
    assert_eq!(r.term, 2);
}

#[test]
fn leader_broadcasts_heartbeat_every_heartbeat_tick() {
    // Raft §5.2: leaders send periodic heartbeats to maintain authority.
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    r.become_candidate();
    r.become_leader();
    take_msgs(&mut r);
    r.tick();
    let mut msgs = take_msgs(&mut r);
    msgs.sort_by_key(|m| m.to);
    let targets: Vec<_> = msgs.iter().map(|m| (m.to, m.msg_type)).collect();
    assert_eq!(targets, vec![(2, MessageType::Heartbeat), (3, MessageType::Heartbeat)]);
    assert!(msgs.iter().all(|m| m.term == 1));
}

#[test]
fn follower_and_candidate_start_election_after_timeout() {
    // Raft §5.2: on election timeout a follower (or candidate) increments its term, votes for
    // itself and requests votes from every other server.
    for start_candidate in [false, true] {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        if start_candidate {
            r.become_candidate();
        }
        let term0 = r.term;
        tick_n(&mut r, 20);
        assert_eq!(r.role, StateRole::Candidate);
        assert_eq!(r.term, term0 + 1);
        assert_eq!(r.vote, 1);
        let mut msgs = take_msgs(&mut r);
        msgs.sort_by_key(|m| m.to);
        assert_eq!(msgs.len(), 2);
        for (m, to) in msgs.iter().zip([2, 3]) {
            assert_eq!((m.to, m.msg_type, m.term), (to, MessageType::RequestVote, term0 + 1));
        }
    }
}

#[test]
fn election_outcome_depends_on_vote_count() {
    // Raft §5.2: a candidate wins with votes from a majority, loses when a majority rejects,
    // and otherwise waits.
    type Case = (usize, &'static [(u64, bool)], StateRole);
    let cases: &[Case] = &[
        (1, &[], StateRole::Leader),
        (3, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, true)], StateRole::Leader),
        (5, &[(2, true), (3, true), (4, true), (5, true)], StateRole::Leader),
        (5, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[], StateRole::Candidate),
        (5, &[(2, true)], StateRole::Candidate),
        (5, &[(2, false), (3, false)], StateRole::Candidate),
        (3, &[(2, false), (3, false)], StateRole::Follower),
        (5, &[(2, false), (3, false), (4, false)], StateRole::Follower),
    ];
    for (i, &(size, votes, want)) in cases.iter().enumerate() {
        let ids: Vec<u64> = (1..=size as u64).collect();
        let mut r = new_raft(1, &ids, 10, 1);
        r.step(hup(1)).unwrap();
        for &(from, granted) in votes {
            let mut m = msg(from, 1, MessageType::RequestVoteResponse, r.term);
            m.reject = !granted;
            r.step(m).unwrap();
        }
        assert_eq!(r.role, want, "case {i}");
        assert_eq!(r.term, 1, "case {i}");
    }
}

#[test]
fn follower_votes_at_most_once_per_term() {
    // Raft §5.2: each server votes for at most one candidate per term, first come first served.
    let cases = [
        (INVALID_ID, 2, false),
        (INVALID_ID, 3, false),
        (2, 2, false),
        (3, 3, false),
        (2, 3, true),
        (3, 2, true),
    ];
    for (vote, nvote, reject) in cases {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        r.term = 1;
        r.vote = vote;
        let mut m = msg(nvote, 1, MessageType::RequestVote, 1);
        m.log_term = 1;
        r.step(m).unwrap();
        let msgs = take_msgs(&mut r);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].msg_type, MessageType::RequestVoteResponse);
        assert_eq!(msgs[0].reject, reject, "vote {vote} request from {nvote}");
    }
}

#[test]
fn candidate_falls_back_on_append_from_current_leader() {
    // Raft §5.2: a candidate that hears from a leader of at least its term becomes follower.
    for term in [1, 2] {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        r.step(hup(1)).unwrap();
        assert_eq!(r.role, StateRole::Candidate);
        r.step(msg(2, 1, MessageType::Append, term)).unwrap();
        assert_eq!(r.role, StateRole::Follower);
        assert_eq!(r.term, term);
        assert_eq!(r.leader_id, 2);
    }
}

fn timeout_spread(make_candidate: bool) -> std::collections::BTreeSet<usize> {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        if make_candidate {
            r.become_candidate();
        } else {
            let term = r.term + 1;
            r.become_follower(term, 2);
        }
        let term = r.term;
        let mut ticks = 0;
        while r.term == term {
            r.tick();
            ticks += 1;
        }
        take_msgs(&mut r);
        seen.insert(ticks);
        let term = r.term;
        r.become_follower(term, INVALID_ID);
    }
    seen
}

#[test]
fn election_timeout_is_randomized_over_the_whole_range() {
    // Raft §5.2: randomized election timeouts in [et, 2et) make split votes rare.
    for make_candidate in [false, true] {
        let seen = timeout_spread(make_candidate);
        assert_eq!(seen, (10..20).collect(), "candidate={make_candidate}");
    }
}

#[test]
fn randomized_timeouts_rarely_conflict() {
    // Raft §5.2: with randomization, usually a single follower times out first.
    let mut conflicts = 0;
    for round in 0..200u64 {
        let mut rafts: Vec<_> = (1..=5)
            .map(|id| {
                let mut c = cfg(id, 10, 1);
                c.rng_seed = round;
                new_raft_with(
                    &c,
                    crate::storage::MemStorage::new_with_conf_state(voters(&[1, 2, 3, 4, 5])),
                )
            })
            .collect();
        let mut timed_out = 0;
        while timed_out == 0 {
            for r in &mut rafts {
                r.tick();
                if r.role == StateRole::Candidate {
                    timed_out += 1;
                }
            }
        }
        if timed_out > 1 {
            conflicts += 1;
        }
    }
    assert!(conflicts < 60, "{conflicts} of 200 rounds had simultaneous timeouts");
}

#[test]
fn same_seed_on_different_nodes_still_draws_different_timeouts() {
    let timeouts: Vec<usize> = (1..=5)
        .map(|id| new_raft(id, &[1, 2, 3, 4, 5], 10, 1).randomized_election_timeout)
        .collect();
    let distinct: std::collections::BTreeSet<_> = timeouts.iter().collect();
    assert!(distinct.len() > 1, "all nodes drew {timeouts:?}");
}

#[test]
fn same_seed_replays_the_same_timeouts() {
    let draw = || {
        let mut r = new_raft(3, &[1, 2, 3], 10, 1);
        (0..20)
            .map(|t| {
                r.become_follower(t + 1, 1);
                r.randomized_election_timeout
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(), draw());
}

#[test]
fn leader_election_with_partial_network() {
    // Raft §5.2: a candidate needs a majority; unreachable peers cannot vote.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader);

    let mut nt = Network::new(&[1, 2, 3]);
    nt.isolate(2);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader, "2 of 3 is a majority");

    let mut nt = Network::new(&[1, 2, 3, 4, 5]);
    nt.isolate(2);
    nt.isolate(3);
    nt.isolate(4);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Candidate, "2 of 5 is not a majority");
}

#[test]
fn every_node_can_lead_in_turn() {
    // Raft §5.2: any up-to-date node can be elected; others follow it.
    let mut nt = Network::new(&[1, 2, 3]);
    for id in [1, 2, 3] {
        nt.campaign(id);
        for p in nt.peers.values() {
            let want = if p.id == id { StateRole::Leader } else { StateRole::Follower };
            assert_eq!(p.role, want, "campaigner {id}, peer {}", p.id);
            assert_eq!(p.leader_id, id);
        }
    }
}

#[test]
fn vote_requests_are_granted_from_any_role_with_higher_term() {
    // Raft §5.1: a higher-term vote request moves any role to follower of that term.
    for role in
        [StateRole::Follower, StateRole::Candidate, StateRole::PreCandidate, StateRole::Leader]
    {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        r.term = 1;
        match role {
            StateRole::Follower => r.become_follower(r.term, 3),
            StateRole::Candidate => r.become_candidate(),
            StateRole::PreCandidate => r.become_pre_candidate(),
            StateRole::Leader => {
                r.become_candidate();
                r.become_leader();
            }
        }
        take_msgs(&mut r);
        let new_term = r.term + 1;
        let mut m = msg(2, 1, MessageType::RequestVote, new_term);
        m.index = 42;
        m.log_term = new_term;
        r.step(m).unwrap();
        let msgs = take_msgs(&mut r);
        assert_eq!(msgs.len(), 1, "{role:?}");
        assert!(!msgs[0].reject, "{role:?}");
        assert_eq!(r.role, StateRole::Follower, "{role:?}");
        assert_eq!((r.term, r.vote), (new_term, 2), "{role:?}");
    }
}

#[test]
fn voter_checks_log_up_to_date() {
    // Raft §5.4.1: deny the vote if the voter's log is more up to date than the candidate's.
    let cases: &[(&[u64], u64, u64, bool)] = &[
        (&[1], 1, 1, false),
        (&[1], 1, 2, false),
        (&[1, 1], 1, 1, true),
        (&[1], 2, 1, false),
        (&[1], 2, 2, false),
        (&[1, 1], 2, 1, false),
        (&[2], 1, 1, true),
        (&[2], 1, 2, true),
        (&[2, 1], 1, 1, true),
    ];
    for (i, &(log, log_term, index, reject)) in cases.iter().enumerate() {
        let mut r = raft_with_log(1, &[1, 2], log);
        let mut m = msg(2, 1, MessageType::RequestVote, 3);
        m.log_term = log_term;
        m.index = index;
        r.step(m).unwrap();
        let msgs = take_msgs(&mut r);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].reject, reject, "case {i}");
    }
}

#[test]
fn vote_request_carries_last_log_position() {
    // Raft §5.4.1: RequestVote includes the candidate's last log index and term.
    let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2, 2]);
    r.step(hup(1)).unwrap();
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 2);
    for m in msgs {
        assert_eq!((m.msg_type, m.index, m.log_term, m.term), (MessageType::RequestVote, 3, 2, 3));
    }
}

#[test]
fn dueling_candidates_resolve() {
    // Raft §5.2: after a split, a later election picks a leader with the longer log.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.cut(1, 3);
    nt.campaign(1);
    nt.campaign(3);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    assert_eq!(nt.peer(3).role, StateRole::Candidate);
    nt.recover();
    // 3 has a shorter log (no no-op of term 1) so it cannot win, but its term disrupts.
    nt.campaign(3);
    assert_eq!(nt.peer(3).role, StateRole::Follower);
    assert_eq!(nt.peer(1).role, StateRole::Follower);
    assert_eq!(nt.peer(3).term, 2);
}

#[test]
fn candidate_concedes_to_new_leader() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.isolate(1);
    nt.campaign(1);
    nt.campaign(3);
    nt.recover();
    // A heartbeat from leader 3 makes candidate 1 concede.
    nt.send(vec![msg(INVALID_ID, 3, MessageType::Beat, 0)]);
    nt.propose(3, b"force");
    assert_eq!(nt.peer(1).role, StateRole::Follower);
    assert_eq!(nt.peer(1).term, 1);
    assert_eq!(committed_data(nt.peer(1)), vec![b"force".to_vec()]);
}

#[test]
fn single_node_becomes_leader_at_once() {
    let mut nt = Network::new(&[1]);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
}

#[test]
fn campaigning_while_leader_is_a_no_op() {
    let mut nt = Network::new(&[1]);
    nt.campaign(1);
    let term = nt.peer(1).term;
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    assert_eq!(nt.peer(1).term, term);
}

#[test]
fn split_vote_resolves_by_timeouts() {
    // Raft §5.2: when votes split, randomized timeouts start a new election.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    // Make 2 and 3 candidates in the same term: they split the vote.
    nt.isolate(1);
    nt.ignore(MessageType::RequestVote);
    nt.campaign(2);
    nt.campaign(3);
    nt.recover();
    nt.isolate(1);
    for _ in 0..40 {
        nt.tick();
    }
    let leaders: Vec<_> =
        [2, 3].into_iter().filter(|&i| nt.peer(i).role == StateRole::Leader).collect();
    assert_eq!(leaders.len(), 1, "exactly one of 2 and 3 leads");
}

#[test]
fn learner_never_campaigns() {
    let mut store =
        crate::storage::MemStorage::new_with_conf_state(minikv_proto::raftpb::ConfState {
            voters: vec![1],
            learners: vec![2],
            ..Default::default()
        });
    let _ = &mut store;
    let mut r = new_raft_with(&cfg(2, 10, 1), store);
    assert!(r.is_learner);
    tick_n(&mut r, 100);
    assert_eq!(r.role, StateRole::Follower);
    assert!(take_msgs(&mut r).is_empty());
}

#[test]
fn pre_vote_does_not_bump_terms_of_a_partitioned_node() {
    // Raft thesis §9.6: a node that cannot win does not disrupt the cluster with higher terms.
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.pre_vote = true);
    nt.campaign(1);
    nt.isolate(3);
    nt.propose(1, b"x");
    for _ in 0..5 {
        nt.campaign(3);
    }
    assert_eq!(nt.peer(3).term, 1, "pre-vote fails, the term stays");
    assert_eq!(nt.peer(3).role, StateRole::PreCandidate);
    nt.recover();
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(nt.peer(1).role, StateRole::Leader, "the leader is not disrupted");
    assert_eq!(nt.peer(3).role, StateRole::Follower);
    assert_eq!(nt.peer(3).leader_id, 1);
}

#[test]
fn pre_vote_then_real_vote_elects() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.pre_vote = true);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    assert_eq!(nt.peer(1).term, 1);
    let types: Vec<_> = nt.log.iter().map(|m| m.msg_type).collect();
    let pre = types.iter().position(|&t| t == MessageType::RequestPreVote).unwrap();
    let real = types.iter().position(|&t| t == MessageType::RequestVote).unwrap();
    assert!(pre < real, "pre-vote round comes first");
}

#[test]
fn pre_vote_granted_to_up_to_date_candidate_even_with_vote_cast() {
    // A pre-vote for a future term is granted if the log is up to date, regardless of our vote.
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    r.become_follower(1, INVALID_ID);
    r.vote = 3;
    let mut m = msg(2, 1, MessageType::RequestPreVote, 2);
    m.index = 0;
    r.step(m).unwrap();
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].reject);
    assert_eq!(msgs[0].term, 2, "granted pre-vote carries the request's term");
    assert_eq!((r.term, r.vote), (1, 3), "a pre-vote changes neither term nor vote");
}

#[test]
fn pre_vote_rejected_for_stale_log() {
    let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2]);
    let mut m = msg(2, 1, MessageType::RequestPreVote, 3);
    m.index = 5;
    m.log_term = 1;
    r.step(m).unwrap();
    let msgs = take_msgs(&mut r);
    assert!(msgs[0].reject);
}

#[test]
fn check_quorum_leader_steps_down_without_quorum() {
    // Raft thesis §6.2: a leader that does not hear from a majority for an election timeout
    // steps down.
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.check_quorum = true);
    nt.campaign(1);
    nt.isolate(1);
    // Peers answered during the election, so the first check (tick 10) still sees a quorum;
    // the second (tick 20) sees nobody.
    for _ in 0..19 {
        nt.tick();
    }
    assert_eq!(nt.peer(1).role, StateRole::Leader, "still within two election timeouts");
    nt.tick();
    assert_eq!(nt.peer(1).role, StateRole::Follower);
}

#[test]
fn check_quorum_leader_stays_with_quorum() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.check_quorum = true);
    nt.campaign(1);
    nt.isolate(3);
    for _ in 0..30 {
        nt.tick();
    }
    assert_eq!(nt.peer(1).role, StateRole::Leader);
}

#[test]
fn check_quorum_followers_ignore_votes_within_lease() {
    // Raft thesis §4.2.3: a follower that recently heard from the leader ignores vote requests.
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.check_quorum = true);
    nt.campaign(1);
    nt.campaign(3);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    assert_eq!(nt.peer(2).term, 1, "2 ignored 3's request within the lease");
    // After an election timeout without the leader, the vote is granted.
    nt.isolate(1);
    for _ in 0..10 {
        nt.peer_mut(2).tick();
        nt.peer_mut(3).tick();
    }
    nt.send(vec![hup(3)]);
    assert_eq!(nt.peer(3).role, StateRole::Leader);
}

#[test]
fn check_quorum_stale_leader_learns_higher_term_from_append_response() {
    // With check-quorum, an Append from a stale term is answered so the old leader steps down.
    let mut r = new_raft_with(
        &Config { check_quorum: true, ..cfg(1, 10, 1) },
        crate::storage::MemStorage::new_with_conf_state(voters(&[1, 2])),
    );
    r.become_follower(3, 2);
    r.step(msg(2, 1, MessageType::Append, 2)).unwrap();
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].msg_type, msgs[0].term), (MessageType::AppendResponse, 3));
}

#[test]
fn disruptive_node_with_check_quorum_and_pre_vote_cannot_depose_leader() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| {
        c.check_quorum = true;
        c.pre_vote = true;
    });
    nt.campaign(1);
    nt.isolate(3);
    for _ in 0..40 {
        nt.tick();
    }
    nt.recover();
    for _ in 0..5 {
        nt.tick();
    }
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    assert_eq!(nt.peer(1).term, 1);
    assert_eq!(nt.peer(3).leader_id, 1);
}

#[test]
fn elected_leader_appends_a_noop_entry() {
    // Raft §8: a leader commits a blank no-op entry at the start of its term.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    let log = all_entries(nt.peer(1));
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].term, log[0].index), (1, 1));
    assert!(log[0].data.is_empty());
    for id in [1, 2, 3] {
        assert_eq!(nt.peer(id).raft_log.committed, 1, "peer {id}");
    }
}

use crate::config::Config;
