//! Snapshot transfer in chunks: cutting an outgoing snapshot message into `RaftMessage`s of
//! bounded size, and assembling, validating and re-forming it on the receiving store.

use minikv_engine::checksum::xxh64;
use minikv_proto::decode;
use minikv_proto::metapb::PeerId;
use minikv_proto::raft_serverpb::{RaftMessage, RegionSnapshotData, SnapshotChunk};

/// Seed of the snapshot data checksum.
const SNAPSHOT_CHECKSUM_SEED: u64 = 0x5e4a_7c0d;

/// Cuts `msg` (a Raft Snapshot message with its data) into chunks of at most
/// `chunk_size_bytes` of data each; every chunk carries the message with its data removed.
pub fn split_into_chunks(mut msg: RaftMessage, chunk_size_bytes: usize) -> Vec<RaftMessage> {
    let snapshot = msg.message.snapshot.as_mut().expect("a snapshot message carries a snapshot");
    let data = std::mem::take(&mut snapshot.data);
    let meta = snapshot.metadata.clone();
    let chunk_size = chunk_size_bytes.max(1);
    let chunk_count = data.len().div_ceil(chunk_size).max(1);
    let checksum = xxh64(&data, SNAPSHOT_CHECKSUM_SEED);
    (0..chunk_count)
        .map(|i| {
            let piece =
                &data[(i * chunk_size).min(data.len())..((i + 1) * chunk_size).min(data.len())];
            RaftMessage {
                snapshot_chunk: Some(SnapshotChunk {
                    snapshot_index: meta.index,
                    snapshot_term: meta.term,
                    chunk_index: i as u32,
                    chunk_count: chunk_count as u32,
                    total_bytes: data.len() as u64,
                    checksum,
                    data: piece.to_vec(),
                }),
                ..msg.clone()
            }
        })
        .collect()
}

/// Why an assembled snapshot was thrown away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotReject {
    TooManyChunks,
    Length,
    Checksum,
    Undecodable,
    /// The data is for another region, or does not list the receiving peer.
    WrongRegion,
}

/// One snapshot being received from `from_peer`.
#[derive(Debug)]
pub struct Assembly {
    from_peer: PeerId,
    snapshot_index: u64,
    snapshot_term: u64,
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
}

/// What feeding a chunk produced.
#[derive(Debug)]
pub enum Fed {
    /// More chunks are needed.
    Incomplete,
    /// The whole, validated snapshot message.
    Complete(Box<RaftMessage>),
    Rejected(SnapshotReject),
}

/// Feeds `msg`'s chunk into `slot` (the region's assembly, replaced when the chunk belongs to
/// another snapshot or sender).
pub fn feed_chunk(slot: &mut Option<Assembly>, msg: RaftMessage, max_chunks: u32) -> Fed {
    let chunk = msg.snapshot_chunk.as_ref().expect("feed_chunk is given chunk messages");
    if chunk.chunk_count == 0
        || chunk.chunk_count > max_chunks
        || chunk.chunk_index >= chunk.chunk_count
    {
        return Fed::Rejected(SnapshotReject::TooManyChunks);
    }
    let same = slot.as_ref().is_some_and(|a| {
        a.from_peer == msg.from_peer.id
            && a.snapshot_index == chunk.snapshot_index
            && a.snapshot_term == chunk.snapshot_term
            && a.chunks.len() == chunk.chunk_count as usize
    });
    if !same {
        *slot = Some(Assembly {
            from_peer: msg.from_peer.id,
            snapshot_index: chunk.snapshot_index,
            snapshot_term: chunk.snapshot_term,
            chunks: vec![None; chunk.chunk_count as usize],
            received: 0,
        });
    }
    let assembly = slot.as_mut().expect("set above");
    let piece = &mut assembly.chunks[chunk.chunk_index as usize];
    if piece.is_none() {
        *piece = Some(chunk.data.clone());
        assembly.received += 1;
    }
    if assembly.received < assembly.chunks.len() {
        return Fed::Incomplete;
    }
    let assembly = slot.take().expect("set above");
    let (total_bytes, checksum) = (chunk.total_bytes, chunk.checksum);
    let data: Vec<u8> =
        assembly.chunks.into_iter().flat_map(|c| c.expect("all received")).collect();
    if data.len() as u64 != total_bytes {
        return Fed::Rejected(SnapshotReject::Length);
    }
    if xxh64(&data, SNAPSHOT_CHECKSUM_SEED) != checksum {
        return Fed::Rejected(SnapshotReject::Checksum);
    }
    let Ok(parsed) = decode::<RegionSnapshotData>(&data) else {
        return Fed::Rejected(SnapshotReject::Undecodable);
    };
    let mut msg = msg;
    let meta_ok =
        msg.message.snapshot.as_ref().is_some_and(|s| s.metadata.index == parsed.applied_index);
    if parsed.region.id != msg.region_id
        || !meta_ok
        || !parsed.region.peers.iter().any(|p| p.id == msg.to_peer.id)
    {
        return Fed::Rejected(SnapshotReject::WrongRegion);
    }
    msg.snapshot_chunk = None;
    msg.message.snapshot.as_mut().expect("checked above").data = data;
    Fed::Complete(Box::new(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minikv_proto::encode;
    use minikv_proto::metapb::{Peer, Region};
    use minikv_raft::{Message, MessageType, Snapshot, SnapshotMetadata};

    fn snapshot_message(kvs: usize) -> RaftMessage {
        let region = Region {
            id: 1,
            peers: vec![Peer { id: 2, store_id: 2, ..Default::default() }],
            ..Default::default()
        };
        let data = RegionSnapshotData {
            region,
            applied_index: 9,
            cfs: vec![minikv_proto::raft_serverpb::SnapshotCfData {
                cf: Default::default(),
                kvs: (0..kvs).map(|i| (format!("k{i}").into_bytes(), vec![7; 20])).collect(),
            }],
        };
        RaftMessage {
            region_id: 1,
            from_peer: Peer { id: 1, store_id: 1, ..Default::default() },
            to_peer: Peer { id: 2, store_id: 2, ..Default::default() },
            message: Message {
                msg_type: MessageType::Snapshot,
                snapshot: Some(Box::new(Snapshot {
                    data: encode(&data).unwrap(),
                    metadata: SnapshotMetadata { index: 9, term: 2, ..Default::default() },
                })),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn chunks_reassemble_in_any_order_with_duplicates() {
        let original = snapshot_message(50);
        let chunks = split_into_chunks(original.clone(), 100);
        assert!(chunks.len() > 5, "expected many chunks, got {}", chunks.len());
        let mut slot = None;
        let mut order: Vec<usize> = (0..chunks.len()).rev().collect();
        order.insert(1, 0);
        let mut done = None;
        for i in order {
            match feed_chunk(&mut slot, chunks[i].clone(), 1 << 10) {
                Fed::Incomplete => {}
                Fed::Complete(m) => done = Some(*m),
                Fed::Rejected(r) => panic!("rejected: {r:?}"),
            }
        }
        assert_eq!(done.expect("assembled"), original);
    }

    #[test]
    fn corrupted_chunk_is_rejected_and_bad_counts_refused() {
        let chunks = split_into_chunks(snapshot_message(10), 64);
        let mut slot = None;
        let last = chunks.len() - 1;
        for (i, mut c) in chunks.into_iter().enumerate() {
            if i == 0 {
                c.snapshot_chunk.as_mut().unwrap().data[0] ^= 1;
            }
            let fed = feed_chunk(&mut slot, c, 1 << 10);
            if i == last {
                assert!(matches!(fed, Fed::Rejected(SnapshotReject::Checksum)), "{fed:?}");
            }
        }
        let mut c = split_into_chunks(snapshot_message(10), 64).remove(0);
        c.snapshot_chunk.as_mut().unwrap().chunk_count = 5000;
        assert!(matches!(
            feed_chunk(&mut None, c, 1 << 10),
            Fed::Rejected(SnapshotReject::TooManyChunks)
        ));
    }
}
