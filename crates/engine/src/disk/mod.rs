//! Disks under the engine: where its bytes live and how a fresh redb backend is opened on them.
//!
//! A [`Disk`] hands out raw redb [`StorageBackend`]s; the engine wraps every one of them in the
//! sector-checksum layer ([`integrity`]) before redb sees it, so both the real file and the
//! simulated disk are verified the same way.

pub mod file;
pub mod integrity;
pub mod partition;
pub mod sim;

use std::fmt;
use std::io;

use redb::StorageBackend;

pub use file::FileDisk;
pub use sim::{FaultCounters, SimDisk, SimDiskBackend, SimDiskConfig};

/// Bytes in one disk sector: the unit that the simulated disk tears at, and that the
/// integrity layer seals with a checksum.
pub const SECTOR_BYTES: u64 = 4096;

/// A disk an engine can (re)open. The engine opens a new backend at start-up and again after
/// an I/O error, because redb refuses all further work on a backend once one of its operations
/// has failed.
pub trait Disk: fmt::Debug + Send + Sync {
    /// Opens a fresh raw backend on this disk. Any backend opened before is no longer used.
    fn open_backend(&self) -> io::Result<Box<dyn StorageBackend>>;

    /// A new process is about to open an engine on this disk ([`crate::Engine::open`]); the
    /// engine's own reopens after a fault do not call this. A real file needs nothing: a live
    /// database elsewhere holds the file's lock, and redb refuses the open. The simulated disk
    /// ends the previous process ([`SimDisk::process_exit`]), whose engine a simulation may still
    /// hold after "killing" it: without that, the dead process's database and the new one would
    /// both write the disk (or, with the lock, the dead one would block every restart).
    fn start_process(&self) {}

    /// How much of the disk the engine's bytes take, and how much it can hold.
    fn usage(&self) -> io::Result<DiskUsage>;
}

/// Space on a disk, as a store reports it to PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub used_bytes: u64,
    /// `None`: no limit is known (a file on a file system we do not measure).
    pub capacity_bytes: Option<u64>,
}

/// Marks an I/O error raised because a sector failed its checksum; the engine turns it into
/// [`crate::Error::Corruption`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectorCorruption {
    /// Index of the physical sector that failed its checksum.
    pub sector: u64,
}

impl fmt::Display for SectorCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sector {} failed its checksum", self.sector)
    }
}

impl std::error::Error for SectorCorruption {}

/// Marks an I/O error raised through a simulated-disk backend that outlived a crash of its
/// disk: the process that held it is, for the simulation, dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskDetached;

impl fmt::Display for DiskDetached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the disk crashed under this backend; reopen the engine")
    }
}

impl std::error::Error for DiskDetached {}
