//! Nonce protection, after Web3Signer's slashing protection: the signer remembers every
//! transaction it signed per (chain id, account) and refuses to sign a second, different
//! transaction that could take the place of one already signed.
//!
//! At a nonce already signed, exactly these are signed again:
//! - the identical transaction (same signing hash): the same bytes come back;
//! - a **cancel**: value 0, no calldata, to the account itself (it moves nothing, at any
//!   nonce, so it may also fill a gap below the highest nonce);
//! - a **fee bump**: the same `to`, `value`, calldata and gas limit as a transaction signed
//!   at that nonce (not a cancel), with both `max_fee_per_gas` and
//!   `max_priority_fee_per_gas` at least 10% above the highest of each signed at that nonce
//!   (the replacement rule nodes apply).
//!
//! Everything else at a signed nonce is `nonce_reused`; a nonce below the highest signed
//! that was never signed is `nonce_too_low` unless it is a cancel.

use alloy_primitives::U256;

use crate::reason::{Reason, Refusal};
use crate::tx::PlainTx;

/// One transaction recorded at a nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRecord {
    /// EIP-1559 signing hash (0x).
    pub signing_hash: String,
    /// Destination (0x, lowercase).
    pub to: String,
    /// Value, wei, base 10.
    pub value: String,
    /// sha256 of the calldata, hex.
    pub input_hash: String,
    /// Gas limit.
    pub gas_limit: u64,
    /// Fee cap, wei.
    pub max_fee_per_gas: u128,
    /// Tip, wei.
    pub max_priority_fee_per_gas: u128,
    /// original | replacement | cancel.
    pub kind: String,
    /// The task it was signed for.
    pub task_id: String,
    /// Signed bytes (hex); empty while reserved.
    pub raw_tx: String,
    /// Transaction hash (0x); empty while reserved.
    pub tx_hash: String,
}

/// What kind of signing a nonce check allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Already recorded: sign the identical transaction again (same bytes).
    Identical(Box<NonceRecord>),
    /// A nonce not signed before.
    Original,
    /// A fee bump of a transaction signed at this nonce.
    Replacement,
    /// A cancel.
    Cancel,
}

impl Allowed {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Allowed::Identical(_) => "identical",
            Allowed::Original => "original",
            Allowed::Replacement => "replacement",
            Allowed::Cancel => "cancel",
        }
    }
}

/// At least 10% above: `new * 10 >= old * 11`.
fn bumped(new: u128, old: u128) -> bool {
    U256::from(new) * U256::from(10u8) >= U256::from(old) * U256::from(11u8)
}

/// Judges signing `tx` (whose signing hash is `signing_hash`) given what was signed at its
/// nonce and the highest nonce signed for the account.
pub fn judge(
    tx: &PlainTx,
    signing_hash: &str,
    cancel: bool,
    at_nonce: &[NonceRecord],
    highest: Option<u64>,
) -> Result<Allowed, Refusal> {
    if let Some(same) = at_nonce.iter().find(|r| r.signing_hash == signing_hash) {
        return Ok(Allowed::Identical(Box::new(same.clone())));
    }
    if cancel {
        return Ok(Allowed::Cancel);
    }
    if !at_nonce.is_empty() {
        let to = format!("{:#x}", tx.to);
        let value = tx.value.to_string();
        let input = tx.input_hash();
        let same_call = at_nonce.iter().any(|r| {
            r.kind != "cancel"
                && r.to == to
                && r.value == value
                && r.input_hash == input
                && r.gas_limit == tx.gas_limit
        });
        let top_fee = at_nonce
            .iter()
            .map(|r| r.max_fee_per_gas)
            .max()
            .unwrap_or(0);
        let top_tip = at_nonce
            .iter()
            .map(|r| r.max_priority_fee_per_gas)
            .max()
            .unwrap_or(0);
        if same_call
            && bumped(tx.max_fee_per_gas, top_fee)
            && bumped(tx.max_priority_fee_per_gas, top_tip)
        {
            return Ok(Allowed::Replacement);
        }
        return Err(Refusal::new(
            Reason::NonceReused,
            if same_call {
                format!(
                    "nonce {} was signed with fees {top_fee}/{top_tip}; a replacement must raise both by at least 10%",
                    tx.nonce
                )
            } else {
                format!(
                    "nonce {} was already signed for a different transaction",
                    tx.nonce
                )
            },
        ));
    }
    if let Some(h) = highest
        && tx.nonce < h
    {
        return Err(Refusal::new(
            Reason::NonceTooLow,
            format!(
                "nonce {} is below the highest signed ({h}); only a cancel may fill it",
                tx.nonce
            ),
        ));
    }
    Ok(Allowed::Original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, Bytes};

    fn tx(nonce: u64, fee: u128, tip: u128, input: &[u8]) -> PlainTx {
        PlainTx {
            chain_id: 1,
            nonce,
            max_priority_fee_per_gas: tip,
            max_fee_per_gas: fee,
            gas_limit: 100_000,
            to: Address::repeat_byte(0xe1),
            value: U256::ZERO,
            input: Bytes::copy_from_slice(input),
        }
    }

    fn record(t: &PlainTx) -> NonceRecord {
        NonceRecord {
            signing_hash: crate::tx::hex32(&t.signing_hash()),
            to: format!("{:#x}", t.to),
            value: t.value.to_string(),
            input_hash: t.input_hash(),
            gas_limit: t.gas_limit,
            max_fee_per_gas: t.max_fee_per_gas,
            max_priority_fee_per_gas: t.max_priority_fee_per_gas,
            kind: "original".into(),
            task_id: "t".into(),
            raw_tx: "00".into(),
            tx_hash: "0x".into(),
        }
    }

    fn j(t: &PlainTx, at: &[NonceRecord], highest: Option<u64>) -> Result<Allowed, Refusal> {
        judge(t, &crate::tx::hex32(&t.signing_hash()), false, at, highest)
    }

    #[test]
    fn rules() {
        let first = tx(5, 100, 10, b"abcd");
        let recs = vec![record(&first)];
        assert!(matches!(
            j(&first, &recs, Some(5)),
            Ok(Allowed::Identical(_))
        ));
        assert_eq!(
            j(&tx(5, 110, 11, b"abcd"), &recs, Some(5)),
            Ok(Allowed::Replacement)
        );
        assert_eq!(
            j(&tx(5, 109, 11, b"abcd"), &recs, Some(5))
                .unwrap_err()
                .reason,
            Reason::NonceReused
        );
        assert_eq!(
            j(&tx(5, 200, 10, b"abcd"), &recs, Some(5))
                .unwrap_err()
                .reason,
            Reason::NonceReused
        );
        assert_eq!(
            j(&tx(5, 200, 20, b"abce"), &recs, Some(5))
                .unwrap_err()
                .reason,
            Reason::NonceReused
        );
        assert_eq!(
            j(&tx(4, 100, 10, b"x"), &[], Some(5)).unwrap_err().reason,
            Reason::NonceTooLow
        );
        assert_eq!(
            j(&tx(6, 100, 10, b"x"), &[], Some(5)),
            Ok(Allowed::Original)
        );
        assert_eq!(j(&tx(0, 100, 10, b"x"), &[], None), Ok(Allowed::Original));
        let c = tx(4, 1, 1, b"");
        assert_eq!(judge(&c, "0xc", true, &[], Some(5)), Ok(Allowed::Cancel));
        assert_eq!(judge(&c, "0xc", true, &recs, Some(5)), Ok(Allowed::Cancel));
    }
}
