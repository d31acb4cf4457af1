//! Prices from a pool's square-root price: what the engine values books with, what the
//! oracle gate compares, and how the demo markets size a swap that moves the price by a
//! step. Kept beside the swap math so that the strategies, the engine and the simulators
//! read a pool's price with the same integer arithmetic (floor, no floats anywhere).

use ruint::aliases::{U256, U512};

use super::Q96;

/// 1e18, the fixed point of oracle prices.
pub const E18: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// `amount0` of token0 in token1 at `sqrt_price_x96`: amount·sqrtP²/2^192, floor, in 512
/// bits so a sum of many values cannot overflow.
pub fn token0_in_token1_wide(amount0: U256, sqrt_price_x96: U256) -> U512 {
    let p = U512::from(sqrt_price_x96);
    // (amount·sqrtP >> 96)·sqrtP >> 96 keeps every product under 512 bits.
    (((U512::from(amount0) * p) >> 96) * p) >> 96
}

/// [`token0_in_token1_wide`], saturated to 256 bits.
pub fn token0_in_token1(amount0: U256, sqrt_price_x96: U256) -> U256 {
    let wide = token0_in_token1_wide(amount0, sqrt_price_x96);
    <U256 as ruint::UintTryFrom<U512>>::uint_try_from(wide).unwrap_or(U256::MAX)
}

/// The pool's spot price, token1 per token0 with 18 decimals (the oracle's form).
pub fn spot_price_e18(sqrt_price_x96: U256) -> U256 {
    token0_in_token1(E18, sqrt_price_x96)
}

/// An input that moves sqrt(P) by about `step_ppm` millionths: Δx = L·Δ(1/√P) when selling
/// token0, Δy = L·Δ√P when selling token1 (both Q96-scaled), at least `floor`.
pub fn input_for_step(
    zero_for_one: bool,
    sqrt_price_x96: U256,
    liquidity: U256,
    step_ppm: U256,
    floor: U256,
) -> U256 {
    let million = U256::from(1_000_000u32);
    let amount = if zero_for_one {
        liquidity
            .saturating_mul(Q96)
            .checked_div(sqrt_price_x96.max(U256::from(1u8)))
            .unwrap_or_default()
            .saturating_mul(step_ppm)
            / million
    } else {
        liquidity.saturating_mul(sqrt_price_x96) / Q96 * step_ppm / million
    };
    amount.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_one_is_par() {
        assert_eq!(spot_price_e18(Q96), E18);
        assert_eq!(
            token0_in_token1(U256::from(12345u32), Q96),
            U256::from(12345u32)
        );
    }

    #[test]
    fn price_four_at_double_sqrt() {
        let two_q96 = Q96 * U256::from(2u8);
        assert_eq!(spot_price_e18(two_q96), E18 * U256::from(4u8));
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        assert_eq!(token0_in_token1(U256::MAX, U256::MAX), U256::MAX);
        assert!(token0_in_token1_wide(U256::MAX, U256::MAX) > U512::from(U256::MAX));
    }

    #[test]
    fn a_step_moves_the_price_by_about_that_much() {
        let l = U256::from(10u64).pow(U256::from(18));
        let sell0 = input_for_step(true, Q96, l, U256::from(3_000u32), U256::ZERO);
        let sell1 = input_for_step(false, Q96, l, U256::from(3_000u32), U256::ZERO);
        // At price 1 both sides need L·0.003.
        assert_eq!(sell0, l * U256::from(3u8) / U256::from(1000u32));
        assert_eq!(sell1, sell0);
        assert_eq!(
            input_for_step(
                true,
                Q96,
                U256::ZERO,
                U256::from(50u32),
                U256::from(1000u32)
            ),
            U256::from(1000u32)
        );
    }
}
