//! The disk's layout: a superblock sector, the write-ahead log's fixed partition, then redb's
//! file, each partition a [`StorageBackend`] of its own over the one raw backend.
//!
//! ```text
//! sector 0            superblock: magic, format version, WAL partition bytes, XXH64
//! 1 .. 1 + W/4096     the WAL partition (fixed size W, chosen when the disk is formatted)
//! 1 + W/4096 ..       redb's file (grows and shrinks with redb)
//! ```
//!
//! One raw backend serves both partitions, so that a real file is opened (and locked) once
//! and a simulated disk tears, crashes and fails both the same way. The superblock is
//! written and synced once, when a blank disk is first opened; the WAL partition size it
//! records wins over later configurations. A blank superblock (never written, or lost to a
//! crash before its sync) means a blank disk; a superblock that fails its checksum is
//! corruption, never a reason to reformat.

use std::io;
use std::ops::Bound;
use std::sync::Arc;

use redb::{BackendError, StorageBackend};

use super::{SECTOR_BYTES, SectorCorruption};
use crate::checksum::xxh64;

/// First bytes of the superblock.
const MAGIC: &[u8; 8] = b"minikv\0d";
/// Layout version written in the superblock.
const FORMAT_VERSION: u32 = 1;
/// Seed of the superblock's checksum.
const SUPERBLOCK_SEED: u64 = 0x7375_7065_7262_6c6b; // "superblk"
/// Bytes of the superblock that its checksum covers: magic, version, WAL bytes.
const SUPERBLOCK_BODY_BYTES: usize = 8 + 4 + 8;

/// Where each partition lives on the raw backend, in physical bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Physical bytes of the WAL partition.
    pub wal_physical_bytes: u64,
}

impl Layout {
    /// Physical offset of the WAL partition.
    pub const fn wal_base(&self) -> u64 {
        SECTOR_BYTES
    }

    /// Physical offset of redb's file.
    pub const fn db_base(&self) -> u64 {
        SECTOR_BYTES + self.wal_physical_bytes
    }

    fn encode(&self) -> Vec<u8> {
        let mut sector = vec![0u8; SECTOR_BYTES as usize];
        sector[..8].copy_from_slice(MAGIC);
        sector[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        sector[12..20].copy_from_slice(&self.wal_physical_bytes.to_le_bytes());
        let sum = xxh64(&sector[..SUPERBLOCK_BODY_BYTES], SUPERBLOCK_SEED);
        sector[SUPERBLOCK_BODY_BYTES..SUPERBLOCK_BODY_BYTES + 8]
            .copy_from_slice(&sum.to_le_bytes());
        sector
    }

    /// The layout a superblock image records; `Ok(None)` for a blank sector.
    fn decode(sector: &[u8]) -> io::Result<Option<Layout>> {
        if sector.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let corrupt = || io::Error::new(io::ErrorKind::InvalidData, SectorCorruption { sector: 0 });
        let stored = u64::from_le_bytes(
            sector[SUPERBLOCK_BODY_BYTES..SUPERBLOCK_BODY_BYTES + 8].try_into().expect("8 bytes"),
        );
        if &sector[..8] != MAGIC
            || stored != xxh64(&sector[..SUPERBLOCK_BODY_BYTES], SUPERBLOCK_SEED)
        {
            return Err(corrupt());
        }
        let version = u32::from_le_bytes(sector[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("disk layout version {version}, this build reads {FORMAT_VERSION}"),
            ));
        }
        let wal_physical_bytes = u64::from_le_bytes(sector[12..20].try_into().expect("8 bytes"));
        if wal_physical_bytes == 0 || !wal_physical_bytes.is_multiple_of(SECTOR_BYTES) {
            return Err(corrupt());
        }
        Ok(Some(Layout { wal_physical_bytes }))
    }
}

/// Reads the disk's layout, formatting a blank disk with a WAL partition of
/// `wal_physical_bytes` (a multiple of the sector size) first.
pub fn read_or_format(raw: &dyn StorageBackend, wal_physical_bytes: u64) -> io::Result<Layout> {
    assert!(
        wal_physical_bytes > 0 && wal_physical_bytes.is_multiple_of(SECTOR_BYTES),
        "WAL partition of {wal_physical_bytes} bytes is not a positive number of sectors"
    );
    if raw.len()? >= SECTOR_BYTES {
        let mut sector = vec![0u8; SECTOR_BYTES as usize];
        raw.read(0, &mut sector)?;
        if let Some(layout) = Layout::decode(&sector)? {
            return Ok(layout);
        }
    }
    // A blank disk. Whatever lies past the superblock was never made durable under a
    // superblock, so it is dropped: redb starts from an empty file.
    let layout = Layout { wal_physical_bytes };
    raw.set_len(0)?;
    raw.set_len(layout.db_base())?;
    raw.write(0, &layout.encode())?;
    raw.sync_data()?;
    Ok(layout)
}

/// One partition of a raw backend: `base..base + size` (no size: to the end of the backend,
/// growing and shrinking it).
pub struct Partition {
    raw: Arc<dyn StorageBackend>,
    base: u64,
    size: Option<u64>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("base", &self.base).field("size", &self.size).finish()
    }
}

impl Partition {
    /// The WAL partition of `layout` on `raw`.
    pub fn wal(raw: Arc<dyn StorageBackend>, layout: Layout) -> Partition {
        Partition { raw, base: layout.wal_base(), size: Some(layout.wal_physical_bytes) }
    }

    /// redb's file on `raw`: everything past the WAL partition. Takes the raw backend's locks.
    pub fn db(raw: Arc<dyn StorageBackend>, layout: Layout) -> Partition {
        Partition { raw, base: layout.db_base(), size: None }
    }

    /// Index of the partition's first sector on the raw backend.
    pub fn first_sector(&self) -> u64 {
        self.base / SECTOR_BYTES
    }

    fn check_range(&self, offset: u64, len: usize) -> io::Result<u64> {
        let end = offset.checked_add(len as u64);
        match (self.size, end) {
            (Some(size), Some(end)) if end > size => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{offset}..{end} is past the end of a {size}-byte partition"),
            )),
            (_, None) => Err(io::Error::new(io::ErrorKind::InvalidInput, "offset overflow")),
            _ => Ok(self.base + offset),
        }
    }

    fn is_db(&self) -> bool {
        self.size.is_none()
    }
}

impl StorageBackend for Partition {
    fn len(&self) -> Result<u64, io::Error> {
        let len = self.raw.len()?.saturating_sub(self.base);
        Ok(self.size.map_or(len, |size| len.min(size)))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let at = self.check_range(offset, out.len())?;
        self.raw.read(at, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        match self.size {
            None => self.raw.set_len(self.base + len),
            // A fixed partition never moves the end of the disk below the partitions after it.
            Some(size) if len <= size => {
                if self.raw.len()? < self.base + len {
                    self.raw.set_len(self.base + len)?;
                }
                Ok(())
            }
            Some(size) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("length {len} is past the end of a {size}-byte partition"),
            )),
        }
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.raw.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let at = self.check_range(offset, data.len())?;
        self.raw.write(at, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        if self.is_db() { self.raw.close() } else { Ok(()) }
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if self.is_db() { self.raw.try_lock_range(start, end) } else { Ok(true) }
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        if self.is_db() { self.raw.try_lock_shared_range(start, end) } else { Ok(true) }
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.is_db() { self.raw.lock_range(start, end) } else { Ok(()) }
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.is_db() { self.raw.lock_shared_range(start, end) } else { Ok(()) }
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if self.is_db() { self.raw.unlock_range(start, end) } else { Ok(()) }
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if self.is_db() { self.raw.query_lock_range(start, end) } else { Ok(false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    #[test]
    fn a_blank_disk_is_formatted_once_and_the_first_layout_wins() {
        let raw: Arc<dyn StorageBackend> = Arc::new(InMemoryBackend::new());
        let layout = read_or_format(raw.as_ref(), 8 * SECTOR_BYTES).unwrap();
        assert_eq!(layout.db_base(), 9 * SECTOR_BYTES);
        assert_eq!(raw.len().unwrap(), 9 * SECTOR_BYTES);
        let again = read_or_format(raw.as_ref(), 64 * SECTOR_BYTES).unwrap();
        assert_eq!(again, layout);
    }

    #[test]
    fn a_damaged_superblock_is_corruption_not_a_blank_disk() {
        let raw: Arc<dyn StorageBackend> = Arc::new(InMemoryBackend::new());
        read_or_format(raw.as_ref(), 8 * SECTOR_BYTES).unwrap();
        raw.write(13, &[0xff]).unwrap();
        let err = read_or_format(raw.as_ref(), 8 * SECTOR_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn partitions_translate_offsets_and_the_wal_cannot_spill_into_the_db() {
        let raw: Arc<dyn StorageBackend> = Arc::new(InMemoryBackend::new());
        let layout = read_or_format(raw.as_ref(), 2 * SECTOR_BYTES).unwrap();
        let wal = Partition::wal(raw.clone(), layout);
        let db = Partition::db(raw.clone(), layout);
        assert_eq!(db.len().unwrap(), 0);
        db.set_len(SECTOR_BYTES).unwrap();
        db.write(0, b"db").unwrap();
        wal.write(0, b"wal").unwrap();
        let mut buf = [0u8; 3];
        raw.read(SECTOR_BYTES, &mut buf).unwrap();
        assert_eq!(&buf, b"wal");
        raw.read(3 * SECTOR_BYTES, &mut buf[..2]).unwrap();
        assert_eq!(&buf[..2], b"db");
        assert_eq!(wal.len().unwrap(), 2 * SECTOR_BYTES);
        assert!(wal.write(2 * SECTOR_BYTES - 1, b"xx").is_err());
        // Shrinking the WAL partition never cuts the db.
        wal.set_len(0).unwrap();
        assert_eq!(db.len().unwrap(), SECTOR_BYTES);
    }
}
