//! The crate's one error enum: why a node could not start or had to stop.

/// Why a node failed. After a store error the node stops; restart it from its disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] minikv_raftstore::Error),
    #[error("engine: {0}")]
    Engine(#[from] minikv_engine::Error),
    #[error("transport: {0}")]
    Transport(String),
    /// The configuration cannot work (names the field).
    #[error("config: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;
