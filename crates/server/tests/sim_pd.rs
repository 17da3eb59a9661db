//! A three-node PD on madsim: timestamps increase across a killed leader and a new leader whose
//! clock is far behind the old one's; IDs are never handed out twice; bootstrap happens once.
//! Replay a failing seed with `MADSIM_TEST_SEED=<seed>` (see the test output).

#![cfg(madsim)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use minikv_pd::{PdClient, PdClientConfig, PdClientError};
use minikv_proto::metapb::{Peer, Region, Store};
use minikv_proto::pdpb::{PdError, PdRequest, PdResponse};
use minikv_runtime::Clock;
use minikv_server::sim_cluster::{SimCluster, SimClusterConfig};

fn pd_cluster() -> SimCluster {
    let mut config = SimClusterConfig::new(0, 1);
    config.pd_nodes = 3;
    SimCluster::start(config)
}

/// A PD client; connect it on the machine it runs on (an endpoint belongs to its node).
async fn connect(addrs: BTreeMap<u64, SocketAddr>) -> PdClient {
    PdClient::connect(PdClientConfig::new(addrs), Clock::new(), "0.0.0.0:0").await.expect("bind")
}

/// A raw client that knows PD's members and no store (connect it on its own node).
async fn pd_routed_client(pd_addrs: BTreeMap<u64, SocketAddr>) -> minikv_client::RawClient {
    let mut config = minikv_client::ClientConfig::new(BTreeMap::new());
    config.pd_members = pd_addrs;
    minikv_client::RawClient::connect(config, Clock::new(), "0.0.0.0:0").await.expect("bind")
}

/// PD's own storage, through a raw client to the PD nodes' stores (connect it on its own node).
async fn pd_storage(pd_ids: Vec<u64>) -> minikv_pd::storage::Storage {
    let stores =
        pd_ids.into_iter().map(|id| (id, minikv_server::sim_cluster::store_addr(id))).collect();
    let config = minikv_client::ClientConfig::new(stores);
    let raw = minikv_client::RawClient::connect(config, Clock::new(), "0.0.0.0:0").await;
    minikv_pd::storage::Storage::new(raw.expect("bind"))
}

/// `stores` stores and three PD nodes; PD finds a store down after `max_store_down_ms`.
fn stores_with_pd(stores: u64, max_store_down_ms: u64) -> SimCluster {
    let mut config = SimClusterConfig::new(stores, 1);
    config.pd_nodes = 3;
    config.pd.max_store_down_ms = max_store_down_ms;
    SimCluster::start(config)
}

/// Waits until a PD leader is elected and returns it.
async fn pd_leader(cluster: &SimCluster) -> u64 {
    for _ in 0..200 {
        if let Some((id, _)) = cluster.pd_leader_term() {
            return id;
        }
        madsim::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no PD leader elected");
}

#[madsim::test]
async fn timestamps_increase_across_a_killed_leader_with_a_clock_behind() {
    let mut cluster = pd_cluster();
    let node = cluster.client_node("client-0");
    let addrs = cluster.pd_addrs();
    let leader = pd_leader(&cluster).await;
    // Every other PD node's clock is ten minutes behind the leader's.
    for id in cluster.pd_ids() {
        if id != leader {
            cluster.clock(id).set_offset_ms(-600_000);
        }
    }
    let first = node
        .spawn(async move {
            let mut c = connect(addrs).await;
            let mut last = c.tso(1).await.unwrap();
            for count in [1, 5, 3, 1] {
                let ts = c.tso(count).await.unwrap();
                assert!(ts > last, "{ts} after {last}");
                last = minikv_proto::pdpb::Timestamp(ts.0 + u64::from(count) - 1);
            }
            (last, c)
        })
        .await
        .unwrap();
    let (last, mut client) = first;
    cluster.crash(leader);
    let new_leader = loop {
        madsim::time::sleep(Duration::from_millis(50)).await;
        if let Some((id, _)) = cluster.pd_leader_term()
            && id != leader
        {
            break id;
        }
    };
    assert_ne!(new_leader, leader);
    let after = node.spawn(async move { client.tso(1).await }).await.unwrap().unwrap();
    assert!(after > last, "new leader's {after} is not above the old leader's {last}");
    assert!(
        after.physical_ms() + 600_000 > last.physical_ms() + 590_000,
        "the new leader started above the saved bound, not at its own clock"
    );
}

#[madsim::test]
async fn ids_are_unique_across_clients_and_a_restarted_leader() {
    let mut cluster = pd_cluster();
    let leader = pd_leader(&cluster).await;
    let mut seen = BTreeSet::new();
    for round in 0..2 {
        let node = cluster.client_node(&format!("client-{round}"));
        let addrs = cluster.pd_addrs();
        let ids = node
            .spawn(async move {
                let mut c = connect(addrs).await;
                let mut ids = Vec::new();
                for _ in 0..30 {
                    ids.push(c.alloc_id().await.unwrap());
                }
                ids
            })
            .await
            .unwrap();
        for id in ids {
            assert!(seen.insert(id), "id {id} handed out twice");
        }
        cluster.crash(leader);
        madsim::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(leader);
    }
    assert_eq!(seen.len(), 60);
}

#[madsim::test]
async fn bootstrap_happens_once_and_stores_register_after_it() {
    let mut cluster = pd_cluster();
    pd_leader(&cluster).await;
    let node = cluster.client_node("client-0");
    let addrs = cluster.pd_addrs();
    node.spawn(async move {
        let mut c = connect(addrs).await;
        assert!(!c.is_bootstrapped().await.unwrap());
        let store = Store { id: 1, address: "10.0.0.1:20160".into() };
        let put = c.call(PdRequest::PutStore { store: store.clone() }).await;
        assert_eq!(put, Err(PdClientError::Refused(PdError::NotBootstrapped)));
        let region = Region {
            id: 2,
            peers: vec![Peer { id: 3, store_id: 1, ..Default::default() }],
            ..Default::default()
        };
        let boot = PdRequest::Bootstrap { store: store.clone(), region: region.clone() };
        assert_eq!(c.call(boot.clone()).await, Ok(PdResponse::Ok));
        // The same bootstrap again (a retry whose answer was lost) is fine; another is not.
        assert_eq!(c.call(boot).await, Ok(PdResponse::Ok));
        let other = PdRequest::Bootstrap {
            store: Store { id: 9, address: "x".into() },
            region: Region {
                id: 2,
                peers: vec![Peer { id: 3, store_id: 9, ..Default::default() }],
                ..Default::default()
            },
        };
        assert_eq!(c.call(other).await, Err(PdClientError::Refused(PdError::AlreadyBootstrapped)));
        assert!(c.is_bootstrapped().await.unwrap());
        let second = Store { id: 4, address: "10.0.0.4:20160".into() };
        assert_eq!(c.call(PdRequest::PutStore { store: second.clone() }).await, Ok(PdResponse::Ok));
        assert_eq!(c.get_store(4).await.unwrap(), Some(second));
        assert_eq!(c.get_store(1).await.unwrap(), Some(store));
        assert_eq!(c.get_store(5).await.unwrap(), None);
    })
    .await
    .unwrap();
}

/// The region's voters' stores, from the leader's view.
fn voters(cluster: &SimCluster) -> Option<Vec<u64>> {
    let leader = cluster.leader()?;
    let status =
        cluster.probe(leader).peers.get(&minikv_server::sim_cluster::FIRST_REGION_ID)?.clone();
    let mut stores: Vec<u64> = status
        .region
        .peers
        .iter()
        .filter(|p| p.role == minikv_proto::metapb::PeerRole::Voter)
        .map(|p| p.store_id)
        .collect();
    stores.sort();
    Some(stores)
}

/// Waits up to `ms` for the region to have three voters, none on `excluded`.
async fn three_voters(cluster: &SimCluster, excluded: Option<u64>, ms: u64) -> Vec<u64> {
    let mut last = None;
    for _ in 0..ms / 50 {
        madsim::time::sleep(Duration::from_millis(50)).await;
        last = voters(cluster);
        if let Some(v) = &last
            && v.len() == 3
            && excluded.is_none_or(|x| !v.contains(&x))
        {
            return v.clone();
        }
    }
    panic!("no three voters (excluding {excluded:?}) within {ms} ms: {last:?}");
}

#[madsim::test]
async fn pd_bootstraps_routes_replicates_the_first_region_and_replaces_a_lost_store() {
    let mut cluster = stores_with_pd(5, 1_000);
    // Store 1 bootstrapped the region alone; PD's replica checker adds two more voters.
    let before = three_voters(&cluster, None, 5_000).await;
    // The client knows PD's members and no store: regions, leaders and stores' addresses
    // come from PD.
    let node = cluster.client_node("client-0");
    let pd_addrs = cluster.pd_addrs();
    node.spawn(async move {
        let mut c = pd_routed_client(pd_addrs).await;
        for i in 0..20u32 {
            c.put(format!("k{i}").as_bytes(), b"v").await.unwrap();
        }
        assert_eq!(c.get(b"k7").await.unwrap(), Some(b"v".to_vec()));
    })
    .await
    .unwrap();
    // Without PD, a client that knows no store cannot find the region.
    node.spawn(async move {
        let config = minikv_client::ClientConfig::new(Default::default());
        let mut c =
            minikv_client::RawClient::connect(config, Clock::new(), "0.0.0.0:0").await.unwrap();
        let error = c.get(b"k7").await.unwrap_err();
        assert!(error.to_string().contains("cannot locate"), "{error}");
    })
    .await
    .unwrap();
    // Lose a voter that does not lead: PD finds its store down and replaces its peer.
    let leader = cluster.leader().unwrap();
    let victim = *before.iter().find(|s| **s != leader).unwrap();
    cluster.lose(victim);
    let after = three_voters(&cluster, Some(victim), 10_000).await;
    assert!(!after.contains(&victim), "{after:?}");
    let stats = cluster
        .pd_ids()
        .iter()
        .map(|id| cluster.pd_stats(*id).unwrap().snapshot())
        .collect::<Vec<_>>();
    let created: u64 =
        stats.iter().map(|s| s.operators.get("replica").map_or(0, |c| c.created)).sum();
    assert!(created >= 3, "replica operators created: {created} ({stats:?})");
    // Every replica holds the 20 keys.
    madsim::time::sleep(Duration::from_secs(1)).await;
    for id in &after {
        assert_eq!(cluster.data(*id).len(), 20, "store {id}");
    }
    // A new client finds the region's new peers through PD.
    let pd_addrs = cluster.pd_addrs();
    node.spawn(async move {
        let mut c = pd_routed_client(pd_addrs).await;
        for i in 0..20u32 {
            assert_eq!(c.get(format!("k{i}").as_bytes()).await.unwrap(), Some(b"v".to_vec()));
        }
    })
    .await
    .unwrap();
}

#[madsim::test]
async fn heartbeats_carry_disk_usage_region_size_and_down_and_pending_peers() {
    // PD never replaces the silent peer here: the test watches it reported as down.
    let mut cluster = stores_with_pd(3, 600_000);
    let voters = three_voters(&cluster, None, 5_000).await;
    let node = cluster.client_node("client-0");
    let pd_addrs = cluster.pd_addrs();
    let addrs = pd_addrs.clone();
    node.spawn(async move {
        let mut c = pd_routed_client(addrs).await;
        for i in 0..30u32 {
            c.put(format!("key{i:02}").as_bytes(), b"value").await.unwrap();
        }
    })
    .await
    .unwrap();
    let leader = cluster.leader().unwrap();
    let follower = *voters.iter().find(|s| **s != leader).unwrap();
    cluster.crash(follower);
    // Past `peer_down_after_ms` (1 s) and a few heartbeats.
    madsim::time::sleep(Duration::from_millis(2_500)).await;
    let leader = cluster.leader().unwrap();
    let (info, stats) = node
        .spawn(async move {
            let mut pd = connect(pd_addrs).await;
            let info = match pd.call(PdRequest::GetRegion { key: b"key07".to_vec() }).await {
                Ok(PdResponse::Region { region: Some(info) }) => info,
                other => panic!("get region: {other:?}"),
            };
            (info, pd.get_store_stats(leader).await.unwrap().expect("the leader heartbeated"))
        })
        .await
        .unwrap();
    // 30 keys of 5 bytes with 5-byte values.
    assert_eq!(info.approximate_keys, 30, "{info:?}");
    assert_eq!(info.approximate_size_bytes, 300, "{info:?}");
    let down: Vec<u64> = info.down_peers.iter().map(|d| d.peer.store_id).collect();
    assert_eq!(down, vec![follower], "{info:?}");
    assert!(info.down_peers[0].down_ms >= 1_000, "{info:?}");
    assert_eq!(stats.region_count, 1, "{stats:?}");
    assert_eq!(stats.leader_count, 1, "{stats:?}");
    assert!(stats.used_bytes > 0, "{stats:?}");
    assert!(!stats.is_busy && !stats.disk_failing, "{stats:?}");
    // Back up, the follower is heard from again and no longer down.
    cluster.restart(follower);
    madsim::time::sleep(Duration::from_millis(2_000)).await;
    let pd_addrs = cluster.pd_addrs();
    let info = node
        .spawn(async move {
            let mut pd = connect(pd_addrs).await;
            match pd.call(PdRequest::GetRegion { key: b"key07".to_vec() }).await {
                Ok(PdResponse::Region { region: Some(info) }) => info,
                other => panic!("get region: {other:?}"),
            }
        })
        .await
        .unwrap();
    assert!(info.down_peers.is_empty(), "{info:?}");
}

#[madsim::test]
async fn a_region_record_is_never_overwritten_by_an_older_one() {
    use minikv_pd::storage::Swap;
    use minikv_proto::metapb::RegionEpoch;
    let mut cluster = pd_cluster();
    pd_leader(&cluster).await;
    let pd_ids = cluster.pd_ids();
    let node = cluster.client_node("client-0");
    node.spawn(async move {
        let mut storage = pd_storage(pd_ids).await;
        let at = |version, conf_ver| Region {
            id: 7,
            epoch: RegionEpoch { version, conf_ver },
            ..Region::default()
        };
        assert_eq!(storage.put_region(&at(2, 2)).await.unwrap(), Swap::Done);
        // Older in either part of the epoch: refused, naming the record that stands.
        for stale in [at(1, 2), at(2, 1), at(1, 5)] {
            let refused = storage.put_region(&stale).await.unwrap();
            assert_eq!(refused, Swap::Lost { found: Some(at(2, 2)) }, "{stale:?}");
        }
        assert_eq!(storage.put_region(&at(2, 3)).await.unwrap(), Swap::Done);
        assert_eq!(storage.regions().await.unwrap(), vec![at(2, 3)]);
    })
    .await
    .unwrap();
}

#[madsim::test]
async fn a_new_pd_leader_carries_on_the_operators_the_last_one_started() {
    use minikv_pd::PdStats;
    use minikv_pd::cluster::ClusterConfig;
    use minikv_pd::meta::{Meta, MetaConfig};
    use minikv_pd::schedule::ScheduleConfig;
    use minikv_proto::pdpb::{OperatorStep, RegionHeartbeat, StoreStats};
    let mut cluster = pd_cluster();
    pd_leader(&cluster).await;
    let pd_ids = cluster.pd_ids();
    let node = cluster.client_node("client-0");
    node.spawn(async move {
        let mut storage = pd_storage(pd_ids).await;
        let meta_config = MetaConfig {
            cluster: ClusterConfig { max_store_down_ms: 60_000 },
            schedule: ScheduleConfig::default(),
            schedule_interval_ms: 0,
            id_step: 100,
        };
        let store = |id: u64| Store { id, address: format!("s{id}") };
        let region = Region {
            id: 1,
            peers: vec![Peer { id: 1, store_id: 1, ..Peer::default() }],
            ..Region::default()
        };
        // One PD node bootstraps the cluster and meets three stores and a region with one
        // voter: it starts an operator to add a replica.
        let first_stats = PdStats::default();
        let mut first = Meta::new(meta_config.clone(), first_stats.clone());
        let bootstrap = PdRequest::Bootstrap { store: store(1), region: region.clone() };
        first.serve(&mut storage, bootstrap, 0).await.unwrap();
        for id in 1..=3 {
            first.serve(&mut storage, PdRequest::PutStore { store: store(id) }, 0).await.unwrap();
            let stats = StoreStats { store_id: id, ..StoreStats::default() };
            first.serve(&mut storage, PdRequest::StoreHeartbeat { stats }, 0).await.unwrap();
        }
        let heartbeat = RegionHeartbeat {
            region: region.clone(),
            leader: region.peers[0].clone(),
            term: 1,
            ..RegionHeartbeat::default()
        };
        let request = PdRequest::RegionHeartbeat { heartbeat };
        let step = match first.serve(&mut storage, request.clone(), 10).await.unwrap() {
            PdResponse::RegionHeartbeat { step: Some(step) } => step,
            other => panic!("no operator step: {other:?}"),
        };
        assert!(matches!(step, OperatorStep::AddLearner { .. }), "{step:?}");
        // The next leader loads the view from the PD region and sends the same step: it
        // carries the operator on rather than starting another one with other peer IDs.
        let second_stats = PdStats::default();
        let mut second = Meta::new(meta_config, second_stats.clone());
        for id in 1..=3 {
            let stats = StoreStats { store_id: id, ..StoreStats::default() };
            second.serve(&mut storage, PdRequest::StoreHeartbeat { stats }, 20).await.unwrap();
        }
        match second.serve(&mut storage, request, 30).await.unwrap() {
            PdResponse::RegionHeartbeat { step: Some(again) } => assert_eq!(again, step),
            other => panic!("the operator was lost: {other:?}"),
        }
        let counters = second_stats.snapshot();
        assert_eq!(counters.operators_restored, 1, "{counters:?}");
        assert_eq!(counters.operators.get("replica").map_or(0, |c| c.created), 0);
        assert_eq!(first_stats.snapshot().operators.get("replica").unwrap().created, 1);
        // The region shows the peer added and promoted: the operator finishes and its record
        // goes (another may start at once for the third replica).
        let OperatorStep::AddLearner { peer } = step else { unreachable!() };
        let mut grown = region.clone();
        grown.peers.push(Peer { role: minikv_proto::metapb::PeerRole::Voter, ..peer.clone() });
        grown.epoch.conf_ver += 2;
        let heartbeat = RegionHeartbeat {
            region: grown,
            leader: region.peers[0].clone(),
            term: 1,
            ..RegionHeartbeat::default()
        };
        second.serve(&mut storage, PdRequest::RegionHeartbeat { heartbeat }, 40).await.unwrap();
        let finished = second_stats.snapshot().operators.get("replica").map_or(0, |c| c.finished);
        assert_eq!(finished, 1);
        let saved = storage.operators().await.unwrap();
        assert!(
            saved
                .iter()
                .all(|op| !op.steps.contains(&OperatorStep::AddLearner { peer: peer.clone() })),
            "{saved:?}"
        );
    })
    .await
    .unwrap();
}
