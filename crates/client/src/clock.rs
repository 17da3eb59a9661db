//! The per-node clock: madsim time (tokio time outside simulation) plus an offset that a
//! nemesis can move, so every time-dependent decision of a node can be skewed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use madsim::time::Instant;

/// A node's view of time. Clones share the offset: skewing one skews every holder.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Start of the clock's epoch (the runtime's time when the clock was made).
    origin: Instant,
    offset_ms: Arc<AtomicI64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock { origin: Instant::now(), offset_ms: Arc::new(AtomicI64::new(0)) }
    }

    /// Milliseconds since the clock's epoch as this node sees them (offset applied; never
    /// below zero).
    pub fn now_ms(&self) -> u64 {
        let real = self.origin.elapsed().as_millis() as i64;
        (real + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Sets the node's offset against the runtime's time (positive: ahead).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sleeps until this clock reads at least `deadline_ms` (a clock moved forward wakes the
    /// sleeper no later than the runtime's time says; a clock moved back makes it sleep longer).
    pub async fn sleep_until_ms(&self, deadline_ms: u64) {
        let now = self.now_ms();
        if deadline_ms > now {
            madsim::time::sleep(Duration::from_millis(deadline_ms - now)).await;
        }
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    #[madsim::test]
    async fn offset_moves_the_reading_and_clones_share_it() {
        let clock = Clock::new();
        madsim::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(clock.now_ms(), 50);
        let other = clock.clone();
        other.set_offset_ms(-20);
        assert_eq!(clock.now_ms(), 30);
        other.set_offset_ms(-100);
        assert_eq!(clock.now_ms(), 0, "a clock never reads below zero");
        clock.set_offset_ms(0);
        clock.sleep_until_ms(80).await;
        assert_eq!(clock.now_ms(), 80);
    }
}
