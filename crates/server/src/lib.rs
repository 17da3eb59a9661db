//! minikv-server: a node is a `Store` plus its RPC surface over `madsim::net` (real TCP
//! outside simulation). One event loop per node; see `node`.
//!
//! `sim_cluster` (only under `cfg(madsim)`) builds whole clusters of nodes on simulated disks
//! for tests and benchmarks.

pub mod batch;
pub mod config;
pub mod convert;
pub mod error;
mod message_faults;
pub mod node;
pub mod pd_worker;
pub mod probe;
#[cfg(madsim)]
pub mod sim_cluster;

pub use config::NodeConfig;
pub use error::{Error, Result};
pub use node::Node;
pub use probe::{NodeProbe, ProbeState};
