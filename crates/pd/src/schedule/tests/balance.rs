//! balance-region with 1, 3 and 5 replicas, its 2x-size tolerance, down, busy and pending
//! stores and peers; balance-leader with its tolerance and voter-only targets.

use minikv_proto::pdpb::{DownPeer, OperatorStep};

use super::*;
use crate::schedule::{Operator, OperatorKind, balance_leader, balance_region};

fn region_move(cluster: &Cluster, max_replicas: usize) -> Option<Operator> {
    let config = config(max_replicas);
    let ctl = OperatorController::new(config.operator_timeout_ms);
    let op = balance_region(&view(cluster, &config), &ctl, &mut ids_from(100))?;
    assert_eq!(op.kind, OperatorKind::BalanceRegion);
    Some(op)
}

fn leader_move(cluster: &Cluster, max_replicas: usize) -> Option<(u64, OperatorStep)> {
    let config = config(max_replicas);
    let ctl = OperatorController::new(config.operator_timeout_ms);
    let op = balance_leader(&view(cluster, &config), &ctl)?;
    assert_eq!(op.kind, OperatorKind::BalanceLeader);
    assert_eq!(op.steps.len(), 1);
    Some((op.region_id, op.steps[0].clone()))
}

fn add_to(store_id: u64) -> Vec<OperatorStep> {
    vec![
        OperatorStep::AddLearner { peer: learner(100, store_id) },
        OperatorStep::PromoteLearner { peer: voter(100, store_id) },
    ]
}

/// One-replica regions of 10 bytes: store 1 holds four, store 2 two, store 3 one, store 4
/// none. Region ids count up from 1 in that order.
fn one_replica_cluster(down: &[u64]) -> Cluster {
    let mut cluster = cluster(4, down);
    let mut id = 0;
    for (store_id, count) in [(1, 4), (2, 2), (3, 1)] {
        for _ in 0..count {
            id += 1;
            put_region(&mut cluster, id, &[(10 * id, store_id)], 10);
        }
    }
    cluster
}

#[test]
fn one_replica_region_moves_from_heaviest_to_lightest_store_with_its_leadership() {
    let cluster = one_replica_cluster(&[]);
    let op = region_move(&cluster, 1).unwrap();
    assert_eq!(op.region_id, 1);
    let mut expected = add_to(4);
    expected.push(OperatorStep::TransferLeader { to: voter(100, 4) });
    expected.push(OperatorStep::RemovePeer { peer: voter(10, 1) });
    assert_eq!(op.steps, expected);
}

#[test]
fn three_replica_region_moves_a_follower_first() {
    let mut cluster = cluster(4, &[]);
    // Regions 1..=3 on stores 1..=3, region i led from store i; store 4 is empty.
    for id in 1..=3u64 {
        let mut voters = vec![(10 * id + 1, 1), (10 * id + 2, 2), (10 * id + 3, 3)];
        voters.rotate_left(id as usize - 1);
        put_region(&mut cluster, id, &voters, 10);
    }
    let op = region_move(&cluster, 3).unwrap();
    assert_eq!(op.region_id, 2, "store 1 follows region 2 (and leads region 1)");
    let mut expected = add_to(4);
    expected.push(OperatorStep::RemovePeer { peer: voter(21, 1) });
    assert_eq!(op.steps, expected);
}

#[test]
fn five_replica_region_moves_to_the_empty_store() {
    let mut cluster = cluster(6, &[]);
    for id in 1..=3u64 {
        let voters: Vec<(u64, u64)> = (1..=5).map(|s| (10 * id + s, s)).collect();
        put_region(&mut cluster, id, &voters, 10);
    }
    let op = region_move(&cluster, 5).unwrap();
    // Store 1 leads every region: the first region moves, its leadership to store 2.
    let mut expected = add_to(6);
    expected.push(OperatorStep::TransferLeader { to: voter(12, 2) });
    expected.push(OperatorStep::RemovePeer { peer: voter(11, 1) });
    assert_eq!((op.region_id, op.steps), (1, expected));
}

#[test]
fn no_move_while_the_gap_is_at_most_twice_the_region_size() {
    let mut cluster = cluster(2, &[]);
    put_region(&mut cluster, 1, &[(11, 1)], 10);
    put_region(&mut cluster, 2, &[(21, 1)], 10);
    assert!(region_move(&cluster, 1).is_none(), "gap 20 is not more than 2 x 10");
    // One more byte tips it: gap 21 is more than 2 x 10, so the first region moves.
    put_region(&mut cluster, 3, &[(31, 1)], 1);
    assert_eq!(region_move(&cluster, 1).unwrap().region_id, 1);
}

#[test]
fn no_region_moves_to_a_down_or_busy_store_nor_from_a_down_one() {
    // Store 4 is down: the move goes to store 3 (10 bytes; gap 30 > 20).
    let cluster = one_replica_cluster(&[4]);
    let op = region_move(&cluster, 1).unwrap();
    assert_eq!(op.steps[0], OperatorStep::AddLearner { peer: learner(100, 3) });

    // Store 3 busy too: store 2 (gap 20) is too close, nothing moves.
    let mut cluster = one_replica_cluster(&[4]);
    set_flags(&mut cluster, 3, true, false);
    assert!(region_move(&cluster, 1).is_none());

    // The heaviest store is down: it is no source (the replica checker replaces its
    // peers); store 2 (20) to store 4 (0) is at the tolerance, so nothing moves.
    let cluster = one_replica_cluster(&[1]);
    assert!(region_move(&cluster, 1).is_none());
}

#[test]
fn regions_with_pending_or_down_peers_are_skipped() {
    let mut cluster = cluster(4, &[]);
    // Stores 1..=3 hold regions 1..=3, all led from store 2; store 4 is empty.
    for id in 1..=3u64 {
        let peers = vec![voter(10 * id + 2, 2), voter(10 * id + 1, 1), voter(10 * id + 3, 3)];
        put_region_with(&mut cluster, id, peers, |hb| {
            hb.approximate_size_bytes = 10;
            if id == 1 {
                hb.pending_peers = vec![voter(13, 3)];
            }
            if id == 2 {
                hb.down_peers = vec![DownPeer { peer: voter(23, 3), down_ms: 1 }];
            }
        });
    }
    assert_eq!(region_move(&cluster, 3).unwrap().region_id, 3);
    let mut cluster = cluster.clone();
    let peers = vec![voter(32, 2), voter(31, 1), voter(33, 3)];
    put_region_with(&mut cluster, 3, peers, |hb| {
        hb.approximate_size_bytes = 10;
        hb.pending_peers = vec![voter(31, 1)];
    });
    assert!(region_move(&cluster, 3).is_none(), "every region has a pending or down peer");
}

#[test]
fn region_with_a_running_operator_is_skipped_and_its_move_counted() {
    // Store 1 holds six 10-byte regions; stores 2 and 3 are empty.
    let mut cluster = cluster(3, &[]);
    for id in 1..=6 {
        put_region(&mut cluster, id, &[(10 * id, 1)], 10);
    }
    let config = config(1);
    let mut ctl = OperatorController::new(config.operator_timeout_ms);
    let first = region_move(&cluster, 1).unwrap();
    assert_eq!(first.steps[0], OperatorStep::AddLearner { peer: learner(100, 2) });
    assert!(ctl.add(first));
    // The running move already counts (store 1 at 50, store 2 at 10): region 2 goes to 3.
    let view = ScheduleView::new(&cluster, &config, &ctl, NOW_MS);
    let second = balance_region(&view, &ctl, &mut ids_from(200)).unwrap();
    assert_eq!(second.region_id, 2);
    assert_eq!(second.steps[0], OperatorStep::AddLearner { peer: learner(200, 3) });
}

/// Regions 1..=`count` on stores 1 and 2 (store 3 holds none), all led from store 1.
fn leaders_on_store_one(count: u64) -> Cluster {
    let mut cluster = cluster(3, &[]);
    for id in 1..=count {
        put_region(&mut cluster, id, &[(10 * id + 1, 1), (10 * id + 2, 2)], 10);
    }
    cluster
}

#[test]
fn leader_moves_from_most_to_fewest_leaders_only_onto_a_voter() {
    // Store 3 leads nothing but holds no peer: store 2 gets the leader.
    let cluster = leaders_on_store_one(3);
    let to = voter(12, 2);
    assert_eq!(leader_move(&cluster, 2), Some((1, OperatorStep::TransferLeader { to })));
}

#[test]
fn leaders_within_the_tolerance_stay() {
    // Two leaders against none is more than one apart; one against none is not.
    assert!(leader_move(&leaders_on_store_one(2), 2).is_some());
    assert!(leader_move(&leaders_on_store_one(1), 2).is_none());
}

#[test]
fn leader_is_not_moved_to_a_busy_store_or_within_an_unsettled_region() {
    let mut cluster = leaders_on_store_one(3);
    set_flags(&mut cluster, 2, true, false);
    assert!(leader_move(&cluster, 2).is_none());

    let mut cluster = leaders_on_store_one(3);
    for id in 1..=3u64 {
        put_region_with(
            &mut cluster,
            id,
            vec![voter(10 * id + 1, 1), learner(10 * id + 2, 2)],
            |hb| {
                hb.region.epoch.conf_ver = 2;
            },
        );
    }
    assert!(leader_move(&cluster, 2).is_none(), "a learner cannot lead");
}
