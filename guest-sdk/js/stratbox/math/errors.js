/**
 * `MathError`: a condition under which the Solidity code would revert.
 *
 * Each `require` of v3-core / v3-periphery becomes a typed error instead of a revert, with
 * the Rust SDK's variant name as `kind` and its `Display` text as the message, so a JS
 * strategy fails with the same reason a Rust one does.
 */

import { StratboxError } from '../errors.js';

export const MIN_TICK = -887272;
export const MAX_TICK = 887272;

export class MathError extends StratboxError {
  static tickOutOfRange(tick) {
    return new MathError('TickOutOfRange', `tick ${tick} is outside [${MIN_TICK}, ${MAX_TICK}]`, tick);
  }
  static sqrtPriceOutOfRange() {
    return new MathError('SqrtPriceOutOfRange', 'sqrt price is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)');
  }
  static notUint160() {
    return new MathError('NotUint160', 'value does not fit in uint160');
  }
  static resultOverflow(bits) {
    return new MathError('ResultOverflow', `result does not fit in uint${bits}`, bits);
  }
  static divisionByZero() {
    return new MathError('DivisionByZero', 'division by zero');
  }
  static overflow() {
    return new MathError('Overflow', 'arithmetic overflow');
  }
  static zeroPrice() {
    return new MathError('ZeroPrice', 'sqrt price is zero');
  }
  static zeroLiquidity() {
    return new MathError('ZeroLiquidity', 'liquidity is zero');
  }
  static insufficientLiquidity() {
    return new MathError('InsufficientLiquidity', 'not enough liquidity for the requested output');
  }
  static invalidFee(fee) {
    return new MathError('InvalidFee', `fee ${fee} pips is not below 1000000`, fee);
  }
  static amountRemainingOutOfRange() {
    return new MathError('AmountRemainingOutOfRange', 'amount remaining does not fit in int256');
  }
}
