//! The public side of the threshold key: master public key, chain code and each share's
//! public commitment. Everything the coordinator needs to derive account keys and addresses
//! and to check signatures, and nothing that helps anyone sign.

use cggmp21::generic_ec::{NonZero, Point};
use cggmp21::hd_wallet::{ExtendedPublicKey, HdWallet, NonHardenedIndex, Slip10};
use cggmp21::key_share::AnyKeyShare;
use cggmp21::supported_curves::Secp256k1;
use k256::ecdsa::VerifyingKey;

use crate::error::ThresholdError;
use crate::proto;
use crate::signature::{DerivationPath, address_of};

/// The threshold key's public data, as the share processes report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Master public key, SEC1 compressed.
    pub shared_public_key: [u8; 33],
    /// HD chain code.
    pub chain_code: [u8; 32],
    /// Public commitment of each share, by keygen index, SEC1 compressed.
    pub public_shares: Vec<[u8; 33]>,
    /// Shares needed to sign.
    pub threshold: u16,
}

fn point33(bytes: &[u8], what: &str) -> Result<[u8; 33], ThresholdError> {
    let arr: [u8; 33] = bytes
        .try_into()
        .map_err(|_| ThresholdError::format(what, "expected a 33-byte compressed point"))?;
    Point::<Secp256k1>::from_bytes(arr)
        .map_err(|_| ThresholdError::format(what, "not a point on secp256k1"))?;
    Ok(arr)
}

impl PublicKeyInfo {
    /// Reads the key info of a cggmp21 key share.
    pub(crate) fn from_key_share(
        share: &cggmp21::KeyShare<Secp256k1>,
    ) -> Result<Self, ThresholdError> {
        let epub = share
            .extended_public_key()
            .ok_or_else(|| ThresholdError::format("key share", "not an HD key (no chain code)"))?;
        let shared_public_key = compress(&share.shared_public_key)?;
        let public_shares = share
            .public_shares
            .iter()
            .map(compress)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PublicKeyInfo {
            shared_public_key,
            chain_code: epub.chain_code,
            public_shares,
            threshold: share.min_signers(),
        })
    }

    /// Checks and reads the wire form.
    pub fn from_proto(info: &proto::KeyInfo) -> Result<Self, ThresholdError> {
        let chain_code: [u8; 32] = info
            .chain_code
            .as_slice()
            .try_into()
            .map_err(|_| ThresholdError::format("key info", "chain code is not 32 bytes"))?;
        Ok(PublicKeyInfo {
            shared_public_key: point33(&info.shared_public_key, "shared public key")?,
            chain_code,
            public_shares: info
                .public_shares
                .iter()
                .map(|p| point33(p, "public share"))
                .collect::<Result<_, _>>()?,
            threshold: u16::try_from(info.threshold)
                .map_err(|_| ThresholdError::format("key info", "threshold out of range"))?,
        })
    }

    pub(crate) fn to_proto(&self) -> proto::KeyInfo {
        proto::KeyInfo {
            shared_public_key: self.shared_public_key.to_vec(),
            chain_code: self.chain_code.to_vec(),
            public_shares: self.public_shares.iter().map(|p| p.to_vec()).collect(),
            threshold: u32::from(self.threshold),
        }
    }

    pub(crate) fn extended_public_key(
        &self,
    ) -> Result<ExtendedPublicKey<Secp256k1>, ThresholdError> {
        let public_key = Point::<Secp256k1>::from_bytes(self.shared_public_key)
            .map_err(|_| ThresholdError::format("shared public key", "not a point"))?;
        Ok(ExtendedPublicKey {
            public_key,
            chain_code: self.chain_code,
        })
    }

    /// The public key of the child at `path` (non-hardened SLIP-10 = BIP-32 on secp256k1),
    /// computed from public data only.
    pub fn child_key(&self, path: &DerivationPath) -> Result<VerifyingKey, ThresholdError> {
        derive_child(&self.extended_public_key()?, path)
    }

    /// The address of the child at `path`.
    pub fn address(&self, path: &DerivationPath) -> Result<[u8; 20], ThresholdError> {
        Ok(address_of(&self.child_key(path)?))
    }
}

/// Non-hardened derivation from an extended public key.
pub(crate) fn derive_child(
    epub: &ExtendedPublicKey<Secp256k1>,
    path: &DerivationPath,
) -> Result<VerifyingKey, ThresholdError> {
    let indices = path
        .indices()
        .iter()
        .map(|i| NonHardenedIndex::try_from(*i).map_err(|_| ThresholdError::HardenedIndex(*i)));
    let child =
        <Slip10 as HdWallet<Secp256k1>>::try_derive_child_public_key_with_path(epub, indices)?;
    let bytes = child.public_key.to_bytes(true);
    VerifyingKey::from_sec1_bytes(bytes.as_bytes())
        .map_err(|e| ThresholdError::format("derived public key", e))
}

fn compress(point: &NonZero<Point<Secp256k1>>) -> Result<[u8; 33], ThresholdError> {
    let bytes = point.to_bytes(true);
    bytes
        .as_bytes()
        .try_into()
        .map_err(|_| ThresholdError::format("public key", "unexpected encoding length"))
}
