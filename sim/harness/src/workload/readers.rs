//! The readers workload: read-only clients of the register workload's keys, and fresh writers:
//! clients that connect anew for every write (a cold cache: they ask the stores where the
//! leader is). A reader keeps asking the leader it knows, so when that leader is deposed its
//! reads keep arriving while fresh writers commit on the new leader: the history then shows any
//! read a stale lease served. The linearizability checker judges them with the other writes.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, Fleet, LocalFuture, Outcome, Workload};
use crate::report::CheckResult;
use crate::scenario::ReadersSpec;

#[derive(Debug)]
struct Reader {
    client: Client,
    rng: ChaCha8Rng,
    keys: u64,
    prefix: String,
    ok: u64,
}

impl Reader {
    /// The register workload's key `k` (see `register.rs`).
    fn key(&self, k: u64) -> String {
        format!("{}r{k}", self.prefix)
    }
}

/// A writer that connects anew for each write; its values are unique across the run.
#[derive(Debug)]
struct FreshWriter {
    index: u64,
    rng: ChaCha8Rng,
    counter: u64,
    ok: u64,
}

/// See the module comment.
#[derive(Debug)]
pub struct Readers {
    env: Env,
    clients: u64,
    fresh_writers: u64,
    keys: u64,
    fleet: Fleet<Reader>,
    writers: Fleet<FreshWriter>,
}

impl Readers {
    pub fn new(spec: &ReadersSpec, env: Env) -> Readers {
        Readers {
            env,
            clients: *spec.clients.get_ref(),
            fresh_writers: spec.fresh_writers.as_ref().map_or(0, |w| *w.get_ref()),
            keys: *spec.keys.get_ref(),
            fleet: Fleet::default(),
            writers: Fleet::default(),
        }
    }
}

impl Workload for Readers {
    fn name(&self) -> &'static str {
        "readers"
    }

    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> NodeHandle) {
        let keys = self.keys;
        self.fleet.launch_each(
            &self.env,
            "readers",
            self.clients,
            spawn,
            |_, env, rng| async move {
                let client = Client::connect(&env).await;
                let prefix = format!("{}/", env.instance);
                let mut r = Reader { client, rng, keys, prefix, ok: 0 };
                while !env.stopped() {
                    let k = r.rng.next_u64() % r.keys;
                    let key = r.key(k);
                    if let Outcome::Ok(_) = r.client.read(&key, true).await {
                        r.ok += 1;
                    }
                }
                r
            },
        );
        let (env, count) = (&self.env, self.fresh_writers);
        self.writers.launch_each(
            env,
            "fresh-writers",
            count,
            spawn,
            |index, env, rng| async move {
                let mut w = FreshWriter { index, rng, counter: 0, ok: 0 };
                while !env.stopped() {
                    let mut client = Client::connect(&env).await;
                    w.counter += 1;
                    // Unique beside the register workload's values ((index + 1) * 1e6 + n).
                    let v = ((1_000 + w.index) * 1_000_000 + w.counter).to_string();
                    let key = format!("{}/r{}", env.instance, w.rng.next_u64() % keys);
                    if let Outcome::Ok(()) = client.write(&key, &v, &v).await {
                        w.ok += 1;
                    }
                }
                w
            },
        );
    }

    fn join(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(async {
            self.fleet.join().await;
            self.writers.join().await;
        })
    }

    /// Readers promise nothing at the end: the register workload's final reads cover liveness.
    fn finish(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(async {})
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        Vec::new()
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("readers.ok".to_string(), self.fleet.clients().iter().map(|r| r.ok).sum()),
            (
                "readers.fresh_writes_ok".to_string(),
                self.writers.clients().iter().map(|w| w.ok).sum(),
            ),
        ])
    }
}
