//! Three share processes as tasks of this process, on loopback ports, with their identities,
//! cluster file and data directories in one directory: what the tests and `stratbox bench
//! signer` run against. The shares speak exactly the protocol and TLS they speak as separate
//! processes; only the process boundary is missing (so memory-isolation checks need the
//! separate-process setup instead, see `tests/whole_key.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cggmp21::rug::Integer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ceremony::{KeygenConfig, KeygenOutcome, keygen};
use crate::client::{ClientConfig, ThresholdClient};
use crate::error::ThresholdError;
use crate::identity::{ClusterFiles, SHARES, init_cluster};
use crate::public_key::PublicKeyInfo;
use crate::sealed::{Passphrase, write_sealed};
use crate::share::{ShareConfig, primes_file, run_share_on, share_file};

/// Paillier safe primes for one share, as cggmp21 generates them.
#[derive(Clone)]
pub struct Primes {
    /// First safe prime.
    pub p: Integer,
    /// Second safe prime.
    pub q: Integer,
}

impl std::fmt::Debug for Primes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Primes(<secret>)")
    }
}

impl Primes {
    /// Generates a pair (two 1024-bit safe primes; seconds to minutes).
    pub fn generate() -> Self {
        let (p, q) =
            cggmp21::PregeneratedPrimes::<cggmp21::security_level::SecurityLevel128>::generate(
                &mut rand_core::OsRng,
            )
            .split();
        Primes { p, q }
    }
}

/// Writes `primes` as share `index`'s pregenerated primes in `data_dir`, sealed with
/// `passphrase`, exactly as a share process would after generating them itself.
pub fn seed_primes(
    data_dir: &Path,
    index: u16,
    passphrase: &Passphrase,
    primes: &Primes,
) -> Result<(), ThresholdError> {
    std::fs::create_dir_all(data_dir).map_err(|e| ThresholdError::io(data_dir, e))?;
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        p: &'a Integer,
        q: &'a Integer,
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    ciborium::into_writer(
        &Stored {
            p: &primes.p,
            q: &primes.q,
        },
        &mut *bytes,
    )
    .map_err(|e| ThresholdError::format("primes", e))?;
    write_sealed(
        &primes_file(data_dir, index),
        passphrase,
        &format!("stratbox-threshold paillier primes {index}"),
        &bytes,
    )
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ThresholdError>>,
}

/// A running in-process cluster (see the module docs).
pub struct LocalCluster {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// Identities and cluster file.
    pub files: ClusterFiles,
    /// The shares' addresses.
    pub addresses: [SocketAddr; 3],
    passphrase_file: PathBuf,
    pregenerate: bool,
    running: Vec<Option<Running>>,
}

impl LocalCluster {
    /// Sets up identities and a cluster file in `dir` for three loopback listeners, writes
    /// `passphrase` to `dir/passphrase` (mode 0600), seeds `primes` if given, and starts the
    /// three share servers.
    pub async fn start(
        dir: &Path,
        passphrase: &str,
        primes: Option<&[Primes; 3]>,
    ) -> Result<Self, ThresholdError> {
        LocalCluster::start_inner(dir, passphrase, primes, true).await
    }

    /// Sets up a cluster in `dir` as [`start`](Self::start) does, with `key`'s three sealed
    /// shares already committed (so no ceremony runs) and [`TEST_KEY_PASSPHRASE`] as the
    /// shares' passphrase. The shares do not generate primes: they have a key.
    /// Returns once all three answer with the key (see [`wait_ready`](Self::wait_ready)).
    pub async fn start_with_key(dir: &Path, key: &CachedKey) -> Result<Self, ThresholdError> {
        key.install(dir)?;
        let cluster = LocalCluster::start_inner(dir, TEST_KEY_PASSPHRASE, None, false).await?;
        cluster.wait_ready(Duration::from_secs(120)).await?;
        Ok(cluster)
    }

    /// Waits until every share answers holding a key. A share started on a sealed key opens
    /// it and precomputes its Paillier tables before it serves (seconds of CPU on two cores
    /// for three shares at once), so a client connecting at once finds none of them.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), ThresholdError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let why = match ThresholdClient::connect(&self.client_config()).await {
                Ok(client) if client.shares_down().is_empty() => return Ok(()),
                Ok(client) => ThresholdError::Timeout(format!(
                    "shares {:?} not answering",
                    client.shares_down()
                )),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Like [`start`](Self::start) without primes and without generating any: for tests that
    /// never run a ceremony and should not spend the CPU.
    pub async fn start_idle(dir: &Path, passphrase: &str) -> Result<Self, ThresholdError> {
        LocalCluster::start_inner(dir, passphrase, None, false).await
    }

    async fn start_inner(
        dir: &Path,
        passphrase: &str,
        primes: Option<&[Primes; 3]>,
        pregenerate: bool,
    ) -> Result<Self, ThresholdError> {
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for _ in 0..SHARES {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| ThresholdError::Config(format!("binding loopback: {e}")))?;
            addresses.push(
                listener
                    .local_addr()
                    .map_err(|e| ThresholdError::Config(e.to_string()))?,
            );
            listeners.push(listener);
        }
        let addresses: [SocketAddr; 3] = [addresses[0], addresses[1], addresses[2]];
        let files = init_cluster(dir, addresses.map(|a| a.to_string()))?;
        let passphrase_file = dir.join("passphrase");
        crate::sealed::write_private_atomically(&passphrase_file, passphrase.as_bytes())?;
        if let Some(primes) = primes {
            let pass = Passphrase::new(passphrase)?;
            for index in 0..SHARES {
                seed_primes(
                    &data_dir(dir, index),
                    index,
                    &pass,
                    &primes[usize::from(index)],
                )?;
            }
        }
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            files,
            addresses,
            passphrase_file,
            pregenerate,
            running: (0..SHARES).map(|_| None).collect(),
        };
        for (index, listener) in (0..SHARES).zip(listeners) {
            cluster.spawn(index, listener);
        }
        Ok(cluster)
    }

    /// The config share `index` runs with.
    pub fn share_config(&self, index: u16) -> ShareConfig {
        let (cert, key) = self.files.shares[usize::from(index)].clone();
        let mut config = ShareConfig::new(
            index,
            self.files.cluster.clone(),
            cert,
            key,
            data_dir(&self.dir, index),
        );
        config.passphrase_file = Some(self.passphrase_file.clone());
        config.pregenerate_primes = self.pregenerate;
        config
    }

    /// The coordinator's client config (pool target 0: no background refill).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            self.files.cluster.clone(),
            self.files.coordinator.0.clone(),
            self.files.coordinator.1.clone(),
        );
        config.pool_target = 0;
        config
    }

    /// The coordinator's keygen config.
    pub fn keygen_config(&self) -> KeygenConfig {
        KeygenConfig::new(
            self.files.cluster.clone(),
            self.files.coordinator.0.clone(),
            self.files.coordinator.1.clone(),
        )
    }

    fn spawn(&mut self, index: u16, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.share_config(index);
        let task = tokio::spawn(async move {
            run_share_on(listener, config, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running[usize::from(index)] = Some(Running { stop, task });
    }

    /// Stops share `index` and waits until its server has ended.
    pub async fn stop(&mut self, index: u16) -> Result<(), ThresholdError> {
        if let Some(running) = self.running[usize::from(index)].take() {
            let _ = running.stop.send(());
            match tokio::time::timeout(Duration::from_secs(30), running.task).await {
                Ok(Ok(result)) => result?,
                Ok(Err(join)) => {
                    return Err(ThresholdError::Config(format!(
                        "share {index} task: {join}"
                    )));
                }
                Err(_) => return Err(ThresholdError::Timeout(format!("stopping share {index}"))),
            }
        }
        Ok(())
    }

    /// Starts share `index` again on its address (a new process as far as anyone can tell:
    /// it reloads its sealed share and starts with an empty presignature pool).
    pub async fn restart(&mut self, index: u16) -> Result<(), ThresholdError> {
        self.stop(index).await?;
        let address = self.addresses[usize::from(index)];
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| ThresholdError::Config(format!("rebinding {address}: {e}")))?;
        self.spawn(index, listener);
        Ok(())
    }

    /// Stops all three.
    pub async fn shutdown(mut self) -> Result<(), ThresholdError> {
        for index in 0..SHARES {
            self.stop(index).await?;
        }
        Ok(())
    }
}

/// Share `index`'s data directory under `dir`.
pub fn data_dir(dir: &Path, index: u16) -> PathBuf {
    dir.join(format!("share-{index}"))
}

/// Safe primes for three shares, generated once by [`Primes::generate`] (cggmp21's
/// generator) and cached in `cache_dir` (a test target directory), so a ceremony in a test or
/// a benchmark costs the protocol and not minutes of prime search. Processes asking at once
/// take turns on a file lock; the first generates, the rest read. Never for a real key: the
/// primes sit unencrypted in the cache file.
pub fn cached_test_primes(cache_dir: &Path) -> Result<[Primes; 3], ThresholdError> {
    use std::io::Write;
    let path = cache_dir.join("stratbox-threshold-test-primes-v1.json");
    std::fs::create_dir_all(cache_dir).map_err(|e| ThresholdError::io(cache_dir, e))?;
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| ThresholdError::io(&lock_path, e))?;
    lock.lock().map_err(|e| ThresholdError::io(&lock_path, e))?;
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(list) = serde_json::from_str::<Vec<(String, String)>>(&text)
        && let [a, b, c] = list.as_slice()
    {
        let pair = |(p, q): &(String, String)| {
            Some(Primes {
                p: integer_from_hex(p)?,
                q: integer_from_hex(q)?,
            })
        };
        if let (Some(a), Some(b), Some(c)) = (pair(a), pair(b), pair(c)) {
            return Ok([a, b, c]);
        }
    }
    tracing::info!("generating Paillier safe primes for the test cache (once per cache dir)");
    let workers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(Primes::generate))
        .collect();
    let mut primes = Vec::new();
    for w in workers {
        primes.push(
            w.join()
                .map_err(|_| ThresholdError::Config("prime generation panicked".into()))?,
        );
    }
    let list: Vec<(String, String)> = primes
        .iter()
        .map(|p| (p.p.to_string_radix(16), p.q.to_string_radix(16)))
        .collect();
    let text = serde_json::to_string(&list).map_err(|e| ThresholdError::format("primes", e))?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| ThresholdError::io(&tmp, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ThresholdError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| ThresholdError::io(&path, e))?;
    Ok([primes[0].clone(), primes[1].clone(), primes[2].clone()])
}

/// The passphrase sealing the shares of [`cached_test_key`]: fixed and public, because that
/// key is a test key.
pub const TEST_KEY_PASSPHRASE: &str = "stratbox cached test key (never a real key)";

/// A committed threshold key made by one real ceremony and kept in a cache directory: three
/// share files sealed with [`TEST_KEY_PASSPHRASE`] and what the ceremony reported.
///
/// A ceremony is minutes of CPU on two cores (aux-info generation and its proofs), so the
/// tests and `stratbox bench signer --quick` that need *a* key, rather than a ceremony, share
/// one per target directory; the ceremony itself stays under test where it is the subject
/// (`tests/whole_key.rs`, the CLI and deployment tests). Never for a real key: anyone who can
/// read the cache can open the shares.
#[derive(Debug, Clone)]
pub struct CachedKey {
    dir: PathBuf,
    /// What the ceremony that made the key reported (its `stage_done` is not kept).
    pub outcome: KeygenOutcome,
}

impl CachedKey {
    /// The sealed file of share `index` in the cache.
    pub fn share_file(&self, index: u16) -> PathBuf {
        share_file(&self.dir, index)
    }

    /// Copies the three sealed shares into the data directories a [`LocalCluster`] in `dir`
    /// uses (owner-only, as a share writes them).
    pub fn install(&self, dir: &Path) -> Result<(), ThresholdError> {
        for index in 0..SHARES {
            self.install_share(index, &data_dir(dir, index))?;
        }
        Ok(())
    }

    /// Copies share `index` into `data_dir` (for a share run as its own process).
    pub fn install_share(&self, index: u16, data_dir: &Path) -> Result<(), ThresholdError> {
        std::fs::create_dir_all(data_dir).map_err(|e| ThresholdError::io(data_dir, e))?;
        let to = share_file(data_dir, index);
        crate::sealed::write_private_atomically(
            &to,
            &std::fs::read(self.share_file(index))
                .map_err(|e| ThresholdError::io(self.share_file(index), e))?,
        )
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredOutcome {
    ceremony_id: String,
    shared_public_key: String,
    chain_code: String,
    public_shares: Vec<String>,
    threshold: u16,
    addresses: Vec<(u32, String)>,
    elapsed_ms: u64,
}

impl StoredOutcome {
    fn of(outcome: &KeygenOutcome) -> Self {
        StoredOutcome {
            ceremony_id: outcome.ceremony_id.clone(),
            shared_public_key: hex::encode(outcome.key.shared_public_key),
            chain_code: hex::encode(outcome.key.chain_code),
            public_shares: outcome.key.public_shares.iter().map(hex::encode).collect(),
            threshold: outcome.key.threshold,
            addresses: outcome
                .addresses
                .iter()
                .map(|(n, a)| (*n, hex::encode(a)))
                .collect(),
            elapsed_ms: u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn outcome(&self) -> Option<KeygenOutcome> {
        let info = crate::proto::KeyInfo {
            shared_public_key: hex::decode(&self.shared_public_key).ok()?,
            chain_code: hex::decode(&self.chain_code).ok()?,
            public_shares: self
                .public_shares
                .iter()
                .map(hex::decode)
                .collect::<Result<_, _>>()
                .ok()?,
            threshold: u32::from(self.threshold),
        };
        let mut addresses = Vec::new();
        for (n, a) in &self.addresses {
            addresses.push((*n, hex::decode(a).ok()?.try_into().ok()?));
        }
        Some(KeygenOutcome {
            ceremony_id: self.ceremony_id.clone(),
            key: PublicKeyInfo::from_proto(&info).ok()?,
            addresses,
            elapsed: Duration::from_millis(self.elapsed_ms),
            stage_done: Vec::new(),
        })
    }
}

/// The test key of `cache_dir` (a test target directory): made by one real ceremony among
/// three in-process shares on [`cached_test_primes`] the first time it is asked for, read
/// from the cache after. Processes asking at once take turns on a file lock, so one ceremony
/// runs per cache. See [`CachedKey`].
pub async fn cached_test_key(cache_dir: &Path) -> Result<CachedKey, ThresholdError> {
    let dir = cache_dir.join("stratbox-threshold-test-key-v1");
    let lock_path = cache_dir.join("stratbox-threshold-test-key-v1.lock");
    std::fs::create_dir_all(cache_dir).map_err(|e| ThresholdError::io(cache_dir, e))?;
    let _lock = tokio::task::spawn_blocking({
        let lock_path = lock_path.clone();
        move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        }
    })
    .await
    .map_err(|e| ThresholdError::Config(format!("test key lock task: {e}")))?
    .map_err(|e| ThresholdError::io(&lock_path, e))?;

    let outcome_path = dir.join("key.json");
    // key.json is written last, so a cache holding it is complete.
    if let Ok(text) = std::fs::read_to_string(&outcome_path)
        && let Ok(stored) = serde_json::from_str::<StoredOutcome>(&text)
        && let Some(outcome) = stored.outcome()
        && (0..SHARES).all(|i| share_file(&dir, i).exists())
    {
        return Ok(CachedKey { dir, outcome });
    }

    tracing::info!("making the cached test key (one ceremony per cache dir)");
    let primes = tokio::task::spawn_blocking({
        let cache_dir = cache_dir.to_path_buf();
        move || cached_test_primes(&cache_dir)
    })
    .await
    .map_err(|e| ThresholdError::Config(format!("test primes task: {e}")))??;
    let work = tempfile::tempdir_in(cache_dir).map_err(|e| ThresholdError::io(cache_dir, e))?;
    let cluster = LocalCluster::start(work.path(), TEST_KEY_PASSPHRASE, Some(&primes)).await?;
    let outcome = keygen(&cluster.keygen_config(), |p| tracing::info!("{p}")).await?;
    cluster.shutdown().await?;

    std::fs::create_dir_all(&dir).map_err(|e| ThresholdError::io(&dir, e))?;
    for index in 0..SHARES {
        let from = share_file(&data_dir(work.path(), index), index);
        let bytes = std::fs::read(&from).map_err(|e| ThresholdError::io(&from, e))?;
        crate::sealed::write_private_atomically(&share_file(&dir, index), &bytes)?;
    }
    let text = serde_json::to_string_pretty(&StoredOutcome::of(&outcome))
        .map_err(|e| ThresholdError::format("test key", e))?;
    crate::sealed::write_private_atomically(&outcome_path, text.as_bytes())?;
    Ok(CachedKey { dir, outcome })
}

/// Parses a hexadecimal integer (as `Integer::to_string_radix(16)` prints it), for caches of
/// primes.
pub fn integer_from_hex(s: &str) -> Option<Integer> {
    Integer::from_str_radix(s, 16).ok()
}
