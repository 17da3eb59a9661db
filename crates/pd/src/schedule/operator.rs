//! An operator: the steps PD walks one region through (membership changes and leader
//! transfers), when each step counts as done, and which epoch changes its steps explain.

use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch, RegionId};
use minikv_proto::pdpb::OperatorStep;
use serde::{Deserialize, Serialize};

/// Why an operator exists; counters and limits are kept per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperatorKind {
    /// From the replica checker: add a missing peer, replace a down one, remove an extra one.
    Replica,
    /// Move a leader from a store with many to one with few.
    BalanceLeader,
    /// Move a peer from a store with much data to one with little.
    BalanceRegion,
}

impl OperatorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OperatorKind; 3] =
        [OperatorKind::Replica, OperatorKind::BalanceLeader, OperatorKind::BalanceRegion];

    /// The kind's name in reports, as PD names it.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::Replica => "replica",
            OperatorKind::BalanceLeader => "balance-leader",
            OperatorKind::BalanceRegion => "balance-region",
        }
    }
}

/// True when `step` changes membership, and so moves the region's `conf_ver` by one.
pub fn is_membership_step(step: &OperatorStep) -> bool {
    !matches!(step, OperatorStep::TransferLeader { .. })
}

/// True when the region, as reported, shows `step` done.
pub fn step_is_done(step: &OperatorStep, region: &Region, leader: Option<&Peer>) -> bool {
    let find = |peer: &Peer| region.peers.iter().find(|p| p.id == peer.id);
    match step {
        OperatorStep::AddLearner { peer } => find(peer).is_some(),
        OperatorStep::PromoteLearner { peer } => {
            find(peer).is_some_and(|p| p.role == PeerRole::Voter)
        }
        OperatorStep::TransferLeader { to } => leader.is_some_and(|l| l.id == to.id),
        OperatorStep::RemovePeer { peer } => find(peer).is_none(),
    }
}

/// The steps for one region, done in order; `current_step` is the first not yet seen done.
/// Saved in the PD region while it runs, so that the next PD leader carries it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The region the steps are for.
    pub region_id: RegionId,
    /// Who made it, for counts and limits.
    pub kind: OperatorKind,
    /// The steps, done in order (never empty).
    pub steps: Vec<OperatorStep>,
    /// Index into `steps` of the step in flight; `steps.len()` once all are done.
    pub current_step: usize,
    /// When it was made; it times out `operator_timeout_ms` later.
    pub created_at_ms: u64,
    /// The region's epoch when the operator was made; later epochs must be explained by the
    /// steps done since.
    pub epoch_at_creation: RegionEpoch,
}

impl Operator {
    /// An operator at its first step. Panics on an empty step list (an operator that does
    /// nothing is a bug in its maker).
    pub fn new(
        region_id: RegionId,
        kind: OperatorKind,
        steps: Vec<OperatorStep>,
        epoch_at_creation: RegionEpoch,
        created_at_ms: u64,
    ) -> Operator {
        assert!(!steps.is_empty(), "operator for region {region_id} has no steps");
        Operator { region_id, kind, steps, current_step: 0, created_at_ms, epoch_at_creation }
    }

    /// The step to send now, `None` once finished.
    pub fn current(&self) -> Option<&OperatorStep> {
        self.steps.get(self.current_step)
    }

    /// True once the region has shown every step done.
    pub fn is_finished(&self) -> bool {
        self.current_step >= self.steps.len()
    }

    /// Moves past every step the reported region shows done, in order; returns how many.
    pub fn advance(&mut self, region: &Region, leader: Option<&Peer>) -> usize {
        let before = self.current_step;
        while self.current().is_some_and(|step| step_is_done(step, region, leader)) {
            self.current_step += 1;
        }
        self.current_step - before
    }

    /// Membership steps done so far: how far `conf_ver` may have moved since creation.
    pub fn membership_steps_done(&self) -> u64 {
        self.steps[..self.current_step].iter().filter(|s| is_membership_step(s)).count() as u64
    }

    /// True when `epoch` is what this operator's own steps can have produced: the same
    /// version, and `conf_ver` moved by no more than the membership steps done.
    pub fn explains_epoch(&self, epoch: &RegionEpoch) -> bool {
        let created = &self.epoch_at_creation;
        epoch.version == created.version
            && epoch.conf_ver >= created.conf_ver
            && epoch.conf_ver - created.conf_ver <= self.membership_steps_done()
    }

    /// True when the operator has run longer than `operator_timeout_ms` at `now_ms`.
    pub fn is_timed_out(&self, now_ms: u64, operator_timeout_ms: u64) -> bool {
        now_ms.saturating_sub(self.created_at_ms) > operator_timeout_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_util::{learner, region, voter};

    fn move_peer_operator() -> Operator {
        let steps = vec![
            OperatorStep::AddLearner { peer: learner(14, 4) },
            OperatorStep::PromoteLearner { peer: voter(14, 4) },
            OperatorStep::TransferLeader { to: voter(12, 2) },
            OperatorStep::RemovePeer { peer: voter(11, 1) },
        ];
        Operator::new(
            1,
            OperatorKind::BalanceRegion,
            steps,
            RegionEpoch { conf_ver: 3, version: 1 },
            0,
        )
    }

    #[test]
    fn steps_are_judged_done_from_the_reported_region_in_order() {
        let mut op = move_peer_operator();
        let start = region(1, "", "", (3, 1), vec![voter(11, 1), voter(12, 2), voter(13, 3)]);
        assert_eq!(op.advance(&start, Some(&voter(11, 1))), 0);

        // The learner appears: AddLearner done, PromoteLearner not yet.
        let mut r = start.clone();
        r.peers.push(learner(14, 4));
        r.epoch.conf_ver = 4;
        assert_eq!(op.advance(&r, Some(&voter(11, 1))), 1);
        assert_eq!(op.current(), Some(&OperatorStep::PromoteLearner { peer: voter(14, 4) }));

        // Promoted, and the leader moved in the same report: two steps at once.
        r.peers[3].role = PeerRole::Voter;
        r.epoch.conf_ver = 5;
        assert_eq!(op.advance(&r, Some(&voter(12, 2))), 2);
        assert_eq!(op.membership_steps_done(), 2);
        assert!(op.explains_epoch(&r.epoch));

        r.peers.remove(0);
        r.epoch.conf_ver = 6;
        assert_eq!(op.advance(&r, Some(&voter(12, 2))), 1);
        assert!(op.is_finished());
        assert_eq!(op.current(), None);
    }

    #[test]
    fn a_later_step_is_not_judged_before_the_earlier_ones() {
        // The leader already is the transfer target, but the learner is not added yet.
        let mut op = move_peer_operator();
        let r = region(1, "", "", (3, 1), vec![voter(11, 1), voter(12, 2)]);
        assert_eq!(op.advance(&r, Some(&voter(12, 2))), 0);
        assert_eq!(op.current_step, 0);
    }

    #[test]
    fn epoch_is_explained_only_by_membership_steps_done() {
        let mut op = move_peer_operator();
        assert!(op.explains_epoch(&RegionEpoch { conf_ver: 3, version: 1 }));
        assert!(!op.explains_epoch(&RegionEpoch { conf_ver: 4, version: 1 }), "nothing done");
        assert!(!op.explains_epoch(&RegionEpoch { conf_ver: 3, version: 2 }), "a split");
        op.current_step = 3; // add, promote and transfer done: two membership changes.
        assert!(op.explains_epoch(&RegionEpoch { conf_ver: 5, version: 1 }));
        assert!(!op.explains_epoch(&RegionEpoch { conf_ver: 6, version: 1 }));
    }

    #[test]
    fn timeout_counts_from_creation() {
        let mut op = move_peer_operator();
        op.created_at_ms = 1_000;
        assert!(!op.is_timed_out(1_500, 500));
        assert!(op.is_timed_out(1_501, 500));
        assert!(!op.is_timed_out(0, 500));
        assert_eq!(OperatorKind::BalanceRegion.as_str(), "balance-region");
    }
}
