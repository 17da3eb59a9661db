//! The placement checks of runs with PD nodes, after the heal: every region has its configured
//! number of voters, every replica on a live store (PD's replica checker did its work, lost
//! stores included), and leaders and replicas per live store are balanced within the
//! schedulers' tolerance.

use std::collections::BTreeMap;

use minikv_proto::metapb::{PeerRole, Region, RegionId, StoreId};
use minikv_raft::StateRole;
use minikv_server::sim_cluster::SimCluster;

use crate::report::CheckResult;

/// Leaders per live store may differ by this many (balance-leader's tolerance).
pub const LEADER_TOLERANCE: u64 = 1;
/// Replicas per live store may differ by this many (balance-region moves a region only when
/// the gap is more than twice its size; every region weighs at least one).
pub const REPLICA_TOLERANCE: u64 = 2;

/// Live stores: up, and not lost for good.
fn live_stores(c: &SimCluster) -> Vec<StoreId> {
    c.store_ids().into_iter().filter(|id| c.is_up(*id) && !c.is_lost(*id)).collect()
}

/// Every region as its leader in the highest term among live stores reports it, with that
/// leader's store.
fn regions(c: &SimCluster) -> BTreeMap<RegionId, (u64, StoreId, Region)> {
    let mut out: BTreeMap<RegionId, (u64, StoreId, Region)> = BTreeMap::new();
    for id in live_stores(c) {
        for (region_id, status) in c.probe(id).peers {
            if status.role != StateRole::Leader {
                continue;
            }
            if out.get(&region_id).is_none_or(|(term, _, _)| status.term > *term) {
                out.insert(region_id, (status.term, id, status.region));
            }
        }
    }
    out
}

/// `Ok` with a summary once every region has `min(max_replicas, live stores)` voters and every
/// peer on a live store; `Err` says what is not there yet.
pub fn replicas_placed(c: &SimCluster, max_replicas: u64) -> Result<String, String> {
    let live = live_stores(c);
    let want = max_replicas.min(live.len() as u64) as usize;
    let regions = regions(c);
    if regions.is_empty() {
        return Err("no region has a leader on a live store".into());
    }
    for (id, (_, _, region)) in &regions {
        let voters: Vec<StoreId> =
            region.peers.iter().filter(|p| p.role == PeerRole::Voter).map(|p| p.store_id).collect();
        if voters.len() != want {
            return Err(format!("region {id} has voters on {voters:?}, not {want}"));
        }
        if let Some(p) = region.peers.iter().find(|p| !live.contains(&p.store_id)) {
            return Err(format!("region {id} keeps peer {} on dead store {}", p.id, p.store_id));
        }
    }
    Ok(format!("{} region(s), {want} voters each, all on live stores {live:?}", regions.len()))
}

/// Leaders and replicas per live store within the tolerances.
pub fn balance(c: &SimCluster) -> CheckResult {
    let live = live_stores(c);
    let mut leaders: BTreeMap<StoreId, u64> = live.iter().map(|id| (*id, 0)).collect();
    let mut replicas = leaders.clone();
    for (_, leader, region) in regions(c).into_values() {
        *leaders.entry(leader).or_default() += 1;
        for p in &region.peers {
            *replicas.entry(p.store_id).or_default() += 1;
        }
    }
    let gap = |m: &BTreeMap<StoreId, u64>| {
        m.values().max().copied().unwrap_or(0) - m.values().min().copied().unwrap_or(0)
    };
    let mut problems = Vec::new();
    if gap(&leaders) > LEADER_TOLERANCE {
        problems
            .push(format!("leaders per store {leaders:?} differ by more than {LEADER_TOLERANCE}"));
    }
    if gap(&replicas) > REPLICA_TOLERANCE {
        problems.push(format!(
            "replicas per store {replicas:?} differ by more than {REPLICA_TOLERANCE}"
        ));
    }
    let detail = (!problems.is_empty()).then(|| problems.join("; "));
    CheckResult { valid: detail.is_none(), ms: 0, detail }
}
