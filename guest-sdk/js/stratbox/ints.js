/**
 * Type guards for the fixed-width integers of the WIT contract and of Solidity.
 *
 * Why they throw `TypeError`/`RangeError` rather than return a value: Rust's type system
 * makes a `u128` liquidity or an `i32` tick impossible to get wrong, JS does not. A JS
 * number where a `bigint` belongs is refused outright, never converted: a number above
 * 2^53 has already lost digits by the time we see it, so converting would hide the bug.
 */

export const MAX_U256 = (1n << 256n) - 1n;
export const MAX_U160 = (1n << 160n) - 1n;
export const MAX_U128 = (1n << 128n) - 1n;
export const MAX_U64 = (1n << 64n) - 1n;
export const MAX_U32 = 0xffffffff;
export const MIN_I32 = -0x80000000;
export const MAX_I32 = 0x7fffffff;

function describe(v) {
  if (typeof v === 'number') return `the JS number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 80 ? v.slice(0, 80) + '...' : v)}`;
  if (v === null) return 'null';
  return `a ${typeof v}`;
}

function requireBigint(v, what, bits, max) {
  if (typeof v !== 'bigint') {
    const hint = typeof v === 'number' ? ' (amounts and prices are BigInt, never Number: write 10n ** 18n, not 1e18)' : '';
    throw new TypeError(`${what} must be a bigint (uint${bits}), got ${describe(v)}${hint}`);
  }
  if (v < 0n || v > max) {
    throw new RangeError(`${what} must fit in uint${bits}, got ${v}`);
  }
  return v;
}

/** A `uint256` value: a `bigint` in [0, 2^256). */
export function requireU256(v, what = 'value') {
  return requireBigint(v, what, 256, MAX_U256);
}

/** A `uint128` value such as a pool's liquidity. */
export function requireU128(v, what = 'liquidity') {
  return requireBigint(v, what, 128, MAX_U128);
}

/** A `u64` value such as a block number. */
export function requireU64(v, what = 'value') {
  return requireBigint(v, what, 64, MAX_U64);
}

/** Ticks, fees and basis points are small: they stay JS numbers, but whole ones. */
function requireSmallInt(v, what, lo, hi, name) {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`${what} must be of type ${name} (a whole JS number in [${lo}, ${hi}]), got ${describe(v)}`);
  }
  return v;
}

/** An `s32` value such as a tick. */
export function requireI32(v, what = 'value') {
  return requireSmallInt(v, what, MIN_I32, MAX_I32, 'i32');
}

/** A `u32` value such as a fee in pips or basis points. */
export function requireU32(v, what = 'value') {
  return requireSmallInt(v, what, 0, MAX_U32, 'u32');
}

/** A boolean flag; truthy values are refused so `zeroForOne: 0` is not read as `false` by accident. */
export function requireBool(v, what = 'flag') {
  if (typeof v !== 'boolean') throw new TypeError(`${what} must be a boolean, got ${describe(v)}`);
  return v;
}

/** Bits needed to write `v` (0 for zero), as ruint's `bit_len`. */
export function bitLength(v) {
  return v === 0n ? 0 : v.toString(2).length;
}
