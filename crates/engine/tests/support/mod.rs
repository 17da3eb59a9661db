//! What the randomized engine tests share: the model (one ordered map per column family),
//! seeded random batches, applying a batch to the model, and reading a whole engine back.

#![allow(dead_code)]

use std::collections::BTreeMap;

use minikv_engine::{Cf, Engine, Error, Mutation, WriteBatch};
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// What the engine should hold: one map per column family.
pub type Model = [BTreeMap<Vec<u8>, Vec<u8>>; Cf::COUNT];

pub fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

pub fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    below(rng, 100) < percent
}

/// The shape of random batches.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub keys_per_cf: u64,
    pub ops_per_batch_max: u64,
    pub value_bytes_max: u64,
    /// Of ten, how many ops are puts; two of the rest are deletes, one a delete-range.
    pub puts_in_ten: u64,
}

impl Shape {
    pub fn key(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        format!("k{:02}", below(rng, self.keys_per_cf)).into_bytes()
    }

    /// Adds random puts, deletes and delete-ranges across the column families to `batch`;
    /// values start with `tag` so that a misplaced one is recognisable.
    pub fn random_ops(&self, rng: &mut ChaCha8Rng, batch: &mut WriteBatch, tag: &str) {
        for op in 0..=below(rng, self.ops_per_batch_max) {
            let cf = Cf::ALL[below(rng, Cf::COUNT as u64) as usize];
            let pick = below(rng, 10);
            if pick < self.puts_in_ten {
                let len = below(rng, self.value_bytes_max) as usize;
                let mut value = format!("{tag}/{op}:").into_bytes();
                value.resize(len.max(value.len()), b'a' + (below(rng, 26) as u8));
                batch.put(cf, &self.key(rng), &value);
            } else if pick < 9 {
                batch.delete(cf, &self.key(rng));
            } else {
                let (a, b) = (self.key(rng), self.key(rng));
                let end = (below(rng, 4) != 0).then_some(b.as_slice());
                batch.delete_range(cf, &a, end);
            }
        }
    }
}

/// The model after `batch`.
pub fn apply(model: &Model, batch: &WriteBatch) -> Model {
    let mut next = model.clone();
    for (cf, mutation) in batch.ops() {
        let map = &mut next[cf.index()];
        match mutation {
            Mutation::Put { key, value } => {
                map.insert(key.clone(), value.clone());
            }
            Mutation::Delete { key } => {
                map.remove(key);
            }
            Mutation::DeleteRange { start, end } => {
                map.retain(|k, _| k < start || end.as_ref().is_some_and(|end| k >= end));
            }
        }
    }
    next
}

/// Everything the engine holds.
pub fn read_all(engine: &Engine) -> Result<Model, Error> {
    let mut state: Model = Default::default();
    for cf in Cf::ALL {
        state[cf.index()] = engine.scan(cf, b"", None, usize::MAX)?.into_iter().collect();
    }
    Ok(state)
}
