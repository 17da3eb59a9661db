//! A node whose disk has latent read errors refuses to start with an error; it never panics.
//! Replay a failing seed with `MADSIM_TEST_SEED=<seed>` (see the test output).

#![cfg(madsim)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use minikv_engine::{Engine, SimDisk, SimDiskConfig};
use minikv_runtime::Clock;
use minikv_server::sim_cluster::{first_region, store_addr};
use minikv_server::{Node, NodeConfig, NodeProbe};

/// Starts a node of store 1 on `disk` (bootstrapping region 1 if it is empty) and drops it.
async fn start_once(disk: &SimDisk, addrs: &BTreeMap<u64, SocketAddr>) -> Result<(), String> {
    let engine = Arc::new(Engine::open(disk.clone()).map_err(|e| e.to_string())?);
    let config = NodeConfig::new(1, addrs.clone(), Default::default());
    let node = Node::start(config, engine, Clock::new(), NodeProbe::new(), Some(first_region(1)))
        .await
        .map_err(|e| e.to_string())?;
    drop(node);
    Ok(())
}

#[madsim::test]
async fn node_start_over_unreadable_sectors_fails_with_an_error() {
    let handle = madsim::runtime::Handle::current();
    let addrs: BTreeMap<u64, SocketAddr> = [(1, store_addr(1))].into_iter().collect();
    let node = handle.create_node().name("store-1").ip(store_addr(1).ip()).build();
    let failures = node
        .spawn(async move {
            let disk = SimDisk::new(7, SimDiskConfig::default());
            start_once(&disk, &addrs).await.expect("a healthy disk starts");
            let sectors = disk.durable_len_bytes().div_ceil(4096);
            let mut failures = 0;
            for sector in 0..sectors {
                disk.clear_read_errors();
                disk.inject_read_error(sector * 4096);
                if start_once(&disk, &addrs).await.is_err() {
                    failures += 1;
                }
            }
            disk.clear_read_errors();
            start_once(&disk, &addrs).await.expect("the healed disk starts again");
            failures
        })
        .await
        .expect("the node task did not panic");
    assert!(failures > 0, "no unreadable sector stopped the node from starting");
}
