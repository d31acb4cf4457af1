//! `FullMath`: `a * b / denominator` with a 512-bit intermediate.
//!
//! The Solidity version uses Remco Bloemen's Chinese-remainder trick because the EVM has no
//! 512-bit type; we do have one, so the same exact quotient is computed directly. The
//! result and the failure conditions (zero denominator, quotient above 256 bits) are the
//! same.

use super::{MathError, U256};
use ruint::Uint;

type U512 = Uint<512, 8>;

fn wide(v: U256) -> U512 {
    let l = v.as_limbs();
    U512::from_limbs([l[0], l[1], l[2], l[3], 0, 0, 0, 0])
}

fn narrow(v: U512) -> Result<U256, MathError> {
    let l = v.as_limbs();
    if l[4..].iter().any(|&x| x != 0) {
        return Err(MathError::Overflow);
    }
    Ok(U256::from_limbs([l[0], l[1], l[2], l[3]]))
}

fn mul_div_rem(a: U256, b: U256, denominator: U256) -> Result<(U256, bool), MathError> {
    if denominator.is_zero() {
        return Err(MathError::DivisionByZero);
    }
    let product: U512 = a.widening_mul(b);
    // Most calls (small amounts, Q96 shifts) fit in 256 bits; skip the wide division.
    if product.as_limbs()[4..].iter().all(|&x| x == 0) {
        let (q, r) = narrow(product)?.div_rem(denominator);
        return Ok((q, !r.is_zero()));
    }
    let (q, r) = product.div_rem(wide(denominator));
    Ok((narrow(q)?, !r.is_zero()))
}

/// `FullMath.mulDiv`: `floor(a * b / denominator)`; fails if `denominator` is zero or the
/// quotient does not fit in 256 bits.
pub fn mul_div(a: U256, b: U256, denominator: U256) -> Result<U256, MathError> {
    mul_div_rem(a, b, denominator).map(|(q, _)| q)
}

/// `FullMath.mulDivRoundingUp`: `ceil(a * b / denominator)`, with the same failures plus
/// `require(result < type(uint256).max)` before rounding up.
pub fn mul_div_rounding_up(a: U256, b: U256, denominator: U256) -> Result<U256, MathError> {
    let (q, inexact) = mul_div_rem(a, b, denominator)?;
    if inexact {
        if q == U256::MAX {
            return Err(MathError::Overflow);
        }
        Ok(q + U256::from(1u8))
    } else {
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const Q128: U256 = U256::from_limbs([0, 0, 1, 0]);

    #[test]
    fn refuses_zero_denominator() {
        assert_eq!(
            mul_div(Q128, U256::from(5u8), U256::ZERO),
            Err(MathError::DivisionByZero)
        );
        assert_eq!(
            mul_div_rounding_up(Q128, U256::from(5u8), U256::ZERO),
            Err(MathError::DivisionByZero)
        );
    }

    #[test]
    fn refuses_quotient_overflow() {
        assert_eq!(
            mul_div(Q128, Q128, U256::from(1u8)),
            Err(MathError::Overflow)
        );
        assert_eq!(
            mul_div(U256::MAX, U256::MAX, U256::MAX - U256::from(1u8)),
            Err(MathError::Overflow)
        );
    }

    // Vectors from the v3-core FullMath tests.
    #[test]
    fn known_vectors() {
        assert_eq!(mul_div(U256::MAX, U256::MAX, U256::MAX), Ok(U256::MAX));
        assert_eq!(
            mul_div(
                Q128,
                U256::from(50u8) * Q128 / U256::from(100u8),
                U256::from(150u8) * Q128 / U256::from(100u8)
            ),
            Ok(Q128 / U256::from(3u8))
        );
        assert_eq!(
            mul_div(Q128, U256::from(35u8) * Q128, U256::from(8u8) * Q128),
            Ok(U256::from(4375u32) * Q128 / U256::from(1000u32))
        );
        assert_eq!(
            mul_div(Q128, U256::from(1000u32) * Q128, U256::from(3000u32) * Q128),
            Ok(Q128 / U256::from(3u8))
        );
        assert_eq!(
            mul_div_rounding_up(Q128, U256::from(1000u32) * Q128, U256::from(3000u32) * Q128),
            Ok(Q128 / U256::from(3u8) + U256::from(1u8))
        );
        // mulDivRoundingUp reverts when the floor is MAX and there is a remainder.
        let a = U256::from_str_radix("535006138814359", 10).unwrap();
        let b = U256::from_str_radix(
            "432862656469423142931042426214547535783388063929571229938474969",
            10,
        )
        .unwrap();
        assert_eq!(
            mul_div_rounding_up(a, b, U256::from(2u8)),
            Err(MathError::Overflow)
        );
    }

    fn any_u256() -> impl Strategy<Value = U256> {
        prop::array::uniform4(any::<u64>()).prop_map(U256::from_limbs)
    }

    proptest! {
        #[test]
        fn matches_u128_reference(a in any::<u64>(), b in any::<u64>(), d in 1..u64::MAX) {
            let exact = u128::from(a) * u128::from(b);
            let floor = exact / u128::from(d);
            let ceil = floor + u128::from(exact % u128::from(d) != 0);
            prop_assert_eq!(mul_div(U256::from(a), U256::from(b), U256::from(d)), Ok(U256::from(floor)));
            prop_assert_eq!(mul_div_rounding_up(U256::from(a), U256::from(b), U256::from(d)), Ok(U256::from(ceil)));
        }

        #[test]
        fn wide_quotient_times_denominator_brackets_product(a in any_u256(), b in any_u256(), d in any_u256()) {
            prop_assume!(!d.is_zero());
            if let Ok(q) = mul_div(a, b, d) {
                let p: U512 = a.widening_mul(b);
                let lo: U512 = q.widening_mul(d);
                prop_assert!(lo <= p);
                prop_assert!(p - lo < wide(d));
            }
        }
    }
}
