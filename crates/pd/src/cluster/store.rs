//! One store as PD sees it: its metadata, its last reported stats, when it last heartbeated,
//! and the state (Up, Down, Tombstone) that follows from those.

use minikv_proto::metapb::{Store, StoreId};
use minikv_proto::pdpb::StoreStats;

/// What PD makes of a store's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreState {
    /// Heartbeated within `max_store_down_ms`.
    Up,
    /// Silent for longer than `max_store_down_ms`; its peers are to be replaced.
    Down,
    /// Removed from the cluster for good; nothing is ever scheduled onto it again.
    Tombstone,
}

/// A store's metadata and what its last heartbeat said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// Id and address, as the store registered them.
    pub store: Store,
    /// The stats of the last store heartbeat, `None` before the first one.
    pub stats: Option<StoreStats>,
    /// When the store last heartbeated (or registered, before its first heartbeat).
    pub last_heartbeat_ms: u64,
    /// Removed for good (see `StoreState::Tombstone`).
    pub tombstone: bool,
}

impl StoreInfo {
    /// A store that has just registered: it counts as heard from at `now_ms`.
    pub fn new(store: Store, now_ms: u64) -> StoreInfo {
        StoreInfo { store, stats: None, last_heartbeat_ms: now_ms, tombstone: false }
    }

    /// The store's id.
    pub fn id(&self) -> StoreId {
        self.store.id
    }

    /// How long the store has been silent at `now_ms` (0 if it heartbeated "in the future",
    /// which a caller's clock skew could cause).
    pub fn silent_for_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_heartbeat_ms)
    }

    /// Up, Down (silent for more than `max_store_down_ms`) or Tombstone.
    pub fn state(&self, now_ms: u64, max_store_down_ms: u64) -> StoreState {
        if self.tombstone {
            StoreState::Tombstone
        } else if self.silent_for_ms(now_ms) > max_store_down_ms {
            StoreState::Down
        } else {
            StoreState::Up
        }
    }

    /// The store said its queues are full.
    pub fn is_busy(&self) -> bool {
        self.stats.as_ref().is_some_and(|s| s.is_busy)
    }

    /// The store said its disk returned errors.
    pub fn is_disk_failing(&self) -> bool {
        self.stats.as_ref().is_some_and(|s| s.disk_failing)
    }

    /// True when new peers (or leaders) may be placed on this store at `now_ms`: Up, not busy,
    /// disk healthy.
    pub fn accepts_new_load(&self, now_ms: u64, max_store_down_ms: u64) -> bool {
        self.state(now_ms, max_store_down_ms) == StoreState::Up
            && !self.is_busy()
            && !self.is_disk_failing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_goes_down_after_max_store_down_ms_of_silence_and_tombstone_wins() {
        let mut info = StoreInfo::new(Store { id: 1, address: "s1".into() }, 1_000);
        assert_eq!(info.state(1_000, 500), StoreState::Up);
        assert_eq!(info.state(1_500, 500), StoreState::Up, "exactly the limit is still up");
        assert_eq!(info.state(1_501, 500), StoreState::Down);
        assert_eq!(info.state(0, 500), StoreState::Up, "a clock behind the heartbeat is not down");
        info.tombstone = true;
        assert_eq!(info.state(1_000, 500), StoreState::Tombstone);
        assert!(!info.accepts_new_load(1_000, 500));
    }

    #[test]
    fn busy_and_disk_failing_come_from_the_last_stats() {
        let mut info = StoreInfo::new(Store { id: 2, address: "s2".into() }, 0);
        assert!(!info.is_busy() && !info.is_disk_failing());
        assert!(info.accepts_new_load(0, 10));
        info.stats = Some(StoreStats { store_id: 2, is_busy: true, ..Default::default() });
        assert!(info.is_busy());
        assert!(!info.accepts_new_load(0, 10));
        info.stats = Some(StoreStats { store_id: 2, disk_failing: true, ..Default::default() });
        assert!(!info.is_busy() && info.is_disk_failing());
        assert!(!info.accepts_new_load(0, 10));
    }
}
