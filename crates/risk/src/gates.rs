//! The gates every proposal passes before simulation, in this order (first failure wins):
//!
//! 1. `kill_switch` — [`KillSwitch::check`]
//! 2. `stale_watermark` — [`sentinel::check`]
//! 3. `oracle_missing` / `oracle_disagreement` / `market_halted` — [`OracleGuard::check`]
//! 4. `permission_level` — the level's mode ceiling; `limit_notional` — the level's trade size
//! 5. `limit_slippage`, `limit_drawdown`, `limit_daily_loss`, `limit_leverage`,
//!    `limit_cash_reserve`, `limit_exposure` — [`limits::check_trade`]
//!
//! Cheap global switches go first so a halted system does no work; market data is checked
//! before anything about the strategy, because every later gate values the trade at
//! prices that must be trusted first.
//!
//! The order is part of the contract: tests pin it. `bad_input` can come from gate 4
//! (zero notional) or 5 (slippage over 100%, a swap of an asset for itself).

use std::borrow::Borrow;
use std::hash::Hash;

use ruint::aliases::U256;

use crate::config::RiskConfig;
use crate::kill_switch::KillSwitch;
use crate::limits::{self, AccountRisk, TradeRisk};
use crate::oracle::OracleGuard;
use crate::permission::{self, ExecutionMode, PermissionLevel};
use crate::reason::Rejection;
use crate::sentinel;

/// Everything the gates look at for one proposal, borrowed from the engine's state.
#[derive(Debug)]
pub struct GateInput<'a, Q: ?Sized> {
    /// Selects per-strategy limit overrides.
    pub strategy: &'a str,
    /// Checked first; when engaged every proposal is refused with `kill_switch`.
    pub kill_switch: &'a KillSwitch,
    /// The engine's watermark (newest synchronised block); also the oracle's "now".
    pub engine_block: u64,
    /// The proposal's `last_sync_block`.
    pub proposal_block: u64,
    /// The market's key in the [`OracleGuard`] (e.g. the pool address).
    pub market: &'a Q,
    /// The strategy's current level ([`crate::PermissionTracker::level`]).
    pub level: PermissionLevel,
    /// The engine's mode.
    pub requested_mode: ExecutionMode,
    /// The strategy's account state (equity, exposure, P&L) the limits are measured against.
    pub account: &'a AccountRisk<'a>,
    /// The trade's size, slippage and assets, checked against the level's notional cap and the limits.
    pub trade: &'a TradeRisk<'a>,
}

// By hand: a derive would demand `Q: Copy`, which `str` is not; only references are copied.
impl<Q: ?Sized> Clone for GateInput<'_, Q> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Q: ?Sized> Copy for GateInput<'_, Q> {}

/// A proposal that passed every gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clearance {
    /// The strategy's level the clearance was granted at (echoed from the input).
    pub level: PermissionLevel,
    /// The mode to run the trade in: the engine's mode capped by the level (an L1 strategy
    /// in a live engine runs in shadow).
    pub mode: ExecutionMode,
    /// The oracle median for the market, 18-decimal fixed point.
    pub oracle_price_e18: U256,
}

/// Run every gate in order. Allocation-free when it returns `Ok`. Mutates `oracle` only to
/// halt or resume the market (see [`crate::oracle`]).
pub fn evaluate<K, Q>(
    cfg: &RiskConfig,
    oracle: &mut OracleGuard<K>,
    input: &GateInput<'_, Q>,
) -> Result<Clearance, Rejection>
where
    K: Eq + Hash + Borrow<Q>,
    Q: Eq + Hash + ?Sized,
{
    input.kill_switch.check()?;
    sentinel::check(&cfg.sentinel, input.engine_block, input.proposal_block)?;
    let price = oracle.check(&cfg.oracle, input.market, input.engine_block)?;
    let mode = permission::check_level(&cfg.permission, input.level, input.requested_mode)?;
    limits::check_notional(
        cfg.permission.levels.get(input.level),
        input.account,
        input.trade,
    )?;
    let effective = cfg.limits.for_strategy(input.strategy);
    limits::check_trade(&effective, input.account, input.trade)?;
    Ok(Clearance {
        level: input.level,
        mode,
        oracle_price_e18: price,
    })
}

/// The gates an unwind built by the engine passes (a halted book's exposure sold back
/// towards its quote asset): kill switch, Sync Sentinel, triple oracle as for any trade,
/// then, in place of the permission level and the hard limits, that the trade reduces the
/// book's exposure (`reduces`, judged by the caller, which holds the book) and accepts no
/// more slippage than the limits allow. Why the exception: a halted (L0) strategy may not
/// trade, and a book in breach of drawdown or daily loss refuses every trade, yet selling
/// what the book holds is what brings its risk down. Anything that could add exposure
/// never gets here. The mode is the caller's (`input.requested_mode`).
pub fn evaluate_unwind<K, Q>(
    cfg: &RiskConfig,
    oracle: &mut OracleGuard<K>,
    input: &GateInput<'_, Q>,
    reduces: Result<(), Rejection>,
) -> Result<Clearance, Rejection>
where
    K: Eq + Hash + Borrow<Q>,
    Q: Eq + Hash + ?Sized,
{
    input.kill_switch.check()?;
    sentinel::check(&cfg.sentinel, input.engine_block, input.proposal_block)?;
    let price = oracle.check(&cfg.oracle, input.market, input.engine_block)?;
    reduces?;
    let effective = cfg.limits.for_strategy(input.strategy);
    if input.trade.slippage_bps > effective.max_slippage_bps {
        return Err(Rejection::new(
            crate::reason::ReasonCode::LimitSlippage,
            format!(
                "unwind accepts {} bps of slippage, over the limit of {} bps",
                input.trade.slippage_bps, effective.max_slippage_bps
            ),
        ));
    }
    Ok(Clearance {
        level: input.level,
        mode: input.requested_mode,
        oracle_price_e18: price,
    })
}
