//! The ID allocator's decisions, pure: a node hands out IDs only from a window it claimed by
//! swapping the saved end of the claimed range upward (through Raft). Claims never overlap, so
//! no ID is handed out twice, whichever node leads and however often; a node that restarts or
//! loses a swap's outcome just abandons the rest of its window.

/// IDs below this are never handed out (0 means "none" on the wire; the lowest ones are left
/// to the fixed IDs of tests).
pub const FIRST_ID: u64 = 1_000;

/// What the node must do before it can hand out an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPlan {
    Serve {
        id: u64,
    },
    /// Swap the saved end from `expected` (the value read) to `new_end`; the window is then
    /// `[max(expected, FIRST_ID), new_end)`.
    Claim {
        expected: Option<u64>,
        new_end: u64,
    },
}

/// One PD node's claimed window.
#[derive(Debug, Clone, Default)]
pub struct IdState {
    next: u64,
    end: u64,
    step: u64,
}

impl IdState {
    pub fn new(step: u64) -> IdState {
        IdState { next: 0, end: 0, step: step.max(1) }
    }

    /// The next ID, or the claim to make first given the saved end `stored_end` (read
    /// linearizably).
    pub fn plan(&mut self, stored_end: Option<u64>) -> IdPlan {
        if self.next < self.end {
            let id = self.next;
            self.next += 1;
            return IdPlan::Serve { id };
        }
        let from = stored_end.unwrap_or(0).max(FIRST_ID);
        IdPlan::Claim { expected: stored_end, new_end: from + self.step }
    }

    /// The next ID of the window, if any is left (no claim).
    pub fn take(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Whether the window is used up (the caller must read the saved end and claim).
    pub fn exhausted(&self) -> bool {
        self.next >= self.end
    }

    /// The claim from `expected` to `new_end` succeeded.
    pub fn claimed(&mut self, expected: Option<u64>, new_end: u64) {
        self.next = expected.unwrap_or(0).max(FIRST_ID);
        self.end = new_end;
    }

    /// Abandons the window (e.g. after a claim whose outcome is unknown).
    pub fn forget(&mut self) {
        self.next = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(state: &mut IdState, stored: &mut Option<u64>) -> u64 {
        loop {
            match state.plan(*stored) {
                IdPlan::Serve { id } => return id,
                IdPlan::Claim { expected, new_end } => {
                    assert_eq!(expected, *stored);
                    *stored = Some(new_end);
                    state.claimed(expected, new_end);
                }
            }
        }
    }

    #[test]
    fn ids_are_unique_across_nodes_taking_turns_and_restarts() {
        let mut stored = None;
        let mut a = IdState::new(3);
        let mut b = IdState::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..20 {
            let id = match round % 4 {
                0 | 1 => take(&mut a, &mut stored),
                2 => take(&mut b, &mut stored),
                _ => {
                    b.forget();
                    take(&mut b, &mut stored)
                }
            };
            assert!(id >= FIRST_ID);
            assert!(seen.insert(id), "id {id} handed out twice");
        }
    }

    #[test]
    fn a_claim_starts_at_the_saved_end() {
        let mut state = IdState::new(10);
        assert_eq!(
            state.plan(Some(5_000)),
            IdPlan::Claim { expected: Some(5_000), new_end: 5_010 }
        );
        state.claimed(Some(5_000), 5_010);
        assert_eq!(state.plan(Some(5_010)), IdPlan::Serve { id: 5_000 });
    }
}
