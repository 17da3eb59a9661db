//! A node: one `Store` and its RPC surface, driven by one event loop. The loop ticks the store
//! on the node's clock, feeds it Raft messages and client requests, runs its Readies, sends
//! what it produced (fire-and-forget: a lost Raft message is Raft's problem) and answers
//! clients from `take_responses`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use madsim::time::Instant;
use minikv_engine::Engine;
use minikv_hooks::{Canary, Probe, canary, probe};
use minikv_proto::errorpb::RegionError;
use minikv_proto::kvrpc::{
    KvRequest, KvRequestEnvelope, KvResponse, KvResponseEnvelope, RaftMessageBatch, TAG_KV_REQUEST,
    TAG_KV_RESPONSE, TAG_RAFT,
};
use minikv_proto::metapb::{Region, StoreId};
use minikv_proto::raft_serverpb::RaftMessage;
use minikv_raftstore::{ReqToken, Store, StoreConfig};
use minikv_runtime::Alarm;
use minikv_runtime::Clock;
use minikv_runtime::net::{Endpoint, Inbox, MAX_MESSAGE_BYTES, WireMessage, send_msg};
use tokio::sync::mpsc;

use crate::batch;
use crate::config::NodeConfig;
use crate::convert::{Expect, to_command, to_response};
use crate::error::{Error, Result};
use crate::message_faults;
use crate::probe::NodeProbe;

/// The client command a store panics on under the `store-panic` canary.
const STORE_PANIC_CANARY_REQUEST: u64 = 50;

/// What the receiver tasks hand to the loop.
#[derive(Debug)]
enum Event {
    Raft(RaftMessageBatch),
    Kv(KvRequestEnvelope, SocketAddr),
}

/// A client request waiting for the store's answer.
#[derive(Debug)]
struct Waiting {
    from: SocketAddr,
    request_id: u64,
    expect: Expect,
}

/// A store with its endpoint, ready to run.
pub struct Node {
    config: NodeConfig,
    store: Store,
    clock: Clock,
    endpoint: Endpoint,
    probe: NodeProbe,
    waiting: BTreeMap<ReqToken, Waiting>,
    /// The send queue of Raft messages to each store (see `spawn_sender`).
    raft_queues: BTreeMap<StoreId, mpsc::UnboundedSender<RaftMessageBatch>>,
    /// When the next tick is due on the node's clock.
    tick_due_ms: u64,
    /// The clock's last reading (a lower one means it jumped back).
    last_clock_ms: u64,
    /// The clock jumped back: the loop schedules the next tick from now.
    reschedule_ticks: bool,
    next_token: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the store on `engine` (recovering whatever its disk holds), bootstraps `bootstrap`
    /// if given and the store hosts no region yet, and binds the endpoint.
    pub async fn start(
        config: NodeConfig,
        engine: Arc<Engine>,
        clock: Clock,
        probe: NodeProbe,
        bootstrap: Option<Region>,
    ) -> Result<Node> {
        let store_id = config.store_id;
        check_message_bounds(&config.store)?;
        let mut store = Store::open(store_id, engine.clone(), config.store.clone()).inspect_err(
            |e| tracing::info!(target: "minikv::trace", "store {store_id}: cannot open: {e}"),
        )?;
        let recovered: Vec<String> = store
            .region_ids()
            .into_iter()
            .filter_map(|id| store.peer_status(id))
            .map(|s| format!("region {} applied {}", s.region.id, s.applied_index))
            .collect();
        let mut bootstrapped = None;
        if let Some(region) = bootstrap
            && store.region_ids().is_empty()
            && !store.is_tombstone(region.id)
        {
            bootstrapped = Some(region.id);
            store.bootstrap_first_region(region)?;
        }
        match bootstrapped {
            Some(id) => tracing::info!(
                target: "minikv::trace",
                "node started: store {store_id}, bootstrapped region {id}"
            ),
            None => tracing::info!(
                target: "minikv::trace",
                "node started: store {store_id}, recovered [{}]",
                recovered.join(", ")
            ),
        }
        let endpoint = Endpoint::bind(config.listen_addr)
            .await
            .map_err(|e| Error::Transport(format!("bind {}: {e}", config.listen_addr)))?;
        probe.update(|p| p.engine = Some(engine));
        Ok(Node {
            config,
            store,
            clock,
            endpoint,
            probe,
            waiting: BTreeMap::new(),
            raft_queues: BTreeMap::new(),
            next_token: 1,
            tick_due_ms: 0,
            last_clock_ms: 0,
            reschedule_ticks: false,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the event loop until the store fails (then the node must be restarted from its
    /// disk). Never returns `Ok` in normal operation.
    pub async fn run(self) -> Result<()> {
        let store_id = self.config.store_id;
        let result = self.run_loop().await;
        match &result {
            Ok(()) => tracing::info!(target: "minikv::trace", "node stopping: store {store_id}"),
            Err(e) => {
                tracing::info!(target: "minikv::trace", "node stopping: store {store_id}: {e}")
            }
        }
        result
    }

    async fn run_loop(mut self) -> Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(self.config.receive_tasks_per_tag > 0, "receive_tasks_per_tag must be positive");
        for _ in 0..self.config.receive_tasks_per_tag {
            for tag in [TAG_RAFT, TAG_KV_REQUEST] {
                spawn_receiver(self.endpoint.clone(), tag, tx.clone());
            }
        }
        drop(tx);
        let tick_ms = self.config.tick_interval_ms;
        assert!(tick_ms > 0, "tick_interval_ms must be positive");
        let mut next_tick_ms = self.clock.now_ms() + tick_ms;
        self.tick_due_ms = next_tick_ms;
        // One alarm for the next tick and one for the gathering window: sharing one, each
        // window's nearer deadline would make the tick's timer be armed again after it.
        let (mut tick_alarm, mut gather_alarm) = (Alarm::default(), Alarm::default());
        loop {
            let now = self.clock.now_ms();
            self.check_missed_ticks();
            if std::mem::take(&mut self.reschedule_ticks) {
                next_tick_ms = now + tick_ms;
                self.tick_due_ms = next_tick_ms;
            }
            if now >= next_tick_ms {
                self.store.tick();
                self.publish_tick();
                // A clock that jumped ahead gets one tick, not a burst.
                next_tick_ms = (next_tick_ms + tick_ms).max(now + 1);
                self.tick_due_ms = next_tick_ms;
            } else {
                // The same instant for every wait on this tick: one timer per tick.
                let tick_at = self.clock.instant_at_ms(next_tick_ms);
                match tick_alarm.race(tick_at, rx.recv()).await {
                    Some(Some(event)) => {
                        self.on_event(event)?;
                        self.gather(&mut rx, &mut gather_alarm, tick_at).await?;
                    }
                    Some(None) => return Ok(()),
                    None => {}
                }
                // Take everything already queued before running Readies: one synced write
                // covers them all.
                while let Ok(event) = rx.try_recv() {
                    self.on_event(event)?;
                }
            }
            self.drive()?;
        }
    }

    /// Keeps taking events for `ready_batch_window_ms` of runtime time from the first one
    /// (never past the next tick, due at `tick_at`), so that the Readies they cause are handled
    /// together.
    async fn gather(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        alarm: &mut Alarm,
        tick_at: Instant,
    ) -> Result<()> {
        let window = Duration::from_millis(self.config.ready_batch_window_ms);
        if window.is_zero() {
            return Ok(());
        }
        // One fixed deadline for the whole window: one timer, however many events come.
        let until = (self.clock.now_instant() + window).min(tick_at);
        while self.clock.now_instant() < until {
            match alarm.race(until, rx.recv()).await {
                Some(Some(event)) => self.on_event(event)?,
                Some(None) | None => return Ok(()),
            }
        }
        Ok(())
    }

    /// A whole tick interval past the due tick means ticks were missed (a pause, a stalled
    /// loop, a clock jump ahead); a reading below the last one means the clock jumped back,
    /// and the ticks would stall until it caught up. Either way leases counted in ticks cannot
    /// be trusted, so they end (and after a jump back the ticks are rescheduled from now).
    /// Checked before any event, so that a read arriving right after a pause is not served
    /// from one.
    fn check_missed_ticks(&mut self) {
        let now = self.clock.now_ms();
        let jumped_back = now < self.last_clock_ms;
        self.last_clock_ms = now;
        if jumped_back {
            probe(Probe::StoreClockJumpedBack);
            self.reschedule_ticks = true;
        }
        if jumped_back || now >= self.tick_due_ms + self.config.tick_interval_ms {
            self.store.expire_leases();
        }
    }

    fn on_event(&mut self, event: Event) -> Result<()> {
        self.check_missed_ticks();
        match event {
            Event::Raft(batch) => {
                let n = batch.messages.len() as u64;
                self.probe.update(|p| p.raft_messages_received += n);
                for msg in batch.messages {
                    self.store.on_raft_message(msg)?;
                }
            }
            Event::Kv(envelope, from) => self.on_kv_request(envelope, from),
        }
        Ok(())
    }

    fn on_kv_request(&mut self, envelope: KvRequestEnvelope, from: SocketAddr) {
        let KvRequestEnvelope { request_id, context, request } = envelope;
        if let KvRequest::LocateKey { key } = &request {
            let response = self.locate(key);
            self.reply(from, request_id, response);
            return;
        }
        if self.waiting.len() >= self.config.max_pending_requests {
            self.probe.update(|p| p.busy_rejections += 1);
            let reason = format!("{} client requests pending", self.waiting.len());
            self.reply(
                from,
                request_id,
                KvResponse::RegionError(RegionError::ServerIsBusy { reason }),
            );
            return;
        }
        let Some((cmd, expect)) = to_command(&context, request) else {
            unreachable!("LocateKey is answered above");
        };
        if cmd.requests.is_empty() && cmd.admin.is_none() {
            let response = to_response(Default::default(), &expect);
            self.reply(from, request_id, response);
            return;
        }
        let token = ReqToken(self.next_token);
        self.next_token += 1;
        if token.0 == STORE_PANIC_CANARY_REQUEST && canary(Canary::StorePanic) {
            panic!(
                "canary: store {} panics on its client command {}",
                self.config.store_id, token.0
            );
        }
        match self.store.propose(cmd, token) {
            Ok(()) => {
                self.waiting.insert(token, Waiting { from, request_id, expect });
            }
            Err(e) => self.reply(from, request_id, KvResponse::RegionError(e)),
        }
    }

    /// The region holding `key` on this store and its leader, as this store knows them.
    fn locate(&self, key: &[u8]) -> KvResponse {
        for region_id in self.store.region_ids() {
            let Some(status) = self.store.peer_status(region_id) else { continue };
            if !status.region.contains_key(key) || status.region.peers.is_empty() {
                continue;
            }
            let leader = status.region.peers.iter().find(|p| p.id == status.leader_id).cloned();
            return KvResponse::Located { region: status.region, leader };
        }
        KvResponse::RegionError(RegionError::RegionNotFound { region_id: 0 })
    }

    /// Runs Readies until none is left, then sends messages and answers.
    fn drive(&mut self) -> Result<()> {
        if self.store.is_poisoned() {
            return Err(minikv_raftstore::Error::Poisoned.into());
        }
        while self.store.has_ready() {
            self.store.handle_ready()?;
        }
        let outbound = self.store.take_outbound();
        if !outbound.is_empty() {
            self.send_raft(outbound);
        }
        for (token, response) in self.store.take_responses() {
            // Answers to requests not from clients (none yet) have no waiter.
            let Some(w) = self.waiting.remove(&token) else { continue };
            let response = to_response(response, &w.expect);
            self.reply(w.from, w.request_id, response);
        }
        Ok(())
    }

    fn send_raft(&mut self, outbound: Vec<RaftMessage>) {
        let (outbound, late) = message_faults::apply(self.config.store_id, outbound);
        for (delay_ms, msg) in late {
            let store_id = msg.to_peer.store_id;
            let Some(queue) = self.raft_queue(store_id).cloned() else { continue };
            drop(madsim::task::spawn(async move {
                madsim::time::sleep(Duration::from_millis(delay_ms)).await;
                let _ = queue.send(RaftMessageBatch { messages: vec![msg] });
            }));
        }
        let mut by_store: BTreeMap<StoreId, Vec<RaftMessage>> = BTreeMap::new();
        for msg in outbound {
            by_store.entry(msg.to_peer.store_id).or_default().push(msg);
        }
        let mut batches = 0;
        let mut largest_batch_bytes = 0;
        let by_store = by_store.into_iter().flat_map(|(store_id, messages)| {
            batch::split(messages, MAX_MESSAGE_BYTES).into_iter().map(move |b| (store_id, b))
        });
        for (store_id, (messages, bytes)) in by_store {
            largest_batch_bytes = largest_batch_bytes.max(bytes);
            let Some(queue) = self.raft_queue(store_id) else { continue };
            // The sender is gone only with the node itself: the message is lost, as it would be.
            let _ = queue.send(RaftMessageBatch { messages });
            batches += 1;
        }
        self.probe.update(|p| {
            p.raft_batches_sent += batches;
            p.largest_raft_batch_bytes = p.largest_raft_batch_bytes.max(largest_batch_bytes);
        });
    }

    /// The queue of Raft batches bound for `store_id` (its sender task started on first use);
    /// `None` for a store this node does not know.
    fn raft_queue(
        &mut self,
        store_id: StoreId,
    ) -> Option<&mpsc::UnboundedSender<RaftMessageBatch>> {
        let addr = self.config.stores.get(&store_id).copied()?;
        let endpoint = &self.endpoint;
        let queue = self.raft_queues.entry(store_id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            spawn_sender(endpoint.clone(), addr, TAG_RAFT, rx);
            tx
        });
        Some(queue)
    }

    fn reply(&mut self, to: SocketAddr, request_id: u64, response: KvResponse) {
        send_reply(self.endpoint.clone(), to, KvResponseEnvelope { request_id, response });
        self.probe.update(|p| p.requests_answered += 1);
    }

    fn publish_tick(&self) {
        let store = &self.store;
        self.probe.update(|p| {
            p.ticks += 1;
            p.peers.clear();
            for region_id in store.region_ids() {
                if let Some(status) = store.peer_status(region_id) {
                    let span = status.applied_index.saturating_sub(status.truncated_index);
                    p.max_applied_minus_truncated = p.max_applied_minus_truncated.max(span);
                    p.peers.insert(region_id, status);
                }
            }
        });
    }
}

/// Sends what arrives on `rx` to `to`, one message after another, like a connection's send
/// queue; the loop only queues, so it never blocks on a slow or dead peer. Raft traffic to each
/// store goes through one of these: a task per message would cost madsim a task allocation and
/// record for each.
fn spawn_sender<T: WireMessage>(
    endpoint: Endpoint,
    to: SocketAddr,
    tag: u64,
    mut rx: mpsc::UnboundedReceiver<T>,
) {
    drop(madsim::task::spawn(async move {
        while let Some(msg) = rx.recv().await {
            // A failed send is a lost message; Raft deals with it.
            let _ = send_msg(&endpoint, to, tag, msg).await;
        }
    }));
}

/// Sends without waiting: the loop must not block on a slow or dead peer.
/// Answers a client without waiting: the loop must not block on a slow or dead client. An
/// answer too big for a message (only a read answers with data: a scan page, a batch get)
/// becomes an error that says so, and the read fails; a smaller page would fit.
fn send_reply(endpoint: Endpoint, to: SocketAddr, envelope: KvResponseEnvelope) {
    drop(madsim::task::spawn(async move {
        let request_id = envelope.request_id;
        // A failed send is a lost message; the client's deadline deals with it.
        let Err(e) = send_msg(&endpoint, to, TAG_KV_RESPONSE, envelope).await else { return };
        if e.kind() == std::io::ErrorKind::InvalidInput {
            let response = KvResponse::Other(format!("the response is {e}; ask for less"));
            let refusal = KvResponseEnvelope { request_id, response };
            let _ = send_msg(&endpoint, to, TAG_KV_RESPONSE, refusal).await;
        }
    }));
}

/// Receives messages with `tag` forever and forwards them to the loop. Runs in its own task
/// so that no message is lost to a cancelled receive. Messages over `MAX_MESSAGE_BYTES` or
/// that do not decode are dropped.
fn spawn_receiver(endpoint: Endpoint, tag: u64, tx: mpsc::UnboundedSender<Event>) {
    drop(madsim::task::spawn(async move {
        let inbox = Inbox::new(tag, MAX_MESSAGE_BYTES);
        loop {
            let event = if tag == TAG_RAFT {
                let Ok((batch, _)) = inbox.recv::<RaftMessageBatch>(&endpoint).await else {
                    return;
                };
                let Ok(batch) = batch else { continue };
                Event::Raft(batch)
            } else {
                let Ok((envelope, from)) = inbox.recv::<KvRequestEnvelope>(&endpoint).await else {
                    return;
                };
                let Ok(envelope) = envelope else { continue };
                Event::Kv(envelope, from)
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    }));
}

/// Refuses a store configuration under which a message the store makes might not fit in
/// `MAX_MESSAGE_BYTES`: an Append carries entries up to `max_size_per_msg_bytes`, or one entry
/// of up to `raft_entry_max_size_bytes`, and encodes in at most about 1.3 times their counted
/// size (`Entry::size_bytes` counts 24 bytes of header, the encoding takes up to 31); a
/// snapshot chunk carries `snapshot_chunk_size_bytes`. Each gets twice its payload, plus room
/// for the message around it.
fn check_message_bounds(store: &StoreConfig) -> Result<()> {
    const MESSAGE_HEADROOM_BYTES: u64 = 64 << 10;
    let limit = MAX_MESSAGE_BYTES as u64;
    let payloads = [
        ("max_size_per_msg_bytes", store.max_size_per_msg_bytes),
        ("raft_entry_max_size_bytes", store.raft_entry_max_size_bytes),
        ("snapshot_chunk_size_bytes", store.snapshot_chunk_size_bytes as u64),
    ];
    for (field, bytes) in payloads {
        if bytes.saturating_mul(2).saturating_add(MESSAGE_HEADROOM_BYTES) > limit {
            return Err(Error::Config(format!(
                "store.{field} = {bytes}: messages carrying that much may not fit in the \
                 {limit}-byte message limit (at most {} allowed)",
                (limit - MESSAGE_HEADROOM_BYTES) / 2
            )));
        }
    }
    Ok(())
}
