//! A point-in-time summary of a node for applications, tests and debugging.

use std::collections::BTreeMap;

use minikv_proto::raftpb::{ConfState, NodeId};

use crate::progress::Progress;
use crate::raft::{Raft, StateRole};
use crate::storage::Storage;

/// What a node knows about itself and (if leader) its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub term: u64,
    pub vote: NodeId,
    pub commit: u64,
    pub applied: u64,
    pub leader_id: NodeId,
    pub role: StateRole,
    pub conf_state: ConfState,
    /// Per-peer replication progress; empty unless this node is the leader.
    pub progress: BTreeMap<NodeId, Progress>,
    /// Leader transfer in progress (leader only).
    pub lead_transferee: Option<NodeId>,
}

impl Status {
    pub fn new<S: Storage>(raft: &Raft<S>) -> Self {
        let progress = if raft.role == StateRole::Leader {
            raft.prs.progress.clone()
        } else {
            BTreeMap::new()
        };
        Status {
            id: raft.id,
            term: raft.term,
            vote: raft.vote,
            commit: raft.raft_log.committed,
            applied: raft.raft_log.applied,
            leader_id: raft.leader_id,
            role: raft.role,
            conf_state: raft.prs.conf_state(),
            progress,
            lead_transferee: raft.lead_transferee,
        }
    }
}
