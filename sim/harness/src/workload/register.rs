//! The register workload: clients read, write and compare-and-swap a few shared keys; the
//! linearizability checker judges the history. Finish: every client reads every key once.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use madsim::task::JoinHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, LocalFuture, Machine, Outcome, Workload, client_rng};
use crate::report::CheckResult;
use crate::scenario::RegisterSpec;

#[derive(Debug)]
struct Worker {
    index: u64,
    client: Client,
    rng: ChaCha8Rng,
    counter: u64,
    keys: u64,
    prefix: String,
    ok: u64,
}

impl Worker {
    fn key(&self, k: u64) -> String {
        format!("{}r{k}", self.prefix)
    }

    fn next_value(&mut self) -> u64 {
        self.counter += 1;
        (self.index + 1) * 1_000_000 + self.counter
    }

    async fn one_op(&mut self) {
        let k = self.rng.next_u64() % self.keys;
        let key = self.key(k);
        match self.rng.next_u64() % 3 {
            0 => {
                if let Outcome::Ok(_) = self.client.read(&key, true).await {
                    self.ok += 1;
                }
            }
            1 => {
                let v = self.next_value().to_string();
                if let Outcome::Ok(()) = self.client.write(&key, &v, &v).await {
                    self.ok += 1;
                }
            }
            _ => {
                // Expect a value some client may have written lately (or none), so that some
                // swaps succeed.
                let old = if self.rng.next_u64().is_multiple_of(4) || self.counter == 0 {
                    None
                } else {
                    let who = self.rng.next_u64() % 3;
                    Some((self.index + 1 + who) * 1_000_000 + self.counter.saturating_sub(who))
                };
                let new = self.next_value();
                let json =
                    format!("[{}, {new}]", old.map_or("null".to_string(), |o| o.to_string()));
                let old = old.map(|o| o.to_string());
                if let Outcome::Ok(true) =
                    self.client.cas(&key, old.as_deref(), &new.to_string(), &json).await
                {
                    self.ok += 1;
                }
            }
        }
    }
}

/// See the module comment.
#[derive(Debug)]
pub struct Register {
    env: Env,
    clients: u64,
    keys: u64,
    nodes: Vec<Machine>,
    running: Vec<JoinHandle<Worker>>,
    idle: Vec<Worker>,
    finished_reads: u64,
}

impl Register {
    pub fn new(spec: &RegisterSpec, env: Env) -> Register {
        Register {
            env,
            clients: *spec.clients.get_ref(),
            keys: *spec.keys.get_ref(),
            nodes: Vec::new(),
            running: Vec::new(),
            idle: Vec::new(),
            finished_reads: 0,
        }
    }
}

impl Workload for Register {
    fn name(&self) -> &'static str {
        "register"
    }

    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> NodeHandle) {
        for index in 0..self.clients {
            let node = spawn(&format!("{}-register-{index}", self.env.instance));
            let env = self.env.clone();
            let (keys, rng) = (self.keys, client_rng(&self.env, "register", index));
            self.running.push(node.spawn(async move {
                let client = Client::connect(&env).await;
                let prefix = format!("{}/", env.instance);
                let mut w = Worker { index, client, rng, counter: 0, keys, prefix, ok: 0 };
                while !env.stopped() {
                    w.one_op().await;
                }
                w
            }));
            self.nodes.push(Machine(node));
        }
    }

    fn join(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(async move {
            for handle in std::mem::take(&mut self.running) {
                self.idle.push(handle.await.expect("a register client panicked"));
            }
        })
    }

    fn finish(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(async move {
            let mut handles = Vec::new();
            for (w, node) in std::mem::take(&mut self.idle).into_iter().zip(&self.nodes) {
                let env = self.env.clone();
                handles.push(node.spawn(async move {
                    let mut w = w;
                    let mut reads = 0;
                    for k in 0..w.keys {
                        let key = w.key(k);
                        while !env.gave_up() {
                            if let Outcome::Ok(_) = w.client.read(&key, true).await {
                                reads += 1;
                                break;
                            }
                        }
                    }
                    (w, reads)
                }));
            }
            for h in handles {
                let (w, reads) = h.await.expect("a register client panicked");
                self.finished_reads += reads;
                self.idle.push(w);
            }
        })
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        Vec::new()
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("register.ok".to_string(), self.idle.iter().map(|w| w.ok).sum()),
            ("register.final_reads".to_string(), self.finished_reads),
        ])
    }
}
