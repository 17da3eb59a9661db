//! Column families: the engine's fixed set of ordered key spaces, one redb table each.

use std::fmt;

/// A column family. The set is fixed: the MVCC layout's three and one for Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// User values of MVCC (`default` in TiKV).
    Default,
    /// Percolator locks.
    Lock,
    /// Commit records of MVCC.
    Write,
    /// Raft state and logs: hard state, log entries, apply state.
    Raft,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 4] = [Cf::Default, Cf::Lock, Cf::Write, Cf::Raft];
    /// How many column families there are.
    pub const COUNT: usize = Cf::ALL.len();

    /// The name of the column family (also its redb table name).
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
            Cf::Raft => "raft",
        }
    }

    /// Position of the column family in [`Cf::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Cf::Default => 0,
            Cf::Lock => 1,
            Cf::Write => 2,
            Cf::Raft => 3,
        }
    }

    /// The column family named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Cf> {
        Cf::ALL.into_iter().find(|cf| cf.name() == name)
    }
}

impl fmt::Display for Cf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Cf;

    #[test]
    fn names_and_indices_round_trip() {
        for (i, cf) in Cf::ALL.into_iter().enumerate() {
            assert_eq!(cf.index(), i);
            assert_eq!(Cf::from_name(cf.name()), Some(cf));
        }
        assert_eq!(Cf::from_name("nope"), None);
    }
}
