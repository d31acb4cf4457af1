import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const ALIGN = fileURLToPath(new URL('./align.mjs', import.meta.url));

function align(cases) {
  const r = spawnSync(process.execPath, [ALIGN], { input: JSON.stringify(cases), encoding: 'utf8' });
  return { status: r.status, out: r.stdout ? JSON.parse(r.stdout) : null, stderr: r.stderr };
}

const Q96 = '79228162514264337593543950336';

test('align.mjs agrees on known values and errors', () => {
  const r = align([
    { fn: 'get_sqrt_ratio_at_tick', args: ['0'], expect: Q96 },
    { fn: 'get_sqrt_ratio_at_tick', args: [-887272], expect: '4295128739' },
    { fn: 'get_sqrt_ratio_at_tick', args: ['887273'], expect: { error: true } },
    { fn: 'get_tick_at_sqrt_ratio', args: ['79228162514264337593543950335'], expect: '-1' },
    { fn: 'mul_div', args: ['6', '7', '4'], expect: '10' },
    { fn: 'mul_div_rounding_up', args: ['6', '7', '4'], expect: '11' },
    { fn: 'mul_div', args: ['1', '1', '0'], expect: { error: true } },
    { fn: 'get_amount0_delta', args: [Q96, '87150978765690771352898345369', '1000000000000000000', true], expect: '90909090909090910' },
    { fn: 'get_amount1_delta', args: [Q96, '87150978765690771352898345369', '1000000000000000000', false], expect: '99999999999999999' },
    { fn: 'get_next_sqrt_price_from_input', args: [Q96, '1000000000000000000', '100000000000000000', false], expect: '87150978765690771352898345369' },
    { fn: 'get_next_sqrt_price_from_output', args: [Q96, '1000000000000000000', '100000000000000000', true], expect: '71305346262837903834189555302' },
    {
      fn: 'compute_swap_step',
      args: [Q96, '79623317895830914510639640423', '2000000000000000000', '1000000000000000000', true, '600'],
      expect: ['79623317895830914510639640423', '9975124224178055', '9925619580021728', '5988667735148'],
    },
    { fn: 'compute_swap_step', args: [Q96, '1', '1', '1', true, 1000000], expect: { error: true } },
    { fn: 'get_amounts_for_liquidity', args: [Q96, '75541088972021055232360200088', '83095197869223157896060286990', '2148'], expect: ['99', '99'] },
    { fn: 'amounts_for_mint', args: [Q96, '75541088972021055232360200088', '83095197869223157896060286990', '2148'], expect: ['100', '100'] },
    { fn: 'get_liquidity_for_amounts', args: [Q96, '75541088972021055232360200088', '83095197869223157896060286990', '100', '200'], expect: '2148' },
  ]);
  assert.equal(r.status, 0, JSON.stringify(r.out));
  assert.deepEqual(r.out, { checked: 16, mismatches: [] });
});

test('align.mjs reports mismatches and exits 1', () => {
  const r = align([
    { fn: 'mul_div', args: ['6', '7', '4'], expect: '11' },
    { fn: 'mul_div', args: ['6', '7', '4'], expect: { error: true } },
    { fn: 'no_such_fn', args: [], expect: '0' },
    { fn: 'mul_div', args: ['6', '7', '0'], expect: '0' },
    { fn: 'mul_div', args: [6.5, '7', '1'], expect: '45' },
  ]);
  assert.equal(r.status, 1);
  assert.equal(r.out.checked, 5);
  assert.deepEqual(r.out.mismatches.map((x) => x.index), [0, 1, 2, 3, 4]);
  assert.equal(r.out.mismatches[0].got, '10');
});

test('align.mjs refuses unreadable input', () => {
  const r = spawnSync(process.execPath, [ALIGN], { input: 'not json', encoding: 'utf8' });
  assert.equal(r.status, 2);
});
