//! The engine: column families as redb tables behind a write-ahead log and a memtable;
//! atomic batches, point reads, bounded scans, snapshots, and reopening after a disk fault.
//!
//! A batch is appended to the log (synced if asked) and applied to the memtable; the memtable
//! is flushed to redb in one durable commit when the log fills up or it grows past its limit
//! (and before a snapshot). A batch too big for the log goes straight to redb with the
//! memtable. See [`crate::docs`] for why: one redb commit per Raft round cost more than
//! everything else a simulated store did.

use minikv_hooks::{Canary, canary};
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageBackend, TableDefinition, TableError, WriteTransaction,
};

use crate::batch::{Mutation, WriteBatch};
use crate::cf::Cf;
use crate::disk::Disk;
use crate::disk::integrity::{ChecksummedBackend, physical_len};
use crate::disk::partition::{self, Partition};
use crate::error::{Error, Result};
use crate::memtable::{Memtable, merge};
use crate::wal::Wal;

/// A key and its value, as scans return them.
pub type KvPair = (Vec<u8>, Vec<u8>);

type TableDef = TableDefinition<'static, &'static [u8], &'static [u8]>;

const TABLES: [TableDef; Cf::COUNT] = [
    TableDefinition::new(Cf::Default.name()),
    TableDefinition::new(Cf::Lock.name()),
    TableDefinition::new(Cf::Write.name()),
    TableDefinition::new(Cf::Raft.name()),
];

/// The engine's own bookkeeping in redb: the last write-ahead-log batch redb holds.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("minikv_meta");
const FLUSHED_SEQ_KEY: &str = "flushed_seq";

fn table(cf: Cf) -> TableDef {
    TABLES[cf.index()]
}

/// Tunables of an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Memory redb may use to cache pages.
    pub cache_size_bytes: usize,
    /// Logical bytes of the write-ahead log's partition (a multiple of 4 KiB). Used only when
    /// a blank disk is formatted; the disk's superblock keeps it from then on.
    pub wal_bytes: u64,
    /// Memtable bytes past which the next write flushes it to redb first.
    pub memtable_bytes_max: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { cache_size_bytes: 64 << 20, wal_bytes: 2 << 20, memtable_bytes_max: 16 << 20 }
    }
}

/// Counters of what the engine did, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Times redb was reopened after a disk fault.
    pub reopens: u64,
    /// Batches written, and how many of them were synced.
    pub writes: u64,
    pub synced_writes: u64,
    /// Memtable flushes (each one durable redb commit), batches written straight to redb
    /// among them.
    pub flushes: u64,
    pub direct_writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    flushes: AtomicU64,
    direct_writes: AtomicU64,
}

/// redb, the log and the memtable of one open engine.
struct Live {
    db: Database,
    wal: Wal,
    mem: Memtable,
    counters: Arc<Counters>,
    /// redb's contents with every table open, for the reads that miss the memtable: made on
    /// the first such read, dropped at each commit (the only time redb changes), so that a
    /// read does not begin a transaction and open a table every time.
    view: Option<EngineSnapshot>,
}

enum State {
    /// Serving. `generation` counts reopens, so a failure is handled once.
    Open { live: Box<Live>, generation: u64 },
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
/// on the disk's last synced state, so that later calls are served again: a fault acts like a
/// crash of the process, and loses exactly what a crash would (writes acknowledged without
/// `sync`).
pub struct Engine {
    disk: Box<dyn Disk>,
    config: EngineConfig,
    state: RwLock<State>,
    counters: Arc<Counters>,
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

fn open_live(disk: &dyn Disk, config: &EngineConfig, counters: &Arc<Counters>) -> Result<Live> {
    let raw: Arc<dyn StorageBackend> =
        Arc::from(disk.open_backend().map_err(|e| Error::from_io("open", &e))?);
    let layout = partition::read_or_format(raw.as_ref(), physical_len(config.wal_bytes))
        .map_err(|e| Error::from_io("open", &e))?;
    let db_part = Partition::db(raw.clone(), layout);
    let first_sector = db_part.first_sector();
    let db = redb::Builder::new()
        .set_cache_size(config.cache_size_bytes)
        .create_with_backend(ChecksummedBackend::new_at(Box::new(db_part), first_sector))
        .map_err(|e| Error::from_redb("open", e.into()))?;
    ensure_tables(&db).map_err(|e| Error::from_redb("open", e))?;
    let flushed_seq = flushed_seq(&db).map_err(|e| Error::from_redb("open", e))?;
    let wal_part = Partition::wal(raw, layout);
    let first_sector = wal_part.first_sector();
    let (wal, replayed) =
        Wal::open(ChecksummedBackend::new_at(Box::new(wal_part), first_sector), flushed_seq)
            .map_err(|e| Error::from_io("replay", &e))?;
    let mut live =
        Live { db, wal, mem: Memtable::default(), counters: counters.clone(), view: None };
    for record in replayed {
        let ranges = live.range_deletions(&record.batch)?;
        live.apply_to_mem(record.batch, ranges);
    }
    Ok(live)
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
    match txn.open_table(META) {
        Ok(_) => {}
        Err(TableError::TableDoesNotExist(_)) => missing = true,
        Err(e) => return Err(e.into()),
    }
    drop(txn);
    if missing {
        let txn = db.begin_write()?;
        for def in TABLES {
            txn.open_table(def)?;
        }
        txn.open_table(META)?;
        txn.commit()?;
    }
    Ok(())
}

fn flushed_seq(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    Ok(meta.get(FLUSHED_SEQ_KEY)?.map_or(0, |v| v.value()))
}

/// Applies `batch`'s mutations inside `txn`, in order.
fn apply_ops(txn: &WriteTransaction, batch: &WriteBatch) -> Result<(), redb::Error> {
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
                    t.retain_in::<&[u8], _>((Bound::Included(start.as_slice()), upper), |_, _| {
                        false
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the memtable (and `then`, applied after it) to redb in one durable commit that
/// records `seq` as the last batch redb holds.
fn commit_to_db(
    db: &Database,
    mem: &Memtable,
    then: Option<&WriteBatch>,
    seq: u64,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    for cf in Cf::ALL {
        let mut entries = mem.entries(cf).peekable();
        if entries.peek().is_none() {
            continue;
        }
        let mut t = txn.open_table(table(cf))?;
        for (key, value) in entries {
            match value {
                Some(value) => drop(t.insert(key, value)?),
                None => drop(t.remove(key)?),
            }
        }
    }
    if let Some(batch) = then {
        apply_ops(&txn, batch)?;
    }
    txn.open_table(META)?.insert(FLUSHED_SEQ_KEY, seq)?;
    // An error above drops `txn`, which aborts it.
    txn.commit()?;
    Ok(())
}

/// A read transaction on `db` with every column family's table open.
fn open_view(db: &Database) -> Result<EngineSnapshot, redb::Error> {
    let txn = db.begin_read()?;
    let mut tables = Vec::with_capacity(Cf::COUNT);
    for def in TABLES {
        tables.push(txn.open_table(def)?);
    }
    Ok(EngineSnapshot { txn, tables })
}

fn get_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, redb::Error> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// Up to `limit` pairs of `table` with `start <= key < end`, with `mem`'s entries of `cf`
/// laid over them.
fn scan_merged(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    mem: &Memtable,
    cf: Cf,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<KvPair>, redb::Error> {
    if limit == 0 || end.is_some_and(|end| end <= start) {
        return Ok(Vec::new());
    }
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let db = table.range::<&[u8]>((Bound::Included(start), upper))?.map(|entry| {
        let (key, value) = entry?;
        Ok((key.value().to_vec(), value.value().to_vec()))
    });
    merge(mem.range(cf, start, end), db, limit)
}

impl Live {
    /// The redb keys each range deletion of `batch` removes, in the batch's order. Read
    /// before the batch is logged, so that applying it to the memtable cannot fail.
    fn range_deletions(&mut self, batch: &WriteBatch) -> Result<Vec<Vec<Vec<u8>>>> {
        let mut out = Vec::new();
        for (cf, mutation) in batch.ops() {
            let Mutation::DeleteRange { start, end } = mutation else { continue };
            let view = self.view().map_err(|e| Error::from_redb("write", e))?;
            let keys = (|| -> Result<Vec<Vec<u8>>, redb::Error> {
                if end.as_deref().is_some_and(|end| end <= start.as_slice()) {
                    return Ok(Vec::new());
                }
                let t = &view.tables[cf.index()];
                let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                // Keys only: the values are about to be deleted.
                t.range::<&[u8]>((Bound::Included(start.as_slice()), upper))?
                    .map(|entry| Ok(entry?.0.value().to_vec()))
                    .collect()
            })()
            .map_err(|e| Error::from_redb("write", e))?;
            out.push(keys);
        }
        Ok(out)
    }

    /// Lays `batch` over the memtable, moving its buffers in; `ranges` are the keys redb holds
    /// under each of its range deletions (`range_deletions`). A range deletion leaves a
    /// deletion for each of those, and drops the memtable's other keys in the range outright:
    /// redb does not hold them, so there is nothing to shadow (a Raft log compacted between two
    /// flushes then costs the memtable nothing, nor the next flush).
    fn apply_to_mem(&mut self, batch: WriteBatch, ranges: Vec<Vec<Vec<u8>>>) {
        let mut ranges = ranges.into_iter();
        for (cf, mutation) in batch.into_ops() {
            match mutation {
                Mutation::Put { key, value } => self.mem.set_owned(cf, key, Some(value)),
                Mutation::Delete { key } => self.mem.set_owned(cf, key, None),
                Mutation::DeleteRange { start, end } => {
                    let in_db = ranges.next().expect("one key list per range deletion");
                    let only_in_mem: Vec<Vec<u8>> = self
                        .mem
                        .range(cf, &start, end.as_deref())
                        .map(|(k, _)| k)
                        // `in_db` is in key order (a redb range).
                        .filter(|k| in_db.binary_search_by(|d| d.as_slice().cmp(k)).is_err())
                        .map(<[u8]>::to_vec)
                        .collect();
                    for key in only_in_mem {
                        self.mem.remove(cf, &key);
                    }
                    for key in in_db {
                        self.mem.set_owned(cf, key, None);
                    }
                }
            }
        }
    }

    fn write(&mut self, batch: WriteBatch, sync: bool, config: &EngineConfig) -> Result<()> {
        if batch.is_empty() {
            return if sync {
                self.wal.sync().map_err(|e| Error::from_io("sync", &e))
            } else {
                Ok(())
            };
        }
        if self.mem.bytes() > config.memtable_bytes_max {
            self.flush()?;
        }
        let payload = batch.encode();
        if !self.wal.fits(payload.len()) {
            if !self.wal.fits_when_empty(payload.len()) {
                return self.write_direct(&batch);
            }
            self.flush()?;
        }
        let ranges = self.range_deletions(&batch)?;
        self.wal.append(&payload, sync).map_err(|e| Error::from_io("write", &e))?;
        self.apply_to_mem(batch, ranges);
        Ok(())
    }

    /// A batch bigger than the log: it goes to redb with the memtable, durably.
    fn write_direct(&mut self, batch: &WriteBatch) -> Result<()> {
        self.view = None;
        let seq = self.wal.take_seq();
        commit_to_db(&self.db, &self.mem, Some(batch), seq)
            .map_err(|e| Error::from_redb("write", e))?;
        self.counters.direct_writes.fetch_add(1, Ordering::Relaxed);
        self.flushed();
        Ok(())
    }

    /// Writes the memtable to redb durably and starts the log over.
    fn flush(&mut self) -> Result<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        self.view = None;
        let seq = self.wal.next_seq() - 1;
        commit_to_db(&self.db, &self.mem, None, seq).map_err(|e| Error::from_redb("flush", e))?;
        self.flushed();
        Ok(())
    }

    fn flushed(&mut self) {
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.mem.clear();
        self.wal.reset();
    }

    /// The read view of redb as it is now (see `view`).
    fn view(&mut self) -> Result<&EngineSnapshot, redb::Error> {
        if self.view.is_none() {
            self.view = Some(open_view(&self.db)?);
        }
        Ok(self.view.as_ref().expect("made just above"))
    }

    fn get(&mut self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, redb::Error> {
        if let Some(value) = self.mem.get(cf, key) {
            return Ok(value.map(<[u8]>::to_vec));
        }
        get_in(&self.view()?.tables[cf.index()], key)
    }

    fn scan(
        &mut self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, redb::Error> {
        self.view()?;
        let view = self.view.as_ref().expect("made just above");
        scan_merged(&view.tables[cf.index()], &self.mem, cf, start, end, limit)
    }
}

impl Engine {
    /// Opens (creating if empty) an engine on `disk` with the default configuration.
    pub fn open(disk: impl Disk + 'static) -> Result<Engine> {
        Self::open_with(disk, EngineConfig::default())
    }

    /// Opens (creating if empty) an engine on `disk`. After a crash this recovers the disk to
    /// its last durable state: redb's last flush and the log's batches after it.
    pub fn open_with(disk: impl Disk + 'static, config: EngineConfig) -> Result<Engine> {
        // A new process: none of an earlier one's handles may write the disk any more.
        disk.start_process();
        let counters = Arc::new(Counters::default());
        let live = open_live(&disk, &config, &counters)?;
        Ok(Engine {
            disk: Box::new(disk),
            config,
            state: RwLock::new(State::Open { live: Box::new(live), generation: 0 }),
            counters,
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
        self.write_owned(batch.clone(), sync)
    }

    /// [`Engine::write`], taking the batch: its buffers move into the memtable uncopied.
    pub fn write_owned(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        // The canary acknowledges a durable write without making it durable.
        let sync = sync && !canary(Canary::EngineSkipsSync);
        self.writes.fetch_add(1, Ordering::Relaxed);
        if sync {
            self.synced_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.with_live_mut("write", |live| live.write(batch, sync, &self.config))
    }

    /// Makes every batch written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.write(&WriteBatch::new(), true)
    }

    /// Writes the memtable to redb (durably) and empties the log. Never needed for
    /// durability; it bounds the work of the next open.
    pub fn flush(&self) -> Result<()> {
        self.with_live_mut("flush", Live::flush)
    }

    /// The value of `key` in `cf`, if any.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_live_mut("get", |live| live.get(cf, key).map_err(|e| Error::from_redb("get", e)))
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
        self.with_live_mut("scan", |live| {
            live.scan(cf, start, end, limit).map_err(|e| Error::from_redb("scan", e))
        })
    }

    /// A consistent point-in-time view of every column family; later writes do not show in it.
    /// Flushes the memtable first, so that the view is one redb read transaction.
    pub fn snapshot(&self) -> Result<EngineSnapshot> {
        self.with_live_mut("snapshot", |live| {
            live.flush()?;
            open_view(&live.db).map_err(|e| Error::from_redb("snapshot", e))
        })
    }

    /// What the engine did so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            reopens: self.reopens.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            synced_writes: self.synced_writes.load(Ordering::Relaxed),
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            direct_writes: self.counters.direct_writes.load(Ordering::Relaxed),
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

    /// Runs `f` on the open engine, which it may change; on a disk fault reopens before
    /// returning the error. Reads take the same exclusive lock as writes (they may make the
    /// engine's read view): one store loop drives an engine, and a read may not overlap a
    /// flush.
    fn with_live_mut<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Live) -> Result<T>,
    ) -> Result<T> {
        self.ensure_open(op)?;
        let (error, generation) = {
            let mut state = self.state.write().expect("engine state lock poisoned");
            match &mut *state {
                State::Open { live, generation } => match f(live) {
                    Ok(value) => return Ok(value),
                    Err(e) => (e, *generation),
                },
                State::Failed { error, .. } => return Err(error.clone()),
                State::Detached => return Err(Error::Detached { op }),
            }
        };
        self.after_error(error, generation)
    }

    fn after_error<T>(&self, error: Error, generation: u64) -> Result<T> {
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

    /// Replaces the engine of `generation` by a freshly opened one (once, however many
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
        *state = match open_live(self.disk.as_ref(), &self.config, &self.counters) {
            Ok(live) => State::Open { live: Box::new(live), generation: generation + 1 },
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
        scan_merged(&self.tables[cf.index()], &Memtable::default(), cf, start, end, limit)
            .map_err(|e| Error::from_redb("snapshot scan", e))
    }

    /// Ends the snapshot, releasing the pages it pins.
    pub fn close(self) {
        drop(self.tables);
        drop(self.txn);
    }
}
