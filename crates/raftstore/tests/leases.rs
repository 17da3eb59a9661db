//! Leader leases: reads served locally while no other leader can exist, and never after.

mod common;

use common::{Cluster, get_req, put_req, test_config};
use minikv_proto::errorpb::RegionError;
use minikv_proto::raft_cmdpb::{RaftCmdRequest, Response};
use minikv_raftstore::StoreConfig;

fn lease_config() -> StoreConfig {
    StoreConfig { lease_read: true, ..test_config() }
}

fn get_value(r: &minikv_proto::raft_cmdpb::RaftCmdResponse) -> Option<Vec<u8>> {
    match r.responses.as_slice() {
        [Response::Get { value }] => value.clone(),
        other => panic!("unexpected read response {other:?}"),
    }
}

/// Proposes a get of `key` on `leader` and returns its value if `propose` answered it from
/// the lease (at once: no tick, no message, no Ready), `None` if it went to ReadIndex.
fn lease_read(c: &mut Cluster, leader: u64, key: &[u8]) -> Option<Option<Vec<u8>>> {
    let before = c.store(leader).peer_status(common::REGION_ID).unwrap().lease_reads;
    let cmd =
        RaftCmdRequest { header: c.header(leader), requests: vec![get_req(key)], admin: None };
    let token = c.propose(leader, cmd).unwrap();
    let answered = c.store_mut(leader).take_responses();
    let after = c.store(leader).peer_status(common::REGION_ID).unwrap().lease_reads;
    if after == before {
        assert!(answered.is_empty(), "a ReadIndex read is not answered by propose");
        c.wait_response(token, 100).expect("the ReadIndex read is answered");
        return None;
    }
    assert_eq!(after, before + 1);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].0, token);
    assert!(c.store_mut(leader).take_outbound().is_empty(), "a lease read sends nothing");
    Some(get_value(&answered[0].1))
}

#[test]
fn reads_inside_a_confirmed_lease_need_no_message_round() {
    let mut c = Cluster::new(3, 3, 41, lease_config());
    let leader = c.wait_leader(100);
    // Nothing confirmed a lease yet (the leader's no-op is not a proposal of its own): the
    // first read goes through a ReadIndex round, which confirms one.
    assert_eq!(lease_read(&mut c, leader, b"k"), None);
    // The next one is answered from the lease.
    assert_eq!(lease_read(&mut c, leader, b"k"), Some(None));
}

#[test]
fn a_committed_write_renews_the_lease_as_a_read_round_does() {
    let mut c = Cluster::new(3, 3, 44, lease_config());
    let leader = c.wait_leader(100);
    c.put(b"k", b"v1");
    // The put's commit proves a quorum heard from the leader after it was proposed.
    assert_eq!(lease_read(&mut c, leader, b"k"), Some(Some(b"v1".to_vec())));
    // Without writes or reads the lease runs out (this read's round confirms a new one)...
    c.run_ticks(10);
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(lease_read(&mut c, leader, b"k"), None);
    // ... which runs out too; then a write alone renews it.
    c.run_ticks(10);
    c.put(b"k", b"v2");
    assert_eq!(lease_read(&mut c, leader, b"k"), Some(Some(b"v2".to_vec())));
}

#[test]
fn a_partitioned_leader_never_serves_a_lease_read_once_another_leader_wrote() {
    let story = partitioned_leader_story(lease_config(), 1, 42);
    for &(issued, ref value) in &story.served {
        assert_eq!(value, &Some(b"v1".to_vec()));
        assert!(
            issued < story.written_at,
            "read issued at tick {issued} served after v2 was written at {}",
            story.written_at
        );
    }
    assert!(!story.served.is_empty(), "the lease served no read at all after the partition");
}

#[test]
fn a_restarted_voter_does_not_help_elect_a_rival_inside_the_lease_it_confirmed() {
    let mut c = Cluster::new(3, 3, 43, lease_config());
    let a = c.wait_leader(100);
    c.put(b"k", b"v1");
    let others: Vec<u64> = (1..=3).filter(|id| *id != a).collect();
    let (b, rival) = (others[0], others[1]);
    c.partition(&[a], &[rival]);
    // The lease is confirmed by `a` and `b`; then `b` restarts, forgetting whom it heard.
    c.call(a, vec![get_req(b"k")], None).unwrap();
    c.crash(b);
    c.restart(b);
    c.store_mut(rival).campaign(common::REGION_ID).unwrap();
    c.pump();
    let rival_wrote = c.store(rival).is_leader(common::REGION_ID)
        && c.call(rival, vec![put_req(b"k", b"v2")], None).is_ok();
    let cmd = RaftCmdRequest { header: c.header(a), requests: vec![get_req(b"k")], admin: None };
    let token = c.propose(a, cmd).unwrap();
    let served: Vec<_> =
        c.store_mut(a).take_responses().into_iter().filter(|(t, _)| *t == token).collect();
    assert_eq!(served.len(), 1, "the lease still serves on the old leader");
    assert_eq!(get_value(&served[0].1), Some(b"v1".to_vec()));
    assert!(!rival_wrote, "a rival leader wrote v2 while the old leader's lease served v1");
}

/// Seeds of the slow-leader tests.
const LEASE_SEEDS: std::ops::Range<u64> = 60..90;

/// What a partitioned old leader answered while the majority elected a rival and wrote `v2`.
struct Story {
    /// The tick the rival's write was acknowledged.
    written_at: u64,
    /// Reads the old leader served: the tick each was issued, and the value it returned.
    served: Vec<(u64, Option<Vec<u8>>)>,
}

/// Partitions the leader from the other two of three stores and issues a read on it every
/// tick, while the majority elects a rival and writes `v2` over `v1`. The old leader ticks
/// once for every `slowdown` ticks of the others (its clock runs slow).
fn partitioned_leader_story(config: StoreConfig, slowdown: u64, seed: u64) -> Story {
    let mut c = Cluster::new(3, 3, seed, config);
    let old = c.wait_leader(100);
    c.put(b"k", b"v1");
    c.call(old, vec![get_req(b"k")], None).unwrap();
    c.partition(&[old], &(1..=3).filter(|id| *id != old).collect::<Vec<_>>());
    let (mut new, mut written_at, mut reads) = (None, None, Vec::new());
    for step in 0..400u64 {
        let cmd =
            RaftCmdRequest { header: c.header(old), requests: vec![get_req(b"k")], admin: None };
        if let Ok(token) = c.propose(old, cmd) {
            reads.push((c.now, token));
        }
        let stalled = if step % slowdown == 0 { vec![] } else { vec![old] };
        c.tick_all_but(&stalled);
        if new.is_none() {
            new = c.leader().filter(|l| *l != old);
        }
        if let (Some(n), None) = (new, written_at) {
            match c.call(n, vec![put_req(b"k", b"v2")], None) {
                Ok(_) => written_at = Some(c.now),
                Err(RegionError::NotLeader { .. }) => new = None,
                Err(e) => panic!("write on the new leader: {e}"),
            }
        }
        if written_at.is_some_and(|w| c.now > w + 100) {
            break;
        }
    }
    let written_at = written_at.expect("the majority elected a leader and wrote");
    let served = reads
        .into_iter()
        .filter_map(|(issued, token)| {
            let (_, resp) = c.responses.remove(&token)?;
            resp.header.error.is_none().then(|| (issued, get_value(&resp)))
        })
        .collect();
    Story { written_at, served }
}

/// Reads a slow partitioned old leader served, as (issued after the rival wrote, all), with a
/// lease `margin_ticks` short of the election timeout.
fn reads_of_a_slow_partitioned_leader(margin_ticks: u64, slowdown: u64, seed: u64) -> (u64, u64) {
    let config = StoreConfig { lease_margin_ticks: margin_ticks, ..lease_config() };
    let story = partitioned_leader_story(config, slowdown, seed);
    let mut stale = 0;
    for (issued, value) in &story.served {
        assert_eq!(value, &Some(b"v1".to_vec()), "only v1 is on the old leader");
        if *issued > story.written_at {
            stale += 1;
        }
    }
    (stale, story.served.len() as u64)
}

/// Why the margin exists (and proof that the next test can fail): a leader whose ticks run at
/// a third of the others' rate keeps its lease, in real time, past the moment the others may
/// elect a rival, and serves reads that miss the rival's write.
#[test]
fn without_its_margin_a_slow_leader_serves_stale_lease_reads() {
    let stale: u64 = LEASE_SEEDS.map(|seed| reads_of_a_slow_partitioned_leader(0, 3, seed).0).sum();
    assert!(stale > 0, "a lease with no margin never outlived the rival's election");
}

/// A lease shorter than the election timeout by more than the drift can stretch it: the same
/// slow leader serves lease reads, and none after the rival wrote.
#[test]
fn a_margin_wider_than_the_drift_keeps_a_slow_leader_from_stale_lease_reads() {
    let mut served_total = 0;
    for seed in LEASE_SEEDS {
        // Third-rate ticks triple the lease in real time: 10 - 7 = 3 ticks last 9 of the
        // others', less than the 10 ticks a voter refuses rivals for after hearing the leader.
        let (stale, served) = reads_of_a_slow_partitioned_leader(7, 3, seed);
        assert_eq!(stale, 0, "seed {seed}: a stale lease read");
        served_total += served;
    }
    assert!(served_total > 0, "the lease served nothing: the test would prove nothing");
}
