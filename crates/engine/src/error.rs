//! The engine's one error type, and how redb's errors map onto it.

use std::io;

use crate::disk::{DiskDetached, SectorCorruption};

/// Everything an engine operation can fail with. Expected conditions only: a broken
/// invariant of the engine itself panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The disk failed an operation (EIO and the like). The engine has reopened itself on
    /// the last synced state; writes acknowledged without sync may be gone, as after a crash.
    #[error("I/O error during {op}: {detail}")]
    Io { op: &'static str, detail: String },
    /// The disk is full (ENOSPC). The write was not applied; reads keep working, and writes
    /// work again once space is freed.
    #[error("disk full during {op}: {detail}")]
    NoSpace { op: &'static str, detail: String },
    /// Stored data failed a checksum (`sector` is set when the sector-checksum layer caught
    /// it) or redb found its structures inconsistent. Nothing corrupt was returned.
    #[error("corruption detected during {op} (sector {sector:?}): {detail}")]
    Corruption { op: &'static str, sector: Option<u64>, detail: String },
    /// The simulated disk crashed under this engine: its process is dead for the simulation.
    /// Every later call fails the same way; open a new engine on the disk.
    #[error("the disk crashed under the engine during {op}; open a new engine")]
    Detached { op: &'static str },
    /// A key or value is larger than redb accepts.
    #[error("key or value of {bytes} bytes is too large")]
    TooLarge { bytes: usize },
    /// Any other failure reported by redb (a bug or misuse rather than a disk fault).
    #[error("storage error during {op}: {detail}")]
    Storage { op: &'static str, detail: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether redb's handle is unusable after this error and must be reopened.
    pub(crate) fn needs_reopen(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::NoSpace { .. } | Error::Corruption { .. })
    }

    pub(crate) fn from_io(op: &'static str, err: &io::Error) -> Error {
        if let Some(inner) = err.get_ref() {
            if inner.downcast_ref::<DiskDetached>().is_some() {
                return Error::Detached { op };
            }
            if let Some(c) = inner.downcast_ref::<SectorCorruption>() {
                return Error::Corruption { op, sector: Some(c.sector), detail: c.to_string() };
            }
        }
        let detail = err.to_string();
        match err.kind() {
            io::ErrorKind::StorageFull => Error::NoSpace { op, detail },
            io::ErrorKind::InvalidData => Error::Corruption { op, sector: None, detail },
            _ => Error::Io { op, detail },
        }
    }

    pub(crate) fn from_redb(op: &'static str, err: redb::Error) -> Error {
        match err {
            redb::Error::Io(io) => Error::from_io(op, &io),
            redb::Error::Corrupted(detail) => Error::Corruption { op, sector: None, detail },
            redb::Error::ValueTooLarge(bytes) => Error::TooLarge { bytes },
            redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
                Error::Io { op, detail: err.to_string() }
            }
            // Every column family's table is created when the engine opens: one that has
            // vanished means the table directory no longer says what was written.
            redb::Error::TableDoesNotExist(table) => {
                Error::Corruption { op, sector: None, detail: format!("table {table} is missing") }
            }
            other => Error::Storage { op, detail: other.to_string() },
        }
    }
}
