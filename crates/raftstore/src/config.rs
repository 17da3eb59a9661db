//! Store configuration: Raft timing in ticks and every queue and limit, named with its unit.

/// Tunables of a store and of every peer it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Base Raft election timeout (randomized in `[t, 2t)` by the Raft core).
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Max bytes of entries in one Append (but at least one entry).
    pub max_size_per_msg_bytes: u64,
    /// Largest command a client may propose (its encoding); bigger ones are refused, so that
    /// an Append, which carries at least one entry, always fits in a message.
    pub raft_entry_max_size_bytes: u64,
    pub max_inflight_msgs: usize,
    /// Proposals plus reads waiting in one peer; more are refused with `ServerIsBusy`.
    pub max_pending_proposals_per_peer: usize,
    /// A leader checks whether to compact its log every this many ticks.
    pub raft_log_gc_tick_interval_ticks: u64,
    /// Compact to the applied index when more entries than this are kept.
    pub raft_log_gc_count_limit: u64,
    /// Compact to the applied index when the kept entries weigh more than this.
    pub raft_log_gc_size_limit_bytes: u64,
    /// Compact to what every peer has when at least this many entries can go.
    pub raft_log_gc_threshold_entries: u64,
    /// Snapshot data is sent in chunks of at most this many bytes.
    pub snapshot_chunk_size_bytes: usize,
    /// A snapshot the follower has not acknowledged after this many ticks is sent again.
    pub snapshot_timeout_ticks: u64,
    /// Most chunks one snapshot may be cut into (bounds a receiver's assembly buffer).
    pub max_snapshot_chunks: u32,
    /// Seeds the Raft cores' election jitter (each peer draws its own stream).
    pub rng_seed: u64,
    /// Serve reads on the leader from a lease instead of a ReadIndex round each (see
    /// `lease.rs`). Off by default: a lease serves half of `election_tick -
    /// lease_margin_ticks` ticks after its evidence, while no other leader can be elected in
    /// fewer than `election_tick` ticks of another store's clock, so it is safe only while the
    /// clocks' rates stay within that ratio (about 25% fast or slow each with the defaults);
    /// a clock that stalls or drifts further breaks it (a jump back ends it: see the node). Must be the same on every store (it also makes a restarted
    /// store refuse votes for its first `election_tick` ticks).
    pub lease_read: bool,
    /// How many ticks before the earliest possible election the lease ends.
    pub lease_margin_ticks: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg_bytes: 1 << 20,
            raft_entry_max_size_bytes: 1 << 20,
            max_inflight_msgs: 256,
            max_pending_proposals_per_peer: 1024,
            raft_log_gc_tick_interval_ticks: 10,
            raft_log_gc_count_limit: 10_000,
            raft_log_gc_size_limit_bytes: 64 << 20,
            raft_log_gc_threshold_entries: 50,
            snapshot_chunk_size_bytes: 1 << 20,
            snapshot_timeout_ticks: 50,
            max_snapshot_chunks: 1 << 16,
            rng_seed: 0,
            lease_read: false,
            lease_margin_ticks: 2,
        }
    }
}
