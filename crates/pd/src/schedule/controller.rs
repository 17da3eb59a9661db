//! The operator controller: at most one operator per region, advanced by the region's
//! heartbeats, dropped when finished, timed out or overtaken by an epoch change its steps do
//! not explain; with counts per kind for the report.

use std::collections::BTreeMap;

use minikv_proto::metapb::RegionId;
use minikv_proto::pdpb::OperatorStep;

use super::operator::{Operator, OperatorKind};
use crate::cluster::{CachedRegion, Cluster};

/// What became of the operators of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorCounts {
    /// Operators started.
    pub created: u64,
    /// Operators whose every step the region showed done.
    pub finished: u64,
    /// Dropped because the region's epoch moved in a way the steps do not explain, or by an
    /// explicit `cancel`.
    pub cancelled: u64,
    /// Operators dropped for running longer than `operator_timeout_ms`.
    pub timed_out: u64,
}

/// The running operators, one per region at most.
#[derive(Debug, Clone)]
pub struct OperatorController {
    operator_timeout_ms: u64,
    operators: BTreeMap<RegionId, Operator>,
    counts: BTreeMap<OperatorKind, OperatorCounts>,
}

impl OperatorController {
    /// Operators running longer than `operator_timeout_ms` are dropped.
    pub fn new(operator_timeout_ms: u64) -> OperatorController {
        OperatorController {
            operator_timeout_ms,
            operators: BTreeMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Starts `op` unless its region already has one; true when started.
    pub fn add(&mut self, op: Operator) -> bool {
        if self.operators.contains_key(&op.region_id) {
            return false;
        }
        self.counts.entry(op.kind).or_default().created += 1;
        self.operators.insert(op.region_id, op);
        true
    }

    /// Carries on `op`, saved by an earlier PD leader, unless its region already has one; it
    /// was counted where it was created.
    pub fn restore(&mut self, op: Operator) -> bool {
        if self.operators.contains_key(&op.region_id) {
            return false;
        }
        self.operators.insert(op.region_id, op);
        true
    }

    /// The region's running operator.
    pub fn get(&self, region_id: RegionId) -> Option<&Operator> {
        self.operators.get(&region_id)
    }

    /// True when the region has a running operator.
    pub fn has_operator(&self, region_id: RegionId) -> bool {
        self.operators.contains_key(&region_id)
    }

    /// Running operators, in region id order.
    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values()
    }

    /// Running operators.
    pub fn len(&self) -> usize {
        self.operators.len()
    }

    /// True when no operator runs.
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }

    /// Running operators of `kind`.
    pub fn running_count(&self, kind: OperatorKind) -> usize {
        self.operators.values().filter(|op| op.kind == kind).count()
    }

    /// What became of the operators of `kind` so far.
    pub fn counts(&self, kind: OperatorKind) -> OperatorCounts {
        self.counts.get(&kind).copied().unwrap_or_default()
    }

    /// Drops the region's operator (e.g. the region was merged away), counting it cancelled.
    pub fn cancel(&mut self, region_id: RegionId) -> Option<Operator> {
        let op = self.operators.remove(&region_id)?;
        self.counts.entry(op.kind).or_default().cancelled += 1;
        Some(op)
    }

    /// Drops, without waiting for a heartbeat, the operators whose region PD no longer holds
    /// (merged away: cancelled) and those past their timeout (a region that went silent:
    /// timed out), so they stop counting against the limits. Returns their regions.
    pub fn sweep(&mut self, cluster: &Cluster, now_ms: u64) -> Vec<RegionId> {
        let mut dropped = Vec::new();
        let timeout_ms = self.operator_timeout_ms;
        self.operators.retain(|region_id, op| {
            let counts = self.counts.entry(op.kind).or_default();
            if cluster.region(*region_id).is_none() {
                counts.cancelled += 1;
            } else if op.is_timed_out(now_ms, timeout_ms) {
                counts.timed_out += 1;
            } else {
                return true;
            }
            dropped.push(*region_id);
            false
        });
        dropped
    }

    /// Takes an accepted heartbeat of `region`: moves its operator past the steps the region
    /// shows done, drops it if finished, timed out or overtaken by an unexplained epoch, and
    /// returns the step for the leader to do now. The step is sent again on every heartbeat
    /// until the region shows it done (the store side makes each step idempotent).
    pub fn on_heartbeat(&mut self, region: &CachedRegion, now_ms: u64) -> Option<OperatorStep> {
        let op = self.operators.get_mut(&region.id())?;
        op.advance(&region.region, region.leader.as_ref());
        let kind = op.kind;
        let counts = self.counts.entry(kind).or_default();
        if op.is_finished() {
            counts.finished += 1;
        } else if !op.explains_epoch(&region.region.epoch) {
            counts.cancelled += 1;
        } else if op.is_timed_out(now_ms, self.operator_timeout_ms) {
            counts.timed_out += 1;
        } else {
            return op.current().filter(|step| !must_wait(step, region)).cloned();
        }
        self.operators.remove(&region.id());
        None
    }
}

/// A learner is promoted only once it has caught up: a voter that the leader cannot reach, or
/// that still needs a snapshot, counts towards the quorum without helping to form one (one
/// lagging learner promoted in a region of one voter leaves it needing both). The step waits;
/// the operator's timeout still runs.
fn must_wait(step: &OperatorStep, region: &CachedRegion) -> bool {
    match step {
        OperatorStep::PromoteLearner { peer } => {
            region.is_pending(peer.id) || region.down_for_ms(peer.id).is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_util::{learner, region, voter};
    use minikv_proto::metapb::{PeerRole, RegionEpoch};

    const TIMEOUT_MS: u64 = 1_000;

    /// Region 1 on stores 1..=3 at epoch (3, 1), led from store 1.
    fn cached(conf_ver: u64, version: u64) -> CachedRegion {
        CachedRegion {
            region: region(
                1,
                "",
                "",
                (conf_ver, version),
                vec![voter(11, 1), voter(12, 2), voter(13, 3)],
            ),
            leader: Some(voter(11, 1)),
            ..Default::default()
        }
    }

    fn add_voter_operator(region_id: RegionId, created_at_ms: u64) -> Operator {
        let steps = vec![
            OperatorStep::AddLearner { peer: learner(14, 4) },
            OperatorStep::PromoteLearner { peer: voter(14, 4) },
        ];
        let epoch = RegionEpoch { conf_ver: 3, version: 1 };
        Operator::new(region_id, OperatorKind::Replica, steps, epoch, created_at_ms)
    }

    #[test]
    fn one_operator_per_region() {
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        assert!(ctl.add(add_voter_operator(1, 0)));
        assert!(!ctl.add(add_voter_operator(1, 5)), "region 1 is taken");
        assert!(ctl.add(add_voter_operator(2, 0)));
        assert_eq!(ctl.len(), 2);
        assert_eq!(ctl.get(1).unwrap().created_at_ms, 0);
        assert_eq!(ctl.counts(OperatorKind::Replica).created, 2);
        assert_eq!(ctl.running_count(OperatorKind::Replica), 2);
        assert_eq!(ctl.running_count(OperatorKind::BalanceLeader), 0);
    }

    #[test]
    fn heartbeats_walk_the_steps_until_finished() {
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 0));
        let mut r = cached(3, 1);
        assert_eq!(
            ctl.on_heartbeat(&r, 10),
            Some(OperatorStep::AddLearner { peer: learner(14, 4) })
        );
        assert_eq!(
            ctl.on_heartbeat(&r, 20),
            Some(OperatorStep::AddLearner { peer: learner(14, 4) }),
            "resent"
        );
        r.region.peers.push(learner(14, 4));
        r.region.epoch.conf_ver = 4;
        assert_eq!(
            ctl.on_heartbeat(&r, 30),
            Some(OperatorStep::PromoteLearner { peer: voter(14, 4) })
        );
        r.region.peers[3].role = PeerRole::Voter;
        r.region.epoch.conf_ver = 5;
        assert_eq!(ctl.on_heartbeat(&r, 40), None);
        assert!(!ctl.has_operator(1));
        let counts = ctl.counts(OperatorKind::Replica);
        assert_eq!((counts.created, counts.finished, counts.cancelled), (1, 1, 0));
        assert_eq!(ctl.on_heartbeat(&r, 50), None, "no operator, no step");
    }

    #[test]
    fn a_learner_is_promoted_only_once_caught_up_and_heard_from() {
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 0));
        let mut r = cached(4, 1);
        r.region.peers.push(learner(14, 4));
        r.pending_peers = vec![learner(14, 4)];
        assert_eq!(ctl.on_heartbeat(&r, 10), None, "it still needs a snapshot");
        r.pending_peers.clear();
        r.down_peers = vec![minikv_proto::pdpb::DownPeer { peer: learner(14, 4), down_ms: 900 }];
        assert_eq!(ctl.on_heartbeat(&r, 20), None, "the leader does not hear it");
        assert!(ctl.has_operator(1), "waiting, not dropped");
        r.down_peers.clear();
        assert_eq!(
            ctl.on_heartbeat(&r, 30),
            Some(OperatorStep::PromoteLearner { peer: voter(14, 4) })
        );
    }

    #[test]
    fn operator_times_out() {
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 100));
        assert!(ctl.on_heartbeat(&cached(3, 1), 100 + TIMEOUT_MS).is_some());
        assert_eq!(ctl.on_heartbeat(&cached(3, 1), 101 + TIMEOUT_MS), None);
        assert!(!ctl.has_operator(1));
        assert_eq!(ctl.counts(OperatorKind::Replica).timed_out, 1);
    }

    #[test]
    fn finishing_late_still_counts_as_finished() {
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 0));
        let mut r = cached(5, 1);
        r.region.peers.push(voter(14, 4));
        assert_eq!(ctl.on_heartbeat(&r, 10 * TIMEOUT_MS), None);
        assert_eq!(ctl.counts(OperatorKind::Replica).finished, 1);
        assert_eq!(ctl.counts(OperatorKind::Replica).timed_out, 0);
    }

    #[test]
    fn sweep_drops_operators_of_vanished_or_silent_regions() {
        let mut cluster = crate::cluster::test_util::cluster_with_stores(4, 0);
        let held = crate::cluster::test_util::heartbeat(cached(3, 1).region);
        crate::cluster::test_util::put_region(&mut cluster, &held);
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 0)); // Held, silent since creation.
        ctl.add(add_voter_operator(2, 0)); // Not held: merged away.
        assert_eq!(ctl.sweep(&cluster, TIMEOUT_MS), vec![2]);
        assert_eq!(ctl.counts(OperatorKind::Replica).cancelled, 1);
        assert_eq!(ctl.sweep(&cluster, TIMEOUT_MS + 1), vec![1]);
        assert_eq!(ctl.counts(OperatorKind::Replica).timed_out, 1);
        assert!(ctl.is_empty());
    }

    #[test]
    fn unexplained_epoch_change_cancels() {
        // A split (version moved) cancels.
        let mut ctl = OperatorController::new(TIMEOUT_MS);
        ctl.add(add_voter_operator(1, 0));
        assert_eq!(ctl.on_heartbeat(&cached(3, 2), 10), None);
        assert!(!ctl.has_operator(1));

        // A membership change no step of ours made (conf_ver moved, learner absent) cancels.
        ctl.add(add_voter_operator(1, 0));
        assert_eq!(ctl.on_heartbeat(&cached(4, 1), 10), None);

        // Our learner added, then something else changed membership too: one too many.
        ctl.add(add_voter_operator(1, 0));
        let mut r = cached(5, 1);
        r.region.peers.push(learner(14, 4));
        assert_eq!(ctl.on_heartbeat(&r, 10), None);
        assert_eq!(ctl.counts(OperatorKind::Replica).cancelled, 3);

        ctl.add(add_voter_operator(1, 0));
        assert!(ctl.cancel(1).is_some());
        assert!(ctl.cancel(1).is_none());
        assert_eq!(ctl.counts(OperatorKind::Replica).cancelled, 4);
    }
}
