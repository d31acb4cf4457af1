//! Reconciliation: the signing account's balances as the ledger books them, against the
//! chain's own at one block.
//!
//! The live path books every wei and token unit the account gains or loses: its opening
//! balances once, before its first trade ([`crate::ledger::opening_posting`]), then on each
//! receipt the tokens its Transfer logs moved and the gas it paid. The ledger's balance of
//! the account's wallet ([`crate::ledger::wallet_account`]) must therefore equal the
//! chain's. A difference is money moved that stratbox did not book (a deposit, a withdrawal,
//! a transaction sent around the engine, a fee the receipt did not show) or a booking bug,
//! and either way nothing more should be traded until someone looks: the live path engages
//! the kill switch on one (see `Live::reconcile`).
//!
//! A transaction in flight (SIGNED or BROADCAST) may already be mined and not yet booked,
//! so a difference seen while one is open is reported with the count and not acted on.

use std::fmt;

use alloy::eips::BlockId;
use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_sol_types::SolCall;
use ruint::aliases::U512;
use stratbox_evm::abi::IERC20;
use stratbox_proto::{U256, parse_address};

use crate::fsm::TaskState;
use crate::ledger::{self, Signed};
use crate::proposal::{Address, hex_address};
use crate::store::{Store, StoreError};

/// Why a reconciliation could not be made (a difference is not an error: it is its result).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed or answered nonsense.
    #[error("chain node: {0}")]
    Rpc(String),
    /// The ledger's wallet lines do not add up (an edited table).
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerImbalance),
    /// The wallet holds an asset that is neither ether nor a token address.
    #[error("the wallet books an asset {0:?} that is neither ether nor a token address")]
    UnknownAsset(String),
}

/// One asset's two balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetCheck {
    /// [`ledger::ETHER`] or a token address (lowercase 0x hex).
    pub asset: String,
    /// The wallet's balance in the ledger.
    pub ledger: Signed,
    /// The account's balance on chain at the block.
    pub chain: U256,
    /// `chain - ledger`: positive when the chain holds more than was booked.
    pub difference: Signed,
}

/// The account's balances compared at one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// The account (lowercase 0x hex).
    pub account: String,
    /// The block the chain's balances were read at.
    pub block: u64,
    /// Every asset the ledger books for the wallet, in name order.
    pub assets: Vec<AssetCheck>,
    /// The account's transactions SIGNED or BROADCAST around the reading: while any is, a
    /// difference may be one mined and not yet booked.
    pub in_flight: usize,
}

impl Reconciliation {
    /// True when every asset's difference is zero.
    pub fn is_zero(&self) -> bool {
        self.assets.iter().all(|a| a.difference.is_zero())
    }

    /// The assets whose difference is not zero.
    pub fn differences(&self) -> impl Iterator<Item = &AssetCheck> {
        self.assets.iter().filter(|a| !a.difference.is_zero())
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "account {} at block {}", self.account, self.block)?;
        writeln!(
            f,
            "{:<44} {:>32} {:>32} {:>32}",
            "asset", "ledger", "chain", "difference"
        )?;
        for a in &self.assets {
            writeln!(
                f,
                "{:<44} {:>32} {:>32} {:>32}",
                a.asset,
                a.ledger.to_string(),
                a.chain.to_string(),
                a.difference.to_string()
            )?;
        }
        if self.in_flight > 0 {
            writeln!(
                f,
                "in flight: {} transaction(s) signed or broadcast; a difference may be one mined and not yet booked",
                self.in_flight
            )?;
        }
        if self.is_zero() {
            write!(f, "difference: zero")
        } else {
            write!(f, "difference: NOT zero")
        }
    }
}

/// `chain - ledger`, exactly (both fit 256 bits, so their difference fits 257; it is
/// reported only if it fits 256, which any real balance does).
fn difference(chain: U256, ledger: Signed) -> Option<Signed> {
    let (debits, credits) = if ledger.negative {
        (U512::from(chain) + U512::from(ledger.magnitude), U512::ZERO)
    } else {
        (U512::from(chain), U512::from(ledger.magnitude))
    };
    Signed::from_totals(debits, credits)
}

fn rpc(e: impl fmt::Display) -> ReconcileError {
    ReconcileError::Rpc(e.to_string())
}

/// `account`'s balance of `asset` on chain at `block`: ether by `eth_getBalance`, a token
/// by its `balanceOf`.
pub async fn chain_balance<P: Provider>(
    provider: &P,
    account: &Address,
    asset: &str,
    block: u64,
) -> Result<U256, ReconcileError> {
    let who = alloy_primitives::Address::from(*account);
    let v = if asset == ledger::ETHER {
        provider.get_balance(who).number(block).await.map_err(rpc)?
    } else {
        let token =
            parse_address(asset).map_err(|_| ReconcileError::UnknownAsset(asset.to_owned()))?;
        let call = TransactionRequest::default()
            .with_to(alloy_primitives::Address::from(token))
            .with_input(IERC20::balanceOfCall { account: who }.abi_encode());
        let out = provider
            .call(call)
            .block(BlockId::number(block))
            .await
            .map_err(rpc)?;
        IERC20::balanceOfCall::abi_decode_returns(&out).map_err(rpc)?
    };
    Ok(U256::from_limbs(*v.as_limbs()))
}

/// Transactions of `account` that may be mined without being booked yet: signed or
/// broadcast tasks, and the cancels filling nonce gaps.
async fn in_flight(store: &Store, account: &str) -> Result<usize, StoreError> {
    let tasks = store
        .open_live(account)
        .await?
        .iter()
        .filter(|t| matches!(t.state, TaskState::Signed | TaskState::Broadcast))
        .count();
    Ok(tasks + store.nonce_gaps(account, true).await?.len())
}

/// Compares `account`'s wallet in the ledger with the chain at the node's latest block.
/// `None` when the ledger books nothing for it yet (the live path has not opened it).
///
/// The ledger is read before the chain, and the in-flight count taken on both sides, so a
/// transaction mined in between shows as in flight rather than as a difference. Exact when
/// nothing is in flight; the live path calls it between its own steps, so its own trades
/// never race it.
pub async fn reconcile<P: Provider>(
    store: &Store,
    provider: &P,
    account: &Address,
) -> Result<Option<Reconciliation>, ReconcileError> {
    let name = hex_address(account);
    let before = in_flight(store, &name).await?;
    let lines = store.lines(Some(&ledger::wallet_account(&name))).await?;
    if lines.is_empty() {
        return Ok(None);
    }
    let positions = ledger::positions(&lines)?;
    let block = provider.get_block_number().await.map_err(rpc)?;
    let mut assets = Vec::with_capacity(positions.len());
    for ((_, asset), booked) in positions {
        let chain = chain_balance(provider, account, &asset, block).await?;
        let difference = difference(chain, booked).ok_or(ledger::LedgerImbalance::Overflow)?;
        assets.push(AssetCheck {
            asset,
            ledger: booked,
            chain,
            difference,
        });
    }
    let after = in_flight(store, &name).await?;
    Ok(Some(Reconciliation {
        account: name,
        block,
        assets,
        in_flight: before.max(after),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u64, negative: bool) -> Signed {
        Signed {
            magnitude: U256::from(v),
            negative,
        }
    }

    #[test]
    fn differences_are_exact_and_signed() {
        assert_eq!(difference(U256::from(10), s(10, false)), Some(s(0, false)));
        assert_eq!(difference(U256::from(12), s(10, false)), Some(s(2, false)));
        assert_eq!(difference(U256::from(7), s(10, false)), Some(s(3, true)));
        assert_eq!(difference(U256::from(7), s(3, true)), Some(s(10, false)));
        assert_eq!(
            difference(U256::MAX, s(0, false)),
            Some(Signed {
                magnitude: U256::MAX,
                negative: false
            })
        );
        assert_eq!(
            difference(U256::MAX, s(1, true)),
            None,
            "2^256 does not fit"
        );
    }

    #[test]
    fn the_table_says_whether_the_difference_is_zero() {
        let mut r = Reconciliation {
            account: "0xab".into(),
            block: 7,
            assets: vec![AssetCheck {
                asset: ledger::ETHER.into(),
                ledger: s(5, false),
                chain: U256::from(5),
                difference: s(0, false),
            }],
            in_flight: 0,
        };
        assert!(r.is_zero());
        assert!(r.to_string().ends_with("difference: zero"));
        r.assets[0].chain = U256::from(4);
        r.assets[0].difference = s(1, true);
        let text = r.to_string();
        assert!(!r.is_zero());
        assert!(text.contains("-1"), "{text}");
        assert!(text.ends_with("difference: NOT zero"), "{text}");
        assert_eq!(r.differences().count(), 1);
    }
}
