//! The replica checker: missing voters added then promoted, down peers replaced before they
//! are removed, extra voters and stray learners removed, unusable stores never chosen.

use minikv_proto::metapb::RegionEpoch;
use minikv_proto::pdpb::{DownPeer, OperatorStep};

use super::*;
use crate::schedule::{OperatorKind, check_replicas};

/// The replica checker's steps for region 1, new peer ids from 100.
fn check(cluster: &Cluster, max_replicas: usize) -> Option<Vec<OperatorStep>> {
    let config = config(max_replicas);
    let op = check_replicas(&view(cluster, &config), cluster.region(1)?, &mut ids_from(100))?;
    assert_eq!(op.kind, OperatorKind::Replica);
    assert_eq!(op.created_at_ms, NOW_MS);
    assert_eq!(op.epoch_at_creation, cluster.region(1).unwrap().region.epoch);
    Some(op.steps)
}

fn add(peer_id: u64, store_id: u64) -> Vec<OperatorStep> {
    vec![
        OperatorStep::AddLearner { peer: learner(peer_id, store_id) },
        OperatorStep::PromoteLearner { peer: voter(peer_id, store_id) },
    ]
}

fn remove(peer_id: u64, store_id: u64) -> OperatorStep {
    OperatorStep::RemovePeer { peer: voter(peer_id, store_id) }
}

#[test]
fn missing_replica_is_added_as_a_learner_on_the_least_loaded_store_then_promoted() {
    let mut cluster = cluster(4, &[]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2)], 10);
    // Store 3 holds one region more than store 4.
    put_region(&mut cluster, 2, &[(21, 3)], 10);
    assert_eq!(check(&cluster, 3), Some(add(100, 4)));
    // Ties go to the lower store id.
    put_region(&mut cluster, 3, &[(31, 4)], 10);
    assert_eq!(check(&cluster, 3), Some(add(100, 3)));
    // Healthy and complete: nothing to do.
    assert_eq!(check(&cluster, 2), None);
}

#[test]
fn peer_on_a_down_store_is_replaced_new_voter_first() {
    let mut cluster = cluster(4, &[3]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3)], 10);
    let mut expected = add(100, 4);
    expected.push(remove(13, 3));
    assert_eq!(check(&cluster, 3), Some(expected));
}

#[test]
fn peer_the_leader_reports_down_too_long_is_replaced() {
    let mut cluster = cluster(4, &[]);
    let peers = vec![voter(11, 1), voter(12, 2), voter(13, 3)];
    put_region_with(&mut cluster, 1, peers.clone(), |hb| {
        hb.down_peers = vec![DownPeer { peer: voter(12, 2), down_ms: TEST_MAX_STORE_DOWN_MS + 1 }];
    });
    let mut expected = add(100, 4);
    expected.push(remove(12, 2));
    assert_eq!(check(&cluster, 3), Some(expected));
    // Down for less than the limit: not yet.
    let mut cluster = super::cluster(4, &[]);
    put_region_with(&mut cluster, 1, peers, |hb| {
        hb.down_peers = vec![DownPeer { peer: voter(12, 2), down_ms: TEST_MAX_STORE_DOWN_MS }];
    });
    assert_eq!(check(&cluster, 3), None);
}

#[test]
fn down_peer_without_a_replacement_store_is_kept() {
    // Removing it would leave two voters of three: wait for a store instead.
    let mut cluster = cluster(3, &[3]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3)], 10);
    assert_eq!(check(&cluster, 3), None);
}

#[test]
fn leader_on_a_down_store_hands_leadership_over_before_removal() {
    let mut cluster = cluster(4, &[1]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3)], 10);
    let mut expected = add(100, 4);
    expected.push(OperatorStep::TransferLeader { to: voter(12, 2) });
    expected.push(remove(11, 1));
    assert_eq!(check(&cluster, 3), Some(expected));
}

#[test]
fn extra_voter_is_removed_preferring_down_stores() {
    let mut cluster = cluster(4, &[2]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3), (14, 4)], 10);
    assert_eq!(check(&cluster, 3), Some(vec![remove(12, 2)]));
}

#[test]
fn extra_voter_is_removed_from_the_fullest_store_never_the_leader() {
    let mut cluster = cluster(4, &[]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3), (14, 4)], 10);
    // Store 1 (the leader's) and store 2 hold more regions than 3 and 4.
    put_region(&mut cluster, 2, &[(21, 1), (22, 2)], 10);
    put_region(&mut cluster, 3, &[(31, 1)], 10);
    assert_eq!(check(&cluster, 3), Some(vec![remove(12, 2)]));
    // Down to one voter of five wanted, one removal at a time, the leader always kept.
    assert_eq!(check(&cluster, 1), Some(vec![remove(12, 2)]));
}

#[test]
fn extra_leader_on_a_down_store_hands_leadership_over_first() {
    let mut cluster = cluster(4, &[1]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2), (13, 3), (14, 4)], 10);
    let expected = vec![OperatorStep::TransferLeader { to: voter(12, 2) }, remove(11, 1)];
    assert_eq!(check(&cluster, 3), Some(expected));
}

#[test]
fn never_schedules_onto_down_tombstone_busy_or_disk_failing_stores() {
    let mut cluster = cluster(7, &[3]);
    put_region(&mut cluster, 1, &[(11, 1), (12, 2)], 10);
    cluster.set_store_tombstone(4);
    set_flags(&mut cluster, 5, true, false);
    set_flags(&mut cluster, 6, false, true);
    // Store 7 holds the most regions but is the only usable one.
    put_region(&mut cluster, 2, &[(21, 7)], 10);
    put_region(&mut cluster, 3, &[(31, 7)], 10);
    assert_eq!(check(&cluster, 3), Some(add(100, 7)));
    set_flags(&mut cluster, 7, true, false);
    assert_eq!(check(&cluster, 3), None);
}

#[test]
fn learner_left_behind_is_promoted_when_short_and_removed_when_not() {
    let mut cluster = cluster(4, &[]);
    put_region_with(&mut cluster, 1, vec![voter(11, 1), voter(12, 2), learner(13, 3)], |_| {});
    let promote = OperatorStep::PromoteLearner { peer: voter(13, 3) };
    assert_eq!(check(&cluster, 3), Some(vec![promote]));
    assert_eq!(check(&cluster, 2), Some(vec![OperatorStep::RemovePeer { peer: learner(13, 3) }]));

    // A learner still catching up is left to finish before it votes.
    let mut cluster = super::cluster(4, &[]);
    put_region_with(&mut cluster, 1, vec![voter(11, 1), voter(12, 2), learner(13, 3)], |hb| {
        hb.pending_peers = vec![learner(13, 3)];
    });
    assert_eq!(check(&cluster, 3), None);

    // A learner on a down store is dropped first.
    let mut cluster = super::cluster(4, &[3]);
    put_region_with(&mut cluster, 1, vec![voter(11, 1), voter(12, 2), learner(13, 3)], |_| {});
    assert_eq!(check(&cluster, 3), Some(vec![OperatorStep::RemovePeer { peer: learner(13, 3) }]));
}

#[test]
fn regions_without_a_leader_or_a_free_peer_id_are_left_alone() {
    let mut cluster = cluster(4, &[]);
    let loaded = crate::cluster::test_util::region(1, "a", "b", (1, 1), vec![voter(11, 1)]);
    cluster.load_region(loaded);
    assert_eq!(check(&cluster, 3), None, "no leader has reported yet");

    let mut cluster = super::cluster(4, &[]);
    put_region(&mut cluster, 1, &[(11, 1)], 10);
    let config = config(3);
    let region = cluster.region(1).unwrap();
    assert!(check_replicas(&view(&cluster, &config), region, &mut || None).is_none());
    assert_eq!(region.region.epoch, RegionEpoch { conf_ver: 1, version: 1 });
}
