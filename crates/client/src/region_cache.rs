//! The client's region cache: regions by start key, and the leader last seen for each region.
//! Region errors correct it; it is only ever a hint, never trusted over a store's answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use minikv_proto::metapb::{Peer, Region, RegionId};

/// Cached regions (non-overlapping, keyed by start key) and leaders. Regions are shared, so
/// that a request holds the one it was sent to without copying it.
#[derive(Debug, Default, Clone)]
pub struct RegionCache {
    regions: BTreeMap<Vec<u8>, Arc<Region>>,
    leaders: BTreeMap<RegionId, Peer>,
}

impl RegionCache {
    pub fn new() -> RegionCache {
        RegionCache::default()
    }

    /// The cached region containing `key`.
    pub fn locate(&self, key: &[u8]) -> Option<&Region> {
        self.locate_shared(key).map(|region| &**region)
    }

    /// The cached region containing `key`, shared.
    pub fn locate_shared(&self, key: &[u8]) -> Option<&Arc<Region>> {
        let (_, region) = self
            .regions
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()?;
        region.contains_key(key).then_some(region)
    }

    /// Caches `region`, dropping every cached region it overlaps or that is older than it;
    /// returns the cached copy.
    pub fn insert(&mut self, region: Region) -> Arc<Region> {
        let overlapping: Vec<Vec<u8>> = self
            .regions
            .iter()
            .filter(|(_, r)| r.id == region.id || overlaps(r, &region))
            .map(|(start, _)| start.clone())
            .collect();
        for start in overlapping {
            if let Some(old) = self.regions.remove(&start)
                && old.id != region.id
            {
                self.leaders.remove(&old.id);
            }
        }
        if let Some(leader) = self.leaders.get(&region.id)
            && !region.peers.iter().any(|p| p.id == leader.id)
        {
            self.leaders.remove(&region.id);
        }
        let region = Arc::new(region);
        self.regions.insert(region.start_key.clone(), region.clone());
        region
    }

    /// Forgets the region (and its leader).
    pub fn invalidate(&mut self, region_id: RegionId) {
        self.regions.retain(|_, r| r.id != region_id);
        self.leaders.remove(&region_id);
    }

    pub fn leader(&self, region_id: RegionId) -> Option<&Peer> {
        self.leaders.get(&region_id)
    }

    pub fn set_leader(&mut self, region_id: RegionId, leader: Peer) {
        self.leaders.insert(region_id, leader);
    }

    pub fn forget_leader(&mut self, region_id: RegionId) {
        self.leaders.remove(&region_id);
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

fn overlaps(a: &Region, b: &Region) -> bool {
    let a_before_b_ends = b.end_key.is_empty() || a.start_key < b.end_key;
    let b_before_a_ends = a.end_key.is_empty() || b.start_key < a.end_key;
    a_before_b_ends && b_before_a_ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use minikv_proto::metapb::{PeerRole, RegionEpoch};

    fn region(id: u64, start: &[u8], end: &[u8], conf_ver: u64) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            epoch: RegionEpoch { conf_ver, version: 1 },
            peers: vec![Peer { id: id * 10, store_id: 1, role: PeerRole::Voter }],
        }
    }

    #[test]
    fn locate_finds_the_containing_region_only() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b"m", 1));
        cache.insert(region(2, b"p", b"", 1));
        assert_eq!(cache.locate(b"a").map(|r| r.id), Some(1));
        assert_eq!(cache.locate(b"n"), None, "the gap [m, p) is not cached");
        assert_eq!(cache.locate(b"zz").map(|r| r.id), Some(2));
    }

    #[test]
    fn insert_replaces_overlaps_and_stale_leaders() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b"", 1));
        cache.set_leader(1, Peer { id: 10, store_id: 1, role: PeerRole::Voter });
        cache.insert(region(2, b"k", b"", 1));
        assert_eq!(cache.len(), 1, "region 1 overlapped region 2 and was dropped");
        assert_eq!(cache.leader(1), None);
        let mut newer = region(2, b"k", b"", 2);
        newer.peers = vec![Peer { id: 7, store_id: 3, role: PeerRole::Voter }];
        cache.set_leader(2, Peer { id: 20, store_id: 1, role: PeerRole::Voter });
        cache.insert(newer);
        assert_eq!(cache.leader(2), None, "the cached leader is no longer a member");
        cache.invalidate(2);
        assert!(cache.is_empty());
    }
}
