//! Giving an account tokens without a minter: write the token's balance mapping directly.
//!
//! The mapping's slot is not in any ABI, so it is found by probing: for each candidate slot
//! and both mapping layouts (Solidity `keccak(key . slot)`, Vyper `keccak(slot . key)`), write a
//! marker on a throw-away overlay and see whether `balanceOf` returns it. This works for the
//! embedded OpenZeppelin tokens and for most real tokens on a fork; proxies with unusual
//! storage fail with a clear error.
//!
//! The allowance mapping is found the same way, so that a [`Funding`] can give a simulated
//! account tokens, an executor allowance and ether on the simulation's own overlay: nothing
//! shared is changed, so funding can never race with whoever replaces the shared state.

use alloy_primitives::{Address, U256, keccak256};
use revm::database::CacheDB;
use revm::{Database, DatabaseRef};
use stratbox_evm::abi::IERC20;

use crate::{Chain, SimError};

const MAX_PROBED_SLOT: u64 = 64;
/// Unlikely to be anyone's real balance.
const MARKER: U256 = U256::from_limbs([0x5b0c_0de5_eed5_1234, 0x77, 0, 0]);
/// An account nobody uses, so the probe never collides with a real balance entry.
const PROBE_ACCOUNT: Address =
    alloy_primitives::address!("0x5b0c0de00000000000000000000000000000b0b0");
/// The spender of the allowance probe, equally unused.
const PROBE_SPENDER: Address =
    alloy_primitives::address!("0x5b0c0de00000000000000000000000000000b0b1");

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

/// The storage key of `mapping(key => …)` at `slot` (a 32-byte word) in `layout`.
fn mapping_key(layout: Layout, slot: [u8; 32], key: Address) -> [u8; 32] {
    let mut buf = [0u8; 64];
    let (first, second) = buf.split_at_mut(32);
    let key_word = key.into_word();
    match layout {
        Layout::Solidity => {
            first.copy_from_slice(key_word.as_slice());
            second.copy_from_slice(&slot);
        }
        Layout::Vyper => {
            first.copy_from_slice(&slot);
            second.copy_from_slice(key_word.as_slice());
        }
    }
    keccak256(buf).0
}

impl BalanceSlot {
    pub(crate) fn key(&self, account: Address) -> U256 {
        U256::from_be_bytes(mapping_key(
            self.layout,
            self.slot.to_be_bytes::<32>(),
            account,
        ))
    }
}

/// Where a token keeps `allowance(owner, spender)`: a mapping of mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllowanceSlot {
    slot: U256,
    layout: Layout,
}

impl AllowanceSlot {
    pub(crate) fn key(&self, owner: Address, spender: Address) -> U256 {
        let inner = mapping_key(self.layout, self.slot.to_be_bytes::<32>(), owner);
        U256::from_be_bytes(mapping_key(self.layout, inner, spender))
    }
}

pub(crate) fn find_allowance_slot(
    chain: &Chain,
    token: Address,
) -> Result<AllowanceSlot, SimError> {
    for slot in 0..MAX_PROBED_SLOT {
        for layout in [Layout::Solidity, Layout::Vyper] {
            let candidate = AllowanceSlot {
                slot: U256::from(slot),
                layout,
            };
            let mut overlay = CacheDB::new(chain.base());
            overlay.insert_account_storage(
                token,
                candidate.key(PROBE_ACCOUNT, PROBE_SPENDER),
                MARKER,
            )?;
            let seen = chain.call_with(
                &mut overlay,
                token,
                IERC20::allowanceCall {
                    owner: PROBE_ACCOUNT,
                    spender: PROBE_SPENDER,
                },
            );
            if matches!(seen, Ok(v) if v == MARKER) {
                return Ok(candidate);
            }
        }
    }
    Err(SimError::Invalid(format!(
        "cannot find the allowance mapping of token {token} in its first {MAX_PROBED_SLOT} slots"
    )))
}

/// What a simulated account is given on the simulation's overlay before its transactions
/// run: a balance of every listed token, an unlimited allowance for the executor, and
/// ether for gas. Built once per chain state ([`Funding::new`] probes each token's storage
/// layout; pass the previous funding as a hint and known tokens are not probed again).
#[derive(Debug, Clone)]
pub struct Funding {
    tokens: Vec<(Address, BalanceSlot, AllowanceSlot)>,
    token_amount: U256,
    ether: U256,
}

impl Funding {
    /// Funding with `token_amount` of each of `tokens` and `ether` wei.
    pub fn new(
        chain: &Chain,
        tokens: &[Address],
        token_amount: U256,
        ether: U256,
        hint: Option<&Funding>,
    ) -> Result<Funding, SimError> {
        let mut out = Vec::with_capacity(tokens.len());
        for &token in tokens {
            let known = hint.and_then(|h| h.tokens.iter().find(|(t, _, _)| *t == token));
            let entry = match known {
                Some(e) => *e,
                None => (
                    token,
                    find_balance_slot(chain, token)?,
                    find_allowance_slot(chain, token)?,
                ),
            };
            out.push(entry);
        }
        Ok(Funding {
            tokens: out,
            token_amount,
            ether,
        })
    }

    /// Writes the funding of `account` (spending through `executor`) into `overlay`.
    pub(crate) fn apply<DB: DatabaseRef>(
        &self,
        overlay: &mut CacheDB<DB>,
        account: Address,
        executor: Address,
    ) -> Result<(), SimError>
    where
        DB::Error: std::fmt::Display,
    {
        let err = |e: DB::Error| SimError::Evm(format!("funding {account}: {e}"));
        for (token, balance, allowance) in &self.tokens {
            overlay
                .insert_account_storage(*token, balance.key(account), self.token_amount)
                .map_err(err)?;
            overlay
                .insert_account_storage(*token, allowance.key(account, executor), U256::MAX)
                .map_err(err)?;
        }
        let mut info = overlay.basic(account).map_err(err)?.unwrap_or_default();
        info.balance = self.ether;
        overlay.insert_account_info(account, info);
        Ok(())
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
