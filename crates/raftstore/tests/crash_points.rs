//! A power loss at every point of a store's engine writes: the store reopens with its apply
//! state never ahead of its log or its commit index (`PeerStorage` checks both on load),
//! serves again, and holds every write it acknowledged.

use std::sync::Arc;

use minikv_engine::{Engine, EngineConfig, SimDisk, SimDiskConfig};
use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};
use minikv_proto::raft_cmdpb::{CfName, RaftCmdRequest, RaftRequestHeader, Request, Response};
use minikv_raftstore::{ReqToken, Store, StoreConfig};

const REGION_ID: u64 = 1;

fn region() -> Region {
    Region {
        id: REGION_ID,
        start_key: vec![],
        end_key: vec![],
        epoch: RegionEpoch { conf_ver: 1, version: 1 },
        peers: vec![Peer { id: 1, store_id: 1, role: PeerRole::Voter }],
    }
}

fn put(key: &str) -> RaftCmdRequest {
    RaftCmdRequest {
        header: RaftRequestHeader {
            region_id: REGION_ID,
            peer: region().peers[0].clone(),
            region_epoch: region().epoch,
        },
        requests: vec![Request::Put {
            cf: CfName::Default,
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
        }],
        admin: None,
    }
}

fn config() -> StoreConfig {
    StoreConfig {
        raft_log_gc_count_limit: 3,
        raft_log_gc_tick_interval_ticks: 1,
        ..Default::default()
    }
}

/// Drives the single-voter store until it leads, then puts `keys` one by one (ticking between
/// them so log GC runs). Returns the keys acknowledged before the first engine error.
fn drive(store: &mut Store, keys: &[String]) -> Vec<String> {
    let mut acked = Vec::new();
    for _ in 0..50 {
        if store.is_leader(REGION_ID) {
            break;
        }
        store.tick();
        while store.has_ready() {
            if store.handle_ready().is_err() {
                return acked;
            }
        }
    }
    assert!(store.is_leader(REGION_ID), "a single voter elects itself");
    for (i, key) in keys.iter().enumerate() {
        store.propose(put(key), ReqToken(i as u64)).expect("the leader accepts");
        store.tick();
        while store.has_ready() {
            if store.handle_ready().is_err() {
                return acked;
            }
        }
        for (token, resp) in store.take_responses() {
            assert_eq!(resp.header.error, None);
            if resp.responses == vec![Response::Put] {
                acked.push(keys[token.0 as usize].clone());
            }
        }
    }
    acked
}

/// Every other run formats its disk with a one-sector write-ahead log and a tiny memtable, so
/// that crashes also land inside memtable flushes and log wrap-arounds.
fn engine_config(run: u64) -> EngineConfig {
    if run.is_multiple_of(2) {
        EngineConfig::default()
    } else {
        EngineConfig { wal_bytes: 4 << 10, memtable_bytes_max: 2 << 10, ..EngineConfig::default() }
    }
}

#[test]
fn a_crash_at_any_engine_operation_keeps_apply_behind_the_log_and_acked_writes() {
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let mut crashed_runs = 0;
    let mut flushes = 0;
    for crash_at in 0..240u64 {
        let disk = SimDisk::new(crash_at, SimDiskConfig::default());
        let engine = Arc::new(Engine::open_with(disk.clone(), engine_config(crash_at)).unwrap());
        let mut store = Store::open(1, engine.clone(), config()).unwrap();
        store.bootstrap_first_region(region()).unwrap();
        disk.crash_after_ops(crash_at);
        let acked = drive(&mut store, &keys);
        drop(store);
        flushes += engine.stats().flushes;
        if disk.crash_armed() {
            continue; // Finished before the crash point.
        }
        crashed_runs += 1;
        disk.crash();
        let engine = Arc::new(
            Engine::open_with(disk.clone(), engine_config(crash_at))
                .expect("reopens after a crash"),
        );
        let mut store = Store::open(1, engine.clone(), config()).expect("store reopens");
        // Applying may have to be redone from the log (an unsynced apply was lost): once the
        // store serves again, every acknowledged write is there.
        let more: Vec<String> = (0..2).map(|i| format!("after{i}")).collect();
        assert_eq!(drive(&mut store, &more), more, "crash at op {crash_at}: no service after");
        for key in &acked {
            let got = engine.get(minikv_engine::Cf::Default, key.as_bytes()).unwrap();
            assert_eq!(got, Some(b"v".to_vec()), "crash at op {crash_at}: acked {key} lost");
        }
    }
    assert!(crashed_runs > 200, "only {crashed_runs} of 240 runs reached their crash point");
    assert!(flushes > 0, "no run flushed its memtable");
}
