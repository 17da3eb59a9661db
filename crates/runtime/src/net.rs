//! The message transport nodes and clients share: tagged datagrams between socket addresses.
//!
//! Under `cfg(madsim)` it is madsim's simulated `Endpoint`. Outside simulation it is our own
//! endpoint over TCP, because madsim's std endpoint panics when a peer is down (its connect
//! and its sends `unwrap`) and keeps the dead connection, so a node that restarts is never
//! reached again. This one behaves like the simulated network: `send_to` queues a message
//! and returns (an unreachable peer is an `Err` at connect, or a lost message later), a
//! broken connection is dropped and made again on the next send, and a dropped endpoint
//! closes its listener and its connections.
//!
//! Wire format: a connection starts with the sender's listening address (u32 length, then
//! UTF-8), then carries frames of u32 length (of what follows), u64 tag, payload. Each side
//! only writes on the connections it opened, so a pair of endpoints uses up to two.
//!
//! Nodes and clients send proto values with [`send_msg`] and take them with an [`Inbox`]; only
//! the TCP endpoint turns them into bytes (see `send_msg` for why the simulated one does not).

#[cfg(madsim)]
pub use madsim::net::Endpoint;

#[cfg(not(madsim))]
pub use real::Endpoint;

use std::io;
use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest message (its encoding) that crosses the network, in simulation as over TCP:
/// `send_msg` refuses a bigger one in both, and every `Inbox` drops a bigger frame. Whatever
/// builds messages (a node's Raft batches, a scan page) keeps them under it.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// A value that crosses the network: one of the proto types.
pub trait WireMessage: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> WireMessage for T {}

/// Sends `msg` to `dst` under `tag`. `Ok` does not mean delivered. A message whose encoding
/// is over [`MAX_MESSAGE_BYTES`] is refused (`ErrorKind::InvalidInput`), in simulation too.
///
/// In simulation the value itself is the datagram, moved and never encoded: madsim carries
/// any value (its own RPC shims work the same way), the network fault model has no byte-level
/// corruption, and the codec is tested on its own (round trips of every type in
/// `minikv-proto`). Over TCP the value is encoded with the proto codec.
pub async fn send_msg<T: WireMessage>(
    endpoint: &Endpoint,
    dst: SocketAddr,
    tag: u64,
    msg: T,
) -> io::Result<()> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    #[cfg(madsim)]
    {
        let bytes = minikv_proto::encoded_len(&msg).map_err(|e| invalid(e.to_string()))?;
        check_size(bytes).map_err(invalid)?;
        endpoint.send_to_raw(dst, tag, Box::new(msg)).await
    }
    #[cfg(not(madsim))]
    {
        let bytes = minikv_proto::encode(&msg).map_err(|e| invalid(e.to_string()))?;
        check_size(bytes.len()).map_err(invalid)?;
        endpoint.send_owned_to(dst, tag, bytes).await
    }
}

/// `Err` naming the sizes if a message of `bytes` may not cross the network.
pub fn check_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_MESSAGE_BYTES {
        return Err(format!("a message of {bytes} bytes, over the limit of {MAX_MESSAGE_BYTES}"));
    }
    Ok(())
}

/// A message that arrived but is not handed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("{bytes} bytes, over the limit of {limit_bytes}")]
    TooBig { bytes: usize, limit_bytes: usize },
    #[error("undecodable ({bytes} bytes): {reason}")]
    Undecodable { bytes: usize, reason: String },
}

/// Receives the messages of one tag, typed. Over TCP a frame is decoded if it is at most
/// `limit_bytes` long; in simulation a typed value is taken as it is, and an encoded one (a
/// test's hand-made bytes) is held to the same limit and decoded.
#[derive(Debug, Clone, Copy)]
pub struct Inbox {
    tag: u64,
    limit_bytes: usize,
}

impl Inbox {
    pub fn new(tag: u64, limit_bytes: usize) -> Inbox {
        Inbox { tag, limit_bytes }
    }

    /// The next message with this inbox's tag, with its sender. `Err` only when the endpoint
    /// is gone. Cancelling it may lose the message being received, as a datagram is lost.
    pub async fn recv<T: WireMessage>(
        &self,
        endpoint: &Endpoint,
    ) -> io::Result<(Result<T, Dropped>, SocketAddr)> {
        #[cfg(madsim)]
        {
            let (payload, from) = endpoint.recv_from_raw(self.tag).await?;
            let msg = match payload.downcast::<T>() {
                Ok(msg) => Ok(*msg),
                Err(payload) => match payload.downcast::<Vec<u8>>() {
                    Ok(bytes) => decode_limited(&bytes, self.limit_bytes),
                    Err(_) => Err(Dropped::Undecodable {
                        bytes: 0,
                        reason: format!("not a {}", std::any::type_name::<T>()),
                    }),
                },
            };
            Ok((msg, from))
        }
        #[cfg(not(madsim))]
        {
            let (bytes, from) = endpoint.recv_owned_from(self.tag).await?;
            Ok((decode_limited(&bytes, self.limit_bytes), from))
        }
    }
}

fn decode_limited<T: WireMessage>(bytes: &[u8], limit_bytes: usize) -> Result<T, Dropped> {
    if bytes.len() > limit_bytes {
        return Err(Dropped::TooBig { bytes: bytes.len(), limit_bytes });
    }
    minikv_proto::decode(bytes)
        .map_err(|e| Dropped::Undecodable { bytes: bytes.len(), reason: e.to_string() })
}

#[cfg(not(madsim))]
mod real {
    use std::collections::{HashMap, VecDeque};
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, Weak};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Notify, mpsc};
    use tokio::task::JoinHandle;

    /// A message queued for one destination: its tag and payload.
    type Outgoing = (u64, Vec<u8>);
    /// A received message: its payload and sender.
    type Incoming = (Vec<u8>, SocketAddr);

    /// Largest frame accepted from a peer; a bigger one closes the connection.
    const MAX_FRAME_BYTES: usize = 64 << 20;
    /// Longest listening address a peer may announce.
    const MAX_ADDR_BYTES: usize = 256;

    /// A bound endpoint; clones share it. Dropping the last clone closes everything.
    #[derive(Clone)]
    pub struct Endpoint {
        inner: Arc<Inner>,
    }

    impl std::fmt::Debug for Endpoint {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Endpoint").field("addr", &self.inner.addr).finish_non_exhaustive()
        }
    }

    struct Inner {
        addr: SocketAddr,
        /// Outgoing connections by destination, with a number naming each connection (lookups
        /// only, never iterated).
        senders: Mutex<HashMap<SocketAddr, (u64, mpsc::UnboundedSender<Outgoing>)>>,
        next_connection: AtomicU64,
        /// Received messages by tag.
        mailbox: Mutex<HashMap<u64, VecDeque<Incoming>>>,
        arrived: Notify,
        /// The acceptor and every reader task: aborted when the endpoint goes.
        tasks: Mutex<Vec<JoinHandle<()>>>,
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            for task in lock(&self.tasks).drain(..) {
                task.abort();
            }
        }
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // A panic while holding one of these locks already failed the process.
        m.lock().expect("endpoint lock poisoned")
    }

    impl Endpoint {
        /// Listens on `addr` (port 0: an ephemeral port, see `local_addr`).
        pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> io::Result<Endpoint> {
            let listener = TcpListener::bind(addr).await?;
            let addr = listener.local_addr()?;
            let inner = Arc::new(Inner {
                addr,
                senders: Mutex::default(),
                next_connection: AtomicU64::new(0),
                mailbox: Mutex::default(),
                arrived: Notify::new(),
                tasks: Mutex::default(),
            });
            let weak = Arc::downgrade(&inner);
            let acceptor = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let Some(inner) = weak.upgrade() else { return };
                    let reader = tokio::spawn(read_connection(Arc::downgrade(&inner), stream));
                    let mut tasks = lock(&inner.tasks);
                    tasks.retain(|t| !t.is_finished());
                    tasks.push(reader);
                }
            });
            lock(&inner.tasks).push(acceptor);
            Ok(Endpoint { inner })
        }

        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.inner.addr)
        }

        /// Queues `data` for `dst`, connecting first if needed. `Ok` does not mean delivered.
        pub async fn send_to(&self, dst: SocketAddr, tag: u64, data: &[u8]) -> io::Result<()> {
            self.send_owned_to(dst, tag, data.to_vec()).await
        }

        /// [`Endpoint::send_to`] of a buffer the caller hands over.
        pub async fn send_owned_to(
            &self,
            dst: SocketAddr,
            tag: u64,
            data: Vec<u8>,
        ) -> io::Result<()> {
            let existing = lock(&self.inner.senders).get(&dst).map(|(_, tx)| tx.clone());
            let data = match existing {
                Some(tx) => match tx.send((tag, data)) {
                    Ok(()) => return Ok(()),
                    // The connection is gone: take the message back and connect again.
                    Err(mpsc::error::SendError((_, data))) => data,
                },
                None => data,
            };
            let mut stream = TcpStream::connect(dst).await?;
            stream.set_nodelay(true)?;
            let me = self.inner.addr.to_string();
            stream.write_u32(me.len() as u32).await?;
            stream.write_all(me.as_bytes()).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            tx.send((tag, data)).expect("receiver held below");
            let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
            // A connection this replaces (a concurrent connect) ends when its queue closes.
            lock(&self.inner.senders).insert(dst, (id, tx));
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(write_connection(weak, dst, id, rx, stream));
            Ok(())
        }

        /// The next message with `tag`, whole, with its sender. Cancel-safe: a message is taken
        /// only when this returns.
        pub async fn recv_owned_from(&self, tag: u64) -> io::Result<(Vec<u8>, SocketAddr)> {
            loop {
                let notified = self.inner.arrived.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(message) =
                    lock(&self.inner.mailbox).get_mut(&tag).and_then(VecDeque::pop_front)
                {
                    return Ok(message);
                }
                notified.await;
            }
        }
    }

    /// Writes queued frames until the queue closes (the endpoint dropped it, or replaced it)
    /// or the connection breaks; then forgets the connection so that the next send makes a
    /// new one.
    async fn write_connection(
        inner: Weak<Inner>,
        dst: SocketAddr,
        id: u64,
        mut rx: mpsc::UnboundedReceiver<Outgoing>,
        mut stream: TcpStream,
    ) {
        while let Some((tag, data)) = rx.recv().await {
            let ok = async {
                stream.write_u32(8 + data.len() as u32).await?;
                stream.write_u64(tag).await?;
                stream.write_all(&data).await
            }
            .await;
            if ok.is_err() {
                break;
            }
        }
        if let Some(inner) = inner.upgrade() {
            let mut senders = lock(&inner.senders);
            if senders.get(&dst).is_some_and(|(current, _)| *current == id) {
                senders.remove(&dst);
            }
        }
    }

    /// Reads the peer's address, then its frames into the mailbox, until it closes.
    async fn read_connection(inner: Weak<Inner>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let mut reader = BufReader::new(stream);
        let result: io::Result<()> = async {
            let addr_len = reader.read_u32().await? as usize;
            if addr_len > MAX_ADDR_BYTES {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "address too long"));
            }
            let mut addr = vec![0u8; addr_len];
            reader.read_exact(&mut addr).await?;
            let from: SocketAddr = std::str::from_utf8(&addr)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad address"))?;
            loop {
                let len = reader.read_u32().await? as usize;
                if !(8..=MAX_FRAME_BYTES).contains(&len) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame length"));
                }
                let tag = reader.read_u64().await?;
                let mut data = vec![0u8; len - 8];
                reader.read_exact(&mut data).await?;
                let Some(inner) = inner.upgrade() else { return Ok(()) };
                lock(&inner.mailbox).entry(tag).or_default().push_back((data, from));
                inner.arrived.notify_waiters();
            }
        }
        .await;
        // A closed or garbled connection just ends; the peer reconnects when it sends again.
        drop(result);
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::{Endpoint, MAX_MESSAGE_BYTES, send_msg};

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused_over_tcp() {
        let a = Endpoint::bind("127.0.0.1:0").await.unwrap();
        let b = Endpoint::bind("127.0.0.1:0").await.unwrap();
        let over = vec![0u8; MAX_MESSAGE_BYTES];
        let refused = send_msg(&a, b.local_addr().unwrap(), 7, over).await.expect_err("over");
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn messages_arrive_by_tag_and_a_restarted_peer_is_reached_again() {
        let a = Endpoint::bind("127.0.0.1:0").await.unwrap();
        let b = Endpoint::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        a.send_to(b_addr, 1, b"one").await.unwrap();
        a.send_to(b_addr, 2, b"two").await.unwrap();
        let (data, from) = b.recv_owned_from(2).await.unwrap();
        assert_eq!((data.as_slice(), from), (&b"two"[..], a.local_addr().unwrap()));
        let (data, _) = b.recv_owned_from(1).await.unwrap();
        assert_eq!(data, b"one");
        drop(b);
        // The peer is gone: sends fail or are lost, never panic.
        for _ in 0..3 {
            let _ = a.send_to(b_addr, 1, b"lost").await;
            tokio::task::yield_now().await;
        }
        let b = Endpoint::bind(b_addr).await.expect("the port is free again");
        let mut delivered = false;
        for _ in 0..100 {
            let _ = a.send_to(b_addr, 3, b"back").await;
            let got =
                tokio::time::timeout(std::time::Duration::from_millis(20), b.recv_owned_from(3))
                    .await;
            if let Ok(Ok((data, _))) = got {
                assert_eq!(data, b"back");
                delivered = true;
                break;
            }
        }
        assert!(delivered, "the restarted peer was never reached");
    }
}

#[cfg(all(test, madsim))]
mod sim_tests {
    use super::*;
    use minikv_proto::kvrpc::{KvResponse, KvResponseEnvelope};

    fn envelope(request_id: u64) -> KvResponseEnvelope {
        KvResponseEnvelope { request_id, response: KvResponse::Put }
    }

    #[madsim::test]
    async fn an_inbox_takes_typed_values_and_drops_what_it_cannot_take_with_a_reason() {
        let a = Endpoint::bind("127.0.0.1:1").await.unwrap();
        let b = Endpoint::bind("127.0.0.1:2").await.unwrap();
        let to = b.local_addr().unwrap();
        let inbox = Inbox::new(7, 64);
        let mut received = Vec::new();
        // A typed value, its encoding (what a test may hand-make), garbage, an encoding over
        // the limit, and a value of another type.
        send_msg(&a, to, 7, envelope(1)).await.unwrap();
        a.send_to_raw(to, 7, Box::new(minikv_proto::encode(&envelope(2)).unwrap())).await.unwrap();
        a.send_to_raw(to, 7, Box::new(vec![0xffu8; 3])).await.unwrap();
        a.send_to_raw(to, 7, Box::new(vec![0u8; 65])).await.unwrap();
        send_msg(&a, to, 7, 5u64).await.unwrap();
        for _ in 0..5 {
            let (msg, from) = inbox.recv::<KvResponseEnvelope>(&b).await.unwrap();
            assert_eq!(from, a.local_addr().unwrap());
            received.push(msg);
        }
        // Datagrams may arrive in any order.
        assert!(received.contains(&Ok(envelope(1))), "{received:?}");
        assert!(received.contains(&Ok(envelope(2))), "{received:?}");
        assert!(received.contains(&Err(Dropped::TooBig { bytes: 65, limit_bytes: 64 })));
        let undecodable: Vec<&Dropped> = received.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(undecodable.iter().any(|d| matches!(d, Dropped::Undecodable { bytes: 3, .. })));
        assert!(
            undecodable.iter().any(|d| matches!(d, Dropped::Undecodable { reason, .. }
                if reason.contains("KvResponseEnvelope"))),
            "{received:?}"
        );
    }

    #[madsim::test]
    async fn a_message_over_the_limit_is_refused_in_simulation_as_over_tcp() {
        let a = Endpoint::bind("127.0.0.1:1").await.unwrap();
        let to: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let fits = vec![0u8; MAX_MESSAGE_BYTES - 8];
        assert!(send_msg(&a, to, 7, fits).await.is_ok());
        let over = vec![0u8; MAX_MESSAGE_BYTES];
        let refused = send_msg(&a, to, 7, over).await.expect_err("over the limit");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
        assert!(refused.to_string().contains("over the limit"), "{refused}");
    }
}
