/**
 * `FullMath`: `a * b / denominator` with a 512-bit intermediate.
 *
 * Solidity needs Remco Bloemen's Chinese-remainder trick because the EVM has no 512-bit
 * type; BigInt has no width at all, so the exact quotient is computed directly. The result
 * and the failure conditions (zero denominator, quotient above 256 bits) are the same.
 */

import { MAX_U256, requireU256 } from '../ints.js';
import { MathError } from './errors.js';

function mulDivRem(a, b, denominator) {
  requireU256(a, 'a');
  requireU256(b, 'b');
  requireU256(denominator, 'denominator');
  if (denominator === 0n) throw MathError.divisionByZero();
  const product = a * b;
  const q = product / denominator;
  if (q > MAX_U256) throw MathError.overflow();
  return [q, product % denominator !== 0n];
}

/** `FullMath.mulDiv`: `floor(a * b / denominator)`. */
export function mulDiv(a, b, denominator) {
  return mulDivRem(a, b, denominator)[0];
}

/**
 * `FullMath.mulDivRoundingUp`: `ceil(a * b / denominator)`, with the same failures plus
 * `require(result < type(uint256).max)` before rounding up.
 */
export function mulDivRoundingUp(a, b, denominator) {
  const [q, inexact] = mulDivRem(a, b, denominator);
  if (!inexact) return q;
  if (q === MAX_U256) throw MathError.overflow();
  return q + 1n;
}
