//! Raft audited across nodes from the stores' audit events: at most one leader per term per
//! region (election safety), and every node that applies index i of a region applies the same
//! entry (same term, same data digest): committed logs agree (state machine safety).

use std::collections::BTreeMap;

/// How many violations are kept verbatim (the count is always exact).
const MAX_KEPT_VIOLATIONS: usize = 10;

/// What the auditor saw, and what broke.
#[derive(Debug, Default)]
pub struct Auditor {
    /// (region, term) -> the node that led it.
    leaders: BTreeMap<(u64, u64), String>,
    /// (region, index) -> (term, digest, first node that applied it).
    applied: BTreeMap<(u64, u64), (u64, u64, String)>,
    pub events: u64,
    pub violation_count: u64,
    pub violations: Vec<String>,
}

impl Auditor {
    /// Feeds one audit event from `node`: `event` is its kind, `numbers` its numeric fields.
    pub fn observe(&mut self, node: &str, numbers: &[(&'static str, u64)], event: Option<&str>) {
        let get = |name: &str| numbers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        self.events += 1;
        match event {
            Some("leader") => {
                let (Some(region), Some(term)) = (get("region"), get("term")) else {
                    return self.violate(format!("{node}: malformed leader event {numbers:?}"));
                };
                self.leader(node, region, term);
            }
            Some("apply") => {
                let fields = (get("region"), get("index"), get("term"), get("digest"));
                let (Some(region), Some(index), Some(term), Some(digest)) = fields else {
                    return self.violate(format!("{node}: malformed apply event {numbers:?}"));
                };
                self.apply(node, region, index, term, digest);
            }
            // Entries skipped by a snapshot are audited where they were applied.
            Some("snapshot_applied") => {}
            other => self.violate(format!("{node}: unknown audit event {other:?}")),
        }
    }

    /// `node` became leader of `region` in `term`.
    pub fn leader(&mut self, node: &str, region: u64, term: u64) {
        match self.leaders.get(&(region, term)) {
            Some(first) if first != node => {
                let m = format!("region {region} term {term}: two leaders, {first} and {node}");
                self.violate(m);
            }
            Some(_) => {}
            None => {
                self.leaders.insert((region, term), node.to_string());
            }
        }
    }

    /// `node` applied entry `index` (of `term`, data digest `digest`) of `region`.
    pub fn apply(&mut self, node: &str, region: u64, index: u64, term: u64, digest: u64) {
        match self.applied.get(&(region, index)) {
            Some((t, d, first)) if (*t, *d) != (term, digest) => {
                let m = format!(
                    "region {region} index {index}: {first} applied term {t} digest {d:016x}, \
                     {node} applied term {term} digest {digest:016x}"
                );
                self.violate(m);
            }
            Some(_) => {}
            None => {
                self.applied.insert((region, index), (term, digest, node.to_string()));
            }
        }
    }

    fn violate(&mut self, message: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_KEPT_VIOLATIONS {
            self.violations.push(message);
        }
    }

    /// Entries audited (distinct region/index pairs).
    pub fn entries(&self) -> usize {
        self.applied.len()
    }

    /// Terms with a known leader.
    pub fn terms(&self) -> usize {
        self.leaders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_nodes_pass() {
        let mut a = Auditor::default();
        a.leader("s1", 1, 2);
        a.leader("s1", 1, 2);
        a.leader("s2", 1, 3);
        a.apply("s1", 1, 5, 2, 77);
        a.apply("s2", 1, 5, 2, 77);
        a.apply("s3", 2, 5, 3, 99);
        assert_eq!(a.violation_count, 0, "{:?}", a.violations);
        assert_eq!((a.entries(), a.terms()), (2, 2));
    }

    #[test]
    fn two_leaders_in_a_term_is_a_violation() {
        let mut a = Auditor::default();
        a.leader("s1", 1, 2);
        a.leader("s3", 1, 2);
        assert_eq!(a.violations, vec!["region 1 term 2: two leaders, s1 and s3".to_string()]);
    }

    #[test]
    fn different_entries_at_one_index_is_a_violation() {
        let mut a = Auditor::default();
        a.apply("s1", 1, 5, 2, 77);
        a.apply("s2", 1, 5, 3, 77);
        a.apply("s3", 1, 5, 2, 78);
        assert_eq!(a.violation_count, 2);
        assert!(a.violations[0].contains("s1 applied term 2"), "{:?}", a.violations);
    }

    #[test]
    fn events_route_by_kind_and_malformed_ones_are_violations() {
        let mut a = Auditor::default();
        a.observe("s1", &[("region", 1), ("term", 4)], Some("leader"));
        a.observe("s2", &[("region", 1), ("term", 4)], Some("leader"));
        a.observe("s2", &[("region", 1)], Some("apply"));
        a.observe("s2", &[], Some("bogus"));
        assert_eq!(a.violation_count, 3, "{:?}", a.violations);
    }
}
