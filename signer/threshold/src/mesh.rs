//! The transport between share processes: a full mesh of mutually authenticated TLS
//! connections, one gRPC `Deliver` call per protocol message, straight from the sending
//! share to the receiving one.
//!
//! Why a mesh and not a star through the coordinator: CGGMP21's peer-to-peer messages carry
//! Paillier ciphertexts and secret-share material meant for one party only. Sent share to
//! share over TLS, no third process ever holds them, so there is no end-to-end encryption
//! layer of our own to get right, and the coordinator (which faces Zone B) stays out of the
//! protocol entirely. Three shares make three connections; the cost of a mesh only shows at
//! sizes a 2-of-3 key never has. Each message is authenticated by the TLS session it arrives
//! on: the receiving share maps the client certificate to the sender's index itself, so a
//! share cannot speak for another.
//!
//! `round-based` wants a stream of incoming messages and a sink of outgoing ones per protocol
//! run. Incoming messages are routed by session (kind + ceremony or presignature id) into a
//! bounded queue; a queue is created by whichever comes first, the local start of the session
//! or a peer's first message, so a fast peer's messages wait instead of being lost. Unclaimed
//! queues are dropped after [`ORPHAN_TTL`], and at most [`MAX_SLOTS`] exist at once.
//!
//! The protocols are CPU-heavy (Paillier arithmetic, zero-knowledge proofs), so each runs on
//! a blocking-pool thread, never on an async worker where it would stall signing requests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cggmp21::round_based::{
    Incoming, MessageDestination, MessageType, MpcParty, Outgoing, PartyIndex,
};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::error::ThresholdError;
use crate::proto::threshold_share_client::ThresholdShareClient;
use crate::proto::{ProtocolMessage, SessionKind};

/// Unclaimed session queues older than this are dropped.
pub(crate) const ORPHAN_TTL: Duration = Duration::from_secs(120);
/// Most session queues at once.
pub(crate) const MAX_SLOTS: usize = 256;
/// Messages buffered per session.
const SLOT_CAPACITY: usize = 512;
/// One `Deliver` call.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(20);
const DELIVER_ATTEMPTS: u32 = 5;

type SessionKey = (i32, Vec<u8>);

struct Raw {
    from: u16,
    broadcast: bool,
    payload: Vec<u8>,
}

struct Slot {
    tx: mpsc::Sender<Raw>,
    rx: Option<mpsc::Receiver<Raw>>,
    created: Instant,
}

/// Errors a protocol run sees from the transport.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("message from share {0}, which is not in this session")]
    Stranger(u16),
    #[error("undecodable message from share {from}: {detail}")]
    Decode { from: u16, detail: String },
}

type IncomingStream<M> = Pin<Box<dyn Stream<Item = Result<Incoming<M>, TransportError>> + Send>>;
/// The party handed to a cggmp21 protocol.
pub(crate) type Party<M> = MpcParty<
    M,
    (
        IncomingStream<M>,
        futures::channel::mpsc::UnboundedSender<Outgoing<M>>,
    ),
>;

/// One share's end of the mesh.
pub(crate) struct Mesh {
    me: u16,
    peers: HashMap<u16, ThresholdShareClient<Channel>>,
    slots: Mutex<HashMap<SessionKey, Slot>>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Mesh {
    pub(crate) fn new(me: u16, peers: HashMap<u16, ThresholdShareClient<Channel>>) -> Self {
        Mesh {
            me,
            peers,
            slots: Mutex::new(HashMap::new()),
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    /// Ends every running session (the process is shutting down): a session whose peer
    /// went away would otherwise hold its RPC, and so the server's graceful shutdown, until
    /// its timeout.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// A message that share `from` (authenticated by its TLS certificate) sent us.
    pub(crate) fn accept(&self, from: u16, msg: ProtocolMessage) -> Result<(), tonic::Status> {
        let key = (msg.kind, msg.session_id);
        let raw = Raw {
            from,
            broadcast: msg.broadcast,
            payload: msg.payload,
        };
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| tonic::Status::internal("session table poisoned"))?;
        if !slots.contains_key(&key) {
            let now = Instant::now();
            slots.retain(|_, s| s.rx.is_none() || now.duration_since(s.created) < ORPHAN_TTL);
            if slots.len() >= MAX_SLOTS {
                return Err(tonic::Status::resource_exhausted(
                    "too many protocol sessions waiting",
                ));
            }
            let (tx, rx) = mpsc::channel(SLOT_CAPACITY);
            slots.insert(
                key.clone(),
                Slot {
                    tx,
                    rx: Some(rx),
                    created: now,
                },
            );
        }
        let slot = slots
            .get(&key)
            .ok_or_else(|| tonic::Status::internal("session vanished"))?;
        slot.tx.try_send(raw).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                tonic::Status::resource_exhausted("session queue full")
            }
            mpsc::error::TrySendError::Closed(_) => {
                tonic::Status::failed_precondition("session already ended")
            }
        })
    }

    fn open(&self, key: &SessionKey) -> Result<mpsc::Receiver<Raw>, ThresholdError> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| ThresholdError::Config("session table poisoned".into()))?;
        let slot = slots.entry(key.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(SLOT_CAPACITY);
            Slot {
                tx,
                rx: Some(rx),
                created: Instant::now(),
            }
        });
        slot.rx.take().ok_or_else(|| ThresholdError::Protocol {
            protocol: "session",
            detail: "this session is already running here".into(),
        })
    }

    fn close(&self, key: &SessionKey) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(key);
        }
    }

    async fn deliver(&self, to: u16, msg: ProtocolMessage) -> Result<(), ThresholdError> {
        let client = self
            .peers
            .get(&to)
            .ok_or_else(|| ThresholdError::Config(format!("no connection to share {to}")))?;
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let mut request = tonic::Request::new(msg.clone());
            request.set_timeout(DELIVER_TIMEOUT);
            match client.clone().deliver(request).await {
                Ok(_) => return Ok(()),
                Err(status)
                    if attempt < DELIVER_ATTEMPTS
                        && matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ) =>
                {
                    tracing::debug!(to, attempt, %status, "deliver retry");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(status) => return Err(ThresholdError::share(to, status)),
            }
        }
    }

    /// Runs one protocol session among `parties` (keygen indices; a party's position in this
    /// list is its index in the session), this share being one of them. `protocol` builds the
    /// cggmp21 future from the connected party and runs on a blocking-pool thread.
    pub(crate) async fn run<M, T, E, F, Fut>(
        self: &Arc<Self>,
        kind: SessionKind,
        session_id: &[u8],
        parties: &[u16],
        timeout: Duration,
        name: &'static str,
        protocol: F,
    ) -> Result<T, ThresholdError>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
        T: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: FnOnce(Party<M>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        if !parties.contains(&self.me) {
            return Err(ThresholdError::Config(format!(
                "share {} is not among the session's parties {parties:?}",
                self.me
            )));
        }
        let key: SessionKey = (kind as i32, session_id.to_vec());
        let rx = self.open(&key)?;
        let order = parties.to_vec();
        let incoming: IncomingStream<M> = Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .enumerate()
                .map(move |(n, raw)| decode_incoming(&order, n, raw)),
        );
        let (out_tx, out_rx) = futures::channel::mpsc::unbounded::<Outgoing<M>>();
        let forwarder = tokio::spawn(forward(
            Arc::clone(self),
            kind,
            key.clone(),
            parties.to_vec(),
            out_rx,
        ));
        let party = MpcParty::connected((incoming, out_tx));
        let handle = tokio::runtime::Handle::current();
        let job = tokio::task::spawn_blocking(move || handle.block_on(protocol(party)));
        let mut stopping = self.stopping.subscribe();
        let outcome = tokio::select! {
            joined = tokio::time::timeout(timeout, job) => joined,
            _ = stopping.wait_for(|stop| *stop) => {
                self.close(&key);
                forwarder.abort();
                return Err(ThresholdError::Protocol {
                    protocol: name,
                    detail: "the share process is shutting down".into(),
                });
            }
        };
        let result = match outcome {
            Err(_) => {
                self.close(&key);
                forwarder.abort();
                return Err(ThresholdError::Timeout(format!(
                    "{name} session after {timeout:?}"
                )));
            }
            Ok(Err(join)) => Err(ThresholdError::Protocol {
                protocol: name,
                detail: format!("protocol task failed: {join}"),
            }),
            Ok(Ok(Err(e))) => Err(ThresholdError::Protocol {
                protocol: name,
                detail: crate::error::chain(&e),
            }),
            Ok(Ok(Ok(value))) => Ok(value),
        };
        // Our last messages may still be in flight to peers that need them to finish.
        let forwarded = tokio::time::timeout(DELIVER_TIMEOUT * DELIVER_ATTEMPTS, forwarder).await;
        self.close(&key);
        match (result, forwarded) {
            (Ok(value), Ok(Ok(Ok(())))) => Ok(value),
            (_, Ok(Ok(Err(send)))) => Err(send),
            (Err(e), _) => Err(e),
            (Ok(_), Ok(Err(join))) => Err(ThresholdError::Protocol {
                protocol: name,
                detail: format!("forwarding task failed: {join}"),
            }),
            (Ok(_), Err(_)) => Err(ThresholdError::Timeout(format!(
                "{name} delivering the last messages"
            ))),
        }
    }
}

fn decode_incoming<M: DeserializeOwned>(
    order: &[u16],
    n: usize,
    raw: Raw,
) -> Result<Incoming<M>, TransportError> {
    let sender = order
        .iter()
        .position(|p| *p == raw.from)
        .and_then(|p| PartyIndex::try_from(p).ok())
        .ok_or(TransportError::Stranger(raw.from))?;
    let msg: M =
        ciborium::from_reader(raw.payload.as_slice()).map_err(|e| TransportError::Decode {
            from: raw.from,
            detail: e.to_string(),
        })?;
    Ok(Incoming {
        id: n as u64,
        sender,
        msg_type: if raw.broadcast {
            MessageType::Broadcast
        } else {
            MessageType::P2P
        },
        msg,
    })
}

/// Sends what the local protocol emits, in order, to the session's other parties. A message
/// that cannot be delivered ends the session here (its queue is closed, so the protocol sees
/// the end of its input at once instead of waiting for a timeout).
async fn forward<M: Serialize>(
    mesh: Arc<Mesh>,
    kind: SessionKind,
    key: SessionKey,
    parties: Vec<u16>,
    mut out: futures::channel::mpsc::UnboundedReceiver<Outgoing<M>>,
) -> Result<(), ThresholdError> {
    while let Some(message) = out.next().await {
        let mut payload = Vec::new();
        ciborium::into_writer(&message.msg, &mut payload)
            .map_err(|e| ThresholdError::format("outgoing protocol message", e))?;
        let (broadcast, targets): (bool, Vec<u16>) = match message.recipient {
            MessageDestination::AllParties => (
                true,
                parties.iter().copied().filter(|p| *p != mesh.me).collect(),
            ),
            MessageDestination::OneParty(j) => match parties.get(usize::from(j)) {
                Some(p) => (false, vec![*p]),
                None => {
                    mesh.close(&key);
                    return Err(ThresholdError::Protocol {
                        protocol: "transport",
                        detail: format!("message for session party {j}, which does not exist"),
                    });
                }
            },
        };
        for to in targets {
            let msg = ProtocolMessage {
                kind: kind as i32,
                session_id: key.1.clone(),
                broadcast,
                payload: payload.clone(),
            };
            if let Err(e) = mesh.deliver(to, msg).await {
                mesh.close(&key);
                return Err(e);
            }
        }
    }
    Ok(())
}
