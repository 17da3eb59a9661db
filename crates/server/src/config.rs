//! Node configuration: where it listens, where the other stores are, its tick length and its
//! bounds, each named with its unit.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minikv_proto::metapb::StoreId;
use minikv_raftstore::StoreConfig;

/// Tunables of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub store_id: StoreId,
    /// The address the node's endpoint binds (stores and clients send here).
    pub listen_addr: SocketAddr,
    /// Every store's address, this one's included (Raft messages are routed by store id).
    pub stores: BTreeMap<StoreId, SocketAddr>,
    /// Length of one Raft tick on the node's clock.
    pub tick_interval_ms: u64,
    /// After an idle loop wakes on a message, it keeps gathering messages this long before
    /// running Readies, so that one synced engine write covers all of them (0: run at once).
    pub ready_batch_window_ms: u64,
    /// Client requests waiting on the store at once; more are refused with `ServerIsBusy`.
    pub max_pending_requests: usize,
    /// Receive tasks per message tag. Under madsim every receive costs at least 1 ms of
    /// simulated time, so one task caps a tag at 1000 messages per simulated second and the
    /// rest queue up; several tasks receive in parallel.
    pub receive_tasks_per_tag: usize,
    pub store: StoreConfig,
}

impl NodeConfig {
    pub fn new(
        store_id: StoreId,
        stores: BTreeMap<StoreId, SocketAddr>,
        store: StoreConfig,
    ) -> NodeConfig {
        let listen_addr = *stores
            .get(&store_id)
            .unwrap_or_else(|| panic!("store {store_id} is not in the address map {stores:?}"));
        NodeConfig {
            store_id,
            listen_addr,
            stores,
            tick_interval_ms: 10,
            ready_batch_window_ms: 1,
            max_pending_requests: 4096,
            receive_tasks_per_tag: 32,
            store,
        }
    }
}
