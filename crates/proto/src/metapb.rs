//! Cluster metadata: stores, peers, regions and their epochs.

use serde::{Deserialize, Serialize};

pub type StoreId = u64;
pub type PeerId = u64;
pub type RegionId = u64;

/// A store is one node's storage engine; it hosts many peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Store {
    pub id: StoreId,
    pub address: String,
}

/// How a peer takes part in its region's Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PeerRole {
    #[default]
    Voter,
    Learner,
    /// Voter in the outgoing config only, while a joint change is in flight.
    DemotingVoter,
    /// Voter in the incoming config only, while a joint change is in flight.
    IncomingVoter,
}

/// One replica of a region, living on one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Peer {
    pub id: PeerId,
    pub store_id: StoreId,
    pub role: PeerRole,
}

/// The region's epoch: `conf_ver` grows on membership change, `version` on split or merge.
/// A request carrying an older epoch than the region's is refused, never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegionEpoch {
    pub conf_ver: u64,
    pub version: u64,
}

impl RegionEpoch {
    /// True when `self` is older than `current` in either component.
    pub fn is_stale_against(&self, current: &RegionEpoch) -> bool {
        self.conf_ver < current.conf_ver || self.version < current.version
    }
}

/// A key range `[start_key, end_key)`; an empty `end_key` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Region {
    pub id: RegionId,
    #[serde(with = "crate::bytes")]
    pub start_key: Vec<u8>,
    #[serde(with = "crate::bytes")]
    pub end_key: Vec<u8>,
    pub epoch: RegionEpoch,
    pub peers: Vec<Peer>,
}

impl Region {
    /// True when `key` falls in `[start_key, end_key)`.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    pub fn peer_on_store(&self, store_id: StoreId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.store_id == store_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    #[test]
    fn region_round_trips_through_codec() {
        let region = Region {
            id: 7,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            epoch: RegionEpoch { conf_ver: 3, version: 5 },
            peers: vec![
                Peer { id: 1, store_id: 1, role: PeerRole::Voter },
                Peer { id: 2, store_id: 2, role: PeerRole::Learner },
            ],
        };
        let bytes = encode(&region).unwrap();
        assert_eq!(decode::<Region>(&bytes).unwrap(), region);
    }

    #[test]
    fn contains_key_respects_half_open_range_and_unbounded_end() {
        let mut region =
            Region { start_key: b"b".to_vec(), end_key: b"d".to_vec(), ..Default::default() };
        assert!(!region.contains_key(b"a"));
        assert!(region.contains_key(b"b"));
        assert!(region.contains_key(b"c\xff"));
        assert!(!region.contains_key(b"d"));
        region.end_key.clear();
        assert!(region.contains_key(b"zzzz"));
    }

    #[test]
    fn epoch_staleness_checks_both_components() {
        let current = RegionEpoch { conf_ver: 2, version: 2 };
        assert!(RegionEpoch { conf_ver: 1, version: 2 }.is_stale_against(&current));
        assert!(RegionEpoch { conf_ver: 2, version: 1 }.is_stale_against(&current));
        assert!(!RegionEpoch { conf_ver: 2, version: 2 }.is_stale_against(&current));
        assert!(!RegionEpoch { conf_ver: 3, version: 2 }.is_stale_against(&current));
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = encode(&RegionEpoch { conf_ver: 1, version: 1 }).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<RegionEpoch>(&bytes),
            Err(crate::CodecError::Trailing { trailing_bytes: 1 })
        );
    }
}
