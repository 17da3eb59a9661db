//! pd-sim: a three-node PD (no data stores) inside the madsim simulator, over the 1–10 ms links
//! sim-kv uses, no faults. For each client count and batch size, a fresh cluster; once it has
//! a PD leader, every client (each on its own machine) calls `tso(batch)` in a loop for the
//! simulated seconds of the run. Reports timestamps and requests per simulated second and how
//! much faster than real time the simulation ran, and panics if any client's timestamps do not
//! strictly increase. Flags: `--clients 1,16 --batches 1,64 --sim-secs 60 --seed 42`.
//! Must be built with `--cfg madsim`.

#[cfg(not(madsim))]
fn main() {
    eprintln!(
        "pd-sim must be built with RUSTFLAGS=\"--cfg madsim\" (it runs inside the madsim \
         simulator); e.g. RUSTFLAGS=\"--cfg madsim\" cargo run --release -p minikv-bench --bin pd_sim"
    );
    std::process::exit(2);
}

/// The allocator `minikv-sim` runs with, so that this measures what sweeps get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() {
    sim::main();
}

#[cfg(madsim)]
mod sim {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use madsim::time::Instant;
    use minikv_bench::{arg_list_or, arg_or, check_timestamps};
    use minikv_pd::{PdClient, PdClientConfig};
    use minikv_runtime::Clock;
    use minikv_server::sim_cluster::{SimCluster, SimClusterConfig};

    const PD_NODES: u64 = 3;
    /// Longest wait for the first PD leader, in simulated time.
    const LEADER_WAIT_MS_MAX: u64 = 10_000;

    /// One configuration's figures.
    struct Figures {
        clients: u64,
        batch: u32,
        timestamps: u64,
        requests: u64,
        errors: u64,
        /// The measured window: timestamps and requests counted are those answered in it.
        window_s: f64,
        /// The whole run, start-up and election included, as the wall time is.
        simulated_s: f64,
        wall_s: f64,
    }

    impl Figures {
        fn timestamps_per_sim_s(&self) -> f64 {
            self.timestamps as f64 / self.window_s
        }

        fn requests_per_sim_s(&self) -> f64 {
            self.requests as f64 / self.window_s
        }
    }

    pub fn main() {
        let clients = arg_list_or("clients", &[1, 16]);
        let batches = arg_list_or("batches", &[1, 64]);
        let secs: u64 = arg_or("sim-secs", 60);
        let seed: u64 = arg_or("seed", 42);
        assert!(secs > 0, "--sim-secs must be positive");
        println!(
            "pd-sim: {PD_NODES} PD nodes, 0 stores, 1-10 ms links, {secs} simulated s per \
             configuration from the first PD leader on, seed {seed}"
        );
        let mut all = Vec::new();
        for &batch in &batches {
            let batch = u32::try_from(batch).expect("--batches: a batch fits a u32");
            assert!(
                batch > 0 && batch <= minikv_pd::MAX_TSO_COUNT,
                "--batches: {batch} out of range"
            );
            for &count in &clients {
                assert!(count > 0, "--clients: at least one client");
                let f = run_one(seed, count, batch, secs);
                println!(
                    "{:>2} clients x tso({:>2}): {:>9.0} timestamps/simulated-s, {:>6.0} \
                     requests/simulated-s, {} errors, {:.1}x simulated/wall ({:.0} ms wall)",
                    f.clients,
                    f.batch,
                    f.timestamps_per_sim_s(),
                    f.requests_per_sim_s(),
                    f.errors,
                    f.simulated_s / f.wall_s,
                    f.wall_s * 1e3
                );
                all.push(f);
            }
        }
        let (simulated_s, wall_s) =
            all.iter().fold((0.0, 0.0), |(s, w), f| (s + f.simulated_s, w + f.wall_s));
        let each: Vec<String> = all
            .iter()
            .map(|f| format!("{}x{} {:.0}", f.clients, f.batch, f.timestamps_per_sim_s()))
            .collect();
        println!(
            "pd-sim: {} timestamps/simulated-s (clients x batch), {:.1}x simulated/wall, {:.0} ms wall",
            each.join(", "),
            simulated_s / wall_s,
            wall_s * 1e3
        );
    }

    /// One configuration on a fresh simulated cluster.
    fn run_one(seed: u64, clients: u64, batch: u32, secs: u64) -> Figures {
        let mut config = madsim::Config::default();
        config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, config);
        let wall = std::time::Instant::now();
        let (timestamps, requests, errors, simulated_s) =
            runtime.block_on(run(seed, clients, batch, secs));
        let wall_s = wall.elapsed().as_secs_f64();
        let window_s = secs as f64;
        Figures { clients, batch, timestamps, requests, errors, window_s, simulated_s, wall_s }
    }

    /// Timestamps and requests served in the window, failed requests, and the simulated
    /// seconds of the whole run (start-up and election included, as the wall time is).
    async fn run(seed: u64, clients: u64, batch: u32, secs: u64) -> (u64, u64, u64, f64) {
        let started = Instant::now();
        let mut config = SimClusterConfig::new(0, seed);
        config.pd_nodes = PD_NODES;
        let mut cluster = SimCluster::start(config);
        wait_for_pd_leader(&cluster).await;
        let addrs = cluster.pd_addrs();
        let end = Instant::now() + Duration::from_secs(secs);
        let requests = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..clients {
            let node = cluster.client_node(&format!("client-{i}"));
            let (addrs, requests, errors) = (addrs.clone(), requests.clone(), errors.clone());
            tasks.push(node.spawn(async move {
                let mut c =
                    PdClient::connect(PdClientConfig::new(addrs), Clock::new(), "0.0.0.0:0")
                        .await
                        .expect("bind client");
                let mut last = None;
                while Instant::now() < end {
                    match c.tso(batch).await {
                        Ok(first) => {
                            last = Some(check_timestamps(i, last, first.0, batch));
                            if Instant::now() < end {
                                requests.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        while !tasks.iter().all(|t| t.is_finished()) {
            madsim::time::sleep(Duration::from_millis(100)).await;
            cluster.reap_finished_tasks();
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let simulated_s = started.elapsed().as_secs_f64();
        cluster.shutdown();
        let requests = requests.load(Ordering::Relaxed);
        (requests * u64::from(batch), requests, errors.load(Ordering::Relaxed), simulated_s)
    }

    async fn wait_for_pd_leader(cluster: &SimCluster) {
        let start = Instant::now();
        while cluster.pd_leader_term().is_none() {
            assert!(
                start.elapsed() < Duration::from_millis(LEADER_WAIT_MS_MAX),
                "no PD leader within {LEADER_WAIT_MS_MAX} simulated ms"
            );
            madsim::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
