//! stratbox Zone C: the signer.
//!
//! The engine (Zone B) is its only client and is assumed compromised. So the signer:
//! - talks only mutual TLS 1.3, accepting client certificates from its CA whose SPKI
//!   fingerprint is on its allowlist ([`tls`]), refusing everything else in the handshake;
//! - is sent transactions in plain EIP-1559 fields, builds them and computes the hash
//!   itself ([`tx`]), and decodes the calldata to know which tokens leave the account, how
//!   much and to whom ([`trade`]);
//! - judges them against its own deny-by-default policy ([`policy`]), its own record of
//!   nonces signed ([`nonce`]) and the day's spend, in its own store ([`store`]), never the
//!   engine's database;
//! - asks humans above an account's threshold ([`service`], approvals on their own port)
//!   and records every decision in a hash-chained audit log ([`audit`]);
//! - signs through a [`keys::KeySource`]: the 2-of-3 threshold key of `stratbox-threshold`
//!   (three share processes, the whole key nowhere), or in development mode the single
//!   [`keys::DevKeystore`].
//!
//! Refusals carry a [`reason::Reason`] code. `signer/README.md` lists them and the policy
//! format.

#![warn(missing_docs)]

pub mod audit;
pub mod certs;
pub mod config;
pub mod keys;
pub mod nonce;
pub mod policy;
pub mod reason;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
pub mod trade;
pub mod tx;

pub use keys::{DevKeystore, KeyError, KeySource, Signature};
pub use policy::Policy;
pub use reason::{Reason, Refusal};
pub use server::{Running, start};
pub use service::Signer;
