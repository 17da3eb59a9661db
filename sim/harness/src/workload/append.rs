//! The append workload: each client appends unique values to its own keys exactly once, in
//! order (read, then cas; an unknown cas is resolved by reading again, which is sound because
//! only this client writes the key), and scans its keys back: every scan must equal the
//! acknowledged appends. Finish: one more append per key and a scan that succeeds.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, Fleet, LocalFuture, Outcome, Workload};
use crate::history::json_opt;
use crate::report::CheckResult;
use crate::scenario::AppendSpec;

/// Largest number of violations kept verbatim.
const MAX_KEPT: usize = 5;

#[derive(Debug)]
struct Worker {
    index: u64,
    client: Client,
    rng: ChaCha8Rng,
    env: Env,
    keys: u64,
    counter: u64,
    /// Acknowledged appends of each own key, in order.
    model: BTreeMap<String, Vec<u64>>,
    /// An append abandoned when the run gave up: (key, value), applied or not.
    pending: Option<(String, u64)>,
    appends: u64,
    scans: u64,
    violations: Vec<String>,
}

fn parse_list(v: &Option<String>) -> Result<Vec<u64>, String> {
    match v.as_deref() {
        None | Some("") => Ok(Vec::new()),
        Some(s) => {
            s.split(',').map(|x| x.parse().map_err(|_| format!("not a list: {s:?}"))).collect()
        }
    }
}

fn join_list(l: &[u64]) -> String {
    l.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

impl Worker {
    fn prefix(&self) -> String {
        format!("{}/own{:02}/", self.env.instance, self.index)
    }

    fn violate(&mut self, m: String) {
        tracing::info!(target: "minikv::sim", "append check: {m}");
        self.violations.push(m);
    }

    /// Appends a fresh value to own key `j` exactly once. Returns false if it gave up.
    async fn append(&mut self, j: u64) -> bool {
        let key = format!("{}{j}", self.prefix());
        self.counter += 1;
        let v = (self.index + 1) * 1_000_000 + self.counter;
        let acked = self.model.get(&key).cloned().unwrap_or_default();
        let mut with_v = acked.clone();
        with_v.push(v);
        loop {
            if self.env.gave_up() {
                self.pending = Some((key, v));
                return false;
            }
            let Outcome::Ok(current) = self.client.read(&key, false).await else { continue };
            let list = match parse_list(&current) {
                Ok(l) => l,
                Err(e) => {
                    self.violate(format!("key {key}: {e}"));
                    return true;
                }
            };
            if list == with_v {
                break;
            }
            if list != acked {
                self.violate(format!(
                    "key {key} holds {list:?}, but the acknowledged appends are {acked:?} \
                     (pending {v})"
                ));
                // Carry on from what the store holds, so one violation is reported once.
                self.model.insert(key.clone(), list);
                return true;
            }
            let json = format!("[{}, {}]", json_opt(&current), json_opt(&Some(join_list(&with_v))));
            if let Outcome::Ok(true) =
                self.client.cas(&key, current.as_deref(), Some(&join_list(&with_v)), &json).await
            {
                break;
            }
        }
        self.model.insert(key, with_v);
        self.appends += 1;
        true
    }

    /// Scans own keys; they must equal the acknowledged appends. False if the scan failed.
    async fn scan(&mut self) -> bool {
        let prefix = self.prefix();
        let end = format!("{}/own{:02}0", self.env.instance, self.index);
        let Ok(kvs) = self.client.raw.scan(prefix.as_bytes(), end.as_bytes(), 100).await else {
            return false;
        };
        self.scans += 1;
        let mut got = BTreeMap::new();
        for (k, v) in kvs {
            let k = String::from_utf8_lossy(&k).into_owned();
            match parse_list(&Some(String::from_utf8_lossy(&v).into_owned())) {
                Ok(l) => {
                    got.insert(k, l);
                }
                Err(e) => self.violate(format!("scan: key {k}: {e}")),
            }
        }
        let mut expected: BTreeMap<String, Vec<u64>> = self
            .model
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((key, v)) = &self.pending
            && got.get(key).is_some_and(|l| l.last() == Some(v))
        {
            // An append abandoned when the run gave up may or may not have happened.
            expected.entry(key.clone()).or_default().push(*v);
        }
        if got != expected {
            self.violate(format!("scan of own keys {got:?} differs from the appends {expected:?}"));
            self.model = got;
        }
        true
    }

    async fn run(&mut self) {
        while !self.env.stopped() {
            if self.rng.next_u64().is_multiple_of(5) {
                self.scan().await;
            } else {
                let j = self.rng.next_u64() % self.keys;
                self.append(j).await;
            }
        }
    }

    async fn finish(&mut self) {
        for j in 0..self.keys {
            if !self.append(j).await {
                return;
            }
        }
        while !self.env.gave_up() {
            if self.scan().await {
                return;
            }
        }
    }
}

/// See the module comment.
#[derive(Debug)]
pub struct Append {
    env: Env,
    clients: u64,
    keys: u64,
    fleet: Fleet<Worker>,
}

impl Append {
    pub fn new(spec: &AppendSpec, env: Env) -> Append {
        Append {
            env,
            clients: *spec.clients.get_ref(),
            keys: *spec.keys.get_ref(),
            fleet: Fleet::default(),
        }
    }
}

impl Workload for Append {
    fn name(&self) -> &'static str {
        "append"
    }

    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> NodeHandle) {
        let keys = self.keys;
        self.fleet.launch_each(
            &self.env,
            "append",
            self.clients,
            spawn,
            |index, env, rng| async move {
                let client = Client::connect(&env).await;
                let mut w = Worker {
                    index,
                    client,
                    rng,
                    env,
                    keys,
                    counter: 0,
                    model: BTreeMap::new(),
                    pending: None,
                    appends: 0,
                    scans: 0,
                    violations: Vec::new(),
                };
                w.run().await;
                w
            },
        );
    }

    fn join(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(self.fleet.join())
    }

    fn finish(&mut self) -> LocalFuture<'_, ()> {
        Box::pin(self.fleet.each(|mut w| async move {
            w.finish().await;
            w
        }))
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        let violations: Vec<&String> =
            self.fleet.clients().iter().flat_map(|w| &w.violations).collect();
        let detail = (!violations.is_empty()).then(|| {
            let kept: Vec<String> =
                violations.iter().take(MAX_KEPT).map(|v| v.to_string()).collect();
            format!("{} violations: {}", violations.len(), kept.join("; "))
        });
        vec![("appends".to_string(), CheckResult { valid: violations.is_empty(), ms: 0, detail })]
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("append.appends".to_string(), self.fleet.clients().iter().map(|w| w.appends).sum()),
            ("append.scans".to_string(), self.fleet.clients().iter().map(|w| w.scans).sum()),
        ])
    }
}
