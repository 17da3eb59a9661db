//! Region errors: what a client is told when a request reaches the wrong peer, epoch or range.
//!
//! Every variant is actionable: the client refreshes its region cache, retries on another peer
//! or backs off. They cross the wire inside a `RaftCmdResponse` header.

use serde::{Deserialize, Serialize};

use crate::metapb::{Peer, Region, RegionId};

/// Why a region-level request was not served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegionError {
    /// This peer is not the leader; `leader` is the leader it knows of, if any.
    #[error("region {region_id}: not leader (leader hint {leader:?})")]
    NotLeader { region_id: RegionId, leader: Option<Peer> },
    /// The request's epoch is stale; `current_regions` is what this store knows now.
    #[error("epoch not match: current regions {current_regions:?}")]
    EpochNotMatch { current_regions: Vec<Region> },
    /// A key of the request lies outside the region's range.
    #[error("key {key:?} not in region {region_id} [{start_key:?}, {end_key:?})")]
    KeyNotInRegion { key: Vec<u8>, region_id: RegionId, start_key: Vec<u8>, end_key: Vec<u8> },
    /// This store hosts no peer of the region (never had one, or it was destroyed).
    #[error("region {region_id} not found")]
    RegionNotFound { region_id: RegionId },
    /// The proposal was overtaken and this peer cannot tell whether it was applied (a
    /// snapshot replaced the log past it): for a write, the outcome is unknown.
    #[error("stale command")]
    StaleCommand,
    /// The proposal's log slot went to another committed entry (or entries of a newer term
    /// were committed before it): it was not applied and never will be; retrying is safe.
    #[error("proposal dropped: its log slot went to another entry")]
    ProposalDropped,
    /// A bounded queue is full; back off and retry.
    #[error("server is busy: {reason}")]
    ServerIsBusy { reason: String },
    /// The command itself is invalid for the region's current state (e.g. adding a peer that
    /// already exists); retrying it unchanged will not help.
    #[error("command refused: {reason}")]
    CommandRefused { reason: String },
}

impl RegionError {
    /// Whether this error, answering a command that was proposed, leaves open whether the
    /// command was applied. `StaleCommand` (a snapshot covered it) and `RegionNotFound` (the
    /// peer was destroyed with it pending) do; every other error answers a command that was
    /// not applied (refused at apply, or its slot lost).
    pub fn leaves_outcome_unknown(&self) -> bool {
        matches!(self, RegionError::StaleCommand | RegionError::RegionNotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metapb::{PeerRole, RegionEpoch};
    use crate::{decode, encode};

    #[test]
    fn every_region_error_round_trips() {
        let region = Region {
            id: 3,
            start_key: b"a".to_vec(),
            end_key: vec![],
            epoch: RegionEpoch { conf_ver: 2, version: 1 },
            peers: vec![Peer { id: 4, store_id: 2, role: PeerRole::Voter }],
        };
        let errors = vec![
            RegionError::NotLeader { region_id: 3, leader: Some(region.peers[0].clone()) },
            RegionError::NotLeader { region_id: 3, leader: None },
            RegionError::EpochNotMatch { current_regions: vec![region] },
            RegionError::KeyNotInRegion {
                key: b"z".to_vec(),
                region_id: 3,
                start_key: b"a".to_vec(),
                end_key: b"m".to_vec(),
            },
            RegionError::RegionNotFound { region_id: 9 },
            RegionError::StaleCommand,
            RegionError::ProposalDropped,
            RegionError::ServerIsBusy { reason: "queue full".to_string() },
            RegionError::CommandRefused { reason: "peer exists".to_string() },
        ];
        for e in errors {
            assert_eq!(decode::<RegionError>(&encode(&e).unwrap()).unwrap(), e);
        }
    }
}
