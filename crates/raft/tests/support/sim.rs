//! A deterministic, seeded network simulator for RawNode<MemStorage> clusters.
//!
//! One `u64` seed drives a ChaCha8 stream that picks every action: ticks, proposals, Ready
//! handling (so persisting, sending and applying interleave with everything else), message
//! delivery with drops, delays, reordering and duplicates, partitions and heals, crashes (also in
//! the middle of handling a Ready) and restarts, log compaction with state-machine snapshots, conf
//! changes, leader transfers, forced campaigns and ReadIndex reads. Only BTreeMaps hold state, so
//! a seed replays exactly (the trace hash proves it).
//!
//! Checked after every action: one leader per term (every up node's status), leader completeness
//! for every new leader, log matching for every entry a Ready persisted (read back from the
//! disk), committed entries never change and are applied in index order on every node (which
//! makes every applied sequence a prefix of the longest), persisted hard state only moves forward,
//! and no ReadIndex answer is below what was committed when the read was asked. Every
//! `FULL_CHECK_INTERVAL_ACTIONS`, and at the end, the same is re-checked from scratch over every
//! node's whole disk and applied sequence. After the fault phase everything heals and a fresh
//! proposal must be applied on every member within a bounded number of ticks. A violation panics
//! with the seed and the command that replays it.

use std::collections::{BTreeMap, BTreeSet};

use minikv_raft::{
    Config, Error, Message, MessageType, NodeId, ReadState, SnapshotStatus, StateRole, Storage,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::invariants::{Check, Invariants};
use super::node::SimNode;

mod faults;
mod liveness;

/// A family of runs: cluster size, length and which faults are on.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Also the `RAFT_SHAPE` value that selects it for a replay.
    pub name: &'static str,
    pub nodes: u64,
    /// Nodes 1..=initial_voters start as voters, the rest as learners.
    pub initial_voters: u64,
    /// Random actions in the fault phase.
    pub steps: u64,
    pub crashes: bool,
    pub partitions: bool,
    pub conf_changes: bool,
    pub compaction: bool,
    /// Upper bound of the per-seed message drop rate, per mille.
    pub max_drop_per_mille: u64,
    /// Upper bound of a message's delay, in actions.
    pub max_delay_actions: u64,
    /// Forced `campaign()` calls on random nodes, per mille of actions: competing logs in many
    /// terms (what the "Figure 8" commit rule is about).
    pub campaign_per_mille: u64,
    /// Fixed `max_size_per_msg_bytes` (else drawn per seed); tiny values send one entry per Append.
    pub max_size_per_msg_bytes: Option<u64>,
}

/// The fault phase alternates stormy and calm windows of this many actions; a calm window heals
/// partitions and stops drops and new crashes, so that stretches of progress alternate with faults.
const WEATHER_WINDOW_ACTIONS: u64 = 150;
/// Every check of the full state (whole logs, applied prefixes) runs at least this often.
const FULL_CHECK_INTERVAL_ACTIONS: u64 = 32;

/// What one run did, for coverage assertions and determinism checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub trace_hash: u64,
    pub committed_index: u64,
    pub crashes: u64,
    pub snapshots_installed: u64,
    pub conf_changes_applied: u64,
    pub leader_terms: u64,
    pub reads_served: u64,
}

/// Runs one seed of one shape; panics with a replay command on any violation.
pub fn run(seed: u64, shape: Shape) -> Summary {
    let mut sim = Sim::new(seed, shape).unwrap_or_else(|e| fail(seed, shape, 0, &e));
    if let Err(e) = sim.run_faults().and_then(|()| sim.run_liveness()) {
        fail(seed, shape, sim.action, &e);
    }
    sim.summary()
}

fn fail(seed: u64, shape: Shape, action: u64, what: &str) -> ! {
    panic!(
        "raft invariant violated: {what}\n  seed {seed}, shape {}, action {action}\n  replay: RAFT_SEED={seed} \
         RAFT_SHAPE={} RAFT_TRACE=1 cargo test -p minikv-raft --test random_net replay_one_seed -- --nocapture",
        shape.name, shape.name
    )
}

/// A message on the wire.
#[derive(Debug)]
struct InFlight {
    deliver_at: u64,
    msg: Message,
}

#[derive(Debug)]
struct Sim {
    seed: u64,
    shape: Shape,
    rng: ChaCha8Rng,
    /// Actions taken so far; also the network's clock.
    action: u64,
    template: Config,
    nodes: BTreeMap<NodeId, SimNode>,
    /// Sequence number -> message; the sequence number makes the order deterministic.
    wire: BTreeMap<u64, InFlight>,
    next_seq: u64,
    /// Nodes on one side of a partition (the rest are on the other), if any.
    partition: Option<BTreeSet<NodeId>>,
    drop_per_mille: u64,
    max_delay_actions: u64,
    /// Per-seed fault intensities (stormy windows only), per mille of actions.
    crash_per_mille: u64,
    partition_per_mille: u64,
    /// Whether a crash also loses the messages in flight to and from the node (most seeds).
    crash_loses_in_flight: bool,
    inv: Invariants,
    /// (term, leader) pairs already checked for leader completeness.
    leaders_checked: BTreeSet<(u64, NodeId)>,
    next_payload: u64,
    /// ReadIndex context -> the highest index known committed when the read was requested.
    pending_reads: BTreeMap<Vec<u8>, u64>,
    reads_served: u64,
    crashes: u64,
    trace_hash: u64,
    trace_text: bool,
}

impl Sim {
    fn new(seed: u64, shape: Shape) -> Result<Self, String> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let election_tick = 4 + (rng.next_u64() % 7) as usize;
        let heartbeat_tick = 1 + (rng.next_u64() % 2) as usize;
        // Removed nodes that never learn of their removal keep campaigning; pre-vote and
        // check-quorum are what keeps them from disrupting the cluster forever.
        let guards = shape.conf_changes || rng.next_u64() % 2 == 0;
        let template = Config {
            id: 0,
            election_tick,
            heartbeat_tick,
            applied: 0,
            max_size_per_msg_bytes: shape
                .max_size_per_msg_bytes
                .unwrap_or([64, 256, 4096, 1 << 20][(rng.next_u64() % 4) as usize]),
            max_inflight_msgs: 1 + (rng.next_u64() % 8) as usize,
            max_uncommitted_size_bytes: [0, 0, 300, 4096][(rng.next_u64() % 4) as usize],
            max_committed_size_per_ready_bytes: [u64::MAX, u64::MAX, 64, 512]
                [(rng.next_u64() % 4) as usize],
            pre_vote: guards,
            check_quorum: guards && rng.next_u64() % 4 != 0,
            skip_bcast_commit: rng.next_u64() % 4 == 0,
            skip_idle_heartbeats: rng.next_u64() % 2 == 0,
            rng_seed: 0,
            ..Config::default()
        };
        let voters: Vec<NodeId> = (1..=shape.initial_voters).collect();
        let learners: Vec<NodeId> = (shape.initial_voters + 1..=shape.nodes).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=shape.nodes {
            let config = Config { id, rng_seed: jitter_seed(seed, id, 0), ..template.clone() };
            nodes.insert(id, SimNode::new(&config, &voters, &learners)?);
        }
        let drop_per_mille = if shape.max_drop_per_mille == 0 {
            0
        } else {
            rng.next_u64() % (shape.max_drop_per_mille + 1)
        };
        let max_delay_actions = shape.max_delay_actions;
        let crash_per_mille = [0, 3, 8, 20][(rng.next_u64() % 4) as usize];
        let partition_per_mille = [0, 5, 12, 25][(rng.next_u64() % 4) as usize];
        let crash_loses_in_flight = rng.next_u64() % 4 != 0;
        Ok(Sim {
            seed,
            shape,
            rng,
            action: 0,
            template,
            nodes,
            wire: BTreeMap::new(),
            next_seq: 0,
            partition: None,
            drop_per_mille,
            max_delay_actions,
            crash_per_mille,
            partition_per_mille,
            crash_loses_in_flight,
            inv: Invariants::default(),
            leaders_checked: BTreeSet::new(),
            next_payload: 0,
            pending_reads: BTreeMap::new(),
            reads_served: 0,
            crashes: 0,
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace_text: std::env::var_os("RAFT_TRACE").is_some(),
        })
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.next_u64() % n }
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Folds an event into the trace hash (FNV-1a over words); prints it when RAFT_TRACE is set.
    fn trace(&mut self, words: &[u64], text: impl FnOnce() -> String) {
        for w in words {
            for b in w.to_le_bytes() {
                self.trace_hash = (self.trace_hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        if self.trace_text {
            println!("[{:>5}] {}", self.action, text());
        }
    }

    fn up_ids(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| n.is_up()).map(|n| n.id).collect()
    }

    fn pick(&mut self, ids: &[NodeId]) -> Option<NodeId> {
        if ids.is_empty() { None } else { Some(ids[self.below(ids.len() as u64) as usize]) }
    }

    /// The up node that believes it leads with the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.raw.as_ref().map(|r| (r.status(), n.id)))
            .filter(|(s, _)| s.role == StateRole::Leader)
            .max_by_key(|(s, _)| s.term)
            .map(|(_, id)| id)
    }

    fn run_faults(&mut self) -> Check {
        if self.chance(500) {
            let id = 1 + self.below(self.shape.nodes);
            self.campaign(id)?;
        }
        for _ in 0..self.shape.steps {
            self.action += 1;
            if self.action.is_multiple_of(WEATHER_WINDOW_ACTIONS) {
                self.change_weather();
            }
            self.random_action()?;
            self.check_after_action()?;
        }
        Ok(())
    }

    fn stormy(&self) -> bool {
        (self.action / WEATHER_WINDOW_ACTIONS).is_multiple_of(2)
    }

    fn change_weather(&mut self) {
        if self.stormy() {
            self.drop_per_mille = self.below(self.shape.max_drop_per_mille + 1);
        } else {
            self.partition = None;
            self.drop_per_mille = 0;
        }
        let (stormy, p) = (self.stormy(), self.drop_per_mille);
        self.trace(&[21, u64::from(stormy), p], || {
            format!("weather: stormy {stormy}, drop rate {p} per mille")
        });
    }

    fn random_action(&mut self) -> Check {
        let stormy = self.stormy();
        if stormy && self.shape.crashes && self.chance(self.crash_per_mille) {
            return self.crash();
        }
        if stormy && self.shape.partitions && self.chance(self.partition_per_mille) {
            return self.partition();
        }
        if self.chance(self.shape.campaign_per_mille) {
            let ids = self.up_ids();
            return self.pick(&ids).map_or(Ok(()), |id| self.campaign(id));
        }
        let roll = self.below(100);
        // Per tick, several deliveries and Ready rounds happen, so a message usually arrives
        // within a tick or two unless it is delayed on purpose.
        match roll {
            0..7 => self.tick_all(),
            7..9 => self.tick_one(),
            9..46 => {
                for _ in 0..1 + self.below(4) {
                    self.deliver_one()?;
                }
                Ok(())
            }
            46..48 => self.read_index(),
            48..70 => self.handle_readies(),
            70..80 => self.propose(),
            80..82 => self.deliver_one(),
            // Partitions last long enough (about a hundred actions) for the majority to elect.
            82..86 if self.partition.is_some() && self.chance(250) => {
                self.trace(&[3], || "heal".to_string());
                self.partition = None;
                Ok(())
            }
            86..88 => self.deliver_one(),
            88..91 => {
                let down: Vec<NodeId> =
                    self.nodes.values().filter(|n| !n.is_up()).map(|n| n.id).collect();
                self.pick(&down).map_or(Ok(()), |id| self.restart(id))
            }
            91..94 if self.shape.compaction => self.compact(),
            94..97 if self.shape.conf_changes => self.conf_change(),
            97 => self.transfer_leader(),
            98 if stormy && self.shape.max_drop_per_mille > 0 => {
                self.drop_per_mille = self.below(self.shape.max_drop_per_mille + 1);
                let p = self.drop_per_mille;
                self.trace(&[4, p], || format!("drop rate now {p} per mille"));
                Ok(())
            }
            _ => self.deliver_one(),
        }
    }

    fn tick_one(&mut self) -> Check {
        let ids = self.up_ids();
        if let Some(id) = self.pick(&ids) {
            self.trace(&[2, id], || format!("tick node {id}"));
            self.nodes.get_mut(&id).unwrap().raw.as_mut().unwrap().tick();
        }
        Ok(())
    }

    /// Handles the Ready of one random node, or of every node with one, in random order.
    fn handle_readies(&mut self) -> Check {
        let mut ready: Vec<NodeId> = self
            .up_ids()
            .into_iter()
            .filter(|id| self.nodes[id].raw.as_ref().unwrap().has_ready())
            .collect();
        if self.chance(500) {
            ready = self.pick(&ready).into_iter().collect();
        }
        while !ready.is_empty() {
            let id = ready.remove(self.below(ready.len() as u64) as usize);
            self.handle_ready(id, false)?;
        }
        Ok(())
    }

    fn tick_all(&mut self) -> Check {
        self.trace(&[5], || "tick all".to_string());
        for node in self.nodes.values_mut() {
            if let Some(raw) = node.raw.as_mut() {
                raw.tick();
            }
        }
        Ok(())
    }

    fn campaign(&mut self, id: NodeId) -> Check {
        self.trace(&[24, id], || format!("node {id} is told to campaign"));
        let Some(raw) = self.nodes.get_mut(&id).unwrap().raw.as_mut() else { return Ok(()) };
        raw.campaign().map_err(|e| format!("node {id}: campaign failed: {e:?}"))
    }

    /// Where a client request goes: with `leader_per_mille`, a node that believes it leads (any
    /// term, so deposed leaders in a minority get requests too); otherwise any up node.
    fn pick_client_target(&mut self, leader_per_mille: u64) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.raw.as_ref().is_some_and(|r| r.status().role == StateRole::Leader))
            .map(|n| n.id)
            .collect();
        if !leaders.is_empty() && self.chance(leader_per_mille) {
            return self.pick(&leaders);
        }
        let ids = self.up_ids();
        self.pick(&ids)
    }

    fn propose(&mut self) -> Check {
        let target = self.pick_client_target(800);
        let Some(id) = target else { return Ok(()) };
        self.next_payload += 1;
        let data = format!("s{}-p{}", self.seed, self.next_payload).into_bytes();
        let p = self.next_payload;
        self.trace(&[7, id, p], || format!("propose p{p} at node {id}"));
        match self.nodes.get_mut(&id).unwrap().raw.as_mut().unwrap().propose(Vec::new(), data) {
            Ok(()) | Err(Error::ProposalDropped) => Ok(()),
            Err(e) => Err(format!("node {id}: propose failed with an unexpected error: {e:?}")),
        }
    }

    /// Requests a linearizable read (ReadOnlyOption::Safe): the ReadState it yields must not be
    /// below anything known committed when it was requested.
    fn read_index(&mut self) -> Check {
        let target = self.pick_client_target(700);
        let Some(id) = target else { return Ok(()) };
        self.next_payload += 1;
        let ctx = format!("read{}", self.next_payload).into_bytes();
        let bound = self.inv.max_committed_index();
        let p = self.next_payload;
        self.trace(&[22, id, p, bound], || {
            format!("node {id}: read_index read{p} (committed >= {bound})")
        });
        self.pending_reads.insert(ctx.clone(), bound);
        self.nodes.get_mut(&id).unwrap().raw.as_mut().unwrap().read_index(ctx);
        Ok(())
    }

    fn check_read_states(&mut self, id: NodeId, read_states: &[ReadState]) -> Check {
        for rs in read_states {
            let Some(&bound) = self.pending_reads.get(&rs.request_ctx) else {
                return Err(format!(
                    "node {id}: ReadState for unknown context {:?}",
                    String::from_utf8_lossy(&rs.request_ctx)
                ));
            };
            if rs.index < bound {
                return Err(format!(
                    "node {id}: stale read: ReadState {:?} at index {} but index {bound} was \
                     already committed when the read was requested",
                    String::from_utf8_lossy(&rs.request_ctx),
                    rs.index
                ));
            }
            self.reads_served += 1;
        }
        Ok(())
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.partition.as_ref().is_none_or(|side| side.contains(&a) == side.contains(&b))
    }

    /// Handles one Ready on `id`. With `crash`, the node dies at a random point: before
    /// persisting, or after persisting, sending a prefix of the messages and applying a prefix of
    /// the committed entries.
    fn handle_ready(&mut self, id: NodeId, crash: bool) -> Check {
        let crash_before_persist = crash && self.chance(400);
        let node = self.nodes.get_mut(&id).unwrap();
        let raw = node.raw.as_mut().unwrap();
        let mut rd = raw.ready();
        if crash_before_persist {
            drop(rd);
            self.trace(&[11, id], || format!("node {id} crashes before persisting its Ready"));
            self.crash_now(id);
            return Ok(());
        }
        raw.persist(&mut rd).map_err(|e| format!("node {id}: persist failed: {e:?}"))?;
        let role_change = rd.soft_state().map(|ss| (ss.role, ss.leader_id, raw.status().term));
        let new_entries =
            rd.entries().first().map(|e| e.index).zip(rd.entries().last().map(|e| e.index));
        if let Some(snap) = rd.snapshot() {
            let snap = snap.clone();
            node.sm.restore(id, &snap, &mut self.inv)?;
            node.snapshots_installed += 1;
        }
        if let Some((role, leader, term)) = role_change {
            self.trace(&[23, id, role as u64, leader, term], || {
                format!("node {id} is now {role:?} in term {term}, leader {leader}")
            });
        }
        self.check_new_entries(id, new_entries)?;
        let read_states = rd.read_states().to_vec();
        self.check_read_states(id, &read_states)?;
        let msgs = rd.take_messages();
        let committed = rd.committed_entries().to_vec();
        let (send_n, apply_n) = if crash {
            (
                self.below(msgs.len() as u64 + 1) as usize,
                self.below(committed.len() as u64 + 1) as usize,
            )
        } else {
            (msgs.len(), committed.len())
        };
        let (ents, cmts) = (rd.entries().len() as u64, committed.len() as u64);
        self.trace(&[12, id, ents, cmts, msgs.len() as u64], || {
            format!("node {id} Ready: {ents} entries, {cmts} committed, {} messages", msgs.len())
        });
        for m in msgs.into_iter().take(send_n) {
            if m.from != id
                || m.to == id
                || !self.nodes.contains_key(&m.to)
                || m.msg_type.is_local()
            {
                return Err(format!("node {id} emitted a malformed message: {m:?}"));
            }
            self.send(m);
        }
        let node = self.nodes.get_mut(&id).unwrap();
        for e in &committed[..apply_n] {
            node.apply(e, &mut self.inv)?;
        }
        if crash {
            self.trace(&[13, id, send_n as u64, apply_n as u64], || {
                format!("node {id} crashes after sending {send_n} messages and applying {apply_n} entries")
            });
            drop(rd);
            self.crash_now(id);
            return Ok(());
        }
        node.raw.as_mut().unwrap().advance(rd);
        Ok(())
    }

    /// Log matching for the entries a Ready just persisted, read back from the disk.
    fn check_new_entries(&mut self, id: NodeId, range: Option<(u64, u64)>) -> Check {
        let node = &self.nodes[&id];
        let disk = node.disk();
        self.inv.observe_hard_state(id, disk.hard_state())?;
        let Some((lo, hi)) = range else { return Ok(()) };
        let last = disk.last_index().map_err(|e| format!("node {id}: last_index: {e:?}"))?;
        if last != hi {
            return Err(format!(
                "node {id}: persisted entries up to {hi} but the disk's last index is {last}"
            ));
        }
        let entries = disk
            .entries(lo, hi + 1, None)
            .map_err(|e| format!("node {id}: entries({lo}, {}): {e:?}", hi + 1))?;
        let mut prev_term =
            disk.term(lo - 1).map_err(|e| format!("node {id}: term({}): {e:?}", lo - 1))?;
        for e in &entries {
            self.inv.observe_log_entry(id, e, prev_term)?;
            prev_term = e.term;
        }
        Ok(())
    }

    fn send(&mut self, msg: Message) {
        let (from, to, kind) = (msg.from, msg.to, msg.msg_type);
        let dropped = !self.connected(from, to) || self.chance(self.drop_per_mille);
        if dropped {
            self.trace(&[14, from, to], || format!("drop {kind:?} {from}->{to}"));
            self.report_lost(&msg);
            return;
        }
        let delay = self.below(self.max_delay_actions + 1);
        self.wire.insert(self.next_seq, InFlight { deliver_at: self.action + delay, msg });
        self.next_seq += 1;
    }

    /// Tells the sender what an application would learn when a message is lost.
    fn report_lost(&mut self, msg: &Message) {
        let report_unreachable = self.chance(300);
        let Some(raw) = self.nodes.get_mut(&msg.from).and_then(|n| n.raw.as_mut()) else { return };
        if msg.msg_type == MessageType::Snapshot {
            raw.report_snapshot(msg.to, SnapshotStatus::Failure);
        } else if report_unreachable {
            raw.report_unreachable(msg.to);
        }
    }

    fn deliver_one(&mut self) -> Check {
        let due: Vec<u64> = self
            .wire
            .iter()
            .filter(|(_, f)| f.deliver_at <= self.action)
            .map(|(s, _)| *s)
            .collect();
        let Some(&seq) = due.get(self.below(due.len() as u64) as usize) else { return Ok(()) };
        let msg = if self.chance(20) {
            // Duplicate: deliver a copy now, keep the original on the wire.
            self.wire[&seq].msg.clone()
        } else {
            self.wire.remove(&seq).unwrap().msg
        };
        self.deliver(msg)
    }

    fn deliver(&mut self, msg: Message) -> Check {
        let (from, to, kind, term) = (msg.from, msg.to, msg.msg_type, msg.term);
        let up = self.nodes.get(&to).is_some_and(|n| n.is_up());
        if !up || !self.connected(from, to) {
            self.trace(&[15, from, to], || format!("lost {kind:?} {from}->{to}"));
            self.report_lost(&msg);
            return Ok(());
        }
        self.trace(&[16, from, to, kind as u64, term, msg.index], || {
            format!(
                "deliver {kind:?} {from}->{to} term {term} index {} entries {}",
                msg.index,
                msg.entries.len()
            )
        });
        let raw = self.nodes.get_mut(&to).unwrap().raw.as_mut().unwrap();
        match raw.step(msg) {
            Ok(()) | Err(Error::ProposalDropped) | Err(Error::StepPeerNotFound) => {}
            Err(e) => return Err(format!("node {to}: step({kind:?} from {from}) failed: {e:?}")),
        }
        if kind == MessageType::Snapshot
            && let Some(raw) = self.nodes.get_mut(&from).and_then(|n| n.raw.as_mut())
        {
            raw.report_snapshot(to, SnapshotStatus::Finish);
        }
        Ok(())
    }

    fn check_after_action(&mut self) -> Check {
        let mut new_leaders = Vec::new();
        for node in self.nodes.values() {
            let Some(raw) = node.raw.as_ref() else { continue };
            let st = raw.status();
            if st.role == StateRole::Leader {
                self.inv.observe_leader(st.term, node.id)?;
                if !self.leaders_checked.contains(&(st.term, node.id)) {
                    new_leaders.push((st.term, node.id));
                }
            }
        }
        for (term, id) in new_leaders {
            self.nodes[&id].check_leader_complete(term, &self.inv)?;
            self.leaders_checked.insert((term, id));
        }
        if self.action.is_multiple_of(FULL_CHECK_INTERVAL_ACTIONS) {
            self.full_check()?;
        }
        Ok(())
    }

    /// The whole persisted log of every node (up or down), and the applied-prefix property.
    fn full_check(&mut self) -> Check {
        for node in self.nodes.values() {
            node.check_disk(&mut self.inv)?;
        }
        let applied = self.nodes.values().map(|n| (n.id, &n.sm.applied[..])).collect();
        Invariants::check_applied_prefixes(&applied)
    }

    fn summary(&self) -> Summary {
        Summary {
            trace_hash: self.trace_hash,
            committed_index: self.inv.max_committed_index(),
            crashes: self.crashes,
            snapshots_installed: self.nodes.values().map(|n| n.snapshots_installed).sum(),
            conf_changes_applied: self.nodes.values().map(|n| n.conf_changes_applied).sum(),
            leader_terms: self.leaders_checked.len() as u64,
            reads_served: self.reads_served,
        }
    }
}

/// The election-jitter seed of one incarnation of one node.
fn jitter_seed(seed: u64, id: NodeId, incarnation: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ id.rotate_left(32)
        ^ incarnation.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}
