//! Decoding of the pool events a chain feed turns into strategy events.
//!
//! Positions opened through [`StratboxExecutor`](crate::abi::StratboxExecutor) are held by the
//! executor in the pool, so the pool's `Mint`/`Burn` name the executor as owner.
//! [`decode_receipt_logs`] puts the account back, from the executor's own event in the same
//! transaction, so a strategy sees its own account as the owner of its liquidity.

use alloy_primitives::{Address, I256, Log, U256};
use alloy_sol_types::SolEvent;

use crate::abi::{IUniswapV3Pool, StratboxExecutor};

/// A pool's `Swap` log, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapEvent {
    /// The pool that emitted it.
    pub pool: Address,
    /// Who called the pool (the executor or a router, not necessarily the trader).
    pub sender: Address,
    /// Who received the output.
    pub recipient: Address,
    /// Signed pool deltas: positive is paid into the pool.
    pub amount0: I256,
    /// As `amount0`, for token1.
    pub amount1: I256,
    /// Pool state after the swap.
    pub sqrt_price_x96: U256,
    /// In-range liquidity after the swap.
    pub liquidity: u128,
    /// Current tick after the swap.
    pub tick: i32,
}

impl SwapEvent {
    /// token0 went in (price went down).
    pub fn zero_for_one(&self) -> bool {
        self.amount0.is_positive()
    }

    /// What the trader paid in, in the input token's raw units.
    pub fn amount_in(&self) -> U256 {
        if self.zero_for_one() {
            self.amount0.unsigned_abs()
        } else {
            self.amount1.unsigned_abs()
        }
    }

    /// What the trader received, in the output token's raw units.
    pub fn amount_out(&self) -> U256 {
        if self.zero_for_one() {
            self.amount1.unsigned_abs()
        } else {
            self.amount0.unsigned_abs()
        }
    }
}

/// A pool's `Mint` or `Burn` log, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiquidityEvent {
    /// The pool that emitted it.
    pub pool: Address,
    /// The position's owner in the pool, or the account behind the executor (see module doc).
    pub owner: Address,
    /// The position's lower tick (inclusive).
    pub tick_lower: i32,
    /// The position's upper tick (exclusive).
    pub tick_upper: i32,
    /// Liquidity added or removed.
    pub liquidity: u128,
    /// Principal moved (fees are not included for a burn).
    pub amount0: U256,
    /// As `amount0`, for token1.
    pub amount1: U256,
}

/// Any pool event a feed publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// A trade.
    Swap(SwapEvent),
    /// Liquidity added.
    Mint(LiquidityEvent),
    /// Liquidity removed.
    Burn(LiquidityEvent),
}

impl PoolEvent {
    /// The emitting pool, whatever the kind.
    pub fn pool(&self) -> Address {
        match self {
            PoolEvent::Swap(e) => e.pool,
            PoolEvent::Mint(e) | PoolEvent::Burn(e) => e.pool,
        }
    }
}

/// A pool `Swap`, `Mint` or `Burn` log, or `None` for any other log.
pub fn decode_pool_log(log: &Log) -> Option<PoolEvent> {
    let topic0 = *log.topics().first()?;
    if topic0 == IUniswapV3Pool::Swap::SIGNATURE_HASH {
        let e = IUniswapV3Pool::Swap::decode_log(log).ok()?;
        return Some(PoolEvent::Swap(SwapEvent {
            pool: log.address,
            sender: e.sender,
            recipient: e.recipient,
            amount0: e.amount0,
            amount1: e.amount1,
            sqrt_price_x96: U256::from(e.sqrtPriceX96),
            liquidity: e.liquidity,
            tick: e.tick.as_i32(),
        }));
    }
    if topic0 == IUniswapV3Pool::Mint::SIGNATURE_HASH {
        let e = IUniswapV3Pool::Mint::decode_log(log).ok()?;
        return Some(PoolEvent::Mint(LiquidityEvent {
            pool: log.address,
            owner: e.owner,
            tick_lower: e.tickLower.as_i32(),
            tick_upper: e.tickUpper.as_i32(),
            liquidity: e.amount,
            amount0: e.amount0,
            amount1: e.amount1,
        }));
    }
    if topic0 == IUniswapV3Pool::Burn::SIGNATURE_HASH {
        let e = IUniswapV3Pool::Burn::decode_log(log).ok()?;
        return Some(PoolEvent::Burn(LiquidityEvent {
            pool: log.address,
            owner: e.owner,
            tick_lower: e.tickLower.as_i32(),
            tick_upper: e.tickUpper.as_i32(),
            liquidity: e.amount,
            amount0: e.amount0,
            amount1: e.amount1,
        }));
    }
    None
}

/// The pool events among one transaction's logs, each with its index in `logs`, with executor
/// positions attributed to the account the executor acted for.
pub fn decode_receipt_logs(logs: &[Log], executor: Address) -> Vec<(usize, PoolEvent)> {
    let mut out = Vec::new();
    for (index, log) in logs.iter().enumerate() {
        let Some(mut event) = decode_pool_log(log) else {
            continue;
        };
        if let PoolEvent::Mint(e) | PoolEvent::Burn(e) = &mut event
            && e.owner == executor
            && let Some(account) = executor_account(&logs[index + 1..], executor, e)
        {
            e.owner = account;
        }
        out.push((index, event));
    }
    out
}

/// The account named by the first executor event after a pool mint/burn that matches it.
fn executor_account(after: &[Log], executor: Address, e: &LiquidityEvent) -> Option<Address> {
    after
        .iter()
        .filter(|l| l.address == executor)
        .find_map(|log| {
            if let Ok(x) = StratboxExecutor::LiquidityAdded::decode_log(log)
                && x.pool == e.pool
                && x.tickLower.as_i32() == e.tick_lower
                && x.tickUpper.as_i32() == e.tick_upper
                && x.liquidity == e.liquidity
            {
                return Some(x.account);
            }
            if let Ok(x) = StratboxExecutor::LiquidityRemoved::decode_log(log)
                && x.pool == e.pool
                && x.tickLower.as_i32() == e.tick_lower
                && x.tickUpper.as_i32() == e.tick_upper
                && x.liquidity == e.liquidity
            {
                return Some(x.account);
            }
            None
        })
}
