//! What became of a proposal, judged from the committed log: applied, certainly never to be
//! applied, unknowable, or still pending. The client retries the second kind and reports
//! only the third as an unknown outcome.
//!
//! The argument rests on two Raft facts. The committed log is the same on every peer, and an
//! entry is named by `(term, index)` (log matching). Terms never decrease along a log, so once
//! an entry of term `t` is committed at index `i`, no entry of a term below `t` can ever be
//! committed after `i`.

use crate::types::ReqToken;

/// A proposal waiting for its entry `(term, index)` to be applied. Internal proposals
/// (log compaction) have no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proposal {
    pub term: u64,
    pub index: u64,
    pub token: Option<ReqToken>,
    /// The leader's tick when it proposed: its commit in `term` proves a quorum heard from the
    /// leader after this tick, which renews the lease (see `lease.rs`).
    pub proposed_tick: u64,
}

/// What the peer just learned about its committed log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The entry `(term, index)` was applied; its result is known.
    Entry { term: u64, index: u64 },
    /// A snapshot ending at `(term, index)` replaced the log: entries up to it were applied
    /// elsewhere, their results are not known here.
    Snapshot { term: u64, index: u64 },
}

/// A proposal's fate given what was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// This is the applied entry: answer with its result.
    Applied,
    /// Its slot went to another entry (or entries of a newer term were committed before its
    /// index): it was not applied and never will be.
    Dropped,
    /// It may or may not have been applied (a snapshot covered its index, or its slot was
    /// passed without being seen).
    Unknown,
    /// Nothing is known yet.
    Pending,
}

impl Proposal {
    pub(crate) fn fate(&self, committed: Committed) -> Fate {
        let (term, index, snapshot) = match committed {
            Committed::Entry { term, index } => (term, index, false),
            Committed::Snapshot { term, index } => (term, index, true),
        };
        if self.index == index {
            match (self.term == term, snapshot) {
                (true, false) => Fate::Applied,
                // Applied as part of the snapshot; its result is lost.
                (true, true) => Fate::Unknown,
                (false, _) => Fate::Dropped,
            }
        } else if self.index < index {
            // Apply moves one index at a time, so an entry passed by is only possible under a
            // snapshot; it may be in it.
            Fate::Unknown
        } else if self.term < term {
            Fate::Dropped
        } else {
            Fate::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(term: u64, index: u64) -> Proposal {
        Proposal { term, index, token: Some(ReqToken(1)), proposed_tick: 0 }
    }

    #[test]
    fn fates_follow_log_matching_and_monotonic_terms() {
        use Committed::{Entry, Snapshot};
        let cases = [
            // (proposal term, index), committed, fate
            ((3, 10), Entry { term: 3, index: 10 }, Fate::Applied),
            ((3, 10), Entry { term: 4, index: 10 }, Fate::Dropped),
            ((5, 10), Entry { term: 4, index: 10 }, Fate::Dropped),
            ((3, 10), Entry { term: 3, index: 9 }, Fate::Pending),
            ((3, 10), Entry { term: 2, index: 9 }, Fate::Pending),
            ((3, 10), Entry { term: 4, index: 9 }, Fate::Dropped),
            ((3, 10), Entry { term: 3, index: 11 }, Fate::Unknown),
            ((3, 10), Snapshot { term: 3, index: 10 }, Fate::Unknown),
            ((3, 10), Snapshot { term: 4, index: 10 }, Fate::Dropped),
            ((3, 10), Snapshot { term: 4, index: 12 }, Fate::Unknown),
            ((3, 10), Snapshot { term: 4, index: 8 }, Fate::Dropped),
            ((3, 10), Snapshot { term: 3, index: 8 }, Fate::Pending),
        ];
        for ((term, index), committed, want) in cases {
            assert_eq!(p(term, index).fate(committed), want, "({term}, {index}) vs {committed:?}");
        }
    }
}
