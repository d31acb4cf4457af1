//! The one error type of this crate: what went wrong, said so that an operator can act on it,
//! and never carrying a secret (no passphrase, share or nonce ever enters a message).

use std::path::PathBuf;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// No passphrase was given, or it was empty.
    #[error("no passphrase: {0}")]
    Passphrase(String),
    /// The file did not decrypt: a wrong passphrase, or a file that was altered or belongs to
    /// something else (another share index, a keystore instead of a share).
    #[error(
        "{path}: cannot decrypt (wrong passphrase, or the file was altered or is not a {purpose})"
    )]
    Decrypt {
        /// The sealed file.
        path: PathBuf,
        /// What the file was opened as.
        purpose: String,
    },
    /// A file or message is not in the expected format.
    #[error("{what}: {detail}")]
    Format {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The configuration is inconsistent (cluster file, index, identities).
    #[error("configuration: {0}")]
    Config(String),
    /// TLS identities or connections could not be set up.
    #[error("tls: {0}")]
    Tls(String),
    /// A call to one share process failed.
    #[error("share {index}: {status}")]
    Share {
        /// The share's keygen index.
        index: u16,
        /// What the share (or the transport to it) answered.
        status: Box<tonic::Status>,
    },
    /// Fewer than the threshold of share processes could take part.
    #[error(
        "only {available} of the {needed} share processes needed could take part ({detail}); nothing was signed"
    )]
    NotEnoughShares {
        /// Share processes that answered.
        available: usize,
        /// The threshold.
        needed: usize,
        /// What the unavailable shares answered.
        detail: String,
    },
    /// No key exists yet: the keygen ceremony has not been run (or not committed).
    #[error("no threshold key: run the keygen ceremony first")]
    NoKey,
    /// The share processes disagree about the public key; something is badly wrong.
    #[error("share processes disagree about the key: {0}")]
    KeyMismatch(String),
    /// A derivation path contained a hardened index, which a shared key cannot derive.
    #[error("derivation index {0} is hardened; a threshold key derives only non-hardened children")]
    HardenedIndex(u32),
    /// The threshold protocol failed (aborted, a peer misbehaved, a message was malformed).
    #[error("{protocol} protocol failed: {detail}")]
    Protocol {
        /// Which protocol: aux info, keygen, presign.
        protocol: &'static str,
        /// The protocol's error chain.
        detail: String,
    },
    /// The combined signature does not verify under the derived public key: a share process
    /// answered a wrong partial signature. Nothing usable was produced.
    #[error("combined signature does not verify; a share process misbehaved")]
    InvalidSignature,
    /// Signing with a key file failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(String),
}

impl ThresholdError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ThresholdError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(what: impl Into<String>, detail: impl ToString) -> Self {
        ThresholdError::Format {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn share(index: u16, status: tonic::Status) -> Self {
        ThresholdError::Share {
            index,
            status: Box::new(status),
        }
    }
}

/// Renders an error with its whole `source()` chain, since protocol errors nest their reason.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
