//! Disk faults: silent corruption, latent read errors and ENOSPC surface as typed errors, corrupt
//! data is never served, and the engine recovers once the fault is gone.

use minikv_engine::disk::sim::PPM;
use minikv_engine::{Cf, Engine, EngineConfig, Error, SimDisk, SimDiskConfig, WriteBatch};
use redb::{ReadableDatabase, TableDefinition};

/// Small enough that reads go to the disk rather than redb's cache, and a one-sector log, so
/// that the populating batches go straight to redb: these tests aim at redb's pages (the log
/// has its own tests below).
fn small_cache() -> EngineConfig {
    EngineConfig { cache_size_bytes: 64 << 10, wal_bytes: 4 << 10, ..EngineConfig::default() }
}

fn marker(i: u32) -> Vec<u8> {
    let mut value = format!("MARKER-{i:05}-").into_bytes();
    value.resize(200, b'z');
    value
}

/// An engine on a fresh disk holding `keys` synced keys in the default CF, closed cleanly.
fn populated_disk(seed: u64, keys: u32) -> SimDisk {
    let disk = SimDisk::new(seed, SimDiskConfig::default());
    let engine = Engine::open_with(disk.clone(), small_cache()).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..keys {
        batch.put(Cf::Default, format!("key{i:05}").as_bytes(), &marker(i));
    }
    engine.write(&batch, true).unwrap();
    drop(engine);
    disk
}

/// The physical offset of the one durable copy of key `i`'s value.
fn locate(disk: &SimDisk, i: u32) -> u64 {
    let hits = disk.find_durable(&marker(i)[..13]);
    assert_eq!(hits.len(), 1, "marker {i} found at {hits:?}");
    hits[0]
}

/// Finding: redb alone trusts a cleanly closed file, and hands back a flipped value as good data.
#[test]
fn redb_alone_serves_a_flipped_bit_as_good_data() {
    const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");
    let disk = SimDisk::new(1, SimDiskConfig::default());
    {
        let db = redb::Builder::new().create_with_backend(disk.backend()).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(&b"k"[..], &marker(1)[..]).unwrap();
        txn.commit().unwrap();
    }
    disk.flip_bit(locate(&disk, 1) + 7, 0);
    let db = redb::Builder::new().create_with_backend(disk.backend()).unwrap();
    let txn = db.begin_read().unwrap();
    let value = txn.open_table(T).unwrap().get(&b"k"[..]).unwrap().unwrap().value().to_vec();
    assert_ne!(value, marker(1), "the flip is served");
    assert_eq!(&value[..7], b"MARKER-");
}

#[test]
fn a_flipped_bit_surfaces_as_corruption_never_as_data() {
    // Ten times the cache, so that scans keep reading pages from the disk.
    let disk = populated_disk(2, 3000);
    let engine = Engine::open_with(disk.clone(), small_cache()).unwrap();
    let offset = locate(&disk, 1234);
    disk.flip_bit(offset + 3, 5);
    let expected_sector = offset / 4096;
    let mut detected = None;
    for _ in 0..3 {
        match engine.scan(Cf::Default, b"", None, usize::MAX) {
            Ok(entries) => {
                // Served from pages cached before the flip: must still be the truth.
                assert_eq!(entries.len(), 3000);
                assert!(entries.iter().all(|(k, v)| {
                    let i: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
                    *v == marker(i)
                }));
            }
            Err(e) => {
                detected = Some(e);
                break;
            }
        }
    }
    match detected {
        Some(Error::Corruption { sector: Some(sector), .. }) => assert_eq!(sector, expected_sector),
        other => panic!("expected corruption of sector {expected_sector}, got {other:?}"),
    }
    // redb's repair on reopen walks every live page, so the engine cannot come back past a
    // corrupt one: every later call fails with the same typed error, and so does a new open.
    for key in [&b"key01234"[..], b"key00001"] {
        assert!(matches!(engine.get(Cf::Default, key), Err(Error::Corruption { .. })));
    }
    drop(engine);
    assert!(matches!(
        Engine::open_with(disk.clone(), small_cache()),
        Err(Error::Corruption { sector: Some(s), .. }) if s == expected_sector
    ));
}

/// Random flips while reading: every answer is the truth or a typed error, never a wrong value.
#[test]
fn random_bit_flips_never_return_wrong_data() {
    let mut corruptions = 0;
    let mut flips = 0;
    for seed in 0..8u64 {
        let disk = populated_disk(100 + seed, 300);
        disk.set_config(SimDiskConfig { bit_flip_ppm: 20_000, ..SimDiskConfig::default() });
        let engine = Engine::open_with(disk.clone(), small_cache());
        let Ok(engine) = engine else {
            corruptions += 1;
            continue;
        };
        for round in 0..3u32 {
            for i in (0..300u32).step_by(7) {
                match engine.get(Cf::Default, format!("key{i:05}").as_bytes()) {
                    Ok(value) => assert_eq!(value, Some(marker(i)), "seed {seed} round {round}"),
                    Err(Error::Corruption { .. }) => corruptions += 1,
                    Err(e) => panic!("seed {seed}: unexpected error {e:?}"),
                }
            }
        }
        flips += disk.counters().bit_flips;
    }
    assert!(flips > 0, "no flip injected");
    assert!(corruptions > 0, "no corruption detected in {flips} flips");
}

#[test]
fn a_latent_read_error_is_typed_and_the_engine_recovers_when_it_clears() {
    let disk = populated_disk(3, 400);
    let offset = locate(&disk, 200);
    let engine = Engine::open_with(disk.clone(), small_cache()).unwrap();
    disk.inject_read_error(offset);
    assert!(matches!(engine.get(Cf::Default, b"key00200"), Err(Error::Io { .. })));
    // redb's repair on reopen reads every live page, so the engine cannot reopen past a bad
    // sector: calls keep failing, each with a typed error.
    for _ in 0..2 {
        assert!(matches!(engine.get(Cf::Default, b"key00001"), Err(Error::Io { .. })));
    }
    assert!(disk.counters().read_errors >= 2);
    disk.clear_read_errors();
    assert_eq!(engine.get(Cf::Default, b"key00200").unwrap(), Some(marker(200)));
    assert_eq!(engine.scan(Cf::Default, b"", None, usize::MAX).unwrap().len(), 400);
}

#[test]
fn random_read_errors_are_typed() {
    let disk = populated_disk(4, 300);
    disk.set_config(SimDiskConfig { read_error_ppm: PPM / 50, ..SimDiskConfig::default() });
    let engine = Engine::open_with(disk.clone(), small_cache());
    if let Ok(engine) = engine {
        for i in 0..300u32 {
            match engine.get(Cf::Default, format!("key{i:05}").as_bytes()) {
                Ok(value) => assert_eq!(value, Some(marker(i))),
                Err(Error::Io { .. }) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
    }
    assert!(disk.counters().read_errors > 0);
}

#[test]
fn enospc_fails_the_write_keeps_reads_and_recovers_when_space_is_freed() {
    let disk = SimDisk::new(5, SimDiskConfig::default());
    let engine = Engine::open_with(disk.clone(), small_cache()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Raft, b"hard-state", b"term 3");
    engine.write(&batch, true).unwrap();
    disk.set_capacity_bytes(disk.len_bytes() + 256 * 1024);
    let mut written = 0u32;
    let error = loop {
        let mut batch = WriteBatch::new();
        for j in 0..8u32 {
            batch.put(Cf::Default, format!("fill{written:05}-{j}").as_bytes(), &[7u8; 2000]);
        }
        match engine.write(&batch, true) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1000, "the disk never filled");
    };
    assert!(matches!(error, Error::NoSpace { .. }), "got {error:?}");
    assert!(written > 0);
    assert!(disk.counters().enospc > 0);
    // Reads keep working and see every acknowledged batch, and nothing of the failed one.
    assert_eq!(engine.get(Cf::Raft, b"hard-state").unwrap(), Some(b"term 3".to_vec()));
    let filled = engine.scan(Cf::Default, b"fill", Some(b"film"), usize::MAX).unwrap();
    assert_eq!(filled.len() as u32, written * 8);
    // Still full: writes keep failing with the same typed error.
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"more", &[1u8; 50_000]);
    assert!(matches!(engine.write(&batch, true), Err(Error::NoSpace { .. })));
    // Space is freed: writes go through again, and everything survives a crash.
    disk.set_capacity_bytes(u64::MAX);
    engine.write(&batch, true).unwrap();
    disk.crash();
    drop(engine);
    let engine = Engine::open(disk.clone()).unwrap();
    assert_eq!(engine.get(Cf::Default, b"more").unwrap(), Some(vec![1u8; 50_000]));
    let filled = engine.scan(Cf::Default, b"fill", Some(b"film"), usize::MAX).unwrap();
    assert_eq!(filled.len() as u32, written * 8);
}

#[test]
fn a_faulty_run_replays_exactly_from_its_seed() {
    let run = |seed: u64| {
        let disk = populated_disk(seed, 200);
        disk.set_config(SimDiskConfig {
            bit_flip_ppm: 5_000,
            read_error_ppm: 5_000,
            ..SimDiskConfig::default()
        });
        let mut answers = Vec::new();
        if let Ok(engine) = Engine::open_with(disk.clone(), small_cache()) {
            for i in 0..200u32 {
                answers.push(engine.get(Cf::Default, format!("key{i:05}").as_bytes()));
            }
        }
        (answers, disk.counters())
    };
    assert_eq!(run(9), run(9));
}

/// A synced batch that lives only in the write-ahead log, on a disk whose engine was dropped
/// without a flush.
fn logged_disk(seed: u64) -> SimDisk {
    let disk = SimDisk::new(seed, SimDiskConfig::default());
    let engine = Engine::open(disk.clone()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"logged", &marker(7));
    engine.write(&batch, true).unwrap();
    assert_eq!(engine.stats().flushes, 0);
    disk.crash();
    disk
}

#[test]
fn a_flipped_bit_in_a_synced_log_record_is_corruption_not_a_torn_tail() {
    let disk = logged_disk(8);
    let offset = locate(&disk, 7);
    disk.flip_bit(offset + 20, 2);
    // Dropping the record as a torn tail would lose a synced batch: the open must fail.
    match Engine::open(disk.clone()) {
        Err(Error::Corruption { sector: Some(sector), .. }) => assert_eq!(sector, offset / 4096),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_latent_error_in_the_log_fails_the_open_until_it_clears() {
    let disk = logged_disk(9);
    disk.inject_read_error(locate(&disk, 7));
    assert!(matches!(Engine::open(disk.clone()), Err(Error::Io { .. })));
    disk.clear_read_errors();
    let engine = Engine::open(disk.clone()).unwrap();
    assert_eq!(engine.get(Cf::Default, b"logged").unwrap(), Some(marker(7)));
}
