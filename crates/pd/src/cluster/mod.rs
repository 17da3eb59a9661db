//! PD's view of the cluster: stores with their last heartbeat, and the region tree as the
//! regions' leaders last reported it (staleness rules included).

#![warn(missing_docs)]

mod region_tree;
mod store;
#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use region_tree::{CachedRegion, RegionTree, StoreLoad};
pub use store::{StoreInfo, StoreState};

use minikv_proto::metapb::{Region, RegionEpoch, RegionId, Store, StoreId};
use minikv_proto::pdpb::{PdError, RegionHeartbeat, StoreStats};

/// Knobs of PD's cluster view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterConfig {
    /// A store silent for longer than this is Down, and its peers are replaced.
    pub max_store_down_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { max_store_down_ms: 30 * 60 * 1_000 }
    }
}

/// What an accepted region heartbeat changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatOutcome {
    /// The region is new, or its range, epoch or peers differ from what was held (or it
    /// removed overlapped regions): the caller must persist the region's metadata.
    pub needs_persist: bool,
    /// Regions that overlapped the reported range and were dropped (split or merged away);
    /// the caller must delete their persisted metadata.
    pub removed_region_ids: Vec<RegionId>,
    /// The leader is not the one held before (memory only).
    pub leader_changed: bool,
    /// Pending or down peers, sizes or the term changed (memory only).
    pub stats_changed: bool,
}

impl HeartbeatOutcome {
    /// Nothing at all changed: the heartbeat repeated what PD held.
    pub fn is_unchanged(&self) -> bool {
        !self.needs_persist && !self.leader_changed && !self.stats_changed
    }

    /// Only the leader or the stats changed: update memory, persist nothing.
    pub fn is_memory_only(&self) -> bool {
        !self.needs_persist && (self.leader_changed || self.stats_changed)
    }
}

/// Stores and regions as PD knows them. Pure: time comes in as `now_ms`.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    config: ClusterConfig,
    stores: BTreeMap<StoreId, StoreInfo>,
    regions: RegionTree,
}

fn epoch_str(epoch: &RegionEpoch) -> String {
    format!("(conf_ver {}, version {})", epoch.conf_ver, epoch.version)
}

fn stale(reason: String) -> PdError {
    PdError::StaleRegion { reason }
}

impl Cluster {
    /// An empty cluster: no stores, no regions.
    pub fn new(config: ClusterConfig) -> Cluster {
        Cluster { config, ..Default::default() }
    }

    /// The knobs this view was made with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    // ---- stores ----

    /// Registers a store, or updates its address (its stats and liveness are kept). A
    /// tombstoned store stays removed: its id is never reused.
    pub fn put_store(&mut self, store: Store, now_ms: u64) -> Result<(), PdError> {
        match self.stores.get_mut(&store.id) {
            Some(info) if info.tombstone => {
                Err(PdError::Invalid { reason: format!("store {} is a tombstone", store.id) })
            }
            Some(info) => {
                info.store = store;
                Ok(())
            }
            None => {
                self.stores.insert(store.id, StoreInfo::new(store, now_ms));
                Ok(())
            }
        }
    }

    /// Takes a store heartbeat: the store is heard from at `now_ms` and its stats replace
    /// the last ones. Unknown and tombstoned stores are refused.
    pub fn process_store_heartbeat(
        &mut self,
        stats: StoreStats,
        now_ms: u64,
    ) -> Result<(), PdError> {
        let store_id = stats.store_id;
        let Some(info) = self.stores.get_mut(&store_id) else {
            return Err(PdError::Invalid { reason: format!("store {store_id} is not registered") });
        };
        if info.tombstone {
            return Err(PdError::Invalid { reason: format!("store {store_id} is a tombstone") });
        }
        info.last_heartbeat_ms = info.last_heartbeat_ms.max(now_ms);
        info.stats = Some(stats);
        Ok(())
    }

    /// Marks a store removed for good. False if it is unknown.
    pub fn set_store_tombstone(&mut self, store_id: StoreId) -> bool {
        self.stores.get_mut(&store_id).map(|info| info.tombstone = true).is_some()
    }

    /// The store, tombstones included.
    pub fn store(&self, store_id: StoreId) -> Option<&StoreInfo> {
        self.stores.get(&store_id)
    }

    /// The store's state at `now_ms`; `None` for an unknown store.
    pub fn store_state(&self, store_id: StoreId, now_ms: u64) -> Option<StoreState> {
        Some(self.stores.get(&store_id)?.state(now_ms, self.config.max_store_down_ms))
    }

    /// True when the store may take new peers or leaders at `now_ms` (Up, not busy, disk fine).
    pub fn store_accepts_new_load(&self, store_id: StoreId, now_ms: u64) -> bool {
        self.stores
            .get(&store_id)
            .is_some_and(|s| s.accepts_new_load(now_ms, self.config.max_store_down_ms))
    }

    /// Every store, tombstones included, in store id order.
    pub fn stores(&self) -> impl Iterator<Item = &StoreInfo> {
        self.stores.values()
    }

    // ---- regions ----

    /// Takes a region heartbeat, or refuses it as stale: its epoch is older than the one held
    /// for its id, its (non-zero) term older than the held one, or it overlaps another held
    /// region with a greater version. An accepted heartbeat replaces the region and drops
    /// every region it overlaps, so splits and merges reported in any order end with the
    /// newest ranges. A leader that is not a peer, or an empty range, is `Invalid`.
    pub fn process_region_heartbeat(
        &mut self,
        hb: &RegionHeartbeat,
        now_ms: u64,
    ) -> Result<HeartbeatOutcome, PdError> {
        let _ = now_ms; // Regions carry no liveness of their own; kept for a uniform API.
        let region = &hb.region;
        if region.peer_on_store(hb.leader.store_id).is_none_or(|p| p.id != hb.leader.id) {
            return Err(PdError::Invalid {
                reason: format!(
                    "region {}: leader {:?} is not one of its peers",
                    region.id, hb.leader
                ),
            });
        }
        if !region.end_key.is_empty() && region.start_key >= region.end_key {
            return Err(PdError::Invalid {
                reason: format!("region {}: empty key range", region.id),
            });
        }
        let held = self.regions.get(region.id);
        if let Some(held) = held {
            check_not_stale(held, hb)?;
        }
        for other_id in self.regions.overlaps(&region.start_key, &region.end_key) {
            let other = &self.regions.get(other_id).expect("overlap is held").region;
            if other_id != region.id && other.epoch.version > region.epoch.version {
                return Err(stale(format!(
                    "region {} {} overlaps region {} {} with a greater version",
                    region.id,
                    epoch_str(&region.epoch),
                    other_id,
                    epoch_str(&other.epoch)
                )));
            }
        }

        let mut new = CachedRegion::from_heartbeat(hb);
        // A heartbeat without a term does not forget the one held.
        new.term = new.term.max(held.map_or(0, |h| h.term));
        let mut outcome = match held {
            None => {
                HeartbeatOutcome { needs_persist: true, leader_changed: true, ..Default::default() }
            }
            Some(held) => HeartbeatOutcome {
                needs_persist: held.region != new.region,
                removed_region_ids: Vec::new(),
                leader_changed: held.leader != new.leader,
                stats_changed: held.term != new.term
                    || held.pending_peers != new.pending_peers
                    || held.down_peers != new.down_peers
                    || held.approximate_size_bytes != new.approximate_size_bytes
                    || held.approximate_keys != new.approximate_keys,
            },
        };
        if !outcome.is_unchanged() {
            outcome.removed_region_ids = self.regions.insert(new);
            outcome.needs_persist |= !outcome.removed_region_ids.is_empty();
        }
        Ok(outcome)
    }

    /// Fills the tree from persisted metadata (no leader, no stats yet); drops held regions
    /// the loaded one overlaps and returns their ids.
    pub fn load_region(&mut self, region: Region) -> Vec<RegionId> {
        self.regions.insert(CachedRegion { region, ..Default::default() })
    }

    /// Drops a region (e.g. one whose metadata PD deleted). Returns it if it was held.
    pub fn remove_region(&mut self, region_id: RegionId) -> Option<CachedRegion> {
        self.regions.remove(region_id)
    }

    /// The region tree, for iteration and per-store tallies.
    pub fn regions(&self) -> &RegionTree {
        &self.regions
    }

    /// The region held under `region_id`.
    pub fn region(&self, region_id: RegionId) -> Option<&CachedRegion> {
        self.regions.get(region_id)
    }

    /// The region whose range holds `key` (`None` in a gap not yet reported).
    pub fn region_by_key(&self, key: &[u8]) -> Option<&CachedRegion> {
        self.regions.get_by_key(key)
    }

    /// Up to `limit` regions overlapping `[start_key, end_key)` (empty end: unbounded), in key
    /// order.
    pub fn scan_regions(
        &self,
        start_key: &[u8],
        end_key: &[u8],
        limit: usize,
    ) -> Vec<&CachedRegion> {
        self.regions.scan(start_key, end_key, limit)
    }

    /// Peers (any role) on the store. O(regions).
    pub fn store_region_count(&self, store_id: StoreId) -> u64 {
        self.store_load(store_id).region_count
    }

    /// Regions led from the store. O(regions).
    pub fn store_leader_count(&self, store_id: StoreId) -> u64 {
        self.store_load(store_id).leader_count
    }

    /// Sum of approximate sizes of the regions with a peer on the store. O(regions).
    pub fn store_region_size_bytes(&self, store_id: StoreId) -> u64 {
        self.store_load(store_id).region_size_bytes
    }

    fn store_load(&self, store_id: StoreId) -> StoreLoad {
        self.regions.store_loads().get(&store_id).copied().unwrap_or_default()
    }
}

/// Refuses a heartbeat older than the region held for its id.
fn check_not_stale(held: &CachedRegion, hb: &RegionHeartbeat) -> Result<(), PdError> {
    let (held_epoch, epoch) = (&held.region.epoch, &hb.region.epoch);
    if epoch.is_stale_against(held_epoch) {
        return Err(stale(format!(
            "region {}: heartbeat epoch {} is older than held epoch {}",
            hb.region.id,
            epoch_str(epoch),
            epoch_str(held_epoch)
        )));
    }
    // A deposed leader's late heartbeat must not take leadership back from the new one. Term
    // 0 means "not reported" and is let through on the epoch alone.
    if hb.term > 0 && hb.term < held.term {
        return Err(stale(format!(
            "region {}: heartbeat term {} at epoch {} is older than held term {} at epoch {}",
            hb.region.id,
            hb.term,
            epoch_str(epoch),
            held.term,
            epoch_str(held_epoch)
        )));
    }
    Ok(())
}
