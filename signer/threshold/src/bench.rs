//! `stratbox bench signer`: what threshold signing costs, measured beside single-key signing
//! of the same transactions in the same run.
//!
//! The three share servers run as tasks of this process on loopback (see [`crate::local`]),
//! speaking mutual TLS to each other and to the coordinator exactly as separate processes
//! do; the figures therefore include TLS, HTTP/2 and serialisation but not a network hop.
//! Steps: a full ceremony (fresh safe primes unless the caller provides some; none when the
//! caller provides a committed test key), then
//! presignatures generated for pair {0,1} (timed: presignatures per second), then `N`
//! EIP-1559 transactions, each signed once by the threshold key (online step: presignature
//! ready) and once by a development keystore (single key, k256), alternately, so both see the
//! same machine load. The background refill is off while signing, so the threshold figure is
//! the online step alone.

use std::fmt;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, Bytes, TxKind, U256};

use crate::ceremony::keygen;
use crate::client::ThresholdClient;
use crate::dev_keystore::DevKeystore;
use crate::error::ThresholdError;
use crate::local::{CachedKey, LocalCluster, Primes};
use crate::sealed::Passphrase;
use crate::signature::DerivationPath;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Transactions signed by each key (`--transactions N`).
    pub transactions: usize,
    /// Presignature generations at once while filling the pool (`--presign-concurrency`).
    pub presign_concurrency: usize,
    /// Primes to seed the shares with instead of generating them in the ceremony.
    pub primes: Option<[Primes; 3]>,
    /// A committed test key to sign with instead of running a ceremony at all (`--quick`).
    pub key: Option<CachedKey>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            transactions: 200,
            presign_concurrency: 2,
            primes: None,
            key: None,
        }
    }
}

/// Median and 99th percentile of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub median: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
}

impl Latency {
    /// From samples (empty gives zeros).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                Duration::ZERO
            } else {
                let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
                samples[rank - 1]
            }
        };
        Latency {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

/// What `stratbox bench signer` prints.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Transactions signed by each key.
    pub transactions: usize,
    /// Online threshold signing (presignature ready), per transaction.
    pub threshold: Latency,
    /// Single-key signing of the same hashes (dev keystore, k256).
    pub single_key: Latency,
    /// Presignatures generated while filling the pool.
    pub presignatures: usize,
    /// Wall time of that filling.
    pub presign_elapsed: Duration,
    /// Whole ceremony, from the coordinator's call to the commit; `None` when a cached key
    /// was used and no ceremony ran.
    pub dkg: Option<Duration>,
    /// When the slowest share had its primes (since the ceremony began).
    pub dkg_primes: Option<Duration>,
    /// When the slowest share finished aux-info generation.
    pub dkg_aux_info: Option<Duration>,
    /// When the slowest share finished the key generation proper.
    pub dkg_keygen: Option<Duration>,
    /// Whether the shares generated their primes during the ceremony.
    pub fresh_primes: bool,
}

impl BenchReport {
    /// Presignatures per second during filling.
    pub fn presignatures_per_second(&self) -> f64 {
        let secs = self.presign_elapsed.as_secs_f64();
        if secs > 0.0 {
            self.presignatures as f64 / secs
        } else {
            0.0
        }
    }

    /// Threshold median over single-key median.
    pub fn median_ratio(&self) -> f64 {
        let single = self.single_key.median.as_secs_f64();
        if single > 0.0 {
            self.threshold.median.as_secs_f64() / single
        } else {
            f64::INFINITY
        }
    }

    /// The target: online threshold signing under 10 ms median.
    pub fn meets_target(&self) -> bool {
        self.threshold.median < Duration::from_millis(10)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "signer: {} EIP-1559 transactions, each signed by both keys, alternately",
            self.transactions
        )?;
        writeln!(f, "{:<44} {:>12} {:>12}", "", "median", "p99")?;
        writeln!(
            f,
            "{:<44} {:>12} {:>12}",
            "threshold 2-of-3 (online, presignature ready)",
            ms(self.threshold.median),
            ms(self.threshold.p99)
        )?;
        writeln!(
            f,
            "{:<44} {:>12} {:>12}",
            "single key (dev keystore, k256)",
            ms(self.single_key.median),
            ms(self.single_key.p99)
        )?;
        writeln!(
            f,
            "{:<44} {:>12.1}x",
            "ratio threshold / single key (median)",
            self.median_ratio()
        )?;
        writeln!(
            f,
            "{:<44} {:>12.2}  ({} in {:.1} s)",
            "presignatures per second (pair 0,1)",
            self.presignatures_per_second(),
            self.presignatures,
            self.presign_elapsed.as_secs_f64()
        )?;
        let stage = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        match self.dkg {
            Some(dkg) => writeln!(
                f,
                "{:<44} {:>12}  (primes {} [{}], aux info {}, keygen {})",
                "DKG ceremony",
                format!("{:.1} s", dkg.as_secs_f64()),
                stage(self.dkg_primes),
                if self.fresh_primes {
                    "generated"
                } else {
                    "seeded"
                },
                stage(self.dkg_aux_info),
                stage(self.dkg_keygen)
            )?,
            None => writeln!(
                f,
                "{:<44} {:>12}  (a cached test key was used)",
                "DKG ceremony", "skipped"
            )?,
        }
        writeln!(
            f,
            "target: online threshold signing < 10 ms median: {}",
            if self.meets_target() {
                "met"
            } else {
                "NOT met"
            }
        )
    }
}

/// The `i`-th benchmark transaction.
pub fn bench_transaction(i: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id: 31337,
        nonce: i,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x11)),
        value: U256::from(1_000_000_000_000u64 + i),
        access_list: Default::default(),
        input: Bytes::new(),
    }
}

/// Runs the benchmark (see the module docs) in a temporary directory.
pub async fn run(config: BenchConfig) -> Result<BenchReport, ThresholdError> {
    let dir = tempfile::tempdir().map_err(|e| ThresholdError::io(std::env::temp_dir(), e))?;
    let passphrase = "stratbox bench passphrase";
    let (cluster, outcome) = match &config.key {
        Some(key) => (LocalCluster::start_with_key(dir.path(), key).await?, None),
        None => {
            let cluster =
                LocalCluster::start(dir.path(), passphrase, config.primes.as_ref()).await?;
            let outcome = keygen(&cluster.keygen_config(), |p| tracing::info!("{p}")).await?;
            (cluster, Some(outcome))
        }
    };
    let stage = |name: &str| {
        outcome.as_ref().and_then(|o| {
            o.stage_done
                .iter()
                .find(|(s, _)| s == name)
                .map(|(_, d)| *d)
        })
    };

    let mut client_config = cluster.client_config();
    client_config.pool_target = 0;
    let client = ThresholdClient::connect(&client_config).await?;

    let n = config.transactions.max(1);
    let concurrency = config.presign_concurrency.max(1);
    let started = Instant::now();
    let mut made = 0;
    while made < n {
        let batch = concurrency.min(n - made);
        let results = futures::future::join_all((0..batch).map(|_| client.presign([0, 1]))).await;
        for r in results {
            r?;
            made += 1;
        }
    }
    let presign_elapsed = started.elapsed();

    let keystore = DevKeystore::create(
        &dir.path().join("dev.keystore"),
        &Passphrase::new(passphrase)?,
    )?;
    let account = DerivationPath::account(0)?;
    let mut threshold = Vec::with_capacity(n);
    let mut single = Vec::with_capacity(n);
    for i in 0..n {
        let hash: [u8; 32] = bench_transaction(i as u64).signature_hash().0;
        let t = Instant::now();
        let sig = client.sign_prehash_with([0, 1], &account, hash).await?;
        threshold.push(t.elapsed());
        let t = Instant::now();
        let single_sig = keystore.sign_prehash_at(&account, hash)?;
        single.push(t.elapsed());
        if sig.recover_address(&hash)? != client.address(&account)?
            || single_sig.recover_address(&hash)? != keystore.address_at(&account)?
        {
            return Err(ThresholdError::InvalidSignature);
        }
    }
    drop(client);
    cluster.shutdown().await?;
    Ok(BenchReport {
        transactions: n,
        threshold: Latency::of(&mut threshold),
        single_key: Latency::of(&mut single),
        presignatures: made,
        presign_elapsed,
        dkg: outcome.as_ref().map(|o| o.elapsed),
        dkg_primes: stage("primes"),
        dkg_aux_info: stage("aux_info"),
        dkg_keygen: stage("keygen"),
        fresh_primes: config.primes.is_none() && config.key.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&mut samples);
        assert_eq!(l.median, Duration::from_millis(50));
        assert_eq!(l.p99, Duration::from_millis(99));
        assert_eq!(Latency::of(&mut []).median, Duration::ZERO);
    }
}
