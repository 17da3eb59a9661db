//! pd-tcp: a three-node PD on real TCP over loopback. Each PD node is a store on a `FileDisk`
//! in a temp dir (hosting the PD region, one voter per node) with the PD service beside it, on
//! its own thread and tokio runtime; the clients are tasks on one more thread. For each client
//! count and batch size, fresh clients call `tso(batch)` in a loop for the wall seconds of the
//! window. Reports timestamps and requests per second and each request's p50/p99 latency, and
//! panics if any client's timestamps do not strictly increase. Flags: `--clients 1,16
//! --batches 1,64 --wall-secs 5`. Plain build only (under madsim the network is simulated).

#[cfg(madsim)]
fn main() {
    eprintln!(
        "pd-tcp runs on real TCP and must be built without --cfg madsim; e.g. \
         cargo run --release -p minikv-bench --bin pd_tcp"
    );
    std::process::exit(2);
}

#[cfg(not(madsim))]
fn main() {
    tcp::main();
}

#[cfg(not(madsim))]
mod tcp {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use minikv_bench::{arg_list_or, arg_or, check_timestamps, percentile};
    use minikv_engine::{Engine, FileDisk};
    use minikv_pd::{
        MAX_TSO_COUNT, PD_REGION_ID, PdClient, PdClientConfig, PdConfig, PdService, PdStats,
    };
    use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};
    use minikv_raftstore::StoreConfig;
    use minikv_runtime::Clock;
    use minikv_server::{Node, NodeConfig, NodeProbe};
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    const PD_NODES: u64 = 3;
    /// Longest wait for one node to open its engine and bind its ports.
    const NODE_START_WAIT_S_MAX: u64 = 10;
    /// Longest wait for the first timestamp (the PD region elects its leader meanwhile).
    const FIRST_TSO_WAIT_S_MAX: u64 = 30;
    /// Each client connects and takes one timestamp before the window opens this much later.
    const WARMUP_MS: u64 = 500;

    /// A directory under the system temp dir, removed when dropped (also on a panic).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let name = format!("minikv-pd-tcp-{}", std::process::id());
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

    /// One PD node (its store and the PD service) on its own thread and runtime; dropping it
    /// stops the runtime, which closes its sockets.
    struct PdNode {
        stop: Option<oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl PdNode {
        fn start(
            id: u64,
            store_addrs: &BTreeMap<u64, SocketAddr>,
            pd_addr: SocketAddr,
            dir: &Path,
        ) -> PdNode {
            let node_config = NodeConfig::new(id, store_addrs.clone(), StoreConfig::default());
            let pd_config = PdConfig::new(id, pd_addr, store_addrs.clone());
            let region = pd_region(store_addrs);
            let path = dir.join(format!("pd-{id}.redb"));
            let (stop, stopped) = oneshot::channel::<()>();
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("node runtime");
                rt.block_on(async move {
                    let engine = Arc::new(Engine::open(FileDisk::new(&path)).expect("open engine"));
                    let clock = Clock::new();
                    let node = Node::start(
                        node_config,
                        engine,
                        clock.clone(),
                        NodeProbe::new(),
                        Some(region),
                    )
                    .await
                    .expect("node starts");
                    let service = PdService::start(pd_config, clock, PdStats::default())
                        .await
                        .expect("PD starts");
                    drop(tokio::spawn(service.run()));
                    started_tx.send(()).expect("main thread waits");
                    tokio::select! {
                        result = node.run() => panic!("PD node {id} stopped: {result:?}"),
                        _ = stopped => {}
                    }
                });
                drop(rt);
            });
            started_rx
                .recv_timeout(Duration::from_secs(NODE_START_WAIT_S_MAX))
                .unwrap_or_else(|_| panic!("PD node {id} did not start"));
            PdNode { stop: Some(stop), thread: Some(thread) }
        }
    }

    impl Drop for PdNode {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = self.thread.take() {
                // A node thread that panicked has said why already; the run is over either way.
                let _ = thread.join();
            }
        }
    }

    /// The PD region: every key, one voter per PD node (peer id = store id = node id).
    fn pd_region(store_addrs: &BTreeMap<u64, SocketAddr>) -> Region {
        Region {
            id: PD_REGION_ID,
            start_key: vec![],
            end_key: vec![],
            epoch: RegionEpoch { conf_ver: 1, version: 1 },
            peers: store_addrs
                .keys()
                .map(|&id| Peer { id, store_id: id, role: PeerRole::Voter })
                .collect(),
        }
    }

    /// `n` loopback ports free a moment ago: all bound at once (so they differ), then released
    /// for the nodes to take.
    fn free_ports(n: u64) -> Vec<u16> {
        let listeners: Vec<_> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
            .collect();
        listeners.iter().map(|l| l.local_addr().expect("bound").port()).collect()
    }

    /// One configuration's figures.
    struct Figures {
        clients: u64,
        batch: u32,
        requests: u64,
        errors: u64,
        window_s: f64,
        /// Every request's latency in the window, ascending.
        latencies_us: Vec<u64>,
    }

    impl Figures {
        fn requests_per_s(&self) -> f64 {
            self.requests as f64 / self.window_s
        }

        fn timestamps_per_s(&self) -> f64 {
            self.requests_per_s() * f64::from(self.batch)
        }
    }

    pub fn main() {
        let clients = arg_list_or("clients", &[1, 16]);
        let batches = arg_list_or("batches", &[1, 64]);
        let secs: f64 = arg_or("wall-secs", 5.0);
        assert!(secs > 0.0, "--wall-secs must be positive");
        let window = Duration::from_secs_f64(secs);
        println!(
            "pd-tcp: {PD_NODES} PD nodes on 127.0.0.1, FileDisk stores in a temp dir, one thread \
             each; clients on one more thread; {secs} wall s per configuration"
        );
        let dir = TempDir::new();
        let ports = free_ports(2 * PD_NODES);
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let ids: Vec<u64> = (1..=PD_NODES).collect();
        let store_addrs: BTreeMap<u64, SocketAddr> =
            ids.iter().zip(&ports).map(|(&id, &port)| (id, loopback(port))).collect();
        let pd_addrs: BTreeMap<u64, SocketAddr> =
            ids.iter().zip(&ports[ids.len()..]).map(|(&id, &port)| (id, loopback(port))).collect();
        let nodes: Vec<PdNode> =
            ids.iter().map(|&id| PdNode::start(id, &store_addrs, pd_addrs[&id], &dir.0)).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        rt.block_on(wait_for_first_timestamp(&pd_addrs));
        let mut all = Vec::new();
        for &batch in &batches {
            let batch = u32::try_from(batch).expect("--batches: a batch fits a u32");
            assert!(batch > 0 && batch <= MAX_TSO_COUNT, "--batches: {batch} out of range");
            for &count in &clients {
                assert!(count > 0, "--clients: at least one client");
                let f = rt.block_on(run_one(&pd_addrs, count, batch, window));
                println!(
                    "{:>2} clients x tso({:>2}): {:>9.0} timestamps/s, {:>6.0} requests/s, {} \
                     errors, latency p50 {} us, p99 {} us",
                    f.clients,
                    f.batch,
                    f.timestamps_per_s(),
                    f.requests_per_s(),
                    f.errors,
                    percentile(&f.latencies_us, 50.0),
                    percentile(&f.latencies_us, 99.0)
                );
                all.push(f);
            }
        }
        drop(rt);
        // The nodes stop before their files go.
        drop(nodes);
        drop(dir);
        summary(&all);
    }

    /// The last line: timestamps/s of every configuration, and the latency of the first
    /// (one client, batch 1 by default: the latency with nothing queued).
    fn summary(all: &[Figures]) {
        let each: Vec<String> = all
            .iter()
            .map(|f| format!("{}x{} {:.0}", f.clients, f.batch, f.timestamps_per_s()))
            .collect();
        let first = all.first().expect("at least one configuration");
        println!(
            "pd-tcp: {} timestamps/s (clients x batch), {}x{} latency p50 {} us, p99 {} us",
            each.join(", "),
            first.clients,
            first.batch,
            percentile(&first.latencies_us, 50.0),
            percentile(&first.latencies_us, 99.0)
        );
    }

    async fn connect(pd_addrs: &BTreeMap<u64, SocketAddr>) -> PdClient {
        PdClient::connect(PdClientConfig::new(pd_addrs.clone()), Clock::new(), "127.0.0.1:0")
            .await
            .expect("client binds")
    }

    /// Waits until PD hands out a timestamp (its region has a leader that has read the bound).
    async fn wait_for_first_timestamp(pd_addrs: &BTreeMap<u64, SocketAddr>) {
        let mut c = connect(pd_addrs).await;
        let deadline = Instant::now() + Duration::from_secs(FIRST_TSO_WAIT_S_MAX);
        while let Err(e) = c.tso(1).await {
            assert!(Instant::now() < deadline, "no timestamp in {FIRST_TSO_WAIT_S_MAX} s: {e}");
        }
    }

    /// `clients` fresh clients calling `tso(batch)` for `window`.
    async fn run_one(
        pd_addrs: &BTreeMap<u64, SocketAddr>,
        clients: u64,
        batch: u32,
        window: Duration,
    ) -> Figures {
        let start = Instant::now() + Duration::from_millis(WARMUP_MS);
        let end = start + window;
        let tasks: Vec<_> = (0..clients)
            .map(|i| tokio::spawn(client(i, pd_addrs.clone(), batch, start, end)))
            .collect();
        let (mut latencies_us, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await.expect("client task");
            latencies_us.extend(l);
            errors += e;
        }
        latencies_us.sort_unstable();
        let requests = latencies_us.len() as u64;
        Figures { clients, batch, requests, errors, window_s: window.as_secs_f64(), latencies_us }
    }

    /// One client: a warm-up timestamp, then `tso(batch)` from `start` to `end`. Returns the
    /// latency of each request answered in the window, and the count of failed ones.
    async fn client(
        i: u64,
        pd_addrs: BTreeMap<u64, SocketAddr>,
        batch: u32,
        start: Instant,
        end: Instant,
    ) -> (Vec<u64>, u64) {
        let mut c = connect(&pd_addrs).await;
        let first = c.tso(batch).await.expect("warm-up timestamp");
        let mut last = Some(check_timestamps(i, None, first.0, batch));
        tokio::time::sleep_until(start).await;
        let (mut latencies_us, mut errors) = (Vec::new(), 0);
        while Instant::now() < end {
            let sent = Instant::now();
            match c.tso(batch).await {
                Ok(first) => {
                    last = Some(check_timestamps(i, last, first.0, batch));
                    let answered = Instant::now();
                    if answered < end {
                        let us = answered.duration_since(sent).as_micros();
                        latencies_us.push(u64::try_from(us).unwrap_or(u64::MAX));
                    }
                }
                Err(_) => errors += 1,
            }
        }
        (latencies_us, errors)
    }
}
