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

use crate::ceremony::KeygenConfig;
use crate::client::ClientConfig;
use crate::error::ThresholdError;
use crate::identity::{ClusterFiles, SHARES, init_cluster};
use crate::sealed::{Passphrase, write_sealed};
use crate::share::{ShareConfig, primes_file, run_share_on};

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

/// Parses a hexadecimal integer (as `Integer::to_string_radix(16)` prints it), for caches of
/// primes.
pub fn integer_from_hex(s: &str) -> Option<Integer> {
    Integer::from_str_radix(s, 16).ok()
}
