//! Reconstructs the whole private key from two decrypted share files. **Test-only**: built
//! only with the `insecure-key-export` feature, which this crate's own tests turn on and no
//! service build does. It exists so a test can know the key it then looks for, byte for
//! byte, in every share file and in the memory of every share process and the coordinator,
//! and assert it is in none of them.

use std::path::Path;

use cggmp21::generic_ec::SecretScalar;
use cggmp21::hd_wallet::{ExtendedKeyPair, ExtendedSecretKey, HdWallet, Slip10};
use cggmp21::supported_curves::Secp256k1;
use zeroize::Zeroizing;

use crate::error::ThresholdError;
use crate::sealed::{Passphrase, read_sealed};
use crate::share::{decode_share, share_purpose};
use crate::signature::DerivationPath;

/// The whole master key of a threshold key, rebuilt from shares.
pub struct ExportedKey {
    master: ExtendedKeyPair<Secp256k1>,
}

impl ExportedKey {
    /// The master secret key, big-endian.
    pub fn master_secret(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&self.master.secret_key().secret_key.as_ref().to_be_bytes());
        out
    }

    /// The secret key of the child at `path`, big-endian.
    pub fn child_secret(&self, path: &DerivationPath) -> Zeroizing<[u8; 32]> {
        let child = <Slip10 as HdWallet<Secp256k1>>::derive_child_key_pair_with_path(
            &self.master,
            path.indices().iter().copied(),
        );
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&child.secret_key().secret_key.as_ref().to_be_bytes());
        out
    }

    /// The master public key, SEC1 compressed, to check the reconstruction.
    pub fn master_public(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out.copy_from_slice(
            self.master
                .public_key()
                .public_key
                .to_bytes(true)
                .as_bytes(),
        );
        out
    }
}

/// Opens the share files `(index, path)` with `passphrase` and interpolates the secret key
/// (cggmp21's `reconstruct_secret_key`, behind its `spof` feature).
pub fn reconstruct(
    shares: &[(u16, &Path)],
    passphrase: &Passphrase,
) -> Result<ExportedKey, ThresholdError> {
    let mut key_shares = Vec::new();
    for (index, path) in shares {
        let bytes = read_sealed(path, passphrase, &share_purpose(*index))?;
        key_shares.push(decode_share(&bytes, path)?.key_share);
    }
    let chain_code = key_shares
        .first()
        .and_then(|k| k.core.key_info.chain_code)
        .ok_or_else(|| ThresholdError::format("shares", "no HD chain code"))?;
    let secret = cggmp21::key_share::reconstruct_secret_key(&key_shares)
        .map_err(|e| ThresholdError::format("reconstruction", e))?;
    let mut scalar = *secret.as_ref();
    Ok(ExportedKey {
        master: ExtendedKeyPair::from(ExtendedSecretKey {
            secret_key: SecretScalar::new(&mut scalar),
            chain_code,
        }),
    })
}

/// Share `index`'s own secret `x_index` (big-endian), decrypted from its share file: what a
/// test looks for in that file's raw bytes.
pub fn share_secret(
    index: u16,
    path: &Path,
    passphrase: &Passphrase,
) -> Result<Zeroizing<[u8; 32]>, ThresholdError> {
    let bytes = read_sealed(path, passphrase, &share_purpose(index))?;
    let share = decode_share(&bytes, path)?.key_share;
    let mut out = Zeroizing::new([0u8; 32]);
    let x: &SecretScalar<Secp256k1> = share.core.x.as_ref();
    out.copy_from_slice(x.as_ref().to_be_bytes().as_ref());
    Ok(out)
}
