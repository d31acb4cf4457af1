//! `SqrtPriceMath`: how far a given amount moves the price, and how much a price move costs.
//!
//! Rounding always favours the pool: prices move further for inputs (less output per
//! input) and amounts owed to the pool round up. The arithmetic below keeps Solidity 0.7's
//! unchecked wraps where the original relies on them for its overflow tests.

use super::full_math::{mul_div, mul_div_rounding_up};
use super::{MathError, Q96, U256, div_rounding_up, require_u160};

fn to_u160(v: U256) -> Result<U256, MathError> {
    if v.bit_len() > 160 {
        Err(MathError::ResultOverflow(160))
    } else {
        Ok(v)
    }
}

/// `uint160(x)`: an unchecked downcast, kept where Solidity does not check.
fn truncate_u160(v: U256) -> U256 {
    let l = v.as_limbs();
    U256::from_limbs([l[0], l[1], l[2] & 0xffff_ffff, 0])
}

/// `getNextSqrtPriceFromAmount0RoundingUp`.
pub fn get_next_sqrt_price_from_amount0_rounding_up(
    sqrt_px96: U256,
    liquidity: u128,
    amount: U256,
    add: bool,
) -> Result<U256, MathError> {
    let sqrt_px96 = require_u160(sqrt_px96)?;
    if amount.is_zero() {
        return Ok(sqrt_px96);
    }
    let numerator1 = U256::from(liquidity) << 96usize;
    let product = amount.wrapping_mul(sqrt_px96);
    let product_exact = product / amount == sqrt_px96;
    if add {
        if product_exact {
            let denominator = numerator1.wrapping_add(product);
            if denominator >= numerator1 {
                return Ok(truncate_u160(mul_div_rounding_up(
                    numerator1,
                    sqrt_px96,
                    denominator,
                )?));
            }
        }
        // Solidity: `numerator1 / sqrtPX96` reverts on a zero price (checked `/`).
        if sqrt_px96.is_zero() {
            return Err(MathError::DivisionByZero);
        }
        let denominator = (numerator1 / sqrt_px96)
            .checked_add(amount)
            .ok_or(MathError::Overflow)?;
        Ok(truncate_u160(div_rounding_up(numerator1, denominator)))
    } else {
        if !(product_exact && numerator1 > product) {
            return Err(MathError::InsufficientLiquidity);
        }
        let denominator = numerator1 - product;
        to_u160(mul_div_rounding_up(numerator1, sqrt_px96, denominator)?)
    }
}

/// `getNextSqrtPriceFromAmount1RoundingDown`.
pub fn get_next_sqrt_price_from_amount1_rounding_down(
    sqrt_px96: U256,
    liquidity: u128,
    amount: U256,
    add: bool,
) -> Result<U256, MathError> {
    let sqrt_px96 = require_u160(sqrt_px96)?;
    let liquidity = U256::from(liquidity);
    let fits_u160 = amount.bit_len() <= 160;
    if add {
        let quotient = if fits_u160 {
            (amount << 96usize)
                .checked_div(liquidity)
                .ok_or(MathError::DivisionByZero)?
        } else {
            mul_div(amount, Q96, liquidity)?
        };
        to_u160(sqrt_px96.checked_add(quotient).ok_or(MathError::Overflow)?)
    } else {
        let quotient = if fits_u160 {
            // UnsafeMath.divRoundingUp: a zero divisor gives 0 rather than reverting.
            div_rounding_up(amount << 96usize, liquidity)
        } else {
            mul_div_rounding_up(amount, Q96, liquidity)?
        };
        if sqrt_px96 <= quotient {
            return Err(MathError::InsufficientLiquidity);
        }
        Ok(sqrt_px96 - quotient)
    }
}

/// `getNextSqrtPriceFromInput`: the price after `amount_in` of token0 (`zero_for_one`) or
/// token1 enters, rounded so the pool never gives more than it should.
pub fn get_next_sqrt_price_from_input(
    sqrt_px96: U256,
    liquidity: u128,
    amount_in: U256,
    zero_for_one: bool,
) -> Result<U256, MathError> {
    if sqrt_px96.is_zero() {
        return Err(MathError::ZeroPrice);
    }
    if liquidity == 0 {
        return Err(MathError::ZeroLiquidity);
    }
    if zero_for_one {
        get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, true)
    } else {
        get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, true)
    }
}

/// `getNextSqrtPriceFromOutput`: the price after `amount_out` of token1 (`zero_for_one`)
/// or token0 leaves.
pub fn get_next_sqrt_price_from_output(
    sqrt_px96: U256,
    liquidity: u128,
    amount_out: U256,
    zero_for_one: bool,
) -> Result<U256, MathError> {
    if sqrt_px96.is_zero() {
        return Err(MathError::ZeroPrice);
    }
    if liquidity == 0 {
        return Err(MathError::ZeroLiquidity);
    }
    if zero_for_one {
        get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, false)
    } else {
        get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, false)
    }
}

/// `getAmount0Delta(uint160,uint160,uint128,bool)`: token0 between two prices for
/// `liquidity`, i.e. `L * 2^96 * (sqrtB - sqrtA) / sqrtB / sqrtA`.
pub fn get_amount0_delta(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
    round_up: bool,
) -> Result<U256, MathError> {
    let a = require_u160(sqrt_ratio_a_x96)?;
    let b = require_u160(sqrt_ratio_b_x96)?;
    let (a, b) = if a > b { (b, a) } else { (a, b) };
    let numerator1 = U256::from(liquidity) << 96usize;
    let numerator2 = b - a;
    if a.is_zero() {
        return Err(MathError::ZeroPrice);
    }
    if round_up {
        Ok(div_rounding_up(
            mul_div_rounding_up(numerator1, numerator2, b)?,
            a,
        ))
    } else {
        Ok(mul_div(numerator1, numerator2, b)? / a)
    }
}

/// `getAmount1Delta(uint160,uint160,uint128,bool)`: token1 between two prices for
/// `liquidity`, i.e. `L * (sqrtB - sqrtA) / 2^96`.
pub fn get_amount1_delta(
    sqrt_ratio_a_x96: U256,
    sqrt_ratio_b_x96: U256,
    liquidity: u128,
    round_up: bool,
) -> Result<U256, MathError> {
    let a = require_u160(sqrt_ratio_a_x96)?;
    let b = require_u160(sqrt_ratio_b_x96)?;
    let (a, b) = if a > b { (b, a) } else { (a, b) };
    let liquidity = U256::from(liquidity);
    if round_up {
        mul_div_rounding_up(liquidity, b - a, Q96)
    } else {
        mul_div(liquidity, b - a, Q96)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }

    fn e18() -> U256 {
        U256::from(10u64.pow(18))
    }

    /// encodePriceSqrt(1, 1) in the v3-core tests.
    fn price_1_1() -> U256 {
        Q96
    }

    // Vectors from the v3-core SqrtPriceMath tests.
    #[test]
    fn next_price_from_input() {
        assert_eq!(
            get_next_sqrt_price_from_input(U256::ZERO, 1, e18() / U256::from(10u8), false),
            Err(MathError::ZeroPrice)
        );
        assert_eq!(
            get_next_sqrt_price_from_input(U256::from(1u8), 0, e18() / U256::from(10u8), true),
            Err(MathError::ZeroLiquidity)
        );
        let max_u160 = (U256::from(1u8) << 160usize) - U256::from(1u8);
        assert_eq!(
            get_next_sqrt_price_from_input(max_u160, 1024, U256::from(1024u32), false),
            Err(MathError::ResultOverflow(160))
        );
        // Any input amount cannot underflow the price.
        assert_eq!(
            get_next_sqrt_price_from_input(U256::from(1u8), 1, U256::from(1u8) << 255usize, true),
            Ok(U256::from(1u8))
        );
        // Returns the input price if the amount in is zero, either direction.
        let l = 10u128.pow(17);
        assert_eq!(
            get_next_sqrt_price_from_input(price_1_1(), l, U256::ZERO, true),
            Ok(price_1_1())
        );
        assert_eq!(
            get_next_sqrt_price_from_input(price_1_1(), l, U256::ZERO, false),
            Ok(price_1_1())
        );
        // Returns the minimum price for max inputs.
        let sqrt_p = max_u160;
        let liquidity = u128::MAX;
        let max_amount_no_overflow = U256::MAX - ((U256::from(liquidity) << 96usize) / sqrt_p);
        assert_eq!(
            get_next_sqrt_price_from_input(sqrt_p, liquidity, max_amount_no_overflow, true),
            Ok(U256::from(1u8))
        );
        // Input amount of 0.1 token1 / token0.
        let l = 10u128.pow(18);
        assert_eq!(
            get_next_sqrt_price_from_input(price_1_1(), l, e18() / U256::from(10u8), false),
            Ok(u("87150978765690771352898345369"))
        );
        assert_eq!(
            get_next_sqrt_price_from_input(price_1_1(), l, e18() / U256::from(10u8), true),
            Ok(u("72025602285694852357767227579"))
        );
        // amountIn > type(uint96).max and zeroForOne = true.
        assert_eq!(
            get_next_sqrt_price_from_input(
                price_1_1(),
                10u128.pow(19),
                U256::from(1u8) << 100usize,
                true
            ),
            Ok(u("624999999995069620"))
        );
        // Can return 1 with enough amountIn and zeroForOne = true.
        assert_eq!(
            get_next_sqrt_price_from_input(price_1_1(), 1, U256::MAX / U256::from(2u8), true),
            Ok(U256::from(1u8))
        );
    }

    #[test]
    fn next_price_from_output() {
        assert_eq!(
            get_next_sqrt_price_from_output(U256::ZERO, 1, e18() / U256::from(10u8), false),
            Err(MathError::ZeroPrice)
        );
        assert_eq!(
            get_next_sqrt_price_from_output(U256::from(1u8), 0, e18() / U256::from(10u8), true),
            Err(MathError::ZeroLiquidity)
        );
        // Fails if output amount is exactly the virtual reserves of token0.
        let price = u("20282409603651670423947251286016");
        let liquidity = 1024u128;
        assert_eq!(
            get_next_sqrt_price_from_output(price, liquidity, U256::from(4u8), false),
            Err(MathError::InsufficientLiquidity)
        );
        assert_eq!(
            get_next_sqrt_price_from_output(price, liquidity, U256::from(5u8), false),
            Err(MathError::InsufficientLiquidity)
        );
        // Fails if output amount is exactly / greater than the virtual reserves of token1.
        assert_eq!(
            get_next_sqrt_price_from_output(price, liquidity, U256::from(262_144u32), true),
            Err(MathError::InsufficientLiquidity)
        );
        assert_eq!(
            get_next_sqrt_price_from_output(price, liquidity, U256::from(262_145u32), true),
            Err(MathError::InsufficientLiquidity)
        );
        // Succeeds if output amount is just less than the virtual reserves of token1.
        assert_eq!(
            get_next_sqrt_price_from_output(price, liquidity, U256::from(262_143u32), true),
            Ok(u("77371252455336267181195264"))
        );
        // Output amount of 0.1 token1 / token0.
        let l = 10u128.pow(18);
        assert_eq!(
            get_next_sqrt_price_from_output(price_1_1(), l, e18() / U256::from(10u8), false),
            Ok(u("88031291682515930659493278152"))
        );
        assert_eq!(
            get_next_sqrt_price_from_output(price_1_1(), l, e18() / U256::from(10u8), true),
            Ok(u("71305346262837903834189555302"))
        );
        // Reverts if amountOut is impossible in either direction.
        // (overflow in mulDivRoundingUp first one way, the price crossing zero the other)
        assert_eq!(
            get_next_sqrt_price_from_output(price_1_1(), 1, U256::MAX, true),
            Err(MathError::Overflow)
        );
        assert_eq!(
            get_next_sqrt_price_from_output(price_1_1(), 1, U256::MAX, false),
            Err(MathError::InsufficientLiquidity)
        );
    }

    #[test]
    fn amount_deltas() {
        let l = 10u128.pow(18);
        // Returns 0 if liquidity is 0 or the prices are equal.
        assert_eq!(
            get_amount0_delta(price_1_1(), u("112045541949572279837463876454"), 0, true),
            Ok(U256::ZERO)
        );
        assert_eq!(
            get_amount0_delta(price_1_1(), price_1_1(), 0, true),
            Ok(U256::ZERO)
        );
        // Price 1 -> 1.21 (encodePriceSqrt(121, 100) = 87150978765690771352898345369).
        let p121 = u("87150978765690771352898345369");
        let a0 = get_amount0_delta(price_1_1(), p121, l, true).unwrap();
        assert_eq!(a0, u("90909090909090910"));
        let a0_down = get_amount0_delta(price_1_1(), p121, l, false).unwrap();
        assert_eq!(a0_down, a0 - U256::from(1u8));
        let a1 = get_amount1_delta(price_1_1(), p121, l, true).unwrap();
        assert_eq!(a1, u("100000000000000000"));
        let a1_down = get_amount1_delta(price_1_1(), p121, l, false).unwrap();
        assert_eq!(a1_down, a1 - U256::from(1u8));
        // Works for prices that overflow the product.
        let p_hi = u("2787593149816327892691964784081045188247552");
        let p_lo = u("22300745198530623141535718272648361505980416");
        let up = get_amount0_delta(p_hi, p_lo, l, true).unwrap();
        let down = get_amount0_delta(p_hi, p_lo, l, false).unwrap();
        assert_eq!(up, down + U256::from(1u8));
        // A zero lower price is the Solidity's require(sqrtRatioAX96 > 0).
        assert_eq!(
            get_amount0_delta(U256::ZERO, price_1_1(), l, true),
            Err(MathError::ZeroPrice)
        );
        assert_eq!(
            get_amount0_delta(U256::MAX, price_1_1(), l, true),
            Err(MathError::NotUint160)
        );
    }

    #[test]
    fn swap_computation_regression() {
        // v3-core "swap computation" test: sqrtP * sqrtQ overflows.
        let sqrt_p = u("1025574284609383690408304870162715216695788925244");
        let liquidity = 50015962439936049619261659728067971248u128;
        let zero_for_one = true;
        let amount_in = U256::from(406u32);
        let sqrt_q =
            get_next_sqrt_price_from_input(sqrt_p, liquidity, amount_in, zero_for_one).unwrap();
        assert_eq!(
            sqrt_q,
            u("1025574284609383582644711336373707553698163132913")
        );
        let amount0_delta = get_amount0_delta(sqrt_q, sqrt_p, liquidity, true).unwrap();
        assert_eq!(amount0_delta, U256::from(406u32));
    }
}
