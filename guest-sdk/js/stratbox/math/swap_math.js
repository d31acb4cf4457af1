/** `SwapMath.computeSwapStep`: one step of a swap, within a single tick range. */

import { requireBool, requireU128, requireU256, requireU32 } from '../ints.js';
import { requireU160, wrap256 } from './common.js';
import { MathError } from './errors.js';
import { mulDiv, mulDivRoundingUp } from './full_math.js';
import {
  getAmount0Delta,
  getAmount1Delta,
  getNextSqrtPriceFromInput,
  getNextSqrtPriceFromOutput,
} from './sqrt_price_math.js';

/** 1e6: fees are in hundredths of a basis point. */
const PIPS = 1_000_000;
const HALF = 1n << 255n;

/**
 * `SwapMath.computeSwapStep`, returning `{ sqrtRatioNextX96, amountIn, amountOut, feeAmount }`.
 *
 * Solidity's `int256 amountRemaining` is split into `exactIn` and a magnitude, as in the
 * Rust SDK: `exactIn = true` is `amountRemaining = +amountRemaining`, `false` is
 * `-amountRemaining`. A zero magnitude is exact-in whatever the flag says, because
 * Solidity's `exactIn` is `amountRemaining >= 0`. The magnitude must fit an `int256`:
 * below 2^255 for exact-in, at most 2^255 for exact-out. The direction comes from the
 * prices, as in Solidity: `zeroForOne` is `current >= target`.
 */
export function computeSwapStep(sqrtRatioCurrentX96, sqrtRatioTargetX96, liquidity, amountRemaining, exactIn, feePips) {
  const current = requireU160(sqrtRatioCurrentX96, 'sqrtRatioCurrentX96');
  const target = requireU160(sqrtRatioTargetX96, 'sqrtRatioTargetX96');
  requireU128(liquidity);
  requireU256(amountRemaining, 'amountRemaining');
  requireBool(exactIn, 'exactIn');
  requireU32(feePips, 'feePips');
  if (feePips >= PIPS) throw MathError.invalidFee(feePips);
  exactIn = exactIn || amountRemaining === 0n;
  if ((exactIn && amountRemaining >= HALF) || (!exactIn && amountRemaining > HALF)) {
    throw MathError.amountRemainingOutOfRange();
  }
  const zeroForOne = current >= target;
  const fee = BigInt(feePips);
  const pips = BigInt(PIPS);

  let amountIn = 0n;
  let amountOut = 0n;
  let next;
  if (exactIn) {
    const amountRemainingLessFee = mulDiv(amountRemaining, pips - fee, pips);
    amountIn = zeroForOne
      ? getAmount0Delta(target, current, liquidity, true)
      : getAmount1Delta(current, target, liquidity, true);
    next =
      amountRemainingLessFee >= amountIn
        ? target
        : getNextSqrtPriceFromInput(current, liquidity, amountRemainingLessFee, zeroForOne);
  } else {
    amountOut = zeroForOne
      ? getAmount1Delta(target, current, liquidity, false)
      : getAmount0Delta(current, target, liquidity, false);
    next =
      amountRemaining >= amountOut
        ? target
        : getNextSqrtPriceFromOutput(current, liquidity, amountRemaining, zeroForOne);
  }

  // Solidity's `max && exactIn ? amountIn : ...`: keep the amount computed against the
  // target, else recompute it against the new price.
  const max = target === next;
  const keepIn = max && exactIn;
  const keepOut = max && !exactIn;
  if (zeroForOne) {
    if (!keepIn) amountIn = getAmount0Delta(next, current, liquidity, true);
    if (!keepOut) amountOut = getAmount1Delta(next, current, liquidity, false);
  } else {
    if (!keepIn) amountIn = getAmount1Delta(current, next, liquidity, true);
    if (!keepOut) amountOut = getAmount0Delta(current, next, liquidity, false);
  }

  // Cap the output at the requested amount (rounding can overshoot by one).
  if (!exactIn && amountOut > amountRemaining) amountOut = amountRemaining;

  // When the target was not reached the remainder of the input is all fee; unchecked in
  // Solidity, and never negative there.
  const feeAmount =
    exactIn && next !== target ? wrap256(amountRemaining - amountIn) : mulDivRoundingUp(amountIn, fee, pips - fee);

  return { sqrtRatioNextX96: next, amountIn, amountOut, feeAmount };
}
