//! The register workload: clients read, write and compare-and-swap a few shared keys; the
//! linearizability checker judges the history. Finish: every client reads every key once.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, Fleet, LocalFuture, Outcome, Workload, client_rng};
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
    final_reads: u64,
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
    fleet: Fleet<Worker>,
}

impl Register {
    pub fn new(spec: &RegisterSpec, env: Env) -> Register {
        Register {
            env,
            clients: *spec.clients.get_ref(),
            keys: *spec.keys.get_ref(),
            fleet: Fleet::default(),
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
            self.fleet.launch(node, async move {
                let client = Client::connect(&env).await;
                let prefix = format!("{}/", env.instance);
                let mut w =
                    Worker { index, client, rng, counter: 0, keys, prefix, ok: 0, final_reads: 0 };
                while !env.stopped() {
                    w.one_op().await;
                }
                w
            });
        }
    }

    fn join(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(self.fleet.join())
    }

    fn finish(&mut self) -> LocalFuture<'_, ()> {
        let env = self.env.clone();
        Box::pin(self.fleet.each(move |mut w| {
            let env = env.clone();
            async move {
                for k in 0..w.keys {
                    let key = w.key(k);
                    while !env.gave_up() {
                        if let Outcome::Ok(_) = w.client.read(&key, true).await {
                            w.final_reads += 1;
                            break;
                        }
                    }
                }
                w
            }
        }))
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        Vec::new()
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("register.ok".to_string(), self.fleet.clients().iter().map(|w| w.ok).sum()),
            (
                "register.final_reads".to_string(),
                self.fleet.clients().iter().map(|w| w.final_reads).sum(),
            ),
        ])
    }
}
