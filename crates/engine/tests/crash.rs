//! Crash consistency, as a property over seeds: random batches across column families with
//! random sync points, a power loss at a random backend operation (tearing and reordering the
//! unsynced sectors), reopen, and compare with a model. After every crash the engine must equal
//! the model after some prefix of the batches that includes every acknowledged synced batch.
//!
//! `ENGINE_CRASH_SEEDS=n` runs seeds `0..n` (default 1,000); `ENGINE_CRASH_SEED=s` replays one.

mod support;

use minikv_engine::{Cf, Engine, EngineConfig, Error, SimDisk, SimDiskConfig, WriteBatch};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use support::{Model, Shape, apply, below, read_all};

const DEFAULT_SEEDS: u64 = 1_000;
/// Crash-and-reopen rounds per seed: the second one recovers a file that was itself recovered.
const ROUNDS_PER_SEED: usize = 2;
const BATCHES_PER_ROUND_MAX: u64 = 10;
const OPS_PER_BATCH_MAX: u64 = 6;
const KEYS_PER_CF: u64 = 12;
const VALUE_BYTES_MAX: u64 = 300;
const SHAPE: Shape = Shape {
    keys_per_cf: KEYS_PER_CF,
    ops_per_batch_max: OPS_PER_BATCH_MAX,
    value_bytes_max: VALUE_BYTES_MAX,
    puts_in_ten: 6,
};
/// Backend operations within which the armed crash fires (roughly the work of the batches).
const CRASH_WINDOW_OPS: u64 = 120;

/// Write-ahead logs a seed may format its disk with: one sector (nearly every batch flushes
/// the memtable first, and bigger batches go straight to redb), two, or room for a round.
const WAL_BYTES_CHOICES: [u64; 3] = [4 << 10, 8 << 10, 64 << 10];
/// Memtable limits a seed may pick: tiny (flush on almost every write) or never reached.
const MEMTABLE_BYTES_CHOICES: [usize; 2] = [2 << 10, 1 << 20];

fn config(rng: &mut ChaCha8Rng) -> EngineConfig {
    EngineConfig {
        cache_size_bytes: 256 << 10,
        wal_bytes: WAL_BYTES_CHOICES[below(rng, 3) as usize],
        memtable_bytes_max: MEMTABLE_BYTES_CHOICES[below(rng, 2) as usize],
    }
}

/// Bytes of the value that one batch in [`BIG_BATCH_ONE_IN`] carries: more than the smaller
/// logs hold, so that such a batch goes straight to redb.
const BIG_VALUE_BYTES: usize = 6_000;
const BIG_BATCH_ONE_IN: u64 = 8;

fn random_batch(rng: &mut ChaCha8Rng, tag: &str) -> WriteBatch {
    let mut batch = WriteBatch::new();
    SHAPE.random_ops(rng, &mut batch, tag);
    if below(rng, BIG_BATCH_ONE_IN) == 0 {
        batch.put(Cf::Default, b"big", &vec![b'B'; BIG_VALUE_BYTES]);
    }
    batch
}

/// What the crashes of a run exercised, so that a model too kind to fail shows up.
#[derive(Debug, Default)]
struct Coverage {
    crashes_inside_a_write: u64,
    rounds_that_lost_unsynced_batches: u64,
    rounds_that_kept_unsynced_batches: u64,
    torn_sectors_kept: u64,
    torn_sectors_dropped: u64,
    flushes: u64,
    direct_writes: u64,
}

/// One seed: returns a description of the violation, if any.
fn run_seed(seed: u64, coverage: &mut Coverage) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep_ppm = [100_000, 500_000, 900_000][below(&mut rng, 3) as usize];
    let disk =
        SimDisk::new(seed, SimDiskConfig { crash_keep_ppm: keep_ppm, ..SimDiskConfig::default() });
    let mut recovered: Model = Default::default();
    for round in 0..ROUNDS_PER_SEED {
        let engine = Engine::open_with(disk.clone(), config(&mut rng))
            .map_err(|e| format!("round {round}: open failed: {e}"))?;
        let state = read_all(&engine).map_err(|e| format!("round {round}: read failed: {e}"))?;
        if state != recovered {
            return Err(format!("round {round}: reopened state differs from the recovered one"));
        }
        // models[i]: the state after the first i batches of this round.
        let mut models = vec![recovered.clone()];
        let mut durable_prefix = 0;
        disk.crash_after_ops(below(&mut rng, CRASH_WINDOW_OPS));
        for b in 0..=below(&mut rng, BATCHES_PER_ROUND_MAX) {
            let batch = random_batch(&mut rng, &format!("s{seed}r{round}b{b}"));
            let sync = below(&mut rng, 3) == 0;
            let next = apply(models.last().expect("never empty"), &batch);
            match engine.write(&batch, sync) {
                Ok(()) => {
                    models.push(next);
                    if sync {
                        durable_prefix = models.len() - 1;
                    }
                }
                Err(Error::Detached { .. }) => {
                    // The power failed during this write: it may or may not have landed.
                    coverage.crashes_inside_a_write += 1;
                    models.push(next);
                    break;
                }
                Err(e) => return Err(format!("round {round} batch {b}: write failed: {e}")),
            }
            if below(&mut rng, 4) == 0 {
                match read_all(&engine) {
                    Ok(seen) if &seen != models.last().expect("never empty") => {
                        return Err(format!("round {round} batch {b}: reads miss own writes"));
                    }
                    Ok(_) | Err(Error::Detached { .. }) => {}
                    Err(e) => return Err(format!("round {round}: read failed: {e}")),
                }
            }
        }
        if disk.crash_armed() {
            disk.crash();
        }
        let stats = engine.stats();
        coverage.flushes += stats.flushes;
        coverage.direct_writes += stats.direct_writes;
        drop(engine);
        let engine = Engine::open_with(disk.clone(), config(&mut rng))
            .map_err(|e| format!("round {round}: reopen after crash failed: {e}"))?;
        let state =
            read_all(&engine).map_err(|e| format!("round {round}: read after crash: {e}"))?;
        let Some(prefix) = (durable_prefix..models.len()).find(|&i| models[i] == state) else {
            let any = (0..models.len()).find(|&i| models[i] == state);
            return Err(format!(
                "round {round}: state after crash is no prefix in {durable_prefix}..{} \
                 (matches prefix {any:?}); counters {:?}",
                models.len(),
                disk.counters()
            ));
        };
        if prefix + 1 < models.len() {
            coverage.rounds_that_lost_unsynced_batches += 1;
        }
        if prefix > durable_prefix {
            coverage.rounds_that_kept_unsynced_batches += 1;
        }
        recovered = models.swap_remove(prefix);
    }
    let counters = disk.counters();
    coverage.torn_sectors_kept += counters.torn_sectors_kept;
    coverage.torn_sectors_dropped += counters.torn_sectors_dropped;
    Ok(())
}

#[test]
fn crash_at_any_moment_recovers_a_prefix_with_every_synced_batch() {
    let seeds: Vec<u64> = match std::env::var("ENGINE_CRASH_SEED") {
        Ok(seed) => vec![seed.parse().expect("ENGINE_CRASH_SEED is a u64")],
        Err(_) => {
            let n = std::env::var("ENGINE_CRASH_SEEDS")
                .map(|n| n.parse().expect("ENGINE_CRASH_SEEDS is a u64"))
                .unwrap_or(DEFAULT_SEEDS);
            (0..n).collect()
        }
    };
    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for &seed in &seeds {
        if let Err(why) = run_seed(seed, &mut coverage) {
            eprintln!("crash property failed: ENGINE_CRASH_SEED={seed}: {why}");
            failures.push(seed);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; replay with ENGINE_CRASH_SEED=<seed>: {failures:?}",
        failures.len(),
        seeds.len()
    );
    eprintln!("{} seeds: {coverage:?}", seeds.len());
    if seeds.len() >= 100 {
        assert!(coverage.crashes_inside_a_write > 0, "{coverage:?}");
        assert!(coverage.rounds_that_lost_unsynced_batches > 0, "{coverage:?}");
        assert!(coverage.rounds_that_kept_unsynced_batches > 0, "{coverage:?}");
        assert!(
            coverage.torn_sectors_kept > 0 && coverage.torn_sectors_dropped > 0,
            "{coverage:?}"
        );
        assert!(coverage.flushes > 0 && coverage.direct_writes > 0, "{coverage:?}");
    }
}
