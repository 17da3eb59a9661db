//! The per-node clock: madsim time (tokio time outside simulation) plus an offset and a drift
//! rate that a nemesis can move, so every time-dependent decision of a node can be skewed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::time::Instant;

/// A node's view of time. Clones share the skew: skewing one skews every holder.
#[derive(Clone)]
pub struct Clock {
    /// Start of the clock's epoch (the runtime's time when the clock was made).
    origin: Instant,
    skew: Arc<Mutex<Skew>>,
    time: RuntimeTime,
}

/// The runtime's time source, read directly. In simulation `Instant::now()` reaches it through
/// madsim's process-wide `clock_gettime` hook, which finds the runtime again (and clones its
/// handle) on every call; this keeps the handle of the runtime it was made in (none when made
/// outside one, and then reads `Instant::now()`).
#[derive(Clone)]
#[cfg_attr(not(madsim), derive(Default))]
pub(crate) struct RuntimeTime {
    #[cfg(madsim)]
    handle: Option<madsim::time::TimeHandle>,
}

#[cfg(madsim)]
impl Default for RuntimeTime {
    fn default() -> Self {
        RuntimeTime { handle: madsim::time::TimeHandle::try_current() }
    }
}

impl RuntimeTime {
    pub(crate) fn now(&self) -> Instant {
        #[cfg(madsim)]
        if let Some(handle) = &self.handle {
            return handle.now_instant();
        }
        Instant::now()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("origin", &self.origin).field("skew", &self.skew).finish()
    }
}

/// How a clock departs from the runtime's time.
#[derive(Debug, Clone, Copy, Default)]
struct Skew {
    offset_ms: i64,
    /// Parts per million the clock gains (positive) or loses (negative) ...
    drift_ppm: i64,
    /// ... since this runtime time (ms since `origin`).
    drift_since_ms: i64,
}

impl Skew {
    fn reading_ms(&self, real_ms: i64) -> i64 {
        real_ms + self.offset_ms + (real_ms - self.drift_since_ms) * self.drift_ppm / 1_000_000
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
            skew: Arc::new(Mutex::new(Skew::default())),
            time: RuntimeTime::default(),
        }
    }

    /// The runtime's time (unskewed): what `Instant::now()` says, read more cheaply.
    pub fn now_instant(&self) -> Instant {
        self.time.now()
    }

    fn real_ms(&self) -> i64 {
        self.now_instant().saturating_duration_since(self.origin).as_millis() as i64
    }

    fn skew(&self) -> std::sync::MutexGuard<'_, Skew> {
        self.skew.lock().expect("clock lock")
    }

    /// Milliseconds since the clock's epoch as this node sees them (skew applied; never
    /// below zero).
    pub fn now_ms(&self) -> u64 {
        self.skew().reading_ms(self.real_ms()).max(0) as u64
    }

    /// The runtime instant at which this clock, keeping its current skew, first reads `ms`
    /// (now, if it already does). The same `ms` gives the same instant until the skew moves,
    /// so a loop that waits for it again and again arms one timer, not one per wakeup.
    pub fn instant_at_ms(&self, ms: u64) -> Instant {
        let real_now = self.real_ms();
        let skew = *self.skew();
        let target = i64::try_from(ms).unwrap_or(i64::MAX);
        if skew.reading_ms(real_now).max(0) >= target {
            return self.now_instant();
        }
        // The reading only changes when the runtime's time crosses a whole millisecond, and
        // never goes back. Solve for that millisecond, then step to the first one that reads
        // `ms` (the solution is rounded; the drift term rounds toward zero, so a losing clock
        // may get there a couple of milliseconds early: start a little before it). A clock
        // that does not advance is looked at again a millisecond later.
        let rate_ppm = 1_000_000 + skew.drift_ppm;
        let start = if skew.drift_ppm == 0 {
            // No drift: the reading is the runtime's milliseconds plus the offset.
            target.saturating_sub(skew.offset_ms).max(real_now + 1)
        } else if rate_ppm > 0 {
            let scaled = (i128::from(target) - i128::from(skew.offset_ms)) * 1_000_000
                + i128::from(skew.drift_since_ms) * i128::from(skew.drift_ppm);
            let estimate = i64::try_from(scaled / i128::from(rate_ppm)).unwrap_or(i64::MAX);
            estimate.saturating_sub(3).max(real_now + 1)
        } else {
            real_now + 1
        };
        let real = (start..start.saturating_add(8))
            .find(|&real| skew.reading_ms(real) >= target)
            .unwrap_or(real_now + 1);
        self.origin + Duration::from_millis(real as u64)
    }

    /// Sets the offset against the runtime's time (positive: ahead). The drift accumulated so
    /// far is kept.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        let real = self.real_ms();
        let mut s = self.skew();
        let drifted = s.reading_ms(real) - real - s.offset_ms;
        s.offset_ms = offset_ms - drifted;
    }

    /// The reading minus the runtime's time, drift included (positive: ahead).
    pub fn offset_ms(&self) -> i64 {
        let real = self.real_ms();
        self.skew().reading_ms(real) - real
    }

    /// From now on the clock gains `drift_ppm` parts per million (negative: loses). The
    /// reading does not jump.
    pub fn set_drift_ppm(&self, drift_ppm: i64) {
        let real = self.real_ms();
        let mut s = self.skew();
        let offset = s.reading_ms(real) - real;
        *s = Skew { offset_ms: offset, drift_ppm, drift_since_ms: real };
    }

    pub fn drift_ppm(&self) -> i64 {
        self.skew().drift_ppm
    }

    /// Back to the runtime's time, no drift.
    pub fn reset(&self) {
        *self.skew() = Skew::default();
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

    #[madsim::test]
    async fn drift_accumulates_without_jumps_and_reset_clears_it() {
        let clock = Clock::new();
        clock.set_offset_ms(5);
        clock.set_drift_ppm(100_000); // gains 10%
        assert_eq!(clock.now_ms(), 5, "setting a drift does not jump the reading");
        madsim::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(clock.now_ms(), 1_105);
        assert_eq!(clock.offset_ms(), 105);
        clock.set_drift_ppm(-500_000); // now loses half
        madsim::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(clock.now_ms(), 1_205);
        clock.set_offset_ms(0);
        assert_eq!(clock.now_ms(), 1_200, "an offset replaces the accumulated skew");
        madsim::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(clock.now_ms(), 1_250);
        clock.reset();
        assert_eq!(clock.now_ms(), 1_300);
        assert_eq!(clock.drift_ppm(), 0);
    }

    /// Sleeps until `at` and checks the clock then reads `ms`, and read below it a
    /// millisecond earlier.
    async fn reads_first_at(clock: &Clock, at: Instant, ms: u64) {
        madsim::time::sleep_until(at - Duration::from_millis(1)).await;
        assert!(clock.now_ms() < ms, "{} already reads {ms} a millisecond early", clock.now_ms());
        madsim::time::sleep_until(at).await;
        assert_eq!(clock.now_ms(), ms);
    }

    #[madsim::test]
    async fn the_instant_a_reading_is_reached_is_exact_and_stable_under_skew() {
        let clock = Clock::new();
        let origin = Instant::now();
        madsim::time::sleep(Duration::from_micros(2_500)).await;
        // Asked again later (within the same millisecond or not), the answer is the same.
        let at = clock.instant_at_ms(40);
        assert_eq!(at, origin + Duration::from_millis(40));
        madsim::time::sleep(Duration::from_micros(1_700)).await;
        assert_eq!(clock.instant_at_ms(40), at);
        reads_first_at(&clock, at, 40).await;
        assert_eq!(clock.instant_at_ms(40), Instant::now(), "a reading already reached is now");

        clock.set_offset_ms(25);
        let at = clock.instant_at_ms(100);
        assert_eq!(at, origin + Duration::from_millis(75));
        reads_first_at(&clock, at, 100).await;

        for drift_ppm in [300_000, -400_000, 7] {
            clock.set_drift_ppm(drift_ppm);
            let target = clock.now_ms() + 50;
            let at = clock.instant_at_ms(target);
            madsim::time::sleep(Duration::from_micros(300)).await;
            assert_eq!(clock.instant_at_ms(target), at, "drift {drift_ppm}: stable");
            reads_first_at(&clock, at, target).await;
        }

        // A stopped clock never gets there: it is looked at again a millisecond later.
        clock.set_drift_ppm(-1_000_000);
        let at = clock.instant_at_ms(clock.now_ms() + 5);
        assert!(at > Instant::now() && at <= Instant::now() + Duration::from_millis(1));
    }
}
