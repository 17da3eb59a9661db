//! The store's trace and audit events, in one place so that their formats stay stable.
//!
//! Trace events (`target: "minikv::trace"`, level INFO, a `region` field and a short
//! deterministic message) tell a reader what happened: role changes, conf changes, snapshots,
//! log truncation, peers created and destroyed, leader transfers. Audit events
//! (`target: "minikv::audit"`, level DEBUG, fields in a fixed order, every number a `u64`) let
//! a checker compare Raft across nodes: who led which term, which entry every peer applied at
//! every index, and where a snapshot skipped entries. Fields are evaluated only when a
//! subscriber wants the event, so an unobserved store pays for a level check only.

use minikv_engine::checksum::xxh64;
use minikv_proto::metapb::{PeerId, RegionId, StoreId};
use minikv_raft::{ConfChangeType, StateRole};

/// Target of the human-readable trace lines.
pub const TRACE_TARGET: &str = "minikv::trace";
/// Target of the machine-checked audit events.
pub const AUDIT_TARGET: &str = "minikv::audit";

/// The digest of an applied entry's data bytes, as the `apply` audit event carries it.
pub fn entry_digest(data: &[u8]) -> u64 {
    xxh64(data, 0)
}

fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
        StateRole::Leader => "leader",
    }
}

/// A peer's role, term or known leader changed.
pub(crate) fn role_changed(region: RegionId, role: StateRole, term: u64, leader: PeerId) {
    match role {
        StateRole::Leader => {
            tracing::info!(target: "minikv::trace", region, "became leader term {term}");
            tracing::debug!(target: "minikv::audit", event = "leader", region, term);
        }
        StateRole::Follower if leader != 0 => tracing::info!(
            target: "minikv::trace",
            region,
            "became follower term {term} leader {leader}"
        ),
        other => tracing::info!(
            target: "minikv::trace",
            region,
            "became {} term {term}",
            role_name(other)
        ),
    }
}

/// A committed entry was applied (every entry, no-ops and conf changes included).
pub(crate) fn entry_applied(region: RegionId, index: u64, term: u64, data: &[u8]) {
    tracing::debug!(
        target: "minikv::audit",
        event = "apply",
        region,
        index,
        term,
        digest = entry_digest(data)
    );
}

/// A snapshot replaced the peer's log and data: entries up to `index` were not applied here.
pub(crate) fn snapshot_applied(region: RegionId, index: u64, term: u64) {
    tracing::info!(target: "minikv::trace", region, "applied snapshot index {index} term {term}");
    tracing::debug!(target: "minikv::audit", event = "snapshot_applied", region, index, term);
}

pub(crate) fn snapshot_generated(region: RegionId, index: u64, term: u64) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "generated snapshot index {index} term {term}"
    );
}

pub(crate) fn snapshot_sent(
    region: RegionId,
    to: PeerId,
    store: StoreId,
    index: u64,
    chunks: usize,
) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "sent snapshot index {index} to peer {to} on store {store} in {chunks} chunks"
    );
}

pub(crate) fn conf_change_applied(
    region: RegionId,
    change: ConfChangeType,
    peer: PeerId,
    store: StoreId,
    conf_ver: u64,
) {
    let change = match change {
        ConfChangeType::AddNode => "add voter",
        ConfChangeType::AddLearnerNode => "add learner",
        ConfChangeType::RemoveNode => "remove",
    };
    tracing::info!(
        target: "minikv::trace",
        region,
        "applied conf change: {change} peer {peer} store {store}, conf_ver {conf_ver}"
    );
}

pub(crate) fn log_truncated(region: RegionId, truncated_index: u64) {
    tracing::info!(target: "minikv::trace", region, "log truncated to index {truncated_index}");
}

pub(crate) fn peer_created(region: RegionId, peer: PeerId, from: PeerId, msg: &str) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "peer {peer} created by {msg} from peer {from}"
    );
}

pub(crate) fn peer_destroyed(region: RegionId, peer: PeerId, conf_ver: u64, reason: &str) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "peer {peer} destroyed ({reason}), tombstone at conf_ver {conf_ver}"
    );
}

/// A store that stopped between applying its peer's removal and destroying the peer deleted
/// what the peer left behind when it opened again.
pub(crate) fn removed_peer_cleaned(region: RegionId, conf_ver: u64) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "removed peer's leftovers deleted at open, tombstone at conf_ver {conf_ver}"
    );
}

pub(crate) fn leader_transfer_started(region: RegionId, term: u64, to: PeerId) {
    tracing::info!(
        target: "minikv::trace",
        region,
        "leader transfer to peer {to} started in term {term}"
    );
}
