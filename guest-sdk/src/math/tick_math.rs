//! `TickMath`: between ticks (powers of sqrt(1.0001)) and Q64.96 square-root prices.

use super::{MathError, U256, require_u160};

/// The lowest tick a price can reach: log base 1.0001 of 2^-128.
pub const MIN_TICK: i32 = -887_272;
/// The highest tick: log base 1.0001 of 2^128.
pub const MAX_TICK: i32 = -MIN_TICK;
/// `get_sqrt_ratio_at_tick(MIN_TICK)`.
pub const MIN_SQRT_RATIO: U256 = U256::from_limbs([4_295_128_739, 0, 0, 0]);
/// `get_sqrt_ratio_at_tick(MAX_TICK)` = 1461446703485210103287273052203988822378723970342.
pub const MAX_SQRT_RATIO: U256 =
    U256::from_limbs([0x5d95_1d52_6398_8d26, 0xefd1_fc6a_5064_8849, 0xfffd_8963, 0]);

/// 1/sqrt(1.0001)^(2^i) as Q128.128, for bit i of |tick| (i >= 1); bit 0 is handled first.
const RATIOS: [(u32, u128); 19] = [
    (0x2, 0xfff97272373d413259a46990580e213a),
    (0x4, 0xfff2e50f5f656932ef12357cf3c7fdcc),
    (0x8, 0xffe5caca7e10e4e61c3624eaa0941cd0),
    (0x10, 0xffcb9843d60f6159c9db58835c926644),
    (0x20, 0xff973b41fa98c081472e6896dfb254c0),
    (0x40, 0xff2ea16466c96a3843ec78b326b52861),
    (0x80, 0xfe5dee046a99a2a811c461f1969c3053),
    (0x100, 0xfcbe86c7900a88aedcffc83b479aa3a4),
    (0x200, 0xf987a7253ac413176f2b074cf7815e54),
    (0x400, 0xf3392b0822b70005940c7a398e4b70f3),
    (0x800, 0xe7159475a2c29b7443b29c7fa6e889d9),
    (0x1000, 0xd097f3bdfd2022b8845ad8f792aa5825),
    (0x2000, 0xa9f746462d870fdf8a65dc1f90e061e5),
    (0x4000, 0x70d869a156d2a1b890bb3df62baf32f7),
    (0x8000, 0x31be135f97d08fd981231505542fcfa6),
    (0x10000, 0x9aa508b5b7a84e1c677de54f3e99bc9),
    (0x20000, 0x5d6af8dedb81196699c329225ee604),
    (0x40000, 0x2216e584f5fa1ea926041bedfe98),
    (0x80000, 0x48a170391f7dc42444e8fa2),
];

/// `TickMath.getSqrtRatioAtTick`: sqrt(1.0001^tick) as Q64.96, rounded up so that
/// `get_tick_at_sqrt_ratio` of the result gives `tick` back.
pub fn get_sqrt_ratio_at_tick(tick: i32) -> Result<U256, MathError> {
    let abs_tick = tick.unsigned_abs();
    if abs_tick > MAX_TICK.unsigned_abs() {
        return Err(MathError::TickOutOfRange(tick));
    }
    let mut ratio = if abs_tick & 0x1 != 0 {
        U256::from(0xfffcb933bd6fad37aa2d162d1a594001u128)
    } else {
        U256::from_limbs([0, 0, 1, 0])
    };
    for &(bit, factor) in &RATIOS {
        if abs_tick & bit != 0 {
            // ratio <= 2^128 and factor < 2^128: the product fits, as in Solidity.
            ratio = ratio.wrapping_mul(U256::from(factor)) >> 128usize;
        }
    }
    if tick > 0 {
        ratio = U256::MAX / ratio;
    }
    // Q128.128 -> Q128.96, rounding up; fits in 160 bits for any tick in range.
    let low32 = ratio.as_limbs()[0] & 0xffff_ffff;
    let sqrt_price = (ratio >> 32usize) + U256::from(u8::from(low32 != 0));
    Ok(sqrt_price)
}

/// Two's-complement helpers: the Solidity computes the tick in `int256`; we hold that in a
/// wrapping `U256` and take the arithmetic shift by 128 as the signed upper half.
fn from_i128(v: i128) -> U256 {
    let lo = v as u128;
    let hi = if v < 0 { u128::MAX } else { 0 };
    U256::from_limbs([lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64])
}

fn sar128(v: U256) -> i128 {
    let l = v.as_limbs();
    ((u128::from(l[3]) << 64) | u128::from(l[2])) as i128
}

/// `int24(x)`: keeps the low 24 bits, sign-extended.
fn to_int24(v: i128) -> i32 {
    ((v as i32) << 8) >> 8
}

/// `TickMath.getTickAtSqrtRatio`: the greatest tick whose sqrt ratio is <= the input.
pub fn get_tick_at_sqrt_ratio(sqrt_price_x96: U256) -> Result<i32, MathError> {
    let sqrt_price_x96 = require_u160(sqrt_price_x96)?;
    if sqrt_price_x96 < MIN_SQRT_RATIO || sqrt_price_x96 >= MAX_SQRT_RATIO {
        return Err(MathError::SqrtPriceOutOfRange);
    }
    let ratio = sqrt_price_x96 << 32usize;
    // The assembly cascade computes the index of the most significant bit.
    let msb = ratio.bit_len() - 1;
    let mut r = if msb >= 128 {
        ratio >> (msb - 127)
    } else {
        ratio << (127 - msb)
    };
    let mut log_2: i128 = ((msb as i128) - 128) << 64;
    for shift in (50..=63).rev() {
        r = r.wrapping_mul(r) >> 127usize;
        let f: usize = if (r >> 128usize).is_zero() { 0 } else { 1 };
        log_2 |= (f as i128) << shift;
        r >>= f;
    }
    let log_sqrt10001 =
        from_i128(log_2).wrapping_mul(U256::from(255_738_958_999_603_826_347_141u128));
    let tick_low = to_int24(sar128(log_sqrt10001.wrapping_sub(U256::from(
        3_402_992_956_809_132_418_596_140_100_660_247_210u128,
    ))));
    let tick_hi = to_int24(sar128(log_sqrt10001.wrapping_add(U256::from(
        291_339_464_771_989_622_907_027_621_153_398_088_495u128,
    ))));
    if tick_low == tick_hi {
        Ok(tick_low)
    } else if get_sqrt_ratio_at_tick(tick_hi)? <= sqrt_price_x96 {
        Ok(tick_hi)
    } else {
        Ok(tick_low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }

    #[test]
    fn bounds() {
        assert_eq!(
            get_sqrt_ratio_at_tick(0),
            Ok(u("79228162514264337593543950336"))
        );
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK), Ok(u("4295128739")));
        assert_eq!(
            get_sqrt_ratio_at_tick(MAX_TICK),
            Ok(u("1461446703485210103287273052203988822378723970342"))
        );
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK), Ok(MIN_SQRT_RATIO));
        assert_eq!(get_sqrt_ratio_at_tick(MAX_TICK), Ok(MAX_SQRT_RATIO));
        assert_eq!(get_sqrt_ratio_at_tick(MIN_TICK + 1), Ok(u("4295343490")));
        assert_eq!(
            get_sqrt_ratio_at_tick(MAX_TICK - 1),
            Ok(u("1461373636630004318706518188784493106690254656249"))
        );
    }

    #[test]
    fn refuses_ticks_out_of_range() {
        assert_eq!(
            get_sqrt_ratio_at_tick(MIN_TICK - 1),
            Err(MathError::TickOutOfRange(MIN_TICK - 1))
        );
        assert_eq!(
            get_sqrt_ratio_at_tick(MAX_TICK + 1),
            Err(MathError::TickOutOfRange(MAX_TICK + 1))
        );
        assert_eq!(
            get_sqrt_ratio_at_tick(i32::MIN),
            Err(MathError::TickOutOfRange(i32::MIN))
        );
        assert_eq!(
            get_sqrt_ratio_at_tick(i32::MAX),
            Err(MathError::TickOutOfRange(i32::MAX))
        );
    }

    #[test]
    fn refuses_prices_out_of_range() {
        assert_eq!(
            get_tick_at_sqrt_ratio(MIN_SQRT_RATIO - U256::from(1u8)),
            Err(MathError::SqrtPriceOutOfRange)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(MAX_SQRT_RATIO),
            Err(MathError::SqrtPriceOutOfRange)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(U256::ZERO),
            Err(MathError::SqrtPriceOutOfRange)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(U256::MAX),
            Err(MathError::NotUint160)
        );
    }

    #[test]
    fn tick_at_bounds() {
        assert_eq!(get_tick_at_sqrt_ratio(MIN_SQRT_RATIO), Ok(MIN_TICK));
        assert_eq!(get_tick_at_sqrt_ratio(u("4295343490")), Ok(MIN_TICK + 1));
        assert_eq!(
            get_tick_at_sqrt_ratio(u("1461373636630004318706518188784493106690254656249")),
            Ok(MAX_TICK - 1)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - U256::from(1u8)),
            Ok(MAX_TICK - 1)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(u("79228162514264337593543950336")),
            Ok(0)
        );
        assert_eq!(
            get_tick_at_sqrt_ratio(u("79228162514264337593543950335")),
            Ok(-1)
        );
    }

    /// The definition the Solidity implements: greatest tick with ratio <= price.
    fn tick_by_search(p: U256) -> i32 {
        let (mut lo, mut hi) = (MIN_TICK, MAX_TICK);
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if get_sqrt_ratio_at_tick(mid).unwrap() <= p {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    fn any_price() -> impl Strategy<Value = U256> {
        (prop::array::uniform3(any::<u64>()), 33usize..160).prop_map(|(l, bits)| {
            let v = U256::from_limbs([l[0], l[1], l[2], 0]);
            let v = v & ((U256::from(1u8) << bits) - U256::from(1u8));
            v.max(MIN_SQRT_RATIO).min(MAX_SQRT_RATIO - U256::from(1u8))
        })
    }

    proptest! {
        #[test]
        fn tick_round_trips(tick in MIN_TICK..=MAX_TICK) {
            let p = get_sqrt_ratio_at_tick(tick).unwrap();
            if tick < MAX_TICK {
                prop_assert_eq!(get_tick_at_sqrt_ratio(p), Ok(tick));
                if tick > MIN_TICK {
                    prop_assert_eq!(get_tick_at_sqrt_ratio(p - U256::from(1u8)), Ok(tick - 1));
                }
            }
        }

        #[test]
        fn ratios_increase(tick in MIN_TICK..MAX_TICK) {
            prop_assert!(get_sqrt_ratio_at_tick(tick).unwrap() < get_sqrt_ratio_at_tick(tick + 1).unwrap());
        }

        #[test]
        fn tick_matches_its_definition(p in any_price()) {
            prop_assert_eq!(get_tick_at_sqrt_ratio(p), Ok(tick_by_search(p)));
        }
    }
}
