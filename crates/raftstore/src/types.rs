//! Types every layer of the store shares: the environment's handle on a request, the queue of
//! answers, and the two shapes an answer takes (done, or a region error).

use minikv_proto::errorpb::RegionError;
use minikv_proto::raft_cmdpb::{RaftCmdResponse, RaftResponseHeader};

/// The environment's handle on one request; its response comes back with the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqToken(pub u64);

/// Responses produced by a peer, in order.
pub(crate) type Responses = Vec<(ReqToken, RaftCmdResponse)>;

/// A successful answer in `term`, with nothing in it yet.
pub(crate) fn ok_response(term: u64) -> RaftCmdResponse {
    RaftCmdResponse {
        header: RaftResponseHeader { error: None, current_term: term },
        ..Default::default()
    }
}

/// An answer carrying `error`, given in `term`.
pub(crate) fn error_response(error: RegionError, term: u64) -> RaftCmdResponse {
    RaftCmdResponse {
        header: RaftResponseHeader { error: Some(error), current_term: term },
        ..Default::default()
    }
}
