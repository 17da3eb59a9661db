//! Log replication: appends, consistency check, conflicts, commit rules, flow control.

use minikv_proto::raftpb::{Entry, INVALID_ID, Message, MessageType};

use super::network::*;
use crate::errors::Error;
use crate::progress::ProgressState;
use crate::raft::{Raft, StateRole};
use crate::storage::MemStorage;

/// Leader 1 of `ids` at term 1 whose no-op (index 1) is committed; messages drained.
fn leader(ids: &[u64]) -> Raft<MemStorage> {
    let mut r = new_raft(1, ids, 10, 1);
    r.become_candidate();
    r.become_leader();
    for &id in &ids[1..] {
        let mut m = msg(id, 1, MessageType::AppendResponse, 1);
        m.index = 1;
        r.step(m).unwrap();
    }
    assert_eq!(r.raft_log.committed, 1);
    take_msgs(&mut r);
    r
}

fn ack(r: &mut Raft<MemStorage>, from: u64, index: u64) {
    let mut m = msg(from, r.id, MessageType::AppendResponse, r.term);
    m.index = index;
    r.step(m).unwrap();
}

#[test]
fn leader_appends_proposal_and_sends_it_to_followers() {
    // Raft §5.3: the leader appends the command to its log, then issues AppendEntries.
    let mut r = leader(&[1, 2, 3]);
    r.step(propose(1, b"some data")).unwrap();
    assert_eq!(r.raft_log.last_index(), 2);
    assert_eq!(r.raft_log.committed, 1);
    let mut msgs = take_msgs(&mut r);
    msgs.sort_by_key(|m| m.to);
    assert_eq!(msgs.len(), 2);
    for (m, to) in msgs.iter().zip([2, 3]) {
        assert_eq!(
            (m.to, m.msg_type, m.index, m.log_term, m.commit),
            (to, MessageType::Append, 1, 1, 1)
        );
        assert_eq!(m.entries, vec![entry(1, 2, b"some data")]);
    }
}

#[test]
fn leader_commits_once_a_majority_has_the_entry() {
    // Raft §5.3: an entry is committed once the leader replicated it on a majority; the
    // commit index travels to the followers in later Appends.
    let mut r = leader(&[1, 2, 3]);
    r.step(propose(1, b"x")).unwrap();
    take_msgs(&mut r);
    ack(&mut r, 2, 2);
    assert_eq!(r.raft_log.committed, 2);
    let msgs = take_msgs(&mut r);
    assert!(msgs.iter().all(|m| m.msg_type == MessageType::Append && m.commit == 2));
}

#[test]
fn commit_needs_a_majority_of_acks() {
    // Raft §5.3: commit requires acknowledgement from a majority, counting the leader.
    let cases: &[(usize, &[u64], bool)] = &[
        (1, &[], true),
        (3, &[], false),
        (3, &[2], true),
        (3, &[2, 3], true),
        (5, &[], false),
        (5, &[2], false),
        (5, &[2, 3], true),
        (5, &[2, 3, 4, 5], true),
    ];
    for (i, &(size, acks, committed)) in cases.iter().enumerate() {
        let ids: Vec<u64> = (1..=size as u64).collect();
        let mut r = if size == 1 {
            let mut r = new_raft(1, &ids, 10, 1);
            r.step(hup(1)).unwrap();
            r
        } else {
            leader(&ids)
        };
        r.step(propose(1, b"x")).unwrap();
        for &a in acks {
            ack(&mut r, a, 2);
        }
        assert_eq!(r.raft_log.committed == 2, committed, "case {i}");
    }
}

#[test]
fn leader_commits_preceding_entries_with_its_own() {
    // Raft §5.3: committing an entry commits all preceding entries, including earlier terms'.
    for prior in [vec![], vec![2], vec![1, 1], vec![1, 2]] {
        let mut r = raft_with_log(1, &[1, 2, 3], &prior);
        r.term = 2;
        r.become_candidate();
        r.become_leader();
        r.step(propose(1, b"x")).unwrap();
        take_msgs(&mut r);
        let last = r.raft_log.last_index();
        ack(&mut r, 2, last);
        assert_eq!(r.raft_log.committed, last, "prior {prior:?}");
    }
}

#[test]
fn follower_commits_what_the_leader_says_is_committed() {
    // Raft §5.3: once a follower learns an entry is committed, it applies it.
    for (entries, commit) in [(1, 1), (2, 1), (2, 2), (1, 0)] {
        let mut r = new_raft(1, &[1, 2, 3], 10, 1);
        r.become_follower(1, 2);
        let mut m = msg(2, 1, MessageType::Append, 1);
        m.entries = (1..=entries).map(|i| entry(1, i, b"d")).collect();
        m.commit = commit;
        r.step(m).unwrap();
        assert_eq!(r.raft_log.committed, commit);
    }
}

#[test]
fn follower_rejects_append_whose_previous_entry_does_not_match() {
    // Raft §5.3: if the follower has no entry at prevLogIndex with prevLogTerm, it refuses.
    let cases =
        [(0, 0, false), (2, 2, false), (1, 1, false), (2, 1, true), (3, 3, true), (1, 2, true)];
    for (term, index, reject) in cases {
        let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2]);
        r.become_follower(2, 2);
        let mut m = msg(2, 1, MessageType::Append, 2);
        m.log_term = term;
        m.index = index;
        r.step(m).unwrap();
        let msgs = take_msgs(&mut r);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].reject, reject, "prev ({term}, {index})");
    }
}

#[test]
fn follower_truncates_conflicting_suffix_and_appends() {
    // Raft §5.3: a conflicting entry and all that follow it are deleted; new ones appended.
    let cases: &[(u64, u64, &[u64], &[u64])] = &[
        (2, 2, &[3], &[1, 2, 3]),
        (1, 1, &[3, 4], &[1, 3, 4]),
        (0, 0, &[1], &[1, 2]),
        (0, 0, &[3], &[3]),
    ];
    for &(index, term, new_terms, want) in cases {
        let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2]);
        r.become_follower(2, 2);
        let mut m = msg(2, 1, MessageType::Append, 2);
        m.log_term = term;
        m.index = index;
        m.entries = new_terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry { term: t, index: index + 1 + i as u64, ..Default::default() })
            .collect();
        r.step(m).unwrap();
        let got: Vec<u64> = all_entries(&r).iter().map(|e| e.term).collect();
        assert_eq!(got, want, "append at ({index}, {term}) of {new_terms:?}");
    }
}

#[test]
fn leader_brings_divergent_followers_in_sync() {
    // Raft §5.3, figure 7: whatever a follower's log, the leader makes it identical to its own.
    let leader_log: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[u64]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (i, f) in followers.iter().enumerate() {
        let mut lead = raft_with_log(1, &[1, 2, 3], leader_log);
        lead.term = 8;
        let mut follower = raft_with_log(2, &[1, 2, 3], f);
        follower.term = 7;
        // 3 votes for 1 so the election succeeds regardless of 2's log.
        let voter = raft_with_log(3, &[1, 2, 3], &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
        let mut nt = Network::from_peers(vec![lead, follower, voter]);
        nt.campaign(1);
        nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
        nt.propose(1, b"sync");
        assert_eq!(all_entries(nt.peer(2)), all_entries(nt.peer(1)), "follower {i}");
    }
}

#[test]
fn leader_never_commits_previous_term_entry_by_counting_replicas() {
    // Raft §5.4.2 (figure 8): only entries of the current term commit by counting replicas.
    let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2]);
    r.term = 3;
    r.become_candidate();
    r.become_leader();
    take_msgs(&mut r);
    // Followers acknowledge only index 2 (term 2), not the new leader's no-op at 3.
    let waited = minikv_hooks::probe_hits(minikv_hooks::Probe::RaftCommitWaitsForOwnTerm);
    ack(&mut r, 2, 2);
    assert_eq!(r.raft_log.committed, 0, "term-2 entry must not commit by replica count");
    assert!(
        minikv_hooks::probe_hits(minikv_hooks::Probe::RaftCommitWaitsForOwnTerm) > waited,
        "the rare path marks itself, so that sweeps can count it and faults strike at it"
    );
    ack(&mut r, 2, 3);
    assert_eq!(r.raft_log.committed, 3, "the current-term entry commits, with its predecessors");
}

/// The planted bug the `raft-figure-8` canary switches on (simulation builds only): the same
/// acknowledgements commit the earlier term's entry.
#[cfg(madsim)]
#[test]
fn the_figure_8_canary_commits_an_earlier_terms_entry_by_counting_replicas() {
    use minikv_hooks::{Canary, Session, SessionConfig};
    let config =
        SessionConfig { seed: 1, canaries: vec![Canary::RaftFigure8], buggify_enable_ppm: 0 };
    let session = Session::start(&config).unwrap();
    let mut r = raft_with_log(1, &[1, 2, 3], &[1, 2]);
    r.term = 3;
    r.become_candidate();
    r.become_leader();
    take_msgs(&mut r);
    ack(&mut r, 2, 2);
    assert_eq!(r.raft_log.committed, 2, "the canary commits by counting replicas");
    drop(session);
}

#[test]
fn log_replication_through_the_network() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.propose(1, b"a");
    nt.campaign(2);
    nt.propose(2, b"b");
    for id in [1, 2, 3] {
        assert_eq!(committed_data(nt.peer(id)), vec![b"a".to_vec(), b"b".to_vec()], "peer {id}");
    }
}

#[test]
fn single_node_commits_immediately() {
    let mut nt = Network::new(&[1]);
    nt.campaign(1);
    nt.propose(1, b"a");
    nt.propose(1, b"b");
    assert_eq!(nt.peer(1).raft_log.committed, 3);
}

#[test]
fn earlier_term_entries_commit_only_after_new_leader_commits_its_own() {
    // Raft §5.4.2: entries from an old term commit when an entry of the new term commits.
    let mut nt = Network::new(&[1, 2, 3, 4, 5]);
    nt.campaign(1);
    // Only 1 and 2 get the proposals: uncommitted.
    nt.cut(1, 3);
    nt.cut(1, 4);
    nt.cut(1, 5);
    nt.propose(1, b"x");
    nt.propose(1, b"y");
    assert_eq!(nt.peer(1).raft_log.committed, 1);
    nt.recover();
    // 2 is elected (it has the longest log); its no-op commits x and y.
    nt.ignore(MessageType::TimeoutNow);
    nt.campaign(2);
    assert_eq!(nt.peer(2).role, StateRole::Leader);
    assert_eq!(nt.peer(2).raft_log.committed, 4);
    assert_eq!(committed_data(nt.peer(2)), vec![b"x".to_vec(), b"y".to_vec()]);
}

#[test]
fn heartbeat_carries_commit_to_a_lagging_follower() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.cut(1, 3);
    nt.propose(1, b"a");
    nt.propose(1, b"b");
    assert_eq!(nt.peer(3).raft_log.committed, 1);
    nt.recover();
    // The first heartbeat response cannot tell lost Appends from travelling ones; a second
    // one without an ack in between can, and the leader resends.
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(nt.peer(3).raft_log.committed, 1);
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(nt.peer(3).raft_log.committed, 3);
    assert_eq!(all_entries(nt.peer(3)), all_entries(nt.peer(1)));
}

#[test]
fn heartbeat_commit_is_capped_by_match() {
    // A follower must never be told to commit entries it may not have.
    let mut r = leader(&[1, 2, 3]);
    r.step(propose(1, b"a")).unwrap();
    ack(&mut r, 2, 2);
    take_msgs(&mut r);
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    let msgs = take_msgs(&mut r);
    let commit_of = |to| msgs.iter().find(|m| m.to == to).unwrap().commit;
    assert_eq!(commit_of(2), 2);
    assert_eq!(commit_of(3), 1);
}

#[test]
fn follower_applies_commit_from_heartbeat() {
    let mut r = raft_with_log(1, &[1, 2], &[1, 1, 1]);
    r.become_follower(2, 2);
    let mut m = msg(2, 1, MessageType::Heartbeat, 2);
    m.commit = 3;
    r.step(m).unwrap();
    assert_eq!(r.raft_log.committed, 3);
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs[0].msg_type, MessageType::HeartbeatResponse);
}

#[test]
fn old_term_messages_are_ignored() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.campaign(2);
    nt.campaign(1);
    // An Append from term 2 (leader 2, now stale) is ignored.
    let mut m = msg(2, 1, MessageType::Append, 2);
    m.entries = vec![entry(2, 3, b"stale")];
    m.index = 2;
    m.log_term = 2;
    nt.send(vec![m]);
    nt.propose(1, b"new");
    assert_eq!(committed_data(nt.peer(1)), vec![b"new".to_vec()]);
    assert_eq!(
        all_entries(nt.peer(1)).iter().map(|e| e.term).collect::<Vec<_>>(),
        vec![1, 2, 3, 3]
    );
}

#[test]
fn proposals_without_leader_are_dropped() {
    let mut r = new_raft(1, &[1, 2, 3], 10, 1);
    assert_eq!(r.step(propose(1, b"x")), Err(Error::ProposalDropped));
    r.become_candidate();
    assert_eq!(r.step(propose(1, b"x")), Err(Error::ProposalDropped));
}

#[test]
fn follower_forwards_proposals_to_leader() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.propose(2, b"via follower");
    for id in [1, 2, 3] {
        assert_eq!(committed_data(nt.peer(id)), vec![b"via follower".to_vec()]);
    }
}

#[test]
fn proposals_to_a_lost_leader_are_not_committed() {
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(1);
    nt.propose(1, b"lost");
    assert_eq!(nt.peer(1).raft_log.committed, 1);
    nt.recover();
    nt.campaign(2);
    nt.propose(2, b"kept");
    for id in [1, 2, 3] {
        assert_eq!(committed_data(nt.peer(id)), vec![b"kept".to_vec()], "peer {id}");
    }
}

#[test]
fn all_roles_step_down_on_higher_term_vote_or_append() {
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        for t in [MessageType::RequestVote, MessageType::Append] {
            let mut r = raft_with_log(1, &[1, 2, 3], &[1]);
            match role {
                StateRole::Candidate => r.become_candidate(),
                StateRole::Leader => {
                    r.become_candidate();
                    r.become_leader();
                }
                _ => {}
            }
            let mut m = msg(2, 1, t, 3);
            m.log_term = 3;
            m.index = 2;
            r.step(m).unwrap();
            assert_eq!((r.role, r.term), (StateRole::Follower, 3), "{role:?} {t:?}");
            let want_lead = if t == MessageType::Append { 2 } else { INVALID_ID };
            assert_eq!(r.leader_id, want_lead);
        }
    }
}

#[test]
fn leader_advances_next_by_state() {
    // Replicate streams optimistically; Probe sends one message and waits.
    for (state, want_next) in [(ProgressState::Replicate, 5), (ProgressState::Probe, 2)] {
        let mut r = raft_with_log(1, &[1, 2], &[1, 1]);
        r.term = 1;
        r.become_candidate();
        r.become_leader();
        let pr = r.prs.progress.get_mut(&2).unwrap();
        pr.state = state;
        pr.next_idx = 2;
        pr.matched = 1;
        take_msgs(&mut r);
        r.step(propose(1, b"x")).unwrap();
        assert_eq!(r.prs.progress[&2].next_idx, want_next, "{state:?}");
    }
}

#[test]
fn probe_state_sends_one_append_until_answered() {
    let mut r = leader(&[1, 2]);
    r.prs.progress.get_mut(&2).unwrap().become_probe();
    for _ in 0..3 {
        r.step(propose(1, b"x")).unwrap();
    }
    let appends = take_msgs(&mut r).iter().filter(|m| m.msg_type == MessageType::Append).count();
    assert_eq!(appends, 1, "paused after one probe");
    // A heartbeat response resumes probing.
    r.step(msg(2, 1, MessageType::HeartbeatResponse, 1)).unwrap();
    let appends = take_msgs(&mut r).iter().filter(|m| m.msg_type == MessageType::Append).count();
    assert_eq!(appends, 1);
}

#[test]
fn replicate_state_is_bounded_by_the_inflight_window() {
    let mut r = new_raft_with(
        &crate::config::Config { max_inflight_msgs: 3, ..cfg(1, 10, 1) },
        MemStorage::new_with_conf_state(voters(&[1, 2])),
    );
    r.become_candidate();
    r.become_leader();
    ack(&mut r, 2, 1);
    assert_eq!(r.prs.progress[&2].state, ProgressState::Replicate);
    take_msgs(&mut r);
    for _ in 0..10 {
        r.step(propose(1, b"x")).unwrap();
    }
    let appends = take_msgs(&mut r).iter().filter(|m| m.msg_type == MessageType::Append).count();
    assert_eq!(appends, 3, "window of 3");
    assert!(r.prs.progress[&2].is_paused());
    // Acking the first frees room for more.
    ack(&mut r, 2, 2);
    let sent: Vec<Message> = take_msgs(&mut r);
    assert!(sent.iter().any(|m| m.msg_type == MessageType::Append && !m.entries.is_empty()));
}

#[test]
fn append_messages_respect_max_size() {
    let mut r = new_raft_with(
        &crate::config::Config { max_size_per_msg_bytes: 100, ..cfg(1, 10, 1) },
        MemStorage::new_with_conf_state(voters(&[1, 2])),
    );
    r.become_candidate();
    r.become_leader();
    // Node 2 is in Probe: stays paused while we propose.
    r.prs.progress.get_mut(&2).unwrap().probe_sent = true;
    for _ in 0..10 {
        r.step(propose(1, &[0u8; 40])).unwrap();
    }
    take_msgs(&mut r);
    r.prs.progress.get_mut(&2).unwrap().probe_sent = false;
    r.prs.progress.get_mut(&2).unwrap().next_idx = 2;
    r.send_append(2);
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 1);
    // 64 bytes per entry counted (40 data + 24 header): one fits in 100, two do not.
    assert_eq!(msgs[0].entries.len(), 1);
}

#[test]
fn rejected_append_uses_hints_to_skip_conflicting_terms() {
    // Fast backtracking: a follower with a long divergent tail is fixed in a few round trips.
    let leader_log: Vec<u64> =
        std::iter::repeat_n(1, 5).chain(std::iter::repeat_n(4, 50)).collect();
    let follower_log: Vec<u64> = std::iter::repeat_n(1, 5)
        .chain(std::iter::repeat_n(2, 50))
        .chain(std::iter::repeat_n(3, 50))
        .collect();
    let mut lead = raft_with_log(1, &[1, 2, 3], &leader_log);
    lead.term = 5;
    let mut follower = raft_with_log(2, &[1, 2, 3], &follower_log);
    follower.term = 5;
    let voter = raft_with_log(3, &[1, 2, 3], &leader_log);
    let mut nt = Network::from_peers(vec![lead, follower, voter]);
    nt.cut(1, 3);
    nt.cut(3, 2);
    nt.send(vec![hup(1)]);
    // Vote from 3 was cut; let it through.
    nt.recover();
    nt.cut(1, 3);
    nt.campaign(1);
    assert_eq!(nt.peer(1).role, StateRole::Leader);
    let rejections = nt
        .log
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse && m.reject && m.from == 2)
        .count();
    assert!(rejections <= 3, "{rejections} rejections: hints should skip whole terms");
    assert_eq!(all_entries(nt.peer(2)), all_entries(nt.peer(1)));
}

#[test]
fn reject_hint_points_at_last_entry_with_term_at_most_the_probe() {
    let mut r = raft_with_log(2, &[1, 2], &[1, 1, 2, 2, 3, 3]);
    r.become_follower(4, 1);
    let mut m = msg(1, 2, MessageType::Append, 4);
    m.index = 6;
    m.log_term = 2;
    r.step(m).unwrap();
    let resp = &take_msgs(&mut r)[0];
    assert!(resp.reject);
    assert_eq!((resp.reject_hint, resp.log_term_hint), (4, 2));
}

#[test]
fn max_uncommitted_size_drops_proposals() {
    let mut r = new_raft_with(
        &crate::config::Config { max_uncommitted_size_bytes: 100, ..cfg(1, 10, 1) },
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    r.become_candidate();
    r.become_leader();
    r.step(propose(1, &[0u8; 60])).unwrap();
    assert_eq!(r.step(propose(1, &[0u8; 60])), Err(Error::ProposalDropped));
    // Applying frees the budget.
    ack(&mut r, 2, 2);
    let e = r.raft_log.slice(2, 3, None).unwrap();
    r.commit_apply(2, &e);
    r.step(propose(1, &[0u8; 60])).unwrap();
}

#[test]
fn unreachable_peer_falls_back_to_probe() {
    let mut r = leader(&[1, 2]);
    assert_eq!(r.prs.progress[&2].state, ProgressState::Replicate);
    r.step(msg(2, 1, MessageType::Unreachable, 0)).unwrap();
    assert_eq!(r.prs.progress[&2].state, ProgressState::Probe);
}

#[test]
fn newer_logs_of_a_deposed_term_are_overwritten() {
    // Raft §5.3: uncommitted entries of an old term are replaced by the new leader's.
    let mut nt = Network::new(&[1, 2, 3]);
    nt.campaign(1);
    nt.isolate(1);
    nt.propose(1, b"lost1");
    nt.propose(1, b"lost2");
    nt.recover();
    nt.isolate(1);
    nt.campaign(2);
    nt.propose(2, b"won");
    nt.recover();
    nt.send(vec![msg(INVALID_ID, 2, MessageType::Beat, 0)]);
    nt.propose(2, b"more");
    assert_eq!(all_entries(nt.peer(1)), all_entries(nt.peer(2)));
    assert_eq!(committed_data(nt.peer(1)), vec![b"won".to_vec(), b"more".to_vec()]);
}

#[test]
fn skip_bcast_commit_sends_commit_lazily() {
    let mut nt = Network::new_with(&[1, 2, 3], |c| c.skip_bcast_commit = true);
    nt.campaign(1);
    nt.propose(1, b"x");
    assert_eq!(nt.peer(1).raft_log.committed, 2);
    // No Append was sent for the commit alone: the followers still hold the old index.
    assert_eq!(nt.peer(2).raft_log.committed, 1);
    assert_eq!(nt.peer(3).raft_log.committed, 1);
    // Followers learn the commit with the next message from the leader.
    nt.send(vec![msg(INVALID_ID, 1, MessageType::Beat, 0)]);
    assert_eq!(nt.peer(2).raft_log.committed, 2);
    assert_eq!(nt.peer(3).raft_log.committed, 2);
}

#[test]
fn skip_bcast_commit_still_broadcasts_while_a_conf_change_is_pending() {
    let mut r = new_raft_with(
        &crate::config::Config { skip_bcast_commit: true, ..cfg(1, 10, 1) },
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    r.become_candidate();
    r.become_leader();
    ack(&mut r, 2, 1);
    ack(&mut r, 3, 1);
    take_msgs(&mut r);
    r.step(propose(1, b"x")).unwrap();
    take_msgs(&mut r);
    ack(&mut r, 2, 2);
    assert_eq!(r.raft_log.committed, 2);
    assert!(take_msgs(&mut r).is_empty(), "the commit of 2 waits for the next message");
    // With a conf change pending, its commit is told to every follower at once.
    r.pending_conf_index = 3;
    r.step(propose(1, b"y")).unwrap();
    take_msgs(&mut r);
    ack(&mut r, 2, 3);
    assert_eq!(r.raft_log.committed, 3);
    let to: Vec<u64> = take_msgs(&mut r)
        .iter()
        .filter(|m| m.msg_type == MessageType::Append && m.commit == 3)
        .map(|m| m.to)
        .collect();
    assert_eq!(to, vec![2, 3]);
}

/// A leader with followers 2 and 3 in Replicate and `n` entries proposed and sent to both.
fn replicating_leader(n: usize) -> Raft<MemStorage> {
    let mut r = new_raft_with(&cfg(1, 10, 1), MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    r.become_candidate();
    r.become_leader();
    ack(&mut r, 2, 1);
    ack(&mut r, 3, 1);
    for _ in 0..n {
        r.step(propose(1, b"x")).unwrap();
    }
    take_msgs(&mut r);
    r
}

fn appends_to(r: &mut Raft<MemStorage>, to: u64) -> usize {
    take_msgs(r).iter().filter(|m| m.msg_type == MessageType::Append && m.to == to).count()
}

#[test]
fn heartbeat_responses_do_not_resend_entries_that_are_being_acknowledged() {
    let mut r = replicating_leader(4);
    // The follower acknowledges between heartbeats: what is in flight is arriving.
    for acked in [2, 3, 4] {
        ack(&mut r, 2, acked);
        take_msgs(&mut r);
        r.step(msg(2, 1, MessageType::HeartbeatResponse, 1)).unwrap();
        assert_eq!(appends_to(&mut r, 2), 0, "after the ack of {acked}");
    }
}

#[test]
fn heartbeat_responses_resend_when_a_follower_stopped_acknowledging() {
    let mut r = replicating_leader(4);
    // The Appends to 2 were lost: two heartbeat responses come with no ack between them.
    r.step(msg(2, 1, MessageType::HeartbeatResponse, 1)).unwrap();
    assert_eq!(appends_to(&mut r, 2), 0, "one interval without an ack may be transit time");
    r.step(msg(2, 1, MessageType::HeartbeatResponse, 1)).unwrap();
    assert_eq!(appends_to(&mut r, 2), 1, "a second one means the Appends may be lost");
    // A caught-up follower is never sent anything.
    ack(&mut r, 3, 5);
    take_msgs(&mut r);
    for _ in 0..3 {
        r.step(msg(3, 1, MessageType::HeartbeatResponse, 1)).unwrap();
        assert_eq!(appends_to(&mut r, 3), 0);
    }
}

/// A leader that skips idle heartbeats, with followers 2 and 3 caught up at index 1 and one
/// periodic heartbeat behind it (so that only what happens next counts).
fn quiet_leader() -> Raft<MemStorage> {
    let mut r = new_raft_with(
        &crate::config::Config {
            skip_idle_heartbeats: true,
            skip_bcast_commit: true,
            ..cfg(1, 10, 1)
        },
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    r.become_candidate();
    r.become_leader();
    ack(&mut r, 2, 1);
    ack(&mut r, 3, 1);
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    take_msgs(&mut r);
    r
}

fn heartbeats_to(r: &mut Raft<MemStorage>) -> Vec<(u64, u64)> {
    take_msgs(r)
        .iter()
        .filter(|m| m.msg_type == MessageType::Heartbeat)
        .map(|m| (m.to, m.commit))
        .collect()
}

#[test]
fn idle_heartbeats_skip_followers_that_acknowledged_and_know_the_commit() {
    let mut r = quiet_leader();
    // 2 acknowledges x (committing it) and learns that commit from the Append carrying y;
    // 3 stays silent.
    r.step(propose(1, b"x")).unwrap();
    ack(&mut r, 2, 2);
    r.step(propose(1, b"y")).unwrap();
    take_msgs(&mut r);
    // A heartbeat would tell 2 nothing new; 3, silent, gets one.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(3, 1)]);
    // With no ack since, 2 gets the next one.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(2, 2), (3, 1)]);
}

#[test]
fn idle_heartbeats_still_carry_a_commit_the_follower_was_not_told() {
    let mut r = quiet_leader();
    r.step(propose(1, b"x")).unwrap();
    // 2's ack commits index 2; with lazy commits nobody was told, so both get a heartbeat.
    ack(&mut r, 2, 2);
    take_msgs(&mut r);
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(2, 2), (3, 1)]);
}

#[test]
fn idle_heartbeats_skip_followers_with_appends_in_flight_until_they_are_acknowledged() {
    let mut r = quiet_leader();
    // x and y go out to 2 (y's Append carries commit 1); 2 acknowledges x, which commits it.
    r.step(propose(1, b"x")).unwrap();
    r.step(propose(1, b"y")).unwrap();
    ack(&mut r, 2, 2);
    take_msgs(&mut r);
    // 2 was not told commit 2, but y is in flight to it: only silent 3 gets a heartbeat.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(3, 1)]);
    // 2 acknowledges y (commit 3): nothing in flight and commit 3 not told, so it gets one.
    ack(&mut r, 2, 3);
    take_msgs(&mut r);
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(2, 3), (3, 1)]);
}

#[test]
fn idle_heartbeats_skip_a_follower_whose_probe_is_out_until_it_stops_acknowledging() {
    let mut r = quiet_leader();
    // 2 acknowledges w, then rejects the Append of y (x never arrived): back to Probe, and
    // the leader sends its probe (x and y) at once.
    for data in [b"w", b"x", b"y"] {
        r.step(propose(1, data)).unwrap();
    }
    ack(&mut r, 2, 2);
    take_msgs(&mut r);
    let mut reject = msg(2, 1, MessageType::AppendResponse, r.term);
    (reject.index, reject.reject, reject.reject_hint) = (3, true, 2);
    r.step(reject).unwrap();
    assert_eq!(r.prs.progress[&2].state, crate::progress::ProgressState::Probe);
    assert_eq!(appends_to(&mut r, 2), 1, "the probe");
    // A heartbeat's response would only send that probe again: 2 is skipped.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(3, 1)]);
    // No answer since (the probe may be lost): 2 gets the next heartbeat, whose response
    // resends the probe.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    assert_eq!(heartbeats_to(&mut r), vec![(2, 2), (3, 1)]);
    r.step(msg(2, 1, MessageType::HeartbeatResponse, r.term)).unwrap();
    assert_eq!(appends_to(&mut r, 2), 1, "the probe again");
}

#[test]
fn idle_heartbeats_are_never_skipped_when_a_read_waits_on_them() {
    let mut r = quiet_leader();
    r.step(propose(1, b"x")).unwrap();
    ack(&mut r, 2, 2);
    ack(&mut r, 3, 2);
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    take_msgs(&mut r);
    ack(&mut r, 2, 2);
    ack(&mut r, 3, 2);
    let read = Message {
        msg_type: MessageType::ReadIndex,
        context: b"ctx".to_vec(),
        ..Default::default()
    };
    r.step(read).unwrap();
    take_msgs(&mut r);
    // The read's round is not answered yet; the periodic heartbeat carries its context again.
    r.step(msg(INVALID_ID, 1, MessageType::Beat, 0)).unwrap();
    let sent = take_msgs(&mut r);
    let to: Vec<u64> = sent
        .iter()
        .filter(|m| m.msg_type == MessageType::Heartbeat && m.context == b"ctx")
        .map(|m| m.to)
        .collect();
    assert_eq!(to, vec![2, 3]);
}
