//! The region tree: every region PD holds, by id and by start key, their ranges never
//! overlapping; plus the per-store tallies (regions, leaders, size) read from it.

use std::collections::BTreeMap;
use std::ops::Bound;

use minikv_proto::metapb::{Peer, Region, RegionId, StoreId};
use minikv_proto::pdpb::{DownPeer, RegionHeartbeat, RegionInfo};

/// A region as its leader last reported it (or as loaded from PD's persisted metadata).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CachedRegion {
    /// Range, epoch and peers: the metadata PD persists.
    pub region: Region,
    /// `None` for a region loaded from metadata whose leader has not heartbeated yet.
    pub leader: Option<Peer>,
    /// The leader's Raft term at its last heartbeat (0 before any).
    pub term: u64,
    /// Peers whose logs lag far behind the leader's.
    pub pending_peers: Vec<Peer>,
    /// Peers the leader has not heard from, with for how long.
    pub down_peers: Vec<DownPeer>,
    /// The leader's estimate of the region's data size.
    pub approximate_size_bytes: u64,
    /// The leader's estimate of the region's key count.
    pub approximate_keys: u64,
}

impl CachedRegion {
    /// The region as a heartbeat reports it.
    pub fn from_heartbeat(hb: &RegionHeartbeat) -> CachedRegion {
        CachedRegion {
            region: hb.region.clone(),
            leader: Some(hb.leader.clone()),
            term: hb.term,
            pending_peers: hb.pending_peers.clone(),
            down_peers: hb.down_peers.clone(),
            approximate_size_bytes: hb.approximate_size_bytes,
            approximate_keys: hb.approximate_keys,
        }
    }

    /// The region's id.
    pub fn id(&self) -> RegionId {
        self.region.id
    }

    /// The region and its leader, as PD answers routing requests.
    pub fn to_info(&self) -> RegionInfo {
        RegionInfo {
            region: self.region.clone(),
            leader: self.leader.clone(),
            pending_peers: self.pending_peers.clone(),
            down_peers: self.down_peers.clone(),
            approximate_size_bytes: self.approximate_size_bytes,
            approximate_keys: self.approximate_keys,
        }
    }

    /// True when the leader reported `peer_id` as lagging.
    pub fn is_pending(&self, peer_id: u64) -> bool {
        self.pending_peers.iter().any(|p| p.id == peer_id)
    }

    /// How long the leader said `peer_id` has been down, if it said so.
    pub fn down_for_ms(&self, peer_id: u64) -> Option<u64> {
        self.down_peers.iter().find(|d| d.peer.id == peer_id).map(|d| d.down_ms)
    }

    /// The store of the leader, if one has reported.
    pub fn leader_store_id(&self) -> Option<StoreId> {
        self.leader.as_ref().map(|l| l.store_id)
    }
}

/// What one store holds, summed over the region tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreLoad {
    /// Peers of any role on the store.
    pub region_count: u64,
    /// Regions whose leader is on the store.
    pub leader_count: u64,
    /// Sum of the approximate sizes of the regions with a peer on the store.
    pub region_size_bytes: u64,
}

/// Regions keyed by id and by start key; ranges never overlap.
#[derive(Debug, Clone, Default)]
pub struct RegionTree {
    by_id: BTreeMap<RegionId, CachedRegion>,
    /// start key -> region id; its entries are exactly `by_id`'s regions.
    by_start_key: BTreeMap<Vec<u8>, RegionId>,
}

/// True when `[a_start, a_end)` and `[b_start, b_end)` share a key (empty end: unbounded).
fn ranges_overlap(a_start: &[u8], a_end: &[u8], b_start: &[u8], b_end: &[u8]) -> bool {
    (a_end.is_empty() || b_start < a_end) && (b_end.is_empty() || a_start < b_end)
}

/// The keys up to and including `key`.
fn at_or_before(key: &[u8]) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (Bound::Unbounded, Bound::Included(key))
}

impl RegionTree {
    /// Regions held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no region is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The region held under `region_id`.
    pub fn get(&self, region_id: RegionId) -> Option<&CachedRegion> {
        self.by_id.get(&region_id)
    }

    /// The region whose range holds `key`.
    pub fn get_by_key(&self, key: &[u8]) -> Option<&CachedRegion> {
        let (_, id) = self.by_start_key.range::<[u8], _>(at_or_before(key)).next_back()?;
        let region = &self.by_id[id];
        region.region.contains_key(key).then_some(region)
    }

    /// Every region, in region id order.
    pub fn iter(&self) -> impl Iterator<Item = &CachedRegion> {
        self.by_id.values()
    }

    /// Up to `limit` regions overlapping `[start_key, end_key)` (empty end: unbounded), in key
    /// order.
    pub fn scan(&self, start_key: &[u8], end_key: &[u8], limit: usize) -> Vec<&CachedRegion> {
        self.overlapping(start_key, end_key).take(limit).collect()
    }

    /// The ids of held regions overlapping `[start_key, end_key)`, in key order.
    pub fn overlaps(&self, start_key: &[u8], end_key: &[u8]) -> Vec<RegionId> {
        self.overlapping(start_key, end_key).map(|r| r.id()).collect()
    }

    fn overlapping<'a, 'k>(
        &'a self,
        start_key: &'k [u8],
        end_key: &'k [u8],
    ) -> impl Iterator<Item = &'a CachedRegion> {
        // The region starting at or before `start_key` may reach into the range; every later
        // one overlaps until one starts at or past `end_key`.
        let first = self.by_start_key.range::<[u8], _>(at_or_before(start_key)).next_back();
        let rest =
            self.by_start_key.range::<[u8], _>((Bound::Excluded(start_key), Bound::Unbounded));
        first
            .into_iter()
            .chain(rest)
            .map(|(_, id)| &self.by_id[id])
            .take_while(move |r| end_key.is_empty() || r.region.start_key.as_slice() < end_key)
            .filter(move |r| {
                ranges_overlap(&r.region.start_key, &r.region.end_key, start_key, end_key)
            })
    }

    /// Puts `region` in, replacing the region of the same id and removing every other region
    /// its range overlaps; returns the ids of those others, in key order.
    pub fn insert(&mut self, region: CachedRegion) -> Vec<RegionId> {
        let id = region.id();
        self.remove(id);
        let overlapped = self.overlaps(&region.region.start_key, &region.region.end_key);
        for other in &overlapped {
            self.remove(*other);
        }
        self.by_start_key.insert(region.region.start_key.clone(), id);
        self.by_id.insert(id, region);
        overlapped
    }

    /// Takes the region out, if held.
    pub fn remove(&mut self, region_id: RegionId) -> Option<CachedRegion> {
        let region = self.by_id.remove(&region_id)?;
        let removed = self.by_start_key.remove(&region.region.start_key);
        assert_eq!(removed, Some(region_id), "region tree indexes disagree");
        Some(region)
    }

    /// Regions, leaders and size per store, over every region held. O(regions).
    pub fn store_loads(&self) -> BTreeMap<StoreId, StoreLoad> {
        let mut loads: BTreeMap<StoreId, StoreLoad> = BTreeMap::new();
        for r in self.by_id.values() {
            for peer in &r.region.peers {
                let load = loads.entry(peer.store_id).or_default();
                load.region_count += 1;
                load.region_size_bytes += r.approximate_size_bytes;
            }
            if let Some(store_id) = r.leader_store_id() {
                loads.entry(store_id).or_default().leader_count += 1;
            }
        }
        loads
    }

    /// Panics if the two indexes disagree or two ranges overlap.
    pub fn check_invariants(&self) {
        assert_eq!(self.by_id.len(), self.by_start_key.len());
        let mut prev_end: Option<&[u8]> = None;
        for (start, id) in &self.by_start_key {
            let r = &self.by_id[id].region;
            assert_eq!(&r.start_key, start, "region {id} indexed under the wrong start key");
            assert!(r.end_key.is_empty() || r.start_key < r.end_key, "region {id} is empty");
            if let Some(prev_end) = prev_end {
                assert!(
                    !prev_end.is_empty() && prev_end <= start.as_slice(),
                    "region {id} overlaps its predecessor"
                );
            }
            prev_end = Some(&r.end_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &str, end: &str) -> CachedRegion {
        CachedRegion {
            region: Region {
                id,
                start_key: start.as_bytes().to_vec(),
                end_key: end.as_bytes().to_vec(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn ids(regions: Vec<&CachedRegion>) -> Vec<u64> {
        regions.into_iter().map(|r| r.id()).collect()
    }

    #[test]
    fn lookup_by_key_and_scan_follow_key_order() {
        let mut tree = RegionTree::default();
        assert!(tree.insert(region(3, "m", "")).is_empty());
        assert!(tree.insert(region(1, "", "c")).is_empty());
        assert!(tree.insert(region(2, "c", "m")).is_empty());
        tree.check_invariants();
        assert_eq!(tree.get_by_key(b"").unwrap().id(), 1);
        assert_eq!(tree.get_by_key(b"c").unwrap().id(), 2);
        assert_eq!(tree.get_by_key(b"lzz").unwrap().id(), 2);
        assert_eq!(tree.get_by_key(b"zzz").unwrap().id(), 3);
        assert_eq!(ids(tree.scan(b"", b"", 10)), vec![1, 2, 3]);
        assert_eq!(ids(tree.scan(b"b", b"", 2)), vec![1, 2]);
        assert_eq!(ids(tree.scan(b"d", b"m", 10)), vec![2], "end key is exclusive");
        assert_eq!(ids(tree.scan(b"d", b"m\0", 10)), vec![2, 3]);
        assert_eq!(ids(tree.scan(b"a", b"z", 0)), Vec::<u64>::new());
    }

    #[test]
    fn gaps_answer_nothing_and_insert_removes_what_it_overlaps() {
        let mut tree = RegionTree::default();
        tree.insert(region(1, "a", "c"));
        tree.insert(region(2, "e", "g"));
        assert!(tree.get_by_key(b"d").is_none());
        assert!(tree.get_by_key(b"0").is_none());
        assert_eq!(tree.overlaps(b"c", b"e"), Vec::<u64>::new());
        assert_eq!(tree.insert(region(3, "b", "f")), vec![1, 2]);
        tree.check_invariants();
        assert_eq!(ids(tree.scan(b"", b"", 10)), vec![3]);
        // Re-inserting an id with a new range drops its old start key.
        assert!(tree.insert(region(3, "x", "")).is_empty());
        tree.check_invariants();
        assert!(tree.get_by_key(b"c").is_none());
        assert_eq!(tree.len(), 1);
    }

    #[test]
    fn store_loads_count_peers_leaders_and_sizes() {
        let mut tree = RegionTree::default();
        let peer = |id, store_id| Peer { id, store_id, ..Default::default() };
        let mut a = region(1, "", "m");
        a.region.peers = vec![peer(11, 1), peer(12, 2)];
        a.leader = Some(peer(11, 1));
        a.approximate_size_bytes = 10;
        let mut b = region(2, "m", "");
        b.region.peers = vec![peer(21, 2)];
        b.leader = Some(peer(21, 2));
        b.approximate_size_bytes = 5;
        tree.insert(a);
        tree.insert(b);
        let loads = tree.store_loads();
        assert_eq!(
            loads[&1],
            StoreLoad { region_count: 1, leader_count: 1, region_size_bytes: 10 }
        );
        assert_eq!(
            loads[&2],
            StoreLoad { region_count: 2, leader_count: 1, region_size_bytes: 15 }
        );
    }
}
