//! Secrets at rest: a key share, a process's pregenerated Paillier primes, the development
//! keystore. Each is one file sealed with XChaCha20-Poly1305 under a key derived from the
//! operator's passphrase with Argon2id (64 MiB, 3 passes), a fresh salt and nonce per write.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "SBXSEAL1" | kdf id (1 = argon2id) u8 | m_cost KiB u32 | t_cost u32 | p_cost u32
//!            | salt [16] | nonce [24] | ciphertext + tag
//! ```
//!
//! The header is authenticated as associated data together with a *purpose* string (say
//! `stratbox-threshold key share 1`), so a file that was altered, or that is copied over the
//! file of another purpose or share index, fails to open like a wrong passphrase does.
//! The KDF parameters live in the header so they can be raised later without breaking old
//! files.
//!
//! The passphrase comes from a file or an environment variable, never from a command-line
//! value (which `ps` and shell history show), and it is never logged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::error::ThresholdError;

const MAGIC: &[u8; 8] = b"SBXSEAL1";
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 8 + 1 + 4 * 3 + SALT_LEN + NONCE_LEN;

/// The environment variable a share process reads its passphrase from when no passphrase
/// file is given.
pub const PASSPHRASE_ENV: &str = "STRATBOX_SHARE_PASSPHRASE";

/// A passphrase, wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Takes a passphrase already in memory (tests, a caller with its own secret store).
    /// Refuses an empty one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ThresholdError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.is_empty() {
            return Err(ThresholdError::Passphrase("the passphrase is empty".into()));
        }
        Ok(Passphrase(bytes))
    }

    /// Reads the passphrase from `file` (one trailing newline is dropped) or, without a file,
    /// from the environment variable `env`.
    pub fn from_file_or_env(file: Option<&Path>, env: &str) -> Result<Self, ThresholdError> {
        match file {
            Some(path) => {
                let mut bytes =
                    Zeroizing::new(std::fs::read(path).map_err(|e| ThresholdError::io(path, e))?);
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                Passphrase::new(std::mem::take(&mut *bytes))
                    .map_err(|_| ThresholdError::Passphrase(format!("{} is empty", path.display())))
            }
            None => {
                let value = std::env::var_os(env).ok_or_else(|| {
                    ThresholdError::Passphrase(format!(
                        "give a passphrase file or set the environment variable {env}"
                    ))
                })?;
                Passphrase::new(value.into_encoded_bytes())
                    .map_err(|_| ThresholdError::Passphrase(format!("{env} is empty")))
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Argon2id cost parameters, stored in each file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's first Argon2id recommendation is 19 MiB × 2 passes; a key that moves money
    /// gets more: 64 MiB × 3 passes (a fraction of a second, paid once per start).
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

fn derive_key(
    passphrase: &Passphrase,
    params: KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, ThresholdError> {
    let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| ThresholdError::format("argon2 parameters", e))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.bytes(), salt, &mut *key)
        .map_err(|e| ThresholdError::format("argon2", e))?;
    Ok(key)
}

/// Encrypts `plaintext` for `purpose` under `passphrase`.
pub fn seal(
    passphrase: &Passphrase,
    purpose: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, ThresholdError> {
    seal_with(passphrase, KdfParams::default(), purpose, plaintext)
}

/// [`seal`] with explicit KDF parameters.
pub fn seal_with(
    passphrase: &Passphrase,
    params: KdfParams,
    purpose: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, ThresholdError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
    out.extend_from_slice(MAGIC);
    out.push(KDF_ARGON2ID);
    out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive_key(passphrase, params, &salt)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let aad = associated_data(&out, purpose);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| ThresholdError::format("seal", "encryption failed"))?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts what [`seal`] wrote for the same `purpose`; `path` only names the file in errors.
pub fn open(
    passphrase: &Passphrase,
    purpose: &str,
    sealed: &[u8],
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
    let not_sealed = |detail: &str| ThresholdError::Format {
        what: path.display().to_string(),
        detail: format!("not a sealed stratbox file: {detail}"),
    };
    if sealed.len() < HEADER_LEN + 16 || &sealed[..8] != MAGIC {
        return Err(not_sealed("bad magic or too short"));
    }
    if sealed[8] != KDF_ARGON2ID {
        return Err(not_sealed("unknown key derivation"));
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&sealed[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let params = KdfParams {
        m_cost_kib: word(9),
        t_cost: word(13),
        p_cost: word(17),
    };
    let salt = &sealed[21..21 + SALT_LEN];
    let nonce = &sealed[21 + SALT_LEN..HEADER_LEN];
    let key = derive_key(passphrase, params, salt)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let aad = associated_data(&sealed[..HEADER_LEN], purpose);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ThresholdError::Decrypt {
            path: path.to_path_buf(),
            purpose: purpose.to_string(),
        })
}

fn associated_data(header: &[u8], purpose: &str) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(purpose.as_bytes());
    aad
}

/// Seals `plaintext` into `path`, replacing it atomically (a crash leaves the old file or
/// the new one, never half of one). The file is created readable by its owner only.
pub fn write_sealed(
    path: &Path,
    passphrase: &Passphrase,
    purpose: &str,
    plaintext: &[u8],
) -> Result<(), ThresholdError> {
    let sealed = seal(passphrase, purpose, plaintext)?;
    write_private_atomically(path, &sealed)
}

/// Reads and opens a file written by [`write_sealed`].
pub fn read_sealed(
    path: &Path,
    passphrase: &Passphrase,
    purpose: &str,
) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
    let sealed = std::fs::read(path).map_err(|e| ThresholdError::io(path, e))?;
    open(passphrase, purpose, &sealed, path)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, then
/// renamed over `path` and the directory fsynced. Mode 0600 on Unix.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), ThresholdError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp: PathBuf = {
        let mut name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(format!(".tmp-{}", std::process::id()));
        dir.join(name)
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| ThresholdError::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ThresholdError::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| ThresholdError::io(path, e))?;
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ThresholdError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ThresholdError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_else() {
        let pass = Passphrase::new("correct horse").unwrap();
        let sealed = seal_with(&pass, cheap(), "purpose a", b"secret bytes").unwrap();
        let path = Path::new("mem");
        assert_eq!(
            &open(&pass, "purpose a", &sealed, path).unwrap()[..],
            b"secret bytes"
        );
        let wrong = Passphrase::new("wrong horse").unwrap();
        assert!(matches!(
            open(&wrong, "purpose a", &sealed, path),
            Err(ThresholdError::Decrypt { .. })
        ));
        assert!(matches!(
            open(&pass, "purpose b", &sealed, path),
            Err(ThresholdError::Decrypt { .. })
        ));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            open(&pass, "purpose a", &altered, path),
            Err(ThresholdError::Decrypt { .. })
        ));
        // The KDF parameters are authenticated too: lowering them is an alteration.
        let mut weakened = sealed.clone();
        weakened[13] = 2;
        assert!(open(&pass, "purpose a", &weakened, path).is_err());
        assert!(
            !sealed.windows(12).any(|w| w == b"secret bytes"),
            "plaintext visible in the sealed bytes"
        );
    }

    #[test]
    fn passphrase_file_drops_one_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "hunter2\n").unwrap();
        let p = Passphrase::from_file_or_env(Some(&file), "STRATBOX_TEST_UNSET_VAR").unwrap();
        assert_eq!(p.bytes(), b"hunter2");
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            Passphrase::from_file_or_env(Some(&file), "STRATBOX_TEST_UNSET_VAR"),
            Err(ThresholdError::Passphrase(_))
        ));
        assert!(matches!(
            Passphrase::from_file_or_env(None, "STRATBOX_TEST_SURELY_UNSET_VAR_1234"),
            Err(ThresholdError::Passphrase(_))
        ));
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
    }

    #[test]
    fn atomic_write_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_private_atomically(&path, b"abc").unwrap();
        write_private_atomically(&path, b"def").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"def");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
