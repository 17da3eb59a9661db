//! The Ready and write path: every peer's Ready persisted and its committed entries applied in
//! one engine write per round, then its messages sent, proposals answered, reads served; the
//! second write of a peer whose Ready installed a snapshot; snapshots cut into chunks on the
//! way out. Peers that applied their own removal are handed to `lifecycle` afterwards.

use minikv_engine::{Engine, WriteBatch};
use minikv_proto::metapb::RegionId;
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_raft::{Entry, MessageType};

use super::lifecycle::tombstone_message;
use super::{Store, StoreStats};
use crate::config::StoreConfig;
use crate::error::Result;
use crate::events;
use crate::peer::Peer;
use crate::snap::split_into_chunks;
use crate::types::Responses;

impl Store {
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
