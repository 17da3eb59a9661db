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
//! boundary sector twice. Held-back writes are as volatile as the disk's own write cache, and
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

/// Most bytes of writes held back before they are flushed to the disk below.
pub const WRITE_BACK_BYTES_MAX: usize = 4 << 20;

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
    held: Mutex<HeldWrites>,
}

/// Writes not yet sealed and passed down: disjoint extents by logical offset.
#[derive(Default)]
struct HeldWrites {
    extents: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

impl fmt::Debug for ChecksummedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChecksummedBackend").field("inner", &self.inner).finish()
    }
}

impl ChecksummedBackend {
    /// Wraps `inner`, whose contents must have been written through this layer (or be empty).
    pub fn new(inner: Box<dyn StorageBackend>) -> Self {
        Self { inner, held: Mutex::new(HeldWrites::default()) }
    }

    fn held(&self) -> MutexGuard<'_, HeldWrites> {
        // A panic while holding this lock already failed the run.
        self.held.lock().expect("held-writes lock poisoned")
    }

    /// Seals and passes down every held write, merging contiguous ones.
    fn flush(&self, held: &mut HeldWrites) -> io::Result<()> {
        let extents = std::mem::take(&mut held.extents);
        held.bytes = 0;
        let mut run: Option<(u64, Vec<u8>)> = None;
        for (offset, data) in extents {
            match &mut run {
                Some((start, buf)) if *start + buf.len() as u64 == offset => {
                    buf.extend_from_slice(&data)
                }
                _ => {
                    if let Some((start, buf)) = run.take() {
                        self.write_through(start, &buf)?;
                    }
                    run = Some((offset, data));
                }
            }
        }
        if let Some((start, buf)) = run {
            self.write_through(start, &buf)?;
        }
        Ok(())
    }

    /// Seals the sectors under logical bytes `offset..offset + data.len()` and writes them.
    fn write_through(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let (first, last) = sector_span(offset, data.len() as u64);
        let end = offset + data.len() as u64;
        let head_partial = !offset.is_multiple_of(PAYLOAD_BYTES);
        let tail_partial = !end.is_multiple_of(PAYLOAD_BYTES);
        let span_bytes = ((last - first + 1) * SECTOR_BYTES) as usize;
        // Partially covered sectors keep their other bytes: read them (verified, so that
        // corruption is never resealed as good data) before overwriting.
        let mut buf = if (head_partial || tail_partial) && last - first <= 1 {
            self.read_sectors(first, last)?
        } else {
            let mut buf = vec![0u8; span_bytes];
            let sector_bytes = SECTOR_BYTES as usize;
            if head_partial {
                buf[..sector_bytes].copy_from_slice(&self.read_sectors(first, first)?);
            }
            if tail_partial {
                buf[span_bytes - sector_bytes..].copy_from_slice(&self.read_sectors(last, last)?);
            }
            buf
        };
        let mut logical = offset;
        let mut copied = 0usize;
        while copied < data.len() {
            let sector = logical / PAYLOAD_BYTES;
            let within = logical % PAYLOAD_BYTES;
            let n = ((PAYLOAD_BYTES - within) as usize).min(data.len() - copied);
            let start = ((sector - first) * SECTOR_BYTES + within) as usize;
            buf[start..start + n].copy_from_slice(&data[copied..copied + n]);
            copied += n;
            logical += n as u64;
        }
        for (i, image) in buf.chunks_exact_mut(SECTOR_BYTES as usize).enumerate() {
            let (payload, sum) = image.split_at_mut(PAYLOAD_BYTES as usize);
            sum.copy_from_slice(&seal(first + i as u64, payload).to_le_bytes());
        }
        self.inner.write(first * SECTOR_BYTES, &buf)
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
        self.inner.read(first * SECTOR_BYTES, &mut buf)?;
        for (i, image) in buf.chunks_exact(SECTOR_BYTES as usize).enumerate() {
            verify(first + i as u64, image)?;
        }
        Ok(buf)
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
        let old = self.len()?;
        if len < old && !len.is_multiple_of(PAYLOAD_BYTES) {
            // The last kept sector still holds payload past the new end; zero it so that a
            // later growth reads zeros there, as the StorageBackend contract demands.
            let sector = len / PAYLOAD_BYTES;
            let mut image = self.read_sectors(sector, sector)?;
            let within = (len % PAYLOAD_BYTES) as usize;
            image[within..PAYLOAD_BYTES as usize].fill(0);
            let sum = seal(sector, &image[..PAYLOAD_BYTES as usize]);
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
        let end = offset + data.len() as u64;
        let overlaps = held
            .extents
            .range(..end)
            .next_back()
            .is_some_and(|(start, d)| start + d.len() as u64 > offset);
        if overlaps || held.bytes + data.len() > WRITE_BACK_BYTES_MAX {
            self.flush(&mut held)?;
        }
        held.bytes += data.len();
        held.extents.insert(offset, data.to_vec());
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
