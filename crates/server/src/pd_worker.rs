//! A store's placement-driver worker, a task beside the node: it bootstraps the cluster through
//! PD (the store that holds the first region, once), registers the store, and then every
//! heartbeat interval sends a store heartbeat and one region heartbeat per region this store
//! leads, carrying out each operator step PD answers with (a membership change or a leader
//! transfer, proposed to its own store through the ordinary client path, pinned to the region
//! epoch the step was chosen on). It reads the node only through its probe: the peers' states
//! and the engine, whose disk usage and region sizes the heartbeats carry.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minikv_client::{ClientConfig, RawClient};
use minikv_engine::{Cf, DiskUsage, Engine};
use minikv_pd::{PdClient, PdClientConfig, PdClientError};
use minikv_proto::metapb::{PeerRole, Region, Store, StoreId};
use minikv_proto::pdpb::{
    DownPeer, OperatorStep, PdError, PdRequest, PdResponse, RegionHeartbeat, StoreStats,
};
use minikv_proto::raftpb::ConfChangeType;
use minikv_raft::StateRole;
use minikv_raftstore::PeerStatus;
use minikv_runtime::Clock;

use crate::probe::{NodeProbe, ProbeState};

/// What a store's PD worker needs.
#[derive(Debug, Clone)]
pub struct PdWorkerConfig {
    /// This store, as PD registers it.
    pub store: Store,
    /// Where this store's node listens (steps are proposed to it).
    pub store_addr: SocketAddr,
    /// Every PD node's service address.
    pub pd_members: BTreeMap<u64, SocketAddr>,
    /// The region this store bootstrapped locally, to bootstrap the cluster with (the first
    /// store only, on its first boot).
    pub bootstrap_region: Option<Region>,
    pub heartbeat_interval_ms: u64,
    /// Length of one Raft tick (peers' silences are counted in ticks).
    pub raft_tick_ms: u64,
    /// A leader reports a peer it has not heard from for this long as down.
    pub peer_down_after_ms: u64,
}

/// Keys a region's approximate size is counted over at most; past it the size is scaled up
/// from what was counted (the region is then far above any split size anyway).
const SIZE_SCAN_KEYS_MAX: usize = 1 << 16;

/// What the previous heartbeat saw of the node, so that the next one reports what changed.
#[derive(Debug, Default)]
struct Seen {
    busy_rejections: u64,
    engine_reopens: u64,
}

/// Runs the worker until the node dies.
pub async fn run(config: PdWorkerConfig, clock: Clock, probe: NodeProbe) {
    let pd_config = PdClientConfig::new(config.pd_members.clone());
    let Ok(mut pd) = PdClient::connect(pd_config, clock.clone(), "0.0.0.0:0").await else {
        tracing::warn!(target: "minikv::trace", "store {}: PD worker cannot bind", config.store.id);
        return;
    };
    let mut own = ClientConfig::new(BTreeMap::from([(config.store.id, config.store_addr)]));
    own.request_timeout_ms = 500;
    own.rpc_timeout_ms = 250;
    let Ok(mut local) = RawClient::connect(own, clock.clone(), "0.0.0.0:0").await else {
        tracing::warn!(target: "minikv::trace", "store {}: PD worker cannot bind", config.store.id);
        return;
    };
    let sleep = |ms: u64| clock.sleep_until_ms(clock.now_ms() + ms);
    let store_id = config.store.id;
    if let Some(region) = &config.bootstrap_region {
        let request = PdRequest::Bootstrap { store: config.store.clone(), region: region.clone() };
        loop {
            match pd.call(request.clone()).await {
                Ok(_) | Err(PdClientError::Refused(PdError::AlreadyBootstrapped)) => break,
                Err(e) => tracing::debug!(target: "minikv::pd", "store {store_id}: bootstrap: {e}"),
            }
            sleep(config.heartbeat_interval_ms).await;
        }
        tracing::info!(target: "minikv::trace", "store {store_id}: PD cluster bootstrapped");
    }
    loop {
        match pd.call(PdRequest::PutStore { store: config.store.clone() }).await {
            Ok(_) => break,
            Err(e) => tracing::debug!(target: "minikv::pd", "store {store_id}: register: {e}"),
        }
        sleep(config.heartbeat_interval_ms).await;
    }
    let mut seen = Seen::default();
    loop {
        heartbeat(&mut pd, &mut local, &config, &probe, &mut seen).await;
        sleep(config.heartbeat_interval_ms).await;
    }
}

/// The store's heartbeat: its disk, its regions and leaders, and whether it refused requests
/// for being busy or met disk errors since the last heartbeat.
fn store_stats(store_id: StoreId, state: &ProbeState, seen: &mut Seen) -> StoreStats {
    let usage = state.engine.as_ref().map(|e| e.disk().usage());
    let (used_bytes, capacity_bytes, usage_failed) = match usage {
        Some(Ok(DiskUsage { used_bytes, capacity_bytes })) => {
            (used_bytes, capacity_bytes.unwrap_or(u64::MAX), false)
        }
        Some(Err(_)) => (0, u64::MAX, true),
        None => (0, u64::MAX, false),
    };
    let reopens = state.engine.as_ref().map_or(seen.engine_reopens, |e| e.stats().reopens);
    // A restarted node has a new engine whose count starts again.
    let disk_failing = usage_failed || reopens > seen.engine_reopens;
    let is_busy = state.busy_rejections > seen.busy_rejections;
    seen.engine_reopens = reopens;
    seen.busy_rejections = state.busy_rejections;
    StoreStats {
        store_id,
        capacity_bytes,
        used_bytes,
        available_bytes: capacity_bytes.saturating_sub(used_bytes),
        region_count: state.peers.len() as u64,
        leader_count: state.peers.values().filter(|p| p.role == StateRole::Leader).count() as u64,
        is_busy,
        disk_failing,
    }
}

/// A led region's heartbeat: its peers silent too long (down) or needing a snapshot (pending),
/// and its approximate size in user bytes and keys.
fn region_heartbeat(
    status: &PeerStatus,
    engine: Option<&Engine>,
    config: &PdWorkerConfig,
) -> RegionHeartbeat {
    let down_peers = status
        .silent_ticks
        .iter()
        .map(|(id, ticks)| (*id, ticks * config.raft_tick_ms))
        .filter(|(_, down_ms)| *down_ms >= config.peer_down_after_ms)
        .filter_map(|(id, down_ms)| {
            let peer = status.region.peers.iter().find(|p| p.id == id)?.clone();
            Some(DownPeer { peer, down_ms })
        })
        .collect();
    let (approximate_size_bytes, approximate_keys) =
        engine.map_or((0, 0), |e| approximate_size(e, &status.region));
    RegionHeartbeat {
        region: status.region.clone(),
        leader: status.peer.clone(),
        term: status.term,
        pending_peers: status.pending_peers.clone(),
        down_peers,
        approximate_size_bytes,
        approximate_keys,
    }
}

/// User bytes (keys and values) and keys in `region`, counted on this store's engine; a scan
/// that fails (a disk fault) counts nothing, and the next heartbeat counts again.
fn approximate_size(engine: &Engine, region: &Region) -> (u64, u64) {
    let end = (!region.end_key.is_empty()).then_some(region.end_key.as_slice());
    let Ok(pairs) = engine.scan(Cf::Default, &region.start_key, end, SIZE_SCAN_KEYS_MAX) else {
        return (0, 0);
    };
    let bytes: u64 = pairs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    (bytes, pairs.len() as u64)
}

/// One round: the store's heartbeat, then each led region's, with the steps PD sends back.
async fn heartbeat(
    pd: &mut PdClient,
    local: &mut RawClient,
    config: &PdWorkerConfig,
    probe: &NodeProbe,
    seen: &mut Seen,
) {
    let store_id = config.store.id;
    let state = probe.snapshot();
    let stats = store_stats(store_id, &state, seen);
    if let Err(e) = pd.call(PdRequest::StoreHeartbeat { stats }).await {
        tracing::debug!(target: "minikv::pd", "store {store_id}: store heartbeat: {e}");
    }
    let led = state.peers.values().filter(|p| p.role == StateRole::Leader);
    for status in led {
        let heartbeat = region_heartbeat(status, state.engine.as_deref(), config);
        match pd.call(PdRequest::RegionHeartbeat { heartbeat }).await {
            Ok(PdResponse::RegionHeartbeat { step: Some(step) }) => {
                carry_out(local, store_id, &status.region, step).await;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(
                target: "minikv::pd",
                "store {store_id}: region {} heartbeat: {e}",
                status.region.id
            ),
        }
    }
}

/// Proposes `step` to this store's peer of `region` (pinned to `region`'s epoch).
async fn carry_out(local: &mut RawClient, store_id: u64, region: &Region, step: OperatorStep) {
    let result = match &step {
        OperatorStep::AddLearner { peer } => {
            let learner = minikv_proto::metapb::Peer { role: PeerRole::Learner, ..peer.clone() };
            local.change_peer_in(region, ConfChangeType::AddLearnerNode, learner).await.map(|_| ())
        }
        OperatorStep::PromoteLearner { peer } => {
            let voter = minikv_proto::metapb::Peer { role: PeerRole::Voter, ..peer.clone() };
            local.change_peer_in(region, ConfChangeType::AddNode, voter).await.map(|_| ())
        }
        OperatorStep::RemovePeer { peer } => {
            local.change_peer_in(region, ConfChangeType::RemoveNode, peer.clone()).await.map(|_| ())
        }
        OperatorStep::TransferLeader { to } => local.transfer_leader_in(region, to.clone()).await,
    };
    match result {
        Ok(()) => tracing::info!(
            target: "minikv::trace",
            "store {store_id}: region {} operator step {step:?} proposed",
            region.id
        ),
        Err(e) => tracing::debug!(
            target: "minikv::pd",
            "store {store_id}: region {} operator step {step:?}: {e}",
            region.id
        ),
    }
}
