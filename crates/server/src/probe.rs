//! A window into a running node for tests and benchmarks: its engine and its peers' states,
//! refreshed by the node on every tick. Reading it never changes what the node does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minikv_engine::Engine;
use minikv_proto::metapb::RegionId;
use minikv_raftstore::PeerStatus;

/// What a node last published.
#[derive(Debug, Clone, Default)]
pub struct ProbeState {
    /// The engine of the node's current incarnation.
    pub engine: Option<Arc<Engine>>,
    pub peers: BTreeMap<RegionId, PeerStatus>,
    /// Largest `applied_index - truncated_index` seen on any peer since the probe was made.
    pub max_applied_minus_truncated: u64,
    pub ticks: u64,
    pub requests_answered: u64,
    pub busy_rejections: u64,
    pub raft_messages_received: u64,
    pub raft_batches_sent: u64,
    /// The largest Raft batch (its encoding) this node sent, in bytes.
    pub largest_raft_batch_bytes: usize,
}

/// Shared handle; clones see the same state (across restarts of the node too).
#[derive(Debug, Clone, Default)]
pub struct NodeProbe {
    inner: Arc<Mutex<ProbeState>>,
}

impl NodeProbe {
    pub fn new() -> NodeProbe {
        NodeProbe::default()
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ProbeState {
        self.inner.lock().expect("probe lock").clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ProbeState)) {
        f(&mut self.inner.lock().expect("probe lock"));
    }
}
