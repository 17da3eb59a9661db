//! The engine's API on a healthy disk: column families, scans, range deletes, snapshots, sync,
//! and the real file backend.

use minikv_engine::{
    Cf, Engine, EngineConfig, Error, FileDisk, SimDisk, SimDiskConfig, WriteBatch,
};

fn sim_engine(seed: u64) -> (SimDisk, Engine) {
    let disk = SimDisk::new(seed, SimDiskConfig::default());
    let engine = Engine::open_with(
        disk.clone(),
        EngineConfig { cache_size_bytes: 1 << 20, ..EngineConfig::default() },
    )
    .expect("open on a fresh disk");
    (disk, engine)
}

fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

#[test]
fn column_families_are_separate_key_spaces() {
    let (_disk, engine) = sim_engine(1);
    let mut batch = WriteBatch::new();
    for cf in Cf::ALL {
        batch.put(cf, b"k", cf.name().as_bytes());
    }
    engine.write(&batch, true).unwrap();
    for cf in Cf::ALL {
        assert_eq!(engine.get(cf, b"k").unwrap(), Some(cf.name().as_bytes().to_vec()));
    }
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Lock, b"k");
    engine.write(&batch, false).unwrap();
    assert_eq!(engine.get(Cf::Lock, b"k").unwrap(), None);
    assert_eq!(engine.get(Cf::Write, b"k").unwrap(), Some(b"write".to_vec()));
}

#[test]
fn scan_is_ordered_bounded_and_limited() {
    let (_disk, engine) = sim_engine(2);
    let mut batch = WriteBatch::new();
    for k in ["a", "b", "c", "d", "e"] {
        batch.put(Cf::Default, k.as_bytes(), k.to_uppercase().as_bytes());
    }
    batch.put(Cf::Write, b"c", b"other cf");
    engine.write(&batch, true).unwrap();
    assert_eq!(
        engine.scan(Cf::Default, b"b", Some(b"e"), 10).unwrap(),
        vec![kv("b", "B"), kv("c", "C"), kv("d", "D")]
    );
    assert_eq!(engine.scan(Cf::Default, b"b", None, 2).unwrap(), vec![kv("b", "B"), kv("c", "C")]);
    assert_eq!(engine.scan(Cf::Default, b"bb", None, usize::MAX).unwrap().len(), 3);
    assert!(engine.scan(Cf::Default, b"a", None, 0).unwrap().is_empty());
    assert!(engine.scan(Cf::Default, b"d", Some(b"b"), 10).unwrap().is_empty());
    assert!(engine.scan(Cf::Default, b"c", Some(b"c"), 10).unwrap().is_empty());
}

#[test]
fn delete_range_removes_exactly_the_range_in_one_cf() {
    let (_disk, engine) = sim_engine(3);
    let mut batch = WriteBatch::new();
    for i in 0..100u32 {
        let key = format!("key{i:03}");
        batch.put(Cf::Raft, key.as_bytes(), b"v");
        batch.put(Cf::Default, key.as_bytes(), b"v");
    }
    engine.write(&batch, true).unwrap();
    let mut batch = WriteBatch::new();
    batch.delete_range(Cf::Raft, b"key010", Some(b"key090"));
    batch.delete_range(Cf::Raft, b"key095", None);
    batch.delete_range(Cf::Raft, b"key005", Some(b"key001"));
    engine.write(&batch, true).unwrap();
    let left: Vec<String> = engine
        .scan(Cf::Raft, b"", None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect();
    let expected: Vec<String> = (0..10).chain(90..95).map(|i| format!("key{i:03}")).collect();
    assert_eq!(left, expected);
    assert_eq!(engine.scan(Cf::Default, b"", None, usize::MAX).unwrap().len(), 100);
}

#[test]
fn a_batch_applies_in_order() {
    let (_disk, engine) = sim_engine(4);
    let mut batch = WriteBatch::new();
    batch
        .put(Cf::Default, b"a", b"1")
        .delete(Cf::Default, b"a")
        .put(Cf::Default, b"b", b"1")
        .delete_range(Cf::Default, b"a", Some(b"c"))
        .put(Cf::Default, b"b", b"2");
    assert_eq!(batch.len(), 5);
    engine.write(&batch, false).unwrap();
    assert_eq!(engine.scan(Cf::Default, b"", None, 10).unwrap(), vec![kv("b", "2")]);
}

#[test]
fn snapshots_are_isolated_from_later_writes() {
    let (_disk, engine) = sim_engine(5);
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"a", b"old").put(Cf::Default, b"b", b"old");
    batch.put(Cf::Raft, b"log1", b"entry");
    engine.write(&batch, true).unwrap();
    let snapshot = engine.snapshot().unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put(Cf::Default, b"a", b"new")
        .delete(Cf::Default, b"b")
        .put(Cf::Default, b"c", b"new")
        .delete_range(Cf::Raft, b"", None);
    engine.write(&batch, false).unwrap();
    engine.write(&WriteBatch::new(), true).unwrap();
    assert_eq!(snapshot.get(Cf::Default, b"a").unwrap(), Some(b"old".to_vec()));
    assert_eq!(
        snapshot.scan(Cf::Default, b"", None, 10).unwrap(),
        vec![kv("a", "old"), kv("b", "old")]
    );
    assert_eq!(snapshot.get(Cf::Raft, b"log1").unwrap(), Some(b"entry".to_vec()));
    assert_eq!(engine.get(Cf::Default, b"a").unwrap(), Some(b"new".to_vec()));
    assert_eq!(
        engine.scan(Cf::Default, b"", None, 10).unwrap(),
        vec![kv("a", "new"), kv("c", "new")]
    );
    assert!(engine.scan(Cf::Raft, b"", None, 10).unwrap().is_empty());
    snapshot.close();
}

#[test]
fn synced_data_survives_a_crash_and_sync_makes_earlier_batches_durable() {
    let (disk, engine) = sim_engine(6);
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"synced", b"1");
    engine.write(&batch, true).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"flushed-by-sync", b"2");
    engine.write(&batch, false).unwrap();
    engine.sync().unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"unsynced", b"3");
    engine.write(&batch, false).unwrap();
    disk.crash();
    assert!(
        matches!(engine.sync(), Err(Error::Detached { .. })),
        "a crashed disk detaches the engine"
    );
    drop(engine);
    let engine = Engine::open(disk.clone()).unwrap();
    assert_eq!(engine.get(Cf::Default, b"synced").unwrap(), Some(b"1".to_vec()));
    assert_eq!(engine.get(Cf::Default, b"flushed-by-sync").unwrap(), Some(b"2".to_vec()));
    // Non-durable commits never reach the disk before a sync, so this one is always lost.
    assert_eq!(engine.get(Cf::Default, b"unsynced").unwrap(), None);
}

#[test]
fn a_detached_engine_stays_detached() {
    let (disk, engine) = sim_engine(7);
    disk.crash();
    for _ in 0..3 {
        // The first call to touch the disk finds it gone; from then on nothing is served,
        // not even what redb still caches.
        assert!(matches!(engine.sync(), Err(Error::Detached { .. })));
        assert!(matches!(engine.get(Cf::Default, b"x"), Err(Error::Detached { .. })));
        assert!(matches!(engine.snapshot(), Err(Error::Detached { .. })));
    }
    assert_eq!(engine.stats().reopens, 0);
}

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_file_backend_round_trips() {
    let path = std::env::temp_dir().join(format!("minikv-engine-test-{}.redb", std::process::id()));
    let _cleanup = TempFile(path.clone());
    let _ = std::fs::remove_file(&path);
    {
        let engine = Engine::open(FileDisk::new(&path)).unwrap();
        for chunk in 0..10u32 {
            let mut batch = WriteBatch::new();
            for i in 0..100u32 {
                let key = format!("{chunk:02}-{i:03}");
                batch.put(Cf::ALL[(i % 4) as usize], key.as_bytes(), &[chunk as u8; 100]);
            }
            engine.write(&batch, chunk % 3 == 0).unwrap();
        }
        let mut batch = WriteBatch::new();
        batch.delete_range(Cf::Default, b"05", Some(b"06"));
        engine.write(&batch, true).unwrap();
    }
    let engine = Engine::open(FileDisk::new(&path)).unwrap();
    let total: usize =
        Cf::ALL.into_iter().map(|cf| engine.scan(cf, b"", None, usize::MAX).unwrap().len()).sum();
    assert_eq!(total, 1000 - 25);
    assert_eq!(engine.get(Cf::Lock, b"07-001").unwrap(), Some(vec![7u8; 100]));
    assert_eq!(engine.get(Cf::Default, b"05-000").unwrap(), None);
    // The file holds checksummed sectors: its length is a whole number of them.
    assert_eq!(std::fs::metadata(&path).unwrap().len() % 4096, 0);
}

/// Reads that miss the memtable go to a kept read view of redb, which each flush must
/// replace: with a memtable flushed after nearly every write, and gets, scans and range
/// deletions in between, every read agrees with a model.
#[test]
fn reads_see_every_flush() {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use std::collections::BTreeMap;

    let disk = SimDisk::new(7, SimDiskConfig::default());
    let config = EngineConfig { memtable_bytes_max: 1, ..EngineConfig::default() };
    let engine = Engine::open_with(disk, config).expect("open");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let key = |n: u64| format!("k{:02}", n % 40).into_bytes();
    for step in 0..2_000u64 {
        let mut batch = WriteBatch::new();
        match rng.next_u64() % 10 {
            0 => {
                let (a, b) = (key(rng.next_u64()), key(rng.next_u64()));
                let (start, end) = if a <= b { (a, b) } else { (b, a) };
                batch.delete_range(Cf::Default, &start, Some(&end));
                model.retain(|k, _| k < &start || k >= &end);
            }
            1 | 2 => {
                let k = key(rng.next_u64());
                batch.delete(Cf::Default, &k);
                model.remove(&k);
            }
            _ => {
                let (k, v) = (key(rng.next_u64()), step.to_le_bytes().to_vec());
                batch.put(Cf::Default, &k, &v);
                model.insert(k, v);
            }
        }
        engine.write(&batch, step % 3 == 0).unwrap();
        let k = key(rng.next_u64());
        assert_eq!(engine.get(Cf::Default, &k).unwrap(), model.get(&k).cloned(), "step {step}");
        if step % 50 == 0 {
            let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(engine.scan(Cf::Default, b"", None, usize::MAX).unwrap(), all);
        }
    }
    assert!(engine.stats().flushes > 1_000, "{:?}", engine.stats());
}
