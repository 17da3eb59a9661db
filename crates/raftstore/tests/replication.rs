//! Replication, reads, redirection and partitions on a 3-store cluster.

mod common;

use common::{Cluster, REGION_ID, get_req, put_req, test_config};
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{Peer, PeerRole};
use minikv_proto::raftpb::ConfChangeType;

#[test]
fn puts_replicate_to_every_store_and_reads_see_them() {
    let mut c = Cluster::new(3, 3, 1, test_config());
    c.wait_leader(100);
    for i in 0..20u32 {
        c.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    assert_eq!(c.get(b"k7"), Some(b"v7".to_vec()));
    assert_eq!(c.get(b"missing"), None);
    c.run_ticks(10);
    for id in 1..=3 {
        assert_eq!(c.engine_get(id, b"k19"), Some(b"v19".to_vec()), "store {id}");
        let st = c.store(id).peer_status(REGION_ID).unwrap();
        assert_eq!(
            st.applied_index,
            c.store(c.leader().unwrap()).peer_status(REGION_ID).unwrap().applied_index
        );
    }
}

#[test]
fn follower_answers_not_leader_with_the_leader() {
    let mut c = Cluster::new(3, 3, 2, test_config());
    let leader = c.wait_leader(100);
    c.put(b"a", b"1");
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let cmd = minikv_proto::raft_cmdpb::RaftCmdRequest {
        header: c.header(follower),
        requests: vec![get_req(b"a")],
        admin: None,
    };
    match c.propose(follower, cmd) {
        Err(RegionError::NotLeader { region_id, leader: Some(l) }) => {
            assert_eq!(region_id, REGION_ID);
            assert_eq!(l.store_id, leader);
        }
        other => panic!("expected NotLeader with a hint, got {other:?}"),
    }
}

#[test]
fn partitioned_minority_serves_nothing_while_majority_commits() {
    let mut c = Cluster::new(3, 3, 3, test_config());
    let old = c.wait_leader(100);
    c.put(b"x", b"before");
    let others: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    c.partition(&[old], &others);
    // The isolated leader accepts a proposal but can never commit it or confirm a read.
    let w = c.propose(
        old,
        minikv_proto::raft_cmdpb::RaftCmdRequest {
            header: c.header(old),
            requests: vec![put_req(b"x", b"minority")],
            admin: None,
        },
    );
    let r = c.propose(
        old,
        minikv_proto::raft_cmdpb::RaftCmdRequest {
            header: c.header(old),
            requests: vec![get_req(b"x")],
            admin: None,
        },
    );
    c.run_ticks(60);
    let new = c.leader().unwrap();
    assert_ne!(new, old, "the majority elected a new leader");
    c.put(b"x", b"majority");
    assert_eq!(c.get(b"x"), Some(b"majority".to_vec()));
    for token in [w, r].into_iter().flatten() {
        if let Some((_, resp)) = c.responses.get(&token) {
            assert!(resp.header.error.is_some(), "the minority answered successfully: {resp:?}");
        }
    }
    assert_ne!(c.engine_get(old, b"x"), Some(b"minority".to_vec()));
    c.heal();
    c.run_ticks(60);
    assert_eq!(c.engine_get(old, b"x"), Some(b"majority".to_vec()), "the old leader caught up");
}

#[test]
fn server_is_busy_at_the_queue_bound() {
    let config =
        minikv_raftstore::StoreConfig { max_pending_proposals_per_peer: 4, ..test_config() };
    let mut c = Cluster::new(3, 3, 4, config);
    let leader = c.wait_leader(100);
    let mut tokens = Vec::new();
    for i in 0..4u8 {
        let cmd = minikv_proto::raft_cmdpb::RaftCmdRequest {
            header: c.header(leader),
            requests: vec![put_req(&[i], b"v")],
            admin: None,
        };
        tokens.push(c.store_mut(leader).propose(cmd, minikv_raftstore::ReqToken(100 + i as u64)));
    }
    assert!(tokens.iter().all(Result::is_ok), "{tokens:?}");
    let cmd = minikv_proto::raft_cmdpb::RaftCmdRequest {
        header: c.header(leader),
        requests: vec![put_req(b"over", b"v")],
        admin: None,
    };
    assert!(matches!(
        c.store_mut(leader).propose(cmd, minikv_raftstore::ReqToken(200)),
        Err(RegionError::ServerIsBusy { .. })
    ));
    c.run_ticks(5);
    c.put(b"after", b"ok");
}

#[test]
fn the_leader_reports_a_silent_peer_and_one_that_needs_a_snapshot() {
    let config = minikv_raftstore::StoreConfig {
        raft_log_gc_count_limit: 5,
        raft_log_gc_threshold_entries: 2,
        ..test_config()
    };
    let mut c = Cluster::new(3, 3, 7, config);
    let leader = c.wait_leader(100);
    c.put(b"k", b"v0");
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    let status = c.store(leader).peer_status(1).unwrap();
    assert!(status.pending_peers.is_empty(), "{status:?}");
    assert!(status.silent_ticks.values().all(|t| *t < 5), "{status:?}");
    c.partition(&[lagging], &(1..=3).filter(|id| *id != lagging).collect::<Vec<_>>());
    for i in 0..40 {
        c.put(b"k", format!("v{i}").as_bytes());
    }
    c.run_ticks(30);
    let status = c.store(leader).peer_status(1).unwrap();
    let pending: Vec<u64> = status.pending_peers.iter().map(|p| p.store_id).collect();
    assert_eq!(pending, vec![lagging], "the leader compacted past it: {status:?}");
    let silent: Vec<(u64, u64)> = status.silent_ticks.iter().map(|(p, t)| (*p, *t)).collect();
    let lagging_peer = status.region.peer_on_store(lagging).unwrap().id;
    for (peer, ticks) in silent {
        if peer == lagging_peer {
            assert!(ticks >= 30, "peer {peer} silent for {ticks} ticks: {status:?}");
        } else {
            assert!(ticks < 5, "peer {peer} silent for {ticks} ticks: {status:?}");
        }
    }
    // A follower knows of no silence or lag: only the leader reports them.
    let other = (1..=3).find(|id| *id != leader && *id != lagging).unwrap();
    let follower = c.store(other).peer_status(1).unwrap();
    assert!(follower.silent_ticks.is_empty() && follower.pending_peers.is_empty());
    c.heal();
    c.run_ticks(60);
    let status = c.store(leader).peer_status(1).unwrap();
    assert!(status.pending_peers.is_empty(), "caught up by a snapshot: {status:?}");
    assert!(status.silent_ticks.values().all(|t| *t < 5), "{status:?}");
}

#[test]
fn a_peer_added_late_is_silent_only_since_it_joined() {
    let mut c = Cluster::new(3, 2, 7, test_config());
    let leader = c.wait_leader(100);
    c.put(b"k", b"v");
    c.run_ticks(100);
    let voters: Vec<u64> = c.region(leader).peers.iter().map(|p| p.store_id).collect();
    let spare = (1..=3).find(|id| !voters.contains(id)).unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != spare).collect();
    c.partition(&[spare], &others);
    let learner = Peer { id: 30, store_id: spare, role: PeerRole::Learner };
    c.change_peer(ConfChangeType::AddLearnerNode, learner);
    c.run_ticks(3);
    let status = c.store(leader).peer_status(1).unwrap();
    let silent = status.silent_ticks.get(&30).copied();
    assert!(silent.is_some_and(|t| t <= 5), "silent since it joined, not since tick 0: {status:?}");
}
