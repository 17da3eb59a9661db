//! Scheduling tests, by the behaviours TinyKV's and PD's checker and balancer tests check;
//! shared builders here.

mod balance;
mod replica;
mod scheduler;

use minikv_proto::metapb::{Peer, PeerRole};
use minikv_proto::pdpb::{OperatorStep, RegionHeartbeat, StoreStats};

use super::{OperatorController, ScheduleConfig, ScheduleView};
use crate::cluster::test_util::{TEST_MAX_STORE_DOWN_MS, cluster_with_stores, heartbeat_store};
use crate::cluster::{CachedRegion, Cluster};

/// The time the tests schedule at; stores heartbeated at 0 only are Down by then.
pub(super) const NOW_MS: u64 = 10 * TEST_MAX_STORE_DOWN_MS;

pub(super) fn config(max_replicas: usize) -> ScheduleConfig {
    ScheduleConfig { max_replicas, ..Default::default() }
}

/// Stores `1..=store_count`, all Up at `NOW_MS` except those in `down`.
pub(super) fn cluster(store_count: u64, down: &[u64]) -> Cluster {
    let mut cluster = cluster_with_stores(store_count, 0);
    for id in (1..=store_count).filter(|id| !down.contains(id)) {
        heartbeat_store(&mut cluster, id, NOW_MS);
    }
    cluster
}

/// The store reports itself busy and/or with a failing disk at `NOW_MS`.
pub(super) fn set_flags(cluster: &mut Cluster, store_id: u64, is_busy: bool, disk_failing: bool) {
    let stats = StoreStats { store_id, is_busy, disk_failing, ..Default::default() };
    cluster.process_store_heartbeat(stats, NOW_MS).unwrap();
}

/// Puts region `id` (keys `[r{id:04}, r{id+1:04})`) with voters `(peer id, store id)`, led by
/// the first, sized `size_bytes`.
pub(super) fn put_region(cluster: &mut Cluster, id: u64, voters: &[(u64, u64)], size_bytes: u64) {
    let peers = voters.iter().map(|(p, s)| Peer { id: *p, store_id: *s, role: PeerRole::Voter });
    put_region_with(cluster, id, peers.collect(), |hb| hb.approximate_size_bytes = size_bytes);
}

/// Puts region `id` with `peers`, led by the first, after `edit` adjusted its heartbeat.
pub(super) fn put_region_with(
    cluster: &mut Cluster,
    id: u64,
    peers: Vec<Peer>,
    edit: impl FnOnce(&mut RegionHeartbeat),
) {
    let region = crate::cluster::test_util::region(
        id,
        &format!("r{id:04}"),
        &format!("r{:04}", id + 1),
        (1, 1),
        peers,
    );
    let mut hb = crate::cluster::test_util::heartbeat(region);
    edit(&mut hb);
    crate::cluster::test_util::put_region(cluster, &hb);
}

/// A view of `cluster` at `NOW_MS` with no operators running.
pub(super) fn view<'a>(cluster: &'a Cluster, config: &'a ScheduleConfig) -> ScheduleView<'a> {
    ScheduleView::new(cluster, config, &OperatorController::new(config.operator_timeout_ms), NOW_MS)
}

/// Peer ids from `first` up.
pub(super) fn ids_from(first: u64) -> impl FnMut() -> Option<u64> {
    let mut next = first;
    move || {
        next += 1;
        Some(next - 1)
    }
}

/// What a store does with a step: the region as its next heartbeat reports it.
pub(super) fn apply_step(hb: &mut RegionHeartbeat, step: &OperatorStep) {
    match step {
        OperatorStep::AddLearner { peer } => {
            assert!(hb.region.peer_on_store(peer.store_id).is_none(), "{step:?} on a held store");
            hb.region.peers.push(peer.clone());
            hb.region.epoch.conf_ver += 1;
        }
        OperatorStep::PromoteLearner { peer } => {
            let held = hb.region.peers.iter_mut().find(|p| p.id == peer.id).expect("learner");
            assert_eq!(held.role, PeerRole::Learner);
            held.role = PeerRole::Voter;
            hb.region.epoch.conf_ver += 1;
        }
        OperatorStep::TransferLeader { to } => {
            assert!(hb.region.peers.contains(to), "{step:?} to a non-peer");
            hb.leader = to.clone();
            hb.term += 1;
        }
        OperatorStep::RemovePeer { peer } => {
            assert_ne!(hb.leader.id, peer.id, "{step:?} removes the leader");
            hb.region.peers.retain(|p| p.id != peer.id);
            hb.region.epoch.conf_ver += 1;
        }
    }
}

/// The heartbeat that reports `region` as PD holds it.
pub(super) fn heartbeat_of(region: &CachedRegion) -> RegionHeartbeat {
    RegionHeartbeat {
        region: region.region.clone(),
        leader: region.leader.clone().expect("a leader"),
        term: region.term,
        pending_peers: region.pending_peers.clone(),
        down_peers: region.down_peers.clone(),
        approximate_size_bytes: region.approximate_size_bytes,
        approximate_keys: region.approximate_keys,
    }
}

pub(super) fn voter(id: u64, store_id: u64) -> Peer {
    Peer { id, store_id, role: PeerRole::Voter }
}

pub(super) fn learner(id: u64, store_id: u64) -> Peer {
    Peer { id, store_id, role: PeerRole::Learner }
}
