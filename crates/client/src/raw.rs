//! The raw client: routes each request to the leader of the region holding its key, retries
//! region errors with backoff inside a per-request deadline, and reports a write whose outcome
//! it cannot know as `Error::Unknown` instead of retrying it (a retried write could apply twice).

use minikv_hooks::{Canary, Point, Probe, buggify, canary, probe};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use minikv_proto::errorpb::RegionError;
use minikv_proto::kvrpc::{
    KvContext, KvRequest, KvRequestEnvelope, KvResponse, KvResponseEnvelope, TAG_KV_REQUEST,
    TAG_KV_RESPONSE,
};
use minikv_proto::metapb::{Peer, Region, RegionEpoch, StoreId};
use minikv_proto::pdpb::{PdRequest, PdResponse};
use minikv_proto::raftpb::ConfChangeType;
use minikv_runtime::net::{Endpoint, Inbox, MAX_MESSAGE_BYTES, send_msg};

use crate::error::{Error, Result};
use crate::pd::{PdClient, PdClientConfig};
use crate::region_cache::RegionCache;
use minikv_runtime::Alarm;
use minikv_runtime::Clock;

/// Tunables of a raw client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Where each store listens (with PD members, a store not listed is looked up in PD).
    pub stores: BTreeMap<StoreId, SocketAddr>,
    /// PD's nodes: with any, regions are located through PD (and stores' addresses looked up
    /// there), and the stores are asked only when PD cannot answer.
    pub pd_members: BTreeMap<u64, SocketAddr>,
    /// A request gives up after this long (reads fail, writes in doubt become `Unknown`).
    pub request_timeout_ms: u64,
    /// One attempt waits this long for its answer.
    pub rpc_timeout_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Most pairs one scan page asks a region for.
    pub scan_page_limit: u64,
}

impl ClientConfig {
    pub fn new(stores: BTreeMap<StoreId, SocketAddr>) -> ClientConfig {
        ClientConfig {
            stores,
            pd_members: BTreeMap::new(),
            request_timeout_ms: 2_000,
            rpc_timeout_ms: 500,
            backoff_base_ms: 5,
            backoff_max_ms: 200,
            scan_page_limit: 1024,
        }
    }
}

/// Counters of what the client did, for workloads and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub rpcs_sent: u64,
    pub rpc_timeouts: u64,
    pub region_errors: u64,
    pub backoffs: u64,
    /// Writes proposed, definitely not applied (e.g. `ProposalDropped`), and tried again.
    pub proposals_retried: u64,
    /// Responses that did not answer the request in flight (stale or undecodable), skipped.
    pub responses_skipped: u64,
}

/// How one attempt ended.
enum Attempt {
    Answered(KvResponse),
    /// Nothing was sent (definite: the request had no effect).
    NotSent(String),
    /// Nothing was sent, and retrying cannot help (the request is over the message limit).
    Unsendable(String),
    /// Sent, no answer in time.
    NoAnswer,
}

/// Which epoch a request carries.
#[derive(Debug, Clone, Copy)]
enum EpochPolicy {
    /// The cached region's, refreshed and retried after an `EpochNotMatch` (data requests).
    Follow,
    /// This one on every attempt; an `EpochNotMatch` goes back to the caller (membership
    /// changes, chosen on a view of the region that must still hold when they apply).
    Pinned(RegionEpoch),
}

/// What to do after a region error.
enum Next {
    RetryNow,
    Backoff,
    Fail(Error),
}

/// A raw KV client with one request in flight at a time.
pub struct RawClient {
    endpoint: Endpoint,
    config: ClientConfig,
    clock: Clock,
    cache: RegionCache,
    next_request_id: u64,
    /// Rotates the guess of which store to ask when no leader is known.
    rotation: usize,
    /// Where responses are taken from.
    inbox: Inbox,
    stats: ClientStats,
    /// Times every call out (one timer per deadline, not one per poll: see `alarm`).
    alarm: Alarm,
    /// Locates regions and stores when the config names PD members.
    pd: Option<PdClient>,
}

impl RawClient {
    /// Binds the client's endpoint on `bind_addr` (e.g. `0.0.0.0:0`).
    pub async fn connect(config: ClientConfig, clock: Clock, bind_addr: &str) -> Result<Self> {
        let endpoint =
            Endpoint::bind(bind_addr).await.map_err(|e| Error::Transport(e.to_string()))?;
        let inbox = Inbox::new(TAG_KV_RESPONSE, MAX_MESSAGE_BYTES);
        let pd = if config.pd_members.is_empty() {
            None
        } else {
            // A lookup is one step of a request: it keeps to the request's deadline.
            let mut pd_config = PdClientConfig::new(config.pd_members.clone());
            pd_config.request_timeout_ms = config.request_timeout_ms;
            pd_config.rpc_timeout_ms = config.rpc_timeout_ms;
            let pd = PdClient::connect(pd_config, clock.clone(), bind_addr)
                .await
                .map_err(|e| Error::Transport(e.to_string()))?;
            Some(pd)
        };
        Ok(RawClient {
            endpoint,
            config,
            clock,
            cache: RegionCache::new(),
            // Not 1: madsim hands a freed port to the next socket bound on the node, so a new
            // client can take over the address of one that just went, whose answers may still
            // be in flight; counting from 1 again, it took them for its own answers (a put
            // answered "not leader" for the old client's request was retried, and applied
            // twice). Found by the leases scenario's fresh writers.
            next_request_id: minikv_runtime::nonce() >> 1,
            rotation: 0,
            inbox,
            stats: ClientStats::default(),
            alarm: Alarm::default(),
            pd,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The address the client receives its answers on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint.local_addr().map_err(|e| Error::Transport(e.to_string()))
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    pub fn region_cache(&self) -> &RegionCache {
        &self.cache
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.execute(key, KvRequest::RawGet { key: key.to_vec() }).await? {
            KvResponse::Get { value } => Ok(value),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let request = KvRequest::RawPut { key: key.to_vec(), value: value.to_vec() };
        match self.execute(key, request).await? {
            KvResponse::Put => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn delete(&mut self, key: &[u8]) -> Result<()> {
        match self.execute(key, KvRequest::RawDelete { key: key.to_vec() }).await? {
            KvResponse::Delete => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets `key` to `new_value` (deletes it when `None`) iff it holds `expected`. Returns
    /// whether it swapped and the value found.
    pub async fn cas(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new_value: Option<&[u8]>,
    ) -> Result<(bool, Option<Vec<u8>>)> {
        let request = KvRequest::RawCas {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            new_value: new_value.map(<[u8]>::to_vec),
        };
        match self.execute(key, request).await? {
            KvResponse::Cas { succeeded, previous } => Ok((succeeded, previous)),
            other => Err(unexpected(&other)),
        }
    }

    /// Up to `limit` pairs with `start_key <= key < end_key` (empty `end_key`: unbounded), in
    /// key order, region by region (each region's page is read at one point in time).
    pub async fn scan(
        &mut self,
        start_key: &[u8],
        end_key: &[u8],
        limit: u64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut from = start_key.to_vec();
        while (out.len() as u64) < limit {
            let want = (limit - out.len() as u64).min(self.config.scan_page_limit);
            let request = KvRequest::RawScan {
                start_key: from.clone(),
                end_key: end_key.to_vec(),
                limit: want,
            };
            let (response, region) =
                self.execute_in_region(&from, request, EpochPolicy::Follow).await?;
            let KvResponse::Scan { kvs } = response else { return Err(unexpected(&response)) };
            let got = kvs.len() as u64;
            out.extend(kvs);
            if got == want {
                // A full page: this region may hold more after its last key.
                let Some((last, _)) = out.last() else { break };
                from = [last.as_slice(), &[0]].concat();
                continue;
            }
            let region_ends_before = !region.end_key.is_empty()
                && (end_key.is_empty() || region.end_key.as_slice() < end_key);
            if !region_ends_before {
                break;
            }
            from = region.end_key.clone();
        }
        Ok(out)
    }

    /// Values of `keys` (which must lie in one region), in request order.
    pub async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let first = first.clone();
        match self.execute(&first, KvRequest::RawBatchGet { keys: keys.to_vec() }).await? {
            KvResponse::BatchGet { values } => Ok(values),
            other => Err(unexpected(&other)),
        }
    }

    /// Writes every pair atomically (they must lie in one region).
    pub async fn batch_put(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let Some((first, _)) = pairs.first() else { return Ok(()) };
        let first = first.clone();
        match self.execute(&first, KvRequest::RawBatchPut { pairs: pairs.to_vec() }).await? {
            KvResponse::BatchPut => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Proposes a membership change of `region` as the caller saw it when it chose the change;
    /// returns the region after it. Every attempt carries `region`'s epoch: if the region
    /// changed since (`EpochNotMatch`, before proposing or at apply), the change is not retried
    /// on the newer region but returned as `Error::Region`, because a choice made on one
    /// membership (which peer to remove, how many voters stay) can be wrong on another. The
    /// error carries the current region (also cached) for the caller to decide again.
    pub async fn change_peer_in(
        &mut self,
        region: &Region,
        change_type: ConfChangeType,
        peer: Peer,
    ) -> Result<Region> {
        let key = region.start_key.clone();
        let request = KvRequest::ChangePeer { key: key.clone(), change_type, peer };
        let epoch = EpochPolicy::Pinned(region.epoch);
        match self.execute_in_region(&key, request, epoch).await?.0 {
            KvResponse::ChangePeer { region } => {
                self.cache.insert(region.clone());
                Ok(region)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the leader of `region` (as the caller saw it) to hand leadership to `peer`; like
    /// `change_peer_in`, the attempt carries `region`'s epoch and an `EpochNotMatch` comes back
    /// as an error.
    pub async fn transfer_leader_in(&mut self, region: &Region, peer: Peer) -> Result<()> {
        let key = region.start_key.clone();
        let request = KvRequest::TransferLeader { key: key.clone(), peer };
        let epoch = EpochPolicy::Pinned(region.epoch);
        match self.execute_in_region(&key, request, epoch).await?.0 {
            KvResponse::TransferLeader => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Proposes a membership change of the region holding `key`, as the client's cache knows
    /// it (located first when not cached); like `change_peer_in`, an `EpochNotMatch` comes
    /// back as an error and is not retried on the newer region.
    pub async fn change_peer(
        &mut self,
        key: &[u8],
        change_type: ConfChangeType,
        peer: Peer,
    ) -> Result<Region> {
        let deadline_ms = self.clock.now_ms() + self.config.request_timeout_ms;
        let Some(region) = self.locate(key, deadline_ms).await else {
            return Err(Error::DeadlineExceeded(format!(
                "cannot locate the region of key {key:?}"
            )));
        };
        self.change_peer_in(&region, change_type, peer).await
    }

    async fn execute(&mut self, key: &[u8], request: KvRequest) -> Result<KvResponse> {
        self.execute_in_region(key, request, EpochPolicy::Follow)
            .await
            .map(|(response, _)| response)
    }

    /// Runs `request` on the region holding `key`; returns the answer and the region it came
    /// from (as cached when the request was sent).
    async fn execute_in_region(
        &mut self,
        key: &[u8],
        request: KvRequest,
        epoch: EpochPolicy,
    ) -> Result<(KvResponse, Arc<Region>)> {
        let is_read = request.is_read();
        let deadline_ms = self.clock.now_ms() + self.config.request_timeout_ms;
        let mut backoff_ms = self.config.backoff_base_ms;
        let mut last_error = None;
        // Attempts in a row that got no answer.
        let mut silent = 0;
        loop {
            let now = self.clock.now_ms();
            if now >= deadline_ms {
                let last_error = last_error.unwrap_or_else(|| "no attempt finished".to_string());
                return Err(Error::DeadlineExceeded(last_error));
            }
            let Some(region) = self.locate(key, deadline_ms).await else {
                last_error = Some(format!("cannot locate the region of key {key:?}"));
                self.backoff(&mut backoff_ms, deadline_ms).await;
                continue;
            };
            // The leader cache is only a hint: a client may lose it and ask around.
            if buggify(Point::ClientForgetLeader) {
                self.cache.forget_leader(region.id);
                self.rotation += 1;
            }
            let target = self.pick_peer(&region);
            let region_epoch = match epoch {
                EpochPolicy::Follow => region.epoch,
                EpochPolicy::Pinned(pinned) => pinned,
            };
            let context = KvContext { region_id: region.id, region_epoch, peer: target.clone() };
            let rpc_timeout_ms = if buggify(Point::ClientTimeoutEarliest) {
                self.config.rpc_timeout_ms / 4
            } else {
                self.config.rpc_timeout_ms
            };
            let rpc_deadline_ms = deadline_ms.min(now + rpc_timeout_ms);
            let attempt =
                self.call(target.store_id, context, request.clone(), rpc_deadline_ms).await;
            let next = match attempt {
                Attempt::Answered(
                    KvResponse::RegionError(e @ RegionError::EpochNotMatch { .. })
                    | KvResponse::ProposalFailed(e @ RegionError::EpochNotMatch { .. }),
                ) if matches!(epoch, EpochPolicy::Pinned(_)) => {
                    // Definite (refused before proposing, or at apply): nothing changed. The
                    // caller chose on the pinned epoch and must choose again.
                    self.on_region_error(&region, &target, e.clone());
                    return Err(Error::Region(e));
                }
                Attempt::Answered(KvResponse::RegionError(e)) => {
                    last_error = Some(e.to_string());
                    self.on_region_error(&region, &target, e)
                }
                Attempt::Answered(KvResponse::ProposalFailed(e)) => {
                    // Every earlier attempt ended definitely (an unknown one returns at once),
                    // so retrying a write that certainly was not applied is safe.
                    if !is_read && e.leaves_outcome_unknown() {
                        probe(Probe::ClientUnknownOutcome);
                        return Err(Error::Unknown(format!("proposed, then {e}")));
                    }
                    if !is_read {
                        self.stats.proposals_retried += 1;
                    }
                    last_error = Some(e.to_string());
                    self.on_region_error(&region, &target, e)
                }
                // The store proposed and then answered oddly: a write may have applied.
                Attempt::Answered(KvResponse::Other(reason)) if !is_read => {
                    return Err(Error::Unknown(format!("the store answered: {reason}")));
                }
                Attempt::Answered(KvResponse::Other(reason)) => return Err(Error::Store(reason)),
                Attempt::Answered(response) => return Ok((response, region)),
                Attempt::Unsendable(reason) => return Err(Error::Transport(reason)),
                Attempt::NotSent(reason) => {
                    last_error = Some(reason);
                    self.cache.forget_leader(region.id);
                    self.rotation += 1;
                    Next::Backoff
                }
                Attempt::NoAnswer => {
                    self.stats.rpc_timeouts += 1;
                    if !is_read && canary(Canary::ClientTimeoutIsFail) {
                        return Err(Error::Transport(format!(
                            "no answer from store {} in time",
                            target.store_id
                        )));
                    }
                    if !is_read {
                        probe(Probe::ClientUnknownOutcome);
                        return Err(Error::Unknown(format!(
                            "no answer from store {} in time",
                            target.store_id
                        )));
                    }
                    last_error = Some(format!("no answer from store {}", target.store_id));
                    self.cache.forget_leader(region.id);
                    self.rotation += 1;
                    silent += 1;
                    if silent >= region.peers.len() {
                        // None of the peers the cached region names answers: the region may
                        // have moved on without them (e.g. every one of them was lost and PD
                        // replaced them). Locate it again, asking every store.
                        self.cache.invalidate(region.id);
                        silent = 0;
                    }
                    Next::RetryNow
                }
            };
            match next {
                Next::RetryNow => {}
                Next::Backoff => self.backoff(&mut backoff_ms, deadline_ms).await,
                Next::Fail(e) => return Err(e),
            }
        }
    }

    async fn backoff(&mut self, backoff_ms: &mut u64, deadline_ms: u64) {
        self.stats.backoffs += 1;
        let now = self.clock.now_ms();
        let wake = deadline_ms.min(now + *backoff_ms);
        *backoff_ms = (*backoff_ms * 2).min(self.config.backoff_max_ms);
        self.clock.sleep_until_ms(wake).await;
    }

    fn on_region_error(&mut self, region: &Region, asked: &Peer, e: RegionError) -> Next {
        self.stats.region_errors += 1;
        match e {
            RegionError::NotLeader { leader: Some(leader), .. }
                if !region.peers.iter().any(|p| p.id == leader.id) =>
            {
                // The leader is a peer the cached region does not know: the membership changed
                // since it was cached. Without this, every retry would ask the same follower.
                self.cache.invalidate(region.id);
                self.rotation += 1;
                Next::RetryNow
            }
            RegionError::NotLeader { leader: Some(leader), .. } => {
                let same = leader.id == asked.id;
                self.cache.set_leader(region.id, leader);
                if same { Next::Backoff } else { Next::RetryNow }
            }
            RegionError::NotLeader { leader: None, .. } => {
                self.cache.forget_leader(region.id);
                self.rotation += 1;
                Next::Backoff
            }
            RegionError::EpochNotMatch { current_regions } => {
                self.cache.invalidate(region.id);
                for r in current_regions {
                    self.cache.insert(r);
                }
                Next::RetryNow
            }
            RegionError::KeyNotInRegion { .. } => {
                self.cache.invalidate(region.id);
                Next::RetryNow
            }
            RegionError::RegionNotFound { .. } => {
                // That store lost its peer; the region may have moved. Ask again.
                self.cache.invalidate(region.id);
                self.rotation += 1;
                Next::Backoff
            }
            RegionError::ProposalDropped => {
                // Leadership moved while the proposal waited; find the new leader.
                self.cache.forget_leader(region.id);
                Next::Backoff
            }
            RegionError::StaleCommand | RegionError::ServerIsBusy { .. } => Next::Backoff,
            e @ RegionError::CommandRefused { .. } => Next::Fail(Error::Region(e)),
        }
    }

    /// The peer to ask: the cached leader, else the region's peers in rotation.
    fn pick_peer(&self, region: &Region) -> Peer {
        if let Some(leader) = self.cache.leader(region.id)
            && region.peers.iter().any(|p| p.id == leader.id)
        {
            return leader.clone();
        }
        assert!(!region.peers.is_empty(), "region {} has no peers: {region:?}", region.id);
        region.peers[self.rotation % region.peers.len()].clone()
    }

    /// Asks `store` alone which region holds `key` and which peer leads it, as that store
    /// knows (a follower learns its leader from the leader's messages), and caches the
    /// answer. `None` if the store did not answer within one RPC timeout.
    pub async fn locate_at(
        &mut self,
        store: StoreId,
        key: &[u8],
    ) -> Option<(Region, Option<Peer>)> {
        let deadline_ms = self.clock.now_ms() + self.config.rpc_timeout_ms;
        let request = KvRequest::LocateKey { key: key.to_vec() };
        let Attempt::Answered(KvResponse::Located { region, leader }) =
            self.call(store, KvContext::default(), request, deadline_ms).await
        else {
            return None;
        };
        if region.contains_key(key) && !region.peers.is_empty() {
            self.cache.insert(region.clone());
            match &leader {
                Some(leader) => self.cache.set_leader(region.id, leader.clone()),
                None => self.cache.forget_leader(region.id),
            }
        }
        Some((region, leader))
    }

    /// The cached region of `key`, or asks stores in rotation until one knows it.
    async fn locate(&mut self, key: &[u8], deadline_ms: u64) -> Option<Arc<Region>> {
        if let Some(region) = self.cache.locate_shared(key) {
            return Some(region.clone());
        }
        if let Some(region) = self.locate_in_pd(key, deadline_ms).await {
            return Some(region);
        }
        let stores: Vec<StoreId> = self.config.stores.keys().copied().collect();
        for _ in 0..stores.len() {
            let now = self.clock.now_ms();
            if now >= deadline_ms {
                return None;
            }
            let store = stores[self.rotation % stores.len()];
            self.rotation += 1;
            let request = KvRequest::LocateKey { key: key.to_vec() };
            let rpc_deadline_ms = deadline_ms.min(now + self.config.rpc_timeout_ms);
            if let Attempt::Answered(KvResponse::Located { region, leader }) =
                self.call(store, KvContext::default(), request, rpc_deadline_ms).await
                && region.contains_key(key)
                && !region.peers.is_empty()
            {
                let region = self.cache.insert(region);
                if let Some(leader) = leader {
                    self.cache.set_leader(region.id, leader);
                }
                return Some(region);
            }
        }
        None
    }

    /// The region of `key` (and its leader) as PD last heard of it, cached; `None` without PD
    /// or if PD does not know or answer.
    async fn locate_in_pd(&mut self, key: &[u8], deadline_ms: u64) -> Option<Arc<Region>> {
        let pd = self.pd.as_mut()?;
        let request = PdRequest::GetRegion { key: key.to_vec() };
        let Ok(PdResponse::Region { region: Some(info) }) =
            pd.call_until(request, deadline_ms).await
        else {
            return None;
        };
        if !info.region.contains_key(key) || info.region.peers.is_empty() {
            return None;
        }
        let region = self.cache.insert(info.region);
        if let Some(leader) = info.leader {
            self.cache.set_leader(region.id, leader);
        }
        Some(region)
    }

    /// Where `store` listens: the config's address, or PD's record of the store (cached).
    async fn store_addr(&mut self, store: StoreId, deadline_ms: u64) -> Option<SocketAddr> {
        if let Some(addr) = self.config.stores.get(&store) {
            return Some(*addr);
        }
        let record = self.pd.as_mut()?.get_store_until(store, deadline_ms).await.ok()??;
        let addr: SocketAddr = record.address.parse().ok()?;
        self.config.stores.insert(store, addr);
        Some(addr)
    }

    /// One attempt: send to `store`, wait for the answer with this request's id until
    /// `deadline_ms`. What does not answer it (an answer to an earlier, abandoned request, or
    /// bytes that decode as no answer) is skipped: taking it as this request's answer would
    /// turn a write that may have applied into a failure.
    async fn call(
        &mut self,
        store: StoreId,
        context: KvContext,
        request: KvRequest,
        deadline_ms: u64,
    ) -> Attempt {
        let Some(addr) = self.store_addr(store, deadline_ms).await else {
            return Attempt::NotSent(format!("store {store} has no address"));
        };
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let envelope = KvRequestEnvelope { request_id, context, request };
        if let Err(e) = send_msg(&self.endpoint, addr, TAG_KV_REQUEST, envelope).await {
            if e.kind() == std::io::ErrorKind::InvalidInput {
                return Attempt::Unsendable(format!("the request: {e}"));
            }
            return Attempt::NotSent(format!("send to store {store}: {e}"));
        }
        self.stats.rpcs_sent += 1;
        loop {
            let now = self.clock.now_ms();
            if now >= deadline_ms {
                return Attempt::NoAnswer;
            }
            let deadline = self.clock.now_instant() + Duration::from_millis(deadline_ms - now);
            let received = self
                .alarm
                .race(deadline, self.inbox.recv::<KvResponseEnvelope>(&self.endpoint))
                .await;
            match received {
                None | Some(Err(_)) => return Attempt::NoAnswer,
                Some(Ok((Ok(resp), _from))) if resp.request_id == request_id => {
                    return Attempt::Answered(resp.response);
                }
                Some(Ok((Ok(_stale), _from))) => self.stats.responses_skipped += 1,
                Some(Ok((Err(_undecodable), _from))) => self.stats.responses_skipped += 1,
            }
        }
    }
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("next_request_id", &self.next_request_id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn unexpected(response: &KvResponse) -> Error {
    Error::Store(format!("unexpected response {response:?}"))
}
