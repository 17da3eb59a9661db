//! sim-kv: five stores, one region, 16 raw clients doing gets and puts for 60 simulated seconds
//! over 1–10 ms links, no faults, inside the madsim simulator. Reports simulated throughput and
//! how much faster than real time the simulation ran. Must be built with `--cfg madsim`.

#[cfg(not(madsim))]
fn main() {
    eprintln!(
        "sim-kv must be built with RUSTFLAGS=\"--cfg madsim\" (it runs inside the madsim \
         simulator); e.g. RUSTFLAGS=\"--cfg madsim\" cargo run --release -p minikv-bench --bin sim_kv"
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

    use minikv_client::{ClientConfig, Clock, RawClient};
    use minikv_server::sim_cluster::{SimCluster, SimClusterConfig};

    const STORES: u64 = 5;
    const CLIENTS: u64 = 16;
    const SIMULATED_SECS: u64 = 60;
    /// Keys the clients spread their operations over.
    const KEYS: u64 = 1_000;
    const SEED: u64 = 42;

    pub fn main() {
        let mut config = madsim::Config::default();
        config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
        let runtime = madsim::runtime::Runtime::with_seed_and_config(SEED, config);
        let wall = std::time::Instant::now();
        let (ops, (writes, synced)) = runtime.block_on(run());
        let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
        let ops_per_sim_s = ops as f64 / SIMULATED_SECS as f64;
        let ratio = SIMULATED_SECS as f64 * 1e3 / wall_ms;
        println!(
            "{STORES} stores, 1 region, {CLIENTS} clients, {SIMULATED_SECS} simulated s: {ops} ops ok"
        );
        println!(
            "engine writes (all stores): {writes} ({:.1} per ok op), {synced} of them synced",
            writes as f64 / ops.max(1) as f64
        );
        println!(
            "sim-kv: {ops_per_sim_s:.0} ops/simulated-s, {ratio:.1}x simulated/wall, {wall_ms:.0} wall"
        );
    }

    /// Ok operations, and engine writes (all, synced) summed over every store.
    async fn run() -> (u64, (u64, u64)) {
        let mut config = SimClusterConfig::new(STORES, SEED);
        // No clock faults here, so leader leases are safe: gets skip the ReadIndex round.
        config.store.lease_read = std::env::var_os("SIM_KV_NO_LEASE").is_none();
        let mut cluster = SimCluster::start(config);
        let addrs = cluster.addrs();
        let ok = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let node = cluster.client_node(&format!("client-{i}"));
            let (addrs, ok) = (addrs.clone(), ok.clone());
            tasks.push(node.spawn(async move {
                let clock = Clock::new();
                let mut c =
                    RawClient::connect(ClientConfig::new(addrs), clock.clone(), "0.0.0.0:0")
                        .await
                        .expect("bind client");
                let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let end_ms = SIMULATED_SECS * 1_000;
                while clock.now_ms() < end_ms {
                    // xorshift: a cheap deterministic key and op choice.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("key{:04}", x % KEYS);
                    let done = if x % 2 == 0 {
                        c.put(key.as_bytes(), &x.to_le_bytes()).await.is_ok()
                    } else {
                        c.get(key.as_bytes()).await.is_ok()
                    };
                    if done && clock.now_ms() < end_ms {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let writes = cluster
            .store_ids()
            .into_iter()
            .filter_map(|id| cluster.probe(id).engine)
            .map(|engine| engine.stats())
            .fold((0, 0), |(w, s), st| (w + st.writes, s + st.synced_writes));
        (ok.load(Ordering::Relaxed), writes)
    }
}
