//! The client's one error enum: what a caller learns when a request did not succeed.

use minikv_proto::errorpb::RegionError;

/// Why a client request did not succeed. `Unknown` is the only variant after which the
/// request may still have taken effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request may or may not have been applied (a write timed out, or failed after it
    /// could have been proposed). Histories record it as `info`.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The deadline passed and the request certainly had no effect (a read, or a write that
    /// was never sent).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A region refused the request in a way retrying cannot fix.
    #[error("region error: {0}")]
    Region(RegionError),
    /// The store refused the request for a reason of its own.
    #[error("store error: {0}")]
    Store(String),
    /// The transport failed to bind or encode.
    #[error("transport: {0}")]
    Transport(String),
}

impl Error {
    /// Whether the request may have taken effect.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Error::Unknown(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
