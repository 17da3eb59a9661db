//! The simulator's targeted message faults on the Raft send path: each outbound message is
//! sent, dropped, sent late, or sent now and again late, as the message rule in force says
//! (`minikv_hooks::message_fault`; every message is sent as is off the simulator).

use minikv_hooks::{MessageFault, message_fault, message_rule_set};
use minikv_proto::metapb::StoreId;
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_proto::raftpb::MessageType;

/// The name message rules use for a message type (local types never reach the network).
pub(crate) fn kind(t: MessageType) -> &'static str {
    match t {
        MessageType::Append => "append",
        MessageType::AppendResponse => "append-response",
        MessageType::RequestVote => "vote",
        MessageType::RequestVoteResponse => "vote-response",
        MessageType::RequestPreVote => "pre-vote",
        MessageType::RequestPreVoteResponse => "pre-vote-response",
        MessageType::Snapshot => "snapshot",
        MessageType::Heartbeat => "heartbeat",
        MessageType::HeartbeatResponse => "heartbeat-response",
        MessageType::TransferLeader => "transfer-leader",
        MessageType::TimeoutNow => "timeout-now",
        MessageType::ReadIndex => "read-index",
        MessageType::ReadIndexResponse => "read-index-response",
        MessageType::Hup
        | MessageType::Beat
        | MessageType::Propose
        | MessageType::Unreachable
        | MessageType::SnapshotStatus
        | MessageType::CheckQuorum => "local",
    }
}

/// Splits what store `from` sends into the messages to send now and the late ones, each with
/// its delay in milliseconds.
pub(crate) fn apply(
    from: StoreId,
    outbound: Vec<RaftMessage>,
) -> (Vec<RaftMessage>, Vec<(u64, RaftMessage)>) {
    // Almost always: no rule, and the batch goes out as it is, uncopied.
    if !message_rule_set() {
        return (outbound, Vec::new());
    }
    let mut now = Vec::with_capacity(outbound.len());
    let mut late = Vec::new();
    for msg in outbound {
        let to = msg.to_peer.store_id;
        match message_fault(from, to, msg.region_id, kind(msg.message.msg_type)) {
            MessageFault::Deliver => now.push(msg),
            MessageFault::Drop => {}
            MessageFault::Delay(ms) => late.push((ms, msg)),
            MessageFault::Duplicate(ms) => {
                late.push((ms, msg.clone()));
                now.push(msg);
            }
        }
    }
    (now, late)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_a_rule_may_name_is_a_message_type_name() {
        for k in minikv_hooks::MESSAGE_KINDS {
            assert_ne!(k, "local");
        }
        assert_eq!(kind(MessageType::RequestPreVote), "pre-vote");
        assert!(minikv_hooks::MESSAGE_KINDS.contains(&kind(MessageType::HeartbeatResponse)));
    }

    #[test]
    fn off_the_simulator_every_message_is_sent_now() {
        if cfg!(madsim) {
            return;
        }
        let msgs = vec![RaftMessage::default(), RaftMessage::default()];
        let (now, late) = apply(1, msgs);
        assert_eq!((now.len(), late.len()), (2, 0));
    }
}
