//! `SwapMath.computeSwapStep`: one step of a swap, within a single tick range.

use super::full_math::{mul_div, mul_div_rounding_up};
use super::sqrt_price_math::{
    get_amount0_delta, get_amount1_delta, get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
};
use super::{MathError, U256, require_u160};

/// The result of one swap step, named as in `SwapMath.sol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapStep {
    /// The price after the step; equal to the target if the step used the whole range.
    pub sqrt_ratio_next_x96: U256,
    /// What the pool takes in, fee excluded.
    pub amount_in: U256,
    /// What the pool pays out.
    pub amount_out: U256,
    /// The fee taken on top of `amount_in`.
    pub fee_amount: U256,
}

/// 1e6: fees are in hundredths of a basis point.
const PIPS: u32 = 1_000_000;

/// `SwapMath.computeSwapStep`.
///
/// Solidity's `int256 amountRemaining` is split into `exact_in` and a magnitude:
/// `exact_in = true` is `amountRemaining = amount_remaining >= 0`, `exact_in = false` is
/// `amountRemaining = -amount_remaining`. A zero magnitude is exact-in whatever the flag
/// says, because Solidity's `exactIn` is `amountRemaining >= 0`. The magnitude must fit an
/// `int256`: below 2^255 for exact-in, at most 2^255 for exact-out.
///
/// The direction comes from the prices, as in Solidity: `zeroForOne` is
/// `current >= target`.
pub fn compute_swap_step(
    sqrt_ratio_current_x96: U256,
    sqrt_ratio_target_x96: U256,
    liquidity: u128,
    amount_remaining: U256,
    exact_in: bool,
    fee_pips: u32,
) -> Result<SwapStep, MathError> {
    let current = require_u160(sqrt_ratio_current_x96)?;
    let target = require_u160(sqrt_ratio_target_x96)?;
    if fee_pips >= PIPS {
        return Err(MathError::InvalidFee(fee_pips));
    }
    let half = U256::from(1u8) << 255usize;
    let exact_in = exact_in || amount_remaining.is_zero();
    if (exact_in && amount_remaining >= half) || (!exact_in && amount_remaining > half) {
        return Err(MathError::AmountRemainingOutOfRange);
    }
    let zero_for_one = current >= target;
    let fee = U256::from(fee_pips);
    let pips = U256::from(PIPS);

    let mut amount_in = U256::ZERO;
    let mut amount_out = U256::ZERO;
    let sqrt_ratio_next_x96;

    if exact_in {
        let amount_remaining_less_fee = mul_div(amount_remaining, pips - fee, pips)?;
        amount_in = if zero_for_one {
            get_amount0_delta(target, current, liquidity, true)?
        } else {
            get_amount1_delta(current, target, liquidity, true)?
        };
        sqrt_ratio_next_x96 = if amount_remaining_less_fee >= amount_in {
            target
        } else {
            get_next_sqrt_price_from_input(
                current,
                liquidity,
                amount_remaining_less_fee,
                zero_for_one,
            )?
        };
    } else {
        amount_out = if zero_for_one {
            get_amount1_delta(target, current, liquidity, false)?
        } else {
            get_amount0_delta(current, target, liquidity, false)?
        };
        sqrt_ratio_next_x96 = if amount_remaining >= amount_out {
            target
        } else {
            get_next_sqrt_price_from_output(current, liquidity, amount_remaining, zero_for_one)?
        };
    }

    let max = target == sqrt_ratio_next_x96;
    // Solidity's `max && exactIn ? amountIn : ...` and `max && !exactIn ? amountOut : ...`:
    // keep the amount computed against the target, else recompute against the new price.
    let keep_in = max && exact_in;
    let keep_out = max && !exact_in;

    if zero_for_one {
        if !keep_in {
            amount_in = get_amount0_delta(sqrt_ratio_next_x96, current, liquidity, true)?;
        }
        if !keep_out {
            amount_out = get_amount1_delta(sqrt_ratio_next_x96, current, liquidity, false)?;
        }
    } else {
        if !keep_in {
            amount_in = get_amount1_delta(current, sqrt_ratio_next_x96, liquidity, true)?;
        }
        if !keep_out {
            amount_out = get_amount0_delta(current, sqrt_ratio_next_x96, liquidity, false)?;
        }
    }

    // Cap the output at the requested amount (rounding can overshoot by one).
    if !exact_in && amount_out > amount_remaining {
        amount_out = amount_remaining;
    }

    let fee_amount = if exact_in && sqrt_ratio_next_x96 != target {
        // The remainder of the input is all fee; unchecked in Solidity, never negative.
        amount_remaining.wrapping_sub(amount_in)
    } else {
        mul_div_rounding_up(amount_in, fee, pips - fee)?
    };

    Ok(SwapStep {
        sqrt_ratio_next_x96,
        amount_in,
        amount_out,
        fee_amount,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Q96;
    use super::super::sqrt_price_math::get_next_sqrt_price_from_input;
    use super::*;

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }

    fn e18() -> U256 {
        U256::from(10u64.pow(18))
    }

    // Vectors from the v3-core SwapMath tests.
    #[test]
    fn exact_amount_in_capped_at_price_target_one_for_zero() {
        let price = Q96;
        let price_target = u("79623317895830914510639640423"); // encodePriceSqrt(101, 100)
        let liquidity = 2 * 10u128.pow(18);
        let amount = e18();
        let fee = 600;
        let step = compute_swap_step(price, price_target, liquidity, amount, true, fee).unwrap();
        assert_eq!(step.amount_in, u("9975124224178055"));
        assert_eq!(step.fee_amount, u("5988667735148"));
        assert_eq!(step.amount_out, u("9925619580021728"));
        assert!(step.amount_in + step.fee_amount < amount);
        let price_after_whole_input =
            get_next_sqrt_price_from_input(price, liquidity, amount, false).unwrap();
        assert_eq!(step.sqrt_ratio_next_x96, price_target);
        assert!(step.sqrt_ratio_next_x96 < price_after_whole_input);
    }

    #[test]
    fn exact_amount_out_capped_at_price_target_one_for_zero() {
        let price = Q96;
        let price_target = u("79623317895830914510639640423");
        let liquidity = 2 * 10u128.pow(18);
        let step = compute_swap_step(price, price_target, liquidity, e18(), false, 600).unwrap();
        assert_eq!(step.amount_in, u("9975124224178055"));
        assert_eq!(step.fee_amount, u("5988667735148"));
        assert_eq!(step.amount_out, u("9925619580021728"));
        assert_eq!(step.sqrt_ratio_next_x96, price_target);
    }

    #[test]
    fn exact_amount_in_fully_spent_one_for_zero() {
        let price = Q96;
        let price_target = u("250541448375047931186413801569"); // encodePriceSqrt(1000, 100)
        let liquidity = 2 * 10u128.pow(18);
        let step = compute_swap_step(price, price_target, liquidity, e18(), true, 600).unwrap();
        assert_eq!(step.amount_in, u("999400000000000000"));
        assert_eq!(step.fee_amount, u("600000000000000"));
        assert_eq!(step.amount_out, u("666399946655997866"));
        assert_eq!(step.amount_in + step.fee_amount, e18());
        let price_after_less_fee =
            get_next_sqrt_price_from_input(price, liquidity, step.amount_in, false).unwrap();
        assert!(step.sqrt_ratio_next_x96 < price_target);
        assert_eq!(step.sqrt_ratio_next_x96, price_after_less_fee);
    }

    #[test]
    fn exact_amount_out_fully_received_one_for_zero() {
        let price = Q96;
        let price_target = u("792281625142643375935439503360"); // encodePriceSqrt(10000, 100)
        let liquidity = 2 * 10u128.pow(18);
        let step = compute_swap_step(price, price_target, liquidity, e18(), false, 600).unwrap();
        assert_eq!(step.amount_in, u("2000000000000000000"));
        assert_eq!(step.fee_amount, u("1200720432259356"));
        assert_eq!(step.amount_out, e18());
        assert!(step.sqrt_ratio_next_x96 < price_target);
    }

    #[test]
    fn amount_out_is_capped_at_the_desired_amount_out() {
        let step = compute_swap_step(
            u("417332158212080721273783715441582"),
            u("1452870262520218020823638996"),
            159344665391607089467575320103,
            U256::from(1u8),
            false,
            1,
        )
        .unwrap();
        assert_eq!(step.amount_in, U256::from(1u8));
        assert_eq!(step.fee_amount, U256::from(1u8));
        assert_eq!(step.amount_out, U256::from(1u8));
        assert_eq!(
            step.sqrt_ratio_next_x96,
            u("417332158212080721273783715441581")
        );
    }

    #[test]
    fn target_price_of_1_uses_partial_input_amount() {
        let step = compute_swap_step(
            U256::from(2u8),
            U256::from(1u8),
            1,
            u("3915081100057732413702495386755767"),
            true,
            1,
        )
        .unwrap();
        assert_eq!(step.amount_in, u("39614081257132168796771975168"));
        assert_eq!(step.fee_amount, u("39614120871253040049813"));
        assert!(step.amount_in + step.fee_amount <= u("3915081100057732413702495386755767"));
        assert_eq!(step.amount_out, U256::ZERO);
        assert_eq!(step.sqrt_ratio_next_x96, U256::from(1u8));
    }

    #[test]
    fn entire_input_amount_taken_as_fee() {
        let step = compute_swap_step(
            U256::from(2413u32),
            u("79887613182836312"),
            1985041575832132834610021537970,
            U256::from(10u8),
            true,
            1872,
        )
        .unwrap();
        assert_eq!(step.amount_in, U256::ZERO);
        assert_eq!(step.fee_amount, U256::from(10u8));
        assert_eq!(step.amount_out, U256::ZERO);
        assert_eq!(step.sqrt_ratio_next_x96, U256::from(2413u32));
    }

    #[test]
    fn handles_intermediate_insufficient_liquidity_in_zero_for_one_exact_output() {
        let sqrt_p = u("20282409603651670423947251286016");
        let sqrt_p_target = sqrt_p * U256::from(11u8) / U256::from(10u8);
        let step =
            compute_swap_step(sqrt_p, sqrt_p_target, 1024, U256::from(4u8), false, 3000).unwrap();
        assert_eq!(step.amount_out, U256::ZERO);
        assert_eq!(step.sqrt_ratio_next_x96, sqrt_p_target);
        assert_eq!(step.amount_in, U256::from(26215u32));
        assert_eq!(step.fee_amount, U256::from(79u8));
    }

    #[test]
    fn handles_intermediate_insufficient_liquidity_in_one_for_zero_exact_output() {
        let sqrt_p = u("20282409603651670423947251286016");
        let sqrt_p_target = sqrt_p * U256::from(9u8) / U256::from(10u8);
        let step = compute_swap_step(
            sqrt_p,
            sqrt_p_target,
            1024,
            U256::from(263_000u32),
            false,
            3000,
        )
        .unwrap();
        assert_eq!(step.amount_out, U256::from(26214u32));
        assert_eq!(step.sqrt_ratio_next_x96, sqrt_p_target);
        assert_eq!(step.amount_in, U256::from(1u8));
        assert_eq!(step.fee_amount, U256::from(1u8));
    }

    #[test]
    fn refuses_what_solidity_would_revert_on() {
        assert_eq!(
            compute_swap_step(
                Q96,
                Q96 / U256::from(2u8),
                1,
                U256::from(1u8),
                true,
                1_000_000
            ),
            Err(MathError::InvalidFee(1_000_000))
        );
        assert_eq!(
            compute_swap_step(
                Q96,
                Q96 / U256::from(2u8),
                1,
                U256::from(1u8) << 255usize,
                true,
                3000
            ),
            Err(MathError::AmountRemainingOutOfRange)
        );
        assert_eq!(
            compute_swap_step(U256::MAX, Q96, 1, U256::from(1u8), true, 3000),
            Err(MathError::NotUint160)
        );
    }

    #[test]
    fn zero_remaining_is_exact_in_whatever_the_flag() {
        let a = compute_swap_step(
            Q96,
            Q96 / U256::from(2u8),
            10u128.pow(18),
            U256::ZERO,
            false,
            3000,
        );
        let b = compute_swap_step(
            Q96,
            Q96 / U256::from(2u8),
            10u128.pow(18),
            U256::ZERO,
            true,
            3000,
        );
        assert_eq!(a, b);
    }

    fn any_u160() -> impl proptest::strategy::Strategy<Value = U256> {
        use proptest::prelude::*;
        (prop::array::uniform3(any::<u64>()), 1usize..=160).prop_map(|(l, bits)| {
            let v = U256::from_limbs([l[0], l[1], l[2], 0]);
            v & ((U256::from(1u8) << bits) - U256::from(1u8))
        })
    }

    fn any_amount() -> impl proptest::strategy::Strategy<Value = U256> {
        use proptest::prelude::*;
        (prop::array::uniform4(any::<u64>()), 0usize..=256).prop_map(|(l, bits)| {
            let v = U256::from_limbs(l);
            if bits == 256 {
                v
            } else {
                v & ((U256::from(1u8) << bits) - U256::from(1u8))
            }
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Properties the v3-core SwapMath echidna test asserts, on arbitrary typed input;
        /// and no input may panic (only a typed error).
        #[test]
        fn swap_step_invariants(
            current in any_u160(),
            target in any_u160(),
            liquidity in proptest::prelude::any::<u128>(),
            remaining in any_amount(),
            exact_in in proptest::prelude::any::<bool>(),
            fee in 0u32..1_000_000,
        ) {
            let Ok(step) = compute_swap_step(current, target, liquidity, remaining, exact_in, fee) else {
                return Ok(());
            };
            let exact_in = exact_in || remaining.is_zero();
            if exact_in {
                proptest::prop_assert!(step.amount_in.checked_add(step.fee_amount).is_some_and(|t| t <= remaining));
            } else {
                proptest::prop_assert!(step.amount_out <= remaining);
            }
            // The echidna test's preconditions: non-zero prices and fee.
            let echidna = !current.is_zero() && !target.is_zero() && fee > 0;
            if current == target && echidna {
                proptest::prop_assert_eq!(step.sqrt_ratio_next_x96, target);
                proptest::prop_assert_eq!((step.amount_in, step.amount_out, step.fee_amount), (U256::ZERO, U256::ZERO, U256::ZERO));
            }
            // The price moves toward the target and never past it.
            if current >= target {
                proptest::prop_assert!(step.sqrt_ratio_next_x96 <= current && step.sqrt_ratio_next_x96 >= target);
            } else {
                proptest::prop_assert!(step.sqrt_ratio_next_x96 >= current && step.sqrt_ratio_next_x96 <= target);
            }
            // If the target was not reached, the entire amount was consumed.
            if step.sqrt_ratio_next_x96 != target && echidna {
                if exact_in {
                    proptest::prop_assert_eq!(step.amount_in + step.fee_amount, remaining);
                } else {
                    proptest::prop_assert_eq!(step.amount_out, remaining);
                }
            }
        }

        #[test]
        fn sqrt_price_math_never_panics(
            p in any_u160(),
            q in any_u160(),
            liquidity in proptest::prelude::any::<u128>(),
            amount in any_amount(),
            flag in proptest::prelude::any::<bool>(),
        ) {
            let _ = get_next_sqrt_price_from_input(p, liquidity, amount, flag);
            let _ = get_next_sqrt_price_from_output(p, liquidity, amount, flag);
            let _ = get_amount0_delta(p, q, liquidity, flag);
            let _ = get_amount1_delta(p, q, liquidity, flag);
            let _ = crate::math::liquidity_amounts::get_amounts_for_liquidity(p, q, amount | U256::from(1u8), liquidity);
            let _ = crate::math::liquidity_amounts::get_liquidity_for_amounts(p, q, amount, amount, amount);
        }
    }
}
