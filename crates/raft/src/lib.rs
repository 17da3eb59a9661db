//! minikv-raft: consensus as a pure state machine.
//!
//! Inputs are ticks, messages and proposals; outputs come out of a [`Ready`]: state to persist,
//! messages to send (only after persisting), committed entries to apply, read states to serve.
//! No I/O, no clock, no async; the only randomness is the election jitter, drawn from a
//! ChaCha8 stream seeded by [`Config::rng_seed`].

mod conf_change;
mod config;
mod errors;
mod leader;
mod log;
mod progress;
mod quorum;
mod raft;
mod raw_node;
mod read_only;
mod status;
mod storage;

#[cfg(test)]
mod tests;

pub use minikv_proto::raftpb::*;

pub use crate::conf_change::{ConfChangeKind, conf_change_kind};
pub use crate::config::{Config, ReadOnlyOption};
pub use crate::errors::{Error, Result, StorageError};
pub use crate::log::{RaftLog, Unstable};
pub use crate::progress::{Inflights, Progress, ProgressState, ProgressTracker, TrackerConfig};
pub use crate::quorum::{JointConfig, MajorityConfig, VoteResult};
pub use crate::raft::{CAMPAIGN_TRANSFER_CONTEXT, Raft, ReadState, SoftState, StateRole};
pub use crate::raw_node::{RawNode, Ready, SnapshotStatus};
pub use crate::read_only::{ReadIndexStatus, ReadOnly};
pub use crate::status::Status;
pub use crate::storage::{MemStorage, RaftState, Storage};
