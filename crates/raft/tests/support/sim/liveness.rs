//! The liveness phase: once faults stop, the cluster must elect a leader and apply a fresh
//! proposal on every member within a bounded number of ticks.

use std::collections::{BTreeMap, BTreeSet};

use minikv_raft::{Error, NodeId, Storage};

use super::{Check, Sim};

/// Liveness: after faults stop, the probe must be applied on every member within this many
/// election timeouts' worth of ticks.
const LIVENESS_ELECTION_TIMEOUTS: u64 = 30;
/// Liveness: actions allowed to settle the cluster after one tick before it counts as a livelock.
const SETTLE_MAX_ACTIONS: u64 = 20_000;
/// A re-proposal of the liveness probe happens at most this often, in ticks.
const PROBE_RETRY_TICKS: u64 = 8;

impl Sim {
    /// Heals everything, then requires a fresh proposal to be applied on every member within
    /// `LIVENESS_ELECTION_TIMEOUTS` election timeouts.
    pub(super) fn run_liveness(&mut self) -> Check {
        self.full_check()?;
        self.trace(&[20], || "faults stop: heal, no drops, restart everyone".to_string());
        self.partition = None;
        self.drop_per_mille = 0;
        self.max_delay_actions = 0;
        let down: Vec<NodeId> = self.nodes.values().filter(|n| !n.is_up()).map(|n| n.id).collect();
        for id in down {
            self.restart(id)?;
        }
        self.next_payload += 1;
        let probe = format!("s{}-probe{}", self.seed, self.next_payload).into_bytes();
        let max_ticks = LIVENESS_ELECTION_TIMEOUTS * self.template.election_tick as u64;
        let mut last_proposal_tick = None;
        for tick in 0..max_ticks {
            self.tick_all()?;
            self.settle()?;
            if self.probe_applied_everywhere(&probe) {
                return self.full_check();
            }
            let retry = last_proposal_tick.is_none_or(|t: u64| tick >= t + PROBE_RETRY_TICKS);
            if let (Some(leader), true) = (self.leader(), retry) {
                let raw = self.nodes.get_mut(&leader).unwrap().raw.as_mut().unwrap();
                match raw.propose(Vec::new(), probe.clone()) {
                    Ok(()) => last_proposal_tick = Some(tick),
                    Err(Error::ProposalDropped) => {}
                    Err(e) => {
                        return Err(format!("liveness: node {leader}: propose failed: {e:?}"));
                    }
                }
                self.settle()?;
            }
        }
        let applied: BTreeMap<NodeId, u64> =
            self.nodes.values().map(|n| (n.id, n.sm.applied_index())).collect();
        let roles: BTreeMap<NodeId, String> = self
            .nodes
            .values()
            .map(|n| {
                let s = n.raw.as_ref().unwrap().status();
                let disk = n.disk();
                let last = disk.last_index().unwrap_or(0);
                let last_term = disk.term(last).unwrap_or(0);
                let cs = &s.conf_state;
                let text = format!(
                    "{:?} term {} vote {} commit {} last (index {last}, term {last_term}) voters {:?} \
                     learners {:?} outgoing {:?}",
                    s.role, s.term, s.vote, s.commit, cs.voters, cs.learners, cs.voters_outgoing
                );
                (n.id, text)
            })
            .collect();
        let progress =
            self.leader().map(|l| (l, self.nodes[&l].raw.as_ref().unwrap().status().progress));
        Err(format!(
            "liveness: a fresh proposal was not applied on every member within {max_ticks} ticks after \
             faults stopped (applied {applied:?}, roles {roles:?}, leader progress {progress:?})"
        ))
    }

    /// Handles every Ready and delivers every message until nothing is pending.
    pub(super) fn settle(&mut self) -> Check {
        for _ in 0..SETTLE_MAX_ACTIONS {
            self.action += 1;
            let ready =
                self.nodes.values().find(|n| n.raw.as_ref().unwrap().has_ready()).map(|n| n.id);
            if let Some(id) = ready {
                self.handle_ready(id, false)?;
            } else if let Some((_, f)) = self.wire.pop_first() {
                self.deliver(f.msg)?;
            } else {
                return self.check_after_action();
            }
            self.check_after_action()?;
        }
        Err(format!("liveness: the cluster did not settle within {SETTLE_MAX_ACTIONS} actions"))
    }

    /// True once every member of the leader's configuration applied the probe.
    pub(super) fn probe_applied_everywhere(&self, probe: &[u8]) -> bool {
        let Some(leader) = self.leader() else { return false };
        let cs = &self.nodes[&leader].sm.conf_state;
        let members: BTreeSet<NodeId> = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners_next)
            .copied()
            .collect();
        members.iter().all(|id| self.nodes[id].sm.applied.iter().rev().any(|e| e.data == probe))
    }
}
