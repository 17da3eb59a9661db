//! Peer lifecycle: a store's peers recovered from its disk at open, the first region
//! bootstrapped, uninitialized peers created by messages, and peers destroyed (removed by a
//! conf change, told by a tombstone message, or superseded by a newer peer) leaving a
//! tombstone that refuses stale messages. Splits and merges will land here.

use minikv_engine::{Cf, WriteBatch};
use minikv_proto::decode;
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{self, PeerRole, Region, RegionId};
use minikv_proto::raft_serverpb::{PeerState, RaftMessage, RegionLocalState};
use minikv_raft::MessageType;

use super::Store;
use crate::error::{Error, Result};
use crate::events;
use crate::keys;
use crate::peer::Peer;
use crate::peer_storage::{PeerStorage, write_clear_peer};

impl Store {
    /// Recovers every peer from its region, raft and apply states (after a crash: from what
    /// the disk kept), and the tombstones of destroyed ones.
    ///
    /// A peer that applied its own removal wrote its tombstone with the removal; if the store
    /// stopped before destroying it, its raft keys and data are still here (an apply state
    /// beside a tombstone says so: nothing else writes one), and are deleted now.
    pub(super) fn recover_peers(&mut self) -> Result<()> {
        let store_id = self.store_id;
        let (start, end) = keys::region_state_range();
        let mut unfinished = Vec::new();
        for (key, value) in self.engine.scan(Cf::Raft, &start, Some(&end), usize::MAX)? {
            let region_id = keys::region_id_of_state_key(&key);
            let state: RegionLocalState = decode(&value)?;
            if state.state == PeerState::Tombstone {
                if self.engine.get(Cf::Raft, &keys::apply_state_key(region_id))?.is_some() {
                    unfinished.push(state.region.clone());
                }
                self.tombstones.insert(region_id, state);
                continue;
            }
            let Some(me) = state.region.peer_on_store(store_id).cloned() else {
                panic!(
                    "store {store_id}: region {region_id} is recorded here but lists no peer on this store"
                );
            };
            let storage = PeerStorage::load(self.engine.clone(), state.region, me.id)?;
            self.peers.insert(region_id, Peer::new(&self.config, me, storage)?);
        }
        if unfinished.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for region in &unfinished {
            // No live region overlaps a removed one without splits and merges; once they land,
            // keys in an overlapping live region are that region's and must stay.
            let overlapped = self.peers.values().any(|p| ranges_overlap(p.region(), region));
            write_clear_peer(&mut batch, region.id, (!overlapped).then_some(region));
            events::removed_peer_cleaned(region.id, region.epoch.conf_ver);
        }
        self.engine.write_owned(batch, true)?;
        Ok(())
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

    /// Deletes a peer's raft state and data, keeps a tombstone, drops it from the router.
    pub(super) fn destroy_peer(&mut self, region_id: RegionId, reason: &str) -> Result<()> {
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

    /// Finds the message's peer, creating an uninitialized one for a message from a leader (it
    /// will be filled by a snapshot) or for a (pre-)vote request (it may vote: a voter whose
    /// store never received the region must still count, or a region whose only other voter
    /// lost its leadership could never elect again). Returns whether the message should be
    /// stepped. An uninitialized peer's hard state is persisted under its region id, so the
    /// peer re-created after a restart remembers its vote (`PeerStorage::new_uninitialized`).
    pub(super) fn maybe_create_peer(&mut self, msg: &RaftMessage) -> Result<bool> {
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
    pub(super) fn on_tombstone(&mut self, msg: &RaftMessage) -> Result<()> {
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
}

pub(super) fn tombstone_message(
    region: &Region,
    from: &metapb::Peer,
    to: metapb::Peer,
) -> RaftMessage {
    RaftMessage {
        region_id: region.id,
        from_peer: from.clone(),
        to_peer: to,
        region_epoch: region.epoch,
        is_tombstone: true,
        ..Default::default()
    }
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

/// Whether the key ranges of `a` and `b` share a key (an empty end key is unbounded).
fn ranges_overlap(a: &Region, b: &Region) -> bool {
    let starts_before_end = |start: &[u8], end: &[u8]| end.is_empty() || start < end;
    starts_before_end(&a.start_key, &b.end_key) && starts_before_end(&b.start_key, &a.end_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: &[u8], end: &[u8]) -> Region {
        Region { start_key: start.to_vec(), end_key: end.to_vec(), ..Default::default() }
    }

    #[test]
    fn ranges_overlap_when_they_share_a_key() {
        let cases = [
            (range(b"", b""), range(b"a", b"b"), true),
            (range(b"a", b"c"), range(b"b", b""), true),
            (range(b"a", b"b"), range(b"b", b"c"), false),
            (range(b"", b"b"), range(b"b", b""), false),
            (range(b"a", b"c"), range(b"b", b"bb"), true),
        ];
        for (a, b, want) in cases {
            assert_eq!(ranges_overlap(&a, &b), want, "{a:?} vs {b:?}");
            assert_eq!(ranges_overlap(&b, &a), want, "{b:?} vs {a:?}");
        }
    }
}
