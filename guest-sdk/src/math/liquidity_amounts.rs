//! `LiquidityAmounts` (v3-periphery): between token amounts and liquidity on a range.
//!
//! These round down, as the periphery does; the pool itself charges a mint with
//! `SqrtPriceMath` rounding up, see [`amounts_for_mint`].

use super::full_math::mul_div;
use super::sqrt_price_math::{get_amount0_delta, get_amount1_delta};
use super::{MathError, Q96, U256, require_u160};

fn to_u128(v: U256) -> Result<u128, MathError> {
    u128::try_from(v).map_err(|_| MathError::ResultOverflow(128))
}

fn sorted(a: U256, b: U256) -> Result<(U256, U256), MathError> {
    let a = require_u160(a)?;
    let b = require_u160(b)?;
    Ok(if a > b { (b, a) } else { (a, b) })
}

/// `getLiquidityForAmount0`: the liquidity `amount0` buys on [a, b] when the price is at or
/// below a.
pub fn get_liquidity_for_amount0(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    amount0: U256,
) -> Result<u128, MathError> {
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    let intermediate = mul_div(a, b, Q96)?;
    to_u128(mul_div(amount0, intermediate, b - a)?)
}

/// `getLiquidityForAmount1`: the liquidity `amount1` buys on [a, b] when the price is at or
/// above b.
pub fn get_liquidity_for_amount1(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    amount1: U256,
) -> Result<u128, MathError> {
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    to_u128(mul_div(amount1, Q96, b - a)?)
}

/// `getLiquidityForAmounts`: the most liquidity both amounts together buy at the current
/// price `sqrt_ratio_x96` on [a, b].
pub fn get_liquidity_for_amounts(
    sqrt_ratio_x96: U256,
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    amount0: U256,
    amount1: U256,
) -> Result<u128, MathError> {
    let p = require_u160(sqrt_ratio_x96)?;
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    if p <= a {
        get_liquidity_for_amount0(a, b, amount0)
    } else if p < b {
        let l0 = get_liquidity_for_amount0(p, b, amount0)?;
        let l1 = get_liquidity_for_amount1(a, p, amount1)?;
        Ok(l0.min(l1))
    } else {
        get_liquidity_for_amount1(a, b, amount1)
    }
}

/// `getAmount0ForLiquidity`: token0 held by `liquidity` on [a, b], rounded down.
pub fn get_amount0_for_liquidity(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
) -> Result<U256, MathError> {
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    if a.is_zero() {
        return Err(MathError::DivisionByZero);
    }
    Ok(mul_div(U256::from(liquidity) << 96usize, b - a, b)? / a)
}

/// `getAmount1ForLiquidity`: token1 held by `liquidity` on [a, b], rounded down.
pub fn get_amount1_for_liquidity(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
) -> Result<U256, MathError> {
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    mul_div(U256::from(liquidity), b - a, Q96)
}

/// `getAmountsForLiquidity`: (token0, token1) held by `liquidity` on [a, b] at the current
/// price, rounded down; what a burn of that liquidity returns.
pub fn get_amounts_for_liquidity(
    sqrt_ratio_x96: U256,
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
) -> Result<(U256, U256), MathError> {
    let p = require_u160(sqrt_ratio_x96)?;
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    if p <= a {
        Ok((get_amount0_for_liquidity(a, b, liquidity)?, U256::ZERO))
    } else if p < b {
        Ok((
            get_amount0_for_liquidity(p, b, liquidity)?,
            get_amount1_for_liquidity(a, p, liquidity)?,
        ))
    } else {
        Ok((U256::ZERO, get_amount1_for_liquidity(a, b, liquidity)?))
    }
}

/// What `UniswapV3Pool.mint` charges for `liquidity` on [a, b] at the current price: the
/// same split as [`get_amounts_for_liquidity`] but rounded up, as `_modifyPosition` does
/// with `SqrtPriceMath.getAmount{0,1}Delta(.., roundUp = true)`.
///
/// The pool picks the branch by its current *tick*, this by price. They differ only when the
/// price sits exactly on the lower bound, and there both charge the full token0 amount and
/// no token1.
pub fn amounts_for_mint(
    sqrt_ratio_x96: U256,
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
) -> Result<(U256, U256), MathError> {
    let p = require_u160(sqrt_ratio_x96)?;
    let (a, b) = sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)?;
    if p <= a {
        Ok((get_amount0_delta(a, b, liquidity, true)?, U256::ZERO))
    } else if p < b {
        Ok((
            get_amount0_delta(p, b, liquidity, true)?,
            get_amount1_delta(a, p, liquidity, true)?,
        ))
    } else {
        Ok((U256::ZERO, get_amount1_delta(a, b, liquidity, true)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }

    // encodePriceSqrt values used by the v3-periphery LiquidityAmounts tests.
    fn p_1_1() -> U256 {
        Q96
    }
    fn p_100_110() -> U256 {
        u("75541088972021055232360200088")
    }
    fn p_110_100() -> U256 {
        u("83095197869223157896060286990")
    }

    #[test]
    fn liquidity_for_amounts() {
        // Price inside.
        assert_eq!(
            get_liquidity_for_amounts(
                p_1_1(),
                p_100_110(),
                p_110_100(),
                U256::from(100u8),
                U256::from(200u8)
            ),
            Ok(2148)
        );
        // Price below.
        assert_eq!(
            get_liquidity_for_amounts(
                u("75162434512514379355924140470"),
                p_100_110(),
                p_110_100(),
                U256::from(100u8),
                U256::from(200u8)
            ),
            Ok(1048)
        );
        // Price above.
        assert_eq!(
            get_liquidity_for_amounts(
                u("83472048772503200000000000000"),
                p_100_110(),
                p_110_100(),
                U256::from(100u8),
                U256::from(200u8)
            ),
            Ok(2097)
        );
        // Price at the bounds.
        assert_eq!(
            get_liquidity_for_amounts(
                p_100_110(),
                p_100_110(),
                p_110_100(),
                U256::from(100u8),
                U256::from(200u8)
            ),
            Ok(1048)
        );
        assert_eq!(
            get_liquidity_for_amounts(
                p_110_100(),
                p_100_110(),
                p_110_100(),
                U256::from(100u8),
                U256::from(200u8)
            ),
            Ok(2097)
        );
    }

    #[test]
    fn amounts_for_liquidity() {
        assert_eq!(
            get_amounts_for_liquidity(p_1_1(), p_100_110(), p_110_100(), 2148),
            Ok((U256::from(99u8), U256::from(99u8)))
        );
        assert_eq!(
            get_amounts_for_liquidity(
                u("75162434512514379355924140470"),
                p_100_110(),
                p_110_100(),
                1048
            ),
            Ok((U256::from(99u8), U256::ZERO))
        );
        assert_eq!(
            get_amounts_for_liquidity(
                u("83472048772503200000000000000"),
                p_100_110(),
                p_110_100(),
                2097
            ),
            Ok((U256::ZERO, U256::from(199u8)))
        );
        assert_eq!(
            get_amounts_for_liquidity(p_100_110(), p_100_110(), p_110_100(), 1048),
            Ok((U256::from(99u8), U256::ZERO))
        );
        assert_eq!(
            get_amounts_for_liquidity(p_110_100(), p_100_110(), p_110_100(), 2097),
            Ok((U256::ZERO, U256::from(199u8)))
        );
    }

    #[test]
    fn mint_rounds_up_burn_rounds_down() {
        let (m0, m1) = amounts_for_mint(p_1_1(), p_100_110(), p_110_100(), 2148).unwrap();
        let (b0, b1) = get_amounts_for_liquidity(p_1_1(), p_100_110(), p_110_100(), 2148).unwrap();
        assert_eq!((m0, m1), (U256::from(100u8), U256::from(100u8)));
        assert!(m0 >= b0 && m1 >= b1);
    }

    #[test]
    fn refuses_overflow_and_empty_ranges() {
        assert_eq!(
            get_liquidity_for_amount1(p_1_1(), p_1_1(), U256::from(1u8)),
            Err(MathError::DivisionByZero)
        );
        assert_eq!(
            get_liquidity_for_amount1(p_100_110(), p_110_100(), U256::MAX >> 1usize),
            Err(MathError::Overflow)
        );
        assert_eq!(
            get_liquidity_for_amount1(p_100_110(), p_110_100(), U256::from(1u8) << 130usize),
            Err(MathError::ResultOverflow(128))
        );
        assert_eq!(
            get_amount0_for_liquidity(U256::ZERO, p_1_1(), 1),
            Err(MathError::DivisionByZero)
        );
    }
}
