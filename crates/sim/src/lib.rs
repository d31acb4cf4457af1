//! Exact simulation of stratbox's actions in revm, over the real Uniswap V3 and ERC-20 bytecode.
//!
//! A [`Chain`] is revm state with the contracts deployed: either built here from scratch
//! ([`Chain::embedded`]) or read lazily from a JSON-RPC node ([`Chain::fork`]). Actions run
//! through stratbox's executor contract exactly as they would on a chain: [`Chain::simulate`]
//! on a throw-away overlay, [`Chain::execute`] committed.
//!
//! # Thread safety
//! `Chain` is `Send + Sync + Clone`. [`Chain::simulate`] takes `&self` and writes only to its
//! own overlay, so any number of threads may simulate at once on an `Arc<Chain>`; mutation
//! ([`Chain::execute`], [`Chain::fund`], [`Chain::advance_block`]) needs `&mut self`, so an
//! owner that changes the state does it on a clone and publishes the clone, and nobody waits
//! on a lock that a simulation holds. All calls are synchronous: from async code run them on
//! a blocking thread (`spawn_blocking`). A forked chain fetches missing state from its RPC
//! node by blocking on the Tokio runtime it was created in, so it must never run on that
//! runtime's worker threads: a worker blocked there may be the one that would have driven
//! the reply.
#![warn(missing_docs)]

mod backend;
mod chain;
mod funding;
mod market;
mod pool_storage;
mod revert;

pub use alloy_primitives::{Address, B256, U256};
pub use backend::BackendError;
pub use chain::{
    Chain, DEFAULT_DEPLOYER, DEFAULT_MARKET_MAKER, FORK_RPC_TIMEOUT, SimOptions, TX_GAS_LIMIT,
    action_calldata,
};
pub use funding::Funding;
pub use stratbox_evm::pool_events::{LiquidityEvent, PoolEvent, SwapEvent};

/// One action, as the strategy world and the engine's proto describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Exact-input swap; less than `amount_in` is spent if the price limit is reached first.
    Swap {
        /// The pool to trade on.
        pool: Address,
        /// True to pay token0 and receive token1 (the price goes down).
        zero_for_one: bool,
        /// Raw units of the input token.
        amount_in: U256,
        /// `None`: no limit beyond the pool's bounds.
        sqrt_price_limit_x96: Option<U256>,
    },
    /// Liquidity units on [tick_lower, tick_upper), paid by the account.
    AddLiquidity {
        /// The pool.
        pool: Address,
        /// Lower tick (inclusive), a multiple of the pool's spacing.
        tick_lower: i32,
        /// Upper tick (exclusive), a multiple of the pool's spacing.
        tick_upper: i32,
        /// Liquidity units to add.
        liquidity: u128,
    },
    /// Removes the account's liquidity; principal and earned fees are paid out.
    RemoveLiquidity {
        /// The pool.
        pool: Address,
        /// Lower tick of the position.
        tick_lower: i32,
        /// Upper tick of the position.
        tick_upper: i32,
        /// Liquidity units to remove; at most what the account holds there.
        liquidity: u128,
    },
}

impl Action {
    /// The pool the action touches (every action touches exactly one).
    pub fn pool(&self) -> Address {
        match *self {
            Action::Swap { pool, .. }
            | Action::AddLiquidity { pool, .. }
            | Action::RemoveLiquidity { pool, .. } => pool,
        }
    }
}

/// What an action did. A revert is an outcome (`success == false`), not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// False when the transaction reverted or halted; see `revert_reason`.
    pub success: bool,
    /// Decoded reason of a revert or halt (`"SPL"`, `"ERC20: transfer amount exceeds balance"`,
    /// `"panic: arithmetic overflow (0x11)"`, `"halt: OutOfGas(..)"`...).
    pub revert_reason: Option<String>,
    /// Magnitudes of token0/token1 moved. Swap: one paid in, one received. Add: both paid.
    /// Remove: principal received (fees are in `fees0`/`fees1`, also received).
    pub amount0: U256,
    /// As `amount0`, for token1.
    pub amount1: U256,
    /// For a swap, token0 was paid in (`zero_for_one`). False for liquidity actions.
    pub token0_in: bool,
    /// Fees paid out by a remove, on top of the principal.
    pub fees0: U256,
    /// As `fees0`, for token1.
    pub fees1: U256,
    /// The pool after the action (unchanged by a revert).
    pub sqrt_price_after: U256,
    /// The pool's tick after the action.
    pub tick_after: i32,
    /// The pool's in-range liquidity after the action.
    pub liquidity_after: u128,
    /// Gas the transaction used, reverted ones included.
    pub gas_used: u64,
}

/// A committed action: its outcome and the pool events it emitted, positioned in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// What the action did.
    pub outcome: Outcome,
    /// The block it was committed in.
    pub block_number: u64,
    /// That block's timestamp (s).
    pub timestamp: u64,
    /// Synthetic hash (the embedded chain has no signed transactions): keccak of chain id,
    /// block, index in block, sender and calldata. Unique per committed action.
    pub tx_hash: B256,
    /// Position within the block.
    pub tx_index: u32,
    /// Pool events it emitted, in log order.
    pub events: Vec<ChainEvent>,
}

/// One pool event with its block-wide log index. Positions held through the executor carry
/// the account as owner (see `stratbox_evm::pool_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEvent {
    /// Index among all logs of the block, as a node numbers them.
    pub log_index: u32,
    /// The decoded event.
    pub event: PoolEvent,
}

/// A pool's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolInfo {
    /// The pool contract.
    pub address: Address,
    /// The lower-addressed token.
    pub token0: Address,
    /// The higher-addressed token.
    pub token1: Address,
    /// Fee in hundredths of a basis point (3000 = 0.3%).
    pub fee: u32,
    /// Positions' ticks must be multiples of it.
    pub tick_spacing: i32,
}

/// A pool's price state, which every swap changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Q64.96 sqrt of the price of token0 in token1.
    pub sqrt_price_x96: U256,
    /// The tick the price is in.
    pub tick: i32,
    /// Liquidity in range at that tick.
    pub liquidity: u128,
}

/// A pool the embedded chain creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    /// 500, 3000 or 10000 (tick spacing 10, 60, 200).
    pub fee: u32,
    /// Initial Q64.96 sqrt price of token0 in token1.
    pub sqrt_price_x96: U256,
    /// Liquidity the market maker provides on `seed_range`; 0 for none.
    pub seed_liquidity: u128,
    /// `None`: the full range at the fee's spacing.
    pub seed_range: Option<(i32, i32)>,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            fee: 3000,
            sqrt_price_x96: stratbox_evm::deploy::PRICE_ONE_X96,
            seed_liquidity: 1_000_000_000_000_000_000_000_000, // 1e24
            seed_range: None,
        }
    }
}

/// An account given tokens (and an executor approval) when the chain is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundedAccount {
    /// The account funded.
    pub account: Address,
    /// Raw units of token0 minted to it.
    pub amount0: U256,
    /// Raw units of token1 minted to it.
    pub amount1: U256,
}

/// The embedded chain: one token pair, one pool per entry of `pools` (distinct fee tiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Chain id, as the engine and signer expect it.
    pub chain_id: u64,
    /// Number of the first block.
    pub start_block: u64,
    /// Timestamp of the first block, seconds since the Unix epoch.
    pub start_timestamp: u64,
    /// Seconds per block for [`Chain::next_block`].
    pub block_time: u64,
    /// Pools to create, one per fee tier.
    pub pools: Vec<PoolSpec>,
    /// Provides every pool's seed liquidity.
    pub market_maker: Address,
    /// Accounts funded at start.
    pub accounts: Vec<FundedAccount>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            start_block: 1,
            start_timestamp: 1_700_000_000,
            block_time: 12,
            pools: vec![PoolSpec::default()],
            market_maker: DEFAULT_MARKET_MAKER,
            accounts: Vec::new(),
        }
    }
}

/// Why the simulator could not run an action. A revert is not an error (see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// revm itself failed (not the transaction).
    #[error("evm error: {0}")]
    Evm(String),
    /// The state could not be read.
    #[error("state backend: {0}")]
    Backend(#[from] BackendError),
    /// Building the embedded chain failed.
    #[error("deployment step {step} failed: {detail}")]
    Deploy {
        /// Which contract or call.
        step: String,
        /// Why, e.g. a revert reason.
        detail: String,
    },
    /// An action on a pool the chain does not know.
    #[error("unknown pool {0}")]
    UnknownPool(Address),
    /// An argument the contracts cannot take (e.g. a tick out of int24).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Contract storage or return data that does not decode.
    #[error("cannot decode {what}: {detail}")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// The decoder's reason.
        detail: String,
    },
    /// A request to the node failed (setting up a fork, reading the chain).
    #[error("rpc: {0}")]
    Rpc(String),
}
