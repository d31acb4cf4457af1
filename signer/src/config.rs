//! The signer's own configuration file (`signer.toml`): where it listens, its TLS files,
//! who may connect, where its store, policy and keys are. Separate from the policy file:
//! the policy says what may be signed and changes under a timelock; this says how the
//! service runs and changes with a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::tls::{Allowlist, Peer, Role, TlsError, TlsFiles, parse_fingerprint};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the config's shape.
    #[error("signer config: {0}")]
    Parse(String),
    /// Inconsistent content.
    #[error("signer config: {0}")]
    Invalid(String),
    /// A fingerprint did not parse.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// An allowlisted engine certificate.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// Name for the audit log.
    pub name: String,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (hex).
    pub spki_sha256: String,
}

/// An allowlisted approver certificate.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApproverEntry {
    /// Their name: what the audit log and the approvals record.
    pub name: String,
    /// `approver` or `viewer`.
    pub role: Role,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (hex).
    pub spki_sha256: String,
}

/// Where the development keystore is.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct KeystoreConfig {
    /// The development keystore file (`stratbox signer dev-keystore create`).
    pub dev_file: Option<PathBuf>,
    /// The file holding its passphrase; without it `STRATBOX_SIGNER_PASSPHRASE` is read.
    pub passphrase_file: Option<PathBuf>,
}

/// The threshold key: where the cluster file and the coordinator's identity are, and how
/// many presignatures to keep ready.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The cluster file (`stratbox signer cluster init`): the three shares' addresses and
    /// pinned certificates, and the coordinator's.
    pub cluster: PathBuf,
    /// The coordinator's certificate (PEM), the one the cluster file pins.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Presignatures kept ready per pair of shares (default 16); 0 makes every signature
    /// compute its presignature first (slower, for tests).
    #[serde(default = "default_presign_pool")]
    pub presign_pool: usize,
    /// Presignature generations at once (default 1: on a small machine they compete with
    /// signing for the cores).
    #[serde(default = "default_presign_concurrency")]
    pub presign_concurrency: usize,
    /// Milliseconds a share gets to answer a signing call before the other pair is tried
    /// (default 2000).
    #[serde(default = "default_share_timeout_ms")]
    pub share_timeout_ms: u64,
}

fn default_presign_pool() -> usize {
    16
}
fn default_presign_concurrency() -> usize {
    1
}
fn default_share_timeout_ms() -> u64 {
    2000
}

fn default_database() -> String {
    "sqlite://.stratbox/signer.db".into()
}
fn default_listen() -> String {
    "127.0.0.1:50061".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:50062".into()
}
fn default_timelock() -> u64 {
    24 * 60 * 60
}
fn default_ttl() -> u64 {
    60 * 60
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// `sqlite://PATH` (default `sqlite://.stratbox/signer.db`) or `postgres://…`.
    #[serde(default = "default_database")]
    pub database: String,
    /// The policy file.
    pub policy: PathBuf,
    /// Seconds a loosening policy change waits (default 24 h).
    #[serde(default = "default_timelock")]
    pub policy_timelock_secs: u64,
    /// Seconds an approval stays open (default 1 h).
    #[serde(default = "default_ttl")]
    pub approval_ttl_secs: u64,
    /// The engine's port (default 127.0.0.1:50061).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The approvers' port (default 127.0.0.1:50062).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// The signer's certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// Its key (PEM).
    pub tls_key: PathBuf,
    /// The CA that issues client certificates (PEM).
    pub client_ca: PathBuf,
    /// The development keystore (only when `[threshold]` is absent).
    #[serde(default)]
    pub keystore: KeystoreConfig,
    /// The threshold key (production).
    #[serde(default)]
    pub threshold: Option<ThresholdConfig>,
    /// Who may ask for signatures.
    #[serde(default)]
    pub engine_clients: Vec<ClientEntry>,
    /// Who may decide approvals.
    #[serde(default)]
    pub approvers: Vec<ApproverEntry>,
}

impl SignerConfig {
    /// Reads a config file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<SignerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut c: SignerConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut c.policy);
        fix(&mut c.tls_cert);
        fix(&mut c.tls_key);
        fix(&mut c.client_ca);
        if let Some(p) = c.keystore.dev_file.as_mut() {
            fix(p);
        }
        if let Some(p) = c.keystore.passphrase_file.as_mut() {
            fix(p);
        }
        if let Some(t) = c.threshold.as_mut() {
            fix(&mut t.cluster);
            fix(&mut t.cert);
            fix(&mut t.key);
        }
        c.check()?;
        Ok(c)
    }

    /// Checks the allowlists: names and fingerprints unique, and no certificate on both.
    pub fn check(&self) -> Result<(), ConfigError> {
        match (&self.keystore.dev_file, &self.threshold) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "both [keystore] dev_file and [threshold] are set: choose one key".into(),
                ));
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "no key: set [threshold] (the 2-of-3 key) or, for development, \
                     [keystore] dev_file"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.threshold.is_some() && self.keystore.passphrase_file.is_some() {
            return Err(ConfigError::Invalid(
                "[keystore] passphrase_file is for the development keystore; a threshold \
                 key's passphrases belong to its share processes"
                    .into(),
            ));
        }
        self.engine_allowlist()?;
        self.admin_allowlist()?;
        let engine: Vec<[u8; 32]> = self
            .engine_clients
            .iter()
            .map(|c| parse_fingerprint(&c.spki_sha256))
            .collect::<Result<_, _>>()?;
        for a in &self.approvers {
            if engine.contains(&parse_fingerprint(&a.spki_sha256)?) {
                return Err(ConfigError::Invalid(format!(
                    "approver {} uses an engine certificate: the engine must never approve",
                    a.name
                )));
            }
            if a.role == Role::Engine {
                return Err(ConfigError::Invalid(format!(
                    "approver {} has role engine",
                    a.name
                )));
            }
        }
        Ok(())
    }

    /// The engine port's allowlist.
    pub fn engine_allowlist(&self) -> Result<Arc<Allowlist>, ConfigError> {
        let mut a = Allowlist::default();
        let mut names = std::collections::BTreeSet::new();
        for c in &self.engine_clients {
            if !names.insert(c.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "engine client {} listed twice",
                    c.name
                )));
            }
            a.insert(
                parse_fingerprint(&c.spki_sha256)?,
                Peer {
                    name: c.name.clone(),
                    role: Role::Engine,
                },
            );
        }
        Ok(Arc::new(a))
    }

    /// The admin port's allowlist.
    pub fn admin_allowlist(&self) -> Result<Arc<Allowlist>, ConfigError> {
        let mut a = Allowlist::default();
        let mut names = std::collections::BTreeSet::new();
        for c in &self.approvers {
            if !names.insert(c.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "approver {} listed twice",
                    c.name
                )));
            }
            a.insert(
                parse_fingerprint(&c.spki_sha256)?,
                Peer {
                    name: c.name.clone(),
                    role: c.role,
                },
            );
        }
        Ok(Arc::new(a))
    }

    /// The TLS files.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.client_ca.clone(),
        }
    }
}
