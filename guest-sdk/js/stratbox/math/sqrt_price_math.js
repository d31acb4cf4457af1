/**
 * `SqrtPriceMath`: how far a given amount moves the price, and how much a price move costs.
 *
 * Rounding always favours the pool: prices move further for inputs (less output per input)
 * and amounts owed to the pool round up. The unchecked wraps of Solidity 0.7 are kept where
 * the original relies on them for its overflow tests.
 */

import { MAX_U160, MAX_U256, requireBool, requireU128, requireU256 } from '../ints.js';
import { checkedNarrow, divRoundingUp, Q96, requireU160, wrap256 } from './common.js';
import { MathError } from './errors.js';
import { mulDiv, mulDivRoundingUp } from './full_math.js';

/** `uint160(x)`: an unchecked downcast, kept where Solidity does not check. */
function truncateU160(v) {
  return v & MAX_U160;
}

/** `getNextSqrtPriceFromAmount0RoundingUp`. */
export function getNextSqrtPriceFromAmount0RoundingUp(sqrtPX96, liquidity, amount, add) {
  requireU160(sqrtPX96, 'sqrtPX96');
  requireU128(liquidity);
  requireU256(amount, 'amount');
  requireBool(add, 'add');
  if (amount === 0n) return sqrtPX96;
  const numerator1 = liquidity << 96n;
  const product = wrap256(amount * sqrtPX96);
  const productExact = product / amount === sqrtPX96;
  if (add) {
    if (productExact) {
      const denominator = wrap256(numerator1 + product);
      if (denominator >= numerator1) {
        return truncateU160(mulDivRoundingUp(numerator1, sqrtPX96, denominator));
      }
    }
    // Solidity: `numerator1 / sqrtPX96` reverts on a zero price (checked `/`).
    if (sqrtPX96 === 0n) throw MathError.divisionByZero();
    const denominator = numerator1 / sqrtPX96 + amount;
    if (denominator > MAX_U256) throw MathError.overflow();
    return truncateU160(divRoundingUp(numerator1, denominator));
  }
  if (!(productExact && numerator1 > product)) throw MathError.insufficientLiquidity();
  return checkedNarrow(mulDivRoundingUp(numerator1, sqrtPX96, numerator1 - product), 160);
}

/** `getNextSqrtPriceFromAmount1RoundingDown`. */
export function getNextSqrtPriceFromAmount1RoundingDown(sqrtPX96, liquidity, amount, add) {
  requireU160(sqrtPX96, 'sqrtPX96');
  requireU128(liquidity);
  requireU256(amount, 'amount');
  requireBool(add, 'add');
  const fitsU160 = amount <= MAX_U160;
  if (add) {
    let quotient;
    if (fitsU160) {
      if (liquidity === 0n) throw MathError.divisionByZero();
      quotient = (amount << 96n) / liquidity;
    } else {
      quotient = mulDiv(amount, Q96, liquidity);
    }
    const sum = sqrtPX96 + quotient;
    if (sum > MAX_U256) throw MathError.overflow();
    return checkedNarrow(sum, 160);
  }
  // UnsafeMath.divRoundingUp: a zero divisor gives 0 rather than reverting.
  const quotient = fitsU160 ? divRoundingUp(amount << 96n, liquidity) : mulDivRoundingUp(amount, Q96, liquidity);
  if (sqrtPX96 <= quotient) throw MathError.insufficientLiquidity();
  return sqrtPX96 - quotient;
}

function requirePriceAndLiquidity(sqrtPX96, liquidity) {
  if (requireU256(sqrtPX96, 'sqrtPX96') === 0n) throw MathError.zeroPrice();
  if (requireU128(liquidity) === 0n) throw MathError.zeroLiquidity();
}

/**
 * `getNextSqrtPriceFromInput`: the price after `amountIn` of token0 (`zeroForOne`) or token1
 * enters, rounded so the pool never gives more than it should.
 */
export function getNextSqrtPriceFromInput(sqrtPX96, liquidity, amountIn, zeroForOne) {
  requirePriceAndLiquidity(sqrtPX96, liquidity);
  return requireBool(zeroForOne, 'zeroForOne')
    ? getNextSqrtPriceFromAmount0RoundingUp(sqrtPX96, liquidity, amountIn, true)
    : getNextSqrtPriceFromAmount1RoundingDown(sqrtPX96, liquidity, amountIn, true);
}

/** `getNextSqrtPriceFromOutput`: the price after `amountOut` of token1 (`zeroForOne`) or token0 leaves. */
export function getNextSqrtPriceFromOutput(sqrtPX96, liquidity, amountOut, zeroForOne) {
  requirePriceAndLiquidity(sqrtPX96, liquidity);
  return requireBool(zeroForOne, 'zeroForOne')
    ? getNextSqrtPriceFromAmount1RoundingDown(sqrtPX96, liquidity, amountOut, false)
    : getNextSqrtPriceFromAmount0RoundingUp(sqrtPX96, liquidity, amountOut, false);
}

function sortedPrices(a, b) {
  requireU160(a, 'sqrtRatioAX96');
  requireU160(b, 'sqrtRatioBX96');
  return a > b ? [b, a] : [a, b];
}

/**
 * `getAmount0Delta(uint160,uint160,uint128,bool)`: token0 between two prices for
 * `liquidity`, i.e. `L * 2^96 * (sqrtB - sqrtA) / sqrtB / sqrtA`.
 */
export function getAmount0Delta(sqrtRatioAX96, sqrtRatioBX96, liquidity, roundUp) {
  const [a, b] = sortedPrices(sqrtRatioAX96, sqrtRatioBX96);
  requireU128(liquidity);
  requireBool(roundUp, 'roundUp');
  const numerator1 = liquidity << 96n;
  const numerator2 = b - a;
  if (a === 0n) throw MathError.zeroPrice();
  return roundUp
    ? divRoundingUp(mulDivRoundingUp(numerator1, numerator2, b), a)
    : mulDiv(numerator1, numerator2, b) / a;
}

/**
 * `getAmount1Delta(uint160,uint160,uint128,bool)`: token1 between two prices for
 * `liquidity`, i.e. `L * (sqrtB - sqrtA) / 2^96`.
 */
export function getAmount1Delta(sqrtRatioAX96, sqrtRatioBX96, liquidity, roundUp) {
  const [a, b] = sortedPrices(sqrtRatioAX96, sqrtRatioBX96);
  requireU128(liquidity);
  return requireBool(roundUp, 'roundUp') ? mulDivRoundingUp(liquidity, b - a, Q96) : mulDiv(liquidity, b - a, Q96);
}
