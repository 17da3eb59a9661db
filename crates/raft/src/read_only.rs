//! Pending ReadIndex requests on the leader, confirmed by a heartbeat round carrying their ctx.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use minikv_proto::raftpb::{Message, NodeId};

use crate::config::ReadOnlyOption;

/// A client's read: the commit index when it arrived and who acknowledged the heartbeat round.
#[derive(Debug, Clone)]
pub struct ReadIndexStatus {
    pub req: Message,
    pub index: u64,
    pub acks: BTreeSet<NodeId>,
}

/// The leader's queue of reads waiting for leadership confirmation, in arrival order.
#[derive(Debug, Clone)]
pub struct ReadOnly {
    pub option: ReadOnlyOption,
    pub pending: BTreeMap<Vec<u8>, ReadIndexStatus>,
    pub queue: VecDeque<Vec<u8>>,
}

impl ReadOnly {
    pub fn new(option: ReadOnlyOption) -> Self {
        ReadOnly { option, pending: BTreeMap::new(), queue: VecDeque::new() }
    }

    /// Queues a read at `index`; a duplicate ctx is ignored (it is already being confirmed).
    pub fn add_request(&mut self, index: u64, req: Message, self_id: NodeId) {
        let ctx = req.context.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        let acks = BTreeSet::from([self_id]);
        self.pending.insert(ctx.clone(), ReadIndexStatus { req, index, acks });
        self.queue.push_back(ctx);
    }

    /// Records `from`'s heartbeat ack for `ctx`; returns the acks so far if `ctx` is pending.
    pub fn recv_ack(&mut self, from: NodeId, ctx: &[u8]) -> Option<&BTreeSet<NodeId>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(from);
        Some(&status.acks)
    }

    /// Dequeues every read up to and including `ctx` (a later confirmation covers earlier reads).
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_slice() == ctx) else {
            return Vec::new();
        };
        self.queue
            .drain(..=pos)
            .map(|c| self.pending.remove(&c).expect("queued read has a pending status"))
            .collect()
    }

    pub fn last_pending_request_ctx(&self) -> Option<Vec<u8>> {
        self.queue.back().cloned()
    }

    pub fn pending_read_count(&self) -> usize {
        self.queue.len()
    }
}
