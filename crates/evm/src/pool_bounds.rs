//! The bounds Uniswap V3's `TickMath` puts on every pool, and the fee tiers its factory enables
//! at deployment. Needed wherever a "no limit" swap or a full-range position is spelled out.

use alloy_primitives::{U256, uint};

/// `TickMath.MIN_TICK`: no position may start below it.
pub const MIN_TICK: i32 = -887_272;
/// `TickMath.MAX_TICK`: no position may end above it.
pub const MAX_TICK: i32 = 887_272;
/// `TickMath.MIN_SQRT_RATIO`, the sqrt price at `MIN_TICK`.
pub const MIN_SQRT_RATIO: U256 = uint!(4295128739_U256);
/// `TickMath.MAX_SQRT_RATIO`, the sqrt price at `MAX_TICK`.
pub const MAX_SQRT_RATIO: U256 = uint!(1461446703485210103287273052203988822378723970342_U256);

/// The tick spacing the factory enables for a fee tier in its constructor, if it is one of them.
pub fn tick_spacing_for_fee(fee: u32) -> Option<i32> {
    match fee {
        500 => Some(10),
        3000 => Some(60),
        10_000 => Some(200),
        _ => None,
    }
}

/// The widest range usable at `spacing`: both ends are multiples of it, inside the tick bounds.
pub fn full_range(spacing: i32) -> (i32, i32) {
    let lower = MIN_TICK.div_euclid(spacing) * spacing;
    let lower = if lower < MIN_TICK {
        lower + spacing
    } else {
        lower
    };
    let upper = MAX_TICK.div_euclid(spacing) * spacing;
    (lower, upper)
}

/// The swap limit that means "no limit" in the given direction (one step inside the bounds,
/// as the pool requires strict inequality).
pub fn no_price_limit(zero_for_one: bool) -> U256 {
    if zero_for_one {
        MIN_SQRT_RATIO + U256::from(1u8)
    } else {
        MAX_SQRT_RATIO - U256::from(1u8)
    }
}
