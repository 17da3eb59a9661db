//! One region's peer: its `RawNode`, the proposals and reads waiting on it, proposing, ticking
//! (log GC, snapshot timeouts), serving reads, and answering proposals once their entries
//! apply (applying itself is `apply.rs`; a proposal's fate, `proposal.rs`).

use minikv_hooks::{Canary, Point, Probe, buggify, canary, probe};
use std::collections::{BTreeMap, VecDeque};

use minikv_engine::{Engine, WriteBatch};
use minikv_proto::encode;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, PeerId, Region};
use minikv_proto::raft_cmdpb::{
    AdminRequest, AdminResponse, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader, Request,
    Response,
};
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_raft::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeV2, Config, Entry, EntryType,
    Error as RaftError, Message, ProgressState, RawNode, ReadOnlyOption, ReadState, SnapshotStatus,
    SoftState, StateRole, Storage,
};

use crate::apply::{self, Overlay, exec_requests};
use crate::cmd_check::{change_region, check_epoch, check_key_in_region};
use crate::config::StoreConfig;
use crate::error::Result;
use crate::events;
use crate::lease::Lease;
use crate::peer_storage::PeerStorage;
use crate::proposal::{Committed, Fate, Proposal};
use crate::types::{ReqToken, Responses, error_response};

/// A read waiting for its ReadIndex round, then for apply to reach `read_index`.
#[derive(Debug)]
pub(crate) struct PendingRead {
    pub id: u64,
    pub token: ReqToken,
    pub cmd: RaftCmdRequest,
    pub read_index: Option<u64>,
    /// The tick and term the read was issued in (its confirmation renews the lease).
    pub issued_tick: u64,
    pub term: u64,
}

#[derive(Debug)]
pub(crate) struct Peer {
    /// This peer as the region lists it.
    pub meta: metapb::Peer,
    pub raw: RawNode<PeerStorage>,
    pub proposals: VecDeque<Proposal>,
    pub reads: VecDeque<PendingRead>,
    /// Peers heard from, so an uninitialized peer can answer its leader.
    pub peer_cache: BTreeMap<PeerId, metapb::Peer>,
    /// Set when this peer applied its own removal; the store destroys it after the Ready.
    pub pending_destroy: bool,
    /// Removed peers to tell (leader only), sent by the store after the Ready.
    pub tombstones_to_send: Vec<metapb::Peer>,
    /// While uninitialized: the newest `conf_ver` of the messages that addressed this peer. Their
    /// senders counted it a member at that version, so only a tombstone from a newer view
    /// proves it was removed (see `Store::on_tombstone`).
    pub addressed_at_conf_ver: u64,
    ticks: u64,
    last_compact_proposed: u64,
    /// Tick at which a snapshot was last sent to each peer.
    snapshot_sent_tick: BTreeMap<PeerId, u64>,
    /// `(role, term, leader_id)` as last traced (see `observe_role`).
    observed: (StateRole, u64, PeerId),
    lease: Lease,
    /// Reads served from the lease, without a ReadIndex round.
    pub lease_reads: u64,
    /// Tick at which each other peer was last heard from (reset when this peer becomes
    /// leader): the leader reports peers silent too long as down.
    heard_tick: BTreeMap<PeerId, u64>,
}

fn raft_config(cfg: &StoreConfig, peer_id: PeerId, applied: u64) -> Config {
    Config {
        id: peer_id,
        election_tick: cfg.election_tick,
        heartbeat_tick: cfg.heartbeat_tick,
        applied,
        max_size_per_msg_bytes: cfg.max_size_per_msg_bytes,
        max_inflight_msgs: cfg.max_inflight_msgs,
        max_uncommitted_size_bytes: 0,
        pre_vote: true,
        check_quorum: true,
        read_only_option: ReadOnlyOption::Safe,
        skip_bcast_commit: true,
        skip_idle_heartbeats: true,
        rng_seed: cfg.rng_seed,
        max_committed_size_per_ready_bytes: u64::MAX,
    }
}

impl Peer {
    pub fn new(cfg: &StoreConfig, meta: metapb::Peer, storage: PeerStorage) -> Result<Peer> {
        let applied = storage.applied_index();
        let raw = RawNode::new(&raft_config(cfg, meta.id, applied), storage)?;
        let observed = (raw.raft.role, raw.raft.term, raw.raft.leader_id);
        Ok(Peer {
            meta,
            raw,
            proposals: VecDeque::new(),
            reads: VecDeque::new(),
            peer_cache: BTreeMap::new(),
            pending_destroy: false,
            tombstones_to_send: Vec::new(),
            addressed_at_conf_ver: 0,
            ticks: 0,
            last_compact_proposed: 0,
            snapshot_sent_tick: BTreeMap::new(),
            observed,
            lease: Lease::default(),
            lease_reads: 0,
            heard_tick: BTreeMap::new(),
        })
    }

    /// Traces a change of role, term or leader since the last call (and audits a new
    /// leadership). The store calls it after every input that can change them.
    pub fn observe_role(&mut self) {
        let raft = &self.raw.raft;
        let now = (raft.role, raft.term, raft.leader_id);
        if now != self.observed {
            if now.0 == StateRole::Leader && self.observed.0 != StateRole::Leader {
                // A new leader has heard from no one yet: every peer starts its silence now.
                let ticks = self.ticks;
                self.heard_tick = self.region().peers.iter().map(|p| (p.id, ticks)).collect();
            }
            self.observed = now;
            self.lease.expire();
            events::role_changed(self.region().id, now.0, now.1, now.2);
        }
    }

    /// A message from peer `from` arrived.
    pub fn heard_from(&mut self, from: PeerId) {
        self.heard_tick.insert(from, self.ticks);
    }

    /// Leader only: the region's other peers with the ticks since each was last heard from.
    pub fn silent_ticks(&self) -> BTreeMap<PeerId, u64> {
        if !self.is_leader() {
            return BTreeMap::new();
        }
        let region = self.region();
        region
            .peers
            .iter()
            .filter(|p| p.id != self.meta.id)
            .map(|p| {
                // Not yet registered: it joined since the last tick.
                let heard = self.heard_tick.get(&p.id).copied().unwrap_or(self.ticks);
                (p.id, self.ticks.saturating_sub(heard))
            })
            .collect()
    }

    /// Leader only: the region's peers whose log ends before the leader's first entry (they
    /// can only catch up by a snapshot), as TiKV counts pending peers.
    pub fn pending_peers(&self) -> Vec<metapb::Peer> {
        if !self.is_leader() {
            return Vec::new();
        }
        let truncated = self.storage().truncated_state().index;
        let progress = &self.raw.raft.prs.progress;
        self.region()
            .peers
            .iter()
            .filter(|p| p.id != self.meta.id)
            .filter(|p| progress.get(&p.id).is_some_and(|pr| pr.matched < truncated))
            .cloned()
            .collect()
    }

    pub fn storage(&self) -> &PeerStorage {
        self.raw.store()
    }

    pub fn region(&self) -> &Region {
        self.raw.store().region()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.role == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The metadata of peer `id`, from the region or from peers heard from.
    pub fn peer_meta(&self, id: PeerId) -> Option<metapb::Peer> {
        self.region()
            .peers
            .iter()
            .find(|p| p.id == id)
            .or_else(|| self.peer_cache.get(&id))
            .cloned()
    }

    pub fn leader(&self) -> Option<metapb::Peer> {
        let id = self.raw.raft.leader_id;
        if id == 0 { None } else { self.peer_meta(id) }
    }

    fn not_leader(&self) -> RegionError {
        RegionError::NotLeader { region_id: self.region().id, leader: self.leader() }
    }

    /// Wraps a Raft message for the network; `None` when the target's store is unknown.
    pub fn wrap(&mut self, message: Message) -> Option<RaftMessage> {
        let to_peer = self.peer_meta(message.to)?;
        if message.msg_type == minikv_raft::MessageType::Snapshot {
            self.snapshot_sent_tick.insert(message.to, self.ticks);
        }
        Some(RaftMessage {
            region_id: self.region().id,
            from_peer: self.meta.clone(),
            to_peer,
            region_epoch: self.region().epoch,
            message,
            is_tombstone: false,
            snapshot_chunk: None,
        })
    }

    pub fn tick(&mut self, cfg: &StoreConfig) {
        self.raw.tick();
        self.observe_role();
        self.ticks += 1;
        if !self.is_leader() {
            self.snapshot_sent_tick.clear();
            return;
        }
        // A peer added since the leader took over starts its silence when it joins.
        let ticks = self.ticks;
        for p in &self.raw.store().region().peers {
            self.heard_tick.entry(p.id).or_insert(ticks);
        }
        self.check_snapshot_timeouts(cfg);
        if self.ticks.is_multiple_of(cfg.raft_log_gc_tick_interval_ticks.max(1)) {
            self.maybe_propose_compact_log(cfg);
        }
    }

    /// A snapshot the follower never acknowledged (chunks lost) is reported failed, so that
    /// Raft probes the follower and sends a fresh snapshot.
    fn check_snapshot_timeouts(&mut self, cfg: &StoreConfig) {
        let progress = &self.raw.raft.prs.progress;
        let mut failed = Vec::new();
        self.snapshot_sent_tick.retain(|id, sent| {
            let waiting = progress.get(id).is_some_and(|p| p.state == ProgressState::Snapshot);
            if waiting && self.ticks - *sent >= cfg.snapshot_timeout_ticks {
                failed.push(*id);
                return false;
            }
            waiting
        });
        for id in failed {
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    fn maybe_propose_compact_log(&mut self, cfg: &StoreConfig) {
        let storage = self.raw.store();
        let applied = storage.applied_index();
        let truncated = storage.truncated_state().index;
        if applied <= truncated {
            return;
        }
        let replicated = self.raw.raft.prs.progress.values().map(|p| p.matched).min().unwrap_or(0);
        let compact_index = if applied - truncated >= cfg.raft_log_gc_count_limit
            || storage.log_size_bytes() >= cfg.raft_log_gc_size_limit_bytes
        {
            applied
        } else if replicated.min(applied) >= truncated + cfg.raft_log_gc_threshold_entries {
            replicated.min(applied)
        } else if buggify(Point::StoreForceLogGc) {
            // A lagging follower then needs a snapshot.
            applied
        } else {
            return;
        };
        if compact_index <= self.last_compact_proposed {
            return;
        }
        let Ok(compact_term) = storage.term(compact_index) else { return };
        let cmd = RaftCmdRequest {
            admin: Some(AdminRequest::CompactLog { compact_index, compact_term }),
            ..Default::default()
        };
        if self.propose_entry(&cmd, None).is_ok() {
            self.last_compact_proposed = compact_index;
        }
    }

    /// Appends `cmd` to the log (leader only) and records it for matching at apply.
    fn propose_entry(
        &mut self,
        cmd: &RaftCmdRequest,
        token: Option<ReqToken>,
    ) -> std::result::Result<(), RegionError> {
        let data = encode(cmd).expect("a command always encodes");
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {}
            Err(RaftError::ProposalDropped) => {
                return Err(RegionError::NotLeader { region_id: self.region().id, leader: None });
            }
            Err(e) => panic!("region {}: proposing failed unexpectedly: {e}", self.region().id),
        }
        let index = self.raw.raft.raft_log.last_index();
        assert_eq!(index, before + 1, "a leader's proposal is appended at once");
        self.proposals.push_back(Proposal {
            term: self.term(),
            index,
            token,
            proposed_tick: self.ticks,
        });
        Ok(())
    }

    /// Validates `cmd` and starts it: a read through ReadIndex, a write or conf change through
    /// the log, a leader transfer at once (its response goes to `out`).
    pub fn propose(
        &mut self,
        cfg: &StoreConfig,
        cmd: RaftCmdRequest,
        token: ReqToken,
        read_id: u64,
        out: &mut Responses,
    ) -> std::result::Result<(), RegionError> {
        let region = self.region().clone();
        if cmd.header.peer.id != 0 && cmd.header.peer.id != self.meta.id {
            return Err(RegionError::RegionNotFound { region_id: region.id });
        }
        if !self.raw.store().is_initialized() {
            return Err(RegionError::RegionNotFound { region_id: region.id });
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        check_epoch(&cmd, &region)?;
        for req in &cmd.requests {
            check_key_in_region(req, &region)?;
        }
        if self.proposals.len() + self.reads.len() >= cfg.max_pending_proposals_per_peer {
            return Err(RegionError::ServerIsBusy {
                reason: format!(
                    "region {}: {} requests pending (max_pending_proposals_per_peer)",
                    region.id, cfg.max_pending_proposals_per_peer
                ),
            });
        }
        if cmd.requests.is_empty() && cmd.admin.is_none() {
            return Err(RegionError::CommandRefused { reason: "empty command".to_string() });
        }
        if cmd.is_read_only() {
            let (issued_tick, term) = (self.ticks, self.term());
            let from_lease = cfg.lease_read
                && self.raw.raft.lead_transferee.is_none()
                && self.lease.serves(cfg, term, self.ticks);
            let read_index = if from_lease || canary(Canary::ReadWithoutQuorum) {
                // No other leader can have committed anything: our commit index is current.
                self.lease_reads += 1;
                Some(self.raw.raft.raft_log.committed)
            } else {
                self.raw.read_index(read_id.to_be_bytes().to_vec());
                None
            };
            self.reads.push_back(PendingRead {
                id: read_id,
                token,
                cmd,
                read_index,
                issued_tick,
                term,
            });
            return Ok(());
        }
        let blind_write =
            cmd.requests.iter().all(|r| matches!(r, Request::Put { .. } | Request::Delete { .. }));
        match cmd.admin.clone() {
            None if canary(Canary::EarlyAcks) && blind_write => {
                // The planted bug: acknowledged before it is committed.
                self.propose_entry(&cmd, None)?;
                let responses = cmd
                    .requests
                    .iter()
                    .map(|r| {
                        if matches!(r, Request::Put { .. }) {
                            Response::Put
                        } else {
                            Response::Delete
                        }
                    })
                    .collect();
                let header = RaftResponseHeader { error: None, current_term: self.term() };
                out.push((token, RaftCmdResponse { header, responses, admin_response: None }));
                Ok(())
            }
            None => self.propose_entry(&cmd, Some(token)),
            Some(AdminRequest::CompactLog { .. }) => self.propose_entry(&cmd, Some(token)),
            Some(AdminRequest::TransferLeader { peer }) => {
                let target = region.peers.iter().find(|p| p.id == peer.id);
                if !target.is_some_and(|p| p.role == metapb::PeerRole::Voter) {
                    return Err(RegionError::CommandRefused {
                        reason: format!("transfer target {} is not a voter of the region", peer.id),
                    });
                }
                events::leader_transfer_started(region.id, self.term(), peer.id);
                // The target campaigns at once, without waiting out anyone's election timeout.
                self.lease.expire();
                self.raw.transfer_leader(peer.id);
                self.observe_role();
                let resp = RaftCmdResponse {
                    header: RaftResponseHeader { error: None, current_term: self.term() },
                    admin_response: Some(AdminResponse::TransferLeader),
                    ..Default::default()
                };
                out.push((token, resp));
                Ok(())
            }
            Some(AdminRequest::ChangePeer { change_type, peer }) => {
                change_region(&region, change_type, &peer)
                    .map_err(|reason| RegionError::CommandRefused { reason })?;
                if self.raw.raft.pending_conf_index > self.raw.raft.raft_log.applied {
                    return Err(RegionError::ServerIsBusy {
                        reason: format!("region {}: a conf change is pending", region.id),
                    });
                }
                let cc = ConfChangeV2 {
                    transition: ConfChangeTransition::Auto,
                    changes: vec![ConfChangeSingle { change_type, node_id: peer.id }],
                    context: Vec::new(),
                };
                let context = encode(&cmd).expect("a command always encodes");
                let before = self.raw.raft.raft_log.last_index();
                match self.raw.propose_conf_change(context, cc) {
                    Ok(()) => {}
                    Err(RaftError::ProposalDropped) => {
                        return Err(RegionError::NotLeader { region_id: region.id, leader: None });
                    }
                    Err(e) => panic!("region {}: conf change proposal failed: {e}", region.id),
                }
                let index = self.raw.raft.raft_log.last_index();
                assert_eq!(index, before + 1, "a leader's proposal is appended at once");
                self.proposals.push_back(Proposal {
                    term: self.term(),
                    index,
                    token: Some(token),
                    proposed_tick: self.ticks,
                });
                Ok(())
            }
        }
    }

    /// Applies committed `entries` into `batch` (see `apply::apply_committed`) and answers
    /// their proposals into `out`, which the caller releases only once `batch` is written.
    ///
    /// Returns the tick this leader made the last of its own current-term proposals among
    /// `entries` at, the evidence that renews its lease; `None` when there is none, or when a
    /// conf change applied here (its quorum is not the one that committed the rest).
    pub(crate) fn apply_committed(
        &mut self,
        entries: &[Entry],
        engine: &Engine,
        batch: &mut WriteBatch,
        out: &mut Responses,
    ) -> Result<Option<u64>> {
        let applied = apply::apply_committed(&mut self.raw, &self.meta, entries, engine, batch)?;
        if applied.conf_changed {
            self.expire_lease();
        }
        if let Some(me) = applied.me {
            self.meta = me;
        }
        self.pending_destroy |= applied.removed_self;
        self.tombstones_to_send.extend(applied.removed_peers);
        let current_term = self.term();
        let mut proposed_tick = None;
        for (term, index, resp) in applied.results {
            let tick = self.resolve_proposals(Committed::Entry { term, index }, resp, out);
            if term == current_term {
                proposed_tick = proposed_tick.max(tick);
            }
        }
        let conf_entries = entries.iter().any(|e| e.entry_type == EntryType::ConfChange);
        Ok(proposed_tick.filter(|_| !conf_entries))
    }

    /// Answers every proposal whose fate `committed` decides (see `proposal.rs`): the applied
    /// one with `resp`, dropped ones with `ProposalDropped` (definitely not applied), and
    /// unknowable ones with `StaleCommand` (maybe applied).
    /// Returns the tick the applied proposal was made at, if this peer proposed it.
    pub fn resolve_proposals(
        &mut self,
        committed: Committed,
        resp: Option<RaftCmdResponse>,
        out: &mut Responses,
    ) -> Option<u64> {
        let term = match committed {
            Committed::Entry { term, .. } | Committed::Snapshot { term, .. } => term,
        };
        let mut resp = resp;
        let mut proposed_tick = None;
        let mut kept = VecDeque::with_capacity(self.proposals.len());
        for p in std::mem::take(&mut self.proposals) {
            let answer = match p.fate(committed) {
                Fate::Pending => {
                    kept.push_back(p);
                    continue;
                }
                Fate::Applied => {
                    proposed_tick = Some(p.proposed_tick);
                    resp.take().unwrap_or_else(|| error_response(RegionError::StaleCommand, term))
                }
                Fate::Dropped => error_response(RegionError::ProposalDropped, term),
                Fate::Unknown => error_response(RegionError::StaleCommand, term),
            };
            if let Some(token) = p.token {
                out.push((token, answer));
            }
        }
        self.proposals = kept;
        proposed_tick
    }

    /// A snapshot replaced the log: proposals it decides are answered, reads fail (they are
    /// retried), later proposals keep waiting for their slot.
    pub fn on_snapshot_installed(&mut self, term: u64, index: u64, out: &mut Responses) {
        // A snapshot's proposals were applied elsewhere: no evidence for the lease.
        let _ = self.resolve_proposals(Committed::Snapshot { term, index }, None, out);
        let current = self.term();
        for r in std::mem::take(&mut self.reads) {
            out.push((r.token, error_response(RegionError::StaleCommand, current)));
        }
    }

    /// Fails every waiting proposal and read with `error` (the peer is going away).
    pub fn fail_all(&mut self, error: RegionError, out: &mut Responses) {
        let term = self.term();
        for p in std::mem::take(&mut self.proposals) {
            if let Some(token) = p.token {
                out.push((token, error_response(error.clone(), term)));
            }
        }
        for r in std::mem::take(&mut self.reads) {
            out.push((r.token, error_response(error.clone(), term)));
        }
    }

    /// Leadership lost: reads not yet confirmed never will be.
    pub fn on_soft_state(&mut self, ss: &SoftState, out: &mut Responses) {
        if ss.role == StateRole::Leader {
            return;
        }
        let error = self.not_leader();
        let term = self.term();
        let reads = std::mem::take(&mut self.reads);
        for r in reads {
            if r.read_index.is_some() {
                self.reads.push_back(r);
            } else {
                out.push((r.token, error_response(error.clone(), term)));
            }
        }
    }

    pub fn on_read_states(&mut self, cfg: &StoreConfig, states: &[ReadState]) {
        let (leader, term) = (self.is_leader(), self.term());
        for rs in states {
            let Ok(bytes) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else { continue };
            let id = u64::from_be_bytes(bytes);
            if let Some(r) = self.reads.iter_mut().find(|r| r.id == id) {
                r.read_index = Some(rs.index);
                if leader && r.term == term {
                    self.lease.confirm(cfg, term, r.issued_tick);
                }
            }
        }
    }

    /// This leader's own proposal, made at `proposed_tick` in the current term, was committed:
    /// a quorum accepted the Append carrying it, sent after that tick. Like a confirmed
    /// ReadIndex, that renews the lease (TiKV renews its lease the same way).
    pub(crate) fn renew_lease_by_commit(&mut self, cfg: &StoreConfig, proposed_tick: u64) {
        if self.is_leader() {
            self.lease.confirm(cfg, self.term(), proposed_tick);
        }
    }

    /// The quorum changed: a lease confirmed by the old one proves nothing.
    pub fn expire_lease(&mut self) {
        self.lease.expire();
    }

    /// Ticks were missed (the node was paused or starved): the lease ends, and reads issued
    /// before now can no longer renew it.
    pub fn fence_lease(&mut self) {
        probe(Probe::StoreLeaseFenced);
        self.lease.fence(self.ticks);
    }

    /// Ticks since this peer was created (on this store's start, or from a message).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Serves every confirmed read whose index has been applied.
    pub fn serve_reads(&mut self, engine: &Engine, out: &mut Responses) -> Result<()> {
        let applied = self.raw.store().applied_index();
        let region = self.region().clone();
        let term = self.term();
        let mut kept = VecDeque::new();
        for r in std::mem::take(&mut self.reads) {
            if r.read_index.is_none_or(|i| i > applied) {
                kept.push_back(r);
                continue;
            }
            let resp = match check_epoch(&r.cmd, &region) {
                Err(e) => error_response(e, term),
                Ok(()) => {
                    let mut overlay = Overlay::default();
                    let responses =
                        exec_requests(engine, &mut overlay, None, &region, &r.cmd.requests)?;
                    RaftCmdResponse {
                        header: RaftResponseHeader { error: None, current_term: term },
                        responses,
                        admin_response: None,
                    }
                }
            };
            out.push((r.token, resp));
        }
        self.reads = kept;
        Ok(())
    }
}
