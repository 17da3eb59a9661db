//! The PD client (used by stores, clients and PD's own tools): sends each request to the PD node it takes for the leader, follows
//! `NotLeader` redirects, tries the next node after a timeout, and backs off while PD is
//! unavailable, all inside one deadline per request. Every PD request is safe to retry: a
//! timestamp or ID whose answer was lost is never handed out again, and the writes (bootstrap,
//! put store, heartbeats) are idempotent.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minikv_proto::metapb::{Store, StoreId};
use minikv_proto::pdpb::{
    PdError, PdRequest, PdRequestEnvelope, PdResponse, PdResponseEnvelope, StoreStats,
    TAG_PD_REQUEST, TAG_PD_RESPONSE, Timestamp,
};
use minikv_runtime::net::{Endpoint, Inbox, MAX_MESSAGE_BYTES, send_msg};
use minikv_runtime::{Alarm, Clock};

/// Why a PD request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdClientError {
    /// No PD node answered in time (or none could serve).
    #[error("PD request timed out: {0}")]
    Timeout(String),
    /// PD refused the request in a way retrying cannot fix.
    #[error("PD refused: {0}")]
    Refused(PdError),
    #[error("PD transport: {0}")]
    Transport(String),
    /// PD answered with a response of the wrong kind.
    #[error("PD answered {0}")]
    Unexpected(String),
}

/// Tunables of a PD client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdClientConfig {
    /// Every PD node's service address, by node id.
    pub members: BTreeMap<u64, SocketAddr>,
    pub request_timeout_ms: u64,
    pub rpc_timeout_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl PdClientConfig {
    pub fn new(members: BTreeMap<u64, SocketAddr>) -> PdClientConfig {
        PdClientConfig {
            members,
            request_timeout_ms: 5_000,
            rpc_timeout_ms: 500,
            backoff_base_ms: 5,
            backoff_max_ms: 200,
        }
    }
}

/// Counters of what the client did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdClientStats {
    pub rpcs_sent: u64,
    pub rpc_timeouts: u64,
    pub redirects: u64,
    pub unavailable: u64,
}

/// A PD client with one request in flight at a time.
pub struct PdClient {
    endpoint: Endpoint,
    inbox: Inbox,
    config: PdClientConfig,
    clock: Clock,
    alarm: Alarm,
    /// The PD node taken for the leader.
    leader: Option<u64>,
    /// Rotates the guess when no leader is known.
    rotation: usize,
    next_request_id: u64,
    stats: PdClientStats,
}

impl std::fmt::Debug for PdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdClient")
            .field("leader", &self.leader)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PdClient {
    pub async fn connect(
        config: PdClientConfig,
        clock: Clock,
        bind_addr: &str,
    ) -> Result<PdClient, PdClientError> {
        if config.members.is_empty() {
            return Err(PdClientError::Transport("no PD members configured".into()));
        }
        let endpoint = Endpoint::bind(bind_addr)
            .await
            .map_err(|e| PdClientError::Transport(format!("bind {bind_addr}: {e}")))?;
        Ok(PdClient {
            endpoint,
            inbox: Inbox::new(TAG_PD_RESPONSE, MAX_MESSAGE_BYTES),
            config,
            clock,
            alarm: Alarm::default(),
            leader: None,
            rotation: 0,
            // A new client may take over the address of one that just went (see RawClient).
            next_request_id: minikv_runtime::nonce() >> 1,
            stats: PdClientStats::default(),
        })
    }

    pub fn stats(&self) -> &PdClientStats {
        &self.stats
    }

    /// The PD node this client takes for the leader.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// `count` strictly increasing timestamps: the first one (the rest follow it by one each).
    pub async fn tso(&mut self, count: u32) -> Result<Timestamp, PdClientError> {
        match self.call(PdRequest::Tso { count }).await? {
            PdResponse::Tso { first, count: got } if got == count => Ok(first),
            other => Err(PdClientError::Unexpected(format!("{other:?}"))),
        }
    }

    pub async fn alloc_id(&mut self) -> Result<u64, PdClientError> {
        match self.call(PdRequest::AllocId).await? {
            PdResponse::Id { id } => Ok(id),
            other => Err(PdClientError::Unexpected(format!("{other:?}"))),
        }
    }

    pub async fn is_bootstrapped(&mut self) -> Result<bool, PdClientError> {
        match self.call(PdRequest::IsBootstrapped).await? {
            PdResponse::Bootstrapped { bootstrapped } => Ok(bootstrapped),
            other => Err(PdClientError::Unexpected(format!("{other:?}"))),
        }
    }

    pub async fn get_store(&mut self, store_id: StoreId) -> Result<Option<Store>, PdClientError> {
        let deadline_ms = self.clock.now_ms() + self.config.request_timeout_ms;
        self.get_store_until(store_id, deadline_ms).await
    }

    /// What the store's last heartbeat told PD (`None` before its first one).
    pub async fn get_store_stats(
        &mut self,
        store_id: StoreId,
    ) -> Result<Option<StoreStats>, PdClientError> {
        match self.call(PdRequest::GetStoreStats { store_id }).await? {
            PdResponse::StoreStats { stats } => Ok(stats),
            other => Err(PdClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// [`PdClient::get_store`] within `deadline_ms`.
    pub async fn get_store_until(
        &mut self,
        store_id: StoreId,
        deadline_ms: u64,
    ) -> Result<Option<Store>, PdClientError> {
        match self.call_until(PdRequest::GetStore { store_id }, deadline_ms).await? {
            PdResponse::Store { store } => Ok(store),
            other => Err(PdClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends `request` until a PD leader answers it or the client's request timeout passes.
    pub async fn call(&mut self, request: PdRequest) -> Result<PdResponse, PdClientError> {
        let deadline_ms = self.clock.now_ms() + self.config.request_timeout_ms;
        self.call_until(request, deadline_ms).await
    }

    /// Sends `request` until a PD leader answers it or `deadline_ms` (the caller's clock)
    /// passes: a lookup that is one step of a larger request keeps to that request's deadline.
    pub async fn call_until(
        &mut self,
        request: PdRequest,
        deadline_ms: u64,
    ) -> Result<PdResponse, PdClientError> {
        let start_ms = self.clock.now_ms();
        let mut backoff_ms = self.config.backoff_base_ms;
        let mut last_error = String::from("no attempt");
        let ids: Vec<u64> = self.config.members.keys().copied().collect();
        while self.clock.now_ms() < deadline_ms {
            let target = match self.leader {
                Some(id) if self.config.members.contains_key(&id) => id,
                _ => {
                    self.rotation = (self.rotation + 1) % ids.len();
                    ids[self.rotation]
                }
            };
            let attempt_deadline_ms =
                (self.clock.now_ms() + self.config.rpc_timeout_ms).min(deadline_ms);
            match self.attempt(target, &request, attempt_deadline_ms).await {
                Some(PdResponse::Error(PdError::NotLeader { leader })) => {
                    self.stats.redirects += 1;
                    last_error = format!("PD node {target} is not the leader");
                    if leader.is_none() || leader == Some(target) {
                        self.leader = None;
                        self.sleep_backoff(&mut backoff_ms, deadline_ms).await;
                    } else {
                        self.leader = leader;
                    }
                }
                Some(PdResponse::Error(PdError::Unavailable { reason })) => {
                    // The node may be cut off from the others: ask another one next.
                    self.stats.unavailable += 1;
                    last_error = format!("PD node {target}: {reason}");
                    self.leader = None;
                    self.sleep_backoff(&mut backoff_ms, deadline_ms).await;
                }
                Some(PdResponse::Error(error)) => return Err(PdClientError::Refused(error)),
                Some(response) => {
                    self.leader = Some(target);
                    return Ok(response);
                }
                None => {
                    self.stats.rpc_timeouts += 1;
                    last_error = format!("PD node {target} did not answer");
                    self.leader = None;
                }
            }
        }
        Err(PdClientError::Timeout(format!(
            "{request:?} after {} ms: {last_error}",
            self.clock.now_ms() - start_ms
        )))
    }

    async fn sleep_backoff(&mut self, backoff_ms: &mut u64, deadline_ms: u64) {
        let until_ms = (self.clock.now_ms() + *backoff_ms).min(deadline_ms);
        let at = self.clock.instant_at_ms(until_ms);
        self.alarm.race(at, std::future::pending::<()>()).await;
        *backoff_ms = (*backoff_ms * 2).min(self.config.backoff_max_ms);
    }

    /// One request to PD node `target`; `None` if no answer came by `deadline_ms`.
    async fn attempt(
        &mut self,
        target: u64,
        request: &PdRequest,
        deadline_ms: u64,
    ) -> Option<PdResponse> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let addr = self.config.members[&target];
        let envelope = PdRequestEnvelope { request_id, request: request.clone() };
        self.stats.rpcs_sent += 1;
        if send_msg(&self.endpoint, addr, TAG_PD_REQUEST, envelope).await.is_err() {
            // Not sent: wait out a little of the attempt, as if it were lost.
            let at = self.clock.instant_at_ms(self.clock.now_ms() + 10);
            self.alarm.race(at, std::future::pending::<()>()).await;
            return None;
        }
        let at = self.clock.instant_at_ms(deadline_ms);
        let (endpoint, inbox) = (self.endpoint.clone(), self.inbox);
        let receive = async move {
            loop {
                let Ok((envelope, _)) = inbox.recv::<PdResponseEnvelope>(&endpoint).await else {
                    // The endpoint is gone: nothing more will come.
                    std::future::pending::<()>().await;
                    unreachable!();
                };
                match envelope {
                    Ok(envelope) if envelope.request_id == request_id => {
                        return envelope.response;
                    }
                    // A late answer to an earlier attempt, or an undecodable one: skip it.
                    _ => {}
                }
            }
        };
        self.alarm.race(at, receive).await
    }
}
