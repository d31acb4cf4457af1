//! One share process: holds one of the three key shares, encrypted at rest, and takes part in
//! the ceremony, presignature generation and signing, as a gRPC server over mutual TLS.
//!
//! What lives where:
//! - `<data-dir>/share-I.sealed`: the committed key share (cggmp21 `KeyShare`: this share's
//!   secret `x_I`, its Paillier primes, everyone's public data), sealed (see [`crate::sealed`]).
//! - `<data-dir>/share-I.pending.sealed`: a share from a finished ceremony that the
//!   coordinator has not yet committed (it commits once all three shares agree on the key).
//! - `<data-dir>/primes-I.sealed`: Paillier safe primes generated ahead of the ceremony, since
//!   finding them is the slow part; deleted once the key is committed (they are then inside the
//!   key share).
//! - presignatures: in this process's memory only, never on disk. A presignature is removed
//!   from the pool by the call that uses it, before the partial signature is computed, and
//!   `issue_partial_signature` consumes it by value, so one can answer at most one request;
//!   a restart loses the pool, so no presignature can come back after one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cggmp21::generic_ec::Scalar;
use cggmp21::hd_wallet::NonHardenedIndex;
use cggmp21::rug::Integer;
use cggmp21::supported_curves::Secp256k1;
use cggmp21::{DataToSign, ExecutionId, KeyShare, PregeneratedPrimes, Presignature};
use futures::StreamExt;
use rand_core::{OsRng, RngCore};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::error::ThresholdError;
use crate::identity::{Cluster, Identity, SHARES, THRESHOLD, cert_der, share_name};
use crate::mesh::Mesh;
use crate::proto::threshold_share_client::ThresholdShareClient;
use crate::proto::threshold_share_server::{ThresholdShare, ThresholdShareServer};
use crate::proto::{self, SessionKind};
use crate::public_key::PublicKeyInfo;
use crate::sealed::{PASSPHRASE_ENV, Passphrase, read_sealed, sync_dir, write_sealed};

/// Largest gRPC message: aux-info rounds carry zero-knowledge proofs of several hundred KiB.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Presignatures one share keeps per pair before refusing more.
pub const MAX_POOL_PER_PAIR: usize = 4096;
const AUX_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// A presignature takes seconds even on a loaded machine; a session whose peer vanished
/// mid-way ends after this.
const PRESIGN_TIMEOUT: Duration = Duration::from_secs(60);

/// Configuration of one share process; each field is one flag of
/// `stratbox signer share` (flag in brackets).
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// This share's keygen index, 0, 1 or 2 (`--index I`).
    pub index: u16,
    /// The cluster file: the three shares' addresses and pinned certificates and the
    /// coordinator's (`--cluster FILE`).
    pub cluster: PathBuf,
    /// This share's TLS certificate, PEM (`--cert FILE`); must be the one the cluster file
    /// pins for `index`.
    pub cert: PathBuf,
    /// This share's TLS private key, PEM (`--key FILE`).
    pub key: PathBuf,
    /// Where the sealed share and pregenerated primes live (`--data-dir DIR`).
    pub data_dir: PathBuf,
    /// File holding the passphrase that seals the share (`--passphrase-file FILE`); without
    /// it the passphrase is read from `STRATBOX_SHARE_PASSPHRASE`. Never a flag value.
    pub passphrase_file: Option<PathBuf>,
    /// Address to listen on (`--listen ADDR`); default: this share's address in the cluster
    /// file.
    pub listen: Option<SocketAddr>,
    /// Generate the Paillier primes in the background as soon as the process starts without
    /// a key, so the ceremony does not wait for them (`--no-pregenerate-primes` turns it off).
    pub pregenerate_primes: bool,
}

impl ShareConfig {
    /// A config with defaults for everything but the paths.
    pub fn new(
        index: u16,
        cluster: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        data_dir: PathBuf,
    ) -> Self {
        ShareConfig {
            index,
            cluster,
            cert,
            key,
            data_dir,
            passphrase_file: None,
            listen: None,
            pregenerate_primes: true,
        }
    }
}

/// The file of share `index`'s committed key share in `data_dir`.
pub fn share_file(data_dir: &Path, index: u16) -> PathBuf {
    data_dir.join(format!("share-{index}.sealed"))
}

fn pending_file(data_dir: &Path, index: u16) -> PathBuf {
    data_dir.join(format!("share-{index}.pending.sealed"))
}

/// The file of share `index`'s pregenerated Paillier primes in `data_dir`.
pub fn primes_file(data_dir: &Path, index: u16) -> PathBuf {
    data_dir.join(format!("primes-{index}.sealed"))
}

pub(crate) fn share_purpose(index: u16) -> String {
    format!("stratbox-threshold key share {index}")
}

fn primes_purpose(index: u16) -> String {
    format!("stratbox-threshold paillier primes {index}")
}

/// What a share file holds once opened.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredShare {
    pub(crate) version: u32,
    pub(crate) ceremony_id: String,
    pub(crate) key_share: KeyShare<Secp256k1>,
}

pub(crate) fn decode_share(bytes: &[u8], what: &Path) -> Result<StoredShare, ThresholdError> {
    let stored: StoredShare = ciborium::from_reader(bytes)
        .map_err(|e| ThresholdError::format(what.display().to_string(), e))?;
    if stored.version != 1 {
        return Err(ThresholdError::format(
            what.display().to_string(),
            format!("unknown share file version {}", stored.version),
        ));
    }
    Ok(stored)
}

/// Precomputes, in memory only, what makes presigning faster: multi-exponentiation tables
/// for every party's ring-Pedersen parameters and CRT parameters for our own Paillier key.
/// Kept out of the share file (the tables are large and recomputable).
fn accelerate(key: KeyShare<Secp256k1>) -> Result<KeyShare<Secp256k1>, ThresholdError> {
    let mut dirty = key.into_inner();
    dirty
        .aux
        .precompute_multiexp_tables()
        .map_err(|e| ThresholdError::format("multiexp tables", crate::error::chain(&e)))?;
    dirty
        .precompute_crt()
        .map_err(|e| ThresholdError::format("CRT parameters", crate::error::chain(&e)))?;
    cggmp21::key_share::Valid::validate(dirty)
        .map_err(|e| ThresholdError::format("key share", e.error().to_string()))
}

async fn accelerate_blocking(
    key: KeyShare<Secp256k1>,
) -> Result<KeyShare<Secp256k1>, ThresholdError> {
    tokio::task::spawn_blocking(move || accelerate(key))
        .await
        .map_err(|e| ThresholdError::format("precomputation", e))?
}

#[derive(Serialize, Deserialize)]
struct StoredPrimes {
    p: Integer,
    q: Integer,
}

/// Runs share process `config.index` until `shutdown` resolves, listening where the config
/// says.
pub async fn run_share(
    config: ShareConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ThresholdError> {
    let address = listen_address(&config)?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| ThresholdError::Config(format!("cannot listen on {address}: {e}")))?;
    run_share_on(listener, config, shutdown).await
}

/// Where share `config.index` listens: `--listen`, else its cluster address when that is an
/// IP address, else every interface on its port (a name like `signer-share-0:50070` resolves
/// to this machine only from elsewhere).
pub fn listen_address(config: &ShareConfig) -> Result<SocketAddr, ThresholdError> {
    if let Some(a) = config.listen {
        return Ok(a);
    }
    let cluster = Cluster::load(&config.cluster)?;
    let address = cluster.share(config.index)?.address.as_str();
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| ThresholdError::Config(format!("share address {address:?} has no port")))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// Like [`run_share`], on a listener the caller bound (tests bind port 0 first).
pub async fn run_share_on(
    listener: TcpListener,
    config: ShareConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ThresholdError> {
    crate::install_crypto_provider();
    let passphrase =
        Passphrase::from_file_or_env(config.passphrase_file.as_deref(), PASSPHRASE_ENV)?;
    let state = Arc::new(ShareState::start(&config, passphrase).await?);
    if state.key().is_none() && config.pregenerate_primes {
        let background = Arc::clone(&state);
        tokio::spawn(async move {
            if let Err(e) = background.primes.get().await {
                tracing::error!(share = background.index, error = %e, "pregenerating primes failed");
            }
        });
    }
    let identity = Identity::load(&config.cert, &config.key)?;
    let mut allowed = state.cluster.coordinator_cert_pem.clone();
    for share in &state.cluster.shares {
        if share.index != state.index {
            allowed.push('\n');
            allowed.push_str(&share.cert_pem);
        }
    }
    let tls = ServerTlsConfig::new()
        .identity(identity.tonic())
        .client_ca_root(Certificate::from_pem(allowed));
    let local = listener.local_addr().ok();
    // As in the engine: tonic sets TCP_NODELAY only on listeners it binds itself.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.and_then(|stream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    });
    tracing::info!(share = state.index, address = ?local, has_key = state.key().is_some(), "share process listening");
    let service = ThresholdShareServer::new(ShareService {
        state: Arc::clone(&state),
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let mesh = Arc::clone(&state.mesh);
    let shutdown = async move {
        shutdown.await;
        mesh.stop();
    };
    Server::builder()
        .tls_config(tls)
        .map_err(|e| ThresholdError::Tls(e.to_string()))?
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| ThresholdError::Tls(format!("server: {}", crate::error::chain(&e))))?;
    tracing::info!(share = state.index, "share process stopped");
    Ok(())
}

/// A gRPC client for share `index` of `cluster` over TLS, presenting `identity`, trusting
/// only the certificate the cluster pins for that share. Connects on first use and
/// reconnects after a failure.
pub fn share_channel(
    cluster: &Cluster,
    index: u16,
    identity: &Identity,
    connect_timeout: Duration,
) -> Result<ThresholdShareClient<Channel>, ThresholdError> {
    let entry = cluster.share(index)?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&entry.cert_pem))
        .domain_name(share_name(index))
        .identity(identity.tonic());
    let channel = Endpoint::from_shared(format!("https://{}", entry.address))
        .map_err(|e| ThresholdError::Config(format!("share {index} address: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .tls_config(tls)
        .map_err(|e| ThresholdError::Tls(e.to_string()))?
        .connect_lazy();
    Ok(ThresholdShareClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

struct Pooled {
    parties: [u16; 2],
    presignature: Presignature<Secp256k1>,
}

struct Pending {
    ceremony_id: Vec<u8>,
    key: Arc<KeyShare<Secp256k1>>,
    info: PublicKeyInfo,
}

struct Committed {
    key: Arc<KeyShare<Secp256k1>>,
    info: PublicKeyInfo,
}

/// The Paillier primes of this share, generated once (or read from their sealed file) and
/// shared by the background pregeneration and the ceremony.
struct PrimeStore {
    path: PathBuf,
    purpose: String,
    passphrase: Passphrase,
    cell: OnceCell<(Integer, Integer)>,
}

impl PrimeStore {
    async fn get(&self) -> Result<(Integer, Integer), ThresholdError> {
        self.cell
            .get_or_try_init(|| async {
                if self.path.exists() {
                    let bytes = read_sealed(&self.path, &self.passphrase, &self.purpose)?;
                    let stored: StoredPrimes = ciborium::from_reader(bytes.as_slice())
                        .map_err(|e| ThresholdError::format(self.path.display().to_string(), e))?;
                    tracing::info!(path = %self.path.display(), "using pregenerated Paillier primes");
                    return Ok((stored.p, stored.q));
                }
                let started = Instant::now();
                tracing::info!("generating Paillier safe primes (the slow part of the ceremony)");
                let primes = tokio::task::spawn_blocking(|| {
                    PregeneratedPrimes::<cggmp21::security_level::SecurityLevel128>::generate(
                        &mut OsRng,
                    )
                    .split()
                })
                .await
                .map_err(|e| ThresholdError::Protocol {
                    protocol: "prime generation",
                    detail: e.to_string(),
                })?;
                let mut bytes = zeroize::Zeroizing::new(Vec::new());
                ciborium::into_writer(
                    &StoredPrimes {
                        p: primes.0.clone(),
                        q: primes.1.clone(),
                    },
                    &mut *bytes,
                )
                .map_err(|e| ThresholdError::format("primes", e))?;
                write_sealed(&self.path, &self.passphrase, &self.purpose, &bytes)?;
                tracing::info!(elapsed = ?started.elapsed(), "Paillier primes ready");
                Ok(primes)
            })
            .await
            .cloned()
    }

    fn ready(&self) -> bool {
        self.cell.initialized()
    }
}

struct ShareState {
    index: u16,
    cluster: Cluster,
    data_dir: PathBuf,
    passphrase: Passphrase,
    instance_id: String,
    mesh: Arc<Mesh>,
    committed: RwLock<Option<Committed>>,
    pending: Mutex<Option<Pending>>,
    ceremony_running: AtomicBool,
    primes: PrimeStore,
    pools: Mutex<HashMap<[u8; 16], Pooled>>,
    coordinator: CertificateDer<'static>,
    peers: Vec<(u16, CertificateDer<'static>)>,
}

enum Role {
    Coordinator,
    Peer(u16),
}

impl ShareState {
    async fn start(config: &ShareConfig, passphrase: Passphrase) -> Result<Self, ThresholdError> {
        if config.index >= SHARES {
            return Err(ThresholdError::Config(format!(
                "share index {} is out of range (0, 1, 2)",
                config.index
            )));
        }
        let cluster = Cluster::load(&config.cluster)?;
        let identity = Identity::load(&config.cert, &config.key)?;
        let mine = cert_der(&identity.cert_pem, "own certificate")?;
        let pinned = cert_der(&cluster.share(config.index)?.cert_pem, "pinned certificate")?;
        if mine != pinned {
            return Err(ThresholdError::Config(format!(
                "{} is not the certificate the cluster file pins for share {}",
                config.cert.display(),
                config.index
            )));
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ThresholdError::io(&config.data_dir, e))?;
        let mut peers = Vec::new();
        let mut clients = HashMap::new();
        for share in &cluster.shares {
            if share.index == config.index {
                continue;
            }
            peers.push((
                share.index,
                cert_der(
                    &share.cert_pem,
                    &format!("share {} certificate", share.index),
                )?,
            ));
            clients.insert(
                share.index,
                share_channel(&cluster, share.index, &identity, Duration::from_secs(5))?,
            );
        }
        let coordinator = cert_der(&cluster.coordinator_cert_pem, "coordinator certificate")?;

        let path = share_file(&config.data_dir, config.index);
        let committed = if path.exists() {
            let bytes = tokio::task::spawn_blocking({
                let path = path.clone();
                let passphrase = passphrase.clone();
                let purpose = share_purpose(config.index);
                move || read_sealed(&path, &passphrase, &purpose)
            })
            .await
            .map_err(|e| ThresholdError::format("share file", e))??;
            let stored = decode_share(&bytes, &path)?;
            if stored.key_share.core.i != config.index {
                return Err(ThresholdError::Config(format!(
                    "{} holds share {}, not {}",
                    path.display(),
                    stored.key_share.core.i,
                    config.index
                )));
            }
            let info = PublicKeyInfo::from_key_share(&stored.key_share)?;
            tracing::info!(share = config.index, ceremony = %stored.ceremony_id, "key share loaded");
            Some(Committed {
                key: Arc::new(accelerate_blocking(stored.key_share).await?),
                info,
            })
        } else {
            None
        };
        let mut instance = [0u8; 16];
        OsRng.fill_bytes(&mut instance);
        Ok(ShareState {
            index: config.index,
            data_dir: config.data_dir.clone(),
            primes: PrimeStore {
                path: primes_file(&config.data_dir, config.index),
                purpose: primes_purpose(config.index),
                passphrase: passphrase.clone(),
                cell: OnceCell::new(),
            },
            passphrase,
            instance_id: hex::encode(instance),
            mesh: Arc::new(Mesh::new(config.index, clients)),
            committed: RwLock::new(committed),
            pending: Mutex::new(None),
            ceremony_running: AtomicBool::new(false),
            pools: Mutex::new(HashMap::new()),
            coordinator,
            peers,
            cluster,
        })
    }

    fn key(&self) -> Option<Arc<KeyShare<Secp256k1>>> {
        self.committed
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| Arc::clone(&c.key)))
    }

    fn role<T>(&self, request: &Request<T>) -> Result<Role, Status> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        if *leaf == self.coordinator {
            return Ok(Role::Coordinator);
        }
        self.peers
            .iter()
            .find(|(_, der)| der == leaf)
            .map(|(index, _)| Role::Peer(*index))
            .ok_or_else(|| Status::unauthenticated("certificate not pinned by the cluster"))
    }

    fn coordinator_only<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match self.role(request)? {
            Role::Coordinator => Ok(()),
            Role::Peer(j) => Err(Status::permission_denied(format!(
                "share {j} may only deliver protocol messages"
            ))),
        }
    }

    /// The presignature pool; held only for map operations, never across an await.
    fn pools(&self) -> Result<std::sync::MutexGuard<'_, HashMap<[u8; 16], Pooled>>, Status> {
        self.pools
            .lock()
            .map_err(|_| Status::internal("pool lock poisoned"))
    }

    fn pool_sizes(&self) -> Vec<proto::PoolSize> {
        let mut counts: HashMap<[u16; 2], u64> = HashMap::new();
        if let Ok(pools) = self.pools.lock() {
            for pooled in pools.values() {
                *counts.entry(pooled.parties).or_default() += 1;
            }
        }
        let mut sizes: Vec<_> = counts
            .into_iter()
            .map(|(parties, ready)| proto::PoolSize {
                parties: parties.iter().map(|p| u32::from(*p)).collect(),
                ready,
            })
            .collect();
        sizes.sort_by(|a, b| a.parties.cmp(&b.parties));
        sizes
    }
}

fn execution_id(kind: SessionKind, session_id: &[u8], parties: &[u16]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"stratbox-threshold/v1/");
    h.update((kind as i32).to_be_bytes());
    h.update((session_id.len() as u32).to_be_bytes());
    h.update(session_id);
    for p in parties {
        h.update(p.to_be_bytes());
    }
    h.finalize().into()
}

pub(crate) fn id16(bytes: &[u8], what: &str) -> Result<[u8; 16], Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument(format!("{what} must be 16 bytes")))
}

fn status_of(e: ThresholdError) -> Status {
    match e {
        // The session failed because a peer share was unreachable: not this share's fault,
        // and the coordinator should try another pair rather than mark this one down.
        ThresholdError::Share { ref status, .. }
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ) =>
        {
            Status::aborted(e.to_string())
        }
        ThresholdError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        ThresholdError::HardenedIndex(_) | ThresholdError::Format { .. } => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

struct ShareService {
    state: Arc<ShareState>,
}

type EventStream = Pin<Box<dyn futures::Stream<Item = Result<proto::KeygenEvent, Status>> + Send>>;

struct CeremonyGuard<'a>(&'a AtomicBool);
impl Drop for CeremonyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn ceremony(
    state: Arc<ShareState>,
    ceremony_id: [u8; 16],
    events: mpsc::Sender<Result<proto::KeygenEvent, Status>>,
) -> Result<(), ThresholdError> {
    let _running = CeremonyGuard(&state.ceremony_running);
    let started = Instant::now();
    let progress = |stage: &str, detail: String| {
        let event = proto::KeygenEvent {
            event: Some(proto::keygen_event::Event::Progress(
                proto::KeygenProgress {
                    stage: stage.to_string(),
                    detail,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                },
            )),
        };
        let events = events.clone();
        async move {
            // The coordinator may have gone; the ceremony goes on to its end regardless.
            let _ = events.send(Ok(event)).await;
        }
    };
    let me = state.index;
    let all: Vec<u16> = (0..SHARES).collect();

    progress(
        "primes",
        if state.primes.ready() || state.primes.path.exists() {
            "pregenerated".into()
        } else {
            "generating two 1024-bit safe primes".into()
        },
    )
    .await;
    let (p, q) = state.primes.get().await?;
    let primes = PregeneratedPrimes::new(p, q)
        .ok_or_else(|| ThresholdError::format("primes", "too small for the security level"))?;
    progress("primes", "ready".into()).await;

    progress("aux_info", "started".into()).await;
    let eid = execution_id(SessionKind::AuxInfo, &ceremony_id, &all);
    let n = SHARES;
    let aux = state
        .mesh
        .run(
            SessionKind::AuxInfo,
            &ceremony_id,
            &all,
            AUX_TIMEOUT,
            "aux info",
            move |party| async move {
                let mut rng = OsRng;
                cggmp21::aux_info_gen(ExecutionId::new(&eid), me, n, primes)
                    .start(&mut rng, party)
                    .await
            },
        )
        .await?;
    progress("aux_info", "done".into()).await;

    progress("keygen", "started".into()).await;
    let eid = execution_id(SessionKind::Keygen, &ceremony_id, &all);
    let incomplete = state
        .mesh
        .run(
            SessionKind::Keygen,
            &ceremony_id,
            &all,
            KEYGEN_TIMEOUT,
            "keygen",
            move |party| async move {
                let mut rng = OsRng;
                cggmp21::keygen::<Secp256k1>(ExecutionId::new(&eid), me, n)
                    .set_threshold(THRESHOLD)
                    .hd_wallet(true)
                    .start(&mut rng, party)
                    .await
            },
        )
        .await?;
    let key = KeyShare::from_parts((incomplete, aux))
        .map_err(|e| ThresholdError::format("key share", crate::error::chain(&e)))?;
    let info = PublicKeyInfo::from_key_share(&key)?;
    progress("keygen", "done".into()).await;

    let stored = StoredShare {
        version: 1,
        ceremony_id: hex::encode(ceremony_id),
        key_share: key,
    };
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    ciborium::into_writer(&stored, &mut *bytes).map_err(|e| ThresholdError::format("share", e))?;
    let path = pending_file(&state.data_dir, me);
    let passphrase = state.passphrase.clone();
    let purpose = share_purpose(me);
    tokio::task::spawn_blocking(move || write_sealed(&path, &passphrase, &purpose, &bytes))
        .await
        .map_err(|e| ThresholdError::format("sealing", e))??;
    progress("sealed", "pending commit".into()).await;
    let key = Arc::new(accelerate_blocking(stored.key_share).await?);
    if let Ok(mut pending) = state.pending.lock() {
        *pending = Some(Pending {
            ceremony_id: ceremony_id.to_vec(),
            key,
            info: info.clone(),
        });
    }
    let _ = events
        .send(Ok(proto::KeygenEvent {
            event: Some(proto::keygen_event::Event::Done(info.to_proto())),
        }))
        .await;
    Ok(())
}

#[tonic::async_trait]
impl ThresholdShare for ShareService {
    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusReply>, Status> {
        self.state.role(&request)?;
        let key = self
            .state
            .committed
            .read()
            .map_err(|_| Status::internal("key lock poisoned"))?
            .as_ref()
            .map(|c| c.info.to_proto());
        Ok(Response::new(proto::StatusReply {
            index: u32::from(self.state.index),
            instance_id: self.state.instance_id.clone(),
            key,
            primes_ready: self.state.primes.ready(),
            pools: self.state.pool_sizes(),
        }))
    }

    type KeygenStream = EventStream;

    async fn keygen(
        &self,
        request: Request<proto::KeygenRequest>,
    ) -> Result<Response<Self::KeygenStream>, Status> {
        self.state.coordinator_only(&request)?;
        let request = request.into_inner();
        let ceremony_id = id16(&request.ceremony_id, "ceremony_id")?;
        if request.threshold != u32::from(THRESHOLD) {
            return Err(Status::invalid_argument(format!(
                "this cluster runs a {THRESHOLD}-of-{SHARES} key; threshold {} is not supported",
                request.threshold
            )));
        }
        if self.state.key().is_some() {
            return Err(Status::failed_precondition(
                "this share process already holds a committed key share; a ceremony would replace it",
            ));
        }
        if self.state.ceremony_running.swap(true, Ordering::SeqCst) {
            return Err(Status::aborted("a ceremony is already running"));
        }
        let (tx, rx) = mpsc::channel(64);
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            let index = state.index;
            if let Err(e) = ceremony(state, ceremony_id, tx.clone()).await {
                tracing::error!(share = index, error = %e, "ceremony failed");
                let _ = tx.send(Err(status_of(e))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn commit_key(
        &self,
        request: Request<proto::CommitKeyRequest>,
    ) -> Result<Response<proto::CommitKeyReply>, Status> {
        self.state.coordinator_only(&request)?;
        let request = request.into_inner();
        let state = &self.state;
        {
            let committed = state
                .committed
                .read()
                .map_err(|_| Status::internal("key lock poisoned"))?;
            if let Some(c) = committed.as_ref() {
                return if c.info.shared_public_key.as_slice() == request.shared_public_key {
                    Ok(Response::new(proto::CommitKeyReply {}))
                } else {
                    Err(Status::failed_precondition(
                        "a different key is already committed",
                    ))
                };
            }
        }
        let pending = state
            .pending
            .lock()
            .map_err(|_| Status::internal("pending lock poisoned"))?
            .take();
        let Some(pending) = pending else {
            return Err(Status::failed_precondition("no ceremony result to commit"));
        };
        if pending.ceremony_id != request.ceremony_id
            || pending.info.shared_public_key.as_slice() != request.shared_public_key
        {
            let answer = Status::failed_precondition(
                "the pending key is from another ceremony or has another public key",
            );
            if let Ok(mut slot) = state.pending.lock() {
                *slot = Some(pending);
            }
            return Err(answer);
        }
        let from = pending_file(&state.data_dir, state.index);
        let to = share_file(&state.data_dir, state.index);
        std::fs::rename(&from, &to)
            .map_err(|e| Status::internal(format!("committing {}: {e}", to.display())))?;
        sync_dir(&state.data_dir).map_err(|e| Status::internal(e.to_string()))?;
        let primes = &state.primes.path;
        if primes.exists()
            && let Err(e) = std::fs::remove_file(primes)
        {
            tracing::warn!(path = %primes.display(), error = %e, "could not remove used primes");
        }
        tracing::info!(share = state.index, key = %hex::encode(pending.info.shared_public_key), "key share committed");
        *state
            .committed
            .write()
            .map_err(|_| Status::internal("key lock poisoned"))? = Some(Committed {
            key: pending.key,
            info: pending.info,
        });
        Ok(Response::new(proto::CommitKeyReply {}))
    }

    async fn presign(
        &self,
        request: Request<proto::PresignRequest>,
    ) -> Result<Response<proto::PresignReply>, Status> {
        self.state.coordinator_only(&request)?;
        let request = request.into_inner();
        let id = id16(&request.presignature_id, "presignature_id")?;
        let parties = pair(&request.parties)?;
        let me = self.state.index;
        let local =
            parties.iter().position(|p| *p == me).ok_or_else(|| {
                Status::invalid_argument(format!("share {me} is not in {parties:?}"))
            })? as u16;
        let key = self
            .state
            .key()
            .ok_or_else(|| Status::failed_precondition("no committed key share"))?;
        {
            let pools = self.state.pools()?;
            if pools.contains_key(&id) {
                return Err(Status::already_exists(
                    "presignature id already in the pool",
                ));
            }
            if pools.values().filter(|p| p.parties == parties).count() >= MAX_POOL_PER_PAIR {
                return Err(Status::resource_exhausted(
                    "presignature pool for this pair is full",
                ));
            }
        }
        let eid = execution_id(SessionKind::Presign, &id, &parties);
        let presignature = self
            .state
            .mesh
            .run(
                SessionKind::Presign,
                &id,
                &parties,
                PRESIGN_TIMEOUT,
                "presign",
                move |party| async move {
                    let mut rng = OsRng;
                    cggmp21::signing(ExecutionId::new(&eid), local, &parties, &key)
                        .generate_presignature(&mut rng, party)
                        .await
                },
            )
            .await
            .map_err(status_of)?;
        let mut pools = self.state.pools()?;
        if pools.contains_key(&id) {
            return Err(Status::already_exists(
                "presignature id already in the pool",
            ));
        }
        pools.insert(
            id,
            Pooled {
                parties,
                presignature,
            },
        );
        Ok(Response::new(proto::PresignReply {}))
    }

    async fn list_presignatures(
        &self,
        request: Request<proto::ListPresignaturesRequest>,
    ) -> Result<Response<proto::ListPresignaturesReply>, Status> {
        self.state.coordinator_only(&request)?;
        let pools = self.state.pools()?;
        let presignatures = pools
            .iter()
            .map(|(id, pooled)| proto::PooledPresignature {
                presignature_id: id.to_vec(),
                parties: pooled.parties.iter().map(|p| u32::from(*p)).collect(),
            })
            .collect();
        Ok(Response::new(proto::ListPresignaturesReply {
            presignatures,
        }))
    }

    async fn sign_partial(
        &self,
        request: Request<proto::SignPartialRequest>,
    ) -> Result<Response<proto::SignPartialReply>, Status> {
        self.state.coordinator_only(&request)?;
        let request = request.into_inner();
        let id = id16(&request.presignature_id, "presignature_id")?;
        let prehash: [u8; 32] = request
            .prehash
            .as_slice()
            .try_into()
            .map_err(|_| Status::invalid_argument("prehash must be 32 bytes"))?;
        let path = request
            .derivation_path
            .iter()
            .map(|i| {
                NonHardenedIndex::try_from(*i).map_err(|_| {
                    Status::invalid_argument(format!("derivation index {i} is hardened"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = self
            .state
            .key()
            .ok_or_else(|| Status::failed_precondition("no committed key share"))?;
        let epub = key
            .extended_public_key()
            .ok_or_else(|| Status::internal("key share has no chain code"))?;
        // Taken out of the pool before anything else can fail: from here on this
        // presignature exists only in this call, and `issue_partial_signature` consumes it.
        let pooled = self.state.pools()?.remove(&id).ok_or_else(|| {
            Status::not_found(
                "no such presignature here: never made, already used, or lost in a restart",
            )
        })?;
        let presignature = pooled
            .presignature
            .set_derivation_path(epub, path)
            .map_err(|_| Status::invalid_argument("derivation path"))?;
        let message =
            DataToSign::<Secp256k1>::from_scalar(Scalar::from_be_bytes_mod_order(prehash));
        let partial = presignature.issue_partial_signature(message);
        tracing::info!(
            share = self.state.index,
            trace_id = %request.trace_id,
            presignature = %hex::encode(id),
            parties = ?pooled.parties,
            path = ?request.derivation_path,
            "partial signature issued"
        );
        Ok(Response::new(proto::SignPartialReply {
            r: partial.r.to_be_bytes().to_vec(),
            sigma: partial.sigma.to_be_bytes().to_vec(),
        }))
    }

    async fn deliver(
        &self,
        request: Request<proto::ProtocolMessage>,
    ) -> Result<Response<proto::DeliverReply>, Status> {
        let Role::Peer(from) = self.state.role(&request)? else {
            return Err(Status::permission_denied(
                "only share processes deliver protocol messages",
            ));
        };
        self.state.mesh.accept(from, request.into_inner())?;
        Ok(Response::new(proto::DeliverReply {}))
    }
}

fn pair(parties: &[u32]) -> Result<[u16; 2], Status> {
    let bad =
        || Status::invalid_argument("parties must be two distinct share indices (0..3), ascending");
    let [a, b] = parties else {
        return Err(bad());
    };
    let a = u16::try_from(*a).map_err(|_| bad())?;
    let b = u16::try_from(*b).map_err(|_| bad())?;
    if a >= b || b >= SHARES {
        return Err(bad());
    }
    Ok([a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_two_ascending_distinct_indices() {
        assert_eq!(pair(&[0, 2]).unwrap(), [0, 2]);
        assert!(pair(&[2, 0]).is_err());
        assert!(pair(&[1, 1]).is_err());
        assert!(pair(&[0, 3]).is_err());
        assert!(pair(&[0, 1, 2]).is_err());
        assert!(pair(&[0]).is_err());
    }

    #[test]
    fn execution_ids_separate_kinds_sessions_and_parties() {
        let a = execution_id(SessionKind::Presign, &[1; 16], &[0, 1]);
        assert_ne!(a, execution_id(SessionKind::Keygen, &[1; 16], &[0, 1]));
        assert_ne!(a, execution_id(SessionKind::Presign, &[2; 16], &[0, 1]));
        assert_ne!(a, execution_id(SessionKind::Presign, &[1; 16], &[0, 2]));
        assert_eq!(a, execution_id(SessionKind::Presign, &[1; 16], &[0, 1]));
    }
}
