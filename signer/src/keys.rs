//! Where signatures come from. The service only ever sees a [`KeySource`]: an address per
//! account index and a signature over a 32-byte hash the service computed itself. No key
//! material passes through the service's own types.
//!
//! Two key sources exist, both from `stratbox-threshold`, chosen by the config file:
//! - `[threshold]`: the 2-of-3 threshold key (CGGMP21). The service is the coordinator; three
//!   share processes (`stratbox signer share --index I`) each hold one share, and the whole key
//!   exists nowhere. This is the only key source called MPC.
//! - `[keystore] dev_file`: development mode, the whole key in one encrypted file loaded into
//!   this process. Named as such in the logs and in `policy status`.
//!
//! Both derive account `i`'s key as the non-hardened child `m/i` of one master key, so a
//! policy written against one names the same kind of account indices on the other.

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::Address;

use crate::config::{SignerConfig, ThresholdConfig};

pub use stratbox_threshold::{
    DevKeystore, KeySource, Passphrase, Signature, ThresholdClient, ThresholdError as KeyError,
};

/// The variable a development keystore's passphrase is read from when no file is given.
pub const PASSPHRASE_ENV: &str = "STRATBOX_SIGNER_PASSPHRASE";

/// `0x`-prefixed lowercase hex of an address.
pub fn hex_addr(a: &[u8; 20]) -> String {
    format!("{:#x}", Address::from(*a))
}

/// Reads a passphrase from a file (one trailing newline removed) or, without a file, from
/// `STRATBOX_SIGNER_PASSPHRASE`. Never from a command-line flag: it would land in shell
/// history and `ps`.
pub fn read_passphrase(file: Option<&Path>) -> Result<Passphrase, KeyError> {
    Passphrase::from_file_or_env(file, PASSPHRASE_ENV)
}

/// Opens the key source the config names. A threshold key source connects to the share
/// processes and checks they hold the same committed key; a development keystore is
/// decrypted here (Argon2id, off the async workers).
pub async fn open(config: &SignerConfig) -> Result<Arc<dyn KeySource>, KeyError> {
    match (&config.keystore.dev_file, &config.threshold) {
        (Some(_), Some(_)) => Err(KeyError::Config(
            "the config sets both [keystore] dev_file and [threshold]: choose one".into(),
        )),
        (None, None) => Err(KeyError::Config(
            "the config names no key: set [threshold] (the 2-of-3 key) or, for development, \
             [keystore] dev_file"
                .into(),
        )),
        (Some(file), None) => {
            let passphrase = read_passphrase(config.keystore.passphrase_file.as_deref())?;
            let file = file.clone();
            let keys = tokio::task::spawn_blocking(move || DevKeystore::open(&file, &passphrase))
                .await
                .map_err(|e| KeyError::Config(format!("opening the keystore: {e}")))??;
            tracing::warn!(
                key_source = "dev-keystore",
                "signing with the DEVELOPMENT keystore: the whole key is in this process"
            );
            Ok(Arc::new(keys))
        }
        (None, Some(t)) => {
            let client = ThresholdClient::connect(&threshold_client_config(t)).await?;
            tracing::info!(
                key_source = "threshold-2of3-cggmp21",
                "signing with the threshold key: no process holds the whole key"
            );
            Ok(Arc::new(client))
        }
    }
}

/// The coordinator's connection settings from the `[threshold]` section.
pub fn threshold_client_config(t: &ThresholdConfig) -> stratbox_threshold::ClientConfig {
    let mut c =
        stratbox_threshold::ClientConfig::new(t.cluster.clone(), t.cert.clone(), t.key.clone());
    c.pool_target = t.presign_pool;
    c.presign_concurrency = t.presign_concurrency.max(1);
    c.rpc_timeout = std::time::Duration::from_millis(t.share_timeout_ms.max(1));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_addr_is_lowercase_and_prefixed() {
        assert_eq!(
            hex_addr(&[0xAB; 20]),
            "0xabababababababababababababababababababab"
        );
    }
}
