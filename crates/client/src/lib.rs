//! minikv-client: the raw KV client (region and leader cache, retries with backoff, a deadline
//! per request, unknown outcomes reported as such; regions located through PD when it has PD
//! members) and the PD client. It runs on `minikv-runtime` (clock, alarms,
//! network endpoint), as the nodes do.

pub mod error;
pub mod pd;
pub mod raw;
pub mod region_cache;

pub use error::{Error, Result};
pub use pd::{PdClient, PdClientConfig, PdClientError, PdClientStats};
pub use raw::{ClientConfig, ClientStats, RawClient};
pub use region_cache::RegionCache;
