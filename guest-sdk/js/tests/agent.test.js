import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BaseStrategyAgent, ConfigError, exportAgent, host, readConfig, swap } from '../stratbox/index.js';
import { newBlock, POOL, snapshot, swapEvent } from './fixtures.js';

class Echo extends BaseStrategyAgent {
  static configName = 'echo';
  static configSchema = { amount: 'amount', mode: 'string', bps: 'u32?', block: 'u64?' };

  constructor(config) {
    super(config);
    if (config.mode === 'refuse') throw new Error('mode refuse refuses');
    this.seen = 0n;
  }

  generateProposals(event, snap) {
    this.seen += 1n;
    host.info(`event ${event.tag} at block ${event.block()}`);
    switch (this.config.mode) {
      case 'swap':
        return [swap(POOL, true, this.config.amount).maxSlippageBps(this.config.bps ?? 0).reason(`seen ${this.seen}`).build()];
      case 'balance':
        return [swap(POOL, true, snap.balance('0xAA')).build()];
      case 'type-bug':
        return undefined.x;
      case 'raw-bad':
        return [{ action: { tag: 'swap', val: { pool: POOL, zeroForOne: true, amountIn: 1e18 } } }];
      case 'not-array':
        return null;
      case 'promise':
        return Promise.resolve([]);
      case 'throw-string':
        throw 'plain string';
      default:
        throw new Error('told to fail');
    }
  }

  save() {
    return this.config.mode === 'bad-save' ? 42 : `seen=${this.seen}`;
  }

  restore(state) {
    const text = new TextDecoder().decode(state);
    this.seen = BigInt(text.replace('seen=', ''));
    if (this.seen > 100n) throw new Error('too many');
  }
}

const cfg = (mode, extra = '') => `{"amount":"1000","mode":"${mode}"${extra}}`;

test('init parses the schema and reports the author\'s refusal', () => {
  const w = exportAgent(Echo);
  assert.deepEqual(w.init(cfg('swap')), { tag: 'ok', val: undefined });
  assert.deepEqual(w.init(cfg('refuse')), { tag: 'err', val: 'mode refuse refuses' });
  assert.deepEqual(w.init('{"amount":"1000"}'), { tag: 'err', val: 'bad echo config: missing field `mode`' });
  assert.deepEqual(w.init(cfg('swap', ',"bps":null')), { tag: 'ok', val: undefined });
  assert.equal(w.init(cfg('swap', ',"block":-1')).val, 'bad echo config: invalid value: integer `-1`, expected u64');
});

test('on-event converts WIT values in and proposals out', () => {
  const w = exportAgent(Echo);
  host.testing.reset();
  w.init(cfg('swap', ',"bps":25'));
  const r = w.onEvent(swapEvent(5), snapshot(5));
  assert.equal(r.tag, 'ok');
  assert.deepEqual(r.val[0], {
    action: { tag: 'swap', val: { pool: POOL, zeroForOne: true, amountIn: '1000', sqrtPriceLimitX96: undefined } },
    expectedAmount0: '0',
    expectedAmount1: '0',
    maxSlippageBps: 25,
    reason: 'seen 1',
  });
  w.onEvent(newBlock(77n), snapshot(5));
  assert.deepEqual(host.testing.logs, [['info', 'event swap at block 10'], ['info', 'event new-block at block 77']]);
});

test('author errors become the error string, never a throw', () => {
  const w = exportAgent(Echo);
  const run = (mode) => {
    assert.equal(w.init(cfg(mode)).tag, 'ok');
    return w.onEvent(swapEvent(0), snapshot(0));
  };
  assert.deepEqual(run('fail'), { tag: 'err', val: 'told to fail' });
  assert.deepEqual(run('throw-string'), { tag: 'err', val: 'plain string' });
  assert.match(run('type-bug').val, /^TypeError: /);
  assert.equal(run('raw-bad').val, 'TypeError: proposal 0: amountIn: amount must be a base-10 string of raw units, got a JS number (1000000000000000000); numbers above 2^53 silently lose digits, so write the digits as a string or use a bigint');
  assert.equal(run('not-array').val, 'TypeError: generateProposals must return an array of proposals, got null');
  assert.match(run('promise').val, /returned a Promise/);
  // A balance the host sent in a bad form is the SDK's amount error, as in Rust.
  assert.equal(w.init(cfg('balance')).tag, 'ok');
  const snap = snapshot(0);
  snap.balances = [{ token: '0xaa', amount: '-5' }];
  assert.deepEqual(w.onEvent(swapEvent(0), snap), {
    tag: 'err',
    val: "amount has a sign ('-'); amounts are unsigned magnitudes",
  });
  snap.balances = [{ token: '0xaa', amount: '5' }];
  assert.equal(w.onEvent(swapEvent(0), snap).val[0].action.val.amountIn, '5');
});

test('on-event before init, and a default agent', () => {
  const w = exportAgent(Echo);
  assert.deepEqual(w.onEvent(newBlock(1n), snapshot(0)), { tag: 'err', val: 'on-event called before a successful init' });
  assert.deepEqual(w.restore(new Uint8Array()), { tag: 'err', val: 'restore called before a successful init' });
  assert.deepEqual(w.save(), new Uint8Array());
  const d = exportAgent(class extends BaseStrategyAgent {});
  assert.equal(d.init('{"any": [1, "x"]}').tag, 'ok');
  assert.match(d.onEvent(newBlock(1n), snapshot(0)).val, /does not override generateProposals/);
  assert.deepEqual(d.save(), new Uint8Array());
  assert.deepEqual(d.restore(new Uint8Array()), { tag: 'ok', val: undefined });
  assert.match(d.restore(new Uint8Array([1])).val, /keeps no state to restore; 1 saved bytes ignored/);
  assert.throws(() => exportAgent({}), TypeError);
});

test('save and restore; a failed restore keeps the initialised state', () => {
  const w = exportAgent(Echo);
  w.init(cfg('swap'));
  w.onEvent(newBlock(1n), snapshot(0));
  w.onEvent(newBlock(2n), snapshot(0));
  const state = w.save();
  assert.equal(new TextDecoder().decode(state), 'seen=2');
  w.init(cfg('swap'));
  assert.deepEqual(w.restore(state), { tag: 'ok', val: undefined });
  assert.equal(w.onEvent(newBlock(3n), snapshot(0)).val[0].reason, 'seen 3');
  w.init(cfg('swap'));
  assert.deepEqual(w.restore(new TextEncoder().encode('seen=500')), { tag: 'err', val: 'too many' });
  assert.equal(w.onEvent(newBlock(3n), snapshot(0)).val[0].reason, 'seen 1');
  // save has no error channel: it logs and hands over nothing.
  host.testing.reset();
  w.init(cfg('bad-save'));
  assert.deepEqual(w.save(), new Uint8Array());
  assert.match(host.testing.logs[0][1], /^save failed, handing over no state: TypeError/);
});

test('config reader: strict JSON, integers exact, floats refused', () => {
  assert.deepEqual(readConfig('{"a": 123456789012345678901234567890, "b": [true, null, "x"]}', null), {
    a: 123456789012345678901234567890n,
    b: [true, null, 'x'],
  });
  const bad = (text, message, schema = null) =>
    assert.throws(() => readConfig(text, schema, 't'), (e) => e instanceof ConfigError && e.message === `bad t config: ${message}`);
  bad('{"a": 1.5}', '$.a is the non-integer number 1.5; write amounts as strings of raw units and other numbers as integers');
  bad('{"a": 1, "a": 2}', 'duplicate field `a` at line 1 column 12');
  bad('{"a": 01}', 'invalid number at line 1 column 8');
  bad('[1] x', 'trailing characters at line 1 column 5');
  bad('{"a": "\u0001"}', 'control character (\\u0000-\\u001F) found while parsing a string at line 1 column 8');
  bad('{"a": tru}', 'expected ident at line 1 column 10');
  bad('5', 'invalid type: integer `5`, expected a JSON object', { a: 'u32' });
  bad('{"a": "5"}', 'invalid type: string "5", expected u32', { a: 'u32' });
  bad('{"a": true}', 'invalid type: boolean `true`, expected a string', { a: 'string' });
  bad('{"a": 1e3}', 'invalid type: floating point `1000.0`, expected i32', { a: 'i32' });
  bad('{"b": 1}', 'unknown field `b`, expected `a`', { a: 'i32' });
  bad('{"c": 1}', 'unknown field `c`, expected `a` or `b`', { a: 'i32', b: 'i32' });
  bad('[' .repeat(200), 'recursion limit exceeded at line 1 column 128');
  assert.deepEqual(readConfig('{"a": "\\ud83d\\ude00", "n": -0}', { a: 'string', n: 'i32' }), { a: '\u{1f600}', n: 0 });
  assert.throws(() => readConfig('{}', { a: 'float' }), TypeError);
});
