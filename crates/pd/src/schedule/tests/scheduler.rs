//! The scheduling round: order and budget, the id allocator running dry, and a small
//! simulated cluster (stores apply each step, regions heartbeat) driven to a balanced,
//! fully replicated state through a store failure, deterministically.

use std::collections::{BTreeMap, BTreeSet};

use minikv_proto::metapb::PeerRole;
use minikv_proto::pdpb::OperatorStep;

use super::*;
use crate::schedule::{OperatorKind, Scheduler};

#[test]
fn round_runs_the_replica_checker_first_and_keeps_to_its_budget() {
    let mut cluster = cluster(4, &[]);
    // Six one-voter regions on store 1: each short of voters, and store 1 leads them all.
    for id in 1..=6 {
        put_region(&mut cluster, id, &[(10 * id, 1)], 10);
    }
    let scheduler = Scheduler::new(ScheduleConfig { max_operators_per_round: 4, ..config(3) });
    let mut ctl = OperatorController::new(scheduler.config().operator_timeout_ms);
    let created = scheduler.schedule(&cluster, &mut ctl, NOW_MS, &mut ids_from(100));
    assert_eq!(created, vec![1, 2, 3, 4]);
    assert!(ctl.operators().all(|op| op.kind == OperatorKind::Replica));
    // The new peers spread over stores 2, 3, 4, 2 as the round counts its own operators.
    let targets: Vec<u64> = ctl
        .operators()
        .map(|op| match &op.steps[0] {
            OperatorStep::AddLearner { peer } => peer.store_id,
            other => panic!("unexpected first step {other:?}"),
        })
        .collect();
    assert_eq!(targets, vec![2, 3, 4, 2]);
    // The next round picks up the rest; regions with operators are left alone.
    let created = scheduler.schedule(&cluster, &mut ctl, NOW_MS, &mut ids_from(200));
    assert_eq!(created, vec![5, 6]);
    assert_eq!(ctl.counts(OperatorKind::Replica).created, 6);
}

#[test]
fn round_stops_asking_for_ids_once_the_allocator_runs_dry() {
    let mut cluster = cluster(4, &[]);
    for id in 1..=3 {
        put_region(&mut cluster, id, &[(10 * id, 1)], 10);
    }
    let scheduler = Scheduler::new(config(3));
    let mut ctl = OperatorController::new(scheduler.config().operator_timeout_ms);
    let mut calls = 0;
    let mut one_id = || {
        calls += 1;
        (calls == 1).then_some(100)
    };
    assert_eq!(scheduler.schedule(&cluster, &mut ctl, NOW_MS, &mut one_id), vec![1]);
    assert_eq!(calls, 2, "one id handed out, one refusal, then no more asking");
}

/// A small cluster run round by round: PD schedules, each region heartbeats, its leader does
/// the step PD answers with, and heartbeats the result.
struct Sim {
    cluster: Cluster,
    ctl: OperatorController,
    scheduler: Scheduler,
    now_ms: u64,
    next_peer_id: u64,
    dead_stores: BTreeSet<u64>,
    /// Regions that have had `max_replicas` voters; they must never drop below again.
    replicated: BTreeSet<u64>,
}

const SIM_ROUND_MS: u64 = 1_000;

/// A region id, its peers as (store id, role), and its leader's store id.
type RegionLayout = (u64, Vec<(u64, PeerRole)>, u64);

impl Sim {
    /// Five stores; eight 10-byte regions, each with one voter on store 1.
    fn new() -> Sim {
        let mut cluster = cluster(5, &[]);
        for id in 1..=8 {
            put_region(&mut cluster, id, &[(1_000 + id, 1)], 10);
        }
        let config = ScheduleConfig { operator_timeout_ms: 20 * SIM_ROUND_MS, ..config(3) };
        let ctl = OperatorController::new(config.operator_timeout_ms);
        let (scheduler, replicated) = (Scheduler::new(config), BTreeSet::new());
        let dead_stores = BTreeSet::new();
        Sim {
            cluster,
            ctl,
            scheduler,
            now_ms: NOW_MS,
            next_peer_id: 2_000,
            dead_stores,
            replicated,
        }
    }

    fn round(&mut self) {
        let live: Vec<u64> = self.cluster.stores().map(|s| s.id()).collect();
        for store_id in live.into_iter().filter(|s| !self.dead_stores.contains(s)) {
            heartbeat_store(&mut self.cluster, store_id, self.now_ms);
        }
        let next = &mut self.next_peer_id;
        let mut alloc = || {
            *next += 1;
            Some(*next)
        };
        self.scheduler.schedule(&self.cluster, &mut self.ctl, self.now_ms, &mut alloc);
        let region_ids: Vec<u64> = self.cluster.regions().iter().map(|r| r.id()).collect();
        for id in region_ids {
            let mut hb = heartbeat_of(self.cluster.region(id).unwrap());
            if self.dead_stores.contains(&hb.leader.store_id) {
                // Raft elects a live voter.
                let live_voter =
                    hb.region.peers.iter().find(|p| {
                        p.role == PeerRole::Voter && !self.dead_stores.contains(&p.store_id)
                    });
                hb.leader = live_voter.expect("a live voter").clone();
                hb.term += 1;
            }
            self.report(&hb);
            let step = self.ctl.on_heartbeat(self.cluster.region(id).unwrap(), self.now_ms);
            let Some(step) = step else { continue };
            // A dead store does nothing it is asked to; the operator times out.
            let blocked = match &step {
                OperatorStep::AddLearner { peer } | OperatorStep::PromoteLearner { peer } => {
                    self.dead_stores.contains(&peer.store_id)
                }
                OperatorStep::TransferLeader { to } => self.dead_stores.contains(&to.store_id),
                OperatorStep::RemovePeer { .. } => false,
            };
            if !blocked {
                apply_step(&mut hb, &step);
                self.report(&hb);
            }
        }
        self.now_ms += SIM_ROUND_MS;
    }

    fn report(&mut self, hb: &RegionHeartbeat) {
        self.cluster.process_region_heartbeat(hb, self.now_ms).expect("a fresh heartbeat");
        self.cluster.regions().check_invariants();
        let voters = hb.region.peers.iter().filter(|p| p.role == PeerRole::Voter).count();
        let max_replicas = self.scheduler.config().max_replicas;
        if voters >= max_replicas {
            self.replicated.insert(hb.region.id);
        }
        assert!(
            !self.replicated.contains(&hb.region.id) || voters >= max_replicas,
            "region {} fell to {voters} voters: {hb:?}",
            hb.region.id
        );
    }

    /// Each region's peers as (store id, role), and its leader's store, in region id order.
    fn layout(&self) -> Vec<RegionLayout> {
        let layout = self.cluster.regions().iter().map(|r| {
            let peers = r.region.peers.iter().map(|p| (p.store_id, p.role)).collect();
            (r.id(), peers, r.leader_store_id().unwrap())
        });
        layout.collect()
    }
}

fn run_with_store_failure() -> Sim {
    let mut sim = Sim::new();
    for round in 0..120 {
        if round == 30 {
            sim.dead_stores.insert(2);
        }
        sim.round();
    }
    sim
}

#[test]
fn cluster_converges_replicated_and_balanced_through_a_store_failure() {
    let sim = run_with_store_failure();
    assert!(sim.ctl.is_empty(), "operators left: {:?}", sim.ctl.operators().collect::<Vec<_>>());
    for (id, peers, _) in sim.layout() {
        let stores: Vec<u64> = peers.iter().map(|(s, _)| *s).collect();
        assert_eq!(peers.len(), 3, "region {id}: {peers:?}");
        assert!(peers.iter().all(|(_, role)| *role == PeerRole::Voter), "region {id}: {peers:?}");
        assert!(!stores.contains(&2), "region {id} still has a peer on the dead store");
    }
    let loads = sim.cluster.regions().store_loads();
    let live: Vec<u64> = vec![1, 3, 4, 5];
    let leaders: BTreeMap<u64, u64> =
        live.iter().map(|s| (*s, loads.get(s).map_or(0, |l| l.leader_count))).collect();
    let sizes: BTreeMap<u64, u64> =
        live.iter().map(|s| (*s, loads.get(s).map_or(0, |l| l.region_size_bytes))).collect();
    let spread = |m: &BTreeMap<u64, u64>| m.values().max().unwrap() - m.values().min().unwrap();
    assert!(spread(&leaders) <= 1, "leaders per store {leaders:?}");
    assert!(spread(&sizes) <= 2 * 10, "bytes per store {sizes:?}");
    let replica = sim.ctl.counts(OperatorKind::Replica);
    assert!(replica.finished >= 8 * 2, "{replica:?}");
    assert!(sim.ctl.counts(OperatorKind::BalanceRegion).finished > 0);
    assert!(sim.ctl.counts(OperatorKind::BalanceLeader).finished > 0);
}

#[test]
fn simulation_is_deterministic() {
    let (a, b) = (run_with_store_failure(), run_with_store_failure());
    assert_eq!(a.layout(), b.layout());
    for kind in OperatorKind::ALL {
        assert_eq!(a.ctl.counts(kind), b.ctl.counts(kind), "{}", kind.as_str());
    }
}
