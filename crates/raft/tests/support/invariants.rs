//! Raft safety invariants, checked by the network simulator after every step.
//!
//! The checker remembers, across the whole history of one run: the leader of every term, every
//! entry ever seen committed (by index), and for every (index, term) pair ever seen in a persisted
//! log, the entry and the term of its predecessor. Log matching follows by induction from "one
//! (index, term) pair names one entry and one predecessor term", which is what
//! [`Invariants::observe_log_entry`] enforces. Violations are returned as `Err(description)`; the
//! simulator turns them into a panic that names the seed.

use std::collections::BTreeMap;

use minikv_raft::{Entry, HardState, NodeId};

/// What the checker has learned so far about one run.
#[derive(Debug, Default)]
pub struct Invariants {
    /// term -> the one node that was leader in that term.
    leaders: BTreeMap<u64, NodeId>,
    /// index -> the entry committed at that index (first observer wins; later ones must agree).
    committed: BTreeMap<u64, Entry>,
    /// (index, term) -> (the entry, the term of the entry at index - 1) as seen in a persisted log.
    log_links: BTreeMap<(u64, u64), (Entry, u64)>,
    /// node -> the last persisted hard state seen for it (survives crashes: it is the disk's).
    hard_states: BTreeMap<NodeId, HardState>,
}

/// The result of one check: `Err` holds a sentence describing the violation.
pub type Check = Result<(), String>;

impl Invariants {
    /// Election safety: at most one leader per term.
    pub fn observe_leader(&mut self, term: u64, id: NodeId) -> Check {
        match self.leaders.insert(term, id) {
            Some(previous) if previous != id => {
                Err(format!("two leaders in term {term}: node {previous} and node {id}"))
            }
            _ => Ok(()),
        }
    }

    /// State machine safety: an index, once committed, always holds the same entry.
    pub fn observe_committed(&mut self, who: NodeId, entry: &Entry) -> Check {
        match self.committed.get(&entry.index) {
            None => {
                self.committed.insert(entry.index, entry.clone());
                Ok(())
            }
            Some(known) if known == entry => Ok(()),
            Some(known) => Err(format!(
                "committed entry changed at index {}: known {}, node {who} has {}",
                entry.index,
                describe(known),
                describe(entry)
            )),
        }
    }

    /// The highest index seen committed so far (0 if none).
    pub fn max_committed_index(&self) -> u64 {
        self.committed.last_key_value().map_or(0, |(i, _)| *i)
    }

    /// The entry seen committed at `index`, if any.
    pub fn committed_at(&self, index: u64) -> Option<&Entry> {
        self.committed.get(&index)
    }

    /// Log matching: an (index, term) pair names exactly one entry and one predecessor term, in
    /// every persisted log that ever held it.
    pub fn observe_log_entry(&mut self, who: NodeId, entry: &Entry, prev_term: u64) -> Check {
        let key = (entry.index, entry.term);
        match self.log_links.get(&key) {
            None => {
                self.log_links.insert(key, (entry.clone(), prev_term));
                Ok(())
            }
            Some((known, known_prev)) if known == entry && *known_prev == prev_term => Ok(()),
            Some((known, known_prev)) => Err(format!(
                "log matching broken at (index {}, term {}): seen {} after term {known_prev}, \
                 node {who} persisted {} after term {prev_term}",
                entry.index,
                entry.term,
                describe(known),
                describe(entry)
            )),
        }
    }

    /// Persisted hard state only moves forward: the term never decreases, a vote cast in a term
    /// never changes, and the commit index never decreases.
    pub fn observe_hard_state(&mut self, who: NodeId, hs: HardState) -> Check {
        if let Some(old) = self.hard_states.get(&who) {
            if hs.term < old.term {
                return Err(format!(
                    "node {who} persisted term {} after term {}",
                    hs.term, old.term
                ));
            }
            if hs.term == old.term && old.vote != 0 && hs.vote != old.vote {
                return Err(format!(
                    "node {who} changed its vote in term {} from {} to {}",
                    hs.term, old.vote, hs.vote
                ));
            }
            if hs.commit < old.commit {
                return Err(format!(
                    "node {who} persisted commit {} after commit {}",
                    hs.commit, old.commit
                ));
            }
        }
        self.hard_states.insert(who, hs);
        Ok(())
    }

    /// Every applied sequence is a prefix of the longest one.
    pub fn check_applied_prefixes(applied: &BTreeMap<NodeId, &[Entry]>) -> Check {
        let Some((&longest_id, longest)) = applied.iter().max_by_key(|(_, seq)| seq.len()) else {
            return Ok(());
        };
        for (&id, seq) in applied {
            if let Some(pos) = seq.iter().zip(longest.iter()).position(|(a, b)| a != b) {
                return Err(format!(
                    "node {id} applied {} at position {pos}, node {longest_id} applied {}",
                    describe(&seq[pos]),
                    describe(&longest[pos])
                ));
            }
        }
        Ok(())
    }
}

/// A short, stable description of an entry for failure messages.
pub fn describe(e: &Entry) -> String {
    format!(
        "{{index {}, term {}, {:?}, data {:?}}}",
        e.index,
        e.term,
        e.entry_type,
        String::from_utf8_lossy(&e.data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry { index, term, data: data.as_bytes().to_vec(), ..Default::default() }
    }

    #[test]
    fn checker_rejects_two_leaders_in_one_term() {
        let mut inv = Invariants::default();
        inv.observe_leader(3, 1).unwrap();
        inv.observe_leader(3, 1).unwrap();
        inv.observe_leader(4, 2).unwrap();
        let err = inv.observe_leader(3, 2).unwrap_err();
        assert!(err.contains("two leaders in term 3"), "{err}");
    }

    #[test]
    fn checker_rejects_a_changed_committed_entry_and_a_log_mismatch() {
        let mut inv = Invariants::default();
        inv.observe_committed(1, &entry(5, 2, "a")).unwrap();
        inv.observe_committed(2, &entry(5, 2, "a")).unwrap();
        assert!(inv.observe_committed(3, &entry(5, 3, "b")).unwrap_err().contains("index 5"));
        inv.observe_log_entry(1, &entry(6, 2, "x"), 2).unwrap();
        assert!(
            inv.observe_log_entry(2, &entry(6, 2, "x"), 1).is_err(),
            "same (index, term), other predecessor"
        );
        assert!(
            inv.observe_log_entry(2, &entry(6, 2, "y"), 2).is_err(),
            "same (index, term), other data"
        );
    }

    #[test]
    fn checker_rejects_backward_hard_state_and_a_second_vote() {
        let mut inv = Invariants::default();
        inv.observe_hard_state(1, HardState { term: 2, vote: 3, commit: 4 }).unwrap();
        assert!(inv.observe_hard_state(1, HardState { term: 2, vote: 2, commit: 4 }).is_err());
        assert!(inv.observe_hard_state(1, HardState { term: 1, vote: 3, commit: 4 }).is_err());
        assert!(inv.observe_hard_state(1, HardState { term: 2, vote: 3, commit: 3 }).is_err());
        inv.observe_hard_state(1, HardState { term: 3, vote: 0, commit: 5 }).unwrap();
    }

    #[test]
    fn checker_rejects_applied_sequences_that_diverge() {
        let a = [entry(1, 1, "a"), entry(2, 1, "b")];
        let b = [entry(1, 1, "a")];
        let c = [entry(1, 1, "a"), entry(2, 2, "c")];
        let ok: BTreeMap<NodeId, &[Entry]> = [(1, &a[..]), (2, &b[..])].into_iter().collect();
        Invariants::check_applied_prefixes(&ok).unwrap();
        let bad: BTreeMap<NodeId, &[Entry]> =
            [(1, &a[..]), (2, &b[..]), (3, &c[..])].into_iter().collect();
        assert!(Invariants::check_applied_prefixes(&bad).unwrap_err().contains("position 1"));
    }
}
