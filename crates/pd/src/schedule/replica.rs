//! The replica checker: keeps each region at `max_replicas` healthy voters (adds missing
//! ones, replaces those on down stores, removes extra ones and stray learners).

use minikv_proto::metapb::{Peer, PeerRole};
use minikv_proto::pdpb::OperatorStep;

use super::{
    Operator, OperatorKind, PeerIdAlloc, ScheduleView, add_voter_steps, remove_peer_steps,
};
use crate::cluster::CachedRegion;

/// The operator that brings `region` one step nearer to `max_replicas` healthy voters, if it
/// needs one and one can be made now. Grows before it shrinks, so a region never drops below
/// `max_replicas` voters to replace a peer; never removes the leader without moving
/// leadership first. Regions without a known leader or in a joint configuration are left
/// alone.
pub fn check_replicas(
    view: &ScheduleView,
    region: &CachedRegion,
    alloc: &mut PeerIdAlloc,
) -> Option<Operator> {
    let leader = region.leader.as_ref()?;
    let peers = &region.region.peers;
    if peers.iter().any(|p| matches!(p.role, PeerRole::IncomingVoter | PeerRole::DemotingVoter)) {
        return None;
    }
    let max_replicas = view.config.max_replicas;
    let voters: Vec<&Peer> = peers.iter().filter(|p| p.role == PeerRole::Voter).collect();
    let learners: Vec<&Peer> = peers.iter().filter(|p| p.role == PeerRole::Learner).collect();
    let make = |steps| {
        Operator::new(region.id(), OperatorKind::Replica, steps, region.region.epoch, view.now_ms)
    };

    // A learner on a dead store only costs: drop it.
    if let Some(learner) = learners.iter().find(|p| view.is_unhealthy(region, p)) {
        return Some(make(vec![OperatorStep::RemovePeer { peer: (*learner).clone() }]));
    }
    // The unhealthy voter to replace or remove, a follower before the leader.
    let unhealthy_voter = voters
        .iter()
        .filter(|p| view.is_unhealthy(region, p))
        .min_by_key(|p| (p.id == leader.id, p.store_id))
        .copied();

    if voters.len() < max_replicas || (voters.len() == max_replicas && unhealthy_voter.is_some()) {
        // Grow by one voter: promote a learner left behind, else add a new one.
        let (mut steps, new_voter) = match learners.first() {
            // Let it catch up before it votes.
            Some(learner) if region.is_pending(learner.id) => return None,
            Some(learner) => {
                let voter = Peer { role: PeerRole::Voter, ..(*learner).clone() };
                (vec![OperatorStep::PromoteLearner { peer: voter.clone() }], voter)
            }
            None => {
                let store_id = view.pick_store_for_new_peer(&region.region)?;
                let peer_id = alloc()?;
                let voter = Peer { id: peer_id, store_id, role: PeerRole::Voter };
                (add_voter_steps(peer_id, store_id), voter)
            }
        };
        if voters.len() == max_replicas {
            let victim = unhealthy_voter.expect("replacing needs an unhealthy voter");
            steps.extend(remove_peer_steps(view, region, victim, Some(&new_voter))?);
        }
        return Some(make(steps));
    }

    if voters.len() > max_replicas {
        // Remove a dead voter first, else the follower on the store holding the most regions.
        let victim = unhealthy_voter.or_else(|| {
            voters
                .iter()
                .filter(|p| p.id != leader.id)
                .max_by_key(|p| (view.load(p.store_id).region_count, p.store_id))
                .copied()
        })?;
        return Some(make(remove_peer_steps(view, region, victim, None)?));
    }

    // A full set of healthy voters: a learner left over (e.g. by a cancelled move) goes.
    let learner = learners.first()?;
    Some(make(vec![OperatorStep::RemovePeer { peer: (*learner).clone() }]))
}
