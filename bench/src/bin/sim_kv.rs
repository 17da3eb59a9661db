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

    use minikv_client::{ClientConfig, RawClient};
    use minikv_runtime::Clock;
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
        let Totals { ops, writes, synced, messages } = runtime.block_on(run());
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
        // What bounds the ratio: every message costs madsim a task, a delivery timer and
        // receive-side work, whatever the store does with it.
        println!(
            "messages (raft batches and client requests and replies): {messages} ({:.1} per ok \
             op, {:.2} us wall each, store work included)",
            messages as f64 / ops.max(1) as f64,
            wall_ms * 1e3 / messages.max(1) as f64
        );
        let floor_us = madsim_floor_us_per_message();
        println!(
            "madsim alone (a message ring of 5 nodes, no store): {floor_us:.2} us wall per \
             message, so {messages} messages cap this run at {:.0}x",
            SIMULATED_SECS as f64 * 1e6 / (floor_us * messages as f64)
        );
        println!(
            "sim-kv: {ops_per_sim_s:.0} ops/simulated-s, {ratio:.1}x simulated/wall, {wall_ms:.0} wall"
        );
    }

    /// Messages the floor measurement keeps in flight, about what sim-kv has.
    const FLOOR_MESSAGES_IN_FLIGHT: usize = 40;
    /// Payload bytes of each floor message, about a raft batch's.
    const FLOOR_PAYLOAD_BYTES: usize = 200;

    /// Wall microseconds madsim needs per message when nothing else happens: five nodes pass
    /// messages around a ring (each hop a task, as the store's sends are), over the same links,
    /// for the same simulated time.
    fn madsim_floor_us_per_message() -> f64 {
        let mut config = madsim::Config::default();
        config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
        let runtime = madsim::runtime::Runtime::with_seed_and_config(SEED, config);
        let wall = std::time::Instant::now();
        let messages = runtime.block_on(async {
            let handle = madsim::runtime::Handle::current();
            let addrs: Vec<std::net::SocketAddr> =
                (1..=STORES).map(|i| format!("10.9.0.{i}:1").parse().expect("addr")).collect();
            let count = Arc::new(AtomicU64::new(0));
            for (i, &addr) in addrs.iter().enumerate() {
                let (addrs, count) = (addrs.clone(), count.clone());
                let next = addrs[(i + 1) % addrs.len()];
                let node = handle.create_node().ip(addr.ip()).build();
                node.spawn(async move {
                    let ep = madsim::net::Endpoint::bind(addr).await.expect("bind");
                    if i == 0 {
                        for _ in 0..FLOOR_MESSAGES_IN_FLIGHT {
                            let payload = Box::new(vec![0u8; FLOOR_PAYLOAD_BYTES]);
                            let ep = ep.clone();
                            madsim::task::spawn(
                                async move { ep.send_to_raw(next, 1, payload).await },
                            );
                        }
                    }
                    while let Ok((payload, _)) = ep.recv_from_raw(1).await {
                        count.fetch_add(1, Ordering::Relaxed);
                        let ep = ep.clone();
                        madsim::task::spawn(async move { ep.send_to_raw(next, 1, payload).await });
                    }
                });
            }
            // Reaped as sim-kv's own run is (see `SimCluster::reap_finished_tasks`).
            for _ in 0..SIMULATED_SECS * 10 {
                madsim::time::sleep(Duration::from_millis(100)).await;
                handle.metrics().num_tasks();
            }
            count.load(Ordering::Relaxed)
        });
        wall.elapsed().as_secs_f64() * 1e6 / messages.max(1) as f64
    }

    /// What a run did, summed over every store.
    struct Totals {
        ops: u64,
        writes: u64,
        synced: u64,
        messages: u64,
    }

    /// Ok operations, engine writes (all, synced) and messages sent, summed over every store.
    async fn run() -> Totals {
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
        while !tasks.iter().all(|t| t.is_finished()) {
            madsim::time::sleep(Duration::from_millis(100)).await;
            cluster.reap_finished_tasks();
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut totals =
            Totals { ops: ok.load(Ordering::Relaxed), writes: 0, synced: 0, messages: 0 };
        for id in cluster.store_ids() {
            let probe = cluster.probe(id);
            totals.messages += probe.raft_batches_sent + 2 * probe.requests_answered;
            if let Some(engine) = probe.engine {
                let stats = engine.stats();
                totals.writes += stats.writes;
                totals.synced += stats.synced_writes;
            }
        }
        totals
    }
}
