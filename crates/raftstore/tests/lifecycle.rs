//! Crash recovery, log GC with chunked snapshots, membership change, stale peer GC and leader
//! transfer; a disk that fails under a store; a crash in the middle of a peer's self-removal.

mod common;

use std::sync::Arc;

use common::{Cluster, REGION_ID, get_req, put_req, test_config};
use minikv_engine::{Cf, Engine, SimDisk};
use minikv_proto::decode;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{Peer, PeerRole, RegionEpoch};
use minikv_proto::raft_cmdpb::{AdminRequest, RaftCmdRequest};
use minikv_proto::raft_serverpb::{RaftMessage, RegionLocalState};
use minikv_raft::{ConfChangeType, Message, MessageType};
use minikv_raftstore::{Store, StoreConfig, keys};

fn gc_config() -> StoreConfig {
    StoreConfig {
        raft_log_gc_count_limit: 20,
        raft_log_gc_threshold_entries: 10,
        snapshot_chunk_size_bytes: 256,
        ..test_config()
    }
}

#[test]
fn crash_of_every_store_recovers_all_acknowledged_writes() {
    let mut c = Cluster::new(3, 3, 11, test_config());
    c.wait_leader(100);
    for i in 0..30u32 {
        c.put(format!("k{i:02}").as_bytes(), format!("v{i}").as_bytes());
    }
    for id in 1..=3 {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    c.wait_leader(200);
    for i in 0..30u32 {
        assert_eq!(
            c.get(format!("k{i:02}").as_bytes()),
            Some(format!("v{i}").into_bytes()),
            "k{i:02}"
        );
    }
    c.put(b"after", b"restart");
    assert_eq!(c.get(b"after"), Some(b"restart".to_vec()));
}

#[test]
fn log_gc_bounds_the_log_and_a_lagging_peer_catches_up_by_chunked_snapshot() {
    let mut c = Cluster::new(3, 3, 12, gc_config());
    let leader = c.wait_leader(100);
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    c.crash(lagging);
    for i in 0..120u32 {
        c.put(format!("key{i:03}").as_bytes(), &[b'x'; 40]);
    }
    c.run_ticks(20);
    let st = c.store(leader).peer_status(REGION_ID).unwrap();
    assert!(
        st.applied_index - st.truncated_index <= 2 * gc_config().raft_log_gc_count_limit,
        "log not bounded: applied {} truncated {}",
        st.applied_index,
        st.truncated_index
    );
    assert!(st.truncated_index > 100, "log was never compacted: {st:?}");
    c.restart(lagging);
    c.run_ticks(80);
    let stats = c.store(leader).stats().clone();
    assert!(
        stats.snapshots_sent >= 1 && stats.snapshot_chunks_sent > stats.snapshots_sent,
        "{stats:?}"
    );
    assert!(c.store(lagging).stats().snapshots_received >= 1);
    assert_eq!(c.engine_get(lagging, b"key119"), Some(vec![b'x'; 40]));
    assert_eq!(c.engine_get(lagging, b"key000"), Some(vec![b'x'; 40]));
    // The caught-up peer survives another crash with its snapshot-installed state.
    c.crash(lagging);
    c.restart(lagging);
    assert_eq!(c.engine_get(lagging, b"key050"), Some(vec![b'x'; 40]));
}

#[test]
fn add_learner_promote_and_remove_bump_conf_ver_and_destroy_data() {
    let mut c = Cluster::new(5, 3, 13, gc_config());
    c.wait_leader(100);
    for i in 0..40u32 {
        c.put(format!("k{i:02}").as_bytes(), b"v");
    }
    let conf_ver0 = c.region(c.leader().unwrap()).epoch.conf_ver;
    let stale_header = c.header(c.leader().unwrap());
    let region = c.change_peer(
        ConfChangeType::AddLearnerNode,
        Peer { id: 4, store_id: 4, role: PeerRole::Learner },
    );
    assert_eq!(region.epoch.conf_ver, conf_ver0 + 1);
    c.run_ticks(40);
    assert_eq!(
        c.engine_get(4, b"k39"),
        Some(b"v".to_vec()),
        "the learner got the data by snapshot"
    );
    let region =
        c.change_peer(ConfChangeType::AddNode, Peer { id: 4, store_id: 4, role: PeerRole::Voter });
    assert_eq!(region.epoch.conf_ver, conf_ver0 + 2);
    assert_eq!(region.peer_on_store(4).unwrap().role, PeerRole::Voter);
    let region =
        c.change_peer(ConfChangeType::AddNode, Peer { id: 5, store_id: 5, role: PeerRole::Voter });
    assert_eq!(region.epoch.conf_ver, conf_ver0 + 3);
    c.put(b"five", b"voters");
    c.run_ticks(40);
    assert_eq!(c.engine_get(5, b"five"), Some(b"voters".to_vec()));
    // A request carrying the old epoch is refused.
    let leader = c.leader().unwrap();
    let stale = RaftCmdRequest {
        header: minikv_proto::raft_cmdpb::RaftRequestHeader {
            peer: c.region(leader).peer_on_store(leader).unwrap().clone(),
            ..stale_header
        },
        requests: vec![],
        admin: Some(AdminRequest::ChangePeer {
            change_type: ConfChangeType::RemoveNode,
            peer: Peer { id: 5, store_id: 5, role: PeerRole::Voter },
        }),
    };
    match c.propose(leader, stale) {
        Err(RegionError::EpochNotMatch { current_regions }) => {
            assert_eq!(current_regions[0].epoch.conf_ver, conf_ver0 + 3);
        }
        other => panic!("expected EpochNotMatch, got {other:?}"),
    }
    // Remove a follower: its store destroys the peer and its data.
    let victim = (1..=5).find(|id| *id != leader).unwrap();
    let region = c.change_peer(
        ConfChangeType::RemoveNode,
        Peer { id: victim, store_id: victim, role: PeerRole::Voter },
    );
    assert_eq!(region.epoch.conf_ver, conf_ver0 + 4);
    c.run_ticks(60);
    assert!(c.store(victim).is_tombstone(REGION_ID), "removed peer destroyed");
    assert_eq!(c.engine_get(victim, b"k00"), None, "removed peer's data deleted");
    assert!(matches!(
        c.store_mut(victim).propose(RaftCmdRequest::default(), minikv_raftstore::ReqToken(1)),
        Err(RegionError::RegionNotFound { .. })
    ));
    // It stays destroyed across a restart, and the region keeps serving.
    c.crash(victim);
    c.restart(victim);
    assert!(c.store(victim).is_tombstone(REGION_ID));
    c.put(b"after-remove", b"ok");
    assert_eq!(c.get(b"k10"), Some(b"v".to_vec()));
}

#[test]
fn removed_peer_that_missed_its_removal_is_destroyed_by_tombstone() {
    let mut c = Cluster::new(3, 3, 14, test_config());
    let leader = c.wait_leader(100);
    c.put(b"a", b"1");
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != victim).collect();
    c.partition(&[victim], &others);
    c.change_peer(
        ConfChangeType::RemoveNode,
        Peer { id: victim, store_id: victim, role: PeerRole::Voter },
    );
    c.put(b"b", b"2");
    assert!(!c.store(victim).is_tombstone(REGION_ID), "partitioned: it cannot know yet");
    c.heal();
    c.run_ticks(100);
    assert!(c.store(victim).is_tombstone(REGION_ID), "tombstone reached the removed peer");
    assert_eq!(c.engine_get(victim, b"a"), None);
}

#[test]
fn leader_transfer_moves_leadership() {
    let mut c = Cluster::new(3, 3, 15, test_config());
    let leader = c.wait_leader(100);
    c.put(b"k", b"v");
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let peer = c.region(leader).peer_on_store(target).unwrap().clone();
    c.call(leader, vec![], Some(AdminRequest::TransferLeader { peer })).expect("transfer accepted");
    c.run_ticks(20);
    assert_eq!(c.leader(), Some(target));
    assert_eq!(c.get(b"k"), Some(b"v".to_vec()));
}

#[test]
fn key_outside_region_stale_version_and_unknown_region_are_refused() {
    let mut c = Cluster::with_region_end(3, 3, 16, test_config(), b"m".to_vec());
    let leader = c.wait_leader(100);
    let mut cmd =
        RaftCmdRequest { header: c.header(leader), requests: vec![get_req(b"k")], admin: None };
    cmd.header.region_id = 99;
    assert_eq!(c.propose(leader, cmd), Err(RegionError::RegionNotFound { region_id: 99 }));
    let cmd = RaftCmdRequest {
        header: c.header(leader),
        requests: vec![put_req(b"z", b"v")],
        admin: None,
    };
    match c.propose(leader, cmd) {
        Err(RegionError::KeyNotInRegion { key, end_key, .. }) => {
            assert_eq!((key, end_key), (b"z".to_vec(), b"m".to_vec()));
        }
        other => panic!("expected KeyNotInRegion, got {other:?}"),
    }
    let mut cmd = RaftCmdRequest {
        header: c.header(leader),
        requests: vec![put_req(b"a", b"v")],
        admin: None,
    };
    cmd.header.region_epoch.version -= 1;
    assert!(matches!(c.propose(leader, cmd), Err(RegionError::EpochNotMatch { .. })));
    c.put(b"a", b"v");
    assert_eq!(c.get(b"a"), Some(b"v".to_vec()));
}

#[test]
fn opening_a_store_over_unreadable_sectors_fails_with_an_error_never_a_panic() {
    let mut c = Cluster::new(3, 3, 23, test_config());
    c.wait_leader(100);
    for i in 0..20u32 {
        c.put(format!("k{i:02}").as_bytes(), &[b'v'; 100]);
    }
    c.crash(1);
    let disk: SimDisk = c.nodes[&1].disk.clone();
    let sectors = disk.durable_len_bytes().div_ceil(4096);
    assert!(sectors > 2, "a store writes more than a header");
    let (mut opened, mut failed) = (0, 0);
    for sector in 0..sectors {
        disk.clear_read_errors();
        disk.inject_read_error(sector * 4096);
        // Either layer may meet the bad sector; each must answer with an error.
        let Ok(engine) = Engine::open(disk.clone()) else {
            failed += 1;
            continue;
        };
        match Store::open(1, Arc::new(engine), test_config()) {
            Ok(_) => opened += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "no sector of {sectors} was needed to open the store");
    assert!(opened + failed == sectors);
    disk.clear_read_errors();
    let engine = Arc::new(Engine::open(disk.clone()).expect("a healthy disk opens"));
    let store = Store::open(1, engine, test_config()).expect("a healthy store opens");
    assert!(store.peer_status(REGION_ID).unwrap().applied_index > 20);
}

#[test]
fn an_engine_reopened_behind_the_stores_back_poisons_the_store() {
    // An engine that fails an operation reopens from its disk, dropping its unsynced writes.
    // The store's memory (applied index, answered proposals) counts those writes as done, so
    // any reopen, even after a failure the store never saw, must stop the store.
    let mut c = Cluster::new(3, 3, 29, test_config());
    c.wait_leader(100);
    for i in 0..10u32 {
        c.put(format!("k{i:02}").as_bytes(), b"v");
    }
    c.crash(1);
    let disk: SimDisk = c.nodes[&1].disk.clone();
    let engine = Arc::new(Engine::open(disk.clone()).expect("reopens after the crash"));
    let store = Store::open(1, engine.clone(), test_config()).expect("store reopens");
    assert!(!store.is_poisoned());
    // Snapshot generation (whose failure Raft only retries) flushes the memtable first, and
    // the flush meets unreadable sectors.
    for sector in 0..disk.durable_len_bytes().div_ceil(4096) {
        disk.inject_read_error(sector * 4096);
    }
    assert!(engine.snapshot().is_err(), "the flush reads sectors that fail");
    assert!(engine.stats().reopens > 0, "the failed read reopened the engine");
    disk.clear_read_errors();
    assert!(store.is_poisoned(), "the store serves on over an engine that lost its writes");
}

/// Region 1 on three stores; store 3's peer leads it and proposes its own removal, so that it
/// applies the removal itself (a removed follower seldom does: the leader stops sending to it
/// once it applied the change, and it learns of it from a tombstone message). The Ready that
/// applies the removal also persists a new entry, so its write is synced (as a follower's is
/// when the commit comes with entries). With `crash_at`, store 3's disk crashes at that backend
/// operation from that Ready on.
fn remove_store_3(crash_at: Option<u64>) -> Cluster {
    let mut c = Cluster::new(3, 3, 31, test_config());
    let leader = c.wait_leader(100);
    if leader != 3 {
        let peer = c.region(leader).peer_on_store(3).unwrap().clone();
        c.call(leader, vec![], Some(AdminRequest::TransferLeader { peer })).expect("transfer");
        c.run_ticks(20);
    }
    assert_eq!(c.leader(), Some(3));
    for i in 0..10u32 {
        c.put(format!("k{i:02}").as_bytes(), b"v");
    }
    c.run_ticks(10);
    c.fail_stop.insert(3);
    c.held.extend([(1, 3), (2, 3)]);
    let removal = RaftCmdRequest {
        header: c.header(3),
        requests: vec![],
        admin: Some(AdminRequest::ChangePeer {
            change_type: ConfChangeType::RemoveNode,
            peer: Peer { id: 3, store_id: 3, role: PeerRole::Voter },
        }),
    };
    c.propose(3, removal).expect("the leader accepts its removal");
    c.pump();
    // The followers' acknowledgements commit the removal; a put proposed meanwhile puts a new
    // entry in the Ready that applies it.
    c.held.clear();
    for ack in c.take_held() {
        c.store_mut(3).on_raft_message(ack).expect("an acknowledgement");
    }
    let put =
        RaftCmdRequest { header: c.header(3), requests: vec![put_req(b"k99", b"v")], admin: None };
    c.propose(3, put).expect("the leader accepts a put");
    if let Some(ops) = crash_at {
        c.nodes[&3].disk.crash_after_ops(ops);
    }
    c.run_ticks(30);
    c
}

/// What store 3's disk says about region 1: its region state, and whether its raft keys
/// (log, raft and apply state) are still there.
fn region_on_disk(engine: &Engine) -> (Option<RegionLocalState>, bool) {
    let state = engine.get(Cf::Raft, &keys::region_state_key(REGION_ID)).unwrap();
    let (start, end) = keys::region_raft_range(REGION_ID);
    let raft_keys = !engine.scan(Cf::Raft, &start, Some(&end), 1).unwrap().is_empty();
    (state.map(|bytes| decode(&bytes).unwrap()), raft_keys)
}

#[test]
fn a_crash_between_applying_self_removal_and_destroying_the_peer_leaves_a_tombstone() {
    let mut crashes = 0;
    let mut between = 0;
    let mut finished = false;
    for crash_at in 0..50 {
        let mut c = remove_store_3(Some(crash_at));
        let disk = c.nodes[&3].disk.clone();
        if disk.crash_armed() {
            finished = true; // Store 3 finished the removal before the crash point.
            break;
        }
        crashes += 1;
        assert!(!c.is_up(3), "crash at op {crash_at}: store 3 crashed but stayed up");
        let engine = Arc::new(Engine::open(disk.clone()).expect("reopens after a crash"));
        let (state, raft_keys) = region_on_disk(&engine);
        let state = state.expect("region 1 was bootstrapped on store 3");
        // The removal applied, the peer not yet destroyed.
        if state.region.peer_on_store(3).is_none() && raft_keys {
            between += 1;
        }
        let store = Store::open(3, engine, c.config.clone()).expect("store 3 reopens");
        c.nodes.get_mut(&3).unwrap().store = Some(store);
        // A crash before the removal's apply was written leaves the peer to the others: the
        // removal is in their logs, their new leader commits it and tells store 3.
        c.run_ticks(90);
        let store = c.store(3);
        assert!(store.is_tombstone(REGION_ID), "crash at op {crash_at}: region 1 still hosted");
        assert!(store.region_ids().is_empty());
        let engine = store.engine().clone();
        assert!(!region_on_disk(&engine).1, "crash at op {crash_at}: raft keys left");
        for cf in [Cf::Default, Cf::Lock, Cf::Write] {
            let left = engine.scan(cf, b"", None, usize::MAX).unwrap();
            assert!(left.is_empty(), "crash at op {crash_at}: data left in {cf:?}: {left:?}");
        }
        // A stale message to the removed peer does not bring it back.
        let leader = c.wait_leader(100);
        let stale = RaftMessage {
            region_id: REGION_ID,
            from_peer: c.region(leader).peer_on_store(leader).unwrap().clone(),
            to_peer: Peer { id: 3, store_id: 3, role: PeerRole::Voter },
            region_epoch: RegionEpoch { conf_ver: 1, version: 1 },
            message: Message {
                msg_type: MessageType::Heartbeat,
                to: 3,
                from: leader,
                term: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        c.store_mut(3).on_raft_message(stale).expect("a stale message is dropped");
        assert!(c.store(3).is_tombstone(REGION_ID), "crash at op {crash_at}: peer recreated");
        let cmd = RaftCmdRequest { header: c.header(leader), requests: vec![], admin: None };
        assert_eq!(
            c.store_mut(3).propose(cmd, minikv_raftstore::ReqToken(0)),
            Err(RegionError::RegionNotFound { region_id: REGION_ID })
        );
        c.put(b"after", b"removal");
        assert_eq!(c.get(b"k05"), Some(b"v".to_vec()));
    }
    assert!(finished, "store 3 never finished the removal within 50 operations");
    assert!(crashes > 0);
    assert!(between > 0, "no crash fell between applying the removal and destroying the peer");
}
