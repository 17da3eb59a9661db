//! The placement driver's RPC surface: timestamps, IDs, bootstrap, store and region metadata,
//! heartbeats and the operator steps PD answers them with. Each direction travels on its own
//! transport tag.

use serde::{Deserialize, Serialize};

use crate::metapb::{Peer, Region, RegionId, Store, StoreId};

/// Transport tag of a `PdRequestEnvelope` (client or store to a PD node).
pub const TAG_PD_REQUEST: u64 = 4;
/// Transport tag of a `PdResponseEnvelope` (PD node to client or store).
pub const TAG_PD_RESPONSE: u64 = 5;

/// Bits of a timestamp that hold the logical counter (below the physical milliseconds).
pub const LOGICAL_BITS: u32 = 18;
/// Timestamps one physical millisecond can hold.
pub const LOGICAL_PER_MS: u64 = 1 << LOGICAL_BITS;

/// A TSO timestamp: physical milliseconds << 18 | logical, ordered as a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `None` when `logical` does not fit its 18 bits or `physical_ms` its 46.
    pub fn compose(physical_ms: u64, logical: u64) -> Option<Timestamp> {
        if logical >= LOGICAL_PER_MS || physical_ms >= (1 << (64 - LOGICAL_BITS)) {
            return None;
        }
        Some(Timestamp((physical_ms << LOGICAL_BITS) | logical))
    }

    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u64 {
        self.0 & (LOGICAL_PER_MS - 1)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// What a store reports of itself every store heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoreStats {
    pub store_id: StoreId,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub region_count: u64,
    pub leader_count: u64,
    /// The store refuses requests because its queues are full.
    pub is_busy: bool,
    /// The store's disk returned errors since the last heartbeat.
    pub disk_failing: bool,
}

/// A peer its leader has not heard from for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DownPeer {
    pub peer: Peer,
    pub down_ms: u64,
}

/// What a region's leader reports every region heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegionHeartbeat {
    pub region: Region,
    pub leader: Peer,
    /// The leader's Raft term.
    pub term: u64,
    /// Peers whose logs lag far behind the leader's (being caught up, e.g. by a snapshot).
    pub pending_peers: Vec<Peer>,
    pub down_peers: Vec<DownPeer>,
    pub approximate_size_bytes: u64,
    pub approximate_keys: u64,
}

/// One step of an operator, sent to a region's leader in a heartbeat response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorStep {
    AddLearner { peer: Peer },
    PromoteLearner { peer: Peer },
    TransferLeader { to: Peer },
    RemovePeer { peer: Peer },
}

/// A request to the placement driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdRequest {
    /// `count` (at least 1) strictly increasing timestamps.
    Tso {
        count: u32,
    },
    /// A fresh ID for a store, region or peer (never handed out before).
    AllocId,
    IsBootstrapped,
    /// Bootstraps the cluster with its first store and first region, once.
    Bootstrap {
        store: Store,
        region: Region,
    },
    /// Registers (or updates the address of) a store.
    PutStore {
        store: Store,
    },
    GetStore {
        store_id: StoreId,
    },
    GetAllStores,
    /// What the store's last heartbeat said (held in the serving PD node's memory).
    GetStoreStats {
        store_id: StoreId,
    },
    /// The region holding `key`, as PD last heard of it.
    GetRegion {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    GetRegionById {
        region_id: RegionId,
    },
    /// Up to `limit` regions overlapping `[start_key, end_key)` (empty `end_key`: unbounded),
    /// in key order.
    ScanRegions {
        #[serde(with = "crate::bytes")]
        start_key: Vec<u8>,
        #[serde(with = "crate::bytes")]
        end_key: Vec<u8>,
        limit: u64,
    },
    StoreHeartbeat {
        stats: StoreStats,
    },
    RegionHeartbeat {
        heartbeat: RegionHeartbeat,
    },
}

impl PdRequest {
    /// The request's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PdRequest::Tso { .. } => "tso",
            PdRequest::AllocId => "alloc-id",
            PdRequest::IsBootstrapped => "is-bootstrapped",
            PdRequest::Bootstrap { .. } => "bootstrap",
            PdRequest::PutStore { .. } => "put-store",
            PdRequest::GetStore { .. } => "get-store",
            PdRequest::GetAllStores => "get-all-stores",
            PdRequest::GetStoreStats { .. } => "get-store-stats",
            PdRequest::GetRegion { .. } => "get-region",
            PdRequest::GetRegionById { .. } => "get-region-by-id",
            PdRequest::ScanRegions { .. } => "scan-regions",
            PdRequest::StoreHeartbeat { .. } => "store-heartbeat",
            PdRequest::RegionHeartbeat { .. } => "region-heartbeat",
        }
    }
}

/// A region as PD last heard of it from its leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegionInfo {
    pub region: Region,
    pub leader: Option<Peer>,
    pub pending_peers: Vec<Peer>,
    pub down_peers: Vec<DownPeer>,
    pub approximate_size_bytes: u64,
    pub approximate_keys: u64,
}

/// The answer to a `PdRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdResponse {
    /// The timestamps `first`, `first + 1`, ..., `first + count - 1`.
    Tso {
        first: Timestamp,
        count: u32,
    },
    Id {
        id: u64,
    },
    Bootstrapped {
        bootstrapped: bool,
    },
    /// Done (bootstrap, put store, store heartbeat).
    Ok,
    Store {
        store: Option<Store>,
    },
    Stores {
        stores: Vec<Store>,
    },
    StoreStats {
        stats: Option<StoreStats>,
    },
    Region {
        region: Option<RegionInfo>,
    },
    Regions {
        regions: Vec<RegionInfo>,
    },
    /// A region heartbeat was taken; `step` is what the leader should do next, if anything.
    RegionHeartbeat {
        step: Option<OperatorStep>,
    },
    Error(PdError),
}

/// Why PD did not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PdError {
    /// This PD node does not lead; `leader` is the PD node it believes does.
    #[error("not the PD leader (leader hint {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("the cluster is not bootstrapped")]
    NotBootstrapped,
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    /// A region heartbeat older than what PD holds (by epoch, or overlapping a newer region).
    #[error("stale region heartbeat: {reason}")]
    StaleRegion { reason: String },
    /// PD could not read or write its own state in time; retry (the request had no effect
    /// a client can observe: a timestamp or ID it did not return is never returned later).
    #[error("PD unavailable: {reason}")]
    Unavailable { reason: String },
    /// The request itself is wrong (e.g. a TSO count of 0); retrying will not help.
    #[error("invalid request: {reason}")]
    Invalid { reason: String },
}

/// A PD request with its id (echoed in the response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdRequestEnvelope {
    pub request_id: u64,
    pub request: PdRequest,
}

/// The response to the request with `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdResponseEnvelope {
    pub request_id: u64,
    pub response: PdResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metapb::PeerRole;
    use crate::{decode, encode};

    #[test]
    fn timestamp_packs_physical_above_logical_and_orders_as_u64() {
        let ts = Timestamp::compose(1_700_000, 5).unwrap();
        assert_eq!(ts.physical_ms(), 1_700_000);
        assert_eq!(ts.logical(), 5);
        assert!(Timestamp::compose(1_700_000, LOGICAL_PER_MS - 1).unwrap() < ts_at(1_700_001, 0));
        assert_eq!(Timestamp::compose(1, LOGICAL_PER_MS), None);
        assert_eq!(Timestamp::compose(1 << 46, 0), None);
        assert_eq!(ts.to_string(), "1700000.5");
    }

    fn ts_at(physical_ms: u64, logical: u64) -> Timestamp {
        Timestamp::compose(physical_ms, logical).unwrap()
    }

    #[test]
    fn every_request_and_response_round_trips() {
        let peer = Peer { id: 4, store_id: 2, role: PeerRole::Voter };
        let region = Region { id: 3, peers: vec![peer.clone()], ..Default::default() };
        let requests = vec![
            PdRequest::Tso { count: 3 },
            PdRequest::AllocId,
            PdRequest::IsBootstrapped,
            PdRequest::Bootstrap { store: Store::default(), region: region.clone() },
            PdRequest::PutStore { store: Store { id: 1, address: "a:1".into() } },
            PdRequest::GetStore { store_id: 1 },
            PdRequest::GetAllStores,
            PdRequest::GetRegion { key: b"k".to_vec() },
            PdRequest::GetRegionById { region_id: 3 },
            PdRequest::ScanRegions { start_key: vec![], end_key: b"z".to_vec(), limit: 9 },
            PdRequest::StoreHeartbeat { stats: StoreStats { store_id: 1, ..Default::default() } },
            PdRequest::RegionHeartbeat {
                heartbeat: RegionHeartbeat {
                    region: region.clone(),
                    leader: peer.clone(),
                    down_peers: vec![DownPeer { peer: peer.clone(), down_ms: 10 }],
                    ..Default::default()
                },
            },
        ];
        for (i, request) in requests.into_iter().enumerate() {
            let env = PdRequestEnvelope { request_id: i as u64, request };
            assert_eq!(decode::<PdRequestEnvelope>(&encode(&env).unwrap()).unwrap(), env);
        }
        let info = RegionInfo {
            region,
            leader: Some(peer.clone()),
            approximate_size_bytes: 3,
            ..RegionInfo::default()
        };
        let responses = vec![
            PdResponse::Tso { first: ts_at(9, 1), count: 2 },
            PdResponse::Id { id: 7 },
            PdResponse::Bootstrapped { bootstrapped: true },
            PdResponse::Ok,
            PdResponse::Store { store: None },
            PdResponse::StoreStats {
                stats: Some(StoreStats { used_bytes: 9, ..Default::default() }),
            },
            PdResponse::Stores { stores: vec![Store::default()] },
            PdResponse::Region { region: Some(info.clone()) },
            PdResponse::Regions { regions: vec![info] },
            PdResponse::RegionHeartbeat { step: Some(OperatorStep::TransferLeader { to: peer }) },
            PdResponse::Error(PdError::NotLeader { leader: Some(2) }),
            PdResponse::Error(PdError::Unavailable { reason: "x".into() }),
        ];
        for (i, response) in responses.into_iter().enumerate() {
            let env = PdResponseEnvelope { request_id: i as u64, response };
            assert_eq!(decode::<PdResponseEnvelope>(&encode(&env).unwrap()).unwrap(), env);
        }
    }
}
