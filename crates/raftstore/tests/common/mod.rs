//! A deterministic in-memory cluster driver: stores over simulated disks, a seeded network
//! that can drop, delay and partition messages, and crash/restart by `SimDisk::crash`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minikv_engine::{Engine, SimDisk, SimDiskConfig};
use minikv_proto::errorpb::RegionError;
use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch, StoreId};
use minikv_proto::raft_cmdpb::{
    AdminRequest, CfName, RaftCmdRequest, RaftCmdResponse, RaftRequestHeader, Request, Response,
};
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_raft::ConfChangeType;
use minikv_raftstore::{ReqToken, Store, StoreConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

pub const REGION_ID: u64 = 1;
/// Ready rounds per pump before giving up on quiescence (a livelock would be a bug).
const MAX_PUMP_ROUNDS: usize = 10_000;

#[derive(Debug)]
pub struct Node {
    pub disk: SimDisk,
    pub store: Option<Store>,
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<StoreId, Node>,
    pub config: StoreConfig,
    rng: ChaCha8Rng,
    in_flight: Vec<(u64, u64, RaftMessage)>,
    pub now: u64,
    seq: u64,
    /// Directional blocks: messages from `.0` to `.1` are dropped.
    pub blocked: BTreeSet<(StoreId, StoreId)>,
    /// Directional holds: messages from `.0` to `.1` are kept aside for `take_held`.
    pub held: BTreeSet<(StoreId, StoreId)>,
    held_messages: Vec<RaftMessage>,
    pub drop_per_million: u64,
    pub max_delay_ticks: u64,
    pub responses: BTreeMap<ReqToken, (StoreId, RaftCmdResponse)>,
    next_token: u64,
    /// Stores that fail-stop on an engine error (taken down, as a node does: restart them with
    /// `restart`) instead of failing the test.
    pub fail_stop: BTreeSet<StoreId>,
}

pub fn test_config() -> StoreConfig {
    StoreConfig {
        election_tick: 10,
        heartbeat_tick: 2,
        raft_log_gc_tick_interval_ticks: 5,
        ..StoreConfig::default()
    }
}

impl Cluster {
    /// `stores` stores; region 1 covers every key with a voter on each of the first `voters`.
    pub fn new(stores: u64, voters: u64, seed: u64, config: StoreConfig) -> Cluster {
        Cluster::with_region_end(stores, voters, seed, config, Vec::new())
    }

    /// Like `new`, with region 1 covering `[b"", end_key)`.
    pub fn with_region_end(
        stores: u64,
        voters: u64,
        seed: u64,
        config: StoreConfig,
        end_key: Vec<u8>,
    ) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=stores {
            let disk =
                SimDisk::new(seed.wrapping_mul(31).wrapping_add(id), SimDiskConfig::default());
            let engine = Arc::new(Engine::open(disk.clone()).expect("open engine"));
            let config = StoreConfig { rng_seed: seed, ..config.clone() };
            let store = Store::open(id, engine, config).expect("open store");
            nodes.insert(id, Node { disk, store: Some(store) });
        }
        let region = Region {
            id: REGION_ID,
            start_key: vec![],
            end_key,
            epoch: RegionEpoch { conf_ver: 1, version: 1 },
            peers: (1..=voters)
                .map(|id| Peer { id, store_id: id, role: PeerRole::Voter })
                .collect(),
        };
        for id in 1..=voters {
            nodes
                .get_mut(&id)
                .unwrap()
                .store
                .as_mut()
                .unwrap()
                .bootstrap_first_region(region.clone())
                .unwrap();
        }
        Cluster {
            nodes,
            config: StoreConfig { rng_seed: seed, ..config },
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_flight: Vec::new(),
            now: 0,
            seq: 0,
            blocked: BTreeSet::new(),
            held: BTreeSet::new(),
            held_messages: Vec::new(),
            drop_per_million: 0,
            max_delay_ticks: 0,
            responses: BTreeMap::new(),
            next_token: 1,
            fail_stop: BTreeSet::new(),
        }
    }

    pub fn store(&self, id: StoreId) -> &Store {
        self.nodes[&id].store.as_ref().expect("store is up")
    }

    pub fn store_mut(&mut self, id: StoreId) -> &mut Store {
        self.nodes.get_mut(&id).unwrap().store.as_mut().expect("store is up")
    }

    pub fn is_up(&self, id: StoreId) -> bool {
        self.nodes[&id].store.is_some()
    }

    fn route(&mut self, msg: RaftMessage) {
        let (from, to) = (msg.from_peer.store_id, msg.to_peer.store_id);
        if self.blocked.contains(&(from, to)) {
            return;
        }
        if self.held.contains(&(from, to)) {
            self.held_messages.push(msg);
            return;
        }
        if self.drop_per_million > 0 && self.rng.next_u64() % 1_000_000 < self.drop_per_million {
            return;
        }
        let delay = if self.max_delay_ticks > 0 {
            self.rng.next_u64() % (self.max_delay_ticks + 1)
        } else {
            0
        };
        self.seq += 1;
        self.in_flight.push((self.now + delay, self.seq, msg));
    }

    /// Runs readies and delivers due messages until nothing is left to do this tick.
    pub fn pump(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let mut progressed = false;
            let ids: Vec<StoreId> = self.nodes.keys().copied().collect();
            for id in &ids {
                let node = self.nodes.get_mut(id).unwrap();
                let Some(store) = node.store.as_mut() else { continue };
                let mut failed = false;
                while store.has_ready() && !failed {
                    if let Err(e) = store.handle_ready() {
                        assert!(self.fail_stop.contains(id), "store {id}: handle_ready: {e}");
                        failed = true;
                    }
                    progressed = true;
                }
                if failed || store.is_poisoned() && self.fail_stop.contains(id) {
                    node.store = None;
                    continue;
                }
                let out = store.take_outbound();
                let resps = store.take_responses();
                for (token, resp) in resps {
                    self.responses.insert(token, (*id, resp));
                }
                for m in out {
                    progressed = true;
                    self.route(m);
                }
            }
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.in_flight).into_iter().partition(|(at, _, _)| *at <= now);
            self.in_flight = later;
            let mut due = due;
            due.sort_by_key(|(at, seq, _)| (*at, *seq));
            for (_, _, msg) in due {
                progressed = true;
                let to = msg.to_peer.store_id;
                let Some(node) = self.nodes.get_mut(&to) else { continue };
                let Some(store) = node.store.as_mut() else { continue };
                if let Err(e) = store.on_raft_message(msg) {
                    assert!(self.fail_stop.contains(&to), "store {to}: on_raft_message: {e}");
                    node.store = None;
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("cluster did not quiesce within {MAX_PUMP_ROUNDS} rounds at tick {}", self.now);
    }

    pub fn tick(&mut self) {
        self.tick_all_but(&[]);
    }

    /// One tick of every store but `stalled` (whose clocks run slow), then a pump.
    pub fn tick_all_but(&mut self, stalled: &[StoreId]) {
        for (id, node) in &mut self.nodes {
            if let Some(store) = node.store.as_mut()
                && !stalled.contains(id)
            {
                store.tick();
            }
        }
        self.now += 1;
        self.pump();
    }

    pub fn run_ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// The up store whose peer leads region 1 in the highest term.
    pub fn leader(&self) -> Option<StoreId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.store.as_ref().map(|s| (id, s)))
            .filter_map(|(id, s)| s.peer_status(REGION_ID).map(|st| (*id, st)))
            .filter(|(_, st)| st.role == minikv_raft::StateRole::Leader)
            .max_by_key(|(_, st)| st.term)
            .map(|(id, _)| id)
    }

    pub fn wait_leader(&mut self, max_ticks: u64) -> StoreId {
        for _ in 0..max_ticks {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick();
        }
        panic!("no leader within {max_ticks} ticks");
    }

    pub fn region(&self, store: StoreId) -> Region {
        self.store(store).region(REGION_ID).expect("region on store").clone()
    }

    pub fn header(&self, store: StoreId) -> RaftRequestHeader {
        let region = self.region(store);
        let peer = region.peer_on_store(store).cloned().unwrap_or_default();
        RaftRequestHeader { region_id: REGION_ID, peer, region_epoch: region.epoch }
    }

    pub fn propose(
        &mut self,
        store: StoreId,
        cmd: RaftCmdRequest,
    ) -> Result<ReqToken, RegionError> {
        let token = ReqToken(self.next_token);
        self.next_token += 1;
        self.store_mut(store).propose(cmd, token)?;
        Ok(token)
    }

    /// Ticks until `token` is answered.
    pub fn wait_response(&mut self, token: ReqToken, max_ticks: u64) -> Option<RaftCmdResponse> {
        self.pump();
        for _ in 0..=max_ticks {
            if let Some((_, r)) = self.responses.remove(&token) {
                return Some(r);
            }
            self.tick();
        }
        None
    }

    /// Proposes `requests` on `store` and waits for the answer.
    pub fn call(
        &mut self,
        store: StoreId,
        requests: Vec<Request>,
        admin: Option<AdminRequest>,
    ) -> Result<RaftCmdResponse, RegionError> {
        let cmd = RaftCmdRequest { header: self.header(store), requests, admin };
        let token = self.propose(store, cmd)?;
        let resp = self.wait_response(token, 200).expect("a response within 200 ticks");
        match resp.header.error.clone() {
            Some(e) => Err(e),
            None => Ok(resp),
        }
    }

    /// Runs `requests` on the leader, following NotLeader hints.
    pub fn call_leader(
        &mut self,
        requests: Vec<Request>,
        admin: Option<AdminRequest>,
    ) -> RaftCmdResponse {
        for _ in 0..20 {
            let leader = self.wait_leader(300);
            match self.call(leader, requests.clone(), admin.clone()) {
                Ok(r) => return r,
                Err(
                    RegionError::NotLeader { .. }
                    | RegionError::StaleCommand
                    | RegionError::ProposalDropped,
                ) => self.run_ticks(5),
                Err(e) => panic!("request failed: {e}"),
            }
        }
        panic!("request not served after 20 attempts");
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let r = self.call_leader(vec![put_req(key, value)], None);
        assert_eq!(r.responses, vec![Response::Put]);
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let r = self.call_leader(vec![get_req(key)], None);
        match &r.responses[..] {
            [Response::Get { value }] => value.clone(),
            other => panic!("unexpected get response {other:?}"),
        }
    }

    pub fn change_peer(&mut self, change_type: ConfChangeType, peer: Peer) -> Region {
        let r = self.call_leader(vec![], Some(AdminRequest::ChangePeer { change_type, peer }));
        match r.admin_response {
            Some(minikv_proto::raft_cmdpb::AdminResponse::ChangePeer { region }) => region,
            other => panic!("unexpected admin response {other:?}"),
        }
    }

    /// Power loss: the disk loses its unsynced writes, the store is gone.
    pub fn crash(&mut self, id: StoreId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.store = None;
        node.disk.crash();
    }

    pub fn restart(&mut self, id: StoreId) {
        let node = self.nodes.get_mut(&id).unwrap();
        assert!(node.store.is_none(), "store {id} is still up");
        let engine = Arc::new(Engine::open(node.disk.clone()).expect("reopen engine"));
        node.store = Some(Store::open(id, engine, self.config.clone()).expect("reopen store"));
    }

    /// Cuts every link between `a` and `b` (both ways).
    pub fn partition(&mut self, a: &[StoreId], b: &[StoreId]) {
        for x in a {
            for y in b {
                self.blocked.insert((*x, *y));
                self.blocked.insert((*y, *x));
            }
        }
    }

    /// The messages held so far (see `held`), in the order they were sent.
    pub fn take_held(&mut self) -> Vec<RaftMessage> {
        std::mem::take(&mut self.held_messages)
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The value of `key` in store `id`'s engine (bypassing Raft).
    pub fn engine_get(&self, id: StoreId, key: &[u8]) -> Option<Vec<u8>> {
        self.store(id).engine().get(minikv_engine::Cf::Default, key).unwrap()
    }
}

pub fn put_req(key: &[u8], value: &[u8]) -> Request {
    Request::Put { cf: CfName::Default, key: key.to_vec(), value: value.to_vec() }
}

pub fn get_req(key: &[u8]) -> Request {
    Request::Get { cf: CfName::Default, key: key.to_vec() }
}
