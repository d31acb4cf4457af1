//! Zone C's keys: a secp256k1 key that no single process ever holds.
//!
//! The key is a 2-of-3 threshold ECDSA key made and used with CGGMP21 (the audited `cggmp21`
//! crate, pinned at 0.6.3): three share processes ([`run_share`]) each hold one share,
//! encrypted at rest; a distributed key generation ceremony ([`keygen`]) makes the shares
//! without the whole key ever existing; the signer service holds a [`ThresholdClient`] that
//! derives per-account keys (non-hardened BIP-32/SLIP-10, from public data) and signs with any
//! two shares, in one round once a presignature is ready. Only this protocol is called MPC
//! here. [`DevKeystore`] is the development mode: one encrypted file, one process, the whole
//! key; it is never called MPC. Both implement [`KeySource`].
//!
//! See `README.md` beside this crate for the protocol, transport, trust model, files, and how
//! the tests check that no file or process holds the whole key.
#![warn(missing_docs)]

pub mod bench;
pub mod ceremony;
pub mod client;
pub mod dev_keystore;
pub mod error;
pub mod identity;
#[cfg(feature = "insecure-key-export")]
pub mod insecure_export;
pub mod key_source;
pub mod local;
mod mesh;
pub mod public_key;
pub mod sealed;
pub mod share;
pub mod signature;

/// gRPC types of the share processes' contract (`proto/stratbox/threshold/v1/share.proto`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("stratbox.threshold.v1");
}

pub use ceremony::{KeygenConfig, KeygenOutcome, KeygenProgress, keygen};
pub use client::{ClientConfig, PAIRS, ThresholdClient};
pub use dev_keystore::DevKeystore;
pub use error::ThresholdError;
pub use identity::{Cluster, ClusterFiles, Identity, init_cluster};
pub use key_source::KeySource;
pub use public_key::PublicKeyInfo;
pub use sealed::{PASSPHRASE_ENV, Passphrase};
pub use share::{ShareConfig, run_share, run_share_on};
pub use signature::{DerivationPath, Signature, address_hex, address_of};

/// rustls needs one process-wide crypto provider; this crate uses ring. If another part of
/// the process installed one first, that one stays.
///
/// rustls 0.23.48 deprecates ring's provider because ring has no post-quantum key exchange.
/// The alternative (aws-lc-rs) is another large C build; these links are loopback/LAN mTLS
/// inside Zone C between pinned peers, and the gap (recorded traffic decrypted by a future
/// quantum computer) is noted in the README.
#[allow(deprecated)]
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
