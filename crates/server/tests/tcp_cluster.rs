//! Three nodes on real TCP (127.0.0.1, ephemeral ports) over `FileDisk`s in a temp dir: a raw
//! client puts, gets, compares-and-swaps and scans; one node is killed, the other two keep
//! serving, the node restarts from its file, catches up, and then carries a majority itself.

#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use minikv_client::{ClientConfig, Error, RawClient};
use minikv_engine::{Engine, FileDisk};
use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};
use minikv_raftstore::StoreConfig;
use minikv_runtime::Clock;
use minikv_server::{Node, NodeConfig, NodeProbe};
use tokio::sync::oneshot;

/// A directory under the system temp dir, removed when dropped (also on a failed assert).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name =
            format!("minikv-tcp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node on its own thread and runtime; dropping the runtime closes its sockets.
struct RunningNode {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    fn start(id: u64, addrs: &BTreeMap<u64, SocketAddr>, dir: &std::path::Path) -> RunningNode {
        let config = NodeConfig::new(id, addrs.clone(), StoreConfig::default());
        let path = dir.join(format!("store-{id}.redb"));
        let region = Region {
            id: 1,
            start_key: vec![],
            end_key: vec![],
            epoch: RegionEpoch { conf_ver: 1, version: 1 },
            peers: addrs
                .keys()
                .map(|&id| Peer { id, store_id: id, role: PeerRole::Voter })
                .collect(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let engine = Arc::new(Engine::open(FileDisk::new(&path)).expect("open engine"));
                // Bootstrapping is skipped by a store that already hosts the region.
                let node =
                    Node::start(config, engine, Clock::new(), NodeProbe::new(), Some(region))
                        .await
                        .expect("node starts");
                started_tx.send(()).unwrap();
                tokio::select! {
                    result = node.run() => panic!("node {id} stopped: {result:?}"),
                    _ = stopped => {}
                }
            });
            drop(rt);
        });
        started_rx.recv_timeout(Duration::from_secs(10)).expect("node started");
        RunningNode { stop: Some(stop), thread: Some(thread) }
    }

    /// Kills the node: its tasks and sockets go at once (no graceful shutdown).
    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node thread did not panic");
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Retries a write whose outcome was unknown or timed out (elections after start or kill).
async fn put(c: &mut RawClient, key: &str, value: &str) {
    for _ in 0..20 {
        match c.put(key.as_bytes(), value.as_bytes()).await {
            Ok(()) => return,
            Err(e @ (Error::Unknown(_) | Error::DeadlineExceeded(_))) => {
                eprintln!("put {key}: {e}; again");
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
    panic!("put {key} did not succeed in 20 attempts");
}

async fn get(c: &mut RawClient, key: &str) -> Option<String> {
    for _ in 0..20 {
        match c.get(key.as_bytes()).await {
            Ok(v) => return v.map(|v| String::from_utf8(v).unwrap()),
            Err(e) => eprintln!("get {key}: {e}; again"),
        }
    }
    panic!("get {key} did not succeed in 20 attempts");
}

#[test]
fn three_nodes_on_tcp_serve_survive_a_kill_and_restart() {
    let dir = TempDir::new();
    let ports = free_ports(3);
    let addrs: BTreeMap<u64, SocketAddr> = (1..=3)
        .map(|id| (id, SocketAddr::from(([127, 0, 0, 1], ports[id as usize - 1]))))
        .collect();
    let mut nodes: BTreeMap<u64, RunningNode> =
        (1..=3).map(|id| (id, RunningNode::start(id, &addrs, &dir.0))).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c =
            RawClient::connect(ClientConfig::new(addrs.clone()), Clock::new(), "127.0.0.1:0")
                .await
                .expect("client binds");
        for i in 0..10 {
            put(&mut c, &format!("k{i}"), &format!("v{i}")).await;
        }
        assert_eq!(get(&mut c, "k3").await.as_deref(), Some("v3"));
        assert_eq!(get(&mut c, "missing").await, None);
        assert_eq!(
            c.cas(b"k0", Some(b"v0"), Some(b"w0")).await.unwrap(),
            (true, Some(b"v0".to_vec()))
        );
        assert!(!c.cas(b"k0", Some(b"v0"), Some(b"x")).await.unwrap().0);
        let all = c.scan(b"k", b"l", 100).await.unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], (b"k0".to_vec(), b"w0".to_vec()));

        nodes.get_mut(&3).unwrap().kill();
        for i in 10..15 {
            put(&mut c, &format!("k{i}"), &format!("v{i}")).await;
        }
        nodes.insert(3, RunningNode::start(3, &addrs, &dir.0));
        // Give the restarted node time to catch up, then take away another: the restarted
        // one must now carry the majority with everything acknowledged.
        madsim::time::sleep(Duration::from_millis(500)).await;
        nodes.get_mut(&1).unwrap().kill();
        put(&mut c, "after", "restart").await;
        for i in 0..15 {
            let want = if i == 0 { "w0".to_string() } else { format!("v{i}") };
            assert_eq!(get(&mut c, &format!("k{i}")).await, Some(want), "k{i}");
        }
        assert_eq!(get(&mut c, "after").await.as_deref(), Some("restart"));
    });
    drop(nodes);
}
