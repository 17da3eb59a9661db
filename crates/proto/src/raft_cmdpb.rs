//! Commands a region executes through Raft (reads, writes, admin) and their responses.

use serde::{Deserialize, Serialize};

use crate::errorpb::RegionError;
use crate::metapb::{Peer, Region, RegionEpoch, RegionId};
use crate::raftpb::ConfChangeType;

/// The data column families a command may touch (the `raft` column family is the store's own).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum CfName {
    #[default]
    Default,
    Lock,
    Write,
}

/// Which region, peer and epoch the sender believes it is addressing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftRequestHeader {
    pub region_id: RegionId,
    /// The peer the request is meant for (the leader, as far as the client knows).
    pub peer: Peer,
    pub region_epoch: RegionEpoch,
}

/// One data operation. A command made only of `Get` and `Scan` is a read and is served through
/// ReadIndex; any other command is replicated through the log and applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Get {
        cf: CfName,
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    Put {
        cf: CfName,
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::bytes")]
        value: Vec<u8>,
    },
    Delete {
        cf: CfName,
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    /// Up to `limit` pairs with `start_key <= key < end_key` (an empty `end_key`: the region's
    /// end), clipped to the region.
    Scan {
        cf: CfName,
        #[serde(with = "crate::bytes")]
        start_key: Vec<u8>,
        #[serde(with = "crate::bytes")]
        end_key: Vec<u8>,
        limit: u64,
    },
    /// Sets `key` to `new_value` (deletes it when `None`) iff its value is `expected`.
    Cas {
        cf: CfName,
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::bytes::option")]
        expected: Option<Vec<u8>>,
        #[serde(with = "crate::bytes::option")]
        new_value: Option<Vec<u8>>,
    },
}

impl Request {
    /// Whether the request only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::Scan { .. })
    }

    /// The single key the request touches, if it touches one key.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Request::Get { key, .. }
            | Request::Put { key, .. }
            | Request::Delete { key, .. }
            | Request::Cas { key, .. } => Some(key),
            Request::Scan { .. } => None,
        }
    }
}

/// Region administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Add a voter, add a learner (or promote one with `AddNode`), or remove a peer.
    ChangePeer { change_type: ConfChangeType, peer: Peer },
    /// Hand leadership to `peer` (not replicated; answered once the transfer started).
    TransferLeader { peer: Peer },
    /// Truncate the Raft log up to and including `compact_index` (proposed by the leader).
    CompactLog { compact_index: u64, compact_term: u64 },
}

/// A command addressed to one region: data requests, or one admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftCmdRequest {
    pub header: RaftRequestHeader,
    pub requests: Vec<Request>,
    pub admin: Option<AdminRequest>,
}

impl RaftCmdRequest {
    /// Whether the command only reads (and so needs no log entry).
    pub fn is_read_only(&self) -> bool {
        self.admin.is_none()
            && !self.requests.is_empty()
            && self.requests.iter().all(Request::is_read)
    }
}

/// The result of one `Request`, in the same position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Get {
        #[serde(with = "crate::bytes::option")]
        value: Option<Vec<u8>>,
    },
    Put,
    Delete,
    Scan {
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Whether the swap happened, and the value found.
    Cas {
        succeeded: bool,
        #[serde(with = "crate::bytes::option")]
        previous: Option<Vec<u8>>,
    },
}

/// The result of an admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    ChangePeer { region: Region },
    TransferLeader,
    CompactLog,
}

/// The response header: a region error, or none when the command was served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftResponseHeader {
    pub error: Option<RegionError>,
    pub current_term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftCmdResponse {
    pub header: RaftResponseHeader,
    pub responses: Vec<Response>,
    pub admin_response: Option<AdminResponse>,
}

impl RaftCmdResponse {
    /// A response carrying only `error`.
    pub fn error(error: RegionError) -> Self {
        RaftCmdResponse {
            header: RaftResponseHeader { error: Some(error), current_term: 0 },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metapb::PeerRole;
    use crate::{decode, encode};

    #[test]
    fn command_with_every_request_kind_round_trips() {
        let cmd = RaftCmdRequest {
            header: RaftRequestHeader {
                region_id: 1,
                peer: Peer { id: 2, store_id: 2, role: PeerRole::Voter },
                region_epoch: RegionEpoch { conf_ver: 3, version: 1 },
            },
            requests: vec![
                Request::Get { cf: CfName::Default, key: b"k".to_vec() },
                Request::Put { cf: CfName::Lock, key: b"k".to_vec(), value: b"v".to_vec() },
                Request::Delete { cf: CfName::Write, key: b"k".to_vec() },
                Request::Scan {
                    cf: CfName::Default,
                    start_key: b"a".to_vec(),
                    end_key: vec![],
                    limit: 10,
                },
                Request::Cas {
                    cf: CfName::Default,
                    key: b"k".to_vec(),
                    expected: None,
                    new_value: Some(b"x".to_vec()),
                },
            ],
            admin: None,
        };
        assert_eq!(decode::<RaftCmdRequest>(&encode(&cmd).unwrap()).unwrap(), cmd);
        assert!(!cmd.is_read_only());
        let admin = RaftCmdRequest {
            admin: Some(AdminRequest::ChangePeer {
                change_type: ConfChangeType::AddLearnerNode,
                peer: Peer { id: 9, store_id: 4, role: PeerRole::Learner },
            }),
            ..Default::default()
        };
        assert_eq!(decode::<RaftCmdRequest>(&encode(&admin).unwrap()).unwrap(), admin);
        let compact = AdminRequest::CompactLog { compact_index: 10, compact_term: 2 };
        assert_eq!(decode::<AdminRequest>(&encode(&compact).unwrap()).unwrap(), compact);
    }

    #[test]
    fn responses_round_trip_and_read_only_is_detected() {
        let resp = RaftCmdResponse {
            header: RaftResponseHeader { error: None, current_term: 4 },
            responses: vec![
                Response::Get { value: Some(b"v".to_vec()) },
                Response::Put,
                Response::Delete,
                Response::Scan { kvs: vec![(b"a".to_vec(), b"1".to_vec())] },
                Response::Cas { succeeded: false, previous: None },
            ],
            admin_response: Some(AdminResponse::TransferLeader),
        };
        assert_eq!(decode::<RaftCmdResponse>(&encode(&resp).unwrap()).unwrap(), resp);
        let err = RaftCmdResponse::error(RegionError::StaleCommand);
        assert_eq!(decode::<RaftCmdResponse>(&encode(&err).unwrap()).unwrap(), err);
        let read = RaftCmdRequest {
            requests: vec![Request::Get { cf: CfName::Default, key: b"k".to_vec() }],
            ..Default::default()
        };
        assert!(read.is_read_only());
        assert!(!RaftCmdRequest::default().is_read_only());
    }
}
