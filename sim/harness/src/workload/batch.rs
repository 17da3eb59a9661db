//! The batch workload: clients write several keys of one shared range at once (`batch_put`),
//! read several back (`batch_get`), scan the range or part of it (sometimes with a limit that
//! cuts it short) and delete single keys. Each operation is recorded as a transaction (`f`
//! "txn"; a scan reads every key of its range, `null` where absent; a delete writes `null`)
//! and judged by `batch_check`: `batch-atomic` (the range linearizable as one object: no batch
//! seen half applied or two seen fractured, no stale read, no deleted value back) and
//! `batch-keys` (each key linearizable on its own). Finish: one batch of every key and a full
//! scan per client.
//!
//! The range lies in one region (one at bootstrap until splits land), so each batch is one
//! Raft command and each scan one page of one region read at one point in time.

use std::collections::BTreeMap;

use madsim::runtime::NodeHandle;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::{Client, Env, Fleet, LocalFuture, Workload};
use crate::batch_check;
use crate::history::{Kind, json_str};
use crate::report::CheckResult;
use crate::scenario::BatchSpec;

/// Most keys one batch put or batch get names.
const BATCH_KEYS_MAX: u64 = 4;
/// The limit of a scan that is not meant to be cut short (more than the range holds).
const SCAN_LIMIT_UNCUT: u64 = 1_000;

/// Successful operations of one client.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    puts: u64,
    gets: u64,
    scans: u64,
    deletes: u64,
    final_scans: u64,
}

#[derive(Debug)]
struct Worker {
    index: u64,
    client: Client,
    rng: ChaCha8Rng,
    env: Env,
    keys: u64,
    counter: u64,
    ok: Counts,
    /// Answers that do not answer their request.
    violations: Vec<String>,
}

/// A micro-op as JSON.
fn mop(f: &str, key: &str, value: &str) -> String {
    format!("[\"{f}\",{},{value}]", json_str(key))
}

fn list(mops: &[String]) -> String {
    format!("[{}]", mops.join(","))
}

/// A value read, as the history shows it: numbers as numbers, anything else as a string (which
/// no write produced, so the checkers report it).
fn value_json(v: Option<&[u8]>) -> String {
    match v {
        None => "null".to_string(),
        Some(bytes) => {
            let s = String::from_utf8_lossy(bytes);
            if s.parse::<u64>().is_ok() { s.into_owned() } else { json_str(&s) }
        }
    }
}

impl Worker {
    fn key(&self, k: u64) -> String {
        format!("{}/b{k:02}", self.env.instance)
    }

    /// `n` distinct key indexes, ascending.
    fn pick_keys(&mut self, n: u64) -> Vec<u64> {
        let mut all: Vec<u64> = (0..self.keys).collect();
        for i in 0..n as usize {
            let j = i + (self.rng.next_u64() % (self.keys - i as u64)) as usize;
            all.swap(i, j);
        }
        let mut picked = all[..n as usize].to_vec();
        picked.sort_unstable();
        picked
    }

    /// Between 2 and `BATCH_KEYS_MAX` keys (at most the range).
    fn pick_batch(&mut self) -> Vec<u64> {
        let most = BATCH_KEYS_MAX.min(self.keys);
        let n = 2 + self.rng.next_u64() % (most - 1);
        self.pick_keys(n)
    }

    fn violate(&mut self, m: String) {
        tracing::info!(target: "minikv::sim", "batch check: {m}");
        self.violations.push(m);
    }

    /// Writes fresh values to `picked` in one batch; whether it was acknowledged.
    async fn put(&mut self, picked: &[u64]) -> bool {
        let mut pairs = Vec::new();
        let mut mops = Vec::new();
        for &k in picked {
            self.counter += 1;
            let v = ((self.index + 1) * 1_000_000 + self.counter).to_string();
            mops.push(mop("w", &self.key(k), &v));
            pairs.push((self.key(k).into_bytes(), v.into_bytes()));
        }
        let value = list(&mops);
        self.client.record_txn(Kind::Invoke, &value);
        let res = self.client.raw.batch_put(&pairs).await;
        self.end_write(res.map(|_| ()), &value)
    }

    /// Records how a write ended; whether it was acknowledged.
    fn end_write(&mut self, res: minikv_client::Result<()>, value: &str) -> bool {
        let kind = match &res {
            Ok(()) => Kind::Ok,
            Err(e) if e.is_unknown() => Kind::Info,
            Err(_) => Kind::Fail,
        };
        self.client.record_txn(kind, value);
        res.is_ok()
    }

    async fn delete(&mut self) -> bool {
        let k = self.rng.next_u64() % self.keys;
        let key = self.key(k);
        let value = list(&[mop("w", &key, "null")]);
        self.client.record_txn(Kind::Invoke, &value);
        let res = self.client.raw.delete(key.as_bytes()).await;
        self.end_write(res, &value)
    }

    async fn get(&mut self) -> bool {
        let picked = self.pick_batch();
        let keys: Vec<String> = picked.iter().map(|&k| self.key(k)).collect();
        let invoke: Vec<String> = keys.iter().map(|k| mop("r", k, "null")).collect();
        self.client.record_txn(Kind::Invoke, &list(&invoke));
        let request: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
        let got = match self.client.raw.batch_get(&request).await {
            Ok(got) => got,
            Err(_) => {
                self.client.record_txn(Kind::Fail, &list(&invoke));
                return false;
            }
        };
        let answered: Vec<&[u8]> = got.iter().map(|(k, _)| k.as_slice()).collect();
        if answered != request.iter().map(Vec::as_slice).collect::<Vec<_>>() {
            self.violate(format!("batch_get of {keys:?} answered keys {got:?}"));
            // An answer to another question tells nothing about this one.
            self.client.record_txn(Kind::Info, &list(&invoke));
            return false;
        }
        let done: Vec<String> = keys
            .iter()
            .zip(&got)
            .map(|(k, (_, v))| mop("r", k, &value_json(v.as_deref())))
            .collect();
        self.client.record_txn(Kind::Ok, &list(&done));
        true
    }

    /// Scans keys `lo..hi` (the whole range: `0..keys`) with `limit`.
    async fn scan(&mut self, lo: u64, hi: u64, limit: u64) -> bool {
        let start = self.key(lo);
        let end = if hi == self.keys { format!("{}/c", self.env.instance) } else { self.key(hi) };
        let in_range: Vec<String> = (lo..hi).map(|k| self.key(k)).collect();
        let invoke: Vec<String> = in_range.iter().map(|k| mop("r", k, "null")).collect();
        self.client.record_txn(Kind::Invoke, &list(&invoke));
        let kvs = match self.client.raw.scan(start.as_bytes(), end.as_bytes(), limit).await {
            Ok(kvs) => kvs,
            Err(_) => {
                self.client.record_txn(Kind::Fail, &list(&invoke));
                return false;
            }
        };
        let found: BTreeMap<String, &[u8]> = kvs
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.as_slice()))
            .collect();
        let ascending = kvs.windows(2).all(|w| w[0].0 < w[1].0);
        let strays: Vec<&String> = found.keys().filter(|k| !in_range.contains(k)).collect();
        if !ascending || !strays.is_empty() || kvs.len() as u64 > limit {
            let m = format!("scan [{start}, {end}) limit {limit} answered {kvs:?}");
            self.violate(m);
            self.client.record_txn(Kind::Info, &list(&invoke));
            return false;
        }
        // A scan cut short by its limit says nothing of the keys after its last one.
        let cut = kvs.len() as u64 == limit;
        let last = found.keys().next_back().cloned();
        let done: Vec<String> = in_range
            .iter()
            .filter(|k| !cut || last.as_ref().is_some_and(|l| *k <= l))
            .map(|k| mop("r", k, &value_json(found.get(k).copied())))
            .collect();
        self.client.record_txn(Kind::Ok, &list(&done));
        true
    }

    /// A scan of a random part of the range, cut short by its limit one time in four.
    async fn some_scan(&mut self) -> bool {
        let (lo, hi) = if self.rng.next_u64().is_multiple_of(2) {
            (0, self.keys)
        } else {
            let lo = self.rng.next_u64() % self.keys;
            (lo, lo + 1 + self.rng.next_u64() % (self.keys - lo))
        };
        let limit = if self.rng.next_u64().is_multiple_of(4) {
            1 + self.rng.next_u64() % (hi - lo)
        } else {
            SCAN_LIMIT_UNCUT
        };
        self.scan(lo, hi, limit).await
    }

    async fn one_op(&mut self) {
        match self.rng.next_u64() % 10 {
            0..=3 => {
                let picked = self.pick_batch();
                self.ok.puts += u64::from(self.put(&picked).await);
            }
            4 | 5 => self.ok.gets += u64::from(self.get().await),
            6..=8 => self.ok.scans += u64::from(self.some_scan().await),
            _ => self.ok.deletes += u64::from(self.delete().await),
        }
    }

    async fn finish(&mut self) {
        let every: Vec<u64> = (0..self.keys).collect();
        while !self.env.gave_up() {
            if self.put(&every).await {
                break;
            }
        }
        while !self.env.gave_up() {
            if self.scan(0, self.keys, SCAN_LIMIT_UNCUT).await {
                self.ok.final_scans += 1;
                return;
            }
        }
    }
}

/// See the module comment.
#[derive(Debug)]
pub struct Batch {
    env: Env,
    clients: u64,
    keys: u64,
    fleet: Fleet<Worker>,
}

impl Batch {
    pub fn new(spec: &BatchSpec, env: Env) -> Batch {
        Batch {
            env,
            clients: *spec.clients.get_ref(),
            keys: *spec.keys.get_ref(),
            fleet: Fleet::default(),
        }
    }

    /// A check's name: the instance is named unless it is the first phase's.
    fn check_name(&self, base: &str) -> String {
        if self.env.instance == "p0" {
            base.to_string()
        } else {
            format!("{base}@{}", self.env.instance)
        }
    }
}

impl Workload for Batch {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn start(&mut self, spawn: &mut dyn FnMut(&str) -> NodeHandle) {
        let keys = self.keys;
        self.fleet.launch_each(
            &self.env,
            "batch",
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
                    ok: Counts::default(),
                    violations: Vec::new(),
                };
                while !w.env.stopped() {
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
        Box::pin(self.fleet.each(|mut w| async move {
            w.finish().await;
            w
        }))
    }

    fn check(&self) -> Vec<(String, CheckResult)> {
        let history = match minikv_checker::parse_history(&self.env.history.text()) {
            Ok(h) => h,
            Err(e) => {
                let detail = Some(format!("the history does not parse: {e}"));
                let bad = CheckResult { valid: false, ms: 0, detail };
                return vec![(self.check_name("batch-atomic"), bad)];
            }
        };
        let txns = batch_check::instance_txns(&history, &format!("{}/b", self.env.instance));
        let violations: Vec<String> =
            self.fleet.clients().iter().flat_map(|w| w.violations.iter().cloned()).collect();
        vec![
            (self.check_name("batch-atomic"), batch_check::atomic(&txns, &violations)),
            (self.check_name("batch-keys"), batch_check::keys(&txns)),
        ]
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        let sum = |f: fn(&Counts) -> u64| self.fleet.clients().iter().map(|w| f(&w.ok)).sum();
        BTreeMap::from([
            ("batch.puts".to_string(), sum(|c| c.puts)),
            ("batch.gets".to_string(), sum(|c| c.gets)),
            ("batch.scans".to_string(), sum(|c| c.scans)),
            ("batch.deletes".to_string(), sum(|c| c.deletes)),
            ("batch.final_scans".to_string(), sum(|c| c.final_scans)),
        ])
    }
}
