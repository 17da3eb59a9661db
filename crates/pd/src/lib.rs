//! minikv-pd: the placement driver. Its pure parts decide (timestamps, ID windows, the region
//! tree and heartbeat staleness, operators and schedulers); `service` serves them on a PD node,
//! keeping every piece of state in the PD nodes' own Raft-replicated region; `client` finds the
//! PD leader through redirects and retries.

pub mod cluster;
pub mod schedule;
