//! minikv-raftstore: a store of region peers (multi-Raft), driven as a pure state machine.
//!
//! The environment (a test driver, later the madsim server) owns time and the network: it
//! calls `Store::tick`, delivers `RaftMessage`s with `Store::on_raft_message`, starts commands
//! with `Store::propose`, runs `Store::handle_ready` while `Store::has_ready`, and drains
//! `Store::take_outbound` and `Store::take_responses`. The store's only I/O is its engine:
//! Raft logs and states in the `raft` column family (synced before dependent messages leave),
//! applied data in the data column families together with the apply index.
//!
//! Modules depend downwards only. At the bottom: `types` (shared types), `cmd_check` (a
//! command against its region), `keys` and `cf` (where things live in the engine), `config`,
//! `error`, `events`, `lease`, `snap`; then `peer_storage`; `proposal` and `apply`; `peer`;
//! and `store` on top (`store::ready`: the Ready and write path; `store::lifecycle`: peers
//! created, recovered and destroyed).

mod apply;
pub mod cf;
mod cmd_check;
pub mod config;
pub mod error;
pub mod events;
pub mod keys;
mod lease;
mod peer;
pub mod peer_storage;
mod proposal;
pub mod snap;
pub mod store;
mod types;

pub use config::StoreConfig;
pub use error::{Error, Result};
pub use peer_storage::{PeerStorage, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
pub use store::{PeerStatus, Store, StoreStats};
pub use types::ReqToken;
