//! The TSO checker: every batch of timestamps a client received lies strictly above every
//! timestamp received before that batch was asked for (real-time order), and no timestamp was
//! handed out twice. Requests that failed or timed out returned nothing and constrain nothing.

/// One answered TSO request: the timestamps `first..first + count`, asked for at `invoke_ns`
/// and received at `complete_ns` (simulated time, one clock for the whole run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsoOp {
    pub client: u64,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub first: u64,
    pub count: u32,
}

impl TsoOp {
    pub fn last(&self) -> u64 {
        self.first + u64::from(self.count.max(1)) - 1
    }
}

/// Why a TSO history is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsoViolation {
    #[error(
        "timestamps repeat: client {a_client} got [{a_first}, {a_last}] and client {b_client} got [{b_first}, {b_last}]"
    )]
    Repeated { a_client: u64, a_first: u64, a_last: u64, b_client: u64, b_first: u64, b_last: u64 },
    #[error(
        "timestamp went back: client {client} asked at {invoke_ns} ns and got {first}, not above {earlier_last} which client {earlier_client} received at {earlier_complete_ns} ns"
    )]
    Backwards {
        client: u64,
        invoke_ns: u64,
        first: u64,
        earlier_client: u64,
        earlier_last: u64,
        earlier_complete_ns: u64,
    },
}

/// Checks `ops`; `Err` names the first violation found (repeats first, then order).
pub fn check(ops: &[TsoOp]) -> Result<(), TsoViolation> {
    let mut by_first: Vec<&TsoOp> = ops.iter().collect();
    by_first.sort_by_key(|op| (op.first, op.last()));
    for pair in by_first.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.first <= a.last() {
            return Err(TsoViolation::Repeated {
                a_client: a.client,
                a_first: a.first,
                a_last: a.last(),
                b_client: b.client,
                b_first: b.first,
                b_last: b.last(),
            });
        }
    }
    let mut by_complete: Vec<&TsoOp> = ops.iter().collect();
    by_complete.sort_by_key(|op| (op.complete_ns, op.first));
    let mut by_invoke: Vec<&TsoOp> = ops.iter().collect();
    by_invoke.sort_by_key(|op| (op.invoke_ns, op.first));
    // The op with the greatest last timestamp among those completed so far.
    let mut max_done: Option<&TsoOp> = None;
    let mut done = by_complete.iter().peekable();
    for op in by_invoke {
        // Strictly before: an answer received at the same instant as the request was sent is
        // concurrent with it.
        while let Some(d) = done.peek()
            && d.complete_ns < op.invoke_ns
        {
            if max_done.is_none_or(|m| d.last() > m.last()) {
                max_done = Some(d);
            }
            done.next();
        }
        if let Some(m) = max_done
            && op.first <= m.last()
        {
            return Err(TsoViolation::Backwards {
                client: op.client,
                invoke_ns: op.invoke_ns,
                first: op.first,
                earlier_client: m.client,
                earlier_last: m.last(),
                earlier_complete_ns: m.complete_ns,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, invoke_ns: u64, complete_ns: u64, first: u64, count: u32) -> TsoOp {
        TsoOp { client, invoke_ns, complete_ns, first, count }
    }

    #[test]
    fn increasing_and_concurrent_batches_pass() {
        let ops = [
            op(1, 0, 10, 100, 5),
            op(2, 5, 20, 90, 3), // concurrent with the first: may be lower
            op(1, 11, 30, 105, 1),
            op(3, 25, 26, 200, 1),
        ];
        assert_eq!(check(&ops), Ok(()));
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn a_batch_below_an_earlier_answer_fails() {
        let ops = [op(1, 0, 10, 100, 5), op(2, 11, 20, 104, 1)];
        let err = check(&ops).unwrap_err();
        assert!(matches!(err, TsoViolation::Repeated { .. }), "{err}");
        let ops = [op(1, 0, 10, 100, 5), op(2, 11, 20, 50, 1)];
        let err = check(&ops).unwrap_err();
        assert_eq!(
            err,
            TsoViolation::Backwards {
                client: 2,
                invoke_ns: 11,
                first: 50,
                earlier_client: 1,
                earlier_last: 104,
                earlier_complete_ns: 10,
            }
        );
        assert!(err.to_string().contains("not above 104"), "{err}");
    }

    #[test]
    fn an_answer_received_at_the_instant_of_the_request_is_concurrent() {
        assert_eq!(check(&[op(1, 0, 10, 100, 1), op(2, 10, 20, 50, 1)]), Ok(()));
    }

    #[test]
    fn the_bound_is_the_greatest_earlier_answer_not_the_latest() {
        let ops = [op(1, 0, 10, 500, 1), op(2, 0, 12, 300, 1), op(3, 13, 20, 400, 1)];
        let err = check(&ops).unwrap_err();
        assert!(matches!(err, TsoViolation::Backwards { earlier_last: 500, .. }), "{err}");
    }

    #[test]
    fn overlapping_ranges_are_repeats() {
        let ops = [op(1, 0, 10, 100, 5), op(2, 0, 10, 103, 5)];
        assert!(matches!(
            check(&ops),
            Err(TsoViolation::Repeated { a_first: 100, b_first: 103, .. })
        ));
    }
}
