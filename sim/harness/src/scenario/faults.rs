//! The fault tables of a phase (`[phase.faults.<kind>]`): one struct per kind, every parameter
//! optional (the seed picks what a scenario leaves open).

use serde::Deserialize;
use toml::Spanned;

use super::Between;

/// The faults of a phase, one optional table per kind. Omitted parameters are picked by the
/// seed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    pub partition: Option<PartitionSpec>,
    pub clog: Option<ClogSpec>,
    pub loss: Option<LossSpec>,
    pub latency: Option<LatencySpec>,
    pub kill: Option<KillSpec>,
    pub pause: Option<PauseSpec>,
    pub clock: Option<ClockSpec>,
    pub disk: Option<DiskSpec>,
    pub membership: Option<MembershipSpec>,
    pub message: Option<MessageSpec>,
    pub depose: Option<DeposeSpec>,
    pub strike: Option<StrikeSpec>,
    pub lose: Option<LoseSpec>,
}

impl FaultsSpec {
    /// The fault kinds configured, as the nemesis names them in the trace (`nemesis <kind>:`).
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            (self.partition.is_some(), "partition"),
            (self.clog.is_some(), "clog"),
            (self.loss.is_some(), "loss"),
            (self.latency.is_some(), "latency"),
            (self.kill.is_some(), "kill"),
            (self.pause.is_some(), "pause"),
            (self.clock.is_some(), "clock"),
            (self.disk.is_some(), "disk"),
            (self.membership.is_some(), "membership"),
            (self.message.is_some(), "message"),
            (self.depose.is_some(), "depose"),
            (self.strike.is_some(), "strike"),
            (self.lose.is_some(), "lose"),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
    }
}

/// The shapes a partition can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionShape {
    /// Two random halves.
    Halves,
    /// One node alone.
    Isolate,
    /// The current leader alone (its clients still reach it): a targeted partition.
    IsolateLeader,
    /// The current leader hears everyone but no store hears it (one-way: its messages out are
    /// lost), so the others elect a new leader while it still believes it leads.
    MuteLeader,
    /// Two halves joined through one node that sees both.
    Bridge,
    /// Nodes on a ring, each seeing only its neighbours: every node sees a majority, no two
    /// the same one.
    MajoritiesRing,
}

impl PartitionShape {
    pub const ALL: [PartitionShape; 6] = [
        PartitionShape::Halves,
        PartitionShape::Isolate,
        PartitionShape::IsolateLeader,
        PartitionShape::MuteLeader,
        PartitionShape::Bridge,
        PartitionShape::MajoritiesRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionShape::Halves => "halves",
            PartitionShape::Isolate => "isolate",
            PartitionShape::IsolateLeader => "isolate-leader",
            PartitionShape::MuteLeader => "mute-leader",
            PartitionShape::Bridge => "bridge",
            PartitionShape::MajoritiesRing => "majorities-ring",
        }
    }
}

/// Network partitions, re-drawn every `every_ms`; a round may also leave the network whole.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub every_ms: Option<Spanned<Between>>,
    pub shapes: Option<Vec<PartitionShape>>,
}

/// One-way clogs: a link that delivers nothing in one direction for `duration_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClogSpec {
    pub every_ms: Option<Spanned<Between>>,
    pub duration_ms: Option<Spanned<Between>>,
}

/// Packet loss on every link (clients' included) for the whole phase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSpec {
    /// Fraction of messages dropped, in [0, 0.5].
    pub rate: Option<Spanned<f64>>,
}

/// Message delays for the whole phase.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    pub ms: Option<Spanned<Between>>,
}

/// Power loss of a node (its disk drops unsynced writes, tearing sectors) and its restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSpec {
    pub every_ms: Option<Spanned<Between>>,
    pub down_ms: Option<Spanned<Between>>,
    /// Nodes down at once (default: a minority).
    pub max_down: Option<Spanned<u64>>,
    /// Also cut the power of every node at once, once, at this offset into the phase.
    pub all_at_ms: Option<Spanned<u64>>,
    /// Each kill takes the group's leader when one is known and up (else a random node).
    pub leader: Option<Spanned<bool>>,
}

/// Pausing a node's tasks (its clock keeps running) and resuming them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseSpec {
    pub every_ms: Option<Spanned<Between>>,
    pub pause_ms: Option<Spanned<Between>>,
}

/// Per-node clock faults: offsets, bumps forward and back, strobes and drift.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    pub every_ms: Option<Spanned<Between>>,
    /// Largest offset from true time any fault sets.
    pub max_offset_ms: Option<Spanned<u64>>,
    /// Largest drift rate, parts per million (faster or slower).
    pub max_drift_ppm: Option<Spanned<u64>>,
    /// Also, in some rounds, the worst case for leader leases: the leader's clock slow by the
    /// largest drift and every other clock fast by it.
    pub skew_leader: Option<Spanned<bool>>,
    /// Also, in half the rounds, the group's leader's clock set this far ahead of true time
    /// and every other clock back to it: a new leader's clock is then behind the old one's
    /// (the TSO's worst case).
    pub leader_ahead_ms: Option<Spanned<u64>>,
}

/// Disk faults: latent read errors (EIO) on a node's simulated disk; crashes tear sectors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Reads that fail, parts per million, on the disks the fault picks.
    pub read_error_ppm: Option<Spanned<u64>>,
    /// Of the sectors written but not synced when a node loses power, parts per million kept.
    pub crash_keep_ppm: Option<Spanned<u64>>,
    /// How often a latent sector error appears (the sector fails every read until it is
    /// rewritten, or until the phase ends and the disk is "repaired"); `[0, 0]`: never.
    pub latent_every_ms: Option<Spanned<Between>>,
}

/// Membership changes (add and remove voters) through an admin client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipSpec {
    pub every_ms: Option<Spanned<Between>>,
}

/// Targeted message faults: each round, for `duration_ms`, one rule drops, delays or
/// duplicates the Raft messages of one kind (or of every kind) sent by or to one store (the
/// leader, half the time) for the first region. Left open, the seed picks each round's kind,
/// action and store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    pub every_ms: Option<Spanned<Between>>,
    pub duration_ms: Option<Spanned<Between>>,
    /// Message kinds to pick from (`append`, `vote`, `heartbeat`, ...; `any` for every kind).
    pub kinds: Option<Vec<Spanned<String>>>,
    /// Actions to pick from: `drop`, `delay`, `duplicate`.
    pub actions: Option<Vec<Spanned<String>>>,
    /// Fraction of the matching messages affected, in (0, 1].
    pub rate: Option<Spanned<f64>>,
    /// How late a delayed or duplicated copy arrives.
    pub delay_ms: Option<Spanned<Between>>,
}

/// Deposing new leaders: right after a store becomes leader (a new term), with `percent`
/// chance, it is isolated or muted (it hears the others, they do not hear it) for `hold_ms`,
/// before its first entries can reach the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeposeSpec {
    /// Chance, in percent, that a new leader is deposed.
    pub percent: Option<Spanned<u64>>,
    /// How long after its election the leader is cut off.
    pub after_ms: Option<Spanned<Between>>,
    pub hold_ms: Option<Spanned<Between>>,
}

/// Stores lost for good: at a moment of the phase, `count` stores holding a replica of the
/// first region lose power and never come back (PD must replace their replicas).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseSpec {
    pub count: Option<Spanned<u64>>,
    /// When, into the phase.
    pub at_ms: Option<Spanned<Between>>,
}

/// Striking a store at a moment in its own code: when it hits one of `probes` (a rare path or
/// a step of its write path, `minikv_hooks::Probe`), with `percent` chance, its messages stop
/// leaving at once (`after_ms` 0) or a moment later, and it is muted or loses power for
/// `hold_ms`. One strike at a time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrikeSpec {
    pub probes: Vec<Spanned<String>>,
    pub percent: Option<Spanned<u64>>,
    /// What a strike does, picked per strike: `mute` (no store hears it) or `crash` (power
    /// loss, then a restart).
    pub actions: Option<Vec<Spanned<String>>>,
    pub after_ms: Option<Spanned<Between>>,
    pub hold_ms: Option<Spanned<Between>>,
}
