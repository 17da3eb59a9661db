//! Checking a command against the region it is for: its epoch, its keys, and whether a
//! membership change fits the region (and the region it makes). The same checks run when a
//! command is proposed and again when it applies, against the region as it is by then.

use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, PeerRole, Region};
use minikv_proto::raft_cmdpb::{AdminRequest, RaftCmdRequest, Request};
use minikv_raft::ConfChangeType;

/// Data requests need the region's version; admin requests its whole epoch.
pub(crate) fn check_epoch(cmd: &RaftCmdRequest, region: &Region) -> Result<(), RegionError> {
    let sent = cmd.header.region_epoch;
    let current = region.epoch;
    let stale = match &cmd.admin {
        None | Some(AdminRequest::CompactLog { .. }) => sent.version < current.version,
        Some(_) => sent.is_stale_against(&current),
    };
    let internal = matches!(cmd.admin, Some(AdminRequest::CompactLog { .. }));
    if stale && !internal {
        return Err(RegionError::EpochNotMatch { current_regions: vec![region.clone()] });
    }
    Ok(())
}

/// The request's key (a scan's start) is in the region.
pub(crate) fn check_key_in_region(req: &Request, region: &Region) -> Result<(), RegionError> {
    let key = match req {
        Request::Scan { start_key, .. } => start_key.as_slice(),
        other => other.key().expect("every non-scan request has a key"),
    };
    // A scan may start before the region: it is clipped to the region's range.
    if matches!(req, Request::Scan { .. }) && key < region.start_key.as_slice() {
        return Ok(());
    }
    if region.contains_key(key) {
        return Ok(());
    }
    Err(RegionError::KeyNotInRegion {
        key: key.to_vec(),
        region_id: region.id,
        start_key: region.start_key.clone(),
        end_key: region.end_key.clone(),
    })
}

/// The region after `change_type` of `peer`, with `conf_ver` bumped; `Err` says why the change
/// does not fit the region.
pub(crate) fn change_region(
    region: &Region,
    change_type: ConfChangeType,
    peer: &metapb::Peer,
) -> Result<Region, String> {
    let mut region = region.clone();
    let existing = region.peers.iter().position(|p| p.id == peer.id);
    let same_store = region.peers.iter().any(|p| p.store_id == peer.store_id && p.id != peer.id);
    match (change_type, existing) {
        (ConfChangeType::AddNode, Some(i)) if region.peers[i].role == PeerRole::Learner => {
            region.peers[i].role = PeerRole::Voter;
        }
        (ConfChangeType::AddNode | ConfChangeType::AddLearnerNode, Some(_)) => {
            return Err(format!("peer {} is already a member of region {}", peer.id, region.id));
        }
        (ConfChangeType::AddNode | ConfChangeType::AddLearnerNode, None) => {
            if same_store {
                return Err(format!(
                    "store {} already hosts a peer of region {}",
                    peer.store_id, region.id
                ));
            }
            let role = if change_type == ConfChangeType::AddNode {
                PeerRole::Voter
            } else {
                PeerRole::Learner
            };
            region.peers.push(metapb::Peer { id: peer.id, store_id: peer.store_id, role });
        }
        (ConfChangeType::RemoveNode, None) => {
            return Err(format!("peer {} is not a member of region {}", peer.id, region.id));
        }
        (ConfChangeType::RemoveNode, Some(i)) => {
            region.peers.remove(i);
            if !region.peers.iter().any(|p| p.role == PeerRole::Voter) {
                return Err(format!(
                    "removing peer {} would leave region {} without voters",
                    peer.id, region.id
                ));
            }
        }
    }
    region.epoch.conf_ver += 1;
    Ok(region)
}
