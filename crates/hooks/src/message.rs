//! Targeted message faults: the rule the simulator sets (drop, delay or duplicate the Raft
//! messages of some kinds, from or to one store, for one region) and the verdict a store's send
//! path asks for on each message it sends. Inert off the simulator.

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// What a rule does to a message it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageAction {
    Drop,
    /// Delivered late, after the messages sent after it.
    Delay,
    /// Delivered now and once more, late (a real network can duplicate; madsim never does).
    Duplicate,
}

impl MessageAction {
    pub const ALL: [MessageAction; 3] =
        [MessageAction::Drop, MessageAction::Delay, MessageAction::Duplicate];

    pub const fn name(self) -> &'static str {
        match self {
            MessageAction::Drop => "drop",
            MessageAction::Delay => "delay",
            MessageAction::Duplicate => "duplicate",
        }
    }

    pub fn from_name(name: &str) -> Option<MessageAction> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// Which messages a rule matches, and what it does to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRule {
    /// Raft message kinds (`minikv_hooks::message_kind` names); empty: every kind.
    pub kinds: Vec<&'static str>,
    /// Only messages sent by this store.
    pub from_store: Option<u64>,
    /// Only messages bound for this store.
    pub to_store: Option<u64>,
    /// Only messages of this region.
    pub region: Option<u64>,
    pub action: MessageAction,
    /// Chance, parts per million, that a matching message is affected.
    pub rate_ppm: u32,
    /// A late copy arrives this long after the message was sent: `[min, max]` milliseconds.
    pub delay_ms: (u64, u64),
}

impl MessageRule {
    fn matches(&self, from_store: u64, to_store: u64, region: u64, kind: &str) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && self.from_store.is_none_or(|s| s == from_store)
            && self.to_store.is_none_or(|s| s == to_store)
            && self.region.is_none_or(|r| r == region)
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFault {
    Deliver,
    Drop,
    /// Send it only after this many milliseconds.
    Delay(u64),
    /// Send it now and once more after this many milliseconds.
    Duplicate(u64),
}

/// The verdict for a message under `rule`, drawing from `rng`.
pub(crate) fn judge(
    rule: &MessageRule,
    rng: &mut ChaCha8Rng,
    from_store: u64,
    to_store: u64,
    region: u64,
    kind: &str,
) -> MessageFault {
    if !rule.matches(from_store, to_store, region, kind)
        || (rng.next_u32() % 1_000_000) >= rule.rate_ppm
    {
        return MessageFault::Deliver;
    }
    let (lo, hi) = rule.delay_ms;
    let late_ms = lo + rng.next_u64() % (hi.saturating_sub(lo) + 1);
    match rule.action {
        MessageAction::Drop => MessageFault::Drop,
        MessageAction::Delay => MessageFault::Delay(late_ms),
        MessageAction::Duplicate => MessageFault::Duplicate(late_ms),
    }
}

/// The message kinds rules name (Raft message types that cross the network).
pub const MESSAGE_KINDS: [&str; 13] = [
    "append",
    "append-response",
    "vote",
    "vote-response",
    "pre-vote",
    "pre-vote-response",
    "snapshot",
    "heartbeat",
    "heartbeat-response",
    "transfer-leader",
    "timeout-now",
    "read-index",
    "read-index-response",
];

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;

    fn rule(action: MessageAction, rate_ppm: u32) -> MessageRule {
        MessageRule {
            kinds: vec!["append"],
            from_store: Some(1),
            to_store: None,
            region: Some(1),
            action,
            rate_ppm,
            delay_ms: (5, 9),
        }
    }

    #[test]
    fn a_rule_touches_only_what_it_matches_at_its_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let r = rule(MessageAction::Drop, 1_000_000);
        assert_eq!(judge(&r, &mut rng, 1, 2, 1, "append"), MessageFault::Drop);
        assert_eq!(judge(&r, &mut rng, 2, 1, 1, "append"), MessageFault::Deliver, "other sender");
        assert_eq!(judge(&r, &mut rng, 1, 2, 1, "heartbeat"), MessageFault::Deliver);
        assert_eq!(judge(&r, &mut rng, 1, 2, 7, "append"), MessageFault::Deliver, "other region");
        let never = rule(MessageAction::Drop, 0);
        assert_eq!(judge(&never, &mut rng, 1, 2, 1, "append"), MessageFault::Deliver);
        let dup = rule(MessageAction::Duplicate, 1_000_000);
        for _ in 0..50 {
            match judge(&dup, &mut rng, 1, 3, 1, "append") {
                MessageFault::Duplicate(ms) => assert!((5..=9).contains(&ms)),
                other => panic!("{other:?}"),
            }
        }
        let half = rule(MessageAction::Delay, 500_000);
        let delayed = (0..1000)
            .filter(|_| judge(&half, &mut rng, 1, 3, 1, "append") != MessageFault::Deliver)
            .count();
        assert!((400..600).contains(&delayed), "{delayed} of 1000 at 50%");
    }

    #[test]
    fn action_names_round_trip() {
        for a in MessageAction::ALL {
            assert_eq!(MessageAction::from_name(a.name()), Some(a));
        }
    }
}
