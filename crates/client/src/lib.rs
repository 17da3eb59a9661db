//! minikv-client: the raw KV client (region and leader cache, retries with backoff, a deadline
//! per request, unknown outcomes reported as such) and the per-node `Clock` every
//! time-dependent decision of a node reads.

pub mod alarm;
pub mod clock;
pub mod error;
pub mod net;
pub mod raw;
pub mod region_cache;

pub use clock::Clock;
pub use error::{Error, Result};
pub use raw::{ClientConfig, ClientStats, RawClient};
pub use region_cache::RegionCache;
