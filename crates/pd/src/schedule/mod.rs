//! Operators (steps sent to a region's leader, one operator per region) and the checkers and
//! schedulers that create them; `Scheduler::schedule` is the round the PD leader runs.

#![warn(missing_docs)]

mod balance;
mod controller;
mod operator;
mod replica;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use balance::{balance_leader, balance_region};
pub use controller::{OperatorController, OperatorCounts};
pub use operator::{Operator, OperatorKind, is_membership_step, step_is_done};
pub use replica::check_replicas;

use minikv_proto::metapb::{Peer, PeerRole, Region, RegionId, StoreId};
use minikv_proto::pdpb::OperatorStep;

use crate::cluster::{CachedRegion, Cluster, StoreLoad, StoreState};

/// Hands out fresh peer ids; `None` means none is available now (the round stops asking).
pub type PeerIdAlloc<'a> = dyn FnMut() -> Option<u64> + 'a;

/// Knobs of scheduling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Voters every region should have.
    pub max_replicas: usize,
    /// Give `OperatorController::new` this: operators running longer are dropped.
    pub operator_timeout_ms: u64,
    /// Leaders are moved only while the busiest store leads more than this many regions
    /// beyond the target store.
    pub leader_count_tolerance: u64,
    /// Operators one `schedule` call creates at most.
    pub max_operators_per_round: usize,
    /// Running replica operators at most.
    pub replica_operator_limit: usize,
    /// Running balance-leader operators at most.
    pub balance_leader_operator_limit: usize,
    /// Running balance-region operators at most.
    pub balance_region_operator_limit: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            max_replicas: 3,
            operator_timeout_ms: 10 * 60 * 1_000,
            leader_count_tolerance: 1,
            max_operators_per_round: 4,
            replica_operator_limit: 64,
            balance_leader_operator_limit: 4,
            balance_region_operator_limit: 4,
        }
    }
}

impl ScheduleConfig {
    /// The running-operator limit for `kind`.
    pub fn operator_limit(&self, kind: OperatorKind) -> usize {
        match kind {
            OperatorKind::Replica => self.replica_operator_limit,
            OperatorKind::BalanceLeader => self.balance_leader_operator_limit,
            OperatorKind::BalanceRegion => self.balance_region_operator_limit,
        }
    }
}

/// The size a region weighs in balancing: at least one byte, so regions that report no size
/// still move (by count), and each move narrows the gap it was made for.
pub fn region_weight_bytes(region: &CachedRegion) -> u64 {
    region.approximate_size_bytes.max(1)
}

/// What one scheduling round sees: the cluster, and per-store loads that already count the
/// remaining steps of running operators and of those this round created.
#[derive(Debug)]
pub struct ScheduleView<'a> {
    /// The cluster as PD holds it.
    pub cluster: &'a Cluster,
    /// The round's knobs.
    pub config: &'a ScheduleConfig,
    /// The round's time: stamps new operators and judges store liveness.
    pub now_ms: u64,
    loads: BTreeMap<StoreId, StoreLoad>,
}

impl<'a> ScheduleView<'a> {
    /// The view of `cluster` at `now_ms`, counting `controller`'s running operators.
    pub fn new(
        cluster: &'a Cluster,
        config: &'a ScheduleConfig,
        controller: &OperatorController,
        now_ms: u64,
    ) -> ScheduleView<'a> {
        let mut loads: BTreeMap<StoreId, StoreLoad> =
            cluster.stores().map(|s| (s.id(), StoreLoad::default())).collect();
        for r in cluster.regions().iter() {
            for peer in &r.region.peers {
                let load = loads.entry(peer.store_id).or_default();
                load.region_count += 1;
                load.region_size_bytes += region_weight_bytes(r);
            }
            if let Some(store_id) = r.leader_store_id() {
                loads.entry(store_id).or_default().leader_count += 1;
            }
        }
        let mut view = ScheduleView { cluster, config, now_ms, loads };
        for op in controller.operators() {
            view.apply(op);
        }
        view
    }

    /// The store's load (weights, not raw sizes), counting operators' remaining steps.
    pub fn load(&self, store_id: StoreId) -> StoreLoad {
        self.loads.get(&store_id).copied().unwrap_or_default()
    }

    /// Counts the remaining steps of `op` into the stores' loads.
    pub fn apply(&mut self, op: &Operator) {
        let Some(region) = self.cluster.region(op.region_id) else { return };
        let weight_bytes = region_weight_bytes(region);
        let mut leader_store = region.leader_store_id();
        for step in &op.steps[op.current_step..] {
            match step {
                OperatorStep::AddLearner { peer } => {
                    let load = self.loads.entry(peer.store_id).or_default();
                    load.region_count += 1;
                    load.region_size_bytes += weight_bytes;
                }
                OperatorStep::PromoteLearner { .. } => {}
                OperatorStep::TransferLeader { to } => {
                    if let Some(from) = leader_store {
                        let load = self.loads.entry(from).or_default();
                        load.leader_count = load.leader_count.saturating_sub(1);
                    }
                    self.loads.entry(to.store_id).or_default().leader_count += 1;
                    leader_store = Some(to.store_id);
                }
                OperatorStep::RemovePeer { peer } => {
                    let load = self.loads.entry(peer.store_id).or_default();
                    load.region_count = load.region_count.saturating_sub(1);
                    load.region_size_bytes = load.region_size_bytes.saturating_sub(weight_bytes);
                }
            }
        }
    }

    /// Stores that are neither Down nor Tombstone, with their loads, in store id order.
    pub fn up_stores(&self) -> Vec<(StoreId, StoreLoad)> {
        self.cluster
            .stores()
            .filter(|s| self.cluster.store_state(s.id(), self.now_ms) == Some(StoreState::Up))
            .map(|s| (s.id(), self.load(s.id())))
            .collect()
    }

    /// True when new peers or leaders may go to the store now.
    pub fn accepts_new_load(&self, store_id: StoreId) -> bool {
        self.cluster.store_accepts_new_load(store_id, self.now_ms)
    }

    /// True when `peer` must be replaced: its store is Down or Tombstone, or the leader has
    /// reported it down for longer than `max_store_down_ms`. A store PD does not know gives no
    /// evidence either way, so its peers count as healthy.
    pub fn is_unhealthy(&self, region: &CachedRegion, peer: &Peer) -> bool {
        if minikv_hooks::canary(minikv_hooks::Canary::PdIgnoresDownStores) {
            // The planted bug: no peer is ever replaced, a dead store's included.
            return false;
        }
        let max_down_ms = self.cluster.config().max_store_down_ms;
        matches!(
            self.cluster.store_state(peer.store_id, self.now_ms),
            Some(StoreState::Down | StoreState::Tombstone)
        ) || region.down_for_ms(peer.id).is_some_and(|down_ms| down_ms > max_down_ms)
    }

    /// The store to put a new peer of `region` on: one accepting new load and holding no peer
    /// of the region, least regions first, then lowest id.
    pub fn pick_store_for_new_peer(&self, region: &Region) -> Option<StoreId> {
        self.cluster
            .stores()
            .map(|s| s.id())
            .filter(|id| self.accepts_new_load(*id) && region.peer_on_store(*id).is_none())
            .min_by_key(|id| (self.load(*id).region_count, *id))
    }

    /// A voter of `region` that could lead it instead of `leaving` (healthy, caught up, on a
    /// store accepting leaders), fewest leaders first, then lowest store id.
    pub fn pick_new_leader(&self, region: &CachedRegion, leaving: &Peer) -> Option<Peer> {
        region
            .region
            .peers
            .iter()
            .filter(|p| p.role == PeerRole::Voter && p.id != leaving.id)
            .filter(|p| !self.is_unhealthy(region, p) && !region.is_pending(p.id))
            .filter(|p| self.accepts_new_load(p.store_id))
            .min_by_key(|p| (self.load(p.store_id).leader_count, p.store_id))
            .cloned()
    }
}

/// The steps that remove `victim` from `region`, leadership first moved away if it holds it
/// (to a healthy voter, else to `fallback_leader`, e.g. a voter the same operator just added).
/// `None` when no one can take the leadership.
pub fn remove_peer_steps(
    view: &ScheduleView,
    region: &CachedRegion,
    victim: &Peer,
    fallback_leader: Option<&Peer>,
) -> Option<Vec<OperatorStep>> {
    let mut steps = Vec::new();
    if region.leader.as_ref().is_some_and(|l| l.id == victim.id) {
        let to = view.pick_new_leader(region, victim).or_else(|| fallback_leader.cloned())?;
        steps.push(OperatorStep::TransferLeader { to });
    }
    steps.push(OperatorStep::RemovePeer { peer: victim.clone() });
    Some(steps)
}

/// The steps that bring a new voter onto `store_id`: add it as a learner, then promote it.
pub fn add_voter_steps(peer_id: u64, store_id: StoreId) -> Vec<OperatorStep> {
    let peer = Peer { id: peer_id, store_id, role: PeerRole::Learner };
    let voter = Peer { role: PeerRole::Voter, ..peer.clone() };
    vec![OperatorStep::AddLearner { peer }, OperatorStep::PromoteLearner { peer: voter }]
}

/// The periodic scheduling round the PD leader runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: ScheduleConfig,
}

impl Scheduler {
    /// A scheduler with `config`; panics if `max_replicas` is 0.
    pub fn new(config: ScheduleConfig) -> Scheduler {
        assert!(config.max_replicas >= 1, "max_replicas must be at least 1");
        Scheduler { config }
    }

    /// The knobs this scheduler runs with.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// One round: operators of vanished or silent regions swept away (see
    /// `OperatorController::sweep`), then the replica checker over every region (id order), then
    /// balance-leader,
    /// then balance-region, creating at most `max_operators_per_round` operators (and never
    /// more running per kind than its limit). Returns the regions given an operator, in order.
    /// Deterministic for equal inputs.
    pub fn schedule(
        &self,
        cluster: &Cluster,
        controller: &mut OperatorController,
        now_ms: u64,
        alloc: &mut PeerIdAlloc,
    ) -> Vec<RegionId> {
        // Once the allocator has nothing, stop asking it this round.
        let mut ids_exhausted = false;
        let mut alloc = || {
            let id = if ids_exhausted { None } else { alloc() };
            ids_exhausted = id.is_none();
            id
        };
        controller.sweep(cluster, now_ms);
        let mut view = ScheduleView::new(cluster, &self.config, controller, now_ms);
        let mut created = Vec::new();
        let room = |controller: &OperatorController, created: &Vec<RegionId>, kind| {
            created.len() < self.config.max_operators_per_round
                && controller.running_count(kind) < self.config.operator_limit(kind)
        };
        for region in cluster.regions().iter() {
            if !room(controller, &created, OperatorKind::Replica) {
                break;
            }
            if controller.has_operator(region.id()) {
                continue;
            }
            if let Some(op) = check_replicas(&view, region, &mut alloc) {
                start(&mut view, controller, &mut created, op);
            }
        }
        while room(controller, &created, OperatorKind::BalanceLeader) {
            let Some(op) = balance_leader(&view, controller) else { break };
            start(&mut view, controller, &mut created, op);
        }
        while room(controller, &created, OperatorKind::BalanceRegion) {
            let Some(op) = balance_region(&view, controller, &mut alloc) else { break };
            start(&mut view, controller, &mut created, op);
        }
        created
    }
}

fn start(
    view: &mut ScheduleView,
    controller: &mut OperatorController,
    created: &mut Vec<RegionId>,
    op: Operator,
) {
    view.apply(&op);
    let region_id = op.region_id;
    assert!(controller.add(op), "region {region_id} already had an operator");
    created.push(region_id);
}
