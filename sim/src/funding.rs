//! Giving an account tokens without a minter: write the token's balance mapping directly.
//!
//! The mapping's slot is not in any ABI, so it is found by probing: for each candidate slot
//! and both mapping layouts (Solidity `keccak(key . slot)`, Vyper `keccak(slot . key)`), write a
//! marker on a throw-away overlay and see whether `balanceOf` returns it. This works for the
//! embedded OpenZeppelin tokens and for most real tokens on a fork; proxies with unusual
//! storage fail with a clear error.

use alloy_primitives::{Address, U256, keccak256};
use revm::database::CacheDB;
use stratbox_contracts::abi::IERC20;

use crate::{Chain, SimError};

const MAX_PROBED_SLOT: u64 = 64;
/// Unlikely to be anyone's real balance.
const MARKER: U256 = U256::from_limbs([0x5b0c_0de5_eed5_1234, 0x77, 0, 0]);
/// An account nobody uses, so the probe never collides with a real balance entry.
const PROBE_ACCOUNT: Address =
    alloy_primitives::address!("0x5b0c0de00000000000000000000000000000b0b0");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Solidity,
    Vyper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalanceSlot {
    slot: U256,
    layout: Layout,
}

impl BalanceSlot {
    pub(crate) fn key(&self, account: Address) -> U256 {
        let mut buf = [0u8; 64];
        let (first, second) = buf.split_at_mut(32);
        let account_word = account.into_word();
        let slot_word = self.slot.to_be_bytes::<32>();
        match self.layout {
            Layout::Solidity => {
                first.copy_from_slice(account_word.as_slice());
                second.copy_from_slice(&slot_word);
            }
            Layout::Vyper => {
                first.copy_from_slice(&slot_word);
                second.copy_from_slice(account_word.as_slice());
            }
        }
        U256::from_be_bytes(keccak256(buf).0)
    }
}

pub(crate) fn find_balance_slot(chain: &Chain, token: Address) -> Result<BalanceSlot, SimError> {
    for slot in 0..MAX_PROBED_SLOT {
        for layout in [Layout::Solidity, Layout::Vyper] {
            let candidate = BalanceSlot {
                slot: U256::from(slot),
                layout,
            };
            let mut overlay = CacheDB::new(chain.base());
            overlay.insert_account_storage(token, candidate.key(PROBE_ACCOUNT), MARKER)?;
            let seen = chain.call_with(
                &mut overlay,
                token,
                IERC20::balanceOfCall {
                    account: PROBE_ACCOUNT,
                },
            );
            if matches!(seen, Ok(v) if v == MARKER) {
                return Ok(candidate);
            }
        }
    }
    Err(SimError::Invalid(format!(
        "cannot find the balance mapping of token {token} in its first {MAX_PROBED_SLOT} slots"
    )))
}
