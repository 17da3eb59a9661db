//! Raft's wire and disk types: entries, messages, hard state, conf state, snapshots, conf changes.

use serde::{Deserialize, Serialize};

/// Raft node id (a peer id in the layers above). 0 means "none".
pub type NodeId = u64;
/// The id that means "no node" (no leader, no vote).
pub const INVALID_ID: NodeId = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EntryType {
    #[default]
    Normal,
    /// `data` holds an encoded [`ConfChangeV2`].
    ConfChange,
}

/// One log entry. `context` is opaque to Raft and travels with the entry (proposal matching).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Entry {
    pub entry_type: EntryType,
    pub term: u64,
    pub index: u64,
    #[serde(with = "crate::bytes")]
    pub data: Vec<u8>,
    #[serde(with = "crate::bytes")]
    pub context: Vec<u8>,
}

impl Entry {
    /// Bytes this entry counts against size limits (payload plus a fixed header estimate).
    pub fn size_bytes(&self) -> u64 {
        (self.data.len() + self.context.len() + 24) as u64
    }
}

/// State that must be persisted (synced) before any message that depends on it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HardState {
    pub term: u64,
    pub vote: NodeId,
    pub commit: u64,
}

/// Membership. `voters_outgoing` is non-empty only in a joint configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfState {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub voters_outgoing: Vec<NodeId>,
    /// Learners that will become voters when the joint configuration is left.
    pub learners_next: Vec<NodeId>,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotMetadata {
    pub conf_state: ConfState,
    pub index: u64,
    pub term: u64,
}

/// A state-machine snapshot: `data` is opaque to Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    #[serde(with = "crate::bytes")]
    pub data: Vec<u8>,
    pub metadata: SnapshotMetadata,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConfChangeType {
    #[default]
    AddNode,
    RemoveNode,
    AddLearnerNode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfChangeSingle {
    pub change_type: ConfChangeType,
    pub node_id: NodeId,
}

/// How a multi-change conf change is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConfChangeTransition {
    /// One simple change applies directly; several use joint consensus and leave automatically.
    #[default]
    Auto,
    /// Joint consensus, left automatically once committed.
    JointImplicit,
    /// Joint consensus, left only by an explicit empty conf change.
    JointExplicit,
}

/// A membership change. An empty `changes` list means "leave the joint configuration".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfChangeV2 {
    pub transition: ConfChangeTransition,
    pub changes: Vec<ConfChangeSingle>,
    #[serde(with = "crate::bytes")]
    pub context: Vec<u8>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum MessageType {
    /// Local: start an election.
    #[default]
    Hup,
    /// Local: leader heartbeat tick.
    Beat,
    /// Local: a proposal (entries).
    Propose,
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    RequestPreVote,
    RequestPreVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    /// Local: the application reports a node unreachable.
    Unreachable,
    /// Local: the application reports a snapshot send finished or failed.
    SnapshotStatus,
    /// Local: leader checks it still hears from a quorum.
    CheckQuorum,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResponse,
}

impl MessageType {
    /// Local messages never cross the network.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::Hup
                | MessageType::Beat
                | MessageType::Unreachable
                | MessageType::SnapshotStatus
                | MessageType::CheckQuorum
        )
    }

    /// Responses whose sender and term come from a vote request.
    pub fn is_vote_response(self) -> bool {
        matches!(self, MessageType::RequestVoteResponse | MessageType::RequestPreVoteResponse)
    }
}

/// One Raft message. Fields unused by a type are left at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Message {
    pub msg_type: MessageType,
    pub to: NodeId,
    pub from: NodeId,
    pub term: u64,
    /// Term of the entry at `index` (Append), or of the candidate's last entry (votes).
    pub log_term: u64,
    pub index: u64,
    pub entries: Vec<Entry>,
    pub commit: u64,
    /// Boxed: a snapshot is rare and large, and every message is moved around by value.
    pub snapshot: Option<Box<Snapshot>>,
    pub reject: bool,
    /// On a rejected Append: the follower's hint for where the leader should probe next.
    pub reject_hint: u64,
    /// Hint for the term at `reject_hint` (fast backtracking).
    pub log_term_hint: u64,
    /// ReadIndex / heartbeat context.
    #[serde(with = "crate::bytes")]
    pub context: Vec<u8>,
    /// Sending term of the request this answers (vote responses under pre-vote).
    pub request_snapshot: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    #[test]
    fn message_with_entries_and_snapshot_round_trips() {
        let msg = Message {
            msg_type: MessageType::Append,
            to: 2,
            from: 1,
            term: 5,
            log_term: 4,
            index: 10,
            entries: vec![Entry {
                entry_type: EntryType::Normal,
                term: 5,
                index: 11,
                data: vec![1, 2, 3],
                context: vec![9],
            }],
            commit: 9,
            snapshot: Some(Box::new(Snapshot {
                data: vec![7; 16],
                metadata: SnapshotMetadata {
                    conf_state: ConfState {
                        voters: vec![1, 2, 3],
                        learners: vec![4],
                        ..Default::default()
                    },
                    index: 8,
                    term: 3,
                },
            })),
            reject: false,
            reject_hint: 0,
            log_term_hint: 0,
            context: b"ctx".to_vec(),
            request_snapshot: 0,
        };
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode::<Message>(&bytes).unwrap(), msg);
    }

    #[test]
    fn hard_state_and_conf_change_round_trip() {
        let hs = HardState { term: 3, vote: 2, commit: 17 };
        assert_eq!(decode::<HardState>(&encode(&hs).unwrap()).unwrap(), hs);
        let cc = ConfChangeV2 {
            transition: ConfChangeTransition::JointExplicit,
            changes: vec![
                ConfChangeSingle { change_type: ConfChangeType::AddNode, node_id: 4 },
                ConfChangeSingle { change_type: ConfChangeType::RemoveNode, node_id: 1 },
            ],
            context: vec![],
        };
        assert_eq!(decode::<ConfChangeV2>(&encode(&cc).unwrap()).unwrap(), cc);
    }

    #[test]
    fn truncated_message_is_a_decode_error() {
        let bytes = encode(&HardState { term: 300, vote: 2, commit: 1 }).unwrap();
        assert!(matches!(decode::<HardState>(&bytes[..1]), Err(crate::CodecError::Decode(_))));
    }
}
