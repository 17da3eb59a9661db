//! The crate's one error enum: expected conditions callers can handle (broken invariants panic).

use thiserror::Error;

/// Why a storage read or write could not be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorageError {
    /// The requested index is at or below the first index: compacted away into a snapshot.
    #[error("log compacted: requested index is older than the first available index")]
    Compacted,
    /// The requested index is past the last index.
    #[error("log unavailable: requested index is newer than the last index")]
    Unavailable,
    /// The snapshot offered is older than the one already applied.
    #[error("snapshot out of date: an equal or newer snapshot is already applied")]
    SnapshotOutOfDate,
    /// A snapshot is being built; ask again later.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Anything else the backing store reports.
    #[error("storage error: {0}")]
    Other(String),
}

/// Every expected failure of the Raft core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The proposal was not accepted (no leader, leader transfer in progress, size limit, ...).
    #[error("proposal dropped")]
    ProposalDropped,
    /// A local-only message type arrived through `step` from the network.
    #[error("cannot step a local message type from the network")]
    StepLocalMsg,
    /// A response came from a peer that is not in the configuration.
    #[error("cannot step a response from a peer that is not in the configuration")]
    StepPeerNotFound,
    /// The configuration failed validation.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StorageError),
    /// A conf change could not be applied to the current configuration.
    #[error("conf change error: {0}")]
    ConfChangeError(String),
    /// An entry or message could not be decoded.
    #[error("codec error: {0}")]
    Codec(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
