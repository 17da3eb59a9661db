//! Region and store heartbeat processing, by the behaviours TinyKV's cluster tests check:
//! what an accepted heartbeat changes, which ones are refused as stale, and splits and merges
//! reported in either order.

use minikv_proto::metapb::Store;
use minikv_proto::pdpb::{DownPeer, PdError, RegionHeartbeat, StoreStats};

use super::test_util::*;
use super::*;

fn three_peer_heartbeat(conf_ver: u64, version: u64) -> RegionHeartbeat {
    heartbeat(region(
        1,
        "a",
        "z",
        (conf_ver, version),
        vec![voter(11, 1), voter(12, 2), voter(13, 3)],
    ))
}

fn stale_reason(result: Result<HeartbeatOutcome, PdError>) -> String {
    match result {
        Err(PdError::StaleRegion { reason }) => reason,
        other => panic!("expected a stale region error, got {other:?}"),
    }
}

fn key_order(cluster: &Cluster) -> Vec<(u64, String, String)> {
    let text = |k: &[u8]| String::from_utf8(k.to_vec()).unwrap();
    cluster
        .scan_regions(b"", b"", usize::MAX)
        .into_iter()
        .map(|r| (r.id(), text(&r.region.start_key), text(&r.region.end_key)))
        .collect()
}

#[test]
fn new_region_is_persisted_and_an_identical_heartbeat_changes_nothing() {
    let mut cluster = cluster_with_stores(3, 0);
    let hb = three_peer_heartbeat(1, 1);
    let first = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(first.needs_persist && first.leader_changed);
    let again = cluster.process_region_heartbeat(&hb, 5).unwrap();
    assert!(again.is_unchanged(), "{again:?}");
    assert_eq!(cluster.region(1).unwrap(), &CachedRegion::from_heartbeat(&hb));
}

#[test]
fn newer_version_or_conf_ver_replaces_the_region_and_must_be_persisted() {
    let mut cluster = cluster_with_stores(3, 0);
    put_region(&mut cluster, &three_peer_heartbeat(1, 1));
    for (conf_ver, version) in [(1, 2), (2, 2)] {
        let hb = three_peer_heartbeat(conf_ver, version);
        let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
        assert!(outcome.needs_persist && !outcome.leader_changed, "{outcome:?}");
        assert_eq!(cluster.region(1).unwrap().region.epoch, hb.region.epoch);
    }
}

#[test]
fn stale_version_or_conf_ver_is_refused_naming_region_and_both_epochs() {
    let mut cluster = cluster_with_stores(3, 0);
    put_region(&mut cluster, &three_peer_heartbeat(5, 5));
    let reason = stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(5, 4), 0));
    assert!(reason.contains("region 1"), "{reason}");
    assert!(reason.contains("(conf_ver 5, version 4)"), "{reason}");
    assert!(reason.contains("(conf_ver 5, version 5)"), "{reason}");
    stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(4, 5), 0));
    stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(4, 6), 0));
    assert_eq!(cluster.region(1).unwrap().region.epoch, RegionEpoch { conf_ver: 5, version: 5 });
}

#[test]
fn pending_and_down_peers_change_memory_only_and_removed_peers_are_persisted() {
    let mut cluster = cluster_with_stores(3, 0);
    let mut hb = three_peer_heartbeat(1, 1);
    put_region(&mut cluster, &hb);
    hb.pending_peers = vec![voter(12, 2)];
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.stats_changed && !outcome.needs_persist, "{outcome:?}");
    assert!(cluster.region(1).unwrap().is_pending(12));

    hb.pending_peers.clear();
    hb.down_peers = vec![DownPeer { peer: voter(13, 3), down_ms: 700 }];
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.stats_changed && !outcome.needs_persist, "{outcome:?}");
    let held = cluster.region(1).unwrap();
    assert!(!held.is_pending(12));
    assert_eq!(held.down_for_ms(13), Some(700));

    // The down peer is removed: membership changed, so it is persisted.
    hb.down_peers.clear();
    hb.region.peers.pop();
    hb.region.epoch.conf_ver += 1;
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.needs_persist, "{outcome:?}");
    assert_eq!(cluster.store_region_count(3), 0);
    assert_eq!(cluster.region(1).unwrap().region.peers.len(), 2);
}

#[test]
fn leader_change_is_taken_and_an_older_terms_heartbeat_is_refused() {
    let mut cluster = cluster_with_stores(3, 0);
    let mut hb = three_peer_heartbeat(1, 1);
    put_region(&mut cluster, &hb);
    assert_eq!(cluster.store_leader_count(1), 1);
    hb.leader = voter(12, 2);
    hb.term = 2;
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.leader_changed && outcome.is_memory_only(), "{outcome:?}");
    assert_eq!(cluster.store_leader_count(1), 0);
    assert_eq!(cluster.store_leader_count(2), 1);

    // The deposed leader's late heartbeat (term 1, same epoch) must not win leadership back.
    let reason = stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(1, 1), 0));
    assert!(reason.contains("term 1") && reason.contains("term 2"), "{reason}");
    // Even with a newer epoch (a change it committed before it was deposed).
    stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(2, 1), 0));
    assert_eq!(cluster.region(1).unwrap().leader, Some(voter(12, 2)));
    // A heartbeat that reports no term is judged by its epoch alone.
    let mut termless = three_peer_heartbeat(2, 1);
    termless.leader = voter(12, 2);
    termless.term = 0;
    assert!(cluster.process_region_heartbeat(&termless, 0).unwrap().needs_persist);
    assert_eq!(cluster.region(1).unwrap().term, 2, "the held term is kept");
}

#[test]
fn approximate_size_change_is_memory_only_and_feeds_store_sizes() {
    let mut cluster = cluster_with_stores(3, 0);
    let mut hb = three_peer_heartbeat(1, 1);
    put_region(&mut cluster, &hb);
    hb.approximate_size_bytes = 96 << 20;
    hb.approximate_keys = 1_000;
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.stats_changed && !outcome.needs_persist, "{outcome:?}");
    for store_id in 1..=3 {
        assert_eq!(cluster.store_region_size_bytes(store_id), 96 << 20);
    }
    assert_eq!(cluster.region(1).unwrap().approximate_keys, 1_000);
}

#[test]
fn heartbeat_whose_leader_is_not_a_peer_or_whose_range_is_empty_is_invalid() {
    let mut cluster = cluster_with_stores(3, 0);
    let mut hb = three_peer_heartbeat(1, 1);
    hb.leader = voter(99, 1);
    assert!(matches!(cluster.process_region_heartbeat(&hb, 0), Err(PdError::Invalid { .. })));
    let empty_range = heartbeat(region(1, "m", "m", (1, 1), vec![voter(11, 1)]));
    let result = cluster.process_region_heartbeat(&empty_range, 0);
    assert!(matches!(result, Err(PdError::Invalid { .. })), "{result:?}");
    assert!(cluster.regions().is_empty());
}

#[test]
fn region_and_leader_counts_per_store_follow_every_heartbeat() {
    let mut cluster = cluster_with_stores(4, 0);
    // Region i spans [i, i+1) with peers on stores i%4+1, (i+1)%4+1, (i+2)%4+1, led from the
    // second of them; its size is i+1 bytes.
    let keys = ["", "b", "c", "d", "e", "f", "g", "h", ""];
    for i in 0..8u64 {
        let stores = [i % 4 + 1, (i + 1) % 4 + 1, (i + 2) % 4 + 1];
        let peers =
            stores.iter().enumerate().map(|(j, s)| voter(100 * (i + 1) + j as u64, *s)).collect();
        let r = region(i + 1, keys[i as usize], keys[i as usize + 1], (1, 1), peers);
        let mut hb = heartbeat(r);
        hb.leader = hb.region.peers[1].clone();
        hb.approximate_size_bytes = i + 1;
        put_region(&mut cluster, &hb);
    }
    assert_eq!(cluster.regions().len(), 8);
    for store_id in 1..=4u64 {
        // Each store holds 6 of the 8 regions (all but those whose three stores skip it).
        let holds = |i: u64| [i % 4 + 1, (i + 1) % 4 + 1, (i + 2) % 4 + 1].contains(&store_id);
        let held: Vec<u64> = (0..8).filter(|i| holds(*i)).collect();
        assert_eq!(cluster.store_region_count(store_id), held.len() as u64);
        assert_eq!(cluster.store_region_size_bytes(store_id), held.iter().map(|i| i + 1).sum());
        let leads = (0..8u64).filter(|i| (i + 1) % 4 + 1 == store_id).count() as u64;
        assert_eq!(cluster.store_leader_count(store_id), leads);
    }
}

/// Region 1 covers everything at version 1, then splits at "m": region 2 takes ["", "m") and
/// region 1 keeps ["m", ""), both at version 2.
fn split_heartbeats() -> (RegionHeartbeat, RegionHeartbeat, RegionHeartbeat) {
    let whole = heartbeat(region(1, "", "", (1, 1), vec![voter(11, 1)]));
    let right = heartbeat(region(1, "m", "", (1, 2), vec![voter(11, 1)]));
    let left = heartbeat(region(2, "", "m", (1, 2), vec![voter(21, 1)]));
    (whole, left, right)
}

#[test]
fn split_reported_left_half_first_ends_with_both_halves() {
    let mut cluster = cluster_with_stores(1, 0);
    let (whole, left, right) = split_heartbeats();
    put_region(&mut cluster, &whole);
    let outcome = cluster.process_region_heartbeat(&left, 0).unwrap();
    assert_eq!(outcome.removed_region_ids, vec![1], "the new left half overlaps the old whole");
    assert!(outcome.needs_persist);
    assert!(cluster.region_by_key(b"x").is_none(), "the right half is unknown until reported");
    // The old whole region's late heartbeat overlaps the newer left half: refused.
    let reason = stale_reason(cluster.process_region_heartbeat(&whole, 0));
    assert!(reason.contains("region 1") && reason.contains("region 2"), "{reason}");
    let outcome = cluster.process_region_heartbeat(&right, 0).unwrap();
    assert!(outcome.needs_persist && outcome.removed_region_ids.is_empty(), "{outcome:?}");
    cluster.regions().check_invariants();
    assert_eq!(key_order(&cluster), vec![(2, "".into(), "m".into()), (1, "m".into(), "".into())]);
}

#[test]
fn split_reported_right_half_first_ends_with_both_halves() {
    let mut cluster = cluster_with_stores(1, 0);
    let (whole, left, right) = split_heartbeats();
    put_region(&mut cluster, &whole);
    let outcome = cluster.process_region_heartbeat(&right, 0).unwrap();
    assert!(outcome.needs_persist && outcome.removed_region_ids.is_empty(), "{outcome:?}");
    assert!(cluster.region_by_key(b"a").is_none());
    stale_reason(cluster.process_region_heartbeat(&whole, 0));
    put_region(&mut cluster, &left);
    assert_eq!(key_order(&cluster), vec![(2, "".into(), "m".into()), (1, "m".into(), "".into())]);
    assert_eq!(cluster.region_by_key(b"a").unwrap().id(), 2);
    assert_eq!(cluster.region_by_key(b"m").unwrap().id(), 1);
}

#[test]
fn merge_removes_the_merged_region_and_refuses_its_late_heartbeat() {
    let mut cluster = cluster_with_stores(1, 0);
    let (_, left, right) = split_heartbeats();
    put_region(&mut cluster, &left);
    put_region(&mut cluster, &right);
    let merged = heartbeat(region(1, "", "", (1, 3), vec![voter(11, 1)]));
    let outcome = cluster.process_region_heartbeat(&merged, 0).unwrap();
    assert_eq!(outcome.removed_region_ids, vec![2]);
    assert!(outcome.needs_persist);
    stale_reason(cluster.process_region_heartbeat(&left, 0));
    assert_eq!(key_order(&cluster), vec![(1, "".into(), "".into())]);
}

#[test]
fn overlap_with_an_equal_version_is_taken_and_a_newer_one_refused() {
    let mut cluster = cluster_with_stores(1, 0);
    put_region(&mut cluster, &heartbeat(region(1, "a", "m", (1, 3), vec![voter(11, 1)])));
    let newer_neighbour = heartbeat(region(2, "k", "z", (1, 2), vec![voter(21, 1)]));
    let reason = stale_reason(cluster.process_region_heartbeat(&newer_neighbour, 0));
    assert!(reason.contains("(conf_ver 1, version 3)"), "{reason}");
    let equal = heartbeat(region(2, "k", "z", (1, 3), vec![voter(21, 1)]));
    assert_eq!(cluster.process_region_heartbeat(&equal, 0).unwrap().removed_region_ids, vec![1]);
}

#[test]
fn loaded_regions_have_no_leader_until_their_first_heartbeat() {
    let mut cluster = cluster_with_stores(3, 0);
    let hb = three_peer_heartbeat(2, 2);
    assert!(cluster.load_region(hb.region.clone()).is_empty());
    let loaded = cluster.region(1).unwrap();
    assert_eq!(loaded.leader, None);
    assert_eq!(cluster.store_region_count(2), 1);
    assert_eq!(cluster.store_leader_count(1), 0);
    stale_reason(cluster.process_region_heartbeat(&three_peer_heartbeat(1, 2), 0));
    let outcome = cluster.process_region_heartbeat(&hb, 0).unwrap();
    assert!(outcome.leader_changed && !outcome.needs_persist, "{outcome:?}");
    assert_eq!(cluster.region_by_key(b"q").unwrap().leader, Some(voter(11, 1)));
}

#[test]
fn store_heartbeats_keep_liveness_and_stats_and_tombstones_are_final() {
    let mut cluster = cluster_with_stores(2, 0);
    let down_after_ms = TEST_MAX_STORE_DOWN_MS + 1;
    assert_eq!(cluster.store_state(1, down_after_ms), Some(StoreState::Down));
    let busy = StoreStats { store_id: 1, is_busy: true, ..Default::default() };
    cluster.process_store_heartbeat(busy, down_after_ms).unwrap();
    assert_eq!(cluster.store_state(1, down_after_ms), Some(StoreState::Up));
    assert!(!cluster.store_accepts_new_load(1, down_after_ms), "busy");
    assert!(cluster.store(1).unwrap().is_busy());

    let unknown = StoreStats { store_id: 9, ..Default::default() };
    assert!(matches!(cluster.process_store_heartbeat(unknown, 0), Err(PdError::Invalid { .. })));
    assert!(cluster.set_store_tombstone(2));
    assert!(!cluster.set_store_tombstone(9));
    assert_eq!(cluster.store_state(2, 0), Some(StoreState::Tombstone));
    let again = Store { id: 2, address: "elsewhere".into() };
    assert!(cluster.put_store(again, 0).is_err());
    let from_tombstone = StoreStats { store_id: 2, ..Default::default() };
    assert!(cluster.process_store_heartbeat(from_tombstone, 0).is_err());
    assert_eq!(cluster.stores().map(|s| s.id()).collect::<Vec<_>>(), vec![1, 2]);
}

/// A xorshift generator: deterministic shuffles without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Key-space positions: 0 is the empty start key, `END` the unbounded end.
const END: u64 = 1 << 32;

fn pos_key(pos: u64) -> Vec<u8> {
    if pos == 0 || pos == END { Vec::new() } else { (pos as u32).to_be_bytes().to_vec() }
}

/// (id, start, end, version) -> a one-peer heartbeat.
fn truth_heartbeat(id: u64, start: u64, end: u64, version: u64) -> RegionHeartbeat {
    let mut r = region(id, "", "", (1, version), vec![voter(10 * id, 1)]);
    (r.start_key, r.end_key) = (pos_key(start), pos_key(end));
    heartbeat(r)
}

/// Splits and merges happen in a model; their heartbeats (and older ones) arrive shuffled,
/// repeated and late. The tree stays well formed throughout, and once each live region's
/// latest heartbeat has arrived, in any order, it is exactly the model. (Meanwhile, as in PD,
/// a dead region's late heartbeat may fill a gap no newer region covers yet; the newer
/// region's heartbeat removes it, since versions only grow along any key's lineage.)
#[test]
fn shuffled_split_and_merge_heartbeats_converge_to_the_latest_layout() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut cluster = cluster_with_stores(1, 0);
        // The model: regions in key order as (id, start, end, version).
        let mut truth: Vec<(u64, u64, u64, u64)> = vec![(1, 0, END, 1)];
        let mut history = vec![truth_heartbeat(1, 0, END, 1)];
        let mut next_id = 2;
        for _ in 0..60 {
            let i = rng.below(truth.len());
            let (id, start, end, version) = truth[i];
            if rng.below(3) > 0 && end - start >= 2 {
                // Split: the new region takes the left half; both move to version + 1.
                let mid = start + (end - start) / 2;
                truth[i] = (id, mid, end, version + 1);
                truth.insert(i, (next_id, start, mid, version + 1));
                history.push(truth_heartbeat(next_id, start, mid, version + 1));
                history.push(truth_heartbeat(id, mid, end, version + 1));
                next_id += 1;
            } else if i + 1 < truth.len() {
                // Merge with the right neighbour; either one survives.
                let right = truth.remove(i + 1);
                let version = version.max(right.3) + 1;
                let survivor = if rng.below(2) == 0 { id } else { right.0 };
                truth[i] = (survivor, start, right.2, version);
                history.push(truth_heartbeat(survivor, start, right.2, version));
            }
            for _ in 0..rng.below(4) {
                let hb = &history[rng.below(history.len())];
                if let Err(e) = cluster.process_region_heartbeat(hb, 0) {
                    assert!(matches!(e, PdError::StaleRegion { .. }), "seed {seed}: {e:?}");
                }
                cluster.regions().check_invariants();
            }
        }
        let mut latest: Vec<RegionHeartbeat> =
            truth.iter().map(|&(id, s, e, v)| truth_heartbeat(id, s, e, v)).collect();
        while !latest.is_empty() {
            let hb = latest.remove(rng.below(latest.len()));
            cluster.process_region_heartbeat(&hb, 0).expect("the latest heartbeat is accepted");
        }
        cluster.regions().check_invariants();
        let held: Vec<(u64, Vec<u8>, Vec<u8>, u64)> = cluster
            .scan_regions(b"", b"", usize::MAX)
            .into_iter()
            .map(|r| {
                (
                    r.id(),
                    r.region.start_key.clone(),
                    r.region.end_key.clone(),
                    r.region.epoch.version,
                )
            })
            .collect();
        let expected: Vec<(u64, Vec<u8>, Vec<u8>, u64)> =
            truth.iter().map(|&(id, s, e, v)| (id, pos_key(s), pos_key(e), v)).collect();
        assert_eq!(held, expected, "seed {seed}");
    }
}
