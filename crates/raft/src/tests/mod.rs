//! In-crate tests of the state machine, driven through `Raft` directly (`network` helps).

mod network;

mod conf_change_tests;
mod election;
mod hot_path;
mod read_index;
mod replication;
mod snapshot;
mod transfer;
mod units;
