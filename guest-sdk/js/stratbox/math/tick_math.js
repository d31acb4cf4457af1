/**
 * `TickMath`: between ticks (powers of sqrt(1.0001)) and Q64.96 square-root prices.
 *
 * Ticks are JS numbers (they are `s32` on the wire and far below 2^53); prices are bigints.
 */

import { MAX_U256, requireI32 } from '../ints.js';
import { requireU160 } from './common.js';
import { MathError, MAX_TICK, MIN_TICK } from './errors.js';

export { MAX_TICK, MIN_TICK };

/** `getSqrtRatioAtTick(MIN_TICK)`. */
export const MIN_SQRT_RATIO = 4295128739n;
/** `getSqrtRatioAtTick(MAX_TICK)`. */
export const MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342n;

/** 1/sqrt(1.0001)^(2^i) as Q128.128, for bit i of |tick| (i >= 1); bit 0 is handled first. */
const RATIOS = [
  [0x2, 0xfff97272373d413259a46990580e213an],
  [0x4, 0xfff2e50f5f656932ef12357cf3c7fdccn],
  [0x8, 0xffe5caca7e10e4e61c3624eaa0941cd0n],
  [0x10, 0xffcb9843d60f6159c9db58835c926644n],
  [0x20, 0xff973b41fa98c081472e6896dfb254c0n],
  [0x40, 0xff2ea16466c96a3843ec78b326b52861n],
  [0x80, 0xfe5dee046a99a2a811c461f1969c3053n],
  [0x100, 0xfcbe86c7900a88aedcffc83b479aa3a4n],
  [0x200, 0xf987a7253ac413176f2b074cf7815e54n],
  [0x400, 0xf3392b0822b70005940c7a398e4b70f3n],
  [0x800, 0xe7159475a2c29b7443b29c7fa6e889d9n],
  [0x1000, 0xd097f3bdfd2022b8845ad8f792aa5825n],
  [0x2000, 0xa9f746462d870fdf8a65dc1f90e061e5n],
  [0x4000, 0x70d869a156d2a1b890bb3df62baf32f7n],
  [0x8000, 0x31be135f97d08fd981231505542fcfa6n],
  [0x10000, 0x9aa508b5b7a84e1c677de54f3e99bc9n],
  [0x20000, 0x5d6af8dedb81196699c329225ee604n],
  [0x40000, 0x2216e584f5fa1ea926041bedfe98n],
  [0x80000, 0x48a170391f7dc42444e8fa2n],
];

/**
 * `TickMath.getSqrtRatioAtTick`: sqrt(1.0001^tick) as Q64.96, rounded up so that
 * `getTickAtSqrtRatio` of the result gives `tick` back.
 */
export function getSqrtRatioAtTick(tick) {
  requireI32(tick, 'tick');
  const absTick = Math.abs(tick);
  if (absTick > MAX_TICK) throw MathError.tickOutOfRange(tick);
  let ratio = absTick & 0x1 ? 0xfffcb933bd6fad37aa2d162d1a594001n : 1n << 128n;
  for (const [bit, factor] of RATIOS) {
    // ratio <= 2^128 and factor < 2^128: the product fits 256 bits, as in Solidity.
    if (absTick & bit) ratio = (ratio * factor) >> 128n;
  }
  if (tick > 0) ratio = MAX_U256 / ratio;
  // Q128.128 -> Q128.96, rounding up; fits in 160 bits for any tick in range.
  return (ratio >> 32n) + ((ratio & 0xffffffffn) === 0n ? 0n : 1n);
}

/** `TickMath.getTickAtSqrtRatio`: the greatest tick whose sqrt ratio is <= the input. */
export function getTickAtSqrtRatio(sqrtPriceX96) {
  requireU160(sqrtPriceX96, 'sqrtPriceX96');
  if (sqrtPriceX96 < MIN_SQRT_RATIO || sqrtPriceX96 >= MAX_SQRT_RATIO) {
    throw MathError.sqrtPriceOutOfRange();
  }
  const ratio = sqrtPriceX96 << 32n;
  // The assembly cascade computes the index of the most significant bit.
  const msb = BigInt(ratio.toString(2).length - 1);
  let r = msb >= 128n ? ratio >> (msb - 127n) : ratio << (127n - msb);
  // int256 in Solidity; BigInt shifts and ors are two's complement on negatives too.
  let log2 = (msb - 128n) << 64n;
  for (let shift = 63n; shift >= 50n; shift--) {
    r = (r * r) >> 127n;
    const f = r >> 128n;
    log2 |= f << shift;
    r >>= f;
  }
  // |log2| < 2^72, so this product cannot wrap int256; `>>` on a negative BigInt is the
  // arithmetic shift Solidity's `>>` on int256 is.
  const logSqrt10001 = log2 * 255738958999603826347141n;
  const tickLow = Number(BigInt.asIntN(24, (logSqrt10001 - 3402992956809132418596140100660247210n) >> 128n));
  const tickHi = Number(BigInt.asIntN(24, (logSqrt10001 + 291339464771989622907027621153398088495n) >> 128n));
  if (tickLow === tickHi) return tickLow;
  return getSqrtRatioAtTick(tickHi) <= sqrtPriceX96 ? tickHi : tickLow;
}
