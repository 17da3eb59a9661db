//! `RawNode`: the application's handle on a Raft node, and the `Ready` contract.
//!
//! The loop is: feed inputs (tick, step, propose), then `ready()`, `persist(&mut rd)`, send
//! `rd.take_messages()`, apply `rd.committed_entries()`, `advance(rd)`. The order is enforced:
//! messages cannot be taken before the Ready was persisted, and a second Ready before `advance`
//! panics.

use minikv_proto::raftpb::{
    ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType, NodeId, Snapshot,
};

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::raft::{Raft, ReadState, SoftState};
use crate::status::Status;
use crate::storage::Storage;

/// How sending a snapshot to a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    Finish,
    Failure,
}

/// Everything the application must do after a batch of inputs: persist `snapshot`, `entries` and
/// `hard_state` (in that order, synced), then send the messages, then apply the snapshot and the
/// committed entries, then serve `read_states` once applied, then call `RawNode::advance`.
#[derive(Debug, Default)]
pub struct Ready {
    /// Which `ready()` call produced it (pairs it with `persist`/`advance`).
    number: u64,
    soft_state: Option<SoftState>,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    snapshot: Option<Snapshot>,
    committed_entries: Vec<Entry>,
    read_states: Vec<ReadState>,
    messages: Vec<Message>,
    persisted: bool,
}

impl Ready {
    /// The leader or role changed (not persisted).
    pub fn soft_state(&self) -> Option<&SoftState> {
        self.soft_state.as_ref()
    }

    /// The hard state changed; persist it.
    pub fn hard_state(&self) -> Option<&HardState> {
        self.hard_state.as_ref()
    }

    /// New entries to persist.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// A snapshot to install (persist) and restore the state machine from.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Committed entries to apply, in order.
    pub fn committed_entries(&self) -> &[Entry] {
        &self.committed_entries
    }

    /// Reads that are linearizable once the state machine applied `index`.
    pub fn read_states(&self) -> &[ReadState] {
        &self.read_states
    }

    /// Whether `RawNode::persist` ran on this Ready.
    pub fn is_persisted(&self) -> bool {
        self.persisted
    }

    /// The messages to send. Persist-before-send: panics unless `RawNode::persist` ran on this
    /// Ready, because a vote or an Append ack sent before its state is durable can break safety.
    pub fn take_messages(&mut self) -> Vec<Message> {
        assert!(
            self.persisted,
            "Ready::take_messages before RawNode::persist: messages may depend on unpersisted \
             hard state or entries (persist-before-send violated)"
        );
        std::mem::take(&mut self.messages)
    }
}

/// The application's handle on one Raft node.
#[derive(Debug)]
pub struct RawNode<S: Storage> {
    pub raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// Number of the Ready handed out and not yet advanced, if any.
    outstanding_ready: Option<u64>,
    readies_produced: u64,
}

impl<S: Storage> RawNode<S> {
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let raft = Raft::new(config, store)?;
        let prev_hard_state = raft.hard_state();
        Ok(RawNode {
            prev_soft_state: raft.soft_state(),
            prev_hard_state,
            raft,
            outstanding_ready: None,
            readies_produced: 0,
        })
    }

    /// Advances the logical clock by one tick. Returns whether there may be something to do.
    pub fn tick(&mut self) -> bool {
        self.raft.tick();
        #[cfg(any(test, debug_assertions))]
        self.raft.check_invariants();
        self.has_ready()
    }

    /// Starts an election now (no-op for a leader or a non-voter).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(local(MessageType::Hup))
    }

    pub fn propose(&mut self, context: Vec<u8>, data: Vec<u8>) -> Result<()> {
        let entry = Entry { entry_type: EntryType::Normal, data, context, ..Default::default() };
        self.raft.step(Message {
            msg_type: MessageType::Propose,
            entries: vec![entry],
            ..local(MessageType::Propose)
        })
    }

    /// Proposes a membership change; apply it with `apply_conf_change` once it is committed.
    pub fn propose_conf_change(&mut self, context: Vec<u8>, cc: ConfChangeV2) -> Result<()> {
        let data = minikv_proto::encode(&cc).map_err(|e| Error::Codec(e.to_string()))?;
        let entry =
            Entry { entry_type: EntryType::ConfChange, data, context, ..Default::default() };
        self.raft.step(Message {
            msg_type: MessageType::Propose,
            entries: vec![entry],
            ..local(MessageType::Propose)
        })
    }

    /// Applies a committed conf change entry's change; returns the new configuration.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        self.raft.apply_conf_change(cc)
    }

    /// Steps a message from the network. Local message types are refused, as are responses from
    /// peers outside the configuration.
    #[inline]
    pub fn step(&mut self, m: Message) -> Result<()> {
        if m.msg_type.is_local() {
            return Err(Error::StepLocalMsg);
        }
        if is_response(m.msg_type) && !self.raft.prs.progress.contains_key(&m.from) {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    /// Requests a linearizable read; a `ReadState` with `ctx` appears in a later Ready.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        let _ = self.raft.step(Message { context: ctx, ..local(MessageType::ReadIndex) });
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: NodeId) {
        let _ = self.raft.step(Message { from: transferee, ..local(MessageType::TransferLeader) });
    }

    pub fn report_unreachable(&mut self, id: NodeId) {
        let _ = self.raft.step(Message { from: id, ..local(MessageType::Unreachable) });
    }

    pub fn report_snapshot(&mut self, id: NodeId, status: SnapshotStatus) {
        let reject = status == SnapshotStatus::Failure;
        let _ = self.raft.step(Message { from: id, reject, ..local(MessageType::SnapshotStatus) });
    }

    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || r.hard_state() != self.prev_hard_state
            || r.raft_log.unstable.snapshot.is_some()
            || !r.raft_log.unstable_entries().is_empty()
            || r.raft_log.has_next_entries()
            || !r.msgs.is_empty()
            || !r.read_states.is_empty()
    }

    /// Collects what must be persisted, sent and applied. Panics if the previous Ready was not
    /// advanced.
    pub fn ready(&mut self) -> Ready {
        if let Some(n) = self.outstanding_ready {
            panic!("RawNode::ready called again before advance of Ready #{n}");
        }
        self.readies_produced += 1;
        let number = self.readies_produced;
        self.outstanding_ready = Some(number);
        let r = &mut self.raft;
        let soft_state = r.soft_state();
        let hard_state = r.hard_state();
        let msg_count = r.msgs.len();
        let rd = Ready {
            number,
            soft_state: (soft_state != self.prev_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.prev_hard_state).then_some(hard_state),
            entries: r.raft_log.unstable_entries().to_vec(),
            snapshot: r.raft_log.unstable.snapshot.clone(),
            committed_entries: r.raft_log.next_entries(Some(r.max_committed_size_per_ready_bytes)),
            read_states: std::mem::take(&mut r.read_states),
            // The next Ready likely carries as many messages: size for it up front.
            messages: std::mem::replace(&mut r.msgs, Vec::with_capacity(msg_count)),
            persisted: false,
        };
        self.prev_soft_state = soft_state;
        self.prev_hard_state = hard_state;
        rd
    }

    /// Writes `rd`'s snapshot, entries and hard state to the store, then marks `rd` persisted.
    pub fn persist(&mut self, rd: &mut Ready) -> Result<()> {
        assert_eq!(
            self.outstanding_ready,
            Some(rd.number),
            "RawNode::persist of Ready #{} which is not the outstanding one",
            rd.number
        );
        let log = &mut self.raft.raft_log;
        if let Some(snapshot) = &rd.snapshot {
            let index = snapshot.metadata.index;
            log.store.apply_snapshot(snapshot.clone())?;
            log.stable_snap_to(index);
        }
        if let (Some(first), Some(last)) = (rd.entries.first(), rd.entries.last()) {
            // The unstable tail still holding `rd.entries` (same first index, same last
            // (index, term): log matching) is moved into storage rather than cloned again.
            match log.take_stable_to(first.index, last.index, last.term) {
                Some(mut stable) => {
                    #[cfg(any(test, debug_assertions))]
                    assert_eq!(
                        stable, rd.entries,
                        "unstable entries differ from Ready #{}",
                        rd.number
                    );
                    if let Err(e) = log.store.append_moving(&mut stable) {
                        // Nothing was persisted: the entries go back to the unstable tail.
                        log.untake_stable(first.index, stable);
                        return Err(e);
                    }
                }
                None => {
                    log.store.append(&rd.entries)?;
                    log.stable_to(last.index, last.term);
                }
            }
        }
        if let Some(hs) = rd.hard_state {
            log.store.set_hard_state(hs)?;
        }
        rd.persisted = true;
        Ok(())
    }

    /// Tells the node `rd` was persisted and its committed entries applied. Panics if `rd` was
    /// not persisted or is not the outstanding Ready.
    pub fn advance(&mut self, rd: Ready) {
        assert!(
            rd.persisted,
            "RawNode::advance of Ready #{} that was never persisted (call RawNode::persist first)",
            rd.number
        );
        assert_eq!(
            self.outstanding_ready,
            Some(rd.number),
            "RawNode::advance of Ready #{} which is not the outstanding one",
            rd.number
        );
        self.outstanding_ready = None;
        if let Some(snapshot) = &rd.snapshot {
            let index = snapshot.metadata.index;
            self.raft.commit_apply(index, &[]);
        }
        if let Some(last) = rd.committed_entries.last() {
            self.raft.commit_apply(last.index, &rd.committed_entries);
        }
        #[cfg(any(test, debug_assertions))]
        self.raft.check_invariants();
    }

    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }

    pub fn status(&self) -> Status {
        Status::new(&self.raft)
    }
}

fn local(msg_type: MessageType) -> Message {
    Message { msg_type, ..Default::default() }
}

fn is_response(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::AppendResponse
            | MessageType::HeartbeatResponse
            | MessageType::RequestVoteResponse
            | MessageType::RequestPreVoteResponse
            | MessageType::ReadIndexResponse
    )
}
