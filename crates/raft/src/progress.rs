//! The leader's view of each peer: `Progress` (probe / replicate / snapshot), the bounded
//! in-flight window `Inflights`, and the `ProgressTracker` with its (joint) configuration.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use minikv_proto::raftpb::{ConfState, NodeId};

use crate::quorum::{JointConfig, VoteResult};

/// How the leader currently replicates to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressState {
    /// Unknown match: send one Append per heartbeat interval until the follower accepts.
    #[default]
    Probe,
    /// Known match: stream Appends optimistically, bounded by the in-flight window.
    Replicate,
    /// A snapshot is on its way; send nothing until it is reported.
    Snapshot,
}

/// Last indexes of Append messages sent but not acknowledged, at most `capacity` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inflights {
    pending: VecDeque<u64>,
    capacity: usize,
}

impl Inflights {
    pub fn new(capacity: usize) -> Self {
        Inflights { pending: VecDeque::with_capacity(capacity), capacity }
    }

    pub fn full(&self) -> bool {
        self.pending.len() >= self.capacity
    }

    pub fn count(&self) -> usize {
        self.pending.len()
    }

    /// Records an Append ending at `last_index`; indexes must increase.
    pub fn add(&mut self, last_index: u64) {
        assert!(!self.full(), "inflight window of {} is full", self.capacity);
        if let Some(&back) = self.pending.back() {
            assert!(last_index > back, "inflight {last_index} not after {back}");
        }
        self.pending.push_back(last_index);
    }

    /// Frees every in-flight Append ending at or before `index`.
    pub fn free_to(&mut self, index: u64) {
        while self.pending.front().is_some_and(|&i| i <= index) {
            self.pending.pop_front();
        }
    }

    pub fn free_first_one(&mut self) {
        self.pending.pop_front();
    }

    pub fn reset(&mut self) {
        self.pending.clear();
    }
}

/// Replication progress of one peer. Invariant: `matched < next_idx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be replicated on the peer.
    pub matched: u64,
    /// Next index to send.
    pub next_idx: u64,
    pub state: ProgressState,
    /// In Probe: one Append was sent and no answer came yet.
    pub probe_sent: bool,
    /// In Snapshot: index of the snapshot being sent.
    pub pending_snapshot: u64,
    /// Heard from in the current check-quorum interval.
    pub recent_active: bool,
    pub inflights: Inflights,
    pub is_learner: bool,
    /// `matched` when the previous heartbeat response came: in Replicate, an unchanged value
    /// one heartbeat later means the in-flight Appends may be lost.
    pub matched_at_heartbeat: u64,
    /// The peer acknowledged an Append since the last periodic heartbeat, and the highest
    /// commit index it was sent (see `bcast_idle_heartbeat`).
    pub acked_since_heartbeat: bool,
    pub commit_sent: u64,
}

impl Progress {
    pub fn new(next_idx: u64, max_inflight_msgs: usize) -> Self {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recent_active: false,
            inflights: Inflights::new(max_inflight_msgs),
            is_learner: false,
            matched_at_heartbeat: 0,
            acked_since_heartbeat: false,
            commit_sent: 0,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub fn become_probe(&mut self) {
        // After a snapshot, the peer has at least the snapshot's entries.
        let floor = if self.state == ProgressState::Snapshot { self.pending_snapshot } else { 0 };
        self.reset_state(ProgressState::Probe);
        self.next_idx = (self.matched + 1).max(floor + 1);
    }

    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// The peer acknowledged `n`; returns whether `matched` moved.
    pub fn maybe_update(&mut self, n: u64) -> bool {
        let updated = self.matched < n;
        if updated {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(n + 1);
        updated
    }

    /// In Replicate: entries up to `n` are on their way.
    pub fn optimistic_update(&mut self, n: u64) {
        self.next_idx = n + 1;
    }

    /// The peer rejected an Append at `rejected`; moves `next_idx` back toward `match_hint + 1`.
    /// Returns false for a stale rejection.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected.min(match_hint + 1).max(self.matched + 1).max(1);
        self.probe_sent = false;
        true
    }

    /// No Append should be sent now (probe outstanding, window full, or snapshot in flight).
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

/// Membership as the tracker sees it (mirrors `ConfState`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    pub voters: JointConfig,
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing half that become learners once the joint configuration is left.
    pub learners_next: BTreeSet<NodeId>,
    pub auto_leave: bool,
}

impl TrackerConfig {
    pub fn from_conf_state(cs: &ConfState) -> Self {
        TrackerConfig {
            voters: JointConfig {
                incoming: crate::quorum::MajorityConfig::new(cs.voters.iter().copied().collect()),
                outgoing: crate::quorum::MajorityConfig::new(
                    cs.voters_outgoing.iter().copied().collect(),
                ),
            },
            learners: cs.learners.iter().copied().collect(),
            learners_next: cs.learners_next.iter().copied().collect(),
            auto_leave: cs.auto_leave,
        }
    }

    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.voters.iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }
}

/// The configuration plus every member's progress and vote.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    pub conf: TrackerConfig,
    /// One entry per voter (either half) and learner, and no other.
    pub progress: BTreeMap<NodeId, Progress>,
    pub votes: BTreeMap<NodeId, bool>,
    pub max_inflight_msgs: usize,
}

impl ProgressTracker {
    pub fn new(max_inflight_msgs: usize) -> Self {
        ProgressTracker {
            conf: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight_msgs,
        }
    }

    pub fn conf_state(&self) -> ConfState {
        self.conf.to_conf_state()
    }

    pub fn is_singleton(&self) -> bool {
        self.conf.voters.incoming.voters.len() == 1 && !self.conf.voters.is_joint()
    }

    /// The largest index replicated on a (joint) quorum of voters.
    pub fn committed(&self) -> u64 {
        let progress = &self.progress;
        self.conf.voters.committed_index(|id| progress.get(&id).map(|p| p.matched))
    }

    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote (the first one counts).
    pub fn record_vote(&mut self, id: NodeId, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// Granted and rejected counts among voters, and the result.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for id in self.conf.voters.ids() {
            match self.votes.get(&id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        (granted, rejected, self.vote_result(&self.votes))
    }

    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        self.conf.voters.vote_result(|id| votes.get(&id).copied())
    }

    /// Result of an ack round (read index): everyone in `acks` counts as granted.
    pub fn ack_result(&self, acks: &BTreeSet<NodeId>) -> VoteResult {
        self.conf.voters.vote_result(|id| acks.contains(&id).then_some(true))
    }

    /// Whether a quorum was recently active (counting `self_id`), then clears the flags.
    pub fn quorum_recently_active(&mut self, self_id: NodeId) -> bool {
        let mut active = BTreeSet::new();
        for (&id, pr) in &mut self.progress {
            if id == self_id {
                pr.recent_active = true;
            }
            if pr.recent_active && !pr.is_learner {
                active.insert(id);
            }
            if id != self_id {
                pr.recent_active = false;
            }
        }
        self.ack_result(&active) == VoteResult::Won
    }
}
