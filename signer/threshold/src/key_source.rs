//! The one surface the signer service signs through, whichever kind of key stands behind it.

use async_trait::async_trait;

use crate::client::ThresholdClient;
use crate::dev_keystore::DevKeystore;
use crate::error::ThresholdError;
use crate::signature::{DerivationPath, Signature};

/// A source of account keys: address of account `account` (child `m/account` of the master
/// key) and signatures over 32-byte hashes. The signer service holds an
/// `Arc<dyn KeySource>`.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The address of `account`.
    fn address(&self, account: u32) -> Result<[u8; 20], ThresholdError>;

    /// Signs `hash` (for a transaction, its signing hash) with `account`'s key.
    async fn sign_prehash(&self, account: u32, hash: [u8; 32])
    -> Result<Signature, ThresholdError>;

    /// [`sign_prehash`](Self::sign_prehash), with the trade's trace id carried to wherever
    /// the key lives.
    async fn sign_prehash_traced(
        &self,
        account: u32,
        hash: [u8; 32],
        trace_id: &str,
    ) -> Result<Signature, ThresholdError> {
        let _ = trace_id;
        self.sign_prehash(account, hash).await
    }

    /// What kind of key this is, for logs and the service's status: `threshold-2of3-cggmp21`
    /// or `dev-keystore`.
    fn kind(&self) -> &'static str;
}

#[async_trait]
impl KeySource for ThresholdClient {
    fn address(&self, account: u32) -> Result<[u8; 20], ThresholdError> {
        ThresholdClient::address(self, &DerivationPath::account(account)?)
    }

    async fn sign_prehash(
        &self,
        account: u32,
        hash: [u8; 32],
    ) -> Result<Signature, ThresholdError> {
        ThresholdClient::sign_prehash(self, &DerivationPath::account(account)?, hash).await
    }

    async fn sign_prehash_traced(
        &self,
        account: u32,
        hash: [u8; 32],
        trace_id: &str,
    ) -> Result<Signature, ThresholdError> {
        self.sign_prehash_traced(&DerivationPath::account(account)?, hash, trace_id)
            .await
    }

    fn kind(&self) -> &'static str {
        "threshold-2of3-cggmp21"
    }
}

#[async_trait]
impl KeySource for DevKeystore {
    fn address(&self, account: u32) -> Result<[u8; 20], ThresholdError> {
        self.address_at(&DerivationPath::account(account)?)
    }

    async fn sign_prehash(
        &self,
        account: u32,
        hash: [u8; 32],
    ) -> Result<Signature, ThresholdError> {
        self.sign_prehash_at(&DerivationPath::account(account)?, hash)
    }

    fn kind(&self) -> &'static str {
        "dev-keystore"
    }
}
