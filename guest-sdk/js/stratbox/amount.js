/**
 * Amounts: 256-bit unsigned integers of raw token units (wei), held as `bigint`, and their
 * strict base-10 wire form.
 *
 * The parser is strict on purpose, exactly as the host's (`stratbox-amount`): a sign, a
 * decimal point or an exponent means the producer was thinking in floats, and accepting
 * "1.5" or "1e18" by rounding would turn a bug upstream into a wrong trade downstream. The
 * error texts are the Rust ones, so a strategy reports the same reason in either language.
 * Errors never quote the input, so a hostile megabyte-long string cannot flood a log.
 */

import { StratboxError } from './errors.js';
import { MAX_U256, requireU256, requireU32 } from './ints.js';
import { MathError } from './math/errors.js';
import { mulDiv as fullMulDiv, mulDivRoundingUp } from './math/full_math.js';

export { MAX_U256 };

/** 2^256 - 1 has 78 digits; longer input is refused before any arithmetic. */
export const MAX_DIGITS = 78;

/** The host refuses anything above 100%. */
export const MAX_BPS = 10_000;

/** Why a string is not a wire-form amount; `kind` is the Rust `AmountParseError` variant. */
export class AmountParseError extends StratboxError {}

/** A checked operation on amounts left the 256-bit range or divided by zero. */
export class AmountError extends StratboxError {
  static overflow() {
    return new AmountError('Overflow', 'amount arithmetic overflowed 256 bits');
  }
  static underflow() {
    return new AmountError('Underflow', 'amount arithmetic underflowed zero');
  }
  static divisionByZero() {
    return new AmountError('DivisionByZero', 'amount divided by zero');
  }
  static bpsOutOfRange(bps) {
    return new AmountError('BpsOutOfRange', `basis points ${bps} exceed 10000`, bps);
  }
}

// Rust's `char::is_whitespace` (Unicode White_Space), which differs from JS `\s`.
const WHITESPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;
// Characters Rust's `{:?}` escapes as `\u{..}`: controls, common format characters,
// combining marks, surrogates and private use. An approximation of Rust's printable table
// (the SpiderMonkey the components run has no Unicode property escapes to do better).
const NOT_PRINTABLE = /^[\u0000-\u001f\u007f-\u009f\u00ad\u0300-\u036f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ud800-\udfff\ue000-\uf8ff\ufeff]$/;

/** Rust's `{:?}` of a char, close enough for an error message. */
function debugChar(ch) {
  const escapes = { '\0': '\\0', '\\': '\\\\', "'": "\\'" };
  if (ch in escapes) return `'${escapes[ch]}'`;
  if (NOT_PRINTABLE.test(ch)) return `'\\u{${ch.codePointAt(0).toString(16)}}'`;
  return `'${ch}'`;
}

function utf8Length(cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

function notAString(v) {
  const got =
    typeof v === 'number'
      ? `a JS number (${v}); numbers above 2^53 silently lose digits, so write the digits as a string or use a bigint`
      : typeof v === 'bigint'
        ? 'a bigint; that is already an amount, use it as it is'
        : v === null
          ? 'null'
          : `a ${typeof v}`;
  return new AmountParseError('NotAString', `amount must be a base-10 string of raw units, got ${got}`);
}

/**
 * Parses the wire form strictly: canonical base-10 digits, no sign, point, exponent,
 * whitespace or leading zero, below 2^256. Anything else, including a JS number, throws
 * an `AmountParseError` saying what was wrong.
 */
export function parseAmount(s) {
  if (typeof s !== 'string') throw notAString(s);
  if (s.length === 0) throw new AmountParseError('Empty', 'amount is empty');
  if (s[0] === '+' || s[0] === '-') throw signError(s[0]);
  let index = 0;
  for (const ch of s) {
    if (ch < '0' || ch > '9') {
      if (WHITESPACE.test(ch)) {
        throw new AmountParseError('Whitespace', `amount contains whitespace at byte ${index}`, { index });
      }
      if (ch === '.') {
        throw new AmountParseError(
          'DecimalPoint',
          `amount has a decimal point at byte ${index}; amounts are integers of raw units`,
          { index },
        );
      }
      if (ch === 'e' || ch === 'E') {
        throw new AmountParseError(
          'Exponent',
          `amount has an exponent ('${ch}') at byte ${index}; write every digit`,
          { marker: ch, index },
        );
      }
      if (ch === '+' || ch === '-') throw signError(ch);
      throw new AmountParseError('InvalidDigit', `amount has a non-digit ${debugChar(ch)} at byte ${index}`, {
        found: ch,
        index,
      });
    }
    index += utf8Length(ch.codePointAt(0));
  }
  if (s[0] === '0' && s.length > 1) {
    throw new AmountParseError('LeadingZero', 'amount has a leading zero; only "0" itself may start with 0');
  }
  const value = s.length > MAX_DIGITS ? MAX_U256 + 1n : BigInt(s);
  if (value > MAX_U256) throw amountOverflow(256);
  return value;
}

function signError(sign) {
  return new AmountParseError('Sign', `amount has a sign ('${sign}'); amounts are unsigned magnitudes`, { sign });
}

/** The wire parser's "does not fit" error, also used where a narrower type is asked for. */
export function amountOverflow(bits) {
  return new AmountParseError('Overflow', `amount does not fit in ${bits} bits`, { bits });
}

/**
 * An amount from either a `bigint` or a wire string; a JS number is refused. Builders take
 * this so an author can pass a config value through without formatting it by hand.
 */
export function asAmount(v, what = 'amount') {
  if (typeof v === 'string') return parseAmount(v);
  return requireU256(v, what);
}

/** The wire form of an amount, for a WIT field. */
export function toWire(v) {
  return requireU256(v, 'amount').toString();
}

/** Sum; `Overflow` past 2^256 - 1. */
export function checkedAdd(a, b) {
  const r = requireU256(a, 'a') + requireU256(b, 'b');
  if (r > MAX_U256) throw AmountError.overflow();
  return r;
}

/** Difference; `Underflow` if `b` is larger. */
export function checkedSub(a, b) {
  const r = requireU256(a, 'a') - requireU256(b, 'b');
  if (r < 0n) throw AmountError.underflow();
  return r;
}

/** Product; `Overflow` past 2^256 - 1. */
export function checkedMul(a, b) {
  const r = requireU256(a, 'a') * requireU256(b, 'b');
  if (r > MAX_U256) throw AmountError.overflow();
  return r;
}

/** Quotient rounded down; `DivisionByZero` if `b` is zero. */
export function checkedDiv(a, b) {
  requireU256(a, 'a');
  if (requireU256(b, 'b') === 0n) throw AmountError.divisionByZero();
  return a / b;
}

/**
 * `a * mul / div` rounded down, with the exact intermediate: the product of two realistic
 * token amounts overflows 256 bits long before the quotient does.
 */
export function mulDiv(a, mul, div) {
  try {
    return fullMulDiv(a, mul, div);
  } catch (e) {
    if (e instanceof MathError) {
      throw e.kind === 'DivisionByZero' ? AmountError.divisionByZero() : AmountError.overflow();
    }
    throw e;
  }
}

/**
 * The amount reduced by `bps` basis points, rounded down: the least a trade may deliver
 * under a slippage tolerance of `bps`.
 */
export function lessBps(a, bps) {
  requireU32(bps, 'bps');
  if (bps > MAX_BPS) throw AmountError.bpsOutOfRange(bps);
  return mulDiv(a, BigInt(MAX_BPS - bps), BigInt(MAX_BPS));
}

/**
 * The amount raised by `bps` basis points, rounded up: the most a trade may cost under a
 * slippage tolerance of `bps`.
 */
export function plusBps(a, bps) {
  requireU32(bps, 'bps');
  if (bps > MAX_BPS) throw AmountError.bpsOutOfRange(bps);
  try {
    return mulDivRoundingUp(a, BigInt(MAX_BPS + bps), BigInt(MAX_BPS));
  } catch (e) {
    if (e instanceof MathError) throw AmountError.overflow();
    throw e;
  }
}
