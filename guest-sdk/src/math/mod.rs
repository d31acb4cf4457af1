//! Exact integer Uniswap V3 math: the same numbers, bit for bit, as the Solidity libraries
//! (`FullMath`, `TickMath`, `SqrtPriceMath`, `SwapMath` in v3-core, `LiquidityAmounts` in
//! v3-periphery).
//!
//! Why exact and not "close enough": the engine turns a strategy's expected amounts into
//! hard bounds on the simulated outcome, and the simulation runs the real pool bytecode. A
//! one-wei difference in rounding direction is the difference between a trade that passes
//! and one refused for slippage. So every rounding direction, every `require` and every
//! unchecked wrap of the Solidity 0.7 code is reproduced; each `require` becomes a typed
//! [`MathError`] instead of a revert.
//!
//! Square-root prices are Q64.96 values held in [`U256`]; where Solidity takes a `uint160`
//! we refuse wider input with [`MathError::NotUint160`] rather than truncate silently.
//! Liquidity is `u128`, as in the pool.

pub mod full_math;
pub mod liquidity_amounts;
pub mod price;
pub mod sqrt_price_math;
pub mod swap_math;
pub mod tick_math;

pub use ruint::aliases::U256;

pub use full_math::{mul_div, mul_div_rounding_up};
pub use liquidity_amounts::{get_amounts_for_liquidity, get_liquidity_for_amounts};
pub use sqrt_price_math::{
    get_amount0_delta, get_amount1_delta, get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
};
pub use swap_math::{SwapStep, compute_swap_step};
pub use tick_math::{
    MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
};

/// 2^96: the fixed-point one of a Q64.96 number (`FixedPoint96.Q96`).
pub const Q96: U256 = U256::from_limbs([0, 1 << 32, 0, 0]);

/// A condition under which the Solidity code would revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    /// `TickMath.getSqrtRatioAtTick`: `require(absTick <= MAX_TICK, 'T')`.
    #[error("tick {0} is outside [{MIN_TICK}, {MAX_TICK}]")]
    TickOutOfRange(i32),
    /// `TickMath.getTickAtSqrtRatio`: `require(MIN_SQRT_RATIO <= p < MAX_SQRT_RATIO, 'R')`.
    #[error("sqrt price is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")]
    SqrtPriceOutOfRange,
    /// A value passed where Solidity takes a `uint160` does not fit.
    #[error("value does not fit in uint160")]
    NotUint160,
    /// A result Solidity casts to `uint160` / `uint128` with a check (`toUint160`,
    /// `toUint128`) does not fit.
    #[error("result does not fit in uint{0}")]
    ResultOverflow(u32),
    /// `FullMath.mulDiv`: `require(denominator > 0)` (and `x / 0` in checked code).
    #[error("division by zero")]
    DivisionByZero,
    /// `FullMath.mulDiv`: the quotient needs more than 256 bits; or a checked addition
    /// (`LowGasSafeMath.add`) overflowed; or `mulDivRoundingUp` cannot round past MAX.
    #[error("arithmetic overflow")]
    Overflow,
    /// `SqrtPriceMath.getNextSqrtPriceFromInput/Output`: `require(sqrtPX96 > 0)`.
    #[error("sqrt price is zero")]
    ZeroPrice,
    /// `SqrtPriceMath.getNextSqrtPriceFromInput/Output`: `require(liquidity > 0)`.
    #[error("liquidity is zero")]
    ZeroLiquidity,
    /// `SqrtPriceMath`: the price would cross zero (`require(numerator1 > product)`,
    /// `require(sqrtPX96 > quotient)`): more output asked than the liquidity holds.
    #[error("not enough liquidity for the requested output")]
    InsufficientLiquidity,
    /// `SwapMath`: a fee of 100% or more makes `1e6 - feePips` meaningless.
    #[error("fee {0} pips is not below 1000000")]
    InvalidFee(u32),
    /// `SwapMath`: `amountRemaining` is an `int256`; the magnitude does not fit.
    #[error("amount remaining does not fit in int256")]
    AmountRemainingOutOfRange,
}

impl From<MathError> for String {
    fn from(e: MathError) -> Self {
        e.to_string()
    }
}

/// Refuses what Solidity's `uint160` parameter type would never admit.
pub(crate) fn require_u160(v: U256) -> Result<U256, MathError> {
    if v.bit_len() > 160 {
        Err(MathError::NotUint160)
    } else {
        Ok(v)
    }
}

/// `UnsafeMath.divRoundingUp`: EVM `div`/`mod` by zero yield zero, so this never fails.
pub(crate) fn div_rounding_up(x: U256, y: U256) -> U256 {
    if y.is_zero() {
        return U256::ZERO;
    }
    let (q, r) = x.div_rem(y);
    // q < 2^256 - 1 whenever r > 0 (y >= 2), so this add cannot wrap; wrapping mirrors
    // the assembly `add` regardless.
    if r.is_zero() {
        q
    } else {
        q.wrapping_add(U256::from(1u8))
    }
}
