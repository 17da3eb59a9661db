//! The tso workload: clients ask PD for batches of timestamps (1 to `max_count` each) and
//! note when each request left and its answer came back, on the simulation's one clock. The
//! `tso` check: every batch lies above every timestamp received before it was asked for, and
//! none repeats (`minikv_checker::tso`), over every phase's requests together (the run's one
//! `TsoLog`). Finish: every client gets one more batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use madsim::runtime::NodeHandle;
use madsim::time::Instant;
use minikv_checker::tso::{TsoOp, check};
use minikv_pd::{PdClient, PdClientConfig};
use minikv_runtime::Clock;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Env, Fleet, LocalFuture, Workload};
use crate::report::CheckResult;
use crate::scenario::TsoSpec;

/// Every answered TSO request of a run, from every phase, on one time base.
#[derive(Debug, Clone)]
pub struct TsoLog {
    /// When the run started: op times are nanoseconds since then.
    base: Instant,
    ops: Arc<Mutex<Vec<TsoOp>>>,
}

impl Default for TsoLog {
    fn default() -> Self {
        TsoLog::new()
    }
}

impl TsoLog {
    /// A log whose time zero is now (call inside the simulation).
    pub fn new() -> TsoLog {
        TsoLog { base: Instant::now(), ops: Arc::default() }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn push(&self, op: TsoOp) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    fn ops(&self) -> Vec<TsoOp> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug)]
struct Asker {
    /// Unique across the run's phases (`<phase>-<index>` packed: phase * 1000 + index).
    client: u64,
    pd: PdClient,
    rng: ChaCha8Rng,
    max_count: u64,
    log: TsoLog,
    ok: u64,
    failed: u64,
}

impl Asker {
    /// One request; whether it was answered.
    async fn ask(&mut self) -> bool {
        let count = 1 + (self.rng.next_u64() % self.max_count) as u32;
        let invoke_ns = self.log.now_ns();
        match self.pd.tso(count).await {
            Ok(first) => {
                let complete_ns = self.log.now_ns();
                let client = self.client;
                self.log.push(TsoOp { client, invoke_ns, complete_ns, first: first.0, count });
                self.ok += 1;
                true
            }
            Err(e) => {
                tracing::debug!(target: "minikv::client", "tso client {}: {e}", self.client);
                self.failed += 1;
                false
            }
        }
    }
}

/// See the module comment.
#[derive(Debug)]
pub struct Tso {
    env: Env,
    clients: u64,
    max_count: u64,
    fleet: Fleet<Asker>,
}

impl Tso {
    pub fn new(spec: &TsoSpec, env: Env) -> Tso {
        Tso {
            env,
            clients: *spec.clients.get_ref(),
            max_count: *spec.max_count.get_ref(),
            fleet: Fleet::default(),
        }
    }
}

impl Workload for Tso {
    fn name(&self) -> &'static str {
        "tso"
    }

    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> NodeHandle) {
        let max_count = self.max_count;
        let phase = self.env.phase;
        self.fleet.launch_each(
            &self.env,
            "tso",
            self.clients,
            spawn,
            |index, env, rng| async move {
                let config = PdClientConfig::new(env.pd_addrs.clone());
                let pd = PdClient::connect(config, Clock::new(), "0.0.0.0:0")
                    .await
                    .unwrap_or_else(|e| panic!("a tso client cannot bind: {e}"));
                let log = env.tso_log.clone();
                let client = phase * 1_000 + index;
                let mut a = Asker { client, pd, rng, max_count, log, ok: 0, failed: 0 };
                while !env.stopped() {
                    a.ask().await;
                }
                a
            },
        );
    }

    fn join(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(self.fleet.join())
    }

    fn finish(&mut self) -> LocalFuture<'_, ()> {
        let env = self.env.clone();
        Box::pin(self.fleet.each(move |mut a| {
            let env = env.clone();
            async move {
                while !env.gave_up() && !a.ask().await {}
                a
            }
        }))
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        // Checked inside the simulation, where wall time is not read: `ms` stays 0, as the
        // other workload checks'.
        let result = check(&self.env.tso_log.ops());
        let detail = result.as_ref().err().map(|e| e.to_string());
        vec![("tso".to_string(), CheckResult { valid: result.is_ok(), ms: 0, detail })]
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        // Every answer of the run so far, folded: the trace hash covers the timestamps.
        let ops = self.env.tso_log.ops();
        let mut digest = xxhash_rust::xxh64::Xxh64::new(0);
        for op in &ops {
            for x in [op.client, op.invoke_ns, op.complete_ns, op.first, u64::from(op.count)] {
                digest.update(&x.to_le_bytes());
            }
        }
        BTreeMap::from([
            ("tso.ok".to_string(), self.fleet.clients().iter().map(|a| a.ok).sum()),
            ("tso.failed".to_string(), self.fleet.clients().iter().map(|a| a.failed).sum()),
            ("tso.timestamps".to_string(), ops.iter().map(|o| u64::from(o.count)).sum()),
            ("tso.digest".to_string(), digest.digest()),
        ])
    }
}
