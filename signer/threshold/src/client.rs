//! The coordinator's side: what the signer service holds to sign with the threshold key.
//!
//! [`ThresholdClient`] knows the key's public data (so it derives every account's address
//! itself), keeps a pool of presignature ids per pair of shares, refilled in the background,
//! and signs a hash in one round: it sends the hash and a presignature id to both shares of a
//! pair, each answers a partial signature (which reveals nothing about its share), and the
//! client adds them up, checks the result against the account's public key and finds the
//! recovery parity. If a share does not answer, the client marks it down and uses the other
//! pair; with two shares down it refuses, and nothing is signed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cggmp21::PartialSignature;
use cggmp21::generic_ec::Scalar;
use cggmp21::supported_curves::Secp256k1;
use rand_core::{OsRng, RngCore};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::error::ThresholdError;
use crate::identity::{Cluster, Identity, SHARES, THRESHOLD};
use crate::proto;
use crate::proto::threshold_share_client::ThresholdShareClient;
use crate::public_key::PublicKeyInfo;
use crate::share::share_channel;
use crate::signature::{DerivationPath, Signature};

/// The three pairs of shares that can sign, in the order they are preferred when pools tie.
pub const PAIRS: [[u16; 2]; 3] = [[0, 1], [1, 2], [0, 2]];
/// A share marked down is tried again after this long.
const RETRY_DOWN_AFTER: Duration = Duration::from_secs(3);
const REFILL_TICK: Duration = Duration::from_secs(1);
const SIGN_ATTEMPTS: usize = 6;
const PRESIGN_RPC_TIMEOUT: Duration = Duration::from_secs(90);

/// Configuration of the coordinator's connection to the share processes; each field maps to
/// one flag of the signer service (flag in brackets).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The cluster file (`--cluster FILE`).
    pub cluster: std::path::PathBuf,
    /// The coordinator's TLS certificate, PEM (`--cert FILE`); the one the cluster pins.
    pub cert: std::path::PathBuf,
    /// The coordinator's TLS key, PEM (`--key FILE`).
    pub key: std::path::PathBuf,
    /// Presignatures to keep ready per pair of shares (`--presign-pool N`); 0 turns the
    /// background refill off (every signature then pays for a presignature first).
    pub pool_target: usize,
    /// Presignature generations run at once (`--presign-concurrency N`).
    pub presign_concurrency: usize,
    /// How long a share gets to answer an online signing call (`--share-timeout 2s`).
    pub rpc_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: pools of 64 per pair, 2 generations at once, 2 s per signing call.
    pub fn new(
        cluster: std::path::PathBuf,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    ) -> Self {
        ClientConfig {
            cluster,
            cert,
            key,
            pool_target: 64,
            presign_concurrency: 2,
            rpc_timeout: Duration::from_secs(2),
        }
    }
}

struct Health {
    down_since: Option<Instant>,
    last_error: String,
    instance: Option<String>,
}

struct ShareLink {
    index: u16,
    client: ThresholdShareClient<Channel>,
    health: Mutex<Health>,
}

impl ShareLink {
    fn usable(&self) -> bool {
        self.health
            .lock()
            .map(|h| match h.down_since {
                None => true,
                Some(since) => since.elapsed() >= RETRY_DOWN_AFTER,
            })
            .unwrap_or(false)
    }

    fn mark_down(&self, why: &str) {
        if let Ok(mut h) = self.health.lock() {
            if h.down_since.is_none() {
                tracing::warn!(
                    share = self.index,
                    reason = why,
                    "share process marked down"
                );
            }
            h.down_since = Some(Instant::now());
            h.last_error = why.to_string();
        }
    }

    fn mark_up(&self) {
        if let Ok(mut h) = self.health.lock()
            && h.down_since.take().is_some()
        {
            tracing::info!(share = self.index, "share process back");
        }
    }

    fn is_marked_down(&self) -> bool {
        self.health
            .lock()
            .map(|h| h.down_since.is_some())
            .unwrap_or(true)
    }

    fn last_error(&self) -> String {
        self.health
            .lock()
            .map(|h| h.last_error.clone())
            .unwrap_or_default()
    }
}

/// How one attempt at a pair failed.
enum Attempt {
    /// A share did not answer: try another pair.
    Down(u16, String),
    /// A share no longer holds the presignature (used, or the share restarted): try another.
    Stale(u16),
    /// Anything else: give up.
    Fatal(ThresholdError),
}

fn classify(index: u16, status: tonic::Status) -> Attempt {
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Unknown
        | tonic::Code::Cancelled => Attempt::Down(index, status.message().to_string()),
        // NotFound: the share no longer holds the presignature. Aborted: its session failed
        // because its peer was unreachable. Either way, try again elsewhere.
        tonic::Code::NotFound | tonic::Code::Aborted => Attempt::Stale(index),
        _ => Attempt::Fatal(ThresholdError::share(index, status)),
    }
}

/// The failure to act on when one or both shares of a pair failed: a share that did not
/// answer explains its partner's failure, so it comes first.
fn worse(pair: [u16; 2], a: Option<tonic::Status>, b: Option<tonic::Status>) -> Attempt {
    let a = a.map(|e| classify(pair[0], e));
    let b = b.map(|e| classify(pair[1], e));
    match (a, b) {
        (Some(down @ Attempt::Down(..)), _) | (_, Some(down @ Attempt::Down(..))) => down,
        (Some(first), _) | (None, Some(first)) => first,
        (None, None) => Attempt::Fatal(ThresholdError::Protocol {
            protocol: "sign",
            detail: "no failure to report".into(),
        }),
    }
}

struct Inner {
    shares: Vec<ShareLink>,
    info: PublicKeyInfo,
    pools: Mutex<HashMap<[u16; 2], VecDeque<[u8; 16]>>>,
    inflight: Mutex<HashMap<[u16; 2], usize>>,
    pool_target: AtomicUsize,
    concurrency: usize,
    rpc_timeout: Duration,
    wake: Notify,
    changed: watch::Sender<u64>,
}

/// The coordinator's handle on the threshold key (see the module docs).
pub struct ThresholdClient {
    inner: Arc<Inner>,
    refill: tokio::task::JoinHandle<()>,
}

impl Drop for ThresholdClient {
    fn drop(&mut self) {
        self.refill.abort();
    }
}

impl std::fmt::Debug for ThresholdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThresholdClient")
            .field("key", &hex::encode(self.inner.info.shared_public_key))
            .finish_non_exhaustive()
    }
}

impl ThresholdClient {
    /// Connects to the share processes of `config.cluster`, learns the key's public data
    /// (at least two shares must answer and every answer must agree), picks up presignatures
    /// the shares already hold, and starts the background refill.
    pub async fn connect(config: &ClientConfig) -> Result<Self, ThresholdError> {
        crate::install_crypto_provider();
        let cluster = Cluster::load(&config.cluster)?;
        let identity = Identity::load(&config.cert, &config.key)?;
        let mut shares = Vec::new();
        for index in 0..SHARES {
            shares.push(ShareLink {
                index,
                client: share_channel(&cluster, index, &identity, config.rpc_timeout)?,
                health: Mutex::new(Health {
                    down_since: None,
                    last_error: String::new(),
                    instance: None,
                }),
            });
        }
        let statuses = futures::future::join_all(
            shares
                .iter()
                .map(|s| status(s.client.clone(), config.rpc_timeout)),
        )
        .await;
        let mut info: Option<PublicKeyInfo> = None;
        let mut with_key = 0usize;
        let mut without_key = 0usize;
        let mut failures = Vec::new();
        for (link, answer) in shares.iter().zip(statuses) {
            match answer {
                Ok(reply) => {
                    if reply.index != u32::from(link.index) {
                        return Err(ThresholdError::Config(format!(
                            "the process at share {}'s address says it is share {}",
                            link.index, reply.index
                        )));
                    }
                    if let Ok(mut h) = link.health.lock() {
                        h.instance = Some(reply.instance_id.clone());
                    }
                    let Some(key) = reply.key else {
                        without_key += 1;
                        link.mark_down("holds no committed key");
                        continue;
                    };
                    let theirs = PublicKeyInfo::from_proto(&key)?;
                    match &info {
                        None => info = Some(theirs),
                        Some(ours) if *ours != theirs => {
                            return Err(ThresholdError::KeyMismatch(format!(
                                "share {} reports public key {}, another share {}",
                                link.index,
                                hex::encode(theirs.shared_public_key),
                                hex::encode(ours.shared_public_key)
                            )));
                        }
                        Some(_) => {}
                    }
                    with_key += 1;
                }
                Err(status) => {
                    link.mark_down(status.message());
                    failures.push(format!("share {}: {}", link.index, status.message()));
                }
            }
        }
        if with_key < usize::from(THRESHOLD) {
            if with_key == 0 && without_key > 0 && failures.is_empty() {
                return Err(ThresholdError::NoKey);
            }
            return Err(ThresholdError::NotEnoughShares {
                available: with_key,
                needed: usize::from(THRESHOLD),
                detail: failures.join("; "),
            });
        }
        let info = info.ok_or(ThresholdError::NoKey)?;
        let (changed, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            shares,
            info,
            pools: Mutex::new(PAIRS.iter().map(|p| (*p, VecDeque::new())).collect()),
            inflight: Mutex::new(HashMap::new()),
            pool_target: AtomicUsize::new(config.pool_target),
            concurrency: config.presign_concurrency.max(1),
            rpc_timeout: config.rpc_timeout,
            wake: Notify::new(),
            changed,
        });
        inner.adopt_existing_presignatures().await;
        let refill = tokio::spawn(refill_loop(Arc::clone(&inner)));
        Ok(ThresholdClient { inner, refill })
    }

    /// The key's public data.
    pub fn public_key(&self) -> &PublicKeyInfo {
        &self.inner.info
    }

    /// The address of the account at `path`, from public data only.
    pub fn address(&self, path: &DerivationPath) -> Result<[u8; 20], ThresholdError> {
        self.inner.info.address(path)
    }

    /// Signs `hash` with the child key at `path`, using any two share processes that answer.
    pub async fn sign_prehash(
        &self,
        path: &DerivationPath,
        hash: [u8; 32],
    ) -> Result<Signature, ThresholdError> {
        self.sign_prehash_traced(path, hash, "").await
    }

    /// [`sign_prehash`](Self::sign_prehash) with the trade's trace id, which the share
    /// processes log beside the presignature they used.
    pub async fn sign_prehash_traced(
        &self,
        path: &DerivationPath,
        hash: [u8; 32],
        trace_id: &str,
    ) -> Result<Signature, ThresholdError> {
        let span = tracing::info_span!("threshold_sign", trace_id, path = %path);
        self.sign_in_span(path, hash, trace_id)
            .instrument(span)
            .await
    }

    async fn sign_in_span(
        &self,
        path: &DerivationPath,
        hash: [u8; 32],
        trace_id: &str,
    ) -> Result<Signature, ThresholdError> {
        let inner = &self.inner;
        let child = inner.info.child_key(path)?;
        let mut notes = Vec::new();
        for _ in 0..SIGN_ATTEMPTS {
            let Some(pair) = inner.choose_pair() else {
                break;
            };
            match inner
                .sign_with_pair(pair, path, hash, &child, trace_id)
                .await
            {
                Ok(signature) => return Ok(signature),
                Err(Attempt::Down(index, why)) => {
                    inner.link(index).mark_down(&why);
                    inner.drop_stale_pools(index).await;
                    notes.push(format!("share {index}: {why}"));
                }
                Err(Attempt::Stale(index)) => {
                    inner.drop_stale_pools(index).await;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
            }
        }
        let available = inner.shares.iter().filter(|s| s.usable()).count();
        for s in inner.shares.iter().filter(|s| !s.usable()) {
            let why = s.last_error();
            if !notes
                .iter()
                .any(|n| n.starts_with(&format!("share {}:", s.index)))
            {
                notes.push(format!("share {}: {why}", s.index));
            }
        }
        Err(ThresholdError::NotEnoughShares {
            available,
            needed: usize::from(THRESHOLD),
            detail: notes.join("; "),
        })
    }

    /// Signs with the given pair only (no fallback): for tests and diagnostics.
    pub async fn sign_prehash_with(
        &self,
        pair: [u16; 2],
        path: &DerivationPath,
        hash: [u8; 32],
    ) -> Result<Signature, ThresholdError> {
        if !PAIRS.contains(&pair) {
            return Err(ThresholdError::Config(format!(
                "{pair:?} is not a pair of shares"
            )));
        }
        let child = self.inner.info.child_key(path)?;
        match self
            .inner
            .sign_with_pair(pair, path, hash, &child, "")
            .await
        {
            Ok(s) => Ok(s),
            Err(Attempt::Down(index, why)) => Err(ThresholdError::NotEnoughShares {
                available: 1,
                needed: usize::from(THRESHOLD),
                detail: format!("share {index}: {why}"),
            }),
            Err(Attempt::Stale(index)) => Err(ThresholdError::Protocol {
                protocol: "sign",
                detail: format!("share {index} no longer holds the presignature"),
            }),
            Err(Attempt::Fatal(e)) => Err(e),
        }
    }

    /// Generates one presignature for `pair` now and adds it to that pair's pool.
    pub async fn presign(&self, pair: [u16; 2]) -> Result<(), ThresholdError> {
        match self.inner.presign_now(pair).await {
            Ok(id) => {
                self.inner.push(pair, id);
                Ok(())
            }
            Err(Attempt::Down(index, why)) => Err(ThresholdError::NotEnoughShares {
                available: 1,
                needed: usize::from(THRESHOLD),
                detail: format!("share {index}: {why}"),
            }),
            Err(Attempt::Stale(index)) => Err(ThresholdError::Protocol {
                protocol: "presign",
                detail: format!("share {index} lost the session"),
            }),
            Err(Attempt::Fatal(e)) => Err(e),
        }
    }

    /// The shares this client holds for down (no answer, or no key), by index.
    pub fn shares_down(&self) -> Vec<u16> {
        self.inner
            .shares
            .iter()
            .filter(|s| s.health.lock().map_or(true, |h| h.down_since.is_some()))
            .map(|s| s.index)
            .collect()
    }

    /// Presignatures ready per pair, as this client counts them.
    pub fn pool_sizes(&self) -> Vec<([u16; 2], usize)> {
        let pools = self.inner.pools.lock();
        PAIRS
            .iter()
            .map(|p| {
                (
                    *p,
                    pools
                        .as_ref()
                        .map(|pools| pools.get(p).map_or(0, |q| q.len()))
                        .unwrap_or(0),
                )
            })
            .collect()
    }

    /// Changes how many presignatures the background refill keeps per pair.
    pub fn set_pool_target(&self, target: usize) {
        self.inner.pool_target.store(target, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Waits until every pair in `pairs` has at least `ready` presignatures, or `timeout`.
    pub async fn wait_for_pools(
        &self,
        pairs: &[[u16; 2]],
        ready: usize,
        timeout: Duration,
    ) -> Result<(), ThresholdError> {
        let mut changes = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sizes = self.pool_sizes();
            let done = pairs
                .iter()
                .all(|pair| sizes.iter().any(|(p, n)| p == pair && *n >= ready));
            if done {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(ThresholdError::Timeout(format!(
                        "waiting for {ready} presignatures per pair (have {sizes:?})"
                    )));
                }
            }
        }
    }
}

async fn status(
    mut client: ThresholdShareClient<Channel>,
    timeout: Duration,
) -> Result<proto::StatusReply, tonic::Status> {
    let mut request = tonic::Request::new(proto::StatusRequest {});
    request.set_timeout(timeout);
    tokio::time::timeout(timeout, client.status(request))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("no answer"))?
        .map(|r| r.into_inner())
}

impl Inner {
    fn link(&self, index: u16) -> &ShareLink {
        &self.shares[usize::from(index)]
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn push(&self, pair: [u16; 2], id: [u8; 16]) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.entry(pair).or_default().push_back(id);
        }
        self.bump();
    }

    fn pop(&self, pair: [u16; 2]) -> Option<[u8; 16]> {
        let id = self
            .pools
            .lock()
            .ok()
            .and_then(|mut pools| pools.get_mut(&pair).and_then(|q| q.pop_front()));
        if id.is_some() {
            self.bump();
            self.wake.notify_one();
        }
        id
    }

    /// The usable pair with the most presignatures ready.
    fn choose_pair(&self) -> Option<[u16; 2]> {
        let pools = self.pools.lock().ok()?;
        PAIRS
            .iter()
            .filter(|[a, b]| self.link(*a).usable() && self.link(*b).usable())
            .max_by_key(|pair| {
                // Ties go to the earlier pair in PAIRS (max_by_key keeps the last maximum,
                // so rank by position too).
                let ready = pools.get(*pair).map_or(0, |q| q.len());
                let rank = PAIRS.len() - PAIRS.iter().position(|p| p == *pair).unwrap_or(0);
                (ready, rank)
            })
            .copied()
    }

    async fn sign_with_pair(
        &self,
        pair: [u16; 2],
        path: &DerivationPath,
        hash: [u8; 32],
        child: &k256::ecdsa::VerifyingKey,
        trace_id: &str,
    ) -> Result<Signature, Attempt> {
        let id = match self.pop(pair) {
            Some(id) => id,
            None => self.presign_now(pair).await?,
        };
        let request = proto::SignPartialRequest {
            presignature_id: id.to_vec(),
            derivation_path: path.indices().to_vec(),
            prehash: hash.to_vec(),
            trace_id: trace_id.to_string(),
        };
        let call = |index: u16| {
            let mut client = self.link(index).client.clone();
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(self.rpc_timeout);
            let timeout = self.rpc_timeout;
            async move {
                let answer = tokio::time::timeout(timeout, client.sign_partial(request))
                    .await
                    .map_err(|_| tonic::Status::deadline_exceeded("no answer"))?;
                answer.map(|r| r.into_inner())
            }
        };
        let (a, b) = tokio::join!(call(pair[0]), call(pair[1]));
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => return Err(worse(pair, a.err(), b.err())),
        };
        self.link(pair[0]).mark_up();
        self.link(pair[1]).mark_up();
        let partial = |reply: &proto::SignPartialReply, index: u16| {
            let bad = || {
                Attempt::Fatal(ThresholdError::share(
                    index,
                    tonic::Status::internal("malformed partial signature"),
                ))
            };
            Ok::<_, Attempt>(PartialSignature::<Secp256k1> {
                r: Scalar::from_be_bytes(&reply.r).map_err(|_| bad())?,
                sigma: Scalar::from_be_bytes(&reply.sigma).map_err(|_| bad())?,
            })
        };
        let partials = [partial(&a, pair[0])?, partial(&b, pair[1])?];
        let combined = PartialSignature::combine(&partials)
            .ok_or(Attempt::Fatal(ThresholdError::InvalidSignature))?;
        let r: [u8; 32] = combined
            .r
            .to_be_bytes()
            .as_bytes()
            .try_into()
            .map_err(|_| Attempt::Fatal(ThresholdError::InvalidSignature))?;
        let s: [u8; 32] = combined
            .s
            .to_be_bytes()
            .as_bytes()
            .try_into()
            .map_err(|_| Attempt::Fatal(ThresholdError::InvalidSignature))?;
        Signature::from_verified(r, s, child, &hash).map_err(Attempt::Fatal)
    }

    async fn presign_now(&self, pair: [u16; 2]) -> Result<[u8; 16], Attempt> {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let request = proto::PresignRequest {
            presignature_id: id.to_vec(),
            parties: pair.iter().map(|p| u32::from(*p)).collect(),
        };
        let call = |index: u16| {
            let mut client = self.link(index).client.clone();
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(PRESIGN_RPC_TIMEOUT);
            async move { client.presign(request).await.map(|_| ()) }
        };
        let (a, b) = tokio::join!(call(pair[0]), call(pair[1]));
        match (a, b) {
            (Ok(()), Ok(())) => Ok(id),
            (a, b) => Err(worse(pair, a.err(), b.err())),
        }
    }

    /// The presignatures share `index` holds, or `None` if it does not answer.
    async fn list_held(&self, index: u16) -> Option<Vec<proto::PooledPresignature>> {
        let mut client = self.link(index).client.clone();
        let mut request = tonic::Request::new(proto::ListPresignaturesRequest {});
        request.set_timeout(self.rpc_timeout);
        client
            .list_presignatures(request)
            .await
            .ok()
            .map(|reply| reply.into_inner().presignatures)
    }

    /// After a share said it does not know a presignature (it restarted, or another client
    /// used it), keep only the ids it still holds in the pools of its pairs.
    async fn drop_stale_pools(&self, index: u16) {
        let held: Option<HashSet<Vec<u8>>> = self
            .list_held(index)
            .await
            .map(|list| list.into_iter().map(|p| p.presignature_id).collect());
        if let Ok(mut pools) = self.pools.lock() {
            for (pair, queue) in pools.iter_mut() {
                if pair.contains(&index) {
                    // Unreachable: keep the ids; if the share comes back as the same
                    // process they are still good, and a restart is caught on use.
                    if let Some(held) = &held {
                        queue.retain(|id| held.contains(id.as_slice()));
                    }
                }
            }
        }
        self.bump();
    }

    /// Picks up presignatures both shares of a pair already hold (after a coordinator
    /// restart), so they are used rather than left to rot.
    async fn adopt_existing_presignatures(&self) {
        let mut held: HashMap<u16, HashMap<Vec<u8>, Vec<u32>>> = HashMap::new();
        for link in self.shares.iter().filter(|s| !s.is_marked_down()) {
            if let Some(list) = self.list_held(link.index).await {
                held.insert(
                    link.index,
                    list.into_iter()
                        .map(|p| (p.presignature_id, p.parties))
                        .collect(),
                );
            }
        }
        let mut adopted = 0;
        if let Ok(mut pools) = self.pools.lock() {
            for pair in PAIRS {
                let (Some(a), Some(b)) = (held.get(&pair[0]), held.get(&pair[1])) else {
                    continue;
                };
                let wanted = vec![u32::from(pair[0]), u32::from(pair[1])];
                for (id, parties) in a {
                    if *parties == wanted
                        && b.get(id) == Some(&wanted)
                        && let Ok(id) = <[u8; 16]>::try_from(id.as_slice())
                    {
                        pools.entry(pair).or_default().push_back(id);
                        adopted += 1;
                    }
                }
            }
        }
        if adopted > 0 {
            tracing::info!(adopted, "presignatures adopted from the share processes");
            self.bump();
        }
    }

    /// Tries shares marked down again; a share that restarted lost its presignatures.
    async fn probe_down_shares(&self) {
        for link in self
            .shares
            .iter()
            .filter(|s| s.is_marked_down() && s.usable())
        {
            match status(link.client.clone(), self.rpc_timeout).await {
                Ok(reply) if reply.key.is_some() => {
                    let restarted = link
                        .health
                        .lock()
                        .map(|mut h| {
                            let changed = h.instance.as_deref() != Some(reply.instance_id.as_str());
                            h.instance = Some(reply.instance_id.clone());
                            changed
                        })
                        .unwrap_or(false);
                    if restarted {
                        if let Ok(mut pools) = self.pools.lock() {
                            for (pair, queue) in pools.iter_mut() {
                                if pair.contains(&link.index) {
                                    queue.clear();
                                }
                            }
                        }
                        self.bump();
                    }
                    link.mark_up();
                }
                Ok(_) => link.mark_down("holds no committed key"),
                Err(status) => link.mark_down(status.message()),
            }
        }
    }

    /// The pair that most needs a presignature, if any is below target and usable.
    fn next_refill_pair(&self) -> Option<[u16; 2]> {
        let target = self.pool_target.load(Ordering::SeqCst);
        if target == 0 {
            return None;
        }
        let pools = self.pools.lock().ok()?;
        let inflight = self.inflight.lock().ok()?;
        PAIRS
            .iter()
            .filter(|[a, b]| {
                let (a, b) = (self.link(*a), self.link(*b));
                !a.is_marked_down() && !b.is_marked_down()
            })
            .map(|pair| {
                let have = pools.get(pair).map_or(0, |q| q.len())
                    + inflight.get(pair).copied().unwrap_or(0);
                (have, *pair)
            })
            .filter(|(have, _)| *have < target)
            .min_by_key(|(have, _)| *have)
            .map(|(_, pair)| pair)
    }

    fn set_inflight(&self, pair: [u16; 2], delta: isize) {
        if let Ok(mut inflight) = self.inflight.lock() {
            let n = inflight.entry(pair).or_default();
            *n = n.saturating_add_signed(delta);
        }
    }
}

/// Keeps every usable pair's pool at its target, `concurrency` generations at a time.
async fn refill_loop(inner: Arc<Inner>) {
    type Generation = ([u16; 2], Result<[u8; 16], Attempt>);
    let mut tasks: JoinSet<Generation> = JoinSet::new();
    loop {
        while tasks.len() < inner.concurrency {
            let Some(pair) = inner.next_refill_pair() else {
                break;
            };
            inner.set_inflight(pair, 1);
            let worker = Arc::clone(&inner);
            tasks.spawn(async move { (pair, worker.presign_now(pair).await) });
        }
        if tasks.is_empty() {
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(REFILL_TICK) => {}
            }
            inner.probe_down_shares().await;
            continue;
        }
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(Ok((pair, result))) = joined else { continue };
                inner.set_inflight(pair, -1);
                match result {
                    Ok(id) => inner.push(pair, id),
                    Err(Attempt::Down(index, why)) => {
                        inner.link(index).mark_down(&why);
                    }
                    Err(Attempt::Stale(_)) => {}
                    Err(Attempt::Fatal(e)) => {
                        tracing::warn!(?pair, error = %e, "presignature generation failed");
                        // Do not spin on a persistent failure.
                        tokio::time::sleep(REFILL_TICK).await;
                    }
                }
            }
            _ = tokio::time::sleep(REFILL_TICK) => {
                inner.probe_down_shares().await;
            }
        }
    }
}
