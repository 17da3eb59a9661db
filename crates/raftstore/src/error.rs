//! The crate's one error enum: failures of the store's own machinery (not region errors, which
//! are answers to clients and live in `minikv_proto::errorpb`).

use minikv_proto::metapb::RegionId;

/// Why a store operation failed. After an `Engine` error during `handle_ready` the store is
/// poisoned: drop it and reopen it from its disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("engine: {0}")]
    Engine(#[from] minikv_engine::Error),
    #[error("codec: {0}")]
    Codec(#[from] minikv_proto::CodecError),
    #[error("raft: {0}")]
    Raft(#[from] minikv_raft::Error),
    #[error("region {0} already exists on this store")]
    RegionExists(RegionId),
    #[error("invalid bootstrap region: {0}")]
    InvalidBootstrap(String),
    #[error("the store is poisoned by an earlier engine failure; reopen it from its disk")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, Error>;
