//! End-to-end behaviour through the public `RawNode` API on an in-memory cluster, including a
//! seeded fault run that checks election safety and state machine safety.

mod cluster;

use std::collections::BTreeMap;

use cluster::Cluster;
use minikv_raft::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn three_nodes_elect_and_replicate() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    c.propose(1, b"a").unwrap();
    c.propose(1, b"b").unwrap();
    c.tick_all(1);
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).applied, vec![b"a".to_vec(), b"b".to_vec()], "node {id}");
    }
}

#[test]
fn election_happens_by_ticking() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.tick_all(25);
    let leader = c.leader().expect("a leader within 2 election timeouts");
    c.propose(leader, b"x").unwrap();
    c.tick_all(1);
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).applied, vec![b"x".to_vec()]);
    }
}

/// One seeded run: random partitions, crashes and restarts, message loss and reordering,
/// proposals everywhere.
fn faulty_run(seed: u64) {
    let ids = [1, 2, 3, 4, 5];
    let mut c = Cluster::with_config(&ids, |id| Config {
        pre_vote: seed.is_multiple_of(2),
        check_quorum: seed.is_multiple_of(3),
        ..cluster::config(id)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    let mut next_value = 0u32;
    for step in 0..600 {
        match rng.next_u64() % 10 {
            0 => {
                c.heal();
                let a = ids[(rng.next_u64() % 5) as usize];
                c.isolate(a);
            }
            1 => c.heal(),
            2 | 3 => {
                let at = ids[(rng.next_u64() % 5) as usize];
                next_value += 1;
                if let Some(n) = c.nodes.get_mut(&at) {
                    let _ = n.raw.propose(vec![], next_value.to_be_bytes().to_vec());
                }
            }
            4 if c.down.len() < 2 => {
                // Crash: unpersisted state is lost; the clone of the storage is what survives.
                let victim = ids[(rng.next_u64() % 5) as usize];
                if c.nodes.contains_key(&victim) {
                    c.crash(victim);
                }
            }
            5 => {
                if let Some(&id) = c.down.keys().next() {
                    c.restart(id);
                }
            }
            _ => {
                for n in c.nodes.values_mut() {
                    n.raw.tick();
                }
            }
        }
        c.process_readies();
        // Lose some messages and reorder the rest.
        let mut batch: Vec<Message> = c.in_flight.drain(..).collect();
        batch.retain(|_| rng.next_u64() % 10 != 0);
        for i in (1..batch.len()).rev() {
            batch.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        for m in batch {
            c.deliver(m);
        }
        for (&id, n) in &c.nodes {
            let s = n.raw.status();
            if s.role == StateRole::Leader {
                let prev = leaders.insert(s.term, id);
                assert!(
                    prev.is_none() || prev == Some(id),
                    "seed {seed} step {step}: two leaders in term {}: {prev:?} and {id}",
                    s.term
                );
            }
        }
        // State machine safety: every applied sequence is a prefix of the longest one.
        let longest = c.nodes.values().map(|n| &n.applied).max_by_key(|a| a.len()).unwrap().clone();
        for (&id, n) in &c.nodes {
            assert_eq!(
                n.applied[..],
                longest[..n.applied.len()],
                "seed {seed} step {step} node {id}"
            );
        }
    }
    // Liveness once faults stop.
    c.heal();
    while let Some(&id) = c.down.keys().next() {
        c.restart(id);
    }
    c.tick_all(60);
    let leader = c.leader().unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
    c.propose(leader, b"final").unwrap();
    c.tick_all(3);
    for (&id, n) in &c.nodes {
        assert_eq!(
            n.applied.last().map(Vec::as_slice),
            Some(&b"final"[..]),
            "seed {seed} node {id}"
        );
    }
}

#[test]
fn seeded_faulty_runs_keep_safety_and_recover() {
    for seed in 0..12 {
        faulty_run(seed);
    }
}
