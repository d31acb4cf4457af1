import assert from 'node:assert/strict';
import { test } from 'node:test';

import { addLiquidity, checkProposal, ProposalError, removeLiquidity, swap } from '../stratbox/index.js';

const POOL = '0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8';

test('swap builds wire strings', () => {
  const p = swap(POOL, true, 1000n)
    .expect(1000n, 997n)
    .maxSlippageBps(50)
    .sqrtPriceLimit(4295128740n)
    .reason('trend')
    .build();
  assert.deepEqual(p, {
    action: { tag: 'swap', val: { pool: POOL, zeroForOne: true, amountIn: '1000', sqrtPriceLimitX96: '4295128740' } },
    expectedAmount0: '1000',
    expectedAmount1: '997',
    maxSlippageBps: 50,
    reason: 'trend',
  });
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.action.val));
  // A builder's product passes the boundary check unchanged.
  assert.deepEqual(checkProposal(p), p);
});

test('defaults: zero expectations, zero slippage, empty reason, no price limit', () => {
  const p = swap(POOL, false, '5').build();
  assert.equal(p.expectedAmount0, '0');
  assert.equal(p.maxSlippageBps, 0);
  assert.equal(p.reason, '');
  assert.equal(p.action.val.sqrtPriceLimitX96, undefined);
});

test('refuses what the host would', () => {
  const refused = (b, kind, message) =>
    assert.throws(() => b.build(), (e) => e instanceof ProposalError && e.kind === kind && e.message === message);
  refused(swap(POOL, true, 1n).maxSlippageBps(10_001), 'SlippageOutOfRange', 'max slippage 10001 bps exceeds 10000');
  refused(swap(POOL, true, 0n), 'ZeroAmount', 'a swap proposal needs a non-zero amount');
  refused(addLiquidity(POOL, 60, 60, 1n), 'EmptyRange', 'tick range [60, 60) is empty or inverted');
  refused(addLiquidity(POOL, 60, -60, 1n), 'EmptyRange', 'tick range [60, -60) is empty or inverted');
  refused(removeLiquidity(POOL, -60, 60, 0n), 'ZeroAmount', 'a liquidity proposal needs a non-zero amount');
});

test('refuses numbers and malformed values up front', () => {
  assert.throws(() => swap(POOL, true, 1000), /must be a bigint/);
  assert.throws(() => swap(POOL, true, '1.5'), /decimal point/);
  assert.throws(() => swap(POOL, 1, 5n), /boolean/);
  assert.throws(() => addLiquidity(POOL, 0.5, 60, 1n), /i32/);
  assert.throws(() => swap(POOL, true, 1n).expect(1e18, 0n), /BigInt, never Number/);
  assert.throws(() => swap(POOL, true, 1n).maxSlippageBps(-1), /u32/);
  assert.throws(() => swap(POOL, true, 1n).reason(5), /string/);
});

test('liquidity actions carry the range; a price limit is ignored there', () => {
  const p = removeLiquidity(POOL, -120, 60, 5n).sqrtPriceLimit(1n).build();
  assert.deepEqual(p.action, { tag: 'remove-liquidity', val: { pool: POOL, tickLower: -120, tickUpper: 60, liquidity: '5' } });
});

test('checkProposal names what the bindings could not lower', () => {
  const good = addLiquidity(POOL, -60, 60, 7n).build();
  assert.throws(() => checkProposal({ ...good, expectedAmount0: 5 }), /expectedAmount0: amount must be a base-10 string/);
  assert.throws(() => checkProposal({ ...good, expectedAmount1: '1e3' }), /expectedAmount1: amount has an exponent/);
  assert.throws(() => checkProposal({ ...good, maxSlippageBps: 2 ** 32 }), /maxSlippageBps must be of type u32/);
  assert.throws(() => checkProposal({ ...good, action: { tag: 'mint', val: {} } }), /action tag must be/);
  assert.throws(() => checkProposal({ ...good, reason: undefined }), /reason must be a string/);
  assert.throws(() => checkProposal(null), /expected a record/);
});
