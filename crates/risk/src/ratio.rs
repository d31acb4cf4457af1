//! Exact ratio arithmetic in basis points.
//!
//! Every limit is "a / b compared with n bps". Dividing first would round, so a value one
//! unit over a threshold could pass; instead both sides are cross-multiplied into 512 bits
//! (`a * 10_000` against `n * b`), which is exact and cannot overflow for any 256-bit inputs.

use std::cmp::Ordering;

use ruint::aliases::{U256, U512};

/// Basis points in one whole (100%).
pub const BPS_ONE: u64 = 10_000;

fn wide(a: U256, b: U256) -> U512 {
    a.widening_mul(b)
}

/// Compare `num / den` with `bps / 10_000` exactly. `den` must be non-zero; a zero
/// denominator compares as [`Ordering::Greater`] (an infinite ratio) unless `num` is also zero,
/// where it compares as [`Ordering::Equal`] only when `bps` is zero, else `Less`.
pub fn cmp_ratio_bps(num: U256, den: U256, bps: u64) -> Ordering {
    if den.is_zero() {
        return if !num.is_zero() {
            Ordering::Greater
        } else if bps == 0 {
            Ordering::Equal
        } else {
            Ordering::Less
        };
    }
    wide(num, U256::from(BPS_ONE)).cmp(&wide(U256::from(bps), den))
}

/// `num / den` in bps, rounded down and saturated to `u64::MAX`. For messages and metrics
/// only: decisions use [`cmp_ratio_bps`], which does not round.
pub fn ratio_bps(num: U256, den: U256) -> u64 {
    if den.is_zero() {
        return if num.is_zero() { 0 } else { u64::MAX };
    }
    wide(num, U256::from(BPS_ONE))
        .checked_div(U512::from(den))
        .map_or(u64::MAX, |q| q.saturating_to::<u64>())
}

/// `amount * bps / 10_000`, rounded up, saturated to `U256::MAX`. Rounding up keeps a
/// worst-case cost a worst case.
pub fn apply_bps_ceil(amount: U256, bps: u64) -> U256 {
    let n = wide(amount, U256::from(bps));
    n.div_ceil(U512::from(BPS_ONE)).saturating_to::<U256>()
}

/// `amount * bps / 10_000`, rounded down, saturated to `U256::MAX`. Used for caps, so a
/// rounded cap never allows more than the exact one.
pub fn apply_bps_floor(amount: U256, bps: u64) -> U256 {
    let n = wide(amount, U256::from(bps));
    n.checked_div(U512::from(BPS_ONE))
        .map_or(U256::MAX, |q| q.saturating_to::<U256>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_at_boundary() {
        let hundred = U256::from(100u64);
        assert_eq!(
            cmp_ratio_bps(U256::from(10u64), hundred, 1000),
            Ordering::Equal
        );
        assert_eq!(
            cmp_ratio_bps(U256::from(11u64), hundred, 1000),
            Ordering::Greater
        );
        assert_eq!(
            cmp_ratio_bps(U256::from(9u64), hundred, 1000),
            Ordering::Less
        );
        // One raw unit over 10% of a large denominator is still "over".
        let den = U256::from(10u64).pow(U256::from(30u64));
        let tenth = den / U256::from(10u64);
        assert_eq!(cmp_ratio_bps(tenth, den, 1000), Ordering::Equal);
        assert_eq!(
            cmp_ratio_bps(tenth + U256::from(1u64), den, 1000),
            Ordering::Greater
        );
    }

    #[test]
    fn no_overflow_at_max() {
        assert_eq!(cmp_ratio_bps(U256::MAX, U256::MAX, 10_000), Ordering::Equal);
        assert_eq!(
            cmp_ratio_bps(U256::MAX, U256::from(1u64), u64::MAX),
            Ordering::Greater
        );
        assert_eq!(
            cmp_ratio_bps(U256::from(1u64), U256::MAX, u64::MAX),
            Ordering::Less
        );
        assert_eq!(ratio_bps(U256::MAX, U256::from(1u64)), u64::MAX);
        assert_eq!(ratio_bps(U256::MAX, U256::MAX), 10_000);
        assert_eq!(apply_bps_ceil(U256::MAX, 20_000), U256::MAX);
        assert_eq!(apply_bps_floor(U256::MAX, 10_000), U256::MAX);
    }

    #[test]
    fn zero_denominator() {
        assert_eq!(
            cmp_ratio_bps(U256::from(1u64), U256::ZERO, 50_000),
            Ordering::Greater
        );
        assert_eq!(cmp_ratio_bps(U256::ZERO, U256::ZERO, 0), Ordering::Equal);
        assert_eq!(cmp_ratio_bps(U256::ZERO, U256::ZERO, 1), Ordering::Less);
        assert_eq!(ratio_bps(U256::ZERO, U256::ZERO), 0);
    }

    #[test]
    fn rounding_direction() {
        assert_eq!(apply_bps_ceil(U256::from(1u64), 1), U256::from(1u64));
        assert_eq!(apply_bps_floor(U256::from(1u64), 1), U256::ZERO);
        assert_eq!(
            apply_bps_ceil(U256::from(20_000u64), 50),
            U256::from(100u64)
        );
        assert_eq!(ratio_bps(U256::from(1u64), U256::from(3u64)), 3333);
    }
}
