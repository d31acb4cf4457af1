//! What signing produces and how a key becomes an Ethereum address, shared by the threshold
//! key and the development keystore so both answer exactly the same shapes.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::keccak256;
use k256::ecdsa::{RecoveryId, VerifyingKey};

use crate::error::ThresholdError;

/// A recoverable secp256k1 ECDSA signature with low `s` (EIP-2), as an EIP-1559 transaction
/// carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Big-endian `r`.
    pub r: [u8; 32],
    /// Big-endian `s`, in the lower half of the curve order.
    pub s: [u8; 32],
    /// Parity of the nonce point's y coordinate: the recovery id Ethereum calls `yParity`.
    pub y_parity: bool,
}

impl Signature {
    /// `r || s || y_parity` (65 bytes, the last 0 or 1).
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = u8::from(self.y_parity);
        out
    }

    /// The address whose key made this signature over `prehash`.
    pub fn recover_address(&self, prehash: &[u8; 32]) -> Result<[u8; 20], ThresholdError> {
        let sig = k256::ecdsa::Signature::from_scalars(self.r, self.s)
            .map_err(|e| ThresholdError::Signing(format!("not a signature: {e}")))?;
        let id = RecoveryId::new(self.y_parity, false);
        let key = VerifyingKey::recover_from_prehash(prehash, &sig, id)
            .map_err(|e| ThresholdError::Signing(format!("does not recover: {e}")))?;
        Ok(address_of(&key))
    }

    /// Builds the recoverable form of a verified `(r, s)` made by `key` over `prehash`:
    /// normalises `s` and finds the parity that recovers `key`.
    pub(crate) fn from_verified(
        r: [u8; 32],
        s: [u8; 32],
        key: &VerifyingKey,
        prehash: &[u8; 32],
    ) -> Result<Self, ThresholdError> {
        let sig = k256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|e| ThresholdError::Signing(format!("not a signature: {e}")))?;
        let sig = sig.normalize_s().unwrap_or(sig);
        let id = RecoveryId::trial_recovery_from_prehash(key, prehash, &sig)
            .map_err(|_| ThresholdError::InvalidSignature)?;
        if id.is_x_reduced() {
            // r overflowed the curve order: valid ECDSA, but no Ethereum transaction can
            // carry it. Happens with probability ~2^-128.
            return Err(ThresholdError::Signing(
                "signature needs an x-reduced recovery id; sign again".into(),
            ));
        }
        let (r, s) = sig.split_bytes();
        Ok(Signature {
            r: r.into(),
            s: s.into(),
            y_parity: id.is_y_odd(),
        })
    }
}

/// The Ethereum address of a secp256k1 public key: the last 20 bytes of the keccak-256 of its
/// uncompressed coordinates.
pub fn address_of(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// `0x`-prefixed lowercase hex of an address (checksumming is the caller's presentation).
pub fn address_hex(address: &[u8; 20]) -> String {
    format!("0x{}", hex::encode(address))
}

/// A non-hardened BIP-32/SLIP-10 path below the master key, say `m/7` or `m/0/7`.
///
/// Only non-hardened indices exist here: deriving a hardened child needs the parent's secret
/// key, which no process of a threshold key has. Non-hardened children are derived from
/// public data alone (the master public key and chain code), which is why the coordinator can
/// compute every account's address without any share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// The path of trading account `account`: `m/account`.
    pub fn account(account: u32) -> Result<Self, ThresholdError> {
        DerivationPath::new(vec![account])
    }

    /// A path from child indices; each must be below 2^31.
    pub fn new(indices: Vec<u32>) -> Result<Self, ThresholdError> {
        if let Some(&hardened) = indices.iter().find(|i| **i >= 1 << 31) {
            return Err(ThresholdError::HardenedIndex(hardened));
        }
        Ok(DerivationPath(indices))
    }

    /// The master key itself.
    pub fn master() -> Self {
        DerivationPath(Vec::new())
    }

    /// The child indices, outermost first.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for index in &self.0 {
            write!(f, "/{index}")?;
        }
        Ok(())
    }
}

impl FromStr for DerivationPath {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |detail: &str| ThresholdError::format(format!("derivation path {s:?}"), detail);
        let mut parts = s.split('/');
        if parts.next() != Some("m") {
            return Err(bad("must start with m"));
        }
        let mut indices = Vec::new();
        for part in parts {
            if part.ends_with('\'') || part.ends_with('h') {
                return Err(bad(
                    "hardened indices cannot be derived from a threshold key",
                ));
            }
            indices.push(
                part.parse::<u32>()
                    .map_err(|_| bad("indices are decimal integers"))?,
            );
        }
        DerivationPath::new(indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_print_and_refuse_hardened() {
        let p: DerivationPath = "m/0/7".parse().unwrap();
        assert_eq!(p.indices(), &[0, 7]);
        assert_eq!(p.to_string(), "m/0/7");
        assert_eq!(DerivationPath::account(3).unwrap().to_string(), "m/3");
        assert_eq!(
            "m".parse::<DerivationPath>().unwrap(),
            DerivationPath::master()
        );
        assert!("m/44'/60'".parse::<DerivationPath>().is_err());
        assert!("0/1".parse::<DerivationPath>().is_err());
        assert!("m/x".parse::<DerivationPath>().is_err());
        assert!(matches!(
            DerivationPath::account(1 << 31),
            Err(ThresholdError::HardenedIndex(_))
        ));
    }

    #[test]
    fn address_matches_a_known_key() {
        // Anvil's first dev account: the well-known key of `test test ... junk`.
        let sk = k256::ecdsa::SigningKey::from_slice(
            &hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            address_hex(&address_of(sk.verifying_key())),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        let hash = [7u8; 32];
        let (sig, id) = sk.sign_prehash_recoverable(&hash).unwrap();
        let (r, s) = sig.split_bytes();
        let ours = Signature::from_verified(r.into(), s.into(), sk.verifying_key(), &hash).unwrap();
        assert_eq!(ours.y_parity, id.is_y_odd());
        assert_eq!(
            ours.recover_address(&hash).unwrap(),
            address_of(sk.verifying_key())
        );
    }
}
