//! A scripted store for client tests: it answers each request from a script, optionally
//! after sending stale or undecodable responses first.
#![allow(dead_code)] // each test file uses part of the kit

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minikv_client::{ClientConfig, RawClient};
use minikv_proto::kvrpc::{
    KvRequestEnvelope, KvResponse, KvResponseEnvelope, TAG_KV_REQUEST, TAG_KV_RESPONSE,
};
use minikv_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};
use minikv_runtime::Clock;
use minikv_runtime::net::{Inbox, send_msg};

pub const STORE_ADDR: &str = "10.0.0.1:20160";

/// Answers each request from what the store has seen so far (`log`, this request last).
pub type Script = Box<dyn FnMut(&[KvRequestEnvelope]) -> KvResponse + Send>;

pub fn peer(id: u64) -> Peer {
    Peer { id, store_id: 1, role: PeerRole::Voter }
}

/// Region 1 over every key at `conf_ver`, with peers `ids` (all on store 1).
pub fn region(conf_ver: u64, ids: &[u64]) -> Region {
    Region {
        id: 1,
        start_key: vec![],
        end_key: vec![],
        epoch: RegionEpoch { conf_ver, version: 1 },
        peers: ids.iter().map(|id| peer(*id)).collect(),
    }
}

/// What the store sends before it answers a request (`Noise` picks it per request).
#[derive(Debug, Clone)]
pub enum Extra {
    /// An answer under another request id (an earlier, abandoned request's).
    Stale(KvResponse),
    /// Bytes that decode as no response.
    Garbage(Vec<u8>),
}

/// The extras to send before answering a request.
pub type Noise = Box<dyn FnMut(&KvRequestEnvelope) -> Vec<Extra> + Send>;

async fn serve(mut script: Script, mut noise: Noise, log: Arc<Mutex<Vec<KvRequestEnvelope>>>) {
    let endpoint = minikv_runtime::net::Endpoint::bind(STORE_ADDR).await.expect("store binds");
    let inbox = Inbox::new(TAG_KV_REQUEST, 1 << 16);
    loop {
        let (request, from) = inbox.recv::<KvRequestEnvelope>(&endpoint).await.expect("recv");
        let request = request.expect("a request");
        let response = {
            let mut log = log.lock().unwrap();
            log.push(request.clone());
            script(&log)
        };
        let extras = noise(&request);
        for extra in extras.clone() {
            match extra {
                Extra::Stale(response) => {
                    let stale =
                        KvResponseEnvelope { request_id: request.request_id + 1000, response };
                    send_msg(&endpoint, from, TAG_KV_RESPONSE, stale).await.expect("send");
                }
                Extra::Garbage(bytes) => {
                    endpoint
                        .send_to_raw(from, TAG_KV_RESPONSE, Box::new(bytes))
                        .await
                        .expect("send");
                }
            }
        }
        if !extras.is_empty() {
            // Messages are reordered in flight: the answer leaves after the extras arrived.
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        let envelope = KvResponseEnvelope { request_id: request.request_id, response };
        send_msg(&endpoint, from, TAG_KV_RESPONSE, envelope).await.expect("send");
    }
}

/// Starts the scripted store, runs `body` with a client on another node, and returns what
/// `body` returned and every request the store saw.
pub async fn with_store<T, F, Fut>(script: Script, body: F) -> (T, Vec<KvRequestEnvelope>)
where
    T: Send + 'static,
    F: FnOnce(RawClient) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    with_noisy_store(script, Box::new(|_| Vec::new()), body).await
}

/// `with_store`, with `noise` sent before each answer.
pub async fn with_noisy_store<T, F, Fut>(
    script: Script,
    noise: Noise,
    body: F,
) -> (T, Vec<KvRequestEnvelope>)
where
    T: Send + 'static,
    F: FnOnce(RawClient) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    let handle = madsim::runtime::Handle::current();
    let log = Arc::new(Mutex::new(Vec::new()));
    let store = handle.create_node().name("store").ip("10.0.0.1".parse().unwrap()).build();
    store.spawn(serve(script, noise, log.clone()));
    let client = handle.create_node().name("client").ip("10.0.0.2".parse().unwrap()).build();
    let addr: SocketAddr = STORE_ADDR.parse().unwrap();
    let config = ClientConfig::new(BTreeMap::from([(1, addr)]));
    let out = client
        .spawn(async move {
            madsim::time::sleep(Duration::from_millis(1)).await; // the store binds first
            let client = RawClient::connect(config, Clock::new(), "0.0.0.0:0").await.unwrap();
            body(client).await
        })
        .await
        .expect("the client task");
    let seen = log.lock().unwrap().clone();
    (out, seen)
}
