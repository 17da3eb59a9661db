//! Builders the cluster and schedule tests share: peers, regions, heartbeats, a cluster of
//! Up stores.

use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch, Store};
use minikv_proto::pdpb::{RegionHeartbeat, StoreStats};

use super::{Cluster, ClusterConfig};

/// Stores count as Down after this much silence in tests.
pub const TEST_MAX_STORE_DOWN_MS: u64 = 10_000;

pub fn voter(id: u64, store_id: u64) -> Peer {
    Peer { id, store_id, role: PeerRole::Voter }
}

pub fn learner(id: u64, store_id: u64) -> Peer {
    Peer { id, store_id, role: PeerRole::Learner }
}

/// A region `[start, end)` at epoch (conf_ver, version).
pub fn region(id: u64, start: &str, end: &str, epoch: (u64, u64), peers: Vec<Peer>) -> Region {
    Region {
        id,
        start_key: start.as_bytes().to_vec(),
        end_key: end.as_bytes().to_vec(),
        epoch: RegionEpoch { conf_ver: epoch.0, version: epoch.1 },
        peers,
    }
}

/// A heartbeat from the region's first peer as leader, at term 1.
pub fn heartbeat(region: Region) -> RegionHeartbeat {
    let leader = region.peers[0].clone();
    RegionHeartbeat { region, leader, term: 1, ..Default::default() }
}

/// A cluster of stores `1..=store_count`, all heartbeated at `now_ms`.
pub fn cluster_with_stores(store_count: u64, now_ms: u64) -> Cluster {
    let mut cluster = Cluster::new(ClusterConfig { max_store_down_ms: TEST_MAX_STORE_DOWN_MS });
    for id in 1..=store_count {
        cluster.put_store(Store { id, address: format!("store-{id}") }, now_ms).unwrap();
        heartbeat_store(&mut cluster, id, now_ms);
    }
    cluster
}

pub fn heartbeat_store(cluster: &mut Cluster, store_id: u64, now_ms: u64) {
    let stats = StoreStats { store_id, ..Default::default() };
    cluster.process_store_heartbeat(stats, now_ms).unwrap();
}

/// Puts a region in through a heartbeat, asserting it is accepted.
pub fn put_region(cluster: &mut Cluster, hb: &RegionHeartbeat) {
    cluster.process_region_heartbeat(hb, 0).expect("heartbeat accepted");
    cluster.regions().check_invariants();
}
