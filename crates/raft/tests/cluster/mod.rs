//! A deterministic in-memory cluster of `RawNode`s driven through the public API: the same
//! Ready loop an application runs, with links that can be cut and nodes that can crash.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use minikv_raft::*;

/// One node plus the application state it applied.
#[derive(Debug)]
pub struct Node {
    pub raw: RawNode<MemStorage>,
    pub config: Config,
    /// Data of applied normal entries (non-empty ones), in order.
    pub applied: Vec<Vec<u8>>,
    pub applied_index: u64,
    pub read_states: Vec<ReadState>,
    pub conf_state: ConfState,
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub in_flight: VecDeque<Message>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Crashed nodes keep their persisted storage here.
    pub down: BTreeMap<NodeId, (MemStorage, Config)>,
    /// Message types dropped everywhere.
    pub drop_types: BTreeSet<MessageType>,
    pub delivered: Vec<Message>,
}

pub fn config(id: NodeId) -> Config {
    Config { id, election_tick: 10, heartbeat_tick: 1, rng_seed: 7, ..Default::default() }
}

impl Cluster {
    pub fn new(voters: &[NodeId]) -> Self {
        Self::with_config(voters, config)
    }

    pub fn with_config(voters: &[NodeId], cfg: impl Fn(NodeId) -> Config) -> Self {
        let cs = ConfState { voters: voters.to_vec(), ..Default::default() };
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            down: BTreeMap::new(),
            drop_types: BTreeSet::new(),
            delivered: Vec::new(),
        };
        for &id in voters {
            c.add_node(id, MemStorage::new_with_conf_state(cs.clone()), cfg(id));
        }
        c
    }

    pub fn add_node(&mut self, id: NodeId, store: MemStorage, config: Config) {
        let conf_state = store.initial_state().unwrap().conf_state;
        let raw = RawNode::new(&config, store).unwrap();
        let applied_index = config.applied;
        self.nodes.insert(
            id,
            Node {
                raw,
                config,
                applied: Vec::new(),
                applied_index,
                read_states: vec![],
                conf_state,
            },
        );
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn raw(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        &mut self.nodes.get_mut(&id).unwrap().raw
    }

    /// Runs every node's Ready loop once, queueing the messages.
    pub fn process_readies(&mut self) -> bool {
        let mut any = false;
        for node in self.nodes.values_mut() {
            if !node.raw.has_ready() {
                continue;
            }
            any = true;
            let mut rd = node.raw.ready();
            node.raw.persist(&mut rd).unwrap();
            self.in_flight.extend(rd.take_messages());
            if let Some(s) = rd.snapshot() {
                node.applied = minikv_proto::decode(&s.data).unwrap_or_default();
                node.applied_index = s.metadata.index;
                node.conf_state = s.metadata.conf_state.clone();
            }
            for e in rd.committed_entries() {
                node.applied_index = e.index;
                match e.entry_type {
                    EntryType::Normal if !e.data.is_empty() => node.applied.push(e.data.clone()),
                    EntryType::Normal => {}
                    EntryType::ConfChange => {
                        let cc: ConfChangeV2 = minikv_proto::decode(&e.data).unwrap();
                        let cs = node.raw.apply_conf_change(&cc).unwrap();
                        node.raw.store_mut().set_conf_state(cs.clone());
                        node.conf_state = cs;
                    }
                }
            }
            node.read_states.extend(rd.read_states().iter().cloned());
            node.raw.advance(rd);
        }
        any
    }

    /// Delivers queued messages (and their consequences) until the network is quiet.
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            let progressed = self.process_readies();
            if self.in_flight.is_empty() && !progressed {
                return;
            }
            while let Some(m) = self.in_flight.pop_front() {
                self.deliver(m);
            }
        }
        panic!("cluster did not stabilize");
    }

    pub fn deliver(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) || self.drop_types.contains(&m.msg_type) {
            return;
        }
        let Some(node) = self.nodes.get_mut(&m.to) else { return };
        self.delivered.push(m.clone());
        let _ = node.raw.step(m);
    }

    pub fn tick_all(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.raw.tick();
            }
            self.stabilize();
        }
    }

    pub fn campaign(&mut self, id: NodeId) {
        self.raw(id).campaign().unwrap();
        self.stabilize();
    }

    pub fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.raw.status().role == StateRole::Leader)
            .map(|(&id, _)| id)
            .collect();
        leaders.iter().copied().max_by_key(|id| self.nodes[id].raw.status().term)
    }

    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Result<()> {
        let r = self.raw(id).propose(vec![], data.to_vec());
        self.stabilize();
        r
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys().chain(self.down.keys()) {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        self.down.insert(id, (node.raw.store().clone(), node.config));
    }

    /// Restarts from the persisted storage, re-applying from scratch (applied = 0).
    pub fn restart(&mut self, id: NodeId) {
        let (store, config) = self.down.remove(&id).unwrap();
        self.add_node(id, store, config);
    }
}
