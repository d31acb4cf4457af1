import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  AmountError,
  AmountParseError,
  asAmount,
  checkedAdd,
  checkedDiv,
  checkedMul,
  checkedSub,
  lessBps,
  MAX_U256,
  mulDiv,
  parseAmount,
  plusBps,
  toWire,
} from '../stratbox/index.js';

const MAX = '115792089237316195423570985008687907853269984665640564039457584007913129639935';
const TWO_POW_256 = '115792089237316195423570985008687907853269984665640564039457584007913129639936';

function refused(s) {
  try {
    const v = parseAmount(s);
    assert.fail(`${JSON.stringify(s)} was accepted as ${v}`);
  } catch (e) {
    assert.ok(e instanceof AmountParseError, `expected AmountParseError, got ${e}`);
    return e;
  }
}

test('accepts canonical forms', () => {
  assert.equal(parseAmount('0'), 0n);
  assert.equal(parseAmount('1'), 1n);
  assert.equal(parseAmount('1000000000000000000'), 10n ** 18n);
  assert.equal(parseAmount(MAX), MAX_U256);
  assert.equal(toWire(MAX_U256), MAX);
  assert.equal(toWire(0n), '0');
});

test('refuses JS numbers, floats and bigints given as wire strings', () => {
  for (const v of [1, 1.5, 1e18, NaN, Infinity, -1]) {
    const e = refused(v);
    assert.equal(e.kind, 'NotAString');
    assert.match(e.message, /JS number/);
  }
  assert.match(refused(5n).message, /already an amount/);
  assert.equal(refused(null).kind, 'NotAString');
  assert.throws(() => toWire(1), /must be a bigint/);
  assert.throws(() => toWire(1.5), /BigInt, never Number/);
  assert.throws(() => toWire(-1n), RangeError);
  assert.throws(() => toWire(MAX_U256 + 1n), RangeError);
  assert.throws(() => asAmount(7), TypeError);
  assert.equal(asAmount('7'), 7n);
  assert.equal(asAmount(7n), 7n);
});

test('refuses 2**256 and longer', () => {
  assert.equal(refused(TWO_POW_256).kind, 'Overflow');
  assert.equal(refused(TWO_POW_256).message, 'amount does not fit in 256 bits');
  assert.equal(refused('9'.repeat(79)).kind, 'Overflow');
  assert.equal(refused('1'.repeat(1 << 20)).kind, 'Overflow');
});

test('refuses what the Rust parser refuses, with its reasons', () => {
  assert.equal(refused('').message, 'amount is empty');
  for (const [s, sign] of [['-1', '-'], ['+1', '+'], ['-0', '-'], ['1-2', '-']]) {
    const e = refused(s);
    assert.equal(e.kind, 'Sign');
    assert.equal(e.message, `amount has a sign ('${sign}'); amounts are unsigned magnitudes`);
  }
  assert.equal(refused(' 1').message, 'amount contains whitespace at byte 0');
  assert.equal(refused('1 ').message, 'amount contains whitespace at byte 1');
  assert.equal(refused('1\n').message, 'amount contains whitespace at byte 1');
  assert.equal(refused('1\u00a02').message, 'amount contains whitespace at byte 1');
  assert.equal(refused('1.5').message, 'amount has a decimal point at byte 1; amounts are integers of raw units');
  assert.equal(refused('.5').detail.index, 0);
  assert.equal(refused('1e18').message, "amount has an exponent ('e') at byte 1; write every digit");
  assert.equal(refused('1E3').detail.marker, 'E');
  assert.equal(refused('0x10').message, "amount has a non-digit 'x' at byte 1");
  assert.equal(refused('1_000').detail.found, '_');
  assert.equal(refused('12a').detail.index, 2);
  assert.equal(refused('\uff11').message, "amount has a non-digit '\uff11' at byte 0");
  // Byte offsets, as Rust reports them: the fullwidth digit is 3 bytes of UTF-8.
  assert.equal(refused('\uff11.').kind, 'InvalidDigit');
  assert.equal(refused('1\u00e9').detail.index, 1);
  assert.equal(refused('NaN').detail.found, 'N');
  for (const s of ['00', '01', '0001000']) {
    assert.equal(refused(s).message, 'amount has a leading zero; only "0" itself may start with 0');
  }
});

test('canonical strings round trip', () => {
  for (const s of ['0', '7', '340282366920938463463374607431768211455', MAX]) {
    assert.equal(toWire(parseAmount(s)), s);
  }
});

test('checked arithmetic', () => {
  assert.throws(() => checkedAdd(MAX_U256, 1n), (e) => e instanceof AmountError && e.kind === 'Overflow');
  assert.throws(() => checkedSub(0n, 1n), { message: 'amount arithmetic underflowed zero' });
  assert.throws(() => checkedDiv(1n, 0n), { message: 'amount divided by zero' });
  assert.throws(() => checkedMul(MAX_U256, 2n), { message: 'amount arithmetic overflowed 256 bits' });
  assert.equal(checkedMul(7n, 6n), 42n);
  assert.equal(checkedDiv(7n, 2n), 3n);
  assert.equal(mulDiv(MAX_U256, MAX_U256, MAX_U256), MAX_U256);
  assert.throws(() => mulDiv(1n, 1n, 0n), { message: 'amount divided by zero' });
  assert.throws(() => mulDiv(MAX_U256, 2n, 1n), { message: 'amount arithmetic overflowed 256 bits' });
  assert.throws(() => checkedAdd(1, 2n), TypeError);
});

test('basis points', () => {
  const a = 1_000_000n;
  assert.equal(lessBps(a, 50), 995_000n);
  assert.equal(plusBps(a, 50), 1_005_000n);
  assert.equal(lessBps(3n, 1), 2n);
  assert.equal(plusBps(3n, 1), 4n);
  assert.throws(() => lessBps(a, 10_001), { message: 'basis points 10001 exceed 10000' });
  assert.equal(lessBps(a, 10_000), 0n);
  assert.throws(() => plusBps(MAX_U256, 1), { message: 'amount arithmetic overflowed 256 bits' });
  assert.throws(() => lessBps(a, 1.5), RangeError);
});
