//! The Raft state machine: terms, roles, elections (pre-vote, check-quorum), the follower and
//! candidate sides of `step`. The leader side lives in `leader.rs`.

use minikv_hooks::{Canary, Point, Probe, buggify, canary, probe};
use minikv_proto::raftpb::{
    ConfChangeV2, Entry, EntryType, HardState, INVALID_ID, Message, MessageType, NodeId, Snapshot,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::conf_change::Changer;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::log::RaftLog;
use crate::progress::{Progress, ProgressTracker, TrackerConfig};
use crate::quorum::VoteResult;
use crate::read_only::ReadOnly;
use crate::storage::Storage;

/// Vote requests sent because of a leader transfer carry this context: receivers grant them even
/// inside a leader lease.
pub const CAMPAIGN_TRANSFER_CONTEXT: &[u8] = b"minikv-raft/campaign-transfer";

/// The role a node plays in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateRole {
    #[default]
    Follower,
    Candidate,
    PreCandidate,
    Leader,
}

/// State that changes often and need not be persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    pub leader_id: NodeId,
    pub role: StateRole,
}

/// A linearizable read is safe at `index` once the state machine has applied it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadState {
    pub index: u64,
    pub request_ctx: Vec<u8>,
}

/// What an election round is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignKind {
    PreElection,
    Election,
    Transfer,
}

/// One Raft peer. Fields are crate-visible so tests can set up exact situations.
#[derive(Debug)]
pub struct Raft<S: Storage> {
    pub id: NodeId,
    /// Current term. Invariant: never decreases.
    pub term: u64,
    /// Whom we voted for in `term` (INVALID_ID = nobody).
    pub vote: NodeId,
    pub raft_log: RaftLog<S>,
    pub role: StateRole,
    /// Known leader of `term`. Invariant: `role == Leader` implies `leader_id == id`.
    pub leader_id: NodeId,
    pub prs: ProgressTracker,
    /// This node is a learner in the current configuration (never campaigns).
    pub is_learner: bool,
    /// Messages to send once the Ready carrying them is persisted.
    pub msgs: Vec<Message>,
    pub read_states: Vec<crate::raft::ReadState>,
    pub read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term.
    pub pending_read_index_messages: Vec<Message>,
    /// Leader transfer target, if one is in progress.
    pub lead_transferee: Option<NodeId>,
    /// Log index of the last conf change proposed; no new one is accepted until it is applied.
    pub pending_conf_index: u64,
    /// Bytes of proposed, not yet applied entries (leader only).
    pub uncommitted_size_bytes: u64,
    /// Ticks since the last election timeout reset (leader: since the last check-quorum).
    pub election_elapsed: usize,
    pub heartbeat_elapsed: usize,
    pub election_timeout: usize,
    pub heartbeat_timeout: usize,
    /// Drawn in `[election_timeout, 2 * election_timeout)` at every reset.
    pub randomized_election_timeout: usize,
    pub check_quorum: bool,
    pub pre_vote: bool,
    pub skip_bcast_commit: bool,
    pub skip_idle_heartbeats: bool,
    pub max_size_per_msg_bytes: u64,
    pub max_uncommitted_size_bytes: u64,
    pub max_committed_size_per_ready_bytes: u64,
    rng: ChaCha8Rng,
    /// Reused buffer of peer ids for broadcasts (no allocation per proposal).
    pub(crate) peer_ids_scratch: Vec<NodeId>,
}

impl<S: Storage> Raft<S> {
    pub fn new(config: &Config, store: S) -> Result<Self> {
        config.validate()?;
        let state = store.initial_state()?;
        let raft_log = RaftLog::new(store);
        let mut rng = ChaCha8Rng::seed_from_u64(config.rng_seed);
        // One stream per node id, so nodes sharing a seed still draw different timeouts.
        rng.set_stream(config.id);
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: INVALID_ID,
            raft_log,
            role: StateRole::Follower,
            leader_id: INVALID_ID,
            prs: ProgressTracker::new(config.max_inflight_msgs),
            is_learner: false,
            msgs: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::new(config.read_only_option),
            pending_read_index_messages: Vec::new(),
            lead_transferee: None,
            pending_conf_index: 0,
            uncommitted_size_bytes: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: config.election_tick,
            heartbeat_timeout: config.heartbeat_tick,
            randomized_election_timeout: config.election_tick,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            skip_bcast_commit: config.skip_bcast_commit,
            skip_idle_heartbeats: config.skip_idle_heartbeats,
            max_size_per_msg_bytes: config.max_size_per_msg_bytes,
            max_uncommitted_size_bytes: config.max_uncommitted_size_bytes,
            max_committed_size_per_ready_bytes: config.max_committed_size_per_ready_bytes,
            rng,
            peer_ids_scratch: Vec::new(),
        };
        r.restore_config(TrackerConfig::from_conf_state(&state.conf_state));
        let hs = state.hard_state;
        if hs != HardState::default() {
            r.raft_log.commit_to(hs.commit);
            r.term = hs.term;
            r.vote = hs.vote;
        }
        if config.applied > 0 {
            assert!(
                config.applied <= r.raft_log.committed,
                "config.applied {} is past the persisted commit {}",
                config.applied,
                r.raft_log.committed
            );
            r.raft_log.applied_to(config.applied);
        }
        let term = r.term;
        r.become_follower(term, INVALID_ID);
        Ok(r)
    }

    /// Rebuilds the tracker from a configuration (boot or snapshot).
    pub(crate) fn restore_config(&mut self, conf: TrackerConfig) {
        let next = self.raft_log.last_index() + 1;
        let max_inflight = self.prs.max_inflight_msgs;
        self.prs.progress.clear();
        for id in conf.voters.ids().iter().chain(&conf.learners) {
            let mut pr = Progress::new(next, max_inflight);
            pr.is_learner = conf.learners.contains(id);
            pr.recent_active = true;
            self.prs.progress.insert(*id, pr);
        }
        self.prs.conf = conf;
        self.is_learner = self.prs.conf.learners.contains(&self.id);
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.matched = next - 1;
        }
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState { leader_id: self.leader_id, role: self.role }
    }

    pub fn hard_state(&self) -> HardState {
        // The canary keeps the vote out of what is made durable.
        let vote = if canary(Canary::RaftForgetsVote) { INVALID_ID } else { self.vote };
        HardState { term: self.term, vote, commit: self.raft_log.committed }
    }

    /// Can this node campaign: a voter of the current configuration, not installing a snapshot.
    pub fn promotable(&self) -> bool {
        self.prs.conf.voters.contains(self.id) && self.raft_log.unstable.snapshot.is_none()
    }

    pub(crate) fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let keeps_term = m.msg_type == MessageType::RequestVote
            || m.msg_type == MessageType::RequestPreVote
            || m.msg_type.is_vote_response();
        // Vote traffic carries the term it was computed for (a pre-vote's future term).
        if !keeps_term && m.msg_type != MessageType::Propose && m.msg_type != MessageType::ReadIndex
        {
            // Forwarded proposals and reads travel with term 0, like local messages.
            m.term = self.term;
        }
        self.msgs.push(m);
    }

    fn reset_randomized_election_timeout(&mut self) {
        let mut spread = self.rng.next_u64() % self.election_timeout as u64;
        if buggify(Point::RaftElectionTimeoutEarliest) {
            spread = 0;
        }
        self.randomized_election_timeout = self.election_timeout + spread as usize;
    }

    pub(crate) fn reset(&mut self, term: u64) {
        if self.term != term {
            assert!(term > self.term, "term moves backwards: {} -> {term}", self.term);
            self.term = term;
            self.vote = INVALID_ID;
        }
        self.leader_id = INVALID_ID;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.prs.reset_votes();
        let last = self.raft_log.last_index();
        for (&id, pr) in self.prs.progress.iter_mut() {
            let learner = pr.is_learner;
            *pr = Progress::new(last + 1, self.prs.max_inflight_msgs);
            pr.is_learner = learner;
            if id == self.id {
                pr.matched = last;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size_bytes = 0;
        self.read_only = ReadOnly::new(self.read_only.option);
        self.pending_read_index_messages.clear();
    }

    pub fn become_follower(&mut self, term: u64, leader_id: NodeId) {
        self.reset(term);
        self.leader_id = leader_id;
        self.role = StateRole::Follower;
    }

    pub fn become_candidate(&mut self) {
        assert_ne!(self.role, StateRole::Leader, "invalid transition: leader -> candidate");
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.role = StateRole::Candidate;
    }

    pub fn become_pre_candidate(&mut self) {
        assert_ne!(self.role, StateRole::Leader, "invalid transition: leader -> pre-candidate");
        // Pre-vote changes neither term nor vote: a partitioned node cannot disrupt the cluster.
        self.prs.reset_votes();
        self.leader_id = INVALID_ID;
        self.role = StateRole::PreCandidate;
    }

    pub fn become_leader(&mut self) {
        assert_ne!(self.role, StateRole::Follower, "invalid transition: follower -> leader");
        let term = self.term;
        self.reset(term);
        self.leader_id = self.id;
        self.role = StateRole::Leader;
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.become_replicate();
        }
        // Conservatively treat any conf change in the log as pending until applied.
        self.pending_conf_index = self.raft_log.last_index();
        // Raft §8: a no-op entry of the new term lets the leader learn what is committed.
        let noop = Entry { entry_type: EntryType::Normal, ..Default::default() };
        assert!(self.append_entries(vec![noop]), "the leader's no-op entry is never dropped");
        probe(Probe::RaftBecameLeader);
    }

    pub fn tick(&mut self) {
        match self.role {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            let _ = self.step(local_msg(MessageType::Hup));
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                let _ = self.step(local_msg(MessageType::CheckQuorum));
            }
            // A transfer that did not finish within an election timeout is abandoned.
            if self.role == StateRole::Leader && self.lead_transferee.is_some() {
                self.lead_transferee = None;
            }
        }
        if self.role != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let _ = self.step(local_msg(MessageType::Beat));
        }
    }

    /// Whether some committed, unapplied entry is a conf change (we must not campaign then).
    fn has_unapplied_conf_change(&self) -> bool {
        let (lo, hi) = (self.raft_log.applied + 1, self.raft_log.committed + 1);
        if lo >= hi {
            return false;
        }
        match self.raft_log.slice(lo.max(self.raft_log.first_index()), hi, None) {
            Ok(ents) => ents.iter().any(|e| e.entry_type == EntryType::ConfChange),
            Err(_) => false,
        }
    }

    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == StateRole::Leader || !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_change() {
            return;
        }
        let kind = if transfer {
            CampaignKind::Transfer
        } else if self.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.campaign(kind);
    }

    pub(crate) fn campaign(&mut self, kind: CampaignKind) {
        let (vote_type, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            (MessageType::RequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::RequestVote, self.term)
        };
        let self_id = self.id;
        if self.poll(self_id, vote_type, true) == VoteResult::Won {
            // A single-voter cluster wins at once.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
                self.bcast_append(); // Learners, if any.
            }
            return;
        }
        let (last_index, last_term) = (self.raft_log.last_index(), self.raft_log.last_term());
        let context = if kind == CampaignKind::Transfer {
            CAMPAIGN_TRANSFER_CONTEXT.to_vec()
        } else {
            vec![]
        };
        for id in self.prs.conf.voters.ids() {
            if id == self_id {
                continue;
            }
            self.send(Message {
                msg_type: vote_type,
                to: id,
                term,
                index: last_index,
                log_term: last_term,
                context: context.clone(),
                ..Default::default()
            });
        }
    }

    fn poll(&mut self, from: NodeId, _vote_type: MessageType, granted: bool) -> VoteResult {
        self.prs.record_vote(from, granted);
        self.prs.tally_votes().2
    }

    /// The single entry point for messages. Handles terms and stale messages, then dispatches by
    /// role.
    #[inline]
    pub fn step(&mut self, mut m: Message) -> Result<()> {
        // The message is taken by value once and handed down by reference, so it is not copied
        // at every dispatch layer; handlers that keep a part of it move that part out.
        let result = self.step_inner(&mut m);
        #[cfg(any(test, debug_assertions))]
        self.check_invariants();
        result
    }

    fn step_inner(&mut self, m: &mut Message) -> Result<()> {
        if m.term > self.term {
            if !self.step_higher_term(m) {
                return Ok(());
            }
        } else if m.term != 0 && m.term < self.term {
            self.step_lower_term(m);
            return Ok(());
        }
        match m.msg_type {
            MessageType::Hup => self.hup(false),
            MessageType::RequestVote | MessageType::RequestPreVote => self.handle_vote_request(m),
            _ => match self.role {
                StateRole::Leader => return self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => return self.step_candidate(m),
                StateRole::Follower => return self.step_follower(m),
            },
        }
        Ok(())
    }

    /// A message from a higher term. Returns false if it is to be ignored.
    fn step_higher_term(&mut self, m: &Message) -> bool {
        let is_vote_req =
            matches!(m.msg_type, MessageType::RequestVote | MessageType::RequestPreVote);
        if is_vote_req {
            let force = m.context == CAMPAIGN_TRANSFER_CONTEXT;
            let in_lease = self.check_quorum
                && self.leader_id != INVALID_ID
                && self.election_elapsed < self.election_timeout;
            if !force && in_lease {
                // Raft thesis §4.2.3: a node that heard from a leader within the minimum
                // election timeout ignores vote requests, so a removed or partitioned node
                // cannot disrupt the cluster.
                return false;
            }
        }
        match m.msg_type {
            // Pre-votes never change our term.
            MessageType::RequestPreVote => {}
            // A granted pre-vote carries the future term; we bump it when we win.
            MessageType::RequestPreVoteResponse if !m.reject => {}
            MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
            }
            _ => self.become_follower(m.term, INVALID_ID),
        }
        true
    }

    fn step_lower_term(&mut self, m: &Message) {
        let from_leader = matches!(m.msg_type, MessageType::Heartbeat | MessageType::Append);
        if (self.check_quorum || self.pre_vote) && from_leader {
            // A stale leader cut off by a partition learns the newer term from this answer and
            // steps down; otherwise it could keep peers from electing (check-quorum/pre-vote
            // make them ignore its rivals' vote requests).
            self.send(Message {
                msg_type: MessageType::AppendResponse,
                to: m.from,
                ..Default::default()
            });
        } else if m.msg_type == MessageType::RequestPreVote {
            self.send(Message {
                msg_type: MessageType::RequestPreVoteResponse,
                to: m.from,
                term: self.term,
                reject: true,
                ..Default::default()
            });
        }
    }

    /// Raft §5.2, §5.4.1: grant at most one vote per term, and only to an up-to-date log.
    fn handle_vote_request(&mut self, m: &Message) {
        let is_pre = m.msg_type == MessageType::RequestPreVote;
        let resp_type = if is_pre {
            MessageType::RequestPreVoteResponse
        } else {
            MessageType::RequestVoteResponse
        };
        let can_vote = self.vote == m.from
            || (self.vote == INVALID_ID && self.leader_id == INVALID_ID)
            || (is_pre && m.term > self.term);
        let up_to_date =
            self.raft_log.is_up_to_date(m.index, m.log_term) || canary(Canary::RaftVoteIgnoresLog);
        if can_vote && up_to_date {
            self.send(Message {
                msg_type: resp_type,
                to: m.from,
                term: m.term,
                ..Default::default()
            });
            if !is_pre {
                self.election_elapsed = 0;
                self.vote = m.from;
                probe(Probe::RaftVoteGranted);
            }
        } else {
            if !is_pre && self.vote != INVALID_ID {
                probe(Probe::RaftVoteRefusedAlreadyVoted);
            }
            self.send(Message {
                msg_type: resp_type,
                to: m.from,
                term: self.term,
                reject: true,
                ..Default::default()
            });
        }
    }

    fn step_candidate(&mut self, m: &mut Message) -> Result<()> {
        let my_response = if self.role == StateRole::PreCandidate {
            MessageType::RequestPreVoteResponse
        } else {
            MessageType::RequestVoteResponse
        };
        match m.msg_type {
            MessageType::Propose => return Err(Error::ProposalDropped),
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            t if t == my_response => match self.poll(m.from, t, !m.reject) {
                VoteResult::Won => {
                    if self.role == StateRole::PreCandidate {
                        self.campaign(CampaignKind::Election);
                    } else {
                        self.become_leader();
                        self.bcast_append();
                    }
                }
                VoteResult::Lost => {
                    let term = self.term;
                    self.become_follower(term, INVALID_ID);
                }
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, m: &mut Message) -> Result<()> {
        match m.msg_type {
            MessageType::Propose => {
                if self.leader_id == INVALID_ID {
                    return Err(Error::ProposalDropped);
                }
                m.to = self.leader_id;
                self.send(std::mem::take(m));
            }
            MessageType::Append => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TransferLeader | MessageType::ReadIndex
                if self.leader_id != INVALID_ID =>
            {
                m.to = self.leader_id;
                self.send(std::mem::take(m));
            }
            MessageType::TimeoutNow => {
                // Leader transfer: campaign at once, skipping pre-vote (the old leader asked).
                self.hup(true);
            }
            MessageType::ReadIndexResponse => {
                let request_ctx = std::mem::take(&mut m.context);
                self.read_states.push(ReadState { index: m.index, request_ctx });
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn handle_append(&mut self, m: &mut Message) {
        let mut resp =
            Message { msg_type: MessageType::AppendResponse, to: m.from, ..Default::default() };
        if m.index < self.raft_log.committed {
            resp.index = self.raft_log.committed;
            self.send(resp);
            return;
        }
        let entries = std::mem::take(&mut m.entries);
        match self.raft_log.maybe_append_owned(m.index, m.log_term, m.commit, entries) {
            Some(last_new) => resp.index = last_new,
            None => {
                // Fast backtracking: point the leader at our last entry with a term <= the
                // probe's term, skipping a whole conflicting term per round trip.
                let hint = m.index.min(self.raft_log.last_index());
                let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint_index;
                resp.log_term_hint = hint_term;
            }
        }
        self.send(resp);
    }

    fn handle_heartbeat(&mut self, m: &mut Message) {
        self.raft_log.commit_to(m.commit);
        self.send(Message {
            msg_type: MessageType::HeartbeatResponse,
            to: m.from,
            context: std::mem::take(&mut m.context),
            ..Default::default()
        });
    }

    fn handle_snapshot(&mut self, m: &mut Message) {
        let Some(snapshot) = m.snapshot.take() else { return };
        let resp_index = if self.restore(*snapshot) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(Message {
            msg_type: MessageType::AppendResponse,
            to: m.from,
            index: resp_index,
            ..Default::default()
        });
    }

    /// Installs `snapshot` unless our log already covers it. Returns whether it was installed.
    pub fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.metadata;
        if meta.index <= self.raft_log.committed {
            return false;
        }
        if self.raft_log.match_term(meta.index, meta.term) {
            // Our log already has the snapshot's last entry: just fast-forward the commit.
            self.raft_log.commit_to(meta.index);
            return false;
        }
        let conf = TrackerConfig::from_conf_state(&meta.conf_state);
        self.raft_log.restore(snapshot);
        self.restore_config(conf);
        true
    }

    /// Applies a committed conf change to the tracker; returns the new configuration.
    pub fn apply_conf_change(
        &mut self,
        cc: &ConfChangeV2,
    ) -> Result<minikv_proto::raftpb::ConfState> {
        let changer = Changer {
            conf: self.prs.conf.clone(),
            progress: self.prs.progress.clone(),
            last_index: self.raft_log.last_index(),
            max_inflight_msgs: self.prs.max_inflight_msgs,
        };
        let (conf, progress) = changer.apply(cc)?;
        self.prs.conf = conf;
        self.prs.progress = progress;
        Ok(self.after_config_switch())
    }

    pub fn check_invariants(&self) {
        self.raft_log.check_invariants();
        if self.role == StateRole::Leader {
            assert_eq!(self.leader_id, self.id, "a leader must name itself leader");
            if let Some(pr) = self.prs.progress.get(&self.id) {
                assert_eq!(
                    pr.matched,
                    self.raft_log.last_index(),
                    "a leader's own progress must match its last index"
                );
            }
        }
        assert!(self.vote == INVALID_ID || self.term > 0, "a vote ({}) without a term", self.vote);
        if self.role == StateRole::Candidate {
            assert_eq!(self.vote, self.id, "a candidate votes for itself");
        }
        for id in self.prs.conf.voters.ids().iter().chain(&self.prs.conf.learners) {
            assert!(self.prs.progress.contains_key(id), "member {id} has no progress");
        }
    }
}

pub(crate) fn local_msg(msg_type: MessageType) -> Message {
    Message { msg_type, ..Default::default() }
}
