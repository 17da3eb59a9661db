//! The simulated disk: a deterministic, pure data structure that fails the way disks do.
//!
//! Model (after FoundationDB's and TigerBeetle's disk simulations):
//! - The medium is an array of 4 KiB sectors. Writes land in a volatile write cache (the
//!   "pending" sectors); `sync_data` makes the cache and the current length durable.
//! - [`SimDisk::crash`] loses the cache, except that each pending sector, and a pending length
//!   change, is independently kept or dropped: writes are torn at sector granularity and
//!   reordered. Every backend opened before the crash is detached: its operations fail with
//!   [`DiskDetached`], as a dead process's would.
//! - Reading a durable sector (one not in the cache) may fail with EIO (a latent sector error,
//!   which persists until the sector is rewritten) or may flip one bit of it on the medium
//!   (silent corruption, which persists). Rates are integer parts per million per sector read.
//! - A capacity limit: growing or writing past it fails with `StorageFull` (ENOSPC).
//! - One process at a time, as a file lock gives a real file: a backend takes the disk's
//!   whole-file lock when redb opens a database on it, so a second live database on the same
//!   disk is refused (`DatabaseAlreadyOpen`) instead of both writing it. [`SimDisk::process_exit`]
//!   ends the process that holds the disk: its backends are detached and its lock released, as
//!   the OS closes a dead process's files, while the write cache (data the OS accepted) stays.
//!
//! All randomness comes from the seed; a `SimDisk` is a cloneable handle on shared state, so
//! that a test or the simulator can crash it, change its rates and read its counters while
//! redb holds a backend on it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use redb::{BackendError, StorageBackend};

use super::{Disk, DiskDetached, DiskUsage, SECTOR_BYTES};

/// One in a million: the unit of every fault rate.
pub const PPM: u32 = 1_000_000;

/// Fault rates and limits of a simulated disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDiskConfig {
    /// Chance, per durable sector read, that the sector turns unreadable (EIO) for good.
    pub read_error_ppm: u32,
    /// Chance, per durable sector read, that one bit of the sector flips on the medium.
    pub bit_flip_ppm: u32,
    /// Chance that a pending sector (or pending length change) survives a crash.
    pub crash_keep_ppm: u32,
    /// Bytes the disk can hold; growing past this fails with ENOSPC.
    pub capacity_bytes: u64,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        Self {
            read_error_ppm: 0,
            bit_flip_ppm: 0,
            crash_keep_ppm: PPM / 2,
            capacity_bytes: u64::MAX,
        }
    }
}

/// Every fault the disk injected, and the operations it served, so that a scenario can report
/// what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Crashes, requested or armed.
    pub crashes: u64,
    /// Pending sectors that reached the medium at a crash.
    pub torn_sectors_kept: u64,
    /// Pending sectors lost at a crash.
    pub torn_sectors_dropped: u64,
    /// Pending length changes lost at a crash.
    pub lengths_reverted: u64,
    /// Reads that failed with EIO (new latent errors and repeats of old ones).
    pub read_errors: u64,
    /// Sectors that turned unreadable.
    pub latent_errors_injected: u64,
    /// Bits flipped on the medium.
    pub bit_flips: u64,
    /// Operations refused with ENOSPC.
    pub enospc: u64,
    /// Operations refused because their backend outlived a crash.
    pub detached_ops: u64,
    /// Read calls served.
    pub reads: u64,
    /// Write calls served.
    pub writes: u64,
    /// Sync calls served.
    pub syncs: u64,
}

#[derive(Debug)]
struct DiskState {
    rng: ChaCha8Rng,
    config: SimDiskConfig,
    counters: FaultCounters,
    /// Bumped by each crash; a backend opened in an earlier epoch is detached.
    epoch: u64,
    /// Durable contents; its length is the durable length.
    durable: Vec<u8>,
    /// Volatile length (what `len` reports).
    len: u64,
    /// Latest image of every sector written since the last sync.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Durable sectors that fail to read until rewritten.
    bad_sectors: BTreeSet<u64>,
    /// Operations left before an armed crash fires.
    crash_in_ops: Option<u64>,
    /// Identity of the next backend handed out, for the lock.
    next_backend_id: u64,
    /// The whole-disk lock: held exclusively by one backend, or shared by several.
    lock: DiskLock,
}

#[derive(Debug, Default)]
struct DiskLock {
    exclusive: Option<u64>,
    shared: BTreeSet<u64>,
}

impl DiskLock {
    fn try_take(&mut self, backend: u64, shared: bool) -> bool {
        let free_of_others = self.exclusive.is_none_or(|holder| holder == backend)
            && (shared || self.shared.iter().all(|&holder| holder == backend));
        if !free_of_others {
            return false;
        }
        if shared {
            self.shared.insert(backend);
        } else {
            self.exclusive = Some(backend);
        }
        true
    }

    fn release(&mut self, backend: u64) {
        if self.exclusive == Some(backend) {
            self.exclusive = None;
        }
        self.shared.remove(&backend);
    }
}

fn enospc(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, format!("simulated ENOSPC: {what}"))
}

impl DiskState {
    fn roll(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rng.next_u64() % u64::from(PPM)) < u64::from(ppm)
    }

    /// Current image of `sector` as the volatile view shows it.
    fn view(&self, sector: u64) -> Vec<u8> {
        match self.pending.get(&sector) {
            Some(image) => image.clone(),
            None => durable_image(&self.durable, sector),
        }
    }

    /// Copies `out.len()` bytes of `sector`'s volatile view from `within` into `out`, without
    /// building the sector's image (reads are the hot path of every commit).
    fn copy_view(&self, sector: u64, within: u64, out: &mut [u8]) {
        if let Some(image) = self.pending.get(&sector) {
            out.copy_from_slice(&image[within as usize..within as usize + out.len()]);
            return;
        }
        let start = (sector * SECTOR_BYTES + within) as usize;
        let durable = self.durable.len();
        let from_medium = durable.saturating_sub(start).min(out.len());
        if from_medium > 0 {
            out[..from_medium].copy_from_slice(&self.durable[start..start + from_medium]);
        }
        out[from_medium..].fill(0);
    }

    /// Checks the handle's epoch and fires an armed crash; every backend operation starts here.
    fn begin_op(&mut self, epoch: u64) -> io::Result<()> {
        if epoch != self.epoch {
            self.counters.detached_ops += 1;
            return Err(io::Error::new(io::ErrorKind::NotConnected, DiskDetached));
        }
        if let Some(left) = self.crash_in_ops {
            if left == 0 {
                self.crash();
                self.counters.detached_ops += 1;
                return Err(io::Error::new(io::ErrorKind::NotConnected, DiskDetached));
            }
            self.crash_in_ops = Some(left - 1);
        }
        Ok(())
    }

    /// Every backend opened so far belongs to a process that is now gone: detach them all and
    /// release the lock they held.
    fn end_process(&mut self) {
        self.epoch += 1;
        self.lock = DiskLock::default();
    }

    fn crash(&mut self) {
        self.end_process();
        self.crash_in_ops = None;
        self.counters.crashes += 1;
        let durable_len = self.durable.len() as u64;
        let new_len = if self.len == durable_len {
            durable_len
        } else if self.roll(self.config.crash_keep_ppm) {
            self.len
        } else {
            self.counters.lengths_reverted += 1;
            durable_len
        };
        self.durable.resize(new_len as usize, 0);
        let pending = std::mem::take(&mut self.pending);
        for (sector, image) in pending {
            if !self.roll(self.config.crash_keep_ppm) {
                self.counters.torn_sectors_dropped += 1;
                continue;
            }
            self.counters.torn_sectors_kept += 1;
            self.persist(sector, &image);
        }
        self.len = new_len;
    }

    /// Writes a sector image to the medium, clipped to the durable length.
    fn persist(&mut self, sector: u64, image: &[u8]) {
        let start = sector * SECTOR_BYTES;
        let durable_len = self.durable.len() as u64;
        if start >= durable_len {
            return;
        }
        let end = (start + SECTOR_BYTES).min(durable_len);
        self.durable[start as usize..end as usize]
            .copy_from_slice(&image[..(end - start) as usize]);
        // A rewritten sector is remapped by the drive: its latent error is gone.
        self.bad_sectors.remove(&sector);
    }

    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.counters.reads += 1;
        let end = offset + out.len() as u64;
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {offset}..{end} past the end ({})", self.len),
            ));
        }
        let mut pos = offset;
        while pos < end {
            let sector = pos / SECTOR_BYTES;
            let within = pos % SECTOR_BYTES;
            let n = (SECTOR_BYTES - within).min(end - pos);
            let from_medium = !self.pending.contains_key(&sector)
                && sector * SECTOR_BYTES < self.durable.len() as u64;
            if from_medium {
                self.medium_faults(sector)?;
            }
            let dst = (pos - offset) as usize;
            self.copy_view(sector, within, &mut out[dst..dst + n as usize]);
            pos += n;
        }
        Ok(())
    }

    /// Injects the faults of reading `sector` from the medium.
    fn medium_faults(&mut self, sector: u64) -> io::Result<()> {
        if !self.bad_sectors.contains(&sector) && self.roll(self.config.read_error_ppm) {
            self.bad_sectors.insert(sector);
            self.counters.latent_errors_injected += 1;
        }
        if self.bad_sectors.contains(&sector) {
            self.counters.read_errors += 1;
            return Err(io::Error::other(format!(
                "simulated EIO: latent error in sector {sector}"
            )));
        }
        if self.roll(self.config.bit_flip_ppm) {
            let start = sector * SECTOR_BYTES;
            let bytes = (self.durable.len() as u64 - start).min(SECTOR_BYTES);
            let bit = self.rng.next_u64() % (bytes * 8);
            self.durable[(start + bit / 8) as usize] ^= 1 << (bit % 8);
            self.counters.bit_flips += 1;
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.counters.writes += 1;
        let end = offset + data.len() as u64;
        if end > self.config.capacity_bytes {
            self.counters.enospc += 1;
            return Err(enospc("write past capacity"));
        }
        self.len = self.len.max(end);
        let mut pos = offset;
        while pos < end {
            let sector = pos / SECTOR_BYTES;
            let within = pos % SECTOR_BYTES;
            let n = (SECTOR_BYTES - within).min(end - pos);
            let src = &data[(pos - offset) as usize..(pos - offset + n) as usize];
            let durable = &self.durable;
            let image = match self.pending.entry(sector) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                // A whole-sector write needs nothing of the old image.
                std::collections::btree_map::Entry::Vacant(e) if n == SECTOR_BYTES => {
                    e.insert(src.to_vec());
                    pos += n;
                    continue;
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(durable_image(durable, sector))
                }
            };
            image[within as usize..(within + n) as usize].copy_from_slice(src);
            pos += n;
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len > self.config.capacity_bytes {
            self.counters.enospc += 1;
            return Err(enospc("growth past capacity"));
        }
        if len < self.len {
            // Bytes past the new end must read as zeros if the file grows again.
            let first = len / SECTOR_BYTES;
            let last = self.len.div_ceil(SECTOR_BYTES);
            for sector in first..last {
                let mut image = self.view(sector);
                let keep = len.saturating_sub(sector * SECTOR_BYTES).min(SECTOR_BYTES);
                image[keep as usize..].fill(0);
                self.pending.insert(sector, image);
            }
        }
        self.len = len;
        Ok(())
    }

    fn sync(&mut self) {
        self.counters.syncs += 1;
        self.durable.resize(self.len as usize, 0);
        let pending = std::mem::take(&mut self.pending);
        for (sector, image) in pending {
            self.persist(sector, &image);
        }
    }
}

/// The image of `sector` on the medium (zeros past its end).
fn durable_image(durable: &[u8], sector: u64) -> Vec<u8> {
    let mut image = vec![0u8; SECTOR_BYTES as usize];
    let start = sector * SECTOR_BYTES;
    let durable_len = durable.len() as u64;
    if start < durable_len {
        let end = (start + SECTOR_BYTES).min(durable_len);
        image[..(end - start) as usize].copy_from_slice(&durable[start as usize..end as usize]);
    }
    image
}

/// A simulated disk: a cloneable handle on shared state.
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `seed`.
    pub fn new(seed: u64, config: SimDiskConfig) -> Self {
        let state = DiskState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            config,
            counters: FaultCounters::default(),
            epoch: 0,
            durable: Vec::new(),
            len: 0,
            pending: BTreeMap::new(),
            bad_sectors: BTreeSet::new(),
            crash_in_ops: None,
            next_backend_id: 0,
            lock: DiskLock::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // Simulation is single-threaded; a poisoned lock means a panic already failed the run.
        self.state.lock().expect("sim disk lock poisoned")
    }

    /// A raw redb backend on this disk, valid until the next crash.
    pub fn backend(&self) -> SimDiskBackend {
        let mut state = self.lock();
        state.next_backend_id += 1;
        SimDiskBackend { disk: self.clone(), epoch: state.epoch, id: state.next_backend_id }
    }

    /// Power loss: the write cache is lost, each pending sector independently kept or dropped.
    pub fn crash(&self) {
        self.lock().crash();
    }

    /// The process using the disk exits, without a power loss: every backend opened before is
    /// detached (its operations fail with [`DiskDetached`]) and the disk's lock is released,
    /// as the OS closes a dead process's files; the write cache, which the OS already holds,
    /// is kept. Whatever the process still buffered in its own memory is lost with it.
    pub fn process_exit(&self) {
        self.lock().end_process();
    }

    /// Whether some live backend holds the disk's lock (a database is open on it).
    pub fn locked(&self) -> bool {
        let state = self.lock();
        state.lock.exclusive.is_some() || !state.lock.shared.is_empty()
    }

    /// Arms a crash that fires at the start of the `ops`-th backend operation from now
    /// (0: the next one), which then fails: a power loss at a chosen moment, even in the
    /// middle of a commit.
    pub fn crash_after_ops(&self, ops: u64) {
        self.lock().crash_in_ops = Some(ops);
    }

    /// Whether an armed crash is still waiting to fire.
    pub fn crash_armed(&self) -> bool {
        self.lock().crash_in_ops.is_some()
    }

    /// The current configuration.
    pub fn config(&self) -> SimDiskConfig {
        self.lock().config.clone()
    }

    /// Replaces the fault rates and capacity; takes effect on the next operation.
    pub fn set_config(&self, config: SimDiskConfig) {
        self.lock().config = config;
    }

    /// Changes only the capacity (e.g. to model space freed elsewhere on the disk).
    pub fn set_capacity_bytes(&self, capacity_bytes: u64) {
        self.lock().config.capacity_bytes = capacity_bytes;
    }

    /// Everything injected and served so far.
    pub fn counters(&self) -> FaultCounters {
        self.lock().counters.clone()
    }

    /// The volatile length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.lock().len
    }

    /// The durable length in bytes.
    pub fn durable_len_bytes(&self) -> u64 {
        self.lock().durable.len() as u64
    }

    /// Byte offsets on the medium where `pattern` starts (durable contents only).
    pub fn find_durable(&self, pattern: &[u8]) -> Vec<u64> {
        let state = self.lock();
        if pattern.is_empty() {
            return Vec::new();
        }
        state
            .durable
            .windows(pattern.len())
            .enumerate()
            .filter(|(_, w)| *w == pattern)
            .map(|(i, _)| i as u64)
            .collect()
    }

    /// Flips one bit on the medium (a targeted silent corruption); counted as a bit flip.
    pub fn flip_bit(&self, byte_offset: u64, bit: u8) {
        let mut state = self.lock();
        assert!(
            byte_offset < state.durable.len() as u64,
            "flip at {byte_offset} is past the durable end {}",
            state.durable.len()
        );
        state.durable[byte_offset as usize] ^= 1 << (bit % 8);
        state.counters.bit_flips += 1;
    }

    /// Makes the durable sector holding `byte_offset` unreadable until rewritten.
    pub fn inject_read_error(&self, byte_offset: u64) {
        let mut state = self.lock();
        state.bad_sectors.insert(byte_offset / SECTOR_BYTES);
        state.counters.latent_errors_injected += 1;
    }

    /// Forgets every latent read error (the sectors read again as they were).
    pub fn clear_read_errors(&self) {
        self.lock().bad_sectors.clear();
    }
}

impl Disk for SimDisk {
    fn open_backend(&self) -> io::Result<Box<dyn StorageBackend>> {
        Ok(Box::new(self.backend()))
    }

    fn start_process(&self) {
        self.process_exit();
    }

    fn usage(&self) -> io::Result<DiskUsage> {
        let state = self.lock();
        let capacity_bytes = state.config.capacity_bytes;
        Ok(DiskUsage {
            used_bytes: state.len,
            capacity_bytes: (capacity_bytes != u64::MAX).then_some(capacity_bytes),
        })
    }
}

/// A redb [`StorageBackend`] on a [`SimDisk`]; detached by the disk's next crash.
#[derive(Debug)]
pub struct SimDiskBackend {
    disk: SimDisk,
    epoch: u64,
    id: u64,
}

impl SimDiskBackend {
    fn with_op<T>(&self, op: impl FnOnce(&mut DiskState) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.disk.lock();
        state.begin_op(self.epoch)?;
        op(&mut state)
    }

    /// The whole-disk lock, the one range this backend can lock (like redb's fallback file
    /// backend, whose only lock is the whole file's): redb falls back to it.
    fn try_lock_whole(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
        shared: bool,
    ) -> Result<bool, BackendError> {
        if !is_whole_range(start, end) {
            return Err(BackendError::Unsupported);
        }
        let mut state = self.disk.lock();
        if state.epoch != self.epoch {
            return Err(BackendError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                DiskDetached,
            )));
        }
        Ok(state.lock.try_take(self.id, shared))
    }

    fn release_lock(&self) {
        let mut state = self.disk.lock();
        if state.epoch == self.epoch {
            state.lock.release(self.id);
        }
    }
}

fn is_whole_range(start: Bound<u64>, end: Bound<u64>) -> bool {
    matches!(start, Bound::Unbounded | Bound::Included(0)) && end == Bound::Unbounded
}

impl Drop for SimDiskBackend {
    fn drop(&mut self) {
        // A closed file descriptor releases its locks, whether or not redb called `close`.
        self.release_lock();
    }
}

impl StorageBackend for SimDiskBackend {
    fn len(&self) -> Result<u64, io::Error> {
        let state = self.disk.lock();
        if state.epoch != self.epoch {
            return Err(io::Error::new(io::ErrorKind::NotConnected, DiskDetached));
        }
        Ok(state.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.with_op(|state| state.read(offset, out))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.with_op(|state| state.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.with_op(|state| {
            state.sync();
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.with_op(|state| state.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.release_lock();
        Ok(())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.try_lock_whole(start, end, false)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.try_lock_whole(start, end, true)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !is_whole_range(start, end) {
            return Err(BackendError::Unsupported);
        }
        self.release_lock();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(backend: &SimDiskBackend) -> Vec<u8> {
        let mut out = vec![0u8; backend.len().unwrap() as usize];
        backend.read(0, &mut out).unwrap();
        out
    }

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_tear_per_sector() {
        let disk = SimDisk::new(7, SimDiskConfig::default());
        let backend = disk.backend();
        backend.set_len(8 * SECTOR_BYTES).unwrap();
        backend.write(0, &[1u8; 8 * 4096]).unwrap();
        backend.sync_data().unwrap();
        backend.write(0, &[2u8; 8 * 4096]).unwrap();
        disk.crash();
        assert!(
            matches!(backend.read(0, &mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::NotConnected)
        );
        let after = read_all(&disk.backend());
        let counters = disk.counters();
        assert_eq!(counters.torn_sectors_kept + counters.torn_sectors_dropped, 8);
        for (i, sector) in after.chunks(4096).enumerate() {
            let first = sector[0];
            assert!(first == 1 || first == 2, "sector {i}");
            assert!(sector.iter().all(|&b| b == first), "sector {i} torn inside");
        }
    }

    #[test]
    fn same_seed_same_crash() {
        let run = |seed| {
            let disk = SimDisk::new(seed, SimDiskConfig::default());
            let backend = disk.backend();
            backend.set_len(64 * SECTOR_BYTES).unwrap();
            backend.write(0, &[9u8; 64 * 4096]).unwrap();
            disk.crash();
            (read_all(&disk.backend()), disk.counters())
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3).0, run(4).0);
    }

    #[test]
    fn capacity_limit_returns_enospc_until_raised() {
        let disk = SimDisk::new(
            1,
            SimDiskConfig { capacity_bytes: 4 * SECTOR_BYTES, ..SimDiskConfig::default() },
        );
        let backend = disk.backend();
        backend.set_len(4 * SECTOR_BYTES).unwrap();
        let err = backend.set_len(5 * SECTOR_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(disk.counters().enospc, 1);
        disk.set_capacity_bytes(8 * SECTOR_BYTES);
        backend.set_len(5 * SECTOR_BYTES).unwrap();
    }

    #[test]
    fn latent_errors_persist_until_the_sector_is_rewritten() {
        let disk = SimDisk::new(1, SimDiskConfig::default());
        let backend = disk.backend();
        backend.set_len(2 * SECTOR_BYTES).unwrap();
        backend.write(0, &[5u8; 8192]).unwrap();
        backend.sync_data().unwrap();
        disk.inject_read_error(4096);
        let mut buf = [0u8; 16];
        backend.read(0, &mut buf).unwrap();
        assert!(backend.read(4096, &mut buf).is_err());
        assert!(backend.read(4096, &mut buf).is_err());
        backend.write(4096, &[6u8; 4096]).unwrap();
        backend.sync_data().unwrap();
        backend.read(4096, &mut buf).unwrap();
        assert_eq!(buf, [6u8; 16]);
        assert_eq!(disk.counters().read_errors, 2);
    }

    #[test]
    fn bit_flips_change_durable_data_and_are_counted() {
        let disk =
            SimDisk::new(11, SimDiskConfig { bit_flip_ppm: PPM, ..SimDiskConfig::default() });
        let backend = disk.backend();
        backend.set_len(SECTOR_BYTES).unwrap();
        backend.write(0, &[0u8; 4096]).unwrap();
        backend.sync_data().unwrap();
        let data = read_all(&backend);
        assert_eq!(data.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        assert_eq!(disk.counters().bit_flips, 1);
    }

    #[test]
    fn one_database_at_a_time_until_its_process_exits() {
        let disk = SimDisk::new(3, SimDiskConfig::default());
        let first = redb::Builder::new().create_with_backend(disk.backend()).unwrap();
        assert!(disk.locked());
        let second = redb::Builder::new().create_with_backend(disk.backend());
        assert!(matches!(second, Err(redb::DatabaseError::DatabaseAlreadyOpen)));
        drop(first);
        assert!(!disk.locked(), "closing the database releases the lock");
        let second = redb::Builder::new().create_with_backend(disk.backend()).unwrap();
        // Its process exits while something still holds the handle: the next one may open.
        disk.process_exit();
        let third = redb::Builder::new().create_with_backend(disk.backend()).unwrap();
        let commit = second.begin_write().map(|txn| txn.commit());
        assert!(!matches!(commit, Ok(Ok(()))), "the dead process's database cannot commit");
        drop(second);
        assert!(disk.locked(), "the dead handle's drop leaves the live one's lock alone");
        drop(third);
    }

    #[test]
    fn armed_crash_fires_on_the_chosen_operation() {
        let disk = SimDisk::new(2, SimDiskConfig::default());
        let backend = disk.backend();
        disk.crash_after_ops(2);
        backend.set_len(SECTOR_BYTES).unwrap();
        backend.write(0, &[1u8; 10]).unwrap();
        assert!(backend.sync_data().is_err());
        assert_eq!(disk.counters().crashes, 1);
        assert!(!disk.crash_armed());
    }
}
