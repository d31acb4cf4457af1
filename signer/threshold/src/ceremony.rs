//! The keygen ceremony, driven by the coordinator: all three share processes run CGGMP21's
//! auxiliary-info generation (Paillier keys and ring-Pedersen parameters, with their
//! zero-knowledge proofs) and then the 2-of-3 distributed key generation with HD support,
//! talking to each other directly. Each writes only its own share, sealed, as *pending*; once
//! the coordinator has seen all three report the same public key it commits them. The whole
//! key is never computed anywhere: each share ends with its own polynomial evaluation.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand_core::{OsRng, RngCore};

use crate::error::ThresholdError;
use crate::identity::{Cluster, Identity, SHARES, THRESHOLD};
use crate::proto;
use crate::public_key::PublicKeyInfo;
use crate::share::share_channel;
use crate::signature::{DerivationPath, address_hex};

/// Configuration of `stratbox signer keygen`; each field is one flag (in brackets).
#[derive(Debug, Clone)]
pub struct KeygenConfig {
    /// The cluster file (`--cluster FILE`).
    pub cluster: PathBuf,
    /// The coordinator's TLS certificate (`--cert FILE`).
    pub cert: PathBuf,
    /// The coordinator's TLS key (`--key FILE`).
    pub key: PathBuf,
    /// How many account addresses (`m/0` … `m/N-1`) to print (`--accounts N`).
    pub accounts: u32,
    /// Give up after this long (`--timeout 60m`); prime generation dominates.
    pub timeout: Duration,
}

impl KeygenConfig {
    /// Defaults: 3 accounts shown, 60 minutes.
    pub fn new(cluster: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        KeygenConfig {
            cluster,
            cert,
            key,
            accounts: 3,
            timeout: Duration::from_secs(60 * 60),
        }
    }
}

/// One progress report from one share process.
#[derive(Debug, Clone)]
pub struct KeygenProgress {
    /// Which share.
    pub share: u16,
    /// `primes`, `aux_info`, `keygen` or `sealed`.
    pub stage: String,
    /// What happened in that stage.
    pub detail: String,
    /// Since that share started the ceremony.
    pub elapsed: Duration,
}

impl fmt::Display for KeygenProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>7.1}s] share {}: {} {}",
            self.elapsed.as_secs_f64(),
            self.share,
            self.stage,
            self.detail
        )
    }
}

/// What the ceremony made.
#[derive(Debug, Clone)]
pub struct KeygenOutcome {
    /// The ceremony's id (hex), recorded in each share file.
    pub ceremony_id: String,
    /// The key's public data.
    pub key: PublicKeyInfo,
    /// `(account, address)` for the first accounts.
    pub addresses: Vec<(u32, [u8; 20])>,
    /// Wall time of the whole ceremony.
    pub elapsed: Duration,
    /// Per stage, the time the slowest share took to finish it (since the ceremony began).
    pub stage_done: Vec<(String, Duration)>,
}

impl fmt::Display for KeygenOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "threshold key (2-of-3, CGGMP21, secp256k1)")?;
        writeln!(f, "  ceremony          {}", self.ceremony_id)?;
        writeln!(
            f,
            "  master public key {}",
            hex::encode(self.key.shared_public_key)
        )?;
        writeln!(
            f,
            "  chain code        {}",
            hex::encode(self.key.chain_code)
        )?;
        writeln!(f, "  took              {:.1}s", self.elapsed.as_secs_f64())?;
        for (account, address) in &self.addresses {
            writeln!(f, "  account m/{account:<6}  {}", address_hex(address))?;
        }
        Ok(())
    }
}

/// Runs the ceremony among the cluster's three share processes (all three must be up),
/// reporting progress to `on_progress`, and commits the result.
pub async fn keygen(
    config: &KeygenConfig,
    mut on_progress: impl FnMut(&KeygenProgress) + Send,
) -> Result<KeygenOutcome, ThresholdError> {
    crate::install_crypto_provider();
    let cluster = Cluster::load(&config.cluster)?;
    let identity = Identity::load(&config.cert, &config.key)?;
    let mut ceremony_id = [0u8; 16];
    OsRng.fill_bytes(&mut ceremony_id);
    let started = Instant::now();
    tracing::info!(ceremony = %hex::encode(ceremony_id), "keygen ceremony starting");

    let mut clients = Vec::new();
    for index in 0..SHARES {
        clients.push(share_channel(
            &cluster,
            index,
            &identity,
            Duration::from_secs(5),
        )?);
    }
    let mut streams = Vec::new();
    for (index, client) in (0..SHARES).zip(clients.iter()) {
        let request = proto::KeygenRequest {
            ceremony_id: ceremony_id.to_vec(),
            threshold: u32::from(THRESHOLD),
        };
        let stream = client
            .clone()
            .keygen(request)
            .await
            .map_err(|status| ThresholdError::share(index, status))?
            .into_inner();
        streams.push(stream.map(move |event| (index, event)).boxed());
    }
    let mut merged = futures::stream::select_all(streams);
    let mut results: Vec<Option<PublicKeyInfo>> = vec![None; usize::from(SHARES)];
    let mut stage_done: Vec<(String, Duration)> = Vec::new();
    let deadline = tokio::time::Instant::now() + config.timeout;
    while results.iter().any(Option::is_none) {
        let next = tokio::time::timeout_at(deadline, merged.next())
            .await
            .map_err(|_| ThresholdError::Timeout("keygen ceremony".into()))?;
        let Some((index, event)) = next else {
            let missing: Vec<_> = (0..SHARES)
                .filter(|i| results[usize::from(*i)].is_none())
                .collect();
            return Err(ThresholdError::Protocol {
                protocol: "keygen ceremony",
                detail: format!("shares {missing:?} ended without a result"),
            });
        };
        let event = event.map_err(|status| ThresholdError::share(index, status))?;
        match event.event {
            Some(proto::keygen_event::Event::Progress(p)) => {
                let progress = KeygenProgress {
                    share: index,
                    stage: p.stage,
                    detail: p.detail,
                    elapsed: Duration::from_millis(p.elapsed_ms),
                };
                tracing::info!(share = index, stage = %progress.stage, detail = %progress.detail, "keygen progress");
                if progress.detail == "done" || progress.detail == "ready" {
                    match stage_done.iter_mut().find(|(s, _)| *s == progress.stage) {
                        Some((_, t)) => *t = (*t).max(progress.elapsed),
                        None => stage_done.push((progress.stage.clone(), progress.elapsed)),
                    }
                }
                on_progress(&progress);
            }
            Some(proto::keygen_event::Event::Done(info)) => {
                results[usize::from(index)] = Some(PublicKeyInfo::from_proto(&info)?);
            }
            None => {}
        }
    }
    let infos: Vec<PublicKeyInfo> = results.into_iter().flatten().collect();
    let key = infos[0].clone();
    if let Some(other) = infos.iter().position(|i| *i != key) {
        return Err(ThresholdError::KeyMismatch(format!(
            "share {other} finished with a different public key; nothing was committed"
        )));
    }
    for (index, client) in (0..SHARES).zip(clients.iter()) {
        client
            .clone()
            .commit_key(proto::CommitKeyRequest {
                ceremony_id: ceremony_id.to_vec(),
                shared_public_key: key.shared_public_key.to_vec(),
            })
            .await
            .map_err(|status| ThresholdError::share(index, status))?;
    }
    let mut addresses = Vec::new();
    for account in 0..config.accounts {
        addresses.push((account, key.address(&DerivationPath::account(account)?)?));
    }
    let outcome = KeygenOutcome {
        ceremony_id: hex::encode(ceremony_id),
        key,
        addresses,
        elapsed: started.elapsed(),
        stage_done,
    };
    tracing::info!(ceremony = %outcome.ceremony_id, key = %hex::encode(outcome.key.shared_public_key), elapsed = ?outcome.elapsed, "keygen ceremony committed");
    Ok(outcome)
}
