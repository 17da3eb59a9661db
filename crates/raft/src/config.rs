//! Node configuration: timing in ticks, flow-control limits with units, and validation.

use minikv_proto::raftpb::{INVALID_ID, NodeId};

use crate::errors::{Error, Result};

/// How a leader serves linearizable reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a heartbeat round to a quorum for every read batch.
    #[default]
    Safe,
    /// Trust the leader lease (requires `check_quorum`; unsafe under unbounded clock drift).
    LeaseBased,
}

/// The configuration of one Raft node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's id; must not be `INVALID_ID`.
    pub id: NodeId,
    /// Base election timeout; the effective one is drawn in `[election_tick, 2 * election_tick)`.
    pub election_tick: usize,
    /// Ticks between leader heartbeats; must be smaller than `election_tick`.
    pub heartbeat_tick: usize,
    /// Last applied index on restart (entries up to it are not handed out again).
    pub applied: u64,
    /// Max bytes of entries in one Append message (at least one entry is always sent).
    pub max_size_per_msg_bytes: u64,
    /// Max Append messages in flight to one follower in Replicate state.
    pub max_inflight_msgs: usize,
    /// Proposals are dropped while the uncommitted tail exceeds this (0 = unlimited).
    pub max_uncommitted_size_bytes: u64,
    /// Run a pre-vote round before a real election (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum in an election timeout.
    pub check_quorum: bool,
    /// How linearizable reads are served.
    pub read_only_option: ReadOnlyOption,
    /// Do not broadcast an Append just because the commit index moved.
    pub skip_bcast_commit: bool,
    /// Leave out of a periodic heartbeat the followers that acknowledged an Append since the
    /// last one and to which it would add nothing: they know the commit index it would carry,
    /// have Appends in flight, or have a probe out (see `bcast_idle_heartbeat`).
    pub skip_idle_heartbeats: bool,
    /// Seeds the election-jitter generator (a ChaCha8 stream chosen by `id`); the only randomness.
    pub rng_seed: u64,
    /// Max bytes of committed entries handed out in one Ready (at least one entry always).
    pub max_committed_size_per_ready_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: INVALID_ID,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_msgs: 256,
            max_uncommitted_size_bytes: 0,
            pre_vote: false,
            check_quorum: false,
            read_only_option: ReadOnlyOption::Safe,
            skip_bcast_commit: false,
            skip_idle_heartbeats: false,
            rng_seed: 0,
            max_committed_size_per_ready_bytes: u64::MAX,
        }
    }
}

impl Config {
    /// A default configuration for node `id`.
    pub fn new(id: NodeId) -> Self {
        Config { id, ..Default::default() }
    }

    /// Rejects configurations that cannot work.
    pub fn validate(&self) -> Result<()> {
        let invalid = |s: &str| Err(Error::ConfigInvalid(s.to_string()));
        if self.id == INVALID_ID {
            return invalid("id must not be INVALID_ID (0)");
        }
        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be greater than 0");
        }
        if self.election_tick <= self.heartbeat_tick {
            return invalid("election_tick must be greater than heartbeat_tick");
        }
        if self.max_inflight_msgs == 0 {
            return invalid("max_inflight_msgs must be greater than 0");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return invalid("read_only_option LeaseBased requires check_quorum");
        }
        Ok(())
    }
}
