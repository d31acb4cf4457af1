// The Rust SDK's test vectors (themselves from the v3-core / v3-periphery tests), so the JS
// math is held to the same numbers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MathError, MAX_U256 } from '../stratbox/index.js';
import * as m from '../stratbox/math/index.js';

const { MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, Q96 } = m;
const E18 = 10n ** 18n;
const Q128 = 1n << 128n;
const MAX_U160 = (1n << 160n) - 1n;

function mathErr(kind) {
  return (e) => {
    assert.ok(e instanceof MathError, `expected MathError ${kind}, got ${e}`);
    assert.equal(e.kind, kind);
    return true;
  };
}

test('full math', () => {
  assert.throws(() => m.mulDiv(Q128, 5n, 0n), mathErr('DivisionByZero'));
  assert.throws(() => m.mulDivRoundingUp(Q128, 5n, 0n), mathErr('DivisionByZero'));
  assert.throws(() => m.mulDiv(Q128, Q128, 1n), mathErr('Overflow'));
  assert.throws(() => m.mulDiv(MAX_U256, MAX_U256, MAX_U256 - 1n), mathErr('Overflow'));
  assert.equal(m.mulDiv(MAX_U256, MAX_U256, MAX_U256), MAX_U256);
  assert.equal(m.mulDiv(Q128, (50n * Q128) / 100n, (150n * Q128) / 100n), Q128 / 3n);
  assert.equal(m.mulDiv(Q128, 35n * Q128, 8n * Q128), (4375n * Q128) / 1000n);
  assert.equal(m.mulDiv(Q128, 1000n * Q128, 3000n * Q128), Q128 / 3n);
  assert.equal(m.mulDivRoundingUp(Q128, 1000n * Q128, 3000n * Q128), Q128 / 3n + 1n);
  assert.throws(
    () => m.mulDivRoundingUp(535006138814359n, 432862656469423142931042426214547535783388063929571229938474969n, 2n),
    mathErr('Overflow'),
  );
  assert.throws(() => m.mulDiv(1, 2n, 3n), TypeError);
});

test('tick math at MIN and MAX', () => {
  assert.equal(m.getSqrtRatioAtTick(0), 79228162514264337593543950336n);
  assert.equal(m.getSqrtRatioAtTick(MIN_TICK), 4295128739n);
  assert.equal(m.getSqrtRatioAtTick(MAX_TICK), 1461446703485210103287273052203988822378723970342n);
  assert.equal(m.getSqrtRatioAtTick(MIN_TICK), MIN_SQRT_RATIO);
  assert.equal(m.getSqrtRatioAtTick(MAX_TICK), MAX_SQRT_RATIO);
  assert.equal(m.getSqrtRatioAtTick(MIN_TICK + 1), 4295343490n);
  assert.equal(m.getSqrtRatioAtTick(MAX_TICK - 1), 1461373636630004318706518188784493106690254656249n);
  for (const t of [MIN_TICK - 1, MAX_TICK + 1, -(2 ** 31), 2 ** 31 - 1]) {
    assert.throws(() => m.getSqrtRatioAtTick(t), { message: `tick ${t} is outside [-887272, 887272]` });
  }
  assert.throws(() => m.getSqrtRatioAtTick(1.5), RangeError);
  assert.throws(() => m.getSqrtRatioAtTick(1n), RangeError);

  assert.throws(() => m.getTickAtSqrtRatio(MIN_SQRT_RATIO - 1n), mathErr('SqrtPriceOutOfRange'));
  assert.throws(() => m.getTickAtSqrtRatio(MAX_SQRT_RATIO), mathErr('SqrtPriceOutOfRange'));
  assert.throws(() => m.getTickAtSqrtRatio(0n), mathErr('SqrtPriceOutOfRange'));
  assert.throws(() => m.getTickAtSqrtRatio(MAX_U256), mathErr('NotUint160'));
  assert.equal(m.getTickAtSqrtRatio(MIN_SQRT_RATIO), MIN_TICK);
  assert.equal(m.getTickAtSqrtRatio(4295343490n), MIN_TICK + 1);
  assert.equal(m.getTickAtSqrtRatio(1461373636630004318706518188784493106690254656249n), MAX_TICK - 1);
  assert.equal(m.getTickAtSqrtRatio(MAX_SQRT_RATIO - 1n), MAX_TICK - 1);
  assert.equal(m.getTickAtSqrtRatio(79228162514264337593543950336n), 0);
  assert.equal(m.getTickAtSqrtRatio(79228162514264337593543950335n), -1);
});

test('tick math round trips', () => {
  const ticks = [MIN_TICK, MIN_TICK + 1, -1, 0, 1, MAX_TICK - 1];
  for (let t = MIN_TICK + 7; t < MAX_TICK; t += 4999) ticks.push(t);
  let prev = 0n;
  for (const t of ticks.sort((a, b) => a - b)) {
    const p = m.getSqrtRatioAtTick(t);
    assert.ok(p > prev, `ratio increases at ${t}`);
    prev = p;
    assert.equal(m.getTickAtSqrtRatio(p), t);
    if (t > MIN_TICK) assert.equal(m.getTickAtSqrtRatio(p - 1n), t - 1);
  }
});

test('tick at sqrt ratio matches its definition on arbitrary prices', () => {
  // Greatest tick whose ratio is <= p, by bisection over getSqrtRatioAtTick.
  const bySearch = (p) => {
    let [lo, hi] = [MIN_TICK, MAX_TICK];
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo + 1) / 2);
      if (m.getSqrtRatioAtTick(mid) <= p) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  let x = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < 40; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 192n) - 1n);
    const bits = BigInt(33 + (i * 31) % 127);
    let p = x & ((1n << bits) - 1n);
    p = p < MIN_SQRT_RATIO ? MIN_SQRT_RATIO : p >= MAX_SQRT_RATIO ? MAX_SQRT_RATIO - 1n : p;
    assert.equal(m.getTickAtSqrtRatio(p), bySearch(p), `price ${p}`);
  }
});

test('next sqrt price from input', () => {
  assert.throws(() => m.getNextSqrtPriceFromInput(0n, 1n, E18 / 10n, false), mathErr('ZeroPrice'));
  assert.throws(() => m.getNextSqrtPriceFromInput(1n, 0n, E18 / 10n, true), mathErr('ZeroLiquidity'));
  assert.throws(() => m.getNextSqrtPriceFromInput(MAX_U160, 1024n, 1024n, false), {
    message: 'result does not fit in uint160',
  });
  assert.equal(m.getNextSqrtPriceFromInput(1n, 1n, 1n << 255n, true), 1n);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, 10n ** 17n, 0n, true), Q96);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, 10n ** 17n, 0n, false), Q96);
  const liquidity = (1n << 128n) - 1n;
  const maxAmountNoOverflow = MAX_U256 - (liquidity << 96n) / MAX_U160;
  assert.equal(m.getNextSqrtPriceFromInput(MAX_U160, liquidity, maxAmountNoOverflow, true), 1n);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, E18, E18 / 10n, false), 87150978765690771352898345369n);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, E18, E18 / 10n, true), 72025602285694852357767227579n);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, 10n ** 19n, 1n << 100n, true), 624999999995069620n);
  assert.equal(m.getNextSqrtPriceFromInput(Q96, 1n, MAX_U256 / 2n, true), 1n);
});

test('next sqrt price from output', () => {
  assert.throws(() => m.getNextSqrtPriceFromOutput(0n, 1n, E18 / 10n, false), mathErr('ZeroPrice'));
  assert.throws(() => m.getNextSqrtPriceFromOutput(1n, 0n, E18 / 10n, true), mathErr('ZeroLiquidity'));
  const price = 20282409603651670423947251286016n;
  for (const [amount, zeroForOne] of [[4n, false], [5n, false], [262144n, true], [262145n, true]]) {
    assert.throws(() => m.getNextSqrtPriceFromOutput(price, 1024n, amount, zeroForOne), mathErr('InsufficientLiquidity'));
  }
  assert.equal(m.getNextSqrtPriceFromOutput(price, 1024n, 262143n, true), 77371252455336267181195264n);
  assert.equal(m.getNextSqrtPriceFromOutput(Q96, E18, E18 / 10n, false), 88031291682515930659493278152n);
  assert.equal(m.getNextSqrtPriceFromOutput(Q96, E18, E18 / 10n, true), 71305346262837903834189555302n);
  assert.throws(() => m.getNextSqrtPriceFromOutput(Q96, 1n, MAX_U256, true), mathErr('Overflow'));
  assert.throws(() => m.getNextSqrtPriceFromOutput(Q96, 1n, MAX_U256, false), mathErr('InsufficientLiquidity'));
});

test('amount deltas', () => {
  assert.equal(m.getAmount0Delta(Q96, 112045541949572279837463876454n, 0n, true), 0n);
  assert.equal(m.getAmount0Delta(Q96, Q96, 0n, true), 0n);
  const p121 = 87150978765690771352898345369n;
  const a0 = m.getAmount0Delta(Q96, p121, E18, true);
  assert.equal(a0, 90909090909090910n);
  assert.equal(m.getAmount0Delta(Q96, p121, E18, false), a0 - 1n);
  const a1 = m.getAmount1Delta(Q96, p121, E18, true);
  assert.equal(a1, 100000000000000000n);
  assert.equal(m.getAmount1Delta(Q96, p121, E18, false), a1 - 1n);
  const pHi = 2787593149816327892691964784081045188247552n;
  const pLo = 22300745198530623141535718272648361505980416n;
  assert.equal(m.getAmount0Delta(pHi, pLo, E18, true), m.getAmount0Delta(pHi, pLo, E18, false) + 1n);
  assert.throws(() => m.getAmount0Delta(0n, Q96, E18, true), mathErr('ZeroPrice'));
  assert.throws(() => m.getAmount0Delta(MAX_U256, Q96, E18, true), mathErr('NotUint160'));
  assert.throws(() => m.getAmount0Delta(Q96, Q96, 1n << 128n, true), RangeError);

  const sqrtP = 1025574284609383690408304870162715216695788925244n;
  const liquidity = 50015962439936049619261659728067971248n;
  const sqrtQ = m.getNextSqrtPriceFromInput(sqrtP, liquidity, 406n, true);
  assert.equal(sqrtQ, 1025574284609383582644711336373707553698163132913n);
  assert.equal(m.getAmount0Delta(sqrtQ, sqrtP, liquidity, true), 406n);
});

test('compute swap step', () => {
  const step = (...a) => m.computeSwapStep(...a);
  const t101 = 79623317895830914510639640423n;
  let s = step(Q96, t101, 2n * E18, E18, true, 600);
  assert.deepEqual(s, { sqrtRatioNextX96: t101, amountIn: 9975124224178055n, amountOut: 9925619580021728n, feeAmount: 5988667735148n });
  assert.ok(s.sqrtRatioNextX96 < m.getNextSqrtPriceFromInput(Q96, 2n * E18, E18, false));
  s = step(Q96, t101, 2n * E18, E18, false, 600);
  assert.deepEqual(s, { sqrtRatioNextX96: t101, amountIn: 9975124224178055n, amountOut: 9925619580021728n, feeAmount: 5988667735148n });
  s = step(Q96, 250541448375047931186413801569n, 2n * E18, E18, true, 600);
  assert.equal(s.amountIn, 999400000000000000n);
  assert.equal(s.feeAmount, 600000000000000n);
  assert.equal(s.amountOut, 666399946655997866n);
  assert.equal(s.sqrtRatioNextX96, m.getNextSqrtPriceFromInput(Q96, 2n * E18, s.amountIn, false));
  s = step(Q96, 792281625142643375935439503360n, 2n * E18, E18, false, 600);
  assert.equal(s.amountIn, 2000000000000000000n);
  assert.equal(s.feeAmount, 1200720432259356n);
  assert.equal(s.amountOut, E18);
  s = step(417332158212080721273783715441582n, 1452870262520218020823638996n, 159344665391607089467575320103n, 1n, false, 1);
  assert.deepEqual(s, { sqrtRatioNextX96: 417332158212080721273783715441581n, amountIn: 1n, amountOut: 1n, feeAmount: 1n });
  s = step(2n, 1n, 1n, 3915081100057732413702495386755767n, true, 1);
  assert.deepEqual(s, { sqrtRatioNextX96: 1n, amountIn: 39614081257132168796771975168n, amountOut: 0n, feeAmount: 39614120871253040049813n });
  s = step(2413n, 79887613182836312n, 1985041575832132834610021537970n, 10n, true, 1872);
  assert.deepEqual(s, { sqrtRatioNextX96: 2413n, amountIn: 0n, amountOut: 0n, feeAmount: 10n });
  const p = 20282409603651670423947251286016n;
  s = step(p, (p * 11n) / 10n, 1024n, 4n, false, 3000);
  assert.deepEqual(s, { sqrtRatioNextX96: (p * 11n) / 10n, amountIn: 26215n, amountOut: 0n, feeAmount: 79n });
  s = step(p, (p * 9n) / 10n, 1024n, 263000n, false, 3000);
  assert.deepEqual(s, { sqrtRatioNextX96: (p * 9n) / 10n, amountIn: 1n, amountOut: 26214n, feeAmount: 1n });

  assert.throws(() => step(Q96, Q96 / 2n, 1n, 1n, true, 1_000_000), { message: 'fee 1000000 pips is not below 1000000' });
  assert.throws(() => step(Q96, Q96 / 2n, 1n, 1n << 255n, true, 3000), mathErr('AmountRemainingOutOfRange'));
  assert.throws(() => step(MAX_U256, Q96, 1n, 1n, true, 3000), mathErr('NotUint160'));
  assert.deepEqual(step(Q96, Q96 / 2n, E18, 0n, false, 3000), step(Q96, Q96 / 2n, E18, 0n, true, 3000));
});

test('liquidity amounts', () => {
  const p11 = Q96;
  const lo = 75541088972021055232360200088n;
  const hi = 83095197869223157896060286990n;
  const below = 75162434512514379355924140470n;
  const above = 83472048772503200000000000000n;
  assert.equal(m.getLiquidityForAmounts(p11, lo, hi, 100n, 200n), 2148n);
  assert.equal(m.getLiquidityForAmounts(below, lo, hi, 100n, 200n), 1048n);
  assert.equal(m.getLiquidityForAmounts(above, lo, hi, 100n, 200n), 2097n);
  assert.equal(m.getLiquidityForAmounts(lo, lo, hi, 100n, 200n), 1048n);
  assert.equal(m.getLiquidityForAmounts(hi, lo, hi, 100n, 200n), 2097n);

  assert.deepEqual(m.getAmountsForLiquidity(p11, lo, hi, 2148n), [99n, 99n]);
  assert.deepEqual(m.getAmountsForLiquidity(below, lo, hi, 1048n), [99n, 0n]);
  assert.deepEqual(m.getAmountsForLiquidity(above, lo, hi, 2097n), [0n, 199n]);
  assert.deepEqual(m.getAmountsForLiquidity(lo, lo, hi, 1048n), [99n, 0n]);
  assert.deepEqual(m.getAmountsForLiquidity(hi, lo, hi, 2097n), [0n, 199n]);

  assert.deepEqual(m.amountsForMint(p11, lo, hi, 2148n), [100n, 100n]);

  assert.throws(() => m.getLiquidityForAmount1(p11, p11, 1n), mathErr('DivisionByZero'));
  assert.throws(() => m.getLiquidityForAmount1(lo, hi, MAX_U256 >> 1n), mathErr('Overflow'));
  assert.throws(() => m.getLiquidityForAmount1(lo, hi, 1n << 130n), { message: 'result does not fit in uint128' });
  assert.throws(() => m.getAmount0ForLiquidity(0n, p11, 1n), mathErr('DivisionByZero'));
});

test('prices', () => {
  assert.equal(m.spotPriceE18(Q96), E18);
  assert.equal(m.token0InToken1(12345n, Q96), 12345n);
  assert.equal(m.spotPriceE18(Q96 * 2n), E18 * 4n);
  assert.equal(m.token0InToken1(MAX_U256, MAX_U256), MAX_U256);
  assert.ok(m.token0InToken1Wide(MAX_U256, MAX_U256) > MAX_U256);
  const l = E18;
  const sell0 = m.inputForStep(true, Q96, l, 3000n, 0n);
  assert.equal(sell0, (l * 3n) / 1000n);
  assert.equal(m.inputForStep(false, Q96, l, 3000n, 0n), sell0);
  assert.equal(m.inputForStep(true, Q96, 0n, 50n, 1000n), 1000n);
});
