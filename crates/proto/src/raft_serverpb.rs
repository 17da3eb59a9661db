//! What stores exchange and persist for multi-Raft: the Raft message envelope (with snapshot
//! chunks and tombstones) and the per-region local states kept in the `raft` column family.

use serde::{Deserialize, Serialize};

use crate::metapb::{Peer, Region, RegionEpoch, RegionId};
use crate::raft_cmdpb::CfName;
use crate::raftpb::{HardState, Message};

/// One piece of a Raft snapshot too large for one message. Every chunk of a snapshot carries
/// the same `(snapshot_index, snapshot_term, chunk_count, total_bytes, checksum)`; the receiver
/// assembles chunks `0..chunk_count`, checks length and checksum, then installs the whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotChunk {
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    pub chunk_index: u32,
    pub chunk_count: u32,
    /// Length of the whole snapshot's data.
    pub total_bytes: u64,
    /// XXH64 of the whole snapshot's data.
    pub checksum: u64,
    #[serde(with = "crate::bytes")]
    pub data: Vec<u8>,
}

/// The envelope of every Raft message between stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftMessage {
    pub region_id: RegionId,
    pub from_peer: Peer,
    pub to_peer: Peer,
    /// The sender's epoch of the region (lets the receiver spot stale peers).
    pub region_epoch: RegionEpoch,
    /// The Raft message; for a snapshot chunk its snapshot's `data` is empty (it is in the
    /// chunk).
    pub message: Message,
    /// Tells `to_peer` that it was removed from the region: destroy it.
    pub is_tombstone: bool,
    pub snapshot_chunk: Option<SnapshotChunk>,
}

/// Where the log was truncated: every entry up to and including `index` is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftTruncatedState {
    pub index: u64,
    pub term: u64,
}

/// A peer's durable Raft state: hard state and last log index (written synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftLocalState {
    pub hard_state: HardState,
    pub last_index: u64,
}

/// How far a peer applied, written atomically with the data it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftApplyState {
    pub applied_index: u64,
    pub truncated_state: RaftTruncatedState,
}

/// The life of a peer on its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PeerState {
    #[default]
    Normal,
    /// Destroyed: kept so that stale messages cannot recreate the peer.
    Tombstone,
}

/// A peer's view of its region, written atomically with the apply state that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegionLocalState {
    pub state: PeerState,
    pub region: Region,
}

/// Key-value pairs of one column family in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotCfData {
    pub cf: CfName,
    pub kvs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The `data` of a region snapshot: the region and every data pair in its range, as of
/// `applied_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegionSnapshotData {
    pub region: Region,
    pub applied_index: u64,
    pub cfs: Vec<SnapshotCfData>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metapb::PeerRole;
    use crate::raftpb::{MessageType, Snapshot};
    use crate::{decode, encode};

    #[test]
    fn raft_message_with_chunk_round_trips() {
        let msg = RaftMessage {
            region_id: 1,
            from_peer: Peer { id: 1, store_id: 1, role: PeerRole::Voter },
            to_peer: Peer { id: 2, store_id: 2, role: PeerRole::Learner },
            region_epoch: RegionEpoch { conf_ver: 2, version: 1 },
            message: Message {
                msg_type: MessageType::Snapshot,
                snapshot: Some(Box::new(Snapshot::default())),
                ..Default::default()
            },
            is_tombstone: false,
            snapshot_chunk: Some(SnapshotChunk {
                snapshot_index: 10,
                snapshot_term: 2,
                chunk_index: 1,
                chunk_count: 3,
                total_bytes: 100,
                checksum: 77,
                data: vec![1, 2, 3],
            }),
        };
        assert_eq!(decode::<RaftMessage>(&encode(&msg).unwrap()).unwrap(), msg);
        let tomb = RaftMessage { is_tombstone: true, snapshot_chunk: None, ..msg };
        assert_eq!(decode::<RaftMessage>(&encode(&tomb).unwrap()).unwrap(), tomb);
    }

    #[test]
    fn local_states_and_snapshot_data_round_trip() {
        let rs = RaftLocalState {
            hard_state: HardState { term: 5, vote: 1, commit: 9 },
            last_index: 12,
        };
        assert_eq!(decode::<RaftLocalState>(&encode(&rs).unwrap()).unwrap(), rs);
        let apply = RaftApplyState {
            applied_index: 9,
            truncated_state: RaftTruncatedState { index: 5, term: 5 },
        };
        assert_eq!(decode::<RaftApplyState>(&encode(&apply).unwrap()).unwrap(), apply);
        let region_state = RegionLocalState {
            state: PeerState::Tombstone,
            region: Region { id: 1, ..Default::default() },
        };
        assert_eq!(
            decode::<RegionLocalState>(&encode(&region_state).unwrap()).unwrap(),
            region_state
        );
        let snap = RegionSnapshotData {
            region: Region { id: 1, end_key: b"m".to_vec(), ..Default::default() },
            applied_index: 9,
            cfs: vec![SnapshotCfData {
                cf: CfName::Write,
                kvs: vec![(b"a".to_vec(), b"b".to_vec())],
            }],
        };
        assert_eq!(decode::<RegionSnapshotData>(&encode(&snap).unwrap()).unwrap(), snap);
    }
}
