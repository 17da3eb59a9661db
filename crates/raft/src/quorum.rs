//! Quorum arithmetic: majority and joint-majority commit indexes and vote results.

use std::collections::BTreeSet;

use minikv_proto::raftpb::NodeId;

/// The outcome of an election (or of a read-index ack round) so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: some votes are missing.
    Pending,
    /// A quorum rejected.
    Lost,
    /// A quorum granted.
    Won,
}

/// Voter counts up to this compute their commit index without allocating.
const STACK_VOTERS_MAX: usize = 7;

/// The `k`-th largest (0-based) of `indexes`, which it reorders.
fn nth_largest(indexes: &mut [u64], k: usize) -> u64 {
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes[k]
}

/// A set of voters deciding by simple majority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    pub voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    pub fn new(voters: BTreeSet<NodeId>) -> Self {
        MajorityConfig { voters }
    }

    /// The largest index acknowledged by a majority. An empty config returns `u64::MAX` so that
    /// it never constrains a joint config.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let n = self.voters.len();
        let acked_indexes = self.voters.iter().map(|&id| acked(id).unwrap_or(0));
        // Runs on every append acknowledgement: sort on the stack for usual cluster sizes.
        if n <= STACK_VOTERS_MAX {
            let mut buf = [0u64; STACK_VOTERS_MAX];
            for (slot, index) in buf.iter_mut().zip(acked_indexes) {
                *slot = index;
            }
            return nth_largest(&mut buf[..n], n / 2);
        }
        let mut indexes: Vec<u64> = acked_indexes.collect();
        nth_largest(&mut indexes, n / 2)
    }

    /// Won if a majority granted, Lost if a majority can no longer be reached, else Pending.
    /// An empty config wins (by convention, so joint results only depend on the other half).
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0, 0);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.voters.len() / 2 + 1;
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// Two majority configs that must both agree (joint consensus, Raft §6); `outgoing` is empty
/// outside of a joint configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JointConfig {
    pub incoming: MajorityConfig,
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    pub fn new(voters: BTreeSet<NodeId>) -> Self {
        JointConfig { incoming: MajorityConfig::new(voters), outgoing: MajorityConfig::default() }
    }

    pub fn is_joint(&self) -> bool {
        !self.outgoing.voters.is_empty()
    }

    /// Every voter of either half.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming.voters.union(&self.outgoing.voters).copied().collect()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.voters.contains(&id) || self.outgoing.voters.contains(&id)
    }

    /// The largest index committed by both halves.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64> + Copy) -> u64 {
        let index = self.incoming.committed_index(acked).min(self.outgoing.committed_index(acked));
        if index == u64::MAX { 0 } else { index }
    }

    /// Won only if both halves won; Lost if either lost.
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool> + Copy) -> VoteResult {
        let (a, b) = (self.incoming.vote_result(votes), self.outgoing.vote_result(votes));
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}
