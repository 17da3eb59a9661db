//! `cargo xtask bench engine`: the engine against raw redb on the same workload.
//!
//! Workload, per target: batches of 100 keys with 100-byte values, synced every batch and then
//! synced every 64 batches; random point reads of written keys; 1,000-key scans from random
//! starts. Targets: the engine on a real file, raw redb on a real file (no engine layer: one
//! table, redb's own `FileBackend`, the same cache size), and both on the simulated disk.
//! Every read, in both, opens its own read transaction and copies what it returns, since
//! that is what serving a request takes. Each phase runs engine and raw alternately, best of
//! `REPEATS`. Last line:
//! `engine: <ops/s> writes, <ops/s> reads, <keys/s> scanned; overhead vs redb <ratio>`,
//! with the rates of the engine on a file and the ratio of engine time to raw redb time over
//! all phases on a file.

use std::ops::Bound;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minikv_engine::{Cf, Engine, EngineConfig, FileDisk, SimDisk, SimDiskConfig, WriteBatch};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

const KEYS_PER_BATCH: usize = 100;
const VALUE_BYTES: usize = 100;
const SYNCED_BATCHES: usize = 150;
const GROUP_SYNCED_BATCHES: usize = 1280;
const GROUP_SYNC_EVERY_BATCHES: usize = 64;
const POINT_READS: usize = 100_000;
const SCANS: usize = 200;
const SCAN_KEYS: usize = 1000;
const REPEATS: usize = 3;
const CACHE_SIZE_BYTES: usize = 64 << 20;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");

/// splitmix64: a deterministic key stream without a dependency.
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn key_bytes(id: u64) -> [u8; 16] {
    let mut key = *b"user000000000000";
    let digits = format!("{:012}", id % 1_000_000_000_000);
    key[4..].copy_from_slice(digits.as_bytes());
    key
}

/// The key ids written by batch `batch` of a phase seeded with `seed`.
fn batch_ids(seed: u64, batch: usize) -> impl Iterator<Item = u64> {
    let mut keys = Keys(seed.wrapping_mul(1_000_003).wrapping_add(batch as u64));
    (0..KEYS_PER_BATCH).map(move |_| keys.next() % 10_000_000)
}

/// The store under test: the same operations, with or without the engine layer.
trait Store {
    fn write_batch(&self, ids: &mut dyn Iterator<Item = u64>, sync: bool);
    fn get(&self, id: u64) -> Option<Vec<u8>>;
    fn scan(&self, id: u64, limit: usize) -> usize;
}

struct EngineStore(Engine);

impl Store for EngineStore {
    fn write_batch(&self, ids: &mut dyn Iterator<Item = u64>, sync: bool) {
        let value = [b'v'; VALUE_BYTES];
        let mut batch = WriteBatch::new();
        for id in ids {
            batch.put(Cf::Default, &key_bytes(id), &value);
        }
        self.0.write(&batch, sync).expect("engine write");
    }

    fn get(&self, id: u64) -> Option<Vec<u8>> {
        self.0.get(Cf::Default, &key_bytes(id)).expect("engine get")
    }

    fn scan(&self, id: u64, limit: usize) -> usize {
        let entries = self.0.scan(Cf::Default, &key_bytes(id), None, limit).expect("engine scan");
        entries.len()
    }
}

struct RawStore(Database);

impl Store for RawStore {
    fn write_batch(&self, ids: &mut dyn Iterator<Item = u64>, sync: bool) {
        let value = [b'v'; VALUE_BYTES];
        let mut txn = self.0.begin_write().expect("redb begin_write");
        let durability = if sync { Durability::Immediate } else { Durability::None };
        txn.set_durability(durability).expect("redb durability");
        {
            let mut table = txn.open_table(TABLE).expect("redb open_table");
            for id in ids {
                table.insert(&key_bytes(id)[..], &value[..]).expect("redb insert");
            }
        }
        txn.commit().expect("redb commit");
    }

    fn get(&self, id: u64) -> Option<Vec<u8>> {
        let txn = self.0.begin_read().expect("redb begin_read");
        let table = txn.open_table(TABLE).expect("redb open_table");
        let value = table.get(&key_bytes(id)[..]).expect("redb get");
        value.map(|v| v.value().to_vec())
    }

    fn scan(&self, id: u64, limit: usize) -> usize {
        let txn = self.0.begin_read().expect("redb begin_read");
        let table = txn.open_table(TABLE).expect("redb open_table");
        let start = key_bytes(id);
        let range = table
            .range::<&[u8]>((Bound::Included(&start[..]), Bound::Unbounded))
            .expect("redb range");
        let mut out = Vec::with_capacity(limit);
        for entry in range.take(limit) {
            let (k, v) = entry.expect("redb range entry");
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        out.len()
    }
}

#[derive(Default, Clone, Copy)]
struct Phases {
    synced: Duration,
    grouped: Duration,
    reads: Duration,
    scans: Duration,
    scanned_keys: usize,
}

impl Phases {
    fn total(&self) -> Duration {
        self.synced + self.grouped + self.reads + self.scans
    }

    fn min(self, other: Phases) -> Phases {
        Phases {
            synced: self.synced.min(other.synced),
            grouped: self.grouped.min(other.grouped),
            reads: self.reads.min(other.reads),
            scans: self.scans.min(other.scans),
            scanned_keys: self.scanned_keys.max(other.scanned_keys),
        }
    }

    fn write_rate(&self) -> f64 {
        ((SYNCED_BATCHES + GROUP_SYNCED_BATCHES) * KEYS_PER_BATCH) as f64
            / (self.synced + self.grouped).as_secs_f64()
    }

    fn describe(&self, name: &str) -> String {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
        format!(
            "{name:<14} synced-every-batch {:>9.0} keys/s | synced-every-{GROUP_SYNC_EVERY_BATCHES} {:>9.0} keys/s | \
             point reads {:>9.0}/s | scans {:>10.0} keys/s | total {:.3}s",
            rate(SYNCED_BATCHES * KEYS_PER_BATCH, self.synced),
            rate(GROUP_SYNCED_BATCHES * KEYS_PER_BATCH, self.grouped),
            rate(POINT_READS, self.reads),
            rate(self.scanned_keys, self.scans),
            self.total().as_secs_f64()
        )
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// One run of the workload against a fresh store.
fn run(store: &dyn Store) -> Phases {
    let mut phases = Phases {
        synced: timed(|| {
            for b in 0..SYNCED_BATCHES {
                store.write_batch(&mut batch_ids(1, b), true);
            }
        }),
        grouped: timed(|| {
            for b in 0..GROUP_SYNCED_BATCHES {
                let sync = (b + 1) % GROUP_SYNC_EVERY_BATCHES == 0;
                store.write_batch(&mut batch_ids(2, b), sync);
            }
        }),
        ..Phases::default()
    };
    let written: Vec<u64> = (0..GROUP_SYNCED_BATCHES).flat_map(|b| batch_ids(2, b)).collect();
    let mut pick = Keys(3);
    phases.reads = timed(|| {
        for _ in 0..POINT_READS {
            let id = written[(pick.next() % written.len() as u64) as usize];
            assert!(store.get(id).is_some(), "key {id} was written");
        }
    });
    let mut scanned = 0;
    phases.scans = timed(|| {
        for _ in 0..SCANS {
            scanned += store.scan(pick.next() % 9_000_000, SCAN_KEYS);
        }
    });
    phases.scanned_keys = scanned;
    phases
}

struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("minikv-bench-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn engine_on_file() -> Phases {
    let path = TempPath::new("engine");
    let config = EngineConfig { cache_size_bytes: CACHE_SIZE_BYTES, ..EngineConfig::default() };
    let engine = Engine::open_with(FileDisk::new(&path.0), config).expect("open engine");
    run(&EngineStore(engine))
}

fn raw_on_file() -> Phases {
    let path = TempPath::new("raw");
    let db =
        redb::Builder::new().set_cache_size(CACHE_SIZE_BYTES).create(&path.0).expect("create redb");
    run(&RawStore(db))
}

fn engine_on_sim() -> Phases {
    let config = EngineConfig { cache_size_bytes: CACHE_SIZE_BYTES, ..EngineConfig::default() };
    let disk = SimDisk::new(1, SimDiskConfig::default());
    run(&EngineStore(Engine::open_with(disk, config).expect("open engine")))
}

fn raw_on_sim() -> Phases {
    let disk = SimDisk::new(1, SimDiskConfig::default());
    let db = redb::Builder::new()
        .set_cache_size(CACHE_SIZE_BYTES)
        .create_with_backend(disk.backend())
        .expect("create redb");
    run(&RawStore(db))
}

fn best_of(runs: usize, f: impl Fn() -> Phases) -> Phases {
    (1..runs).fold(f(), |best, _| best.min(f()))
}

fn main() {
    println!(
        "workload: {SYNCED_BATCHES} batches synced each + {GROUP_SYNCED_BATCHES} synced every \
         {GROUP_SYNC_EVERY_BATCHES}, {KEYS_PER_BATCH} keys x {VALUE_BYTES} B; {POINT_READS} point \
         reads; {SCANS} scans of {SCAN_KEYS} keys; best of {REPEATS}"
    );
    let mut engine_file = Phases::default();
    let mut raw_file = Phases::default();
    for repeat in 0..REPEATS {
        let (e, r) = (engine_on_file(), raw_on_file());
        engine_file = if repeat == 0 { e } else { engine_file.min(e) };
        raw_file = if repeat == 0 { r } else { raw_file.min(r) };
    }
    let engine_sim = best_of(REPEATS, engine_on_sim);
    let raw_sim = best_of(REPEATS, raw_on_sim);
    println!("{}", engine_file.describe("engine/file"));
    println!("{}", raw_file.describe("redb/file"));
    println!("{}", engine_sim.describe("engine/simdisk"));
    println!("{}", raw_sim.describe("redb/simdisk"));
    let ratio = |e: Duration, r: Duration| e.as_secs_f64() / r.as_secs_f64();
    println!(
        "overhead by phase (file): synced {:.3}, grouped {:.3}, reads {:.3}, scans {:.3}; simdisk total {:.3}",
        ratio(engine_file.synced, raw_file.synced),
        ratio(engine_file.grouped, raw_file.grouped),
        ratio(engine_file.reads, raw_file.reads),
        ratio(engine_file.scans, raw_file.scans),
        ratio(engine_sim.total(), raw_sim.total()),
    );
    println!(
        "engine: {:.0} writes, {:.0} reads, {:.0} scanned; overhead vs redb {:.3}",
        engine_file.write_rate(),
        POINT_READS as f64 / engine_file.reads.as_secs_f64(),
        engine_file.scanned_keys as f64 / engine_file.scans.as_secs_f64(),
        ratio(engine_file.total(), raw_file.total()),
    );
}
