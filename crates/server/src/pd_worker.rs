//! A store's placement-driver worker, a task beside the node: it bootstraps the cluster through
//! PD (the store that holds the first region, once), registers the store, and then every
//! heartbeat interval sends a store heartbeat and one region heartbeat per region this store
//! leads, carrying out each operator step PD answers with (a membership change or a leader
//! transfer, proposed to its own store through the ordinary client path, pinned to the region
//! epoch the step was chosen on). It reads the node only through its probe.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minikv_client::{ClientConfig, RawClient};
use minikv_pd::{PdClient, PdClientConfig, PdClientError};
use minikv_proto::metapb::{PeerRole, Region, Store};
use minikv_proto::pdpb::{
    OperatorStep, PdError, PdRequest, PdResponse, RegionHeartbeat, StoreStats,
};
use minikv_proto::raftpb::ConfChangeType;
use minikv_raft::StateRole;
use minikv_runtime::Clock;

use crate::probe::NodeProbe;

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
    loop {
        heartbeat(&mut pd, &mut local, store_id, &probe).await;
        sleep(config.heartbeat_interval_ms).await;
    }
}

/// One round: the store's heartbeat, then each led region's, with the steps PD sends back.
async fn heartbeat(pd: &mut PdClient, local: &mut RawClient, store_id: u64, probe: &NodeProbe) {
    let state = probe.snapshot();
    let led: Vec<_> =
        state.peers.values().filter(|p| p.role == StateRole::Leader).cloned().collect();
    let stats = StoreStats {
        store_id,
        region_count: state.peers.len() as u64,
        leader_count: led.len() as u64,
        ..StoreStats::default()
    };
    if let Err(e) = pd.call(PdRequest::StoreHeartbeat { stats }).await {
        tracing::debug!(target: "minikv::pd", "store {store_id}: store heartbeat: {e}");
    }
    for status in led {
        let heartbeat = RegionHeartbeat {
            region: status.region.clone(),
            leader: status.peer.clone(),
            term: status.term,
            ..RegionHeartbeat::default()
        };
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
