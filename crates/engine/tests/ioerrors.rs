//! Transient I/O errors never leave the engine unopenable, as a property over seeds: random
//! batches (synced and not) while the disk throws random and latent read errors; every error
//! ends the "process" (the engine is dropped and reopened on the same disk, whose volatile
//! cache survives), reopens fail while errors persist, power losses strike at random moments
//! (inside writes and inside failing opens). Then the errors clear, and the engine must open
//! and equal the model after some prefix of the batches that includes every acknowledged
//! synced batch, as in `crash.rs`.
//!
//! `ENGINE_IOERR_SEEDS=n` runs seeds `0..n` (default 100); `ENGINE_IOERR_SEED=s` replays one.

mod support;

use minikv_engine::{Cf, Engine, EngineConfig, Error, SimDisk, SimDiskConfig, WriteBatch};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use support::{Model, Shape, apply, below, chance, read_all};

const DEFAULT_SEEDS: u64 = 100;
/// Rounds of (faulty work, failing reopens, errors cleared, clean reopen) per seed.
const ROUNDS_PER_SEED: usize = 6;
const BATCHES_PER_ROUND_MAX: u64 = 30;
const OPS_PER_BATCH_MAX: u64 = 6;
const KEYS_PER_CF: u64 = 40;
const LOG_ENTRIES_PER_BATCH_MAX: u64 = 8;
const VALUE_BYTES_MAX: u64 = 6_000;
const SHAPE: Shape = Shape {
    keys_per_cf: KEYS_PER_CF,
    ops_per_batch_max: OPS_PER_BATCH_MAX,
    value_bytes_max: VALUE_BYTES_MAX,
    puts_in_ten: 7,
};
/// Reopens tried while the errors are still there, after the process "exits".
const FAILING_OPENS_MAX: u64 = 3;
/// Latent sector errors injected per round, at random durable offsets.
const LATENT_ERRORS_PER_ROUND_MAX: u64 = 3;
/// Backend operations within which an armed crash fires.
const CRASH_WINDOW_OPS: u64 = 150;
/// Per-sector-read chances of a new latent error that a seed may pick.
const READ_ERROR_PPM_CHOICES: [u32; 4] = [0, 2_000, 10_000, 40_000];

/// Page cache sizes a seed may pick: small, so that reads keep reaching the disk, or the
/// default, so that unsynced commits stay in redb's write buffer.
const CACHE_SIZE_BYTES_CHOICES: [usize; 2] = [64 << 10, 64 << 20];

thread_local! {
    static CACHE_SIZE_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(64 << 10) };
}

fn config() -> EngineConfig {
    EngineConfig {
        cache_size_bytes: CACHE_SIZE_BYTES.with(|c| c.get()),
        // Small, so that the log wraps and the memtable is flushed many times per seed.
        wal_bytes: 16 << 10,
        memtable_bytes_max: 8 << 10,
    }
}

/// Appends a run of Raft-log-like entries to `Cf::Raft` and sometimes truncates its head, so
/// that the file grows and shrinks as a store's does.
fn log_ops(rng: &mut ChaCha8Rng, batch: &mut WriteBatch, next_index: &mut u64) {
    for _ in 0..=below(rng, LOG_ENTRIES_PER_BATCH_MAX) {
        let value = vec![b'L'; below(rng, VALUE_BYTES_MAX) as usize];
        batch.put(Cf::Raft, format!("log{next_index:08}").as_bytes(), &value);
        *next_index += 1;
    }
    if chance(rng, 20) {
        let keep_from = next_index.saturating_sub(below(rng, 8));
        batch.delete_range(Cf::Raft, b"log", Some(format!("log{keep_from:08}").as_bytes()));
    }
}

fn random_batch(rng: &mut ChaCha8Rng, tag: &str, next_index: &mut u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    if chance(rng, 50) {
        log_ops(rng, &mut batch, next_index);
    }
    SHAPE.random_ops(rng, &mut batch, tag);
    batch
}

/// What the runs exercised, so that a run too kind to fail shows up.
#[derive(Debug, Default)]
struct Coverage {
    write_errors: u64,
    failed_opens: u64,
    crashes: u64,
    crashes_inside_an_open: u64,
    opens_with_errors_active: u64,
    clean_reopens: u64,
    read_errors: u64,
    zombies: u64,
}

/// The batches since the last state known to be durable, and which of them must survive.
struct History {
    /// models[i]: the state after the first i batches since `models[0]`, the last recovered one.
    models: Vec<Model>,
    /// Every state before this index may be lost; this one and later ones may not all be.
    durable_prefix: usize,
}

impl History {
    fn new(recovered: Model) -> Self {
        Self { models: vec![recovered], durable_prefix: 0 }
    }

    fn last(&self) -> &Model {
        self.models.last().expect("never empty")
    }

    /// Checks a state read after a reopen and makes it the new base: it is durable now,
    /// because every successful open ends in a durable commit or reads a durable one.
    fn settle(&mut self, state: Model, when: &str) -> Result<(), String> {
        let Some(prefix) =
            (self.durable_prefix..self.models.len()).find(|&i| self.models[i] == state)
        else {
            let any = (0..self.models.len()).find(|&i| self.models[i] == state);
            return Err(format!(
                "{when}: state is no prefix in {}..{} (matches prefix {any:?})",
                self.durable_prefix,
                self.models.len()
            ));
        };
        *self = History::new(self.models.swap_remove(prefix));
        Ok(())
    }
}

/// Opens the engine while errors may be active; a successful open is checked and settled.
fn try_open(
    disk: &SimDisk,
    history: &mut History,
    coverage: &mut Coverage,
    when: &str,
) -> Result<Option<Engine>, String> {
    match Engine::open_with(disk.clone(), config()) {
        Ok(engine) => {
            coverage.opens_with_errors_active += 1;
            match read_all(&engine) {
                Ok(state) => {
                    history.settle(state, when)?;
                    Ok(Some(engine))
                }
                Err(Error::Io { .. } | Error::Detached { .. }) => Ok(None),
                Err(e) => Err(format!("{when}: read after open failed: {e}")),
            }
        }
        Err(Error::Io { .. } | Error::Detached { .. }) => {
            coverage.failed_opens += 1;
            Ok(None)
        }
        Err(e) => Err(format!("{when}: open failed with a non-I/O error: {e}")),
    }
}

/// Runs random batches until one fails or the round's batches are done.
fn run_batches(
    rng: &mut ChaCha8Rng,
    disk: &SimDisk,
    next_index: &mut u64,
    engine: &Engine,
    history: &mut History,
    coverage: &mut Coverage,
    tag: &str,
) -> Result<(), String> {
    for b in 0..=below(rng, BATCHES_PER_ROUND_MAX) {
        if chance(rng, 10) {
            let len = disk.durable_len_bytes();
            if len > 0 {
                disk.inject_read_error(below(rng, len));
            }
        }
        let batch = random_batch(rng, &format!("{tag}b{b}"), next_index);
        let sync = chance(rng, 35);
        let next = apply(history.last(), &batch);
        match engine.write(&batch, sync) {
            Ok(()) => {
                history.models.push(next);
                if sync {
                    history.durable_prefix = history.models.len() - 1;
                }
            }
            Err(Error::Io { .. } | Error::Detached { .. }) => {
                // It may or may not have landed; the process ends here.
                coverage.write_errors += 1;
                history.models.push(next);
                return Ok(());
            }
            Err(e) => return Err(format!("{tag} batch {b}: write failed: {e}")),
        }
        if chance(rng, 25) {
            match read_all(engine) {
                Ok(seen) if &seen != history.last() => {
                    return Err(format!("{tag} batch {b}: reads miss own writes"));
                }
                Ok(_) => {}
                Err(Error::Io { .. } | Error::Detached { .. }) => return Ok(()),
                Err(e) => return Err(format!("{tag} batch {b}: read failed: {e}")),
            }
        }
    }
    Ok(())
}

/// Calls the zombie engine (which may reopen its database, when its process has not been
/// superseded yet), and sometimes drops it.
fn poke_zombie(rng: &mut ChaCha8Rng, zombie: &mut Option<Engine>) {
    if let Some(engine) = zombie {
        if chance(rng, 70) {
            let _ = engine.get(Cf::Raft, b"log00000000");
        }
        if chance(rng, 30) {
            *zombie = None;
        }
    }
}

fn set_read_error_ppm(disk: &SimDisk, read_error_ppm: u32) {
    disk.set_config(SimDiskConfig { read_error_ppm, ..disk.config() });
}

/// One seed: returns a description of the violation, if any.
fn run_seed(seed: u64, coverage: &mut Coverage) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep_ppm = [100_000, 500_000, 900_000][below(&mut rng, 3) as usize];
    let read_error_ppm = READ_ERROR_PPM_CHOICES[below(&mut rng, 4) as usize];
    let cache = CACHE_SIZE_BYTES_CHOICES[below(&mut rng, 2) as usize];
    CACHE_SIZE_BYTES.with(|c| c.set(cache));
    let disk =
        SimDisk::new(seed, SimDiskConfig { crash_keep_ppm: keep_ppm, ..SimDiskConfig::default() });
    let mut history = History::new(Default::default());
    let mut next_index = 0u64;
    // A clean start: the first open may not fail.
    drop(Engine::open_with(disk.clone(), config()).map_err(|e| format!("first open: {e}"))?);
    // The engine of a process that exited but that something still holds (as a simulator's
    // probe does): it keeps being called, and is dropped at a random moment, after later
    // processes opened their own engines on the disk.
    let mut zombie: Option<Engine> = None;
    for round in 0..ROUNDS_PER_SEED {
        let tag = format!("s{seed}r{round}");
        // The faulty part of the round.
        set_read_error_ppm(&disk, read_error_ppm);
        if chance(&mut rng, 60) {
            disk.crash_after_ops(below(&mut rng, CRASH_WINDOW_OPS));
        }
        let engine = try_open(&disk, &mut history, coverage, &tag)?;
        if let Some(engine) = &engine {
            for _ in 0..below(&mut rng, LATENT_ERRORS_PER_ROUND_MAX + 1) {
                let len = disk.durable_len_bytes();
                if len > 0 {
                    disk.inject_read_error(below(&mut rng, len));
                }
            }
            run_batches(&mut rng, &disk, &mut next_index, engine, &mut history, coverage, &tag)?;
        }
        // The process exits (a write error, or the work is done): the volatile cache stays.
        // Its engine is dropped, or lingers as a zombie.
        if engine.is_some() && chance(&mut rng, 50) {
            zombie = engine;
            coverage.zombies += 1;
        } else {
            drop(engine);
        }
        for attempt in 0..below(&mut rng, FAILING_OPENS_MAX + 1) {
            if chance(&mut rng, 30) {
                disk.crash_after_ops(below(&mut rng, CRASH_WINDOW_OPS));
            }
            poke_zombie(&mut rng, &mut zombie);
            let before = disk.counters().crashes;
            let engine = try_open(&disk, &mut history, coverage, &format!("{tag}a{attempt}"))?;
            if disk.counters().crashes > before {
                coverage.crashes_inside_an_open += 1;
            }
            poke_zombie(&mut rng, &mut zombie);
            drop(engine);
        }
        if disk.crash_armed() || chance(&mut rng, 40) {
            disk.crash();
        }
        // The errors go away (remapped sectors, a transient fault over): open must succeed.
        set_read_error_ppm(&disk, 0);
        disk.clear_read_errors();
        // A zombie called now reopens on the healed disk, before the next process starts.
        poke_zombie(&mut rng, &mut zombie);
        let engine = Engine::open_with(disk.clone(), config())
            .map_err(|e| format!("{tag}: open after the errors cleared failed: {e}"))?;
        let state =
            read_all(&engine).map_err(|e| format!("{tag}: read after the errors cleared: {e}"))?;
        history.settle(state, &format!("{tag}: after the errors cleared"))?;
        coverage.clean_reopens += 1;
        // The new process works while the zombie is still called, then dropped.
        poke_zombie(&mut rng, &mut zombie);
        let batch = random_batch(&mut rng, &format!("{tag}clean"), &mut next_index);
        let next = apply(history.last(), &batch);
        engine.write(&batch, true).map_err(|e| format!("{tag}: write on the healed disk: {e}"))?;
        history.models.push(next);
        history.durable_prefix = history.models.len() - 1;
        poke_zombie(&mut rng, &mut zombie);
        read_all(&engine)
            .ok()
            .filter(|seen| seen == history.last())
            .ok_or_else(|| format!("{tag}: reads on the healed disk miss own writes"))?;
    }
    drop(zombie);
    let engine =
        Engine::open_with(disk.clone(), config()).map_err(|e| format!("final open failed: {e}"))?;
    let state = read_all(&engine).map_err(|e| format!("final read: {e}"))?;
    history.settle(state, "final open")?;
    coverage.crashes += disk.counters().crashes;
    coverage.read_errors += disk.counters().read_errors;
    Ok(())
}

#[test]
fn io_errors_that_go_away_never_leave_the_engine_unopenable() {
    let seeds: Vec<u64> = match std::env::var("ENGINE_IOERR_SEED") {
        Ok(seed) => vec![seed.parse().expect("ENGINE_IOERR_SEED is a u64")],
        Err(_) => {
            let n = std::env::var("ENGINE_IOERR_SEEDS")
                .map(|n| n.parse().expect("ENGINE_IOERR_SEEDS is a u64"))
                .unwrap_or(DEFAULT_SEEDS);
            (0..n).collect()
        }
    };
    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for &seed in &seeds {
        // A panic inside redb (it trusts a cleanly closed file) is a failure of this seed too.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_seed(seed, &mut coverage)
        }))
        .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            eprintln!("I/O-error property failed: ENGINE_IOERR_SEED={seed}: {why}");
            failures.push(seed);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; replay with ENGINE_IOERR_SEED=<seed>: {failures:?}",
        failures.len(),
        seeds.len()
    );
    eprintln!("{} seeds: {coverage:?}", seeds.len());
    if seeds.len() >= 100 {
        assert!(coverage.write_errors > 0, "{coverage:?}");
        assert!(coverage.failed_opens > 0, "{coverage:?}");
        assert!(coverage.crashes_inside_an_open > 0, "{coverage:?}");
        assert!(coverage.opens_with_errors_active > 0, "{coverage:?}");
        assert!(coverage.read_errors > 0, "{coverage:?}");
        assert!(coverage.zombies > 0, "{coverage:?}");
    }
}

/// The simulator's fail-stop, step by step: a write meets a latent sector error, the engine's
/// own reopen fails on it, the process exits but its engine lingers (held by a probe), the next
/// process's opens fail while the sector is bad; then the error clears, the lingering engine is
/// called (and reopens), a new process opens, and only then is the old engine dropped. The new
/// process must own the disk alone: nothing of the old one may write it any more.
#[test]
fn a_lingering_engine_of_an_exited_process_never_writes_its_successors_disk() {
    let disk = SimDisk::new(11, SimDiskConfig::default());
    let old = Engine::open_with(disk.clone(), config()).unwrap();
    let mut index = 0u64;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..40 {
        let mut batch = WriteBatch::new();
        log_ops(&mut rng, &mut batch, &mut index);
        old.write(&batch, true).unwrap();
    }
    let durable = read_all(&old).unwrap();
    // Every durable sector but the header's turns bad: the write fails, and so does the
    // engine's reopen (its repair reads the live pages).
    for sector in 1..disk.durable_len_bytes() / 4096 {
        disk.inject_read_error(sector * 4096);
    }
    let mut batch = WriteBatch::new();
    log_ops(&mut rng, &mut batch, &mut index);
    assert!(matches!(old.write(&batch, true), Err(Error::Io { .. })));
    assert!(Engine::open_with(disk.clone(), config()).is_err(), "the bad sectors fail the open");
    disk.clear_read_errors();
    // Called now, the old engine reopens on the healed disk: its process was not replaced yet.
    assert_eq!(read_all(&old).unwrap(), durable);
    let new = Engine::open_with(disk.clone(), config()).unwrap();
    assert_eq!(read_all(&new).unwrap(), durable);
    // The old process is gone: whatever its engine still tries to write fails.
    let mut batch = WriteBatch::new();
    log_ops(&mut rng, &mut batch, &mut index);
    assert!(matches!(old.write(&batch, true), Err(Error::Detached { .. })));
    let mut batch = WriteBatch::new();
    log_ops(&mut rng, &mut batch, &mut index);
    let expected = apply(&durable, &batch);
    new.write(&batch, true).unwrap();
    drop(old);
    assert_eq!(read_all(&new).unwrap(), expected);
    drop(new);
    let reopened = Engine::open_with(disk.clone(), config()).unwrap();
    assert_eq!(read_all(&reopened).unwrap(), expected);
}
