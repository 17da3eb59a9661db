//! The engine: column families as redb tables, atomic batches, point reads, bounded scans,
//! snapshots, and reopening redb after a disk fault.

use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError,
};

use crate::batch::{Mutation, WriteBatch};
use crate::cf::Cf;
use crate::disk::Disk;
use crate::disk::integrity::ChecksummedBackend;
use crate::error::{Error, Result};

/// A key and its value, as scans return them.
pub type KvPair = (Vec<u8>, Vec<u8>);

type TableDef = TableDefinition<'static, &'static [u8], &'static [u8]>;

const TABLES: [TableDef; Cf::COUNT] = [
    TableDefinition::new(Cf::Default.name()),
    TableDefinition::new(Cf::Lock.name()),
    TableDefinition::new(Cf::Write.name()),
    TableDefinition::new(Cf::Raft.name()),
];

/// Most entries a scan reserves room for up front, whatever its limit.
const SCAN_PREALLOCATE_ENTRIES_MAX: usize = 1024;

fn table(cf: Cf) -> TableDef {
    TABLES[cf.index()]
}

/// Tunables of an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Memory redb may use to cache pages.
    pub cache_size_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { cache_size_bytes: 64 << 20 }
    }
}

/// Counters of what the engine did, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Times redb was reopened after a disk fault.
    pub reopens: u64,
    /// Batches written (each one redb commit), and how many of them were synced.
    pub writes: u64,
    pub synced_writes: u64,
}

enum State {
    /// Serving. `generation` counts reopens, so a failure is handled once.
    Open { db: Database, generation: u64 },
    /// The last reopen failed with `error`; the next call tries again.
    Failed { error: Error, generation: u64 },
    /// The simulated disk crashed under us; nothing will work again.
    Detached,
}

impl State {
    fn generation(&self) -> Option<u64> {
        match self {
            State::Open { generation, .. } | State::Failed { generation, .. } => Some(*generation),
            State::Detached => None,
        }
    }
}

/// An ordered key-value engine with column families over a [`Disk`].
///
/// Every method takes `&self`; the engine is `Send + Sync`. A disk fault (EIO, ENOSPC,
/// corruption) fails the call that met it with a typed [`Error`] and makes the engine reopen
/// redb on the disk's last synced state, so that later calls are served again: a fault acts
/// like a crash of the process, and loses exactly what a crash would (writes acknowledged
/// without `sync`).
pub struct Engine {
    disk: Box<dyn Disk>,
    config: EngineConfig,
    state: RwLock<State>,
    reopens: AtomicU64,
    writes: AtomicU64,
    synced_writes: AtomicU64,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("disk", &self.disk)
            .field("config", &self.config)
            .field("reopens", &self.reopens.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn open_db(disk: &dyn Disk, config: &EngineConfig) -> Result<Database> {
    let raw = disk.open_backend().map_err(|e| Error::from_io("open", &e))?;
    let db = redb::Builder::new()
        .set_cache_size(config.cache_size_bytes)
        .create_with_backend(ChecksummedBackend::new(raw))
        .map_err(|e| Error::from_redb("open", e.into()))?;
    ensure_tables(&db).map_err(|e| Error::from_redb("open", e))?;
    Ok(db)
}

/// Creates the column families' tables that do not exist yet (a new disk, or a crash before
/// the first commit was synced).
fn ensure_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_read()?;
    let mut missing = false;
    for def in TABLES {
        match txn.open_table(def) {
            Ok(_) => {}
            Err(TableError::TableDoesNotExist(_)) => missing = true,
            Err(e) => return Err(e.into()),
        }
    }
    drop(txn);
    if missing {
        let txn = db.begin_write()?;
        for def in TABLES {
            txn.open_table(def)?;
        }
        txn.commit()?;
    }
    Ok(())
}

fn apply_batch(db: &Database, batch: &WriteBatch, sync: bool) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if sync { Durability::Immediate } else { Durability::None })?;
    {
        let mut tables: [Option<redb::Table<'_, &'static [u8], &'static [u8]>>; Cf::COUNT] =
            [None, None, None, None];
        for (cf, mutation) in batch.ops() {
            let slot = &mut tables[cf.index()];
            if slot.is_none() {
                *slot = Some(txn.open_table(table(*cf))?);
            }
            let t = slot.as_mut().expect("table opened just above");
            match mutation {
                Mutation::Put { key, value } => {
                    t.insert(key.as_slice(), value.as_slice())?;
                }
                Mutation::Delete { key } => {
                    t.remove(key.as_slice())?;
                }
                Mutation::DeleteRange { start, end } => {
                    if end.as_deref().is_none_or(|end| end > start.as_slice()) {
                        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                        t.retain_in::<&[u8], _>(
                            (Bound::Included(start.as_slice()), upper),
                            |_, _| false,
                        )?;
                    }
                }
            }
        }
    }
    // An error above drops `txn`, which aborts it: a batch applies whole or not at all.
    txn.commit()?;
    Ok(())
}

fn get_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, redb::Error> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

fn scan_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<KvPair>, redb::Error> {
    if limit == 0 || end.is_some_and(|end| end <= start) {
        return Ok(Vec::new());
    }
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::with_capacity(limit.min(SCAN_PREALLOCATE_ENTRIES_MAX));
    for entry in table.range::<&[u8]>((Bound::Included(start), upper))? {
        let (key, value) = entry?;
        out.push((key.value().to_vec(), value.value().to_vec()));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

impl Engine {
    /// Opens (creating if empty) an engine on `disk` with the default configuration.
    pub fn open(disk: impl Disk + 'static) -> Result<Engine> {
        Self::open_with(disk, EngineConfig::default())
    }

    /// Opens (creating if empty) an engine on `disk`. After a crash this recovers the disk to
    /// its last durable commit.
    pub fn open_with(disk: impl Disk + 'static, config: EngineConfig) -> Result<Engine> {
        // A new process: none of an earlier one's handles may write the disk any more.
        disk.start_process();
        let db = open_db(&disk, &config)?;
        Ok(Engine {
            disk: Box::new(disk),
            config,
            state: RwLock::new(State::Open { db, generation: 0 }),
            reopens: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            synced_writes: AtomicU64::new(0),
        })
    }

    /// Applies `batch` atomically. With `sync`, the batch (and every batch before it) is
    /// durable when this returns `Ok`; without, a crash may lose it (and later unsynced
    /// batches), but never half of it. An empty batch with `sync` just makes earlier batches
    /// durable.
    pub fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if sync {
            self.synced_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.with_db("write", |db| apply_batch(db, batch, sync))
    }

    /// Makes every batch written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.write(&WriteBatch::new(), true)
    }

    /// The value of `key` in `cf`, if any.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_db("get", |db| {
            let txn = db.begin_read()?;
            get_in(&txn.open_table(table(cf))?, key)
        })
    }

    /// Up to `limit` entries of `cf` with `start <= key < end` (`end: None`: no upper bound),
    /// in key order.
    pub fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>> {
        self.with_db("scan", |db| {
            let txn = db.begin_read()?;
            scan_in(&txn.open_table(table(cf))?, start, end, limit)
        })
    }

    /// A consistent point-in-time view of every column family; later writes do not show in it.
    pub fn snapshot(&self) -> Result<EngineSnapshot> {
        self.with_db("snapshot", |db| {
            let txn = db.begin_read()?;
            let mut tables = Vec::with_capacity(Cf::COUNT);
            for def in TABLES {
                tables.push(txn.open_table(def)?);
            }
            Ok(EngineSnapshot { txn, tables })
        })
    }

    /// What the engine did so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            reopens: self.reopens.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            synced_writes: self.synced_writes.load(Ordering::Relaxed),
        }
    }

    /// The disk under the engine.
    pub fn disk(&self) -> &dyn Disk {
        self.disk.as_ref()
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held already failed the run; serving on would hide it.
        self.state.read().expect("engine state lock poisoned")
    }

    /// Runs `f` on the open database; on a disk fault reopens redb before returning the error.
    fn with_db<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T> {
        self.ensure_open(op)?;
        let (error, generation) = {
            let state = self.read_state();
            match &*state {
                State::Open { db, generation } => match f(db) {
                    Ok(value) => return Ok(value),
                    Err(e) => (Error::from_redb(op, e), *generation),
                },
                State::Failed { error, .. } => return Err(error.clone()),
                State::Detached => return Err(Error::Detached { op }),
            }
        };
        if matches!(error, Error::Detached { .. }) {
            *self.state.write().expect("engine state lock poisoned") = State::Detached;
        } else if error.needs_reopen() {
            self.reopen(generation);
        }
        Err(error)
    }

    /// Retries a failed reopen before serving a call.
    fn ensure_open(&self, op: &'static str) -> Result<()> {
        let generation = match &*self.read_state() {
            State::Open { .. } => return Ok(()),
            State::Detached => return Err(Error::Detached { op }),
            State::Failed { generation, .. } => *generation,
        };
        self.reopen(generation);
        match &*self.read_state() {
            State::Open { .. } => Ok(()),
            State::Failed { error, .. } => Err(error.clone()),
            State::Detached => Err(Error::Detached { op }),
        }
    }

    /// Replaces the database of `generation` by a freshly opened one (once, however many
    /// callers saw it fail).
    fn reopen(&self, generation: u64) {
        let mut state = self.state.write().expect("engine state lock poisoned");
        if state.generation() != Some(generation) {
            return;
        }
        // The old handle goes first: a file backend holds a lock the new one must take.
        let old = std::mem::replace(
            &mut *state,
            State::Failed {
                error: Error::Io { op: "reopen", detail: "reopen in progress".to_string() },
                generation,
            },
        );
        drop(old);
        self.reopens.fetch_add(1, Ordering::Relaxed);
        *state = match open_db(self.disk.as_ref(), &self.config) {
            Ok(db) => State::Open { db, generation: generation + 1 },
            Err(Error::Detached { .. }) => State::Detached,
            Err(error) => State::Failed { error, generation: generation + 1 },
        };
    }
}

/// A consistent point-in-time view of every column family (a redb read transaction).
/// Raft snapshots are generated from one.
pub struct EngineSnapshot {
    txn: ReadTransaction,
    tables: Vec<ReadOnlyTable<&'static [u8], &'static [u8]>>,
}

impl fmt::Debug for EngineSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSnapshot").finish_non_exhaustive()
    }
}

impl EngineSnapshot {
    /// The value of `key` in `cf` as of the snapshot.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_in(&self.tables[cf.index()], key).map_err(|e| Error::from_redb("snapshot get", e))
    }

    /// Up to `limit` entries of `cf` with `start <= key < end` as of the snapshot.
    pub fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>> {
        scan_in(&self.tables[cf.index()], start, end, limit)
            .map_err(|e| Error::from_redb("snapshot scan", e))
    }

    /// Ends the snapshot, releasing the pages it pins.
    pub fn close(self) {
        drop(self.tables);
        drop(self.txn);
    }
}
