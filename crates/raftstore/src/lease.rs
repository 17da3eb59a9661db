//! The leader lease: local linearizable reads without a ReadIndex round, while no other
//! leader can exist.
//!
//! Why it is safe: a ReadIndex round confirmed at tick `t` (the tick the read was issued, no
//! later than the heartbeat that carried it) means a quorum heard from this leader after `t`.
//! With check-quorum, each of them refuses votes for `election_tick` of its own ticks after
//! hearing from the leader, and any new leader needs one of them; so no other leader exists
//! before `t + election_tick` unless clocks disagree. The lease ends `lease_margin_ticks`
//! earlier to absorb that disagreement. It also ends at once on any role, term or leader
//! change, when a leader transfer starts (the target campaigns without waiting), and when a
//! conf change applies (the quorum changed). A store that restarts forgot whom it heard from,
//! so with leases on it refuses votes for its first `election_tick` ticks (see `Store`).
//!
//! Ticks that never ran (the node was paused or starved, which the node sees on its clock)
//! fence the lease: it ends, and no ReadIndex issued before the gap can renew it, since its
//! evidence is older in real time than its tick says (found by the `leases` scenario, seed 792).
//!
//! What it assumes: every store's ticks run at the same rate within the margin. A clock that
//! stalls or jumps back on the leader (ticks stop) stretches the lease in real time; that is
//! why leases are off by default (`StoreConfig::lease_read`).

use crate::config::StoreConfig;
use minikv_hooks::{Canary, canary};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The term the lease was confirmed in, and the tick it ends at (exclusive); `None`: none.
    until: Option<(u64, u64)>,
    /// Reads issued at or before this tick confirm nothing: their evidence predates the
    /// event that ended the last lease (e.g. ticks missed while the node was paused, so that
    /// a confirmation arriving after the pause is far older in real time than in ticks).
    fenced_through_tick: Option<u64>,
}

impl Lease {
    fn duration_ticks(cfg: &StoreConfig) -> u64 {
        if canary(Canary::LeaseNoDriftMargin) {
            return cfg.election_tick as u64;
        }
        (cfg.election_tick as u64).saturating_sub(cfg.lease_margin_ticks)
    }

    /// A ReadIndex issued at `issued_tick` in `term` was confirmed by a quorum.
    pub fn confirm(&mut self, cfg: &StoreConfig, term: u64, issued_tick: u64) {
        if self.fenced_through_tick.is_some_and(|f| issued_tick <= f) {
            return;
        }
        let end = issued_tick + Self::duration_ticks(cfg);
        match self.until {
            Some((t, e)) if t == term && e >= end => {}
            _ => self.until = Some((term, end)),
        }
    }

    pub fn expire(&mut self) {
        self.until = None;
    }

    /// Ends the lease at `now_tick`, and reads issued up to it can no longer renew it: ticks
    /// were missed, so their confirmations are older in real time than in ticks.
    pub fn fence(&mut self, now_tick: u64) {
        self.until = None;
        self.fenced_through_tick = Some(now_tick);
    }

    /// Whether a read at `now_tick` in `term` may be served locally. Only the first half of a
    /// lease is used, so that reads keep confirming (renewing) it before it runs out.
    pub fn serves(&self, cfg: &StoreConfig, term: u64, now_tick: u64) -> bool {
        // The canary serves to the very end: up to the earliest election by a clock that runs
        // exactly as fast as ours.
        let half =
            if canary(Canary::LeaseNoDriftMargin) { 0 } else { Self::duration_ticks(cfg) / 2 };
        self.until.is_some_and(|(t, end)| t == term && now_tick + half < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(margin: u64) -> StoreConfig {
        StoreConfig { election_tick: 10, lease_margin_ticks: margin, ..Default::default() }
    }

    #[test]
    fn a_lease_serves_its_first_half_in_its_term_only() {
        let cfg = cfg(2);
        let mut lease = Lease::default();
        assert!(!lease.serves(&cfg, 3, 0));
        lease.confirm(&cfg, 3, 100); // Ends at 108; serves while now + 4 < 108.
        assert!(lease.serves(&cfg, 3, 100));
        assert!(lease.serves(&cfg, 3, 103));
        assert!(!lease.serves(&cfg, 3, 104));
        assert!(!lease.serves(&cfg, 4, 100), "another term");
        lease.confirm(&cfg, 3, 90);
        assert!(lease.serves(&cfg, 3, 103), "an older confirmation never shortens it");
        lease.expire();
        assert!(!lease.serves(&cfg, 3, 100));
        lease.confirm(&cfg, 3, 100);
        assert!(lease.serves(&cfg, 3, 100), "after an expiry, a new confirmation renews it");
        lease.fence(103);
        assert!(!lease.serves(&cfg, 3, 103), "a fence ends it");
        lease.confirm(&cfg, 3, 103);
        assert!(!lease.serves(&cfg, 3, 103), "a read issued before the expiry renews nothing");
        lease.confirm(&cfg, 3, 104);
        assert!(lease.serves(&cfg, 3, 104), "a read issued after it does");
        let mut no_time = Lease::default();
        no_time.confirm(&StoreConfig { lease_margin_ticks: 10, ..cfg }, 3, 100);
        assert!(!no_time.serves(&cfg, 3, 100), "a margin as long as the timeout leaves nothing");
    }
}
