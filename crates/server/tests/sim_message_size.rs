//! Every message the store makes fits the network's message limit, in simulation as over
//! TCP: Appends at their maximum size, a snapshot cut into many chunks for one store (sent in
//! one round, so the node must split the batch), and a command too big to propose is refused
//! before it reaches the log; a read whose answer would not fit fails, saying so. A node whose limits could make a message too big does not start.

#![cfg(madsim)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use minikv_client::{ClientConfig, Error, RawClient};
use minikv_engine::disk::SimDisk;
use minikv_proto::errorpb::RegionError;
use minikv_runtime::Clock;
use minikv_runtime::net::MAX_MESSAGE_BYTES;
use minikv_server::sim_cluster::{SimCluster, SimClusterConfig, store_addr};
use minikv_server::{Node, NodeConfig, NodeProbe};

const VALUE_BYTES: usize = 200 << 10;

async fn put_retrying(c: &mut RawClient, key: &[u8], value: &[u8]) {
    while let Err(e) = c.put(key, value).await {
        assert!(e.is_unknown() || matches!(e, Error::DeadlineExceeded(_)), "put: {e}");
    }
}

#[madsim::test]
async fn big_appends_and_a_many_chunk_snapshot_fit_in_messages() {
    let mut config = SimClusterConfig::new(3, 7);
    config.store.raft_log_gc_count_limit = 8;
    config.store.raft_log_gc_threshold_entries = 4;
    let mut cluster = SimCluster::start(config);
    let addrs = cluster.addrs();
    while cluster.leader().is_none() {
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = cluster.leader().unwrap();
    let behind = cluster.store_ids().into_iter().find(|id| *id != leader).unwrap();
    let others: Vec<u64> = cluster.store_ids().into_iter().filter(|id| *id != behind).collect();
    // One follower misses 40 values of 200 KiB, and the log moves on without it: it catches
    // up from a snapshot of about 8 MB, cut into 256 KiB chunks sent in one round.
    cluster.partition(&[behind], &others);
    let mut writers = Vec::new();
    for w in 0..4u8 {
        let addrs = addrs.clone();
        writers.push(cluster.client_node(&format!("writer-{w}")).spawn(async move {
            let config = ClientConfig::new(addrs);
            let mut c = RawClient::connect(config, Clock::new(), "0.0.0.0:0").await.unwrap();
            for i in 0..10u8 {
                put_retrying(&mut c, &[w, i], &vec![w ^ i; VALUE_BYTES]).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    cluster.heal();
    let mut converged = false;
    for _ in 0..200 {
        madsim::time::sleep(Duration::from_millis(100)).await;
        let reference = cluster.data(leader);
        if reference.len() == 40
            && cluster.store_ids().iter().all(|id| cluster.data(*id) == reference)
        {
            converged = true;
            break;
        }
    }
    assert!(converged, "store {behind} never caught up");
    let largest: BTreeMap<u64, usize> = cluster
        .store_ids()
        .into_iter()
        .map(|id| (id, cluster.probe(id).largest_raft_batch_bytes))
        .collect();
    assert!(largest.values().all(|b| *b <= MAX_MESSAGE_BYTES), "{largest:?}");
    // The snapshot's chunks filled batches near the limit: the split was exercised.
    assert!(largest[&leader] > MAX_MESSAGE_BYTES / 2, "{largest:?}");
    let (refused, scanned) = cluster
        .client_node("big")
        .spawn(async move {
            let mut c = RawClient::connect(ClientConfig::new(addrs), Clock::new(), "0.0.0.0:0")
                .await
                .unwrap();
            // 40 values of 200 KiB: one page of them cannot be answered in one message.
            let scanned = c.scan(b"", b"", 100).await;
            (c.put(b"big", &vec![1; 1 << 20]).await, scanned)
        })
        .await
        .expect("client");
    assert!(
        matches!(&scanned, Err(Error::Store(why)) if why.contains("over the limit")),
        "{:?}",
        scanned.as_ref().map(Vec::len)
    );
    assert!(
        matches!(&refused, Err(Error::Region(RegionError::CommandRefused { reason }))
            if reason.contains("raft_entry_max_size_bytes")),
        "{refused:?}"
    );
}

#[madsim::test]
async fn a_node_whose_limits_could_overflow_a_message_does_not_start() {
    let addrs = BTreeMap::from([(1, store_addr(1))]);
    let mut config = NodeConfig::new(1, addrs, Default::default());
    config.store.snapshot_chunk_size_bytes = MAX_MESSAGE_BYTES;
    let handle = madsim::runtime::Handle::current();
    let node = handle.create_node().ip(store_addr(1).ip()).build();
    let started = node
        .spawn(async move {
            let disk = SimDisk::new(1, Default::default());
            let engine = Arc::new(minikv_engine::Engine::open(disk).expect("engine"));
            Node::start(config, engine, Clock::new(), NodeProbe::default(), None).await.err()
        })
        .await
        .expect("node task");
    let error = started.expect("the node must refuse its config").to_string();
    assert!(error.contains("store.snapshot_chunk_size_bytes"), "{error}");
}
