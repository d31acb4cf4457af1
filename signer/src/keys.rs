//! Where signatures come from. The service only ever sees [`KeySource`]: an address per
//! account index and a signature over a 32-byte hash the service computed itself. Keys never
//! leave the key source, and no key material passes through the service's own types.
//!
//! [`DevKeystore`] is the development key source: every private key in one encrypted file in
//! this process. It exists so the service can be built and tested end to end; a production
//! signer plugs in a key source whose keys no single process holds.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use alloy_primitives::{Address, keccak256};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use k256::ecdsa::SigningKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// A boxed future, so [`KeySource`] stays object-safe (`Arc<dyn KeySource>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An ECDSA secp256k1 signature in Ethereum's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Big-endian `r`.
    pub r: [u8; 32],
    /// Big-endian `s`, in the lower half of the curve order (EIP-2).
    pub s: [u8; 32],
    /// Whether the nonce point's y is odd (the recovery id's low bit).
    pub y_parity: bool,
}

/// Why a key source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key source holds no key for this account index.
    #[error("no key for account index {0}")]
    UnknownAccount(u32),
    /// Signing failed (for a remote key source: it did not answer, or answered wrongly).
    #[error("signing failed: {0}")]
    Signing(String),
    /// The keystore file could not be read, decrypted or written.
    #[error("keystore: {0}")]
    Keystore(String),
}

/// A source of keys and signatures. Small on purpose: the service is generic over
/// `Arc<dyn KeySource>`, and a key source that spreads each key over several processes
/// implements exactly this.
pub trait KeySource: Send + Sync {
    /// What kind of key source this is, for logs and `policy status` ("dev-keystore", …).
    fn kind(&self) -> &'static str;
    /// The Ethereum address of the key at `account_index`.
    fn address(&self, account_index: u32) -> Result<[u8; 20], KeyError>;
    /// Signs a 32-byte hash the caller computed. The key source does not see what it signs.
    fn sign_prehash(
        &self,
        account_index: u32,
        hash: [u8; 32],
    ) -> BoxFuture<'_, Result<Signature, KeyError>>;
}

/// The file kind written in every development keystore, so nothing mistakes it for a
/// production key store.
pub const DEV_KEYSTORE_KIND: &str = "stratbox-dev-keystore";

/// Argon2id cost of a new keystore. [`KdfParams::default`] is for real use; tests pass
/// [`KdfParams::fast_for_tests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        // OWASP's argon2id recommendation (m = 46 MiB, t = 1) rounded up.
        Self {
            m_cost: 64 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters so tests do not spend seconds per keystore. Never for real keys.
    pub fn fast_for_tests() -> Self {
        Self {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }
}

/// The file: public header (bound into the ciphertext as associated data) and the
/// encrypted concatenation of the 32-byte secret keys.
#[derive(Debug, Serialize, Deserialize)]
struct KeystoreFile {
    kind: String,
    version: u32,
    kdf: String,
    kdf_params: KdfParams,
    salt: String,
    cipher: String,
    nonce: String,
    addresses: Vec<String>,
    ciphertext: String,
}

impl KeystoreFile {
    /// Associated data: everything but the nonce and ciphertext, so an edited address list
    /// or weakened parameters fail decryption instead of misleading the reader.
    fn aad(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}:{}:{}|{}|{}|{}",
            self.kind,
            self.version,
            self.kdf,
            self.kdf_params.m_cost,
            self.kdf_params.t_cost,
            self.kdf_params.p_cost,
            self.salt,
            self.cipher,
            self.addresses.join(",")
        )
        .into_bytes()
    }
}

/// Development mode: every account's private key in one file, encrypted with a key derived
/// from a passphrase (Argon2id) under XChaCha20-Poly1305, decrypted into this process at
/// start. Anyone who reads this process's memory has the keys; use it for development and
/// tests only.
pub struct DevKeystore {
    keys: Vec<SigningKey>,
    addresses: Vec<[u8; 20]>,
}

impl std::fmt::Debug for DevKeystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses only: a Debug print must never show a key.
        f.debug_struct("DevKeystore")
            .field(
                "addresses",
                &self.addresses.iter().map(hex_addr).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `0x` + 40 lowercase hex digits.
pub fn hex_addr(a: &[u8; 20]) -> String {
    format!("0x{}", hex::encode(a))
}

fn address_of(key: &SigningKey) -> [u8; 20] {
    let point = key.verifying_key().to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| KeyError::Keystore(format!("argon2 parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| KeyError::Keystore(format!("argon2: {e}")))?;
    Ok(key)
}

impl DevKeystore {
    /// Makes `accounts` new random keys and writes them to `path`, encrypted. Refuses to
    /// overwrite an existing file.
    pub fn create(
        path: &Path,
        passphrase: &[u8],
        accounts: u32,
        params: KdfParams,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        while keys.len() < accounts as usize {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rng().fill_bytes(bytes.as_mut());
            // A random 32-byte string is a valid scalar except with negligible probability;
            // retry rather than reduce.
            if let Ok(key) = SigningKey::from_slice(bytes.as_ref()) {
                keys.push(key);
            }
        }
        Self::write(path, passphrase, keys, params)
    }

    /// Writes the given secret keys (32 bytes each) to `path`, encrypted; for importing a
    /// known development key (say, a local chain's funded account).
    pub fn import(
        path: &Path,
        passphrase: &[u8],
        secrets: &[[u8; 32]],
        params: KdfParams,
    ) -> Result<Self, KeyError> {
        let keys = secrets
            .iter()
            .map(|s| {
                SigningKey::from_slice(s)
                    .map_err(|_| KeyError::Keystore("not a secp256k1 secret key".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::write(path, passphrase, keys, params)
    }

    fn write(
        path: &Path,
        passphrase: &[u8],
        keys: Vec<SigningKey>,
        params: KdfParams,
    ) -> Result<Self, KeyError> {
        if passphrase.is_empty() {
            return Err(KeyError::Keystore("the passphrase is empty".into()));
        }
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let addresses: Vec<[u8; 20]> = keys.iter().map(address_of).collect();
        let mut file = KeystoreFile {
            kind: DEV_KEYSTORE_KIND.into(),
            version: 1,
            kdf: "argon2id".into(),
            kdf_params: params,
            salt: hex::encode(salt),
            cipher: "xchacha20poly1305".into(),
            nonce: hex::encode(nonce),
            addresses: addresses.iter().map(hex_addr).collect(),
            ciphertext: String::new(),
        };
        let key = derive_key(passphrase, &salt, params)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let mut plain = Zeroizing::new(Vec::with_capacity(keys.len() * 32));
        for k in &keys {
            plain.extend_from_slice(&k.to_bytes());
        }
        let aad = file.aad();
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_slice(),
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Keystore("encryption failed".into()))?;
        file.ciphertext = hex::encode(sealed);
        let text =
            serde_json::to_string_pretty(&file).map_err(|e| KeyError::Keystore(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut out = options
            .open(path)
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        std::io::Write::write_all(&mut out, text.as_bytes())
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        Ok(Self { keys, addresses })
    }

    /// Reads and decrypts `path`. A wrong passphrase or an edited file is refused.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        let file: KeystoreFile = serde_json::from_str(&text)
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        if file.kind != DEV_KEYSTORE_KIND || file.version != 1 {
            return Err(KeyError::Keystore(format!(
                "{} is not a version 1 {DEV_KEYSTORE_KIND} file",
                path.display()
            )));
        }
        if file.kdf != "argon2id" || file.cipher != "xchacha20poly1305" {
            return Err(KeyError::Keystore("unsupported kdf or cipher".into()));
        }
        let bad = |what: &str| KeyError::Keystore(format!("{}: bad {what}", path.display()));
        let salt = hex::decode(&file.salt).map_err(|_| bad("salt"))?;
        let nonce = hex::decode(&file.nonce).map_err(|_| bad("nonce"))?;
        if nonce.len() != 24 {
            return Err(bad("nonce"));
        }
        let sealed = hex::decode(&file.ciphertext).map_err(|_| bad("ciphertext"))?;
        let key = derive_key(passphrase, &salt, file.kdf_params)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let aad = file.aad();
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    KeyError::Keystore(format!(
                        "{}: wrong passphrase or the file was altered",
                        path.display()
                    ))
                })?,
        );
        if plain.len() % 32 != 0 || plain.len() / 32 != file.addresses.len() {
            return Err(bad("key count"));
        }
        let mut keys = Vec::new();
        let mut addresses = Vec::new();
        for (chunk, want) in plain.chunks(32).zip(&file.addresses) {
            let key = SigningKey::from_slice(chunk).map_err(|_| bad("key"))?;
            let address = address_of(&key);
            if hex_addr(&address) != want.to_ascii_lowercase() {
                return Err(bad("address list"));
            }
            keys.push(key);
            addresses.push(address);
        }
        Ok(Self { keys, addresses })
    }

    /// The addresses in the file, without decrypting it (for printing).
    pub fn addresses_in(path: &Path) -> Result<Vec<String>, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        let file: KeystoreFile = serde_json::from_str(&text)
            .map_err(|e| KeyError::Keystore(format!("{}: {e}", path.display())))?;
        Ok(file.addresses)
    }

    /// How many accounts it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no account.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn sign_now(&self, account_index: u32, hash: [u8; 32]) -> Result<Signature, KeyError> {
        let key = self
            .keys
            .get(account_index as usize)
            .ok_or(KeyError::UnknownAccount(account_index))?;
        let (sig, recid) = key
            .sign_prehash_recoverable(&hash)
            .map_err(|e| KeyError::Signing(e.to_string()))?;
        let bytes = sig.to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Ok(Signature {
            r,
            s,
            y_parity: recid.is_y_odd(),
        })
    }
}

impl KeySource for DevKeystore {
    fn kind(&self) -> &'static str {
        "dev-keystore"
    }

    fn address(&self, account_index: u32) -> Result<[u8; 20], KeyError> {
        self.addresses
            .get(account_index as usize)
            .copied()
            .ok_or(KeyError::UnknownAccount(account_index))
    }

    fn sign_prehash(
        &self,
        account_index: u32,
        hash: [u8; 32],
    ) -> BoxFuture<'_, Result<Signature, KeyError>> {
        let result = self.sign_now(account_index, hash);
        Box::pin(std::future::ready(result))
    }
}

/// Reads a passphrase from a file (trailing newline removed) or, if no file is given, from
/// `STRATBOX_SIGNER_PASSPHRASE`. Never from a command-line flag: it would land in shell
/// history and `ps`.
pub fn read_passphrase(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut raw = match file {
        Some(path) => std::fs::read(path)
            .map_err(|e| KeyError::Keystore(format!("passphrase file {}: {e}", path.display())))?,
        None => std::env::var("STRATBOX_SIGNER_PASSPHRASE")
            .map_err(|_| {
                KeyError::Keystore(
                    "no passphrase: give a passphrase file or set STRATBOX_SIGNER_PASSPHRASE"
                        .into(),
                )
            })?
            .into_bytes(),
    };
    while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        raw.pop();
    }
    let out = Zeroizing::new(raw.clone());
    raw.zeroize();
    if out.is_empty() {
        return Err(KeyError::Keystore("the passphrase is empty".into()));
    }
    Ok(out)
}

/// An address as alloy's type.
pub fn to_address(a: [u8; 20]) -> Address {
    Address::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json");
        let ks = DevKeystore::create(&path, b"pw", 2, KdfParams::fast_for_tests()).unwrap();
        let again = DevKeystore::open(&path, b"pw").unwrap();
        assert_eq!(ks.address(1).unwrap(), again.address(1).unwrap());
        assert!(DevKeystore::open(&path, b"other").is_err());
        assert!(DevKeystore::create(&path, b"pw", 1, KdfParams::fast_for_tests()).is_err());
        // The file holds no secret in the clear.
        let text = std::fs::read_to_string(&path).unwrap();
        let secret = hex::encode(ks.keys[0].to_bytes());
        assert!(!text.contains(&secret));
    }

    #[test]
    fn edited_address_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json");
        let ks = DevKeystore::create(&path, b"pw", 1, KdfParams::fast_for_tests()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace(&hex_addr(&ks.address(0).unwrap())[2..], &"11".repeat(20));
        std::fs::write(&path, edited).unwrap();
        assert!(DevKeystore::open(&path, b"pw").is_err());
    }

    #[test]
    fn known_key_gives_known_address() {
        // Anvil's first dev account (the public test mnemonic).
        let secret: [u8; 32] =
            hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap()
                .try_into()
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ks = DevKeystore::import(
            &dir.path().join("k.json"),
            b"pw",
            &[secret],
            KdfParams::fast_for_tests(),
        )
        .unwrap();
        assert_eq!(
            hex_addr(&ks.address(0).unwrap()),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
    }
}
