//! The RPC surface of a node: raw KV requests from clients, their responses, and the batch of
//! Raft messages stores exchange. Each kind travels on its own transport tag.

use serde::{Deserialize, Serialize};

use crate::errorpb::RegionError;
use crate::metapb::{Peer, Region, RegionEpoch, RegionId};
use crate::raft_serverpb::RaftMessage;
use crate::raftpb::ConfChangeType;

/// Transport tag of a `RaftMessageBatch` (store to store).
pub const TAG_RAFT: u64 = 1;
/// Transport tag of a `KvRequestEnvelope` (client to store).
pub const TAG_KV_REQUEST: u64 = 2;
/// Transport tag of a `KvResponseEnvelope` (store to client).
pub const TAG_KV_RESPONSE: u64 = 3;

/// Raft messages from one store to another, sent together after one Ready round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftMessageBatch {
    pub messages: Vec<RaftMessage>,
}

/// Which region, epoch and peer a client believes it is addressing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvContext {
    pub region_id: RegionId,
    pub region_epoch: RegionEpoch,
    /// The peer the client takes for the leader.
    pub peer: Peer,
}

/// One raw KV operation (always on the `default` column family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Which region holds `key` and which peer leads it, as this store knows. Served locally,
    /// never through Raft: the answer is a hint for the client's cache, not a read.
    LocateKey {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    RawGet {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    RawPut {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::bytes")]
        value: Vec<u8>,
    },
    RawDelete {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
    },
    /// Up to `limit` pairs with `start_key <= key < end_key` (empty `end_key`: unbounded).
    RawScan {
        #[serde(with = "crate::bytes")]
        start_key: Vec<u8>,
        #[serde(with = "crate::bytes")]
        end_key: Vec<u8>,
        limit: u64,
    },
    RawBatchGet {
        keys: Vec<Vec<u8>>,
    },
    RawBatchPut {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Sets `key` to `new_value` (deletes it when `None`) iff its value is `expected`.
    RawCas {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::bytes::option")]
        expected: Option<Vec<u8>>,
        #[serde(with = "crate::bytes::option")]
        new_value: Option<Vec<u8>>,
    },
    /// Adds, promotes or removes `peer` of the region holding `key` (an operator's command,
    /// until the placement driver issues them).
    ChangePeer {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        change_type: ConfChangeType,
        peer: Peer,
    },
    /// Hands the leadership of the region holding `key` to `peer`, a voter (an operator's
    /// step); answered once the transfer started.
    TransferLeader {
        #[serde(with = "crate::bytes")]
        key: Vec<u8>,
        peer: Peer,
    },
}

impl KvRequest {
    /// Whether the request only reads (retrying it can never apply it twice).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            KvRequest::LocateKey { .. }
                | KvRequest::RawGet { .. }
                | KvRequest::RawScan { .. }
                | KvRequest::RawBatchGet { .. }
        )
    }
}

/// A client request with its id (echoed in the response) and routing context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvRequestEnvelope {
    pub request_id: u64,
    pub context: KvContext,
    pub request: KvRequest,
}

/// The result of a `KvRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    Located {
        region: Region,
        leader: Option<Peer>,
    },
    Get {
        #[serde(with = "crate::bytes::option")]
        value: Option<Vec<u8>>,
    },
    Put,
    Delete,
    Scan {
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// One entry per requested key, in request order.
    BatchGet {
        values: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    BatchPut,
    Cas {
        succeeded: bool,
        #[serde(with = "crate::bytes::option")]
        previous: Option<Vec<u8>>,
    },
    /// The region after a membership change.
    ChangePeer {
        region: Region,
    },
    /// A leader transfer started.
    TransferLeader,
    /// The region refused the request before proposing it: it certainly had no effect; the
    /// client can act on the error (see `RegionError`).
    RegionError(RegionError),
    /// The request was proposed and then failed (e.g. its peer lost leadership or received a
    /// snapshot). A read had no effect; a write's outcome is unknown when
    /// `RegionError::leaves_outcome_unknown` says so, and otherwise it certainly was not
    /// applied (e.g. `ProposalDropped`, or `EpochNotMatch` found at apply).
    ProposalFailed(RegionError),
    /// The store could not serve the request for a reason of its own (e.g. a malformed
    /// request); not retryable as is.
    Other(String),
}

/// A response to the request with `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponseEnvelope {
    pub request_id: u64,
    pub response: KvResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metapb::PeerRole;
    use crate::{decode, encode};

    fn peer() -> Peer {
        Peer { id: 3, store_id: 2, role: PeerRole::Voter }
    }

    #[test]
    fn every_request_round_trips() {
        let requests = vec![
            KvRequest::LocateKey { key: b"k".to_vec() },
            KvRequest::RawGet { key: b"k".to_vec() },
            KvRequest::RawPut { key: b"k".to_vec(), value: b"v".to_vec() },
            KvRequest::RawDelete { key: b"k".to_vec() },
            KvRequest::RawScan { start_key: b"a".to_vec(), end_key: vec![], limit: 7 },
            KvRequest::RawBatchGet { keys: vec![b"a".to_vec(), b"b".to_vec()] },
            KvRequest::RawBatchPut { pairs: vec![(b"a".to_vec(), b"1".to_vec())] },
            KvRequest::RawCas { key: b"k".to_vec(), expected: None, new_value: Some(vec![1]) },
            KvRequest::ChangePeer {
                key: b"k".to_vec(),
                change_type: ConfChangeType::AddLearnerNode,
                peer: peer(),
            },
            KvRequest::TransferLeader { key: b"k".to_vec(), peer: peer() },
        ];
        for (i, request) in requests.into_iter().enumerate() {
            let env = KvRequestEnvelope {
                request_id: i as u64,
                context: KvContext {
                    region_id: 1,
                    region_epoch: RegionEpoch { conf_ver: 2, version: 1 },
                    peer: peer(),
                },
                request,
            };
            assert_eq!(decode::<KvRequestEnvelope>(&encode(&env).unwrap()).unwrap(), env);
        }
    }

    #[test]
    fn every_response_round_trips() {
        let responses = vec![
            KvResponse::Located { region: Region { id: 1, ..Default::default() }, leader: None },
            KvResponse::Located { region: Region::default(), leader: Some(peer()) },
            KvResponse::Get { value: Some(b"v".to_vec()) },
            KvResponse::Put,
            KvResponse::Delete,
            KvResponse::Scan { kvs: vec![(b"a".to_vec(), b"1".to_vec())] },
            KvResponse::BatchGet { values: vec![(b"a".to_vec(), None)] },
            KvResponse::BatchPut,
            KvResponse::Cas { succeeded: true, previous: None },
            KvResponse::ChangePeer { region: Region::default() },
            KvResponse::TransferLeader,
            KvResponse::RegionError(RegionError::StaleCommand),
            KvResponse::ProposalFailed(RegionError::RegionNotFound { region_id: 1 }),
            KvResponse::Other("bad".to_string()),
        ];
        for (i, response) in responses.into_iter().enumerate() {
            let env = KvResponseEnvelope { request_id: i as u64, response };
            let bytes = encode(&env).unwrap();
            assert_eq!(crate::encoded_len(&env).unwrap(), bytes.len(), "{env:?}");
            assert_eq!(decode::<KvResponseEnvelope>(&bytes).unwrap(), env);
        }
        let batch = RaftMessageBatch { messages: vec![RaftMessage::default(); 2] };
        let bytes = encode(&batch).unwrap();
        assert_eq!(crate::encoded_len(&batch).unwrap(), bytes.len());
        assert_eq!(decode::<RaftMessageBatch>(&bytes).unwrap(), batch);
    }

    #[test]
    fn reads_are_classified() {
        assert!(KvRequest::RawGet { key: vec![] }.is_read());
        assert!(KvRequest::RawBatchGet { keys: vec![] }.is_read());
        assert!(!KvRequest::RawDelete { key: vec![] }.is_read());
        assert!(!KvRequest::RawCas { key: vec![], expected: None, new_value: None }.is_read());
    }
}
