/**
 * `LiquidityAmounts` (v3-periphery): between token amounts and liquidity on a range.
 *
 * These round down, as the periphery does; the pool itself charges a mint with
 * `SqrtPriceMath` rounding up, see `amountsForMint`. Pairs are returned as `[amount0, amount1]`.
 */

import { requireU128, requireU256 } from '../ints.js';
import { checkedNarrow, Q96, requireU160 } from './common.js';
import { MathError } from './errors.js';
import { mulDiv } from './full_math.js';
import { getAmount0Delta, getAmount1Delta } from './sqrt_price_math.js';

function sorted(a, b) {
  requireU160(a, 'sqrtRatioAX96');
  requireU160(b, 'sqrtRatioBX96');
  return a > b ? [b, a] : [a, b];
}

/** `getLiquidityForAmount0`: the liquidity `amount0` buys on [a, b] when the price is at or below a. */
export function getLiquidityForAmount0(sqrtRatioAX96, sqrtRatioBX96, amount0) {
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  requireU256(amount0, 'amount0');
  const intermediate = mulDiv(a, b, Q96);
  return checkedNarrow(mulDiv(amount0, intermediate, b - a), 128);
}

/** `getLiquidityForAmount1`: the liquidity `amount1` buys on [a, b] when the price is at or above b. */
export function getLiquidityForAmount1(sqrtRatioAX96, sqrtRatioBX96, amount1) {
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  requireU256(amount1, 'amount1');
  return checkedNarrow(mulDiv(amount1, Q96, b - a), 128);
}

/**
 * `getLiquidityForAmounts`: the most liquidity both amounts together buy at the current
 * price `sqrtRatioX96` on [a, b].
 */
export function getLiquidityForAmounts(sqrtRatioX96, sqrtRatioAX96, sqrtRatioBX96, amount0, amount1) {
  const p = requireU160(sqrtRatioX96, 'sqrtRatioX96');
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  if (p <= a) return getLiquidityForAmount0(a, b, amount0);
  if (p < b) {
    const l0 = getLiquidityForAmount0(p, b, amount0);
    const l1 = getLiquidityForAmount1(a, p, amount1);
    return l0 < l1 ? l0 : l1;
  }
  return getLiquidityForAmount1(a, b, amount1);
}

/** `getAmount0ForLiquidity`: token0 held by `liquidity` on [a, b], rounded down. */
export function getAmount0ForLiquidity(sqrtRatioAX96, sqrtRatioBX96, liquidity) {
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  requireU128(liquidity);
  if (a === 0n) throw MathError.divisionByZero();
  return mulDiv(liquidity << 96n, b - a, b) / a;
}

/** `getAmount1ForLiquidity`: token1 held by `liquidity` on [a, b], rounded down. */
export function getAmount1ForLiquidity(sqrtRatioAX96, sqrtRatioBX96, liquidity) {
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  return mulDiv(requireU128(liquidity), b - a, Q96);
}

/**
 * `getAmountsForLiquidity`: `[token0, token1]` held by `liquidity` on [a, b] at the current
 * price, rounded down; what a burn of that liquidity returns.
 */
export function getAmountsForLiquidity(sqrtRatioX96, sqrtRatioAX96, sqrtRatioBX96, liquidity) {
  const p = requireU160(sqrtRatioX96, 'sqrtRatioX96');
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  if (p <= a) return [getAmount0ForLiquidity(a, b, liquidity), 0n];
  if (p < b) return [getAmount0ForLiquidity(p, b, liquidity), getAmount1ForLiquidity(a, p, liquidity)];
  return [0n, getAmount1ForLiquidity(a, b, liquidity)];
}

/**
 * What `UniswapV3Pool.mint` charges for `liquidity` on [a, b] at the current price: the same
 * split as `getAmountsForLiquidity` but rounded up, as `_modifyPosition` does with
 * `SqrtPriceMath.getAmount{0,1}Delta(.., roundUp = true)`.
 *
 * The pool picks the branch by its current *tick*, this by price. They differ only when the
 * price sits exactly on the lower bound, and there both charge the full token0 amount and
 * no token1.
 */
export function amountsForMint(sqrtRatioX96, sqrtRatioAX96, sqrtRatioBX96, liquidity) {
  const p = requireU160(sqrtRatioX96, 'sqrtRatioX96');
  const [a, b] = sorted(sqrtRatioAX96, sqrtRatioBX96);
  if (p <= a) return [getAmount0Delta(a, b, liquidity, true), 0n];
  if (p < b) return [getAmount0Delta(p, b, liquidity, true), getAmount1Delta(a, p, liquidity, true)];
  return [0n, getAmount1Delta(a, b, liquidity, true)];
}
