//! The store: a router of region peers over one engine, driven by its environment through
//! `tick`, `on_raft_message`, `propose` and `handle_ready`, answering through `take_outbound`
//! and `take_responses`. No I/O of its own beyond the engine, no clock, no async.
//!
//! This module owns the `Store` itself, its inputs (ticks, proposals, messages) and its
//! queries; `ready` owns the Ready and write path, `lifecycle` the peers' creation, recovery
//! and destruction.

mod lifecycle;
mod ready;

use std::collections::BTreeMap;
use std::sync::Arc;

use minikv_engine::Engine;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, PeerId, Region, RegionId, StoreId};
use minikv_proto::raft_cmdpb::{RaftCmdRequest, RaftCmdResponse};
use minikv_proto::raft_serverpb::{RaftMessage, RegionLocalState};
use minikv_raft::{CAMPAIGN_TRANSFER_CONTEXT, MessageType, StateRole};

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::snap::{Assembly, Fed, feed_chunk};
use crate::types::{ReqToken, Responses};
use lifecycle::tombstone_message;

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
    /// Leader only: each other peer's ticks since it was last heard from.
    pub silent_ticks: BTreeMap<PeerId, u64>,
    /// Leader only: peers that need a snapshot to catch up.
    pub pending_peers: Vec<metapb::Peer>,
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
        store.recover_peers()?;
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
        let entry_bytes = minikv_proto::encoded_len(&cmd).expect("a command always encodes");
        if entry_bytes as u64 > self.config.raft_entry_max_size_bytes {
            return Err(RegionError::CommandRefused {
                reason: format!(
                    "a command of {entry_bytes} bytes, over raft_entry_max_size_bytes {}",
                    self.config.raft_entry_max_size_bytes
                ),
            });
        }
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
        peer.heard_from(msg.from_peer.id);
        // Errors here are stale or misdirected messages (e.g. a response from a removed
        // peer); Raft ignores them and so do we.
        let _ = peer.raw.step(msg.message);
        peer.observe_role();
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
            silent_ticks: peer.silent_ticks(),
            pending_peers: peer.pending_peers(),
        })
    }
}
