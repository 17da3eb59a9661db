//! The timestamp oracle's decisions, pure: which timestamps a PD node may hand out, and when it
//! must first raise the saved bound.
//!
//! The rule: a node serves timestamps only with physical part below a bound it saved itself
//! (a compare-and-swap on the bound key, through Raft) and only while the key still holds that
//! bound, read linearizably after the request arrived. Whoever serves next must first swap the
//! bound again, from the value it read, and starts at or above that value. So every timestamp
//! served before a request was sent lies below the bound the serving node reads for it, or was
//! served by that node itself (its `last`): the answer is greater than both.

use minikv_hooks::{Canary, canary};
use minikv_proto::pdpb::{LOGICAL_PER_MS, Timestamp};

/// What the node must do before it can answer a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Serve: the batch's timestamps are `first..first + count`.
    Serve { first: Timestamp },
    /// Swap the saved bound from `expected` (the value read) to `new_bound_ms`, then plan again.
    Raise { expected: Option<u64>, new_bound_ms: u64 },
}

/// One PD node's timestamp state.
#[derive(Debug, Clone, Default)]
pub struct TsoState {
    /// The bound this node saved and still owns (the key held it at the last read).
    owned_bound_ms: Option<u64>,
    /// The bound key's value at the last read (`None`: never written).
    read_bound_ms: Option<u64>,
    /// The last timestamp this node served under `owned_bound_ms`.
    last: Option<Timestamp>,
    /// The value the node swapped the bound from when it took ownership: everyone before it
    /// served below this.
    floor_ms: u64,
    /// The bound was raised since the last batch served: the next batch is served below it
    /// even if the clock passed it meanwhile (else a raise slower than the window would be
    /// followed by another, forever).
    fresh_bound: bool,
    /// How far above its clock a node saves the bound.
    window_ms: u64,
}

impl TsoState {
    pub fn new(window_ms: u64) -> TsoState {
        TsoState { window_ms: window_ms.max(1), ..TsoState::default() }
    }

    /// The bound key read `stored_ms` (linearizably, after the batch's requests arrived). If it
    /// is not the bound this node saved, someone else may have served since: the node owns
    /// nothing and must raise the bound above `stored_ms` before it serves.
    pub fn observe(&mut self, stored_ms: Option<u64>) {
        self.read_bound_ms = stored_ms;
        if self.owned_bound_ms.is_none() || self.owned_bound_ms != stored_ms {
            self.owned_bound_ms = None;
            self.last = None;
        }
    }

    /// Forgets ownership (a swap whose outcome is unknown: the key may hold it or not).
    pub fn forget(&mut self) {
        self.owned_bound_ms = None;
        self.last = None;
        self.read_bound_ms = None;
    }

    /// The swap to `bound_ms` (from the value last read) succeeded: the node owns it.
    pub fn raised(&mut self, bound_ms: u64) {
        if self.owned_bound_ms.is_none() {
            self.floor_ms = self.read_bound_ms.unwrap_or(0);
            self.last = None;
        }
        self.owned_bound_ms = Some(bound_ms);
        self.read_bound_ms = Some(bound_ms);
        self.fresh_bound = true;
    }

    /// The first timestamp the node may serve next: above its own last one, or, when it
    /// serves first under this bound, at or above both its clock and the bound it swapped
    /// from (the floor the previous owner served below).
    fn next_candidate(&self, now_ms: u64) -> (u64, u64) {
        match self.last {
            Some(last) if last.physical_ms() >= now_ms => {
                if last.logical() + 1 < LOGICAL_PER_MS {
                    (last.physical_ms(), last.logical() + 1)
                } else {
                    (last.physical_ms() + 1, 0)
                }
            }
            // The canary starts from the clock alone, below what the previous owner served
            // when this node's clock is behind.
            _ if canary(Canary::TsoIgnoresSavedBound) => (now_ms, 0),
            _ => (now_ms.max(self.floor_ms), 0),
        }
    }

    /// Plans a batch of `count` timestamps at clock reading `now_ms`, after `observe`.
    pub fn plan(&mut self, now_ms: u64, count: u32) -> Plan {
        let count = u64::from(count.max(1));
        let Some(bound_ms) = self.owned_bound_ms else {
            let from = now_ms.max(self.read_bound_ms.unwrap_or(0));
            return Plan::Raise {
                expected: self.read_bound_ms,
                new_bound_ms: from + self.window_ms,
            };
        };
        // Right after a raise, a clock past the bound (the raise took longer than the window)
        // is read as the bound's last millisecond: this batch lags the clock, never passes
        // the bound, and the next one raises the bound again.
        let clock_ms = if self.fresh_bound { now_ms.min(bound_ms - 1) } else { now_ms };
        let (physical_ms, logical) = self.next_candidate(clock_ms);
        // The batch may spill into the next milliseconds; its last timestamp must stay below
        // the bound.
        let last_logical = logical + count - 1;
        let last_physical_ms = physical_ms + last_logical / LOGICAL_PER_MS;
        if last_physical_ms >= bound_ms {
            return Plan::Raise {
                expected: Some(bound_ms),
                new_bound_ms: now_ms.max(last_physical_ms + 1) + self.window_ms,
            };
        }
        let first = Timestamp::compose(physical_ms, logical).expect("physical fits 46 bits");
        let last = Timestamp::compose(last_physical_ms, last_logical % LOGICAL_PER_MS)
            .expect("physical fits 46 bits");
        self.last = Some(last);
        self.fresh_bound = false;
        Plan::Serve { first }
    }

    /// The bound the node owns, if any.
    pub fn owned_bound_ms(&self) -> Option<u64> {
        self.owned_bound_ms
    }
}

/// Encodes a saved bound as the key's value.
pub fn encode_bound(bound_ms: u64) -> Vec<u8> {
    bound_ms.to_be_bytes().to_vec()
}

/// Decodes the bound key's value; `Err` names what was wrong.
pub fn decode_bound(value: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] =
        value.try_into().map_err(|_| format!("TSO bound holds {} bytes, not 8", value.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `state` through one batch the way the service does, with the key in `stored`.
    fn batch(state: &mut TsoState, stored: &mut Option<u64>, now_ms: u64, count: u32) -> Timestamp {
        for _ in 0..3 {
            state.observe(*stored);
            match state.plan(now_ms, count) {
                Plan::Serve { first } => return first,
                Plan::Raise { expected, new_bound_ms } => {
                    assert_eq!(expected, *stored, "a swap always expects what was read");
                    *stored = Some(new_bound_ms);
                    state.raised(new_bound_ms);
                }
            }
        }
        panic!("no timestamps after two raises");
    }

    #[test]
    fn a_fresh_node_raises_the_bound_before_serving() {
        let mut state = TsoState::new(3_000);
        state.observe(None);
        assert_eq!(state.plan(100, 1), Plan::Raise { expected: None, new_bound_ms: 3_100 });
    }

    #[test]
    fn timestamps_increase_within_a_millisecond_and_across_batches() {
        let mut state = TsoState::new(3_000);
        let mut stored = None;
        let a = batch(&mut state, &mut stored, 100, 5);
        let b = batch(&mut state, &mut stored, 100, 1);
        assert_eq!(a, Timestamp::compose(100, 0).unwrap());
        assert_eq!(b, Timestamp::compose(100, 5).unwrap());
        let c = batch(&mut state, &mut stored, 101, 1);
        assert_eq!(c, Timestamp::compose(101, 0).unwrap());
    }

    #[test]
    fn a_clock_that_jumps_back_never_takes_timestamps_back() {
        let mut state = TsoState::new(3_000);
        let mut stored = None;
        let a = batch(&mut state, &mut stored, 1_000, 1);
        let b = batch(&mut state, &mut stored, 10, 1);
        assert!(b > a, "{b} after {a}");
    }

    #[test]
    fn a_batch_that_overflows_the_logical_bits_spills_into_the_next_millisecond() {
        let mut state = TsoState::new(3_000);
        let mut stored = None;
        let a = batch(&mut state, &mut stored, 100, (LOGICAL_PER_MS - 1) as u32);
        let b = batch(&mut state, &mut stored, 100, 3);
        assert_eq!(a, Timestamp::compose(100, 0).unwrap());
        assert_eq!(b, Timestamp::compose(100, LOGICAL_PER_MS - 1).unwrap());
        let c = batch(&mut state, &mut stored, 100, 1);
        assert_eq!(c, Timestamp::compose(101, 2).unwrap());
    }

    #[test]
    fn reaching_the_bound_raises_it_from_the_owned_value() {
        let mut state = TsoState::new(10);
        let mut stored = None;
        batch(&mut state, &mut stored, 100, 1);
        assert_eq!(stored, Some(110));
        state.observe(stored);
        assert_eq!(state.plan(109, 1), Plan::Serve { first: Timestamp::compose(109, 0).unwrap() });
        state.observe(stored);
        assert_eq!(state.plan(110, 1), Plan::Raise { expected: Some(110), new_bound_ms: 121 });
    }

    /// A raise that completes after the clock passed the new bound still serves (below the
    /// bound), instead of raising forever.
    #[test]
    fn a_raise_slower_than_the_window_still_serves_below_the_bound() {
        let mut state = TsoState::new(5);
        state.observe(Some(100));
        assert_eq!(state.plan(100, 1), Plan::Raise { expected: Some(100), new_bound_ms: 105 });
        state.raised(105);
        state.observe(Some(105));
        assert_eq!(state.plan(150, 1), Plan::Serve { first: Timestamp::compose(104, 0).unwrap() });
        state.observe(Some(105));
        assert_eq!(state.plan(150, 1), Plan::Raise { expected: Some(105), new_bound_ms: 156 });
    }

    /// A new leader whose clock is far behind the old one's still starts above every
    /// timestamp the old one served: at the bound it swapped from.
    #[test]
    fn a_new_leader_behind_the_old_ones_clock_starts_above_the_saved_bound() {
        let mut old = TsoState::new(3_000);
        let mut new = TsoState::new(3_000);
        let mut stored = None;
        let served = batch(&mut old, &mut stored, 50_000, 100);
        let first = batch(&mut new, &mut stored, 10, 1);
        assert!(first.physical_ms() >= 53_000, "{first} not above the old bound");
        assert!(first > served);
        // The old leader reads a bound it does not own: it must raise it before serving.
        old.observe(stored);
        assert!(matches!(old.plan(50_001, 1), Plan::Raise { expected: Some(_), .. }));
        let again = batch(&mut old, &mut stored, 50_001, 1);
        assert!(again > first, "{again} after {first}");
    }

    #[test]
    fn an_unknown_swap_forgets_ownership() {
        let mut state = TsoState::new(3_000);
        let mut stored = None;
        batch(&mut state, &mut stored, 100, 1);
        state.forget();
        state.observe(stored);
        assert!(matches!(state.plan(100, 1), Plan::Raise { .. }));
    }

    #[test]
    fn bound_encoding_round_trips_and_names_bad_lengths() {
        assert_eq!(decode_bound(&encode_bound(77)), Ok(77));
        assert_eq!(decode_bound(b"abc"), Err("TSO bound holds 3 bytes, not 8".to_string()));
    }
}
