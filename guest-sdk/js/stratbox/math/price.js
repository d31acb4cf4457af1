/**
 * Prices from a pool's square-root price, with the integer arithmetic the engine values
 * books with (floor, no floats anywhere), so a JS strategy reads a price as the engine does.
 */

import { MAX_U256, requireBool, requireU256 } from '../ints.js';
import { Q96, wrap256 } from './common.js';

/** 1e18, the fixed point of oracle prices. */
export const E18 = 10n ** 18n;

/** `amount0` of token0 in token1 at `sqrtPriceX96`: amount·sqrtP²/2^192, floor, unbounded. */
export function token0InToken1Wide(amount0, sqrtPriceX96) {
  requireU256(amount0, 'amount0');
  requireU256(sqrtPriceX96, 'sqrtPriceX96');
  // (amount·sqrtP >> 96)·sqrtP >> 96, in the Rust SDK's order, so the floors agree.
  return (((amount0 * sqrtPriceX96) >> 96n) * sqrtPriceX96) >> 96n;
}

/** `token0InToken1Wide`, saturated to 256 bits. */
export function token0InToken1(amount0, sqrtPriceX96) {
  const wide = token0InToken1Wide(amount0, sqrtPriceX96);
  return wide > MAX_U256 ? MAX_U256 : wide;
}

/** The pool's spot price, token1 per token0 with 18 decimals (the oracle's form). */
export function spotPriceE18(sqrtPriceX96) {
  return token0InToken1(E18, sqrtPriceX96);
}

const saturatingMul = (a, b) => (a * b > MAX_U256 ? MAX_U256 : a * b);

/**
 * An input that moves sqrt(P) by about `stepPpm` millionths: Δx = L·Δ(1/√P) when selling
 * token0, Δy = L·Δ√P when selling token1 (both Q96-scaled), at least `floor`. The plain
 * products wrap at 2^256 as ruint's `*` does in the Rust SDK.
 */
export function inputForStep(zeroForOne, sqrtPriceX96, liquidity, stepPpm, floor) {
  requireBool(zeroForOne, 'zeroForOne');
  for (const [v, what] of [[sqrtPriceX96, 'sqrtPriceX96'], [liquidity, 'liquidity'], [stepPpm, 'stepPpm'], [floor, 'floor']]) {
    requireU256(v, what);
  }
  const million = 1_000_000n;
  const amount = zeroForOne
    ? saturatingMul(saturatingMul(liquidity, Q96) / (sqrtPriceX96 > 1n ? sqrtPriceX96 : 1n), stepPpm) / million
    : wrap256((saturatingMul(liquidity, sqrtPriceX96) / Q96) * stepPpm) / million;
  return amount > floor ? amount : floor;
}
