//! Uninitialized peers: a (pre-)vote request creates one, it votes, its vote survives a restart
//! of its store, tombstones keep stale vote requests from re-creating it, and a region whose
//! other voter lost its leadership elects again through it.

mod common;

use std::sync::Arc;

use common::{Cluster, REGION_ID, test_config};
use minikv_engine::{Cf, Engine, SimDisk, SimDiskConfig};
use minikv_proto::metapb::{Peer, PeerRole, RegionEpoch};
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_raft::{ConfChangeType, Message, MessageType};
use minikv_raftstore::{RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, Store, keys};

/// This store's id and the uninitialized peer the messages address on it.
const STORE: u64 = 3;
const NEW_PEER: Peer = Peer { id: 1023, store_id: STORE, role: PeerRole::Voter };
/// Two candidates of the region, on other stores.
const ALICE: Peer = Peer { id: 1, store_id: 1, role: PeerRole::Voter };
const BOB: Peer = Peer { id: 5, store_id: 5, role: PeerRole::Voter };
/// The epoch the candidates know: the one that added `NEW_PEER`.
const EPOCH: RegionEpoch = RegionEpoch { conf_ver: 3, version: 1 };

fn open(disk: &SimDisk) -> Store {
    let engine = Arc::new(Engine::open(disk.clone()).expect("open engine"));
    Store::open(STORE, engine, test_config()).expect("open store")
}

/// A (pre-)vote request from `from` in `term` for a candidate whose log ends where a
/// bootstrapped region's log starts.
fn vote_request(msg_type: MessageType, from: &Peer, term: u64) -> RaftMessage {
    RaftMessage {
        region_id: REGION_ID,
        from_peer: from.clone(),
        to_peer: NEW_PEER,
        region_epoch: EPOCH,
        message: Message {
            msg_type,
            to: NEW_PEER.id,
            from: from.id,
            term,
            log_term: RAFT_INIT_LOG_TERM,
            index: RAFT_INIT_LOG_INDEX,
            ..Default::default()
        },
        is_tombstone: false,
        snapshot_chunk: None,
    }
}

/// Delivers `msg`, runs the Readies and returns the answer `msg`'s sender gets, as
/// `(type, term, reject)`, if any.
fn ask(store: &mut Store, msg: RaftMessage) -> Option<(MessageType, u64, bool)> {
    let to = msg.from_peer.clone();
    store.on_raft_message(msg).expect("on_raft_message");
    while store.has_ready() {
        store.handle_ready().expect("handle_ready");
    }
    let answers: Vec<_> = store.take_outbound().into_iter().filter(|m| m.to_peer == to).collect();
    assert!(answers.len() <= 1, "one answer per request: {answers:?}");
    answers.first().map(|m| (m.message.msg_type, m.message.term, m.message.reject))
}

#[test]
fn pre_vote_and_vote_requests_create_an_uninitialized_peer_that_votes() {
    let mut store = open(&SimDisk::new(1, SimDiskConfig::default()));
    assert!(store.region_ids().is_empty());
    let answer = ask(&mut store, vote_request(MessageType::RequestPreVote, &ALICE, 7));
    assert_eq!(answer, Some((MessageType::RequestPreVoteResponse, 7, false)));
    assert_eq!(store.region_ids(), vec![REGION_ID]);
    assert_eq!(store.stats().peers_created, 1);
    let status = store.peer_status(REGION_ID).unwrap();
    assert_eq!(status.peer, NEW_PEER);
    assert_eq!(status.term, 0, "a pre-vote does not move the term");
    assert!(status.region.peers.is_empty(), "the peer is uninitialized");

    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &ALICE, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, false)));
    assert_eq!(store.stats().peers_created, 1, "the same peer answered");
    assert_eq!(store.peer_status(REGION_ID).unwrap().term, 7);
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &BOB, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, true)), "one vote per term");
}

#[test]
fn an_uninitialized_peer_remembers_its_vote_across_a_power_loss() {
    let disk = SimDisk::new(2, SimDiskConfig::default());
    let mut store = open(&disk);
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &ALICE, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, false)));
    // The vote was synced before its answer could leave: a power loss keeps it.
    drop(store);
    disk.crash();
    let mut store = open(&disk);
    assert!(store.region_ids().is_empty(), "an uninitialized peer is re-created by a message");
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &BOB, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, true)), "voted for alice");
    assert_eq!(store.peer_status(REGION_ID).unwrap().term, 7, "the term came back too");
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &ALICE, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, false)), "a repeat is fine");
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &BOB, 8));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 8, false)), "a new term");
}

#[test]
fn a_destroyed_uninitialized_peer_is_not_re_created_by_a_stale_vote_request() {
    let disk = SimDisk::new(3, SimDiskConfig::default());
    let mut store = open(&disk);
    ask(&mut store, vote_request(MessageType::RequestVote, &ALICE, 7));
    let raft_state = keys::raft_state_key(REGION_ID);
    assert!(store.engine().get(Cf::Raft, &raft_state).unwrap().is_some(), "the vote is on disk");
    // The leader of a later configuration tells the peer it was removed.
    let tombstone = RaftMessage {
        region_epoch: RegionEpoch { conf_ver: EPOCH.conf_ver + 1, ..EPOCH },
        is_tombstone: true,
        ..vote_request(MessageType::Heartbeat, &ALICE, 8)
    };
    store.on_raft_message(tombstone).unwrap();
    assert!(store.is_tombstone(REGION_ID));
    assert_eq!(store.stats().peers_destroyed, 1);
    assert_eq!(store.engine().get(Cf::Raft, &raft_state).unwrap(), None, "its vote is gone");
    for restart in [false, true] {
        if restart {
            drop(store);
            disk.crash();
            store = open(&disk);
            assert!(store.is_tombstone(REGION_ID), "the tombstone is durable");
        }
        for msg_type in [MessageType::RequestPreVote, MessageType::RequestVote] {
            let answer = ask(&mut store, vote_request(msg_type, &BOB, 9));
            assert_eq!(answer, None, "{msg_type:?} after restart={restart}");
            assert!(store.region_ids().is_empty(), "{msg_type:?} after restart={restart}");
        }
    }
    // A newer peer on this store (a later configuration) is created, with a fresh hard state.
    let newer = Peer { id: NEW_PEER.id + 10, ..NEW_PEER };
    let msg = RaftMessage {
        to_peer: newer.clone(),
        region_epoch: RegionEpoch { conf_ver: EPOCH.conf_ver + 2, ..EPOCH },
        message: Message {
            to: newer.id,
            ..vote_request(MessageType::RequestVote, &BOB, 9).message
        },
        ..vote_request(MessageType::RequestVote, &BOB, 9)
    };
    let answer = ask(&mut store, msg);
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 9, false)));
    assert_eq!(store.peer_status(REGION_ID).unwrap().peer, newer);
}

#[test]
fn a_tombstone_from_a_view_older_than_the_one_that_added_the_peer_leaves_it_alone() {
    // A store restarted behind (it lost the apply of the change adding the peer) sees a
    // message from the new peer and, the peer not being a member in its view, sends it a
    // tombstone. Destroying the peer for it would leave a tombstone that keeps the member from
    // ever being created again (chaos seed 385: the region could never converge).
    let disk = SimDisk::new(4, SimDiskConfig::default());
    let mut store = open(&disk);
    ask(&mut store, vote_request(MessageType::RequestVote, &ALICE, 7));
    let behind = RaftMessage {
        region_epoch: RegionEpoch { conf_ver: EPOCH.conf_ver - 1, ..EPOCH },
        is_tombstone: true,
        ..vote_request(MessageType::Heartbeat, &BOB, 7)
    };
    store.on_raft_message(behind).unwrap();
    assert!(!store.is_tombstone(REGION_ID));
    assert_eq!(store.peer_status(REGION_ID).unwrap().peer, NEW_PEER);
    // It still answers as the member it is (its vote of term 7 stands).
    let answer = ask(&mut store, vote_request(MessageType::RequestVote, &BOB, 7));
    assert_eq!(answer, Some((MessageType::RequestVoteResponse, 7, true)));
    // One from the view that added it proves nothing either; a newer one removes it.
    for (conf_ver, removed) in [(EPOCH.conf_ver, false), (EPOCH.conf_ver + 1, true)] {
        let tombstone = RaftMessage {
            region_epoch: RegionEpoch { conf_ver, ..EPOCH },
            is_tombstone: true,
            ..vote_request(MessageType::Heartbeat, &BOB, 7)
        };
        store.on_raft_message(tombstone).unwrap();
        assert_eq!(store.is_tombstone(REGION_ID), removed, "conf_ver {conf_ver}");
    }
}

#[test]
fn a_removed_peer_is_not_re_created_by_a_vote_request_of_its_old_configuration() {
    let mut c = Cluster::new(3, 3, 41, test_config());
    let leader = c.wait_leader(100);
    c.put(b"k", b"v");
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    let old = c.region(leader);
    let candidate = old.peer_on_store(leader).unwrap().clone();
    let removed = old.peer_on_store(victim).unwrap().clone();
    c.change_peer(ConfChangeType::RemoveNode, removed.clone());
    c.run_ticks(40);
    assert!(c.store(victim).is_tombstone(REGION_ID));
    let status = c.store(leader).peer_status(REGION_ID).unwrap();
    for msg_type in [MessageType::RequestPreVote, MessageType::RequestVote] {
        let msg = RaftMessage {
            region_id: REGION_ID,
            from_peer: candidate.clone(),
            to_peer: removed.clone(),
            region_epoch: old.epoch,
            message: Message {
                msg_type,
                to: removed.id,
                from: candidate.id,
                term: status.term + 1,
                log_term: status.term,
                index: status.last_index,
                ..Default::default()
            },
            is_tombstone: false,
            snapshot_chunk: None,
        };
        let dropped = c.store(victim).stats().messages_dropped;
        c.store_mut(victim).on_raft_message(msg).unwrap();
        assert!(c.store(victim).is_tombstone(REGION_ID), "{msg_type:?}");
        assert_eq!(c.store(victim).stats().messages_dropped, dropped + 1, "{msg_type:?}");
        assert!(!c.store(victim).has_ready(), "{msg_type:?}");
    }
}

/// The shape of chaos seed 417: the region is down to two voters, one of them added on a store
/// that never received the region. Once the other voter's leadership lapses (check-quorum),
/// only a vote of the new peer can elect a leader, and its store learns of the region from the
/// vote request itself.
#[test]
fn a_voter_whose_store_never_got_the_region_votes_and_the_region_elects_again() {
    let mut c = Cluster::new(3, 2, 42, test_config());
    let leader = c.wait_leader(100);
    c.put(b"before", b"1");
    let other = if leader == 1 { 2 } else { 1 };
    c.partition(&[3], &[1, 2]);
    c.change_peer(ConfChangeType::AddNode, Peer { id: 1003, store_id: 3, role: PeerRole::Voter });
    let region = c.change_peer(
        ConfChangeType::RemoveNode,
        Peer { id: other, store_id: other, role: PeerRole::Voter },
    );
    assert_eq!(region.peers.len(), 2, "{region:?}");
    c.run_ticks(40);
    assert_eq!(c.leader(), None, "check-quorum: the leader stepped down");
    assert!(c.store(3).region_ids().is_empty(), "store 3 never heard of the region");
    c.heal();
    let new_leader = c.wait_leader(300);
    assert_eq!(new_leader, leader, "the peer with the log wins");
    c.put(b"after", b"2");
    c.run_ticks(40);
    assert_eq!(c.engine_get(3, b"before"), Some(b"1".to_vec()), "the new peer got a snapshot");
    assert_eq!(c.engine_get(3, b"after"), Some(b"2".to_vec()));
}
