//! minikv-pd: the placement driver. Its pure parts decide (timestamps, ID windows, the region
//! tree and heartbeat staleness, operators and schedulers); `service` serves them on a PD node,
//! keeping every piece of state in the PD nodes' own Raft-replicated region (`storage`);
//! the PD client lives in `minikv-client` (re-exported here).

pub mod cluster;
pub mod ids;
pub mod meta;
pub mod schedule;
pub mod service;
pub mod storage;
pub mod tso;

pub use meta::{PdCounters, PdStats};
pub use minikv_client::pd::{PdClient, PdClientConfig, PdClientError, PdClientStats};
pub use service::{MAX_TSO_COUNT, PD_PORT, PD_REGION_ID, PdConfig, PdService};
