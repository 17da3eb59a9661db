//! The sector-checksum layer: every physical sector carries a checksum of its own contents.
//!
//! Layout: each 4 KiB physical sector holds [`PAYLOAD_BYTES`] (4088) bytes of redb's logical
//! file followed by an 8-byte little-endian XXH64 of that payload, seeded with the sector's
//! index so that a sector written to, or read from, the wrong place fails too. A sector that
//! is entirely zero is a sector never written, and reads as zeros; a stored checksum of zero
//! is therefore reserved for it (a computed zero is stored as one).
//!
//! Because checksum and data share a sector, a write that the disk tears at sector
//! granularity leaves every sector either wholly old or wholly new, each with a valid
//! checksum: tearing never makes good data look corrupt, and redb's own crash recovery sees
//! exactly the torn writes it was designed for. A bit flipped on the medium fails the check on
//! the next read, which surfaces as an `InvalidData` I/O error carrying
//! [`SectorCorruption`]; corrupt bytes never reach redb, which would trust them outside of
//! its repair (see the crate docs).
//!
//! Writes are held back (up to [`WRITE_BACK_BYTES_MAX`]) and flushed, merged into contiguous
//! runs, before the next read, length change or sync: redb writes a commit page by page, and
//! a page straddles two sectors, so sealing pages one at a time would read and rewrite every
//! boundary sector twice. A write over held bytes replaces them in the buffer (redb rewrites
//! its header page at every commit, synced or not), so only the latest image of a page is
//! sealed and written. Held-back writes are as volatile as the disk's own write cache, and
//! `sync_data` flushes them first, so durability is unchanged.
//!
//! Limits: the logical length must be a multiple of 4 KiB (redb's page size; redb never asks
//! for anything else), and writes must fall inside the logical length (redb grows the file
//! with `set_len` before writing).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use redb::{BackendError, StorageBackend};

use super::{SECTOR_BYTES, SectorCorruption};
use crate::checksum::xxh64;

/// Bytes of the stored checksum at the end of each sector.
pub const CHECKSUM_BYTES: u64 = 8;
/// Bytes of logical data carried by each physical sector.
pub const PAYLOAD_BYTES: u64 = SECTOR_BYTES - CHECKSUM_BYTES;
/// Granularity of logical lengths this layer accepts: redb's page size.
pub const LOGICAL_LENGTH_GRANULE_BYTES: u64 = 4096;

/// Bytes of held-back writes past which they are all flushed to the disk below. Large enough
/// that a run of unsynced commits is sealed in long contiguous runs (few partially covered
/// sectors to read back) and a page rewritten meanwhile is sealed once; memory is held only
/// until the next read, length change or sync.
pub const WRITE_BACK_BYTES_MAX: usize = 32 << 20;

/// Mixed into each sector's seed so that a checksum never matches one from another format.
const SEED_SALT: u64 = 0x6d69_6e69_6b76_5f31; // "minikv_1"

fn sector_seed(sector: u64) -> u64 {
    SEED_SALT ^ sector.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The checksum stored for `payload` in `sector`; never zero (zero marks a blank sector).
fn seal(sector: u64, payload: &[u8]) -> u64 {
    debug_assert_eq!(payload.len() as u64, PAYLOAD_BYTES);
    xxh64(payload, sector_seed(sector)).max(1)
}

/// Checks one physical sector image.
fn verify(sector: u64, image: &[u8]) -> io::Result<()> {
    assert_eq!(image.len() as u64, SECTOR_BYTES, "verify takes whole sectors");
    let (payload, stored) = image.split_at(PAYLOAD_BYTES as usize);
    let stored = u64::from_le_bytes(stored.try_into().expect("8 checksum bytes"));
    let good =
        if stored == 0 { payload.iter().all(|&b| b == 0) } else { stored == seal(sector, payload) };
    if good {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, SectorCorruption { sector }))
    }
}

/// Physical bytes needed to hold `logical_bytes` of payload.
pub fn physical_len(logical_bytes: u64) -> u64 {
    logical_bytes.div_ceil(PAYLOAD_BYTES) * SECTOR_BYTES
}

/// The logical length a physical length was produced from, if it was produced by
/// [`physical_len`] of a multiple of [`LOGICAL_LENGTH_GRANULE_BYTES`].
pub fn logical_len(physical_bytes: u64) -> Option<u64> {
    if !physical_bytes.is_multiple_of(SECTOR_BYTES) {
        return None;
    }
    let sectors = physical_bytes / SECTOR_BYTES;
    let granules = sectors * PAYLOAD_BYTES / LOGICAL_LENGTH_GRANULE_BYTES;
    let logical = granules * LOGICAL_LENGTH_GRANULE_BYTES;
    (physical_len(logical) == physical_bytes).then_some(logical)
}

/// A redb backend that seals every sector of the backend beneath it with a checksum.
pub struct ChecksummedBackend {
    inner: Box<dyn StorageBackend>,
    /// Index, on the whole disk, of `inner`'s first sector: checksums are seeded with the
    /// disk-wide index, so a sector of one partition read as another's fails.
    first_sector: u64,
    held: Mutex<HeldWrites>,
    /// The sealed image of the last sector the latest write passed down, as `inner` now holds
    /// it: the next small write (the log's next append) usually starts inside it, and reading
    /// it back would cost a read and a checksum each time. Cleared by a failed write and by a
    /// length change.
    last_sector: Mutex<Option<(u64, Vec<u8>)>>,
}

/// Writes not yet sealed and passed down: disjoint extents by logical offset.
#[derive(Default)]
struct HeldWrites {
    extents: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

impl HeldWrites {
    /// Holds `data` for logical `offset..`, on top of any held bytes it overlaps: redb
    /// rewrites some pages (the header, above all) at every commit, and a rewrite must not
    /// force out everything held.
    fn insert(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        // Extents are disjoint and sorted, so their ends are sorted too: walking back from
        // the last one starting before `end`, the overlapping ones come first.
        let overlapping: Vec<u64> = self
            .extents
            .range(..end)
            .rev()
            .take_while(|(start, held)| *start + held.len() as u64 > offset)
            .map(|(start, _)| *start)
            .collect();
        match overlapping.as_slice() {
            [] => {
                self.bytes += data.len();
                self.extents.insert(offset, data.to_vec());
            }
            [start] if *start <= offset && *start + self.extents[start].len() as u64 >= end => {
                let held = self.extents.get_mut(start).expect("extent found just above");
                let within = (offset - *start) as usize;
                held[within..within + data.len()].copy_from_slice(data);
            }
            _ => {
                // The union of `offset..end` and the extents overlapping it is contiguous.
                let first = *overlapping.last().expect("non-empty");
                let merged_start = first.min(offset);
                let mut merged_end = end;
                let mut pieces = Vec::with_capacity(overlapping.len());
                for start in overlapping {
                    let held = self.extents.remove(&start).expect("extent found just above");
                    self.bytes -= held.len();
                    merged_end = merged_end.max(start + held.len() as u64);
                    pieces.push((start, held));
                }
                let mut merged = vec![0u8; (merged_end - merged_start) as usize];
                for (start, held) in pieces {
                    let at = (start - merged_start) as usize;
                    merged[at..at + held.len()].copy_from_slice(&held);
                }
                let at = (offset - merged_start) as usize;
                merged[at..at + data.len()].copy_from_slice(data);
                self.bytes += merged.len();
                self.extents.insert(merged_start, merged);
            }
        }
    }
}

impl fmt::Debug for ChecksummedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChecksummedBackend")
            .field("inner", &self.inner)
            .field("first_sector", &self.first_sector)
            .finish()
    }
}

impl ChecksummedBackend {
    /// Wraps `inner`, whose contents must have been written through this layer (or be empty).
    pub fn new(inner: Box<dyn StorageBackend>) -> Self {
        Self::new_at(inner, 0)
    }

    /// Wraps `inner`, a partition that starts at sector `first_sector` of its disk.
    pub fn new_at(inner: Box<dyn StorageBackend>, first_sector: u64) -> Self {
        Self {
            inner,
            first_sector,
            held: Mutex::new(HeldWrites::default()),
            last_sector: Mutex::new(None),
        }
    }

    fn held(&self) -> MutexGuard<'_, HeldWrites> {
        // A panic while holding this lock already failed the run.
        self.held.lock().expect("held-writes lock poisoned")
    }

    /// Seals and passes down every held write, merging contiguous ones.
    fn flush(&self, held: &mut HeldWrites) -> io::Result<()> {
        let extents = std::mem::take(&mut held.extents);
        held.bytes = 0;
        // A run of contiguous extents, sealed and written in one go straight from the
        // extents (no intermediate copy of the run).
        let mut run: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut run_end = 0u64;
        for (offset, data) in extents {
            if !run.is_empty() && run_end != offset {
                self.write_through(&run)?;
                run.clear();
            }
            run_end = offset + data.len() as u64;
            run.push((offset, data));
        }
        if !run.is_empty() {
            self.write_through(&run)?;
        }
        Ok(())
    }

    /// Seals the sectors under a run of contiguous, non-empty extents (sorted by logical
    /// offset) and writes them.
    fn write_through(&self, run: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let offset = run.first().expect("a run has an extent").0;
        let end = run.last().map(|(start, data)| start + data.len() as u64).expect("non-empty");
        let (first, last) = sector_span(offset, end - offset);
        let head_partial = !offset.is_multiple_of(PAYLOAD_BYTES);
        let tail_partial = !end.is_multiple_of(PAYLOAD_BYTES);
        let span_bytes = ((last - first + 1) * SECTOR_BYTES) as usize;
        let sector_bytes = SECTOR_BYTES as usize;
        // Partially covered sectors keep their other bytes: take them from the last written
        // sector if it is one of them, else read them (verified, so that corruption is never
        // resealed as good data) before overwriting. The cached image is taken: it is put back
        // only once this write succeeded.
        let cached = self.last_sector.lock().expect("last-sector lock poisoned").take();
        let (mut need_head, mut need_tail) = (head_partial, tail_partial);
        let mut buf = match cached {
            // The usual log append: it starts in the sector written last, whose image becomes
            // the head of the buffer as it is (no zeroing, no copy).
            Some((sector, mut image)) if sector == first && head_partial => {
                need_head = false;
                need_tail &= first != last;
                image.resize(span_bytes, 0);
                image
            }
            Some((sector, image)) if sector == last && tail_partial => {
                let mut buf = vec![0u8; span_bytes];
                buf[span_bytes - sector_bytes..].copy_from_slice(&image);
                need_tail = false;
                need_head &= first != last;
                buf
            }
            _ => vec![0u8; span_bytes],
        };
        if need_head && need_tail && last - first <= 1 {
            self.read_sectors_into(first, &mut buf)?;
        } else {
            if need_head {
                self.read_sectors_into(first, &mut buf[..sector_bytes])?;
            }
            if need_tail {
                self.read_sectors_into(last, &mut buf[span_bytes - sector_bytes..])?;
            }
        }
        for (start, data) in run {
            let mut logical = *start;
            let mut copied = 0usize;
            while copied < data.len() {
                let sector = logical / PAYLOAD_BYTES;
                let within = logical % PAYLOAD_BYTES;
                let n = ((PAYLOAD_BYTES - within) as usize).min(data.len() - copied);
                let at = ((sector - first) * SECTOR_BYTES + within) as usize;
                buf[at..at + n].copy_from_slice(&data[copied..copied + n]);
                copied += n;
                logical += n as u64;
            }
        }
        for (i, image) in buf.chunks_exact_mut(sector_bytes).enumerate() {
            let (payload, sum) = image.split_at_mut(PAYLOAD_BYTES as usize);
            sum.copy_from_slice(&seal(self.first_sector + first + i as u64, payload).to_le_bytes());
        }
        self.inner.write(first * SECTOR_BYTES, &buf)?;
        // The last sector's image is kept for the next append (the buffer itself when it is
        // that one sector).
        let image = if first == last { buf } else { buf.split_off(span_bytes - sector_bytes) };
        *self.last_sector.lock().expect("last-sector lock poisoned") = Some((last, image));
        Ok(())
    }

    fn flush_held(&self) -> io::Result<()> {
        let mut held = self.held();
        if held.extents.is_empty() {
            return Ok(());
        }
        self.flush(&mut held)
    }

    /// Reads and verifies the physical sectors `first..=last`.
    fn read_sectors(&self, first: u64, last: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; ((last - first + 1) * SECTOR_BYTES) as usize];
        self.read_sectors_into(first, &mut buf)?;
        Ok(buf)
    }

    /// Reads and verifies whole physical sectors from `first` on into `buf`.
    fn read_sectors_into(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(first * SECTOR_BYTES, buf)?;
        for (i, image) in buf.chunks_exact(SECTOR_BYTES as usize).enumerate() {
            verify(self.first_sector + first + i as u64, image)?;
        }
        Ok(())
    }
}

/// The physical sectors holding logical bytes `offset..offset + len` (`len > 0`).
fn sector_span(offset: u64, len: u64) -> (u64, u64) {
    (offset / PAYLOAD_BYTES, (offset + len - 1) / PAYLOAD_BYTES)
}

impl StorageBackend for ChecksummedBackend {
    fn len(&self) -> Result<u64, io::Error> {
        let physical = self.inner.len()?;
        logical_len(physical).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{physical} bytes is not a length the sector-checksum layer writes"),
            )
        })
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if out.is_empty() {
            return Ok(());
        }
        self.flush_held()?;
        let (first, last) = sector_span(offset, out.len() as u64);
        let buf = self.read_sectors(first, last)?;
        let mut logical = offset;
        let mut copied = 0usize;
        while copied < out.len() {
            let sector = logical / PAYLOAD_BYTES;
            let within = logical % PAYLOAD_BYTES;
            let n = ((PAYLOAD_BYTES - within) as usize).min(out.len() - copied);
            let start = ((sector - first) * SECTOR_BYTES + within) as usize;
            out[copied..copied + n].copy_from_slice(&buf[start..start + n]);
            copied += n;
            logical += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if !len.is_multiple_of(LOGICAL_LENGTH_GRANULE_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("logical length {len} is not a multiple of {LOGICAL_LENGTH_GRANULE_BYTES}"),
            ));
        }
        self.flush_held()?;
        *self.last_sector.lock().expect("last-sector lock poisoned") = None;
        let old = self.len()?;
        if len < old && !len.is_multiple_of(PAYLOAD_BYTES) {
            // The last kept sector still holds payload past the new end; zero it so that a
            // later growth reads zeros there, as the StorageBackend contract demands.
            let sector = len / PAYLOAD_BYTES;
            let mut image = self.read_sectors(sector, sector)?;
            let within = (len % PAYLOAD_BYTES) as usize;
            image[within..PAYLOAD_BYTES as usize].fill(0);
            let sum = seal(self.first_sector + sector, &image[..PAYLOAD_BYTES as usize]);
            image[PAYLOAD_BYTES as usize..].copy_from_slice(&sum.to_le_bytes());
            self.inner.write(sector * SECTOR_BYTES, &image)?;
        }
        self.inner.set_len(physical_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.flush_held()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if data.is_empty() {
            return Ok(());
        }
        let mut held = self.held();
        held.insert(offset, data);
        if held.bytes > WRITE_BACK_BYTES_MAX {
            self.flush(&mut held)?;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        let flushed = self.flush_held();
        self.inner.close()?;
        flushed
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    fn layer() -> ChecksummedBackend {
        ChecksummedBackend::new(Box::new(InMemoryBackend::new()))
    }

    #[test]
    fn lengths_round_trip_for_every_page_multiple() {
        for pages in 0..5000u64 {
            let logical = pages * LOGICAL_LENGTH_GRANULE_BYTES;
            assert_eq!(logical_len(physical_len(logical)), Some(logical), "{pages} pages");
        }
        assert_eq!(logical_len(100), None);
    }

    #[test]
    fn writes_read_back_across_sector_boundaries() {
        let disk = layer();
        disk.set_len(16 * 4096).unwrap();
        assert_eq!(disk.len().unwrap(), 16 * 4096);
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        disk.write(4096, &data).unwrap();
        disk.write(5000, b"hello").unwrap();
        let mut out = vec![0u8; data.len()];
        disk.read(4096, &mut out).unwrap();
        let mut expected = data.clone();
        expected[904..909].copy_from_slice(b"hello");
        assert_eq!(out, expected);
        let mut zeros = vec![1u8; 4096];
        disk.read(12 * 4096, &mut zeros).unwrap();
        assert!(zeros.iter().all(|&b| b == 0));
    }

    #[test]
    fn overlapping_held_writes_read_back_like_a_plain_file() {
        // A seeded walk of writes that overlap, cover and extend each other, checked
        // against a plain byte array after every step.
        const LEN_BYTES: u64 = 12 * 4096;
        let disk = layer();
        disk.set_len(LEN_BYTES).unwrap();
        let mut model = vec![0u8; LEN_BYTES as usize];
        let mut state = 0x1234_5678_u64;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        for step in 0..400u64 {
            let offset = next(LEN_BYTES - 1);
            let len = 1 + next((LEN_BYTES - offset).min(3 * 4096));
            let fill = (step % 251) as u8 + 1;
            let data = vec![fill; len as usize];
            disk.write(offset, &data).unwrap();
            model[offset as usize..(offset + len) as usize].copy_from_slice(&data);
            if step % 7 == 6 {
                let mut out = vec![0u8; LEN_BYTES as usize];
                disk.read(0, &mut out).unwrap();
                assert!(out == model, "step {step}: read-back differs from the model");
            }
        }
        disk.sync_data().unwrap();
        let mut out = vec![0u8; LEN_BYTES as usize];
        disk.read(0, &mut out).unwrap();
        assert!(out == model, "after sync: read-back differs from the model");
    }

    /// An in-memory backend that counts reads.
    #[derive(Debug, Default)]
    struct CountingBackend {
        inner: InMemoryBackend,
        reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl StorageBackend for CountingBackend {
        fn len(&self) -> Result<u64, io::Error> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), io::Error> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> Result<(), io::Error> {
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
            self.inner.write(offset, data)
        }
        fn close(&self) -> Result<(), io::Error> {
            self.inner.close()
        }
    }

    #[test]
    fn synced_appends_inside_the_last_written_sector_read_nothing_back() {
        const LEN_BYTES: u64 = 8 * 4096;
        let counting = CountingBackend::default();
        let reads = counting.reads.clone();
        let disk = ChecksummedBackend::new(Box::new(counting));
        disk.set_len(LEN_BYTES).unwrap();
        let mut model = vec![0u8; LEN_BYTES as usize];
        // A log's appends, each synced: only the first touches a sector not written before.
        let mut offset = 100u64;
        let mut crossings = 0;
        for i in 0..60u64 {
            let data = vec![(i % 250) as u8 + 1; 150];
            if offset / PAYLOAD_BYTES != (offset + 149) / PAYLOAD_BYTES {
                crossings += 1;
            }
            disk.write(offset, &data).unwrap();
            disk.sync_data().unwrap();
            model[offset as usize..offset as usize + 150].copy_from_slice(&data);
            offset += 150;
        }
        let reads_for_appends = reads.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            reads_for_appends <= 1 + crossings,
            "{reads_for_appends} reads for 60 appends crossing {crossings} sector boundaries"
        );
        // Interleaved writes elsewhere move the cached sector; every byte still reads back.
        let mut state = 7u64;
        for step in 0..200u64 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let at = (state >> 33) % (LEN_BYTES - 300);
            let len = 1 + (state >> 20) % 300;
            let data = vec![(step % 250) as u8 + 1; len as usize];
            disk.write(at, &data).unwrap();
            model[at as usize..(at + len) as usize].copy_from_slice(&data);
            if step % 3 == 0 {
                disk.sync_data().unwrap();
            }
            if step % 5 == 0 {
                disk.set_len(LEN_BYTES).unwrap();
            }
        }
        let mut out = vec![0u8; LEN_BYTES as usize];
        disk.read(0, &mut out).unwrap();
        assert!(out == model, "read-back differs from the model");
    }

    #[test]
    fn shrinking_then_growing_reads_zeros() {
        let disk = layer();
        disk.set_len(4 * 4096).unwrap();
        disk.write(0, &[7u8; 4 * 4096]).unwrap();
        disk.set_len(4096).unwrap();
        disk.set_len(4 * 4096).unwrap();
        let mut out = vec![1u8; 3 * 4096];
        disk.read(4096, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 0));
        let mut head = vec![0u8; 4096];
        disk.read(0, &mut head).unwrap();
        assert!(head.iter().all(|&b| b == 7));
    }
}
