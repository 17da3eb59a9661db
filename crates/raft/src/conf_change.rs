//! Applying a `ConfChangeV2` to the tracker's configuration: simple changes (one voter at a
//! time), entering and leaving joint consensus (Raft §6 / thesis §4.3), learners.

use std::collections::BTreeMap;

use minikv_proto::raftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, NodeId,
};

use crate::errors::{Error, Result};
use crate::progress::{Progress, TrackerConfig};

/// How a `ConfChangeV2` is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// One voter change (or only learner changes) applied directly.
    Simple,
    /// Enter a joint configuration; `auto_leave` says whether the leader leaves it by itself.
    EnterJoint { auto_leave: bool },
    /// Leave the joint configuration (an empty change).
    LeaveJoint,
}

/// Classifies `cc`: empty = leave; several changes or an explicit joint transition = enter.
pub fn conf_change_kind(cc: &ConfChangeV2) -> ConfChangeKind {
    if cc.changes.is_empty() && cc.transition == ConfChangeTransition::Auto {
        return ConfChangeKind::LeaveJoint;
    }
    if cc.transition != ConfChangeTransition::Auto || cc.changes.len() > 1 {
        let auto_leave = cc.transition != ConfChangeTransition::JointExplicit;
        return ConfChangeKind::EnterJoint { auto_leave };
    }
    ConfChangeKind::Simple
}

/// Computes a new configuration and progress map from the current ones; the caller switches.
#[derive(Debug)]
pub struct Changer {
    pub conf: TrackerConfig,
    pub progress: BTreeMap<NodeId, Progress>,
    /// Where new peers start probing.
    pub last_index: u64,
    pub max_inflight_msgs: usize,
}

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::ConfChangeError(msg.into()))
}

impl Changer {
    /// Applies `cc` in the way its kind says.
    pub fn apply(
        mut self,
        cc: &ConfChangeV2,
    ) -> Result<(TrackerConfig, BTreeMap<NodeId, Progress>)> {
        match conf_change_kind(cc) {
            ConfChangeKind::LeaveJoint => self.leave_joint()?,
            ConfChangeKind::EnterJoint { auto_leave } => {
                self.enter_joint(auto_leave, &cc.changes)?
            }
            ConfChangeKind::Simple => self.simple(&cc.changes)?,
        }
        self.check()?;
        Ok((self.conf, self.progress))
    }

    fn enter_joint(&mut self, auto_leave: bool, changes: &[ConfChangeSingle]) -> Result<()> {
        if self.conf.voters.is_joint() {
            return err("config is already joint");
        }
        if self.conf.voters.incoming.voters.is_empty() {
            return err("can't make a zero-voter config joint");
        }
        self.conf.voters.outgoing = self.conf.voters.incoming.clone();
        self.apply_changes(changes)?;
        self.conf.auto_leave = auto_leave;
        Ok(())
    }

    fn leave_joint(&mut self) -> Result<()> {
        if !self.conf.voters.is_joint() {
            return err("can't leave a non-joint config");
        }
        for id in std::mem::take(&mut self.conf.learners_next) {
            self.conf.learners.insert(id);
            self.progress.get_mut(&id).expect("learner_next has progress").is_learner = true;
        }
        let outgoing = std::mem::take(&mut self.conf.voters.outgoing.voters);
        for id in outgoing {
            if !self.conf.voters.incoming.voters.contains(&id) && !self.conf.learners.contains(&id)
            {
                self.progress.remove(&id);
            }
        }
        self.conf.auto_leave = false;
        Ok(())
    }

    fn simple(&mut self, changes: &[ConfChangeSingle]) -> Result<()> {
        if self.conf.voters.is_joint() {
            return err("can't apply a simple config change in a joint config");
        }
        let before = self.conf.voters.incoming.voters.clone();
        self.apply_changes(changes)?;
        let after = &self.conf.voters.incoming.voters;
        if before.symmetric_difference(after).count() > 1 {
            return err("more than one voter changed without entering joint config");
        }
        Ok(())
    }

    fn apply_changes(&mut self, changes: &[ConfChangeSingle]) -> Result<()> {
        for cc in changes {
            if cc.node_id == 0 {
                continue; // etcd-style: a zero id is a no-op.
            }
            match cc.change_type {
                ConfChangeType::AddNode => self.make_voter(cc.node_id),
                ConfChangeType::AddLearnerNode => self.make_learner(cc.node_id),
                ConfChangeType::RemoveNode => self.remove(cc.node_id),
            }
        }
        if self.conf.voters.incoming.voters.is_empty() {
            return err("removed all voters");
        }
        Ok(())
    }

    fn init_progress(&mut self, id: NodeId, is_learner: bool) {
        let mut pr = Progress::new(self.last_index.max(1), self.max_inflight_msgs);
        pr.is_learner = is_learner;
        // A new peer counts as active so check-quorum does not depose the leader at once.
        pr.recent_active = true;
        self.progress.insert(id, pr);
        if is_learner {
            self.conf.learners.insert(id);
        } else {
            self.conf.voters.incoming.voters.insert(id);
        }
    }

    fn make_voter(&mut self, id: NodeId) {
        let Some(pr) = self.progress.get_mut(&id) else {
            self.init_progress(id, false);
            return;
        };
        pr.is_learner = false;
        self.conf.learners.remove(&id);
        self.conf.learners_next.remove(&id);
        self.conf.voters.incoming.voters.insert(id);
    }

    fn make_learner(&mut self, id: NodeId) {
        let Some(pr) = self.progress.get(&id) else {
            self.init_progress(id, true);
            return;
        };
        if pr.is_learner {
            return;
        }
        // Demote: out of the incoming voters; if it is still an outgoing voter it becomes a
        // learner only when the joint config is left.
        self.remove(id);
        self.progress
            .entry(id)
            .or_insert_with(|| Progress::new(self.last_index.max(1), self.max_inflight_msgs));
        if self.conf.voters.outgoing.voters.contains(&id) {
            self.conf.learners_next.insert(id);
        } else {
            self.progress.get_mut(&id).expect("just inserted").is_learner = true;
            self.conf.learners.insert(id);
        }
    }

    fn remove(&mut self, id: NodeId) {
        if !self.progress.contains_key(&id) {
            return;
        }
        self.conf.voters.incoming.voters.remove(&id);
        self.conf.learners.remove(&id);
        self.conf.learners_next.remove(&id);
        if !self.conf.voters.outgoing.voters.contains(&id) {
            self.progress.remove(&id);
        }
    }

    /// The configuration is internally consistent (a broken one is a bug, reported as an error
    /// so the caller's configuration is left untouched).
    fn check(&self) -> Result<()> {
        let conf = &self.conf;
        for id in conf.voters.ids().iter().chain(&conf.learners).chain(&conf.learners_next) {
            if !self.progress.contains_key(id) {
                return err(format!("no progress for {id}"));
            }
        }
        for id in &conf.learners_next {
            if !conf.voters.outgoing.voters.contains(id) {
                return err(format!("{id} is in learners_next but not an outgoing voter"));
            }
        }
        for id in &conf.learners {
            if conf.voters.contains(*id) {
                return err(format!("{id} is both a learner and a voter"));
            }
        }
        if !conf.voters.is_joint() && (!conf.learners_next.is_empty() || conf.auto_leave) {
            return err("learners_next or auto_leave set outside a joint config");
        }
        Ok(())
    }
}
