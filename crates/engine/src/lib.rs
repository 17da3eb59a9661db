//! minikv-engine: ordered KV with column families over a pluggable disk.
//!
//! See [`docs`] for the storage model, what redb detects and what this crate adds.

pub mod batch;
pub mod cf;
pub mod checksum;
pub mod disk;
pub mod docs;
pub mod engine;
pub mod error;
pub mod memtable;
pub mod wal;

pub use batch::{Mutation, WriteBatch};
pub use cf::Cf;
pub use disk::{Disk, DiskUsage, FaultCounters, FileDisk, SimDisk, SimDiskBackend, SimDiskConfig};
pub use engine::{Engine, EngineConfig, EngineSnapshot, EngineStats, KvPair};
pub use error::{Error, Result};
