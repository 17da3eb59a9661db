//! The balance schedulers: balance-leader moves a leader from the store leading the most
//! regions to one leading few; balance-region moves a peer from the store holding the most
//! data to one holding little, only when the move cannot reverse the imbalance.

use minikv_proto::metapb::{Peer, PeerRole, StoreId};
use minikv_proto::pdpb::OperatorStep;

use super::{
    Operator, OperatorController, OperatorKind, PeerIdAlloc, ScheduleView, add_voter_steps,
    region_weight_bytes, remove_peer_steps,
};
use crate::cluster::CachedRegion;

/// True when the region may be moved by a balancer now: a known leader, no operator, no
/// pending or down peers, and a settled membership of exactly `max_replicas` voters (anything
/// else is the replica checker's business).
fn is_balanceable(view: &ScheduleView, controller: &OperatorController, r: &CachedRegion) -> bool {
    r.leader.is_some()
        && !controller.has_operator(r.id())
        && r.pending_peers.is_empty()
        && r.down_peers.is_empty()
        && r.region.peers.iter().all(|p| p.role == PeerRole::Voter)
        && r.region.peers.len() == view.config.max_replicas
        && r.region.peers.iter().all(|p| !view.is_unhealthy(r, p))
}

/// A leader transfer from the store leading the most regions (by the view's counts) to the
/// voter's store leading the fewest, when the gap exceeds `leader_count_tolerance`. Sources
/// are tried busiest first; within one, the target with the fewest leaders wins, ties by
/// store id then region id.
pub fn balance_leader(view: &ScheduleView, controller: &OperatorController) -> Option<Operator> {
    let mut sources: Vec<(StoreId, u64)> = view
        .cluster
        .stores()
        .map(|s| (s.id(), view.load(s.id()).leader_count))
        .filter(|(_, leaders)| *leaders > 0)
        .collect();
    sources.sort_by_key(|(id, leaders)| (std::cmp::Reverse(*leaders), *id));
    for (source, source_leaders) in sources {
        let mut best: Option<(u64, StoreId, &CachedRegion, &Peer)> = None;
        let led_here =
            view.cluster.regions().iter().filter(|r| r.leader_store_id() == Some(source));
        for region in led_here.filter(|r| is_balanceable(view, controller, r)) {
            for peer in region.region.peers.iter().filter(|p| p.store_id != source) {
                if !view.accepts_new_load(peer.store_id) {
                    continue;
                }
                let target_leaders = view.load(peer.store_id).leader_count;
                let key = (target_leaders, peer.store_id);
                if best.is_none_or(|(l, s, _, _)| key < (l, s)) {
                    best = Some((target_leaders, peer.store_id, region, peer));
                }
            }
        }
        let Some((target_leaders, _, region, to)) = best else { continue };
        if source_leaders.saturating_sub(target_leaders) > view.config.leader_count_tolerance {
            let steps = vec![OperatorStep::TransferLeader { to: to.clone() }];
            let (id, epoch) = (region.id(), region.region.epoch);
            return Some(Operator::new(id, OperatorKind::BalanceLeader, steps, epoch, view.now_ms));
        }
    }
    None
}

/// A peer move (add a learner on the target, promote it, move leadership away if the source
/// leads, remove the source's peer) from the Up store holding the most region weight to the
/// store accepting new peers that holds the least, only when their gap exceeds twice the
/// region's weight: after the move the source still holds at least as much as the target, so
/// regions never ping-pong. Sources are tried heaviest first; on one, regions it follows come
/// before regions it leads (no leader transfer needed), each in region id order.
pub fn balance_region(
    view: &ScheduleView,
    controller: &OperatorController,
    alloc: &mut PeerIdAlloc,
) -> Option<Operator> {
    let mut sources = view.up_stores();
    sources.sort_by_key(|(id, load)| (std::cmp::Reverse(load.region_size_bytes), *id));
    for (source, source_load) in sources {
        let mut candidates: Vec<&CachedRegion> = view
            .cluster
            .regions()
            .iter()
            .filter(|r| r.region.peer_on_store(source).is_some())
            .filter(|r| is_balanceable(view, controller, r))
            .collect();
        // Stable: region id order is kept within followers and within leaders.
        candidates.sort_by_key(|r| r.leader_store_id() == Some(source));
        for region in candidates {
            let Some(target) = view.pick_store_for_weight(region) else { continue };
            let target_bytes = view.load(target).region_size_bytes;
            let gap_bytes = source_load.region_size_bytes.saturating_sub(target_bytes);
            if gap_bytes <= 2 * region_weight_bytes(region) {
                continue;
            }
            let peer_id = alloc()?;
            let mut steps = add_voter_steps(peer_id, target);
            let new_voter = Peer { id: peer_id, store_id: target, role: PeerRole::Voter };
            let victim = region.region.peer_on_store(source).expect("candidate has a source peer");
            let remove = remove_peer_steps(view, region, victim, Some(&new_voter));
            steps.extend(remove.expect("the new voter can always take the leadership"));
            let (id, epoch) = (region.id(), region.region.epoch);
            return Some(Operator::new(id, OperatorKind::BalanceRegion, steps, epoch, view.now_ms));
        }
    }
    None
}

impl ScheduleView<'_> {
    /// The store a balanced region's new peer goes to: accepting new peers, holding none of
    /// the region, the least region weight first, then lowest id.
    fn pick_store_for_weight(&self, region: &CachedRegion) -> Option<StoreId> {
        self.cluster
            .stores()
            .map(|s| s.id())
            .filter(|id| self.accepts_new_load(*id) && region.region.peer_on_store(*id).is_none())
            .min_by_key(|id| (self.load(*id).region_size_bytes, *id))
    }
}
