/**
 * Helpers the Solidity libraries share (`FixedPoint96`, `UnsafeMath`, `uint160` checks).
 */

import { MAX_U160, MAX_U256, requireU256 } from '../ints.js';
import { MathError } from './errors.js';

/** 2^96: the fixed-point one of a Q64.96 number (`FixedPoint96.Q96`). */
export const Q96 = 1n << 96n;

/**
 * Refuses what Solidity's `uint160` parameter type would never admit, rather than truncate
 * silently (a bigint outside uint256 is a caller bug, not a revert: it throws `RangeError`).
 */
export function requireU160(v, what = 'sqrt price') {
  if (requireU256(v, what) > MAX_U160) throw MathError.notUint160();
  return v;
}

/** A result Solidity narrows with a check (`toUint160`, `toUint128`). */
export function checkedNarrow(v, bits) {
  if (v >= 1n << BigInt(bits)) throw MathError.resultOverflow(bits);
  return v;
}

/** Arithmetic modulo 2^256: where the Solidity 0.7 code relies on unchecked wraps. */
export function wrap256(v) {
  return BigInt.asUintN(256, v);
}

/** `UnsafeMath.divRoundingUp`: EVM `div`/`mod` by zero yield zero, so this never fails. */
export function divRoundingUp(x, y) {
  if (y === 0n) return 0n;
  const q = x / y;
  return x % y === 0n ? q : wrap256(q + 1n);
}

export { MAX_U256 };
