// The JS clamm-maker against the Rust one's tests (strategies/clamm-maker/src/lib.rs),
// driven through the same world exports the component has.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as app from '../../../strategies/js/clamm-maker/app.js';
import { math, MAX_TICK, MIN_TICK } from '../stratbox/index.js';
import { newBlock, POOL, snapshot, swapEvent } from './fixtures.js';

const CONFIG = `{"pool":"${POOL}","half_width_ticks":600,"margin_ticks":120,"liquidity":"1000000000000000000","max_slippage_bps":50}`;

function fresh() {
  const exports = app.init(CONFIG);
  assert.deepEqual(exports, { tag: 'ok', val: undefined });
  return (event, snap) => {
    const r = app.onEvent(event, snap);
    assert.equal(r.tag, 'ok', `on-event failed: ${r.val}`);
    return r.val;
  };
}

const at = (tick) => [swapEvent(tick), snapshot(tick)];
const ranges = (ps) => ps.map((p) => [p.action.tag, p.action.val.tickLower, p.action.val.tickUpper]);

test('ranges are aligned and centred', () => {
  assert.deepEqual(app.centredRange(0, 60, 600), { lower: -600, upper: 600 });
  assert.deepEqual(app.centredRange(-1, 60, 600), { lower: -660, upper: 540 });
  assert.deepEqual(app.centredRange(125, 60, 100), { lower: 0, upper: 240 });
  assert.equal(app.centredRange(MIN_TICK, 60, 600).lower, -887220);
  assert.equal(app.centredRange(MAX_TICK - 1, 60, 600).upper, 887220);
  assert.throws(() => app.centredRange(0, 0, 600), { message: 'pool tick spacing 0 is not positive' });
  // Hostile snapshot values: no overflow, just a refusal or a clamped range.
  assert.ok(app.centredRange(-(2 ** 31), 7, 600));
  assert.ok(app.centredRange(2 ** 31 - 1, 1, 2 ** 31 - 1));
  assert.throws(() => app.centredRange(0, 2 ** 31 - 1, 600), {
    message: 'no usable range around tick 0 with spacing 2147483647',
  });
});

test('opens, then holds, then moves', () => {
  const on = fresh();
  assert.deepEqual(ranges(on(...at(10))), [['add-liquidity', -600, 600]]);
  assert.deepEqual(on(...at(650)), []);
  assert.deepEqual(on(...at(-700)), []);
  const moved = on(...at(800));
  assert.deepEqual(ranges(moved), [['remove-liquidity', -600, 600], ['add-liquidity', 180, 1380]]);
  assert.equal(moved[0].reason, 'tick 800 left [-600, 600) by more than 120');
  assert.equal(moved[1].reason, 'centre liquidity on tick 800');
});

test('expected amounts follow the pool math', () => {
  const on = fresh();
  const [p] = on(...at(0));
  const [a0, a1] = math.amountsForMint(
    math.getSqrtRatioAtTick(0),
    math.getSqrtRatioAtTick(-600),
    math.getSqrtRatioAtTick(600),
    10n ** 18n,
  );
  assert.equal(p.expectedAmount0, a0.toString());
  assert.equal(p.expectedAmount1, a1.toString());
  assert.equal(p.maxSlippageBps, 50);
  assert.equal(p.action.val.liquidity, '1000000000000000000');
  assert.equal(p.action.val.pool, POOL);
  assert.ok(a0 > 29n * 10n ** 15n && a0 < 31n * 10n ** 15n);
  // Price above the old range: the burn returns only token1, rounded down.
  const moved = on(...at(900));
  assert.equal(moved[0].expectedAmount0, '0');
  const [, burn1] = math.getAmountsForLiquidity(
    math.getSqrtRatioAtTick(900),
    math.getSqrtRatioAtTick(-600),
    math.getSqrtRatioAtTick(600),
    10n ** 18n,
  );
  assert.equal(moved[0].expectedAmount1, burn1.toString());
  assert.notEqual(burn1, 0n);
});

test('ignores other pools and missing state', () => {
  const on = fresh();
  assert.deepEqual(on(swapEvent(0, '0x0000000000000000000000000000000000000bad'), snapshot(0)), []);
  assert.deepEqual(on(newBlock(11n), snapshot(0, { pools: [] })), []);
  assert.deepEqual(on({ tag: 'oracle-price', val: {} }, snapshot(0)), []);
  assert.deepEqual(ranges(on(newBlock(11n), snapshot(0))), [['add-liquidity', -600, 600]]);
});

test('deterministic', () => {
  const run = () => {
    const on = fresh();
    return [0, 300, 900, 900, -2000, 5, 5000].flatMap((t) => on(...at(t)));
  };
  const a = run();
  assert.deepEqual(a, run());
  assert.equal(a.length, 9);
});

test('refuses bad config with the Rust messages', () => {
  const cases = [
    ['{"pool":"0x1","half_width_ticks":0,"margin_ticks":1,"liquidity":"1","max_slippage_bps":1}', 'half_width_ticks must be in 1..=887272, got 0'],
    ['{"pool":"0x1","half_width_ticks":10,"margin_ticks":-1,"liquidity":"1","max_slippage_bps":1}', 'margin_ticks must not be negative, got -1'],
    ['{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"0","max_slippage_bps":1}', 'liquidity must be positive'],
    [
      '{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"1.5","max_slippage_bps":1}',
      'bad clamm-maker config: amount has a decimal point at byte 1; amounts are integers of raw units',
    ],
    [
      '{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"340282366920938463463374607431768211456","max_slippage_bps":1}',
      'liquidity must fit in uint128',
    ],
    ['{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"1","max_slippage_bps":10001}', 'max_slippage_bps must be <= 10000, got 10001'],
    [
      '{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":1,"max_slippage_bps":1}',
      'bad clamm-maker config: invalid type: integer `1`, expected a base-10 string of raw units',
    ],
    [
      '{"pool":"0x1","half_width_ticks":600.0,"margin_ticks":1,"liquidity":"1","max_slippage_bps":1}',
      'bad clamm-maker config: invalid type: floating point `600.0`, expected i32',
    ],
    ['{"pool":"0x1","margin_ticks":1,"liquidity":"1","max_slippage_bps":1}', 'bad clamm-maker config: missing field `half_width_ticks`'],
    [
      '{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"1","max_slippage_bps":1,"extra":1}',
      'bad clamm-maker config: unknown field `extra`, expected one of `pool`, `half_width_ticks`, `margin_ticks`, `liquidity`, `max_slippage_bps`',
    ],
    ['{"pool":"0x1","half_width_ticks":3000000000}', 'bad clamm-maker config: invalid value: integer `3000000000`, expected i32'],
    ['{"pool":"0x1",}', 'bad clamm-maker config: trailing comma at line 1 column 15'],
    ['', 'bad clamm-maker config: EOF while parsing a value at line 1 column 0'],
  ];
  for (const [config, message] of cases) {
    assert.deepEqual(app.init(config), { tag: 'err', val: message }, config);
    // A failed init leaves no instance behind.
    assert.deepEqual(app.onEvent(...at(0)), { tag: 'err', val: 'on-event called before a successful init' });
  }
});

test('errors from the snapshot become the error string, and leave the position alone', () => {
  const on = fresh();
  const snap = snapshot(0);
  snap.pools[0].sqrtPriceX96 = '1e18';
  assert.deepEqual(app.onEvent(swapEvent(0), snap), {
    tag: 'err',
    val: "amount has an exponent ('e') at byte 1; write every digit",
  });
  snap.pools[0].tickSpacing = 0;
  assert.deepEqual(app.onEvent(swapEvent(0), snap), { tag: 'err', val: 'pool tick spacing 0 is not positive' });
  assert.deepEqual(ranges(on(...at(0))), [['add-liquidity', -600, 600]]);
});

test('hands its range to the next version', () => {
  const on = fresh();
  on(...at(0));
  const state = app.save();
  assert.ok(state instanceof Uint8Array);
  // The next version: init, then restore, then the first event.
  fresh();
  assert.deepEqual(app.restore(state), { tag: 'ok', val: undefined });
  assert.deepEqual(app.onEvent(...at(650)), { tag: 'ok', val: [] });
  // A bad state keeps the freshly initialised instance.
  fresh();
  assert.equal(app.restore(new TextEncoder().encode('{"v":2}')).val, 'clamm-maker cannot restore state version 2');
  assert.equal(app.restore(new Uint8Array([0xff])).tag, 'err');
  assert.deepEqual(ranges(app.onEvent(...at(650)).val), [['add-liquidity', 0, 1200]]);
});
