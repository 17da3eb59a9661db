//! The simulator's fault and membership actions: partitions, crashes and restarts, log compaction
//! with state-machine snapshots, conf changes and leader transfers.

use std::collections::BTreeSet;

use minikv_raft::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, Error, NodeId, Storage,
    StorageError,
};

use super::{Check, Sim, jitter_seed};
use rand_core::RngCore;

impl Sim {
    pub(super) fn transfer_leader(&mut self) -> Check {
        let Some(leader) = self.leader() else { return Ok(()) };
        let to = 1 + self.below(self.shape.nodes);
        self.trace(&[6, leader, to], || format!("node {leader} transfers leadership to {to}"));
        self.nodes.get_mut(&leader).unwrap().raw.as_mut().unwrap().transfer_leader(to);
        Ok(())
    }

    pub(super) fn partition(&mut self) -> Check {
        let mut ids: Vec<NodeId> = (1..=self.shape.nodes).collect();
        let side: BTreeSet<NodeId> = if self.chance(500) {
            // Random halves: a seeded shuffle, then split.
            for i in (1..ids.len()).rev() {
                let j = self.below(i as u64 + 1) as usize;
                ids.swap(i, j);
            }
            ids[..ids.len() / 2].iter().copied().collect()
        } else {
            let id = 1 + self.below(self.shape.nodes);
            [id].into_iter().collect()
        };
        let words: Vec<u64> = std::iter::once(8).chain(side.iter().copied()).collect();
        self.trace(&words, || format!("partition {side:?} from the rest"));
        self.partition = Some(side);
        Ok(())
    }

    pub(super) fn crash(&mut self) -> Check {
        let ids = self.up_ids();
        let Some(id) = self.pick(&ids) else { return Ok(()) };
        if self.nodes[&id].raw.as_ref().unwrap().has_ready() && self.chance(600) {
            // Crash in the middle of handling a Ready.
            return self.handle_ready(id, true);
        }
        self.crash_now(id);
        Ok(())
    }

    pub(super) fn crash_now(&mut self, id: NodeId) {
        self.trace(&[9, id], || format!("crash node {id}"));
        self.nodes.get_mut(&id).unwrap().crash();
        self.crashes += 1;
        if !self.crash_loses_in_flight {
            // This seed's network keeps them: messages sent before the crash may still reach the
            // next incarnation, or come from the previous one (they were sent after persisting).
            return;
        }
        // In-flight messages to and from the node are lost with it; a sender learns of a lost
        // snapshot the way an application would (the transport reports the failed send).
        let lost: Vec<u64> = self
            .wire
            .iter()
            .filter(|(_, f)| f.msg.to == id || f.msg.from == id)
            .map(|(s, _)| *s)
            .collect();
        for seq in lost {
            let msg = self.wire.remove(&seq).unwrap().msg;
            if msg.to == id {
                self.report_lost(&msg);
            }
        }
    }

    pub(super) fn restart(&mut self, id: NodeId) -> Check {
        let node = self.nodes.get_mut(&id).unwrap();
        let rng_seed = jitter_seed(self.seed, id, node.incarnation);
        let applied = node.sm.applied_index();
        node.restart(&self.template, rng_seed)?;
        self.trace(&[10, id, applied], || format!("restart node {id} with applied {applied}"));
        Ok(())
    }

    /// A state-machine snapshot at the applied index, then compaction of the log below it.
    pub(super) fn compact(&mut self) -> Check {
        let ids = self.up_ids();
        let Some(id) = self.pick(&ids) else { return Ok(()) };
        if self.chance(100) {
            self.trace(&[17, id], || {
                format!("node {id}: next snapshot() is temporarily unavailable")
            });
            self.nodes
                .get_mut(&id)
                .unwrap()
                .raw
                .as_mut()
                .unwrap()
                .store_mut()
                .trigger_snapshot_unavailable();
            return Ok(());
        }
        let node = self.nodes.get_mut(&id).unwrap();
        let applied = node.sm.applied_index();
        let first =
            node.disk().first_index().map_err(|e| format!("node {id}: first_index: {e:?}"))?;
        if applied <= first {
            return Ok(());
        }
        let (cs, data) = (node.sm.conf_state.clone(), node.sm.snapshot_data());
        let store = node.raw.as_mut().unwrap().store_mut();
        match store.create_snapshot(applied, Some(cs), data) {
            Ok(_) | Err(Error::Store(StorageError::SnapshotOutOfDate)) => {}
            Err(e) => return Err(format!("node {id}: create_snapshot({applied}) failed: {e:?}")),
        }
        let compact_to = first + 1 + self.rng.next_u64() % (applied - first);
        let store = self.nodes.get_mut(&id).unwrap().raw.as_mut().unwrap().store_mut();
        match store.compact(compact_to) {
            Ok(()) | Err(Error::Store(StorageError::Compacted)) => {}
            Err(e) => return Err(format!("node {id}: compact({compact_to}) failed: {e:?}")),
        }
        self.trace(&[18, id, applied, compact_to], || {
            format!("node {id}: snapshot at {applied}, log compacted below {compact_to}")
        });
        Ok(())
    }

    /// Proposes a membership change on the leader, chosen from its applied conf state. Every
    /// configuration keeps an odd number of voters: with apply-time membership, an even voter set
    /// can leave the cluster with no electable node at all (etcd-io/etcd#12359: a demoted node
    /// with the longest log refuses its vote to a lagging node still in the joint configuration),
    /// which is a known limit of the design rather than a bug to report. So voters move in
    /// pairs or swap one for one, always through joint consensus.
    pub(super) fn conf_change(&mut self) -> Check {
        let Some(leader) = self.leader() else { return Ok(()) };
        let cs = self.nodes[&leader].sm.conf_state.clone();
        let all: Vec<NodeId> = (1..=self.shape.nodes).collect();
        let voters: Vec<NodeId> = cs.voters.iter().copied().filter(|&v| v != leader).collect();
        let learners = cs.learners.clone();
        let removed: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|id| !cs.voters.contains(id) && !cs.learners.contains(id))
            .collect();
        let single = |change_type, node_id| ConfChangeSingle { change_type, node_id };
        let mut changes = Vec::new();
        let mut transition = ConfChangeTransition::Auto;
        if !cs.voters_outgoing.is_empty() {
            // In a joint configuration: an empty change leaves it (needed for JointExplicit).
        } else {
            match self.below(5) {
                0 if !learners.is_empty() && !voters.is_empty() => {
                    // A swap: promote a learner, demote a voter.
                    let (l, v) = (self.pick(&learners).unwrap(), self.pick(&voters).unwrap());
                    changes.push(single(ConfChangeType::AddNode, l));
                    changes.push(single(ConfChangeType::AddLearnerNode, v));
                }
                1 if learners.len() >= 2 => {
                    let (a, b) = (learners[0], learners[1]);
                    changes.push(single(ConfChangeType::AddNode, a));
                    changes.push(single(ConfChangeType::AddNode, b));
                }
                2 if cs.voters.len() >= 5 => {
                    let (a, b) = (voters[0], voters[1]);
                    changes.push(single(ConfChangeType::AddLearnerNode, a));
                    changes.push(single(ConfChangeType::AddLearnerNode, b));
                }
                3 if !learners.is_empty() => {
                    let l = self.pick(&learners).unwrap();
                    changes.push(single(ConfChangeType::RemoveNode, l));
                }
                4 if !removed.is_empty() => {
                    let r = self.pick(&removed).unwrap();
                    changes.push(single(ConfChangeType::AddLearnerNode, r));
                }
                _ => return Ok(()),
            }
            if changes.len() > 1 {
                transition = [
                    ConfChangeTransition::Auto,
                    ConfChangeTransition::JointImplicit,
                    ConfChangeTransition::JointExplicit,
                ][self.below(3) as usize];
            }
        }
        let cc = ConfChangeV2 { transition, changes, context: Vec::new() };
        let words = [19, leader, cc.changes.len() as u64];
        self.trace(&words, || format!("node {leader} proposes {cc:?}"));
        match self
            .nodes
            .get_mut(&leader)
            .unwrap()
            .raw
            .as_mut()
            .unwrap()
            .propose_conf_change(Vec::new(), cc)
        {
            Ok(()) | Err(Error::ProposalDropped) | Err(Error::ConfChangeError(_)) => Ok(()),
            Err(e) => Err(format!("node {leader}: propose_conf_change failed unexpectedly: {e:?}")),
        }
    }
}
