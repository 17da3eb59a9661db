//! Cutting the Raft messages bound for one store into batches that each fit in a message:
//! in simulation as over TCP, a batch over `MAX_MESSAGE_BYTES` would not cross the network.

use minikv_proto::raft_serverpb::RaftMessage;

/// The most a batch's encoding spends beyond its messages: the count, a varint.
const BATCH_HEADER_BYTES: usize = 10;

/// `messages`, in order, as batches of at most `limit_bytes` each when encoded as a
/// `RaftMessageBatch`, with each batch's encoded length. One message too big for a batch of
/// its own is a broken invariant (the node checks at start that the store's limits keep every
/// message under the bound) and panics.
pub fn split(messages: Vec<RaftMessage>, limit_bytes: usize) -> Vec<(Vec<RaftMessage>, usize)> {
    let room_bytes = limit_bytes - BATCH_HEADER_BYTES;
    let mut batches = Vec::new();
    let (mut current, mut current_bytes) = (Vec::new(), 0);
    for msg in messages {
        let bytes = minikv_proto::encoded_len(&msg).expect("a Raft message always encodes");
        assert!(
            bytes <= room_bytes,
            "a {:?} for region {} of {bytes} bytes cannot fit in a {limit_bytes}-byte message",
            msg.message.msg_type,
            msg.region_id
        );
        if current_bytes + bytes > room_bytes {
            let full = std::mem::take(&mut current);
            batches.push((full, std::mem::take(&mut current_bytes)));
        }
        current_bytes += bytes;
        current.push(msg);
    }
    if !current.is_empty() {
        batches.push((current, current_bytes));
    }
    for (batch, bytes) in &mut batches {
        *bytes += varint_len(batch.len());
    }
    batches
}

fn varint_len(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
}

#[cfg(test)]
mod tests {
    use minikv_proto::kvrpc::RaftMessageBatch;
    use minikv_proto::raft_serverpb::RaftMessage;
    use minikv_proto::raftpb::Entry;

    use super::split;

    fn append(region_id: u64, payload_bytes: usize) -> RaftMessage {
        let mut msg = RaftMessage { region_id, ..Default::default() };
        msg.message.entries = vec![Entry { data: vec![7; payload_bytes], ..Default::default() }];
        msg
    }

    #[test]
    fn batches_keep_order_fit_and_report_their_exact_encoded_length() {
        let limit_bytes = 10_000;
        let messages: Vec<RaftMessage> =
            (0..60).map(|i| append(i, (i as usize * 97) % 3_000)).collect();
        let batches = split(messages.clone(), limit_bytes);
        assert!(batches.len() > 1, "the messages need several batches");
        let mut again = Vec::new();
        for (batch, bytes) in batches {
            let encoded = minikv_proto::encode(&RaftMessageBatch { messages: batch.clone() });
            let encoded = encoded.unwrap().len();
            assert_eq!(bytes, encoded);
            assert!(encoded <= limit_bytes, "a batch of {encoded} bytes");
            again.extend(batch);
        }
        assert_eq!(again, messages);
    }

    #[test]
    fn small_messages_share_one_batch() {
        let batches = split((0..5).map(|i| append(i, 10)).collect(), 10_000);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0.len(), 5);
    }

    #[test]
    #[should_panic(expected = "cannot fit")]
    fn a_message_too_big_for_any_batch_is_a_broken_invariant() {
        split(vec![append(1, 20_000)], 10_000);
    }
}
