//! Key layout of the `raft` column family: every key namespaced by region id.
//!
//! `0x01 | region_id (8, BE) | 0x01 | index (8, BE)`: a log entry;
//! `0x01 | region_id | 0x02`: the `RaftLocalState`; `0x01 | region_id | 0x03`: the
//! `RaftApplyState`; `0x02 | region_id`: the `RegionLocalState` (its own prefix, so that a store
//! finds its regions with one scan). Data column families hold user keys as they are.

use minikv_proto::metapb::RegionId;

const REGION_RAFT_PREFIX: u8 = 0x01;
const REGION_META_PREFIX: u8 = 0x02;
const LOG_SUFFIX: u8 = 0x01;
const RAFT_STATE_SUFFIX: u8 = 0x02;
const APPLY_STATE_SUFFIX: u8 = 0x03;

fn region_raft_key(region_id: RegionId, suffix: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(REGION_RAFT_PREFIX);
    key.extend_from_slice(&region_id.to_be_bytes());
    key.push(suffix);
    key
}

/// The key of log entry `index` of `region_id`.
pub fn raft_log_key(region_id: RegionId, index: u64) -> Vec<u8> {
    let mut key = region_raft_key(region_id, LOG_SUFFIX);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The log index encoded in a key made by `raft_log_key`.
pub fn raft_log_index(key: &[u8]) -> u64 {
    assert_eq!(key.len(), 18, "not a raft log key: {key:?}");
    u64::from_be_bytes(key[10..18].try_into().expect("8 bytes"))
}

pub fn raft_state_key(region_id: RegionId) -> Vec<u8> {
    region_raft_key(region_id, RAFT_STATE_SUFFIX)
}

pub fn apply_state_key(region_id: RegionId) -> Vec<u8> {
    region_raft_key(region_id, APPLY_STATE_SUFFIX)
}

pub fn region_state_key(region_id: RegionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(REGION_META_PREFIX);
    key.extend_from_slice(&region_id.to_be_bytes());
    key
}

/// The range `[start, end)` holding every region state key.
pub fn region_state_range() -> (Vec<u8>, Vec<u8>) {
    (vec![REGION_META_PREFIX], vec![REGION_META_PREFIX + 1])
}

/// The region id encoded in a key made by `region_state_key`.
pub fn region_id_of_state_key(key: &[u8]) -> RegionId {
    assert_eq!(key.len(), 9, "not a region state key: {key:?}");
    u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"))
}

/// The range `[start, end)` holding every raft key of `region_id` (log, raft and apply state).
pub fn region_raft_range(region_id: RegionId) -> (Vec<u8>, Vec<u8>) {
    let mut end = vec![REGION_RAFT_PREFIX];
    end.extend_from_slice(&region_id.to_be_bytes());
    end.push(0xff);
    (region_raft_key(region_id, 0), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index_and_round_trip() {
        let a = raft_log_key(7, 5);
        let b = raft_log_key(7, 256);
        assert!(a < b);
        assert_eq!(raft_log_index(&b), 256);
        assert!(raft_log_key(7, u64::MAX) < raft_state_key(7));
        assert!(raft_log_key(8, 0) > apply_state_key(7));
    }

    #[test]
    fn ranges_cover_exactly_their_keys() {
        let (start, end) = region_raft_range(7);
        for key in
            [raft_log_key(7, 0), raft_log_key(7, u64::MAX), raft_state_key(7), apply_state_key(7)]
        {
            assert!(key >= start && key < end);
        }
        assert!(raft_log_key(8, 0) >= end);
        assert!(apply_state_key(6) < start);
        let (start, end) = region_state_range();
        let key = region_state_key(u64::MAX);
        assert!(key >= start && key < end);
        assert_eq!(region_id_of_state_key(&region_state_key(42)), 42);
    }
}
