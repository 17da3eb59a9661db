//! The leader side of the state machine: proposals, replication with flow control, commit,
//! heartbeats, ReadIndex, leader transfer and reacting to configuration switches.

use minikv_hooks::{Point, Probe, buggify, probe};
use minikv_proto::raftpb::{
    ConfChangeV2, ConfState, Entry, EntryType, INVALID_ID, Message, MessageType, NodeId,
};

use crate::conf_change::{ConfChangeKind, conf_change_kind};
use crate::config::ReadOnlyOption;
use crate::errors::{Error, Result, StorageError};
use crate::progress::ProgressState;
use crate::quorum::VoteResult;
use crate::raft::{Raft, ReadState, StateRole};
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_leader(&mut self, m: &mut Message) -> Result<()> {
        match m.msg_type {
            MessageType::Beat => {
                match self.read_only.last_pending_request_ctx() {
                    Some(ctx) => self.bcast_heartbeat(Some(ctx)),
                    None => self.bcast_idle_heartbeat(),
                }
                return Ok(());
            }
            MessageType::CheckQuorum => {
                let self_id = self.id;
                if !self.prs.quorum_recently_active(self_id) {
                    // Raft thesis §6.2: a leader that cannot reach a quorum steps down, so
                    // clients find the real leader and lease reads stay safe.
                    probe(Probe::RaftCheckQuorumStepDown);
                    let term = self.term;
                    self.become_follower(term, INVALID_ID);
                }
                return Ok(());
            }
            MessageType::Propose => return self.handle_propose(std::mem::take(&mut m.entries)),
            MessageType::ReadIndex => {
                self.handle_read_index(std::mem::take(m));
                return Ok(());
            }
            _ => {}
        }
        if !self.prs.progress.contains_key(&m.from) {
            return Ok(()); // A peer that left the configuration.
        }
        match m.msg_type {
            MessageType::AppendResponse => self.handle_append_response(m),
            MessageType::HeartbeatResponse => self.handle_heartbeat_response(m),
            MessageType::SnapshotStatus => {
                let pr = self.prs.progress.get_mut(&m.from).expect("checked above");
                if pr.state == ProgressState::Snapshot {
                    if m.reject {
                        pr.pending_snapshot = 0;
                    }
                    pr.become_probe();
                    // Wait for the next heartbeat response before probing again.
                    pr.probe_sent = true;
                }
            }
            MessageType::Unreachable => {
                let pr = self.prs.progress.get_mut(&m.from).expect("checked above");
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
            }
            MessageType::TransferLeader => self.handle_transfer_leader(m.from),
            _ => {}
        }
        Ok(())
    }

    fn handle_propose(&mut self, mut entries: Vec<Entry>) -> Result<()> {
        assert!(!entries.is_empty(), "a proposal must carry entries");
        if !self.prs.progress.contains_key(&self.id) {
            return Err(Error::ProposalDropped); // Removed from the configuration.
        }
        if self.lead_transferee.is_some() {
            return Err(Error::ProposalDropped); // Raft thesis §3.10: stop accepting during transfer.
        }
        let last = self.raft_log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            if e.entry_type != EntryType::ConfChange {
                continue;
            }
            let cc: ConfChangeV2 =
                minikv_proto::decode(&e.data).map_err(|err| Error::Codec(err.to_string()))?;
            let joint = self.prs.conf.voters.is_joint();
            let refused = if self.pending_conf_index > self.raft_log.applied {
                true // One membership change at a time: the previous one is not applied yet.
            } else {
                match conf_change_kind(&cc) {
                    ConfChangeKind::LeaveJoint => !joint,
                    _ => joint,
                }
            };
            if refused {
                *e = Entry { entry_type: EntryType::Normal, ..Default::default() };
            } else {
                self.pending_conf_index = last + i as u64 + 1;
            }
        }
        if !self.append_entries(entries) {
            return Err(Error::ProposalDropped);
        }
        self.bcast_append();
        Ok(())
    }

    /// Appends proposals at the current term. Returns false if the uncommitted limit refuses
    /// them.
    pub(crate) fn append_entries(&mut self, mut entries: Vec<Entry>) -> bool {
        let size: u64 = entries.iter().map(|e| e.data.len() as u64).sum();
        let limit = self.max_uncommitted_size_bytes;
        if limit > 0
            && size > 0
            && self.uncommitted_size_bytes > 0
            && self.uncommitted_size_bytes + size > limit
        {
            return false;
        }
        self.uncommitted_size_bytes += size;
        let last = self.raft_log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        let last = self.raft_log.append_owned(entries);
        let self_id = self.id;
        if let Some(pr) = self.prs.progress.get_mut(&self_id) {
            pr.maybe_update(last);
        }
        self.maybe_commit();
        true
    }

    /// Advances the commit index to what a quorum holds; true if it moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let index = self.prs.committed();
        let term = self.term;
        if !self.raft_log.maybe_commit(index, term) {
            return false;
        }
        self.release_pending_read_index_messages();
        true
    }

    pub(crate) fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term(self.raft_log.committed).is_ok_and(|t| t == self.term)
    }

    fn release_pending_read_index_messages(&mut self) {
        if self.pending_read_index_messages.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index_messages) {
            self.handle_read_index(m);
        }
    }

    /// Whether a commit advance is told to every follower at once.
    fn should_bcast_commit(&self) -> bool {
        !self.skip_bcast_commit || self.pending_conf_index > self.raft_log.applied
    }

    pub(crate) fn bcast_append(&mut self) {
        // Runs once per proposal: reuse one id buffer instead of allocating a new one.
        let mut ids = std::mem::take(&mut self.peer_ids_scratch);
        ids.clear();
        ids.extend(self.prs.progress.keys().copied().filter(|&id| id != self.id));
        for &id in &ids {
            self.send_append(id);
        }
        self.peer_ids_scratch = ids;
    }

    pub(crate) fn send_append(&mut self, to: NodeId) {
        self.maybe_send_append(to, true);
    }

    /// Sends `to` the entries it needs (or a snapshot when they are compacted). Returns whether a
    /// message was sent. With `send_if_empty` false, an Append without entries is not sent.
    pub(crate) fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else { return false };
        if pr.is_paused() {
            return false;
        }
        // A window shrunk to one Append in flight.
        if pr.state == ProgressState::Replicate
            && pr.inflights.count() > 0
            && buggify(Point::RaftInflightOne)
        {
            return false;
        }
        let mut next = pr.next_idx;
        // Probing from further back than needed: the follower already holds those entries.
        if pr.state == ProgressState::Probe && buggify(Point::RaftProbeFromEarlier) {
            next = next.saturating_sub(3).max(pr.matched + 1).max(self.raft_log.first_index());
        }
        let term = self.raft_log.term(next - 1);
        // A limit of 0 bytes still sends one entry.
        let max_bytes =
            if buggify(Point::RaftSplitAppend) { 0 } else { self.max_size_per_msg_bytes };
        let entries = self.raft_log.entries(next, Some(max_bytes));
        let (log_term, entries) = match (term, entries) {
            (Ok(t), Ok(e)) => (t, e),
            (Err(StorageError::Compacted), _) | (_, Err(Error::Store(StorageError::Compacted))) => {
                return self.send_snapshot(to);
            }
            (t, e) => panic!("leader cannot read its log at {next} for peer {to}: {t:?} {e:?}"),
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let pr = self.prs.progress.get_mut(&to).expect("checked above");
        if let Some(last) = entries.last().map(|e| e.index) {
            match pr.state {
                ProgressState::Replicate => {
                    pr.optimistic_update(last);
                    pr.inflights.add(last);
                }
                ProgressState::Probe => pr.probe_sent = true,
                ProgressState::Snapshot => unreachable!("paused in Snapshot state"),
            }
        }
        let commit = self.raft_log.committed;
        // The follower applies at most what it holds after this Append.
        let holds = entries.last().map_or(next - 1, |e| e.index);
        pr.commit_sent = pr.commit_sent.max(commit.min(holds));
        self.send(Message {
            msg_type: MessageType::Append,
            to,
            index: next - 1,
            log_term,
            entries,
            commit,
            ..Default::default()
        });
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        if !self.prs.progress[&to].recent_active {
            return false; // Do not ship a snapshot to a peer that is probably down.
        }
        let next = self.prs.progress[&to].next_idx;
        let snapshot = match self.raft_log.snapshot(next - 1) {
            Ok(s) => s,
            // Raft keeps the peer in Probe and asks again at the next heartbeat response.
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => return false,
            Err(e) => panic!("leader cannot get a snapshot for peer {to}: {e}"),
        };
        assert!(
            !snapshot.is_empty(),
            "entries before {next} are compacted but the snapshot is empty"
        );
        let index = snapshot.metadata.index;
        self.prs.progress.get_mut(&to).expect("checked above").become_snapshot(index);
        self.send(Message {
            msg_type: MessageType::Snapshot,
            to,
            snapshot: Some(Box::new(snapshot)),
            ..Default::default()
        });
        true
    }

    /// The periodic heartbeat when no read waits on one. A follower that acknowledged an
    /// Append since the last heartbeat is skipped when the heartbeat would add nothing: in
    /// Replicate, if it was already told the commit index it may apply, or if Appends to it are
    /// still in flight (each carries the commit index, and their acks will bring more); in
    /// Probe, if its probe is out (a heartbeat response would only send the probe again). The
    /// Appends reset its election timer and its acks keep it active for check-quorum. If what
    /// is in flight is lost, it stops acknowledging and the next heartbeat goes out (and its
    /// response resends). Under steady writes this removes most heartbeats, their responses,
    /// and the probes they would have repeated.
    fn bcast_idle_heartbeat(&mut self) {
        let ids: Vec<NodeId> = self.prs.progress.keys().copied().collect();
        for id in ids {
            if id == self.id {
                continue;
            }
            let committed = self.raft_log.committed;
            let pr = self.prs.progress.get_mut(&id).expect("listed above");
            let acked = std::mem::take(&mut pr.acked_since_heartbeat);
            let nothing_to_add = match pr.state {
                ProgressState::Replicate => {
                    pr.commit_sent >= pr.matched.min(committed) || pr.inflights.count() > 0
                }
                // Its probe is out; the response (or, if the probe is lost, the next
                // heartbeat's) sends the next one.
                ProgressState::Probe => pr.probe_sent,
                ProgressState::Snapshot => false,
            };
            if self.skip_idle_heartbeats && acked && nothing_to_add {
                continue;
            }
            self.send_heartbeat(id, Vec::new());
        }
    }

    pub(crate) fn bcast_heartbeat(&mut self, ctx: Option<Vec<u8>>) {
        let ids: Vec<NodeId> = self.prs.progress.keys().copied().collect();
        for id in ids {
            if id != self.id {
                self.send_heartbeat(id, ctx.clone().unwrap_or_default());
            }
        }
    }

    fn send_heartbeat(&mut self, to: NodeId, context: Vec<u8>) {
        if buggify(Point::RaftSkipHeartbeat) {
            return;
        }
        // Never tell a follower to commit past what it is known to hold.
        let pr = self.prs.progress.get_mut(&to).expect("a tracked peer");
        let commit = pr.matched.min(self.raft_log.committed);
        pr.commit_sent = pr.commit_sent.max(commit);
        self.send(Message {
            msg_type: MessageType::Heartbeat,
            to,
            commit,
            context,
            ..Default::default()
        });
    }

    fn handle_append_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let pr = self.prs.progress.get_mut(&m.from).expect("checked by step_leader");
        pr.recent_active = true;
        if m.reject {
            let next_probe = if m.log_term_hint > 0 {
                self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term_hint).0
            } else {
                m.reject_hint
            };
            let pr = self.prs.progress.get_mut(&m.from).expect("checked by step_leader");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return;
        }
        let was_paused = pr.is_paused();
        pr.acked_since_heartbeat = true;
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => {
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Snapshot => {}
            ProgressState::Replicate => pr.inflights.free_to(m.index),
        }
        if self.maybe_commit() {
            // With skip_bcast_commit the new commit index rides on the next Append or
            // heartbeat, unless a membership change waits for it (as in raft-rs).
            if self.should_bcast_commit() {
                self.bcast_append();
            }
        } else if was_paused {
            self.send_append(m.from);
        }
        // Fill the in-flight window while there is more to send.
        while self.maybe_send_append(m.from, false) {}
        let matched = self.prs.progress[&m.from].matched;
        if self.lead_transferee == Some(m.from) && matched == last_index {
            // Raft thesis §3.10: the target caught up; tell it to campaign now.
            self.send_timeout_now(m.from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let pr = self.prs.progress.get_mut(&m.from).expect("checked by step_leader");
        pr.recent_active = true;
        pr.probe_sent = false;
        // In Replicate, an Append here only resends what may have been lost: when the window
        // is full, or when `matched` did not move since the last heartbeat response. Entries
        // still travelling are otherwise acknowledged soon; resending at every heartbeat would
        // double the Appends under steady load.
        let stalled = pr.matched == pr.matched_at_heartbeat;
        pr.matched_at_heartbeat = pr.matched;
        let resend = match pr.state {
            ProgressState::Replicate if pr.inflights.full() => {
                pr.inflights.free_first_one();
                true
            }
            ProgressState::Replicate => stalled || pr.next_idx <= last_index,
            ProgressState::Probe | ProgressState::Snapshot => true,
        };
        if pr.matched < last_index && resend {
            self.send_append(m.from);
        }
        if self.read_only.option != ReadOnlyOption::Safe || m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else { return };
        let acks = acks.clone();
        if self.prs.ack_result(&acks) != VoteResult::Won {
            return;
        }
        for rs in self.read_only.advance(&m.context) {
            self.respond_read_index(rs.req, rs.index);
        }
    }

    /// Raft §8 / thesis §6.4: a read is served at the commit index once leadership is confirmed.
    pub(crate) fn handle_read_index(&mut self, m: Message) {
        if self.prs.is_singleton() {
            let index = self.raft_log.committed;
            self.respond_read_index(m, index);
            return;
        }
        if !self.committed_entry_in_current_term() {
            // The commit index may be stale until the leader commits its own no-op.
            self.pending_read_index_messages.push(m);
            return;
        }
        let index = self.raft_log.committed;
        match self.read_only.option {
            ReadOnlyOption::Safe => {
                let ctx = m.context.clone();
                let self_id = self.id;
                self.read_only.add_request(index, m, self_id);
                self.bcast_heartbeat(Some(ctx));
            }
            ReadOnlyOption::LeaseBased => self.respond_read_index(m, index),
        }
    }

    fn respond_read_index(&mut self, req: Message, index: u64) {
        if req.from == INVALID_ID || req.from == self.id {
            self.read_states.push(ReadState { index, request_ctx: req.context });
        } else {
            self.send(Message {
                msg_type: MessageType::ReadIndexResponse,
                to: req.from,
                index,
                context: req.context,
                ..Default::default()
            });
        }
    }

    fn handle_transfer_leader(&mut self, transferee: NodeId) {
        if self.prs.progress[&transferee].is_learner {
            return;
        }
        if let Some(current) = self.lead_transferee {
            if current == transferee {
                return; // Already transferring to it.
            }
            self.lead_transferee = None;
        }
        if transferee == self.id {
            return;
        }
        // The transfer must finish within an election timeout (tick_heartbeat aborts it).
        self.election_elapsed = 0;
        self.lead_transferee = Some(transferee);
        if self.prs.progress[&transferee].matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
        } else {
            self.send_append(transferee);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        self.send(Message { msg_type: MessageType::TimeoutNow, to, ..Default::default() });
    }

    /// Reacts to a configuration switch (conf change applied); returns the new `ConfState`.
    pub(crate) fn after_config_switch(&mut self) -> ConfState {
        let cs = self.prs.conf_state();
        self.is_learner = self.prs.conf.learners.contains(&self.id);
        if self.role != StateRole::Leader || cs.voters.is_empty() {
            return cs;
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else {
            let ids: Vec<NodeId> = self.prs.progress.keys().copied().collect();
            let self_id = self.id;
            for id in ids.into_iter().filter(|&id| id != self_id) {
                self.maybe_send_append(id, false);
            }
        }
        if self.lead_transferee.is_some_and(|t| !self.prs.conf.voters.contains(t)) {
            self.lead_transferee = None;
        }
        if !self.prs.conf.voters.contains(self.id) {
            // Removed (or demoted): tell everyone the latest commit, then step down so the
            // remaining voters elect a leader among themselves.
            self.bcast_heartbeat(None);
            let term = self.term;
            self.become_follower(term, INVALID_ID);
        }
        cs
    }

    /// The application applied entries up to `index`.
    pub(crate) fn commit_apply(&mut self, index: u64, applied_entries: &[Entry]) {
        self.raft_log.applied_to(index);
        let size: u64 = applied_entries.iter().map(|e| e.data.len() as u64).sum();
        self.uncommitted_size_bytes = self.uncommitted_size_bytes.saturating_sub(size);
        let auto_leave = self.prs.conf.auto_leave && self.prs.conf.voters.is_joint();
        if self.role == StateRole::Leader && auto_leave && index >= self.pending_conf_index {
            // The joint configuration is applied: propose leaving it (an empty conf change).
            let data = minikv_proto::encode(&ConfChangeV2::default()).expect("encode conf change");
            let entry = Entry { entry_type: EntryType::ConfChange, data, ..Default::default() };
            let m = Message {
                msg_type: MessageType::Propose,
                entries: vec![entry],
                ..Default::default()
            };
            let _ = self.step(m);
        }
    }
}
