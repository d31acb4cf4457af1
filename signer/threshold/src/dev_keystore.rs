//! Development mode: the whole key in one encrypted file, loaded into one process.
//!
//! This is the opposite of the threshold key and is named so everywhere: it exists so a
//! developer can run the signer without three share processes. It has the same surface
//! (`address`, `sign_prehash`, the same `m/account` derivation), so code written against
//! [`KeySource`](crate::KeySource) runs unchanged on either. The file is sealed like a key
//! share (Argon2id + XChaCha20-Poly1305, see [`crate::sealed`]) and holds the master secret key
//! and chain code; the process that opens it holds the whole key in memory.

use std::path::Path;

use cggmp21::generic_ec::{Scalar, SecretScalar};
use cggmp21::hd_wallet::{ExtendedKeyPair, ExtendedSecretKey, HdWallet, Slip10};
use cggmp21::supported_curves::Secp256k1;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::error::ThresholdError;
use crate::sealed::{Passphrase, read_sealed, write_sealed};
use crate::signature::{DerivationPath, Signature, address_of};

const PURPOSE: &str = "stratbox dev keystore (single key, development mode)";

/// A single-key keystore file: development mode, not a threshold key.
pub struct DevKeystore {
    master: ExtendedKeyPair<Secp256k1>,
}

impl std::fmt::Debug for DevKeystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKeystore(<single key, development mode>)")
    }
}

impl DevKeystore {
    /// Creates a keystore with a fresh random key at `path`; refuses to overwrite a file.
    pub fn create(path: &Path, passphrase: &Passphrase) -> Result<Self, ThresholdError> {
        if path.exists() {
            return Err(ThresholdError::Config(format!(
                "{} exists; refusing to overwrite a keystore",
                path.display()
            )));
        }
        let mut secret = Zeroizing::new([0u8; 64]);
        OsRng.fill_bytes(&mut secret[..]);
        let keystore = DevKeystore::from_bytes(&secret)?;
        let mut plain = Zeroizing::new([0u8; 64]);
        plain[..32].copy_from_slice(
            &keystore
                .master
                .secret_key()
                .secret_key
                .as_ref()
                .to_be_bytes(),
        );
        plain[32..].copy_from_slice(keystore.master.chain_code());
        write_sealed(path, passphrase, PURPOSE, &plain[..])?;
        Ok(keystore)
    }

    /// Opens the keystore at `path`.
    pub fn open(path: &Path, passphrase: &Passphrase) -> Result<Self, ThresholdError> {
        let plain = read_sealed(path, passphrase, PURPOSE)?;
        let bytes: &[u8; 64] = plain
            .as_slice()
            .try_into()
            .map_err(|_| ThresholdError::format(path.display().to_string(), "not 64 bytes"))?;
        DevKeystore::from_bytes(bytes)
    }

    fn from_bytes(bytes: &[u8; 64]) -> Result<Self, ThresholdError> {
        let mut scalar = Scalar::<Secp256k1>::from_be_bytes_mod_order(&bytes[..32]);
        if scalar == Scalar::zero() {
            return Err(ThresholdError::format("dev keystore", "zero secret key"));
        }
        let mut chain_code = [0u8; 32];
        chain_code.copy_from_slice(&bytes[32..]);
        let secret = ExtendedSecretKey {
            secret_key: SecretScalar::new(&mut scalar),
            chain_code,
        };
        Ok(DevKeystore {
            master: ExtendedKeyPair::from(secret),
        })
    }

    fn child(&self, path: &DerivationPath) -> Result<k256::ecdsa::SigningKey, ThresholdError> {
        let child = <Slip10 as HdWallet<Secp256k1>>::derive_child_key_pair_with_path(
            &self.master,
            path.indices().iter().copied(),
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(
            child
                .secret_key()
                .secret_key
                .as_ref()
                .to_be_bytes()
                .as_ref(),
        );
        k256::ecdsa::SigningKey::from_slice(&bytes[..])
            .map_err(|e| ThresholdError::Signing(format!("derived key: {e}")))
    }

    /// The address of the account at `path`.
    pub fn address_at(&self, path: &DerivationPath) -> Result<[u8; 20], ThresholdError> {
        Ok(address_of(self.child(path)?.verifying_key()))
    }

    /// Signs `hash` with the key at `path`.
    pub fn sign_prehash_at(
        &self,
        path: &DerivationPath,
        hash: [u8; 32],
    ) -> Result<Signature, ThresholdError> {
        let key = self.child(path)?;
        let (sig, _) = key
            .sign_prehash_recoverable(&hash)
            .map_err(|e| ThresholdError::Signing(e.to_string()))?;
        let (r, s) = sig.split_bytes();
        Signature::from_verified(r.into(), s.into(), key.verifying_key(), &hash)
    }

    /// The master extended public key's public key (SEC1 compressed) and chain code, for
    /// comparing with a threshold key's derivation in tests.
    pub fn master_public(&self) -> ([u8; 33], [u8; 32]) {
        let point = self.master.public_key().public_key.to_bytes(true);
        let mut pk = [0u8; 33];
        pk.copy_from_slice(point.as_bytes());
        (pk, *self.master.chain_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_signs_recoverably_and_reopens_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.keystore");
        let pass = Passphrase::new("dev only").unwrap();
        let ks = DevKeystore::create(&path, &pass).unwrap();
        let account = DerivationPath::account(5).unwrap();
        let hash = [0x42; 32];
        let sig = ks.sign_prehash_at(&account, hash).unwrap();
        assert_eq!(
            sig.recover_address(&hash).unwrap(),
            ks.address_at(&account).unwrap()
        );
        assert_ne!(
            ks.address_at(&account).unwrap(),
            ks.address_at(&DerivationPath::account(6).unwrap()).unwrap()
        );
        let again = DevKeystore::open(&path, &pass).unwrap();
        assert_eq!(
            again.address_at(&account).unwrap(),
            ks.address_at(&account).unwrap()
        );
        assert!(matches!(
            DevKeystore::open(&path, &Passphrase::new("other").unwrap()),
            Err(ThresholdError::Decrypt { .. })
        ));
        assert!(
            DevKeystore::create(&path, &pass).is_err(),
            "overwrote a keystore"
        );
    }

    #[test]
    fn derivation_matches_the_public_only_derivation() {
        // The coordinator derives addresses from the master public key alone; the keystore
        // from the secret. Both must land on the same child.
        let dir = tempfile::tempdir().unwrap();
        let ks =
            DevKeystore::create(&dir.path().join("k"), &Passphrase::new("p").unwrap()).unwrap();
        let (pk, chain_code) = ks.master_public();
        let info = crate::PublicKeyInfo {
            shared_public_key: pk,
            chain_code,
            public_shares: Vec::new(),
            threshold: 1,
        };
        for account in [0, 1, 77, (1 << 31) - 1] {
            let path = DerivationPath::account(account).unwrap();
            assert_eq!(info.address(&path).unwrap(), ks.address_at(&path).unwrap());
        }
    }
}
