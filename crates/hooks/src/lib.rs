//! Simulation hooks in the store's own code: canary switches (planted bugs, for proving the
//! checks can fail), BUGGIFY points (rare but legal paths the simulator switches on) and code
//! probes (rare paths that mark themselves, so tests and sweeps can tell they were reached).
//!
//! Off the simulator (`cfg(not(madsim))`) canaries and BUGGIFY points are constant `false`,
//! and probes count only in debug builds (for tests). Under madsim the harness opens a
//! [`Session`] per run on the run's thread (madsim runs a whole simulation on one thread);
//! the hooks read and write that thread's session, so parallel sweeps never share one.

mod message;
mod registry;
mod session;

pub use message::{MESSAGE_KINDS, MessageAction, MessageFault, MessageRule};
pub use session::{
    Session, SessionConfig, SessionError, Tally, probe_hits, set_message_rule, strike_at,
};

registry! {
    /// A planted bug. Each exists only in simulation builds; `cargo xtask canaries` measures
    /// how fast the standard sweep catches each one.
    pub enum Canary {
        /// A leader acknowledges a put or delete as soon as it is proposed, before it commits:
        /// a leader that is cut off acknowledges writes that are then lost.
        EarlyAcks = ("early-acks", 0),
        /// A store panics on its 50th client command (a crash must be reported as one).
        StorePanic = ("store-panic", 0),
        /// Raft's Figure 8: a leader commits an entry of an earlier term by counting the
        /// replicas that hold it, so a later leader can overwrite a committed entry.
        RaftFigure8 = ("raft-figure-8", 0),
        /// A node grants its vote without checking that the candidate's log is at least as
        /// up to date as its own: a leader without committed entries can be elected.
        RaftVoteIgnoresLog = ("raft-vote-ignores-log", 0),
        /// A node's vote is not made durable: after a restart it can vote twice in one term.
        RaftForgetsVote = ("raft-forgets-vote", 0),
        /// A follower takes the leader's commit index as is, not capped at the last entry the
        /// Append proved it shares with the leader: it can apply a stale suffix.
        RaftFollowerCommitUnchecked = ("raft-follower-commit-unchecked", 0),
        /// The leader lease keeps no margin for clock drift: it lasts the whole election
        /// timeout, so a leader whose clock runs slow serves reads after it was deposed.
        LeaseNoDriftMargin = ("lease-no-drift-margin", 0),
        /// A leader serves reads from its own state without confirming it is still leader (no
        /// ReadIndex round): a deposed leader answers stale reads.
        ReadWithoutQuorum = ("read-without-quorum", 0),
        /// A snapshot leaves out the last key of its region: a follower that catches up by
        /// snapshot diverges.
        SnapshotDropsKey = ("snapshot-drops-key", 0),
        /// The engine acknowledges durable writes without syncing them: a power loss drops
        /// Raft log entries and votes the node has already promised.
        EngineSkipsSync = ("engine-skips-sync", 0),
        /// The client reports a write whose outcome it does not know (a timeout) as failed.
        ClientTimeoutIsFail = ("client-timeout-is-fail", 0),
        /// A PD node that owns the TSO bound serves timestamps without reading the bound again
        /// (no linearizable read per batch): a deposed PD leader serves timestamps below those
        /// its successor already served.
        TsoTrustsItsCache = ("tso-trusts-its-cache", 0),
        /// A PD node that takes the TSO over starts from its own clock, not above the bound
        /// its predecessor saved: with its clock behind, it serves timestamps already passed.
        TsoIgnoresSavedBound = ("tso-ignores-saved-bound", 0),
        /// PD's replica checker takes every peer for healthy, a down store's included: a
        /// region that lost a replica for good is never repaired.
        PdIgnoresDownStores = ("pd-ignores-down-stores", 0),
    }
}

registry! {
    /// A BUGGIFY point: a rare but legal path. In a simulated run with BUGGIFY on, each point
    /// is enabled with the session's probability and, when enabled, fires on each pass with its
    /// own probability (the number in parts per million).
    pub enum Point {
        /// A leader sends an Append with one entry even when more are ready.
        RaftSplitAppend = ("raft-split-append", 300_000),
        /// A randomized election timeout is drawn at its smallest value.
        RaftElectionTimeoutEarliest = ("raft-election-timeout-earliest", 300_000),
        /// A leader skips one heartbeat round.
        RaftSkipHeartbeat = ("raft-skip-heartbeat", 100_000),
        /// A leader probing a follower starts a few entries further back than it needs to.
        RaftProbeFromEarlier = ("raft-probe-from-earlier", 300_000),
        /// A leader sends at most one Append in flight to a follower this time (a shrunk window).
        RaftInflightOne = ("raft-inflight-one", 300_000),
        /// A store answers a snapshot request with "temporarily unavailable".
        StoreSnapshotUnavailable = ("store-snapshot-unavailable", 300_000),
        /// A leader compacts its log on a GC tick down to what every peer has, even below the
        /// thresholds.
        StoreForceLogGc = ("store-force-log-gc", 300_000),
        /// A client's request deadline is at its earliest: the request times out sooner.
        ClientTimeoutEarliest = ("client-timeout-earliest", 200_000),
        /// A client forgets the leader it cached and sends the request to another peer, which
        /// redirects it (as a client that just started, or a second client, would).
        ClientForgetLeader = ("client-forget-leader", 100_000),
        /// A PD node saves the TSO bound only a few milliseconds ahead of its clock, so it
        /// raises the bound (a Raft write) every few batches.
        PdTsoWindowShort = ("pd-tso-window-short", 500_000),
    }
}

registry! {
    /// A code probe: a rare path in the store that marks itself when taken, or a moment of its
    /// write path the simulator can strike at (`faults.strike`).
    pub enum Probe {
        /// A node granted its vote to a candidate (the vote is to be made durable).
        RaftVoteGranted = ("raft-vote-granted", 0),
        /// A node became leader and appended its no-op entry, which has not left yet.
        RaftBecameLeader = ("raft-became-leader", 0),
        /// A follower found a conflicting entry and truncated its log suffix.
        RaftLogConflictTruncated = ("raft-log-conflict-truncated", 0),
        /// A leader stepped down because it could not hear from a quorum (check quorum).
        RaftCheckQuorumStepDown = ("raft-check-quorum-step-down", 0),
        /// A quorum holds an uncommitted entry of an earlier term: Raft's leader must not commit
        /// it by counting (Figure 8), only with an entry of its own term.
        RaftCommitWaitsForOwnTerm = ("raft-commit-waits-for-own-term", 0),
        /// A node refused its vote to a candidate because it had voted for another in the term.
        RaftVoteRefusedAlreadyVoted = ("raft-vote-refused-already-voted", 0),
        /// A follower installed a snapshot.
        StoreSnapshotApplied = ("store-snapshot-applied", 0),
        /// A leader compacted its Raft log.
        StoreLogCompacted = ("store-log-compacted", 0),
        /// A store's clock jumped back: its ticks were rescheduled and its leases ended.
        StoreClockJumpedBack = ("store-clock-jumped-back", 0),
        /// A lease was fenced or expired by a gap in the ticks.
        StoreLeaseFenced = ("store-lease-fenced", 0),
        /// A client saw an outcome it cannot know (a write timed out or its answer was lost).
        ClientUnknownOutcome = ("client-unknown-outcome", 0),
        /// A PD node raised the saved TSO bound.
        PdTsoBoundRaised = ("pd-tso-bound-raised", 0),
        /// A PD node found the TSO bound moved by another node (it must raise it before
        /// serving).
        PdTsoBoundLost = ("pd-tso-bound-lost", 0),
        /// A PD node sent a client to the PD leader.
        PdRedirected = ("pd-redirected", 0),
    }
}

/// Whether the planted bug `c` is switched on in this run. Always `false` off the simulator.
#[inline(always)]
pub fn canary(c: Canary) -> bool {
    #[cfg(madsim)]
    {
        session::canary_on(c)
    }
    #[cfg(not(madsim))]
    {
        let _ = c;
        false
    }
}

/// Whether BUGGIFY point `p` fires now. Always `false` off the simulator.
#[inline(always)]
pub fn buggify(p: Point) -> bool {
    #[cfg(madsim)]
    {
        session::buggify_fires(p)
    }
    #[cfg(not(madsim))]
    {
        let _ = p;
        false
    }
}

/// Marks that the rare path `p` was taken. Counts under madsim and in debug builds (tests);
/// nothing in a release build off the simulator.
#[inline(always)]
pub fn probe(p: Probe) {
    #[cfg(any(madsim, debug_assertions))]
    session::probe_hit(p);
    #[cfg(not(any(madsim, debug_assertions)))]
    let _ = p;
}

/// Whether a message rule is in force (the send path skips [`message_fault`] when not).
/// Always `false` off the simulator.
#[inline(always)]
pub fn message_rule_set() -> bool {
    #[cfg(madsim)]
    {
        session::message_rule_set()
    }
    #[cfg(not(madsim))]
    {
        false
    }
}

/// What to do with a Raft message of `kind` (a [`MESSAGE_KINDS`] name) that store `from_store`
/// sends to `to_store` for `region`, under the message rule the simulator set. Always
/// [`MessageFault::Deliver`] off the simulator.
#[inline(always)]
pub fn message_fault(from_store: u64, to_store: u64, region: u64, kind: &str) -> MessageFault {
    #[cfg(madsim)]
    {
        session::message_fault(from_store, to_store, region, kind)
    }
    #[cfg(not(madsim))]
    {
        let _ = (from_store, to_store, region, kind);
        MessageFault::Deliver
    }
}
