//! The register workload: clients read, write, compare-and-swap and delete (outright, or by a
//! cas to nothing) a few shared keys; the linearizability checker judges the history, a delete
//! as a write of `null`. Finish: every client reads every key once.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, Fleet, LocalFuture, Outcome, Workload};
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

    /// A value some client may have written lately, or none, for a cas to expect: so that
    /// some swaps succeed.
    fn recent_value(&mut self) -> Option<u64> {
        if self.rng.next_u64().is_multiple_of(4) || self.counter == 0 {
            return None;
        }
        let who = self.rng.next_u64() % 3;
        Some((self.index + 1 + who) * 1_000_000 + self.counter.saturating_sub(who))
    }

    async fn one_op(&mut self) {
        let k = self.rng.next_u64() % self.keys;
        let key = self.key(k);
        // Reads, writes and swaps three times as often as each kind of delete.
        let done = match self.rng.next_u64() % 11 {
            0..=2 => matches!(self.client.read(&key, true).await, Outcome::Ok(_)),
            3..=5 => {
                let v = self.next_value().to_string();
                self.client.write(&key, &v, &v).await == Outcome::Ok(())
            }
            6..=8 => {
                let old = self.recent_value();
                let new = self.next_value();
                self.cas(&key, old, Some(new)).await
            }
            9 => self.client.delete(&key).await == Outcome::Ok(()),
            _ => {
                // A conditional delete; expecting nothing would delete nothing, so expect a
                // value (this client's latest when the draw gives none).
                let own = (self.index + 1) * 1_000_000 + self.counter;
                let old = self.recent_value().or(Some(own));
                self.cas(&key, old, None).await
            }
        };
        if done {
            self.ok += 1;
        }
    }

    /// A cas of `key` from `old` to `new` (`None`: absent); whether it swapped.
    async fn cas(&mut self, key: &str, old: Option<u64>, new: Option<u64>) -> bool {
        let json = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        let value = format!("[{}, {}]", json(old), json(new));
        let (old, new) = (old.map(|o| o.to_string()), new.map(|n| n.to_string()));
        let swapped = self.client.cas(key, old.as_deref(), new.as_deref(), &value).await;
        swapped == Outcome::Ok(true)
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
        let keys = self.keys;
        self.fleet.launch_each(
            &self.env,
            "register",
            self.clients,
            spawn,
            |index, env, rng| async move {
                let client = Client::connect(&env).await;
                let prefix = format!("{}/", env.instance);
                let mut w =
                    Worker { index, client, rng, counter: 0, keys, prefix, ok: 0, final_reads: 0 };
                while !env.stopped() {
                    w.one_op().await;
                }
                w
            },
        );
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
