//! The store: a router of region peers over one engine, driven by its environment through
//! `tick`, `on_raft_message`, `propose` and `handle_ready`, answering through `take_outbound`
//! and `take_responses`. No I/O of its own beyond the engine, no clock, no async.

use std::collections::BTreeMap;
use std::sync::Arc;

use minikv_engine::{Cf, Engine, WriteBatch};
use minikv_proto::decode;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, PeerRole, Region, RegionId, StoreId};
use minikv_proto::raft_cmdpb::{RaftCmdRequest, RaftCmdResponse};
use minikv_proto::raft_serverpb::{PeerState, RaftMessage, RegionLocalState};
use minikv_raft::{CAMPAIGN_TRANSFER_CONTEXT, Entry, MessageType, StateRole};

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::events;
use crate::keys;
use crate::peer::{Peer, ReqToken, Responses};
use crate::peer_storage::PeerStorage;
use crate::snap::{Assembly, Fed, feed_chunk, split_into_chunks};

/// Counters of what the store did, for tests and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub readies_handled: u64,
    pub snapshots_sent: u64,
    pub snapshot_chunks_sent: u64,
    pub snapshots_received: u64,
    pub snapshots_rejected: u64,
    pub peers_created: u64,
    pub peers_destroyed: u64,
    pub tombstones_sent: u64,
    pub messages_dropped: u64,
}

/// A point-in-time view of one peer, for tests and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub peer: metapb::Peer,
    pub region: Region,
    pub role: StateRole,
    pub leader_id: u64,
    pub term: u64,
    pub commit: u64,
    pub applied_index: u64,
    pub truncated_index: u64,
    pub last_index: u64,
    pub pending_proposals: usize,
    pub pending_reads: usize,
    /// Reads this peer served from its leader lease.
    pub lease_reads: u64,
}

/// A store: every peer this node hosts, and the queues the environment drains.
#[derive(Debug)]
pub struct Store {
    store_id: StoreId,
    engine: Arc<Engine>,
    config: StoreConfig,
    peers: BTreeMap<RegionId, Peer>,
    /// Destroyed peers' last region states: stale messages must not recreate them.
    tombstones: BTreeMap<RegionId, RegionLocalState>,
    assemblies: BTreeMap<RegionId, Option<Assembly>>,
    outbound: Vec<RaftMessage>,
    responses: Responses,
    next_read_id: u64,
    poisoned: bool,
    /// The engine's reopen count when the store opened (see `is_poisoned`).
    engine_reopens_at_open: u64,
    stats: StoreStats,
}

impl Store {
    /// Opens the store on `engine`, recovering every peer from its region, raft and apply
    /// states (after a crash: from what the disk kept).
    pub fn open(store_id: StoreId, engine: Arc<Engine>, config: StoreConfig) -> Result<Store> {
        let engine_reopens_at_open = engine.stats().reopens;
        let mut store = Store {
            store_id,
            engine,
            engine_reopens_at_open,
            config,
            peers: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            assemblies: BTreeMap::new(),
            outbound: Vec::new(),
            responses: Vec::new(),
            next_read_id: 1,
            poisoned: false,
            stats: StoreStats::default(),
        };
        let (start, end) = keys::region_state_range();
        for (key, value) in store.engine.scan(Cf::Raft, &start, Some(&end), usize::MAX)? {
            let region_id = keys::region_id_of_state_key(&key);
            let state: RegionLocalState = decode(&value)?;
            if state.state == PeerState::Tombstone {
                store.tombstones.insert(region_id, state);
                continue;
            }
            let Some(me) = state.region.peer_on_store(store_id).cloned() else {
                panic!(
                    "store {store_id}: region {region_id} is recorded here but lists no peer on this store"
                );
            };
            let storage = PeerStorage::load(store.engine.clone(), state.region, me.id)?;
            store.peers.insert(region_id, Peer::new(&store.config, me, storage)?);
        }
        Ok(store)
    }

    pub fn store_id(&self) -> StoreId {
        self.store_id
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Writes the initial state of `region` (its first peers named in it) and starts this
    /// store's peer. Every store listed in the region bootstraps it the same way.
    pub fn bootstrap_first_region(&mut self, region: Region) -> Result<()> {
        self.check_poisoned()?;
        if self.peers.contains_key(&region.id) || self.tombstones.contains_key(&region.id) {
            return Err(Error::RegionExists(region.id));
        }
        let Some(me) = region.peer_on_store(self.store_id).cloned() else {
            return Err(Error::InvalidBootstrap(format!(
                "region lists no peer on store {}",
                self.store_id
            )));
        };
        if !region.peers.iter().any(|p| p.role == PeerRole::Voter) {
            return Err(Error::InvalidBootstrap("region has no voter".to_string()));
        }
        let mut batch = WriteBatch::new();
        PeerStorage::write_bootstrap_state(&mut batch, &region)?;
        self.engine.write_owned(batch, true)?;
        let storage = PeerStorage::load(self.engine.clone(), region.clone(), me.id)?;
        self.peers.insert(region.id, Peer::new(&self.config, me, storage)?);
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.is_poisoned() { Err(Error::Poisoned) } else { Ok(()) }
    }

    /// One Raft tick for every peer.
    pub fn tick(&mut self) {
        for peer in self.peers.values_mut() {
            peer.tick(&self.config);
        }
    }

    /// Ends every leader lease at once. The node calls it when its clock shows that ticks were
    /// missed (the node was paused or starved): a lease is counted in ticks, and ticks that
    /// never ran would otherwise stretch it past the election timeout of the other stores.
    pub fn expire_leases(&mut self) {
        for peer in self.peers.values_mut() {
            peer.fence_lease();
        }
    }

    /// Starts an election on this store's peer of `region_id` now (tests, bootstrap).
    pub fn campaign(&mut self, region_id: RegionId) -> Result<()> {
        if let Some(peer) = self.peers.get_mut(&region_id) {
            peer.raw.campaign()?;
            peer.observe_role();
        }
        Ok(())
    }

    /// Starts `cmd`; its response comes back through `take_responses` with `token`. An error
    /// here means the command was not started (a definite failure).
    pub fn propose(
        &mut self,
        cmd: RaftCmdRequest,
        token: ReqToken,
    ) -> std::result::Result<(), RegionError> {
        let region_id = cmd.header.region_id;
        if self.is_poisoned() {
            return Err(RegionError::ServerIsBusy {
                reason: "store poisoned by an engine failure".to_string(),
            });
        }
        let Some(peer) = self.peers.get_mut(&region_id) else {
            return Err(RegionError::RegionNotFound { region_id });
        };
        let read_id = self.next_read_id;
        self.next_read_id += 1;
        peer.propose(&self.config, cmd, token, read_id, &mut self.responses)?;
        // A read served from the lease may be answerable at once (no Ready will come for it).
        if self.config.lease_read && peer.serve_reads(&self.engine, &mut self.responses).is_err() {
            // Its answer never comes; the environment sees `is_poisoned` and restarts.
            self.poisoned = true;
        }
        Ok(())
    }

    /// Whether an engine failure poisoned the store (drop it and reopen it from its disk).
    /// So does any reopen of the engine since the store opened, even one after a failure the
    /// store never saw (a snapshot that could not be generated is only "try again" to Raft):
    /// a reopen drops the engine's unsynced writes, which the store's memory already counts
    /// as done (applied indexes, answered proposals; chaos seed 687 lost an applied write so).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned || self.engine.stats().reopens != self.engine_reopens_at_open
    }

    /// Responses to proposals, in the order they were produced.
    pub fn take_responses(&mut self) -> Vec<(ReqToken, RaftCmdResponse)> {
        std::mem::take(&mut self.responses)
    }

    /// Messages to other stores, in the order they were produced.
    pub fn take_outbound(&mut self) -> Vec<RaftMessage> {
        std::mem::take(&mut self.outbound)
    }

    /// Whether some peer has a Ready to handle.
    pub fn has_ready(&self) -> bool {
        self.peers.values().any(|p| p.raw.has_ready())
    }

    /// Handles the Ready of every peer that has one: persist all of them and apply their
    /// committed entries with one engine write, then send their messages, answer, serve reads
    /// and advance. Call again while `has_ready()` holds. An error poisons the store.
    ///
    /// The write is synced when some Ready carries entries, a snapshot, or a new term or vote:
    /// what Raft's messages and its own vote count depend on. A Ready that only moves the
    /// commit index and applies needs no sync (as in etcd): a crash loses a suffix of unsynced
    /// writes, never part of one, so the node restarts with an older commit and apply state
    /// and applies those entries again from its log.
    ///
    /// Applying in the same atomic write as the log is safe: every entry applied here was
    /// persisted by an earlier write or is persisted by this one, so after a crash the apply
    /// state never runs ahead of the log on disk. A peer whose Ready installs a snapshot
    /// applies its entries in a second write, after the snapshot's data is in the engine
    /// (apply reads through the engine).
    pub fn handle_ready(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.handle_ready_inner();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn handle_ready_inner(&mut self) -> Result<()> {
        let ids: Vec<RegionId> =
            self.peers.iter().filter(|(_, p)| p.raw.has_ready()).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        let mut readies = Vec::with_capacity(ids.len());
        let mut sync = false;
        for id in ids {
            let peer = self.peers.get_mut(&id).expect("listed above");
            let before = peer.storage().hard_state();
            let mut rd = peer.raw.ready();
            sync |= !rd.entries().is_empty()
                || rd.snapshot().is_some()
                || rd
                    .hard_state()
                    .is_some_and(|hs| hs.term != before.term || hs.vote != before.vote);
            peer.raw.persist(&mut rd)?;
            batch.append(&mut peer.raw.store_mut().take_pending());
            // Addressed now, against the region as it was when Raft made them (apply below may
            // remove a peer); they leave only after the write.
            let stats = &mut self.stats;
            let messages: Vec<RaftMessage> = rd
                .take_messages()
                .into_iter()
                .filter_map(|m| {
                    let msg = peer.wrap(m);
                    stats.messages_dropped += u64::from(msg.is_none());
                    msg
                })
                .collect();
            readies.push((id, rd, messages));
        }
        // Answers wait for the write: a response must not claim what a failed write lost.
        let mut answers = Vec::new();
        for (id, rd, _) in &readies {
            if rd.snapshot().is_none() {
                let peer = self.peers.get_mut(id).expect("listed above");
                let renewal = peer.apply_committed(
                    rd.committed_entries(),
                    &self.engine,
                    &mut batch,
                    &mut answers,
                )?;
                if let Some(proposed_tick) = renewal {
                    peer.renew_lease_by_commit(&self.config, proposed_tick);
                }
            }
        }
        if !batch.is_empty() {
            self.engine.write_owned(batch, sync)?;
        }
        self.responses.append(&mut answers);
        let mut destroyed = Vec::new();
        for (id, rd, messages) in readies {
            self.stats.readies_handled += 1;
            for msg in messages {
                push_outbound(&mut self.outbound, &mut self.stats, &self.config, msg);
            }
            let peer = self.peers.get_mut(&id).expect("listed above");
            if let Some(ss) = rd.soft_state() {
                peer.on_soft_state(ss, &mut self.responses);
            }
            if let Some(snapshot) = rd.snapshot() {
                let meta = &snapshot.metadata;
                events::snapshot_applied(id, meta.index, meta.term);
                peer.on_snapshot_installed(meta.term, meta.index, &mut self.responses);
                self.stats.snapshots_received += 1;
                apply_after_snapshot(
                    peer,
                    rd.committed_entries(),
                    &self.engine,
                    &mut self.responses,
                )?;
            }
            peer.on_read_states(&self.config, rd.read_states());
            peer.raw.advance(rd);
            peer.observe_role();
            peer.serve_reads(&self.engine, &mut self.responses)?;
            for to in std::mem::take(&mut peer.tombstones_to_send) {
                let msg = tombstone_message(peer.region(), &peer.meta, to);
                self.outbound.push(msg);
                self.stats.tombstones_sent += 1;
            }
            if peer.pending_destroy {
                destroyed.push(id);
            }
        }
        for id in destroyed {
            self.destroy_peer(id, "removed by a conf change")?;
        }
        Ok(())
    }

    /// Deletes a peer's raft state and data, keeps a tombstone, drops it from the router.
    fn destroy_peer(&mut self, region_id: RegionId, reason: &str) -> Result<()> {
        let Some(mut peer) = self.peers.remove(&region_id) else { return Ok(()) };
        events::peer_destroyed(region_id, peer.meta.id, peer.region().epoch.conf_ver, reason);
        let mut batch = WriteBatch::new();
        let tombstone = peer.raw.store().write_destroy(&mut batch, &peer.meta)?;
        self.engine.write_owned(batch, true)?;
        peer.fail_all(RegionError::RegionNotFound { region_id }, &mut self.responses);
        self.tombstones.insert(region_id, tombstone);
        self.assemblies.remove(&region_id);
        self.stats.peers_destroyed += 1;
        Ok(())
    }

    /// Delivers a message from another store.
    pub fn on_raft_message(&mut self, msg: RaftMessage) -> Result<()> {
        self.check_poisoned()?;
        let result = self.on_raft_message_inner(msg);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn on_raft_message_inner(&mut self, msg: RaftMessage) -> Result<()> {
        if msg.to_peer.store_id != self.store_id {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        if msg.is_tombstone {
            return self.on_tombstone(&msg);
        }
        let msg = if msg.snapshot_chunk.is_some() {
            let slot = self.assemblies.entry(msg.region_id).or_default();
            match feed_chunk(slot, msg, self.config.max_snapshot_chunks) {
                Fed::Incomplete => return Ok(()),
                Fed::Rejected(_) => {
                    self.stats.snapshots_rejected += 1;
                    return Ok(());
                }
                Fed::Complete(m) => *m,
            }
        } else {
            msg
        };
        if !self.maybe_create_peer(&msg)? {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        let peer = self.peers.get_mut(&msg.region_id).expect("created or found above");
        if !peer.raw.store().is_initialized() {
            peer.addressed_at_conf_ver = peer.addressed_at_conf_ver.max(msg.region_epoch.conf_ver);
        }
        let from_is_member = peer.region().peers.iter().any(|p| p.id == msg.from_peer.id);
        if peer.raw.store().is_initialized()
            && !from_is_member
            && msg.region_epoch.conf_ver < peer.region().epoch.conf_ver
        {
            // The sender was removed and does not know it yet: tell it.
            let to = msg.from_peer.clone();
            let tomb = tombstone_message(peer.region(), &peer.meta, to);
            self.outbound.push(tomb);
            self.stats.tombstones_sent += 1;
            return Ok(());
        }
        if self.config.lease_read
            && peer.ticks() < self.config.election_tick as u64
            && matches!(
                msg.message.msg_type,
                MessageType::RequestVote | MessageType::RequestPreVote
            )
            && msg.message.context != CAMPAIGN_TRANSFER_CONTEXT
        {
            // This peer may have promised a leader, before a restart, not to vote for anyone
            // else for an election timeout; it cannot remember, so it waits one out (leases
            // rely on that promise, see `lease.rs`).
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        peer.peer_cache.insert(msg.from_peer.id, msg.from_peer.clone());
        // Errors here are stale or misdirected messages (e.g. a response from a removed
        // peer); Raft ignores them and so do we.
        let _ = peer.raw.step(msg.message);
        peer.observe_role();
        Ok(())
    }

    /// Finds the message's peer, creating an uninitialized one for a message from a leader (it
    /// will be filled by a snapshot) or for a (pre-)vote request (it may vote: a voter whose
    /// store never received the region must still count, or a region whose only other voter
    /// lost its leadership could never elect again). Returns whether the message should be
    /// stepped. An uninitialized peer's hard state is persisted under its region id, so the
    /// peer re-created after a restart remembers its vote (`PeerStorage::new_uninitialized`).
    fn maybe_create_peer(&mut self, msg: &RaftMessage) -> Result<bool> {
        if let Some(peer) = self.peers.get(&msg.region_id) {
            if msg.to_peer.id == peer.meta.id {
                return Ok(true);
            }
            if msg.to_peer.id < peer.meta.id {
                return Ok(false); // For an older incarnation of this store's peer.
            }
            // A newer peer id: ours was removed (and possibly re-added as a new peer).
            if peer.raw.store().is_initialized()
                && msg.region_epoch.conf_ver <= peer.region().epoch.conf_ver
            {
                return Ok(false);
            }
            self.destroy_peer(msg.region_id, "superseded by a newer peer")?;
        }
        if let Some(tomb) = self.tombstones.get(&msg.region_id) {
            let old_id = tomb.region.peer_on_store(self.store_id).map_or(0, |p| p.id);
            if msg.to_peer.id <= old_id || msg.region_epoch.conf_ver <= tomb.region.epoch.conf_ver {
                return Ok(false);
            }
        }
        if !creates_peer(msg.message.msg_type) {
            return Ok(false);
        }
        let storage =
            PeerStorage::new_uninitialized(self.engine.clone(), msg.region_id, msg.to_peer.id)?;
        let peer = Peer::new(&self.config, msg.to_peer.clone(), storage)?;
        events::peer_created(
            msg.region_id,
            msg.to_peer.id,
            msg.from_peer.id,
            message_type_name(msg.message.msg_type),
        );
        self.peers.insert(msg.region_id, peer);
        self.stats.peers_created += 1;
        Ok(true)
    }

    /// A tombstone destroys this store's peer if it is the one named and older than the
    /// sender's view of the region. An uninitialized peer knows no region; it compares with the
    /// newest view a message addressed it from: a sender that has not yet applied the change
    /// adding it (a store restarted behind, chaos seed 385) must not destroy it, since its
    /// tombstone would then keep the member from ever being created again.
    fn on_tombstone(&mut self, msg: &RaftMessage) -> Result<()> {
        let Some(peer) = self.peers.get(&msg.region_id) else { return Ok(()) };
        if peer.meta.id != msg.to_peer.id {
            return Ok(());
        }
        let known_conf_ver = if peer.raw.store().is_initialized() {
            peer.region().epoch.conf_ver
        } else {
            peer.addressed_at_conf_ver
        };
        let stale = known_conf_ver < msg.region_epoch.conf_ver;
        if stale {
            self.destroy_peer(msg.region_id, "stale peer told by a tombstone message")?;
        }
        Ok(())
    }

    /// The region as this store's peer knows it.
    pub fn region(&self, region_id: RegionId) -> Option<&Region> {
        self.peers.get(&region_id).map(Peer::region)
    }

    /// Regions with a peer on this store, in id order.
    pub fn region_ids(&self) -> Vec<RegionId> {
        self.peers.keys().copied().collect()
    }

    /// Whether the region's peer here was destroyed.
    pub fn is_tombstone(&self, region_id: RegionId) -> bool {
        self.tombstones.contains_key(&region_id) && !self.peers.contains_key(&region_id)
    }

    pub fn is_leader(&self, region_id: RegionId) -> bool {
        self.peers.get(&region_id).is_some_and(Peer::is_leader)
    }

    pub fn peer_status(&self, region_id: RegionId) -> Option<PeerStatus> {
        let peer = self.peers.get(&region_id)?;
        let storage = peer.storage();
        let raft = &peer.raw.raft;
        Some(PeerStatus {
            peer: peer.meta.clone(),
            region: storage.region().clone(),
            role: raft.role,
            leader_id: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied_index: storage.applied_index(),
            truncated_index: storage.truncated_state().index,
            last_index: storage.last_index(),
            pending_proposals: peer.proposals.len(),
            pending_reads: peer.reads.len(),
            lease_reads: peer.lease_reads,
        })
    }
}

fn tombstone_message(region: &Region, from: &metapb::Peer, to: metapb::Peer) -> RaftMessage {
    RaftMessage {
        region_id: region.id,
        from_peer: from.clone(),
        to_peer: to,
        region_epoch: region.epoch,
        is_tombstone: true,
        ..Default::default()
    }
}

fn push_outbound(
    out: &mut Vec<RaftMessage>,
    stats: &mut StoreStats,
    cfg: &StoreConfig,
    msg: RaftMessage,
) {
    if msg.message.msg_type != MessageType::Snapshot {
        out.push(msg);
        return;
    }
    let (region, to, index) = (
        msg.region_id,
        msg.to_peer.clone(),
        msg.message.snapshot.as_ref().map_or(0, |s| s.metadata.index),
    );
    let chunks = split_into_chunks(msg, cfg.snapshot_chunk_size_bytes);
    events::snapshot_sent(region, to.id, to.store_id, index, chunks.len());
    stats.snapshots_sent += 1;
    stats.snapshot_chunks_sent += chunks.len() as u64;
    out.extend(chunks);
}

/// Whether a message for a peer this store lacks creates it (uninitialized): one from a leader,
/// or a request for its vote.
fn creates_peer(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::Append
            | MessageType::Heartbeat
            | MessageType::Snapshot
            | MessageType::RequestVote
            | MessageType::RequestPreVote
    )
}

fn message_type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Append => "an append",
        MessageType::Heartbeat => "a heartbeat",
        MessageType::Snapshot => "a snapshot",
        MessageType::RequestVote => "a vote request",
        MessageType::RequestPreVote => "a pre-vote request",
        _ => "a message",
    }
}

/// Applies the entries committed past a snapshot installed by the same Ready, once the
/// snapshot's data is in the engine (apply reads through it).
fn apply_after_snapshot(
    peer: &mut Peer,
    entries: &[Entry],
    engine: &Engine,
    out: &mut Responses,
) -> Result<()> {
    let mut batch = WriteBatch::new();
    let mut answers = Vec::new();
    // Right after a snapshot this peer proposed nothing that could renew a lease.
    let _ = peer.apply_committed(entries, engine, &mut batch, &mut answers)?;
    if !batch.is_empty() {
        // Not synced: the entries are in the synced log and are applied again after a crash
        // that loses this write.
        engine.write_owned(batch, false)?;
    }
    out.append(&mut answers);
    Ok(())
}
