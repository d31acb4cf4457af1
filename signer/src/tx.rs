//! The transaction, built by the signer from plain fields: the hash it signs is one it
//! computed, never one it was handed.

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use sha2::{Digest, Sha256};
use stratbox_proto::{parse_address, parse_amount, v1};

use crate::keys::Signature;
use crate::reason::{Reason, Refusal};

/// An EIP-1559 transaction whose fields were all checked to be well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainTx {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The account's nonce.
    pub nonce: u64,
    /// Tip per gas, wei.
    pub max_priority_fee_per_gas: u128,
    /// Fee cap per gas, wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Destination; contract creation is never signed, so always an address.
    pub to: Address,
    /// Ether sent, wei.
    pub value: U256,
    /// Calldata.
    pub input: Bytes,
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal::new(Reason::BadRequest, detail)
}

fn amount(field: &str, a: &Option<v1::Amount>) -> Result<U256, Refusal> {
    let text = a
        .as_ref()
        .map(|a| a.value.as_str())
        .ok_or_else(|| bad(format!("{field} is missing")))?;
    let v = parse_amount(text).map_err(|e| bad(format!("{field}: {e}")))?;
    Ok(U256::from_limbs(v.into_limbs()))
}

fn fee(field: &str, a: &Option<v1::Amount>) -> Result<u128, Refusal> {
    let v = amount(field, a)?;
    u128::try_from(v).map_err(|_| bad(format!("{field} does not fit in 128 bits")))
}

/// Parses an address field strictly.
pub fn address(field: &str, a: &Option<v1::Address>) -> Result<Address, Refusal> {
    let text = a
        .as_ref()
        .map(|a| a.value.as_str())
        .ok_or_else(|| bad(format!("{field} is missing")))?;
    let bytes = parse_address(text).map_err(|e| bad(format!("{field}: {e}")))?;
    Ok(Address::from(bytes))
}

impl PlainTx {
    /// Checks every field of the wire form. Contract creation (no `to`) is refused as a
    /// destination the policy cannot allow.
    pub fn from_wire(tx: &v1::Eip1559Transaction) -> Result<Self, Refusal> {
        if tx.to.as_ref().is_none_or(|a| a.value.is_empty()) {
            return Err(Refusal::new(
                Reason::DestinationNotAllowed,
                "contract creation is never signed",
            ));
        }
        let out = Self {
            chain_id: tx.chain_id,
            nonce: tx.nonce,
            max_priority_fee_per_gas: fee(
                "max_priority_fee_per_gas",
                &tx.max_priority_fee_per_gas,
            )?,
            max_fee_per_gas: fee("max_fee_per_gas", &tx.max_fee_per_gas)?,
            gas_limit: tx.gas_limit,
            to: address("to", &tx.to)?,
            value: amount("value", &tx.value)?,
            input: Bytes::from(tx.input.clone()),
        };
        if out.chain_id == 0 {
            return Err(bad("chain_id is 0"));
        }
        if out.gas_limit == 0 {
            return Err(bad("gas_limit is 0"));
        }
        if out.max_priority_fee_per_gas > out.max_fee_per_gas {
            return Err(bad("max_priority_fee_per_gas is above max_fee_per_gas"));
        }
        Ok(out)
    }

    /// The wire form again (for approvals shown to operators).
    pub fn to_wire(&self) -> v1::Eip1559Transaction {
        v1::Eip1559Transaction {
            chain_id: self.chain_id,
            nonce: self.nonce,
            max_priority_fee_per_gas: Some(v1::Amount {
                value: self.max_priority_fee_per_gas.to_string(),
            }),
            max_fee_per_gas: Some(v1::Amount {
                value: self.max_fee_per_gas.to_string(),
            }),
            gas_limit: self.gas_limit,
            to: Some(v1::Address {
                value: format!("{:#x}", self.to),
            }),
            value: Some(v1::Amount {
                value: self.value.to_string(),
            }),
            input: self.input.to_vec(),
        }
    }

    fn alloy(&self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: TxKind::Call(self.to),
            value: self.value,
            access_list: Default::default(),
            input: self.input.clone(),
        }
    }

    /// keccak256 of the EIP-1559 signing payload: what the key signs.
    pub fn signing_hash(&self) -> [u8; 32] {
        self.alloy().signature_hash().0
    }

    /// A fingerprint of the fields (sha256 over a fixed encoding), for idempotency and
    /// approval binding.
    pub fn canonical(&self) -> String {
        format!(
            "chain_id={};nonce={};max_priority_fee_per_gas={};max_fee_per_gas={};gas_limit={};to={:#x};value={};input=0x{}",
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas_limit,
            self.to,
            self.value,
            hex::encode(&self.input)
        )
    }

    /// sha256 of the calldata, hex.
    pub fn input_hash(&self) -> String {
        hex::encode(Sha256::digest(&self.input))
    }

    /// The signed transaction: EIP-2718 envelope bytes and the transaction hash.
    pub fn finish(&self, sig: &Signature) -> (Vec<u8>, [u8; 32]) {
        let signature = alloy_primitives::Signature::new(
            U256::from_be_bytes(sig.r),
            U256::from_be_bytes(sig.s),
            sig.y_parity,
        );
        let signed = self.alloy().into_signed(signature);
        (signed.encoded_2718(), signed.hash().0)
    }
}

/// `0x` + hex of 32 bytes.
pub fn hex32(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}
