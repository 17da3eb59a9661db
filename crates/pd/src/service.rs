//! A PD node's service: it takes PD requests on its own port and serves them from PD's state in
//! the PD region (`storage`), one at a time, except timestamps, which it serves in batches: all
//! the TSO requests that arrived before one linearizable read of the saved bound are answered
//! after it. A node whose store does not lead the PD region sends clients to the one that does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minikv_client::{ClientConfig, RawClient};
use minikv_hooks::{Canary, Point, Probe, buggify, canary, probe};
use minikv_proto::pdpb::{
    PdError, PdRequest, PdRequestEnvelope, PdResponse, PdResponseEnvelope, TAG_PD_REQUEST,
    TAG_PD_RESPONSE, Timestamp,
};
use minikv_runtime::Clock;
use minikv_runtime::net::{Endpoint, Inbox, MAX_MESSAGE_BYTES, send_msg};
use tokio::sync::mpsc;

use crate::cluster::ClusterConfig;
use crate::meta::{Meta, MetaConfig, PdStats};
use crate::schedule::ScheduleConfig;
use crate::storage::{Storage, Swap};
use crate::tso::{Plan, TsoState};

/// The port a PD node serves PD requests on.
pub const PD_PORT: u16 = 2379;
/// The id of the region holding PD's state, on the PD nodes' own stores. Apart from every
/// data region's id (the first data region is 1, PD hands out IDs from `ids::FIRST_ID` up), so
/// that a trace, and the Raft audit reading it, never confuses the two groups.
pub const PD_REGION_ID: u64 = 999;
/// Most timestamps one request may ask for.
pub const MAX_TSO_COUNT: u32 = 1 << 16;

/// Tunables of one PD node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdConfig {
    /// This node's id: its store's id in the PD region, and its name in redirects.
    pub node_id: u64,
    pub listen_addr: SocketAddr,
    /// Every PD node's store (the PD region's peers), by node id.
    pub store_addrs: BTreeMap<u64, SocketAddr>,
    /// How far above its clock the leader saves the TSO bound.
    pub tso_window_ms: u64,
    /// IDs claimed per write of the ID window.
    pub id_step: u64,
    /// One access to PD's state gives up after this long.
    pub storage_timeout_ms: u64,
    /// Voters every region should have.
    pub max_replicas: usize,
    /// A store silent this long is down: its peers are replaced.
    pub max_store_down_ms: u64,
    /// A scheduling round runs at most this often.
    pub schedule_interval_ms: u64,
    /// An operator unfinished after this long is dropped.
    pub operator_timeout_ms: u64,
}

impl PdConfig {
    pub fn new(
        node_id: u64,
        listen_addr: SocketAddr,
        store_addrs: BTreeMap<u64, SocketAddr>,
    ) -> Self {
        PdConfig {
            node_id,
            listen_addr,
            store_addrs,
            tso_window_ms: 3_000,
            id_step: 1_000,
            storage_timeout_ms: 300,
            max_replicas: 3,
            max_store_down_ms: 30 * 60 * 1_000,
            schedule_interval_ms: 100,
            operator_timeout_ms: 10 * 60 * 1_000,
        }
    }

    fn meta_config(&self) -> MetaConfig {
        MetaConfig {
            cluster: ClusterConfig { max_store_down_ms: self.max_store_down_ms },
            schedule: ScheduleConfig {
                max_replicas: self.max_replicas,
                operator_timeout_ms: self.operator_timeout_ms,
                ..ScheduleConfig::default()
            },
            schedule_interval_ms: self.schedule_interval_ms,
            id_step: self.id_step,
        }
    }
}

/// A request waiting for its answer.
#[derive(Debug)]
struct Pending {
    request_id: u64,
    from: SocketAddr,
    request: PdRequest,
}

/// One PD node's service state.
pub struct PdService {
    config: PdConfig,
    clock: Clock,
    endpoint: Endpoint,
    storage: Storage,
    tso: TsoState,
    meta: Meta,
}

impl std::fmt::Debug for PdService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdService")
            .field("config", &self.config)
            .field("tso", &self.tso)
            .finish_non_exhaustive()
    }
}

impl PdService {
    /// Binds the service's endpoint and its storage client; `stats` receives its counters.
    pub async fn start(
        config: PdConfig,
        clock: Clock,
        stats: PdStats,
    ) -> std::io::Result<PdService> {
        let endpoint = Endpoint::bind(config.listen_addr).await?;
        let mut client_config = ClientConfig::new(config.store_addrs.clone());
        client_config.request_timeout_ms = config.storage_timeout_ms;
        client_config.rpc_timeout_ms = (config.storage_timeout_ms / 4).max(1);
        let raw = RawClient::connect(client_config, clock.clone(), "0.0.0.0:0")
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // BUGGIFY: a window of a few milliseconds, so the bound is raised every few batches.
        let tso_window_ms = if buggify(Point::PdTsoWindowShort) { 5 } else { config.tso_window_ms };
        Ok(PdService {
            tso: TsoState::new(tso_window_ms),
            meta: Meta::new(config.meta_config(), stats),
            config,
            clock,
            endpoint,
            storage: Storage::new(raw),
        })
    }

    /// Serves until the node dies.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for _ in 0..4 {
            spawn_receiver(self.endpoint.clone(), tx.clone());
        }
        drop(tx);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let (tso, others): (Vec<Pending>, Vec<Pending>) =
                batch.into_iter().partition(|p| matches!(p.request, PdRequest::Tso { .. }));
            if !tso.is_empty() {
                self.serve_tso(tso).await;
            }
            for pending in others {
                let response = match self.redirect().await {
                    Some(error) => PdResponse::Error(error),
                    None => self.serve_one(pending.request.clone()).await,
                };
                if let PdResponse::Error(error) = &response {
                    tracing::debug!(
                        target: "minikv::pd",
                        "pd {}: {} fails: {error}",
                        self.config.node_id,
                        pending.request.kind()
                    );
                }
                self.reply(&pending, response);
            }
        }
    }

    /// `NotLeader` naming the PD node whose store leads the PD region, when that is not this
    /// node. The storage client's cache answers when it names this node (a stale "this node"
    /// costs nothing: storage requests find the real leader, and the cache follows); otherwise
    /// the node asks its own store, whose view of the leader is fresh, so that two nodes never
    /// send clients to each other on stale caches.
    async fn redirect(&mut self) -> Option<PdError> {
        let me = self.config.node_id;
        let cached = self.storage.raw().region_cache().leader(PD_REGION_ID).map(|p| p.store_id);
        if cached == Some(me) {
            return None;
        }
        let (_, leader) = self.storage.raw_mut().locate_at(me, b"").await?;
        let leader = leader.map(|p| p.store_id);
        if leader == Some(me) {
            return None;
        }
        probe(Probe::PdRedirected);
        self.meta.forget_view();
        let error = PdError::NotLeader { leader };
        tracing::debug!(target: "minikv::pd", "pd {me}: {error}");
        Some(error)
    }

    fn reply(&self, pending: &Pending, response: PdResponse) {
        let envelope = PdResponseEnvelope { request_id: pending.request_id, response };
        let (endpoint, to) = (self.endpoint.clone(), pending.from);
        drop(madsim::task::spawn(async move {
            // A lost answer is the client's timeout to handle.
            let _ = send_msg(&endpoint, to, TAG_PD_RESPONSE, envelope).await;
        }));
    }

    /// Answers every TSO request of `batch` after one read of the saved bound.
    async fn serve_tso(&mut self, batch: Vec<Pending>) {
        let redirect = self.redirect().await;
        let mut valid = Vec::new();
        for pending in batch {
            let PdRequest::Tso { count } = pending.request else { unreachable!("TSO batch") };
            if count == 0 || count > MAX_TSO_COUNT {
                let reason = format!("TSO count {count} is not in [1, {MAX_TSO_COUNT}]");
                self.reply(&pending, PdResponse::Error(PdError::Invalid { reason }));
            } else if let Some(error) = &redirect {
                self.reply(&pending, PdResponse::Error(error.clone()));
            } else {
                valid.push((pending, count));
            }
        }
        if valid.is_empty() {
            return;
        }
        let total: u64 = valid.iter().map(|(_, count)| u64::from(*count)).sum();
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        let result = self.allocate_tso(total).await;
        match &result {
            Ok(first) => tracing::debug!(
                target: "minikv::pd",
                "pd {}: {} TSO requests get [{first}, +{total}]",
                self.config.node_id,
                valid.len()
            ),
            Err(e) => tracing::debug!(
                target: "minikv::pd",
                "pd {}: {} TSO requests fail: {e}",
                self.config.node_id,
                valid.len()
            ),
        }
        match result {
            Ok(first) => {
                let mut next = first.0;
                for (pending, count) in &valid {
                    let response = PdResponse::Tso { first: Timestamp(next), count: *count };
                    next += u64::from(*count);
                    self.reply(pending, response);
                }
            }
            Err(error) => {
                for (pending, _) in &valid {
                    self.reply(pending, PdResponse::Error(error.clone()));
                }
            }
        }
    }

    /// The first of `count` consecutive timestamps (`first.0 + k`: a logical counter that
    /// passes its 18 bits carries into the milliseconds, which the plan kept below the bound).
    async fn allocate_tso(&mut self, count: u32) -> Result<Timestamp, PdError> {
        for _ in 0..3 {
            if !(canary(Canary::TsoTrustsItsCache) && self.tso.owned_bound_ms().is_some()) {
                match self.storage.tso_bound().await {
                    Ok(stored) => self.tso.observe(stored),
                    Err(e) => {
                        self.tso.forget();
                        return Err(e.into());
                    }
                }
            }
            match self.tso.plan(self.clock.now_ms(), count) {
                Plan::Serve { first } => return Ok(first),
                Plan::Raise { expected, new_bound_ms } => {
                    tracing::debug!(
                        target: "minikv::pd",
                        "pd {}: raise the TSO bound from {expected:?} to {new_bound_ms}",
                        self.config.node_id
                    );
                    match self.storage.swap_tso_bound(expected, new_bound_ms).await {
                        Ok(Swap::Done) => {
                            probe(Probe::PdTsoBoundRaised);
                            self.tso.raised(new_bound_ms);
                        }
                        Ok(Swap::Lost { found }) => {
                            tracing::debug!(
                                target: "minikv::pd",
                                "pd {}: the TSO bound holds {found:?}",
                                self.config.node_id
                            );
                            probe(Probe::PdTsoBoundLost);
                            self.tso.observe(found);
                        }
                        Err(e) => {
                            self.tso.forget();
                            return Err(e.into());
                        }
                    }
                }
            }
        }
        Err(PdError::Unavailable { reason: "the TSO bound kept moving".into() })
    }

    async fn serve_one(&mut self, request: PdRequest) -> PdResponse {
        let now_ms = self.clock.now_ms();
        self.meta.serve(&mut self.storage, request, now_ms).await.unwrap_or_else(PdResponse::Error)
    }
}

fn spawn_receiver(endpoint: Endpoint, tx: mpsc::UnboundedSender<Pending>) {
    drop(madsim::task::spawn(async move {
        let inbox = Inbox::new(TAG_PD_REQUEST, MAX_MESSAGE_BYTES);
        loop {
            let Ok((envelope, from)) = inbox.recv::<PdRequestEnvelope>(&endpoint).await else {
                return;
            };
            let Ok(envelope) = envelope else { continue };
            let pending =
                Pending { request_id: envelope.request_id, from, request: envelope.request };
            if tx.send(pending).is_err() {
                return;
            }
        }
    }));
}
