#!/usr/bin/env node
/**
 * Alignment check: computes Uniswap V3 math cases with the JS SDK and compares them with
 * expected results (the Rust SDK's), so a Rust test can hold every SDK to the same numbers.
 *
 * Input (stdin): a JSON list of cases
 *   {"fn": NAME, "args": [...], "expect": RESULT}   or   "expect": {"error": true}
 * Integers (arguments and results) are base-10 strings; a JSON integer is accepted for
 * the small `i32`/`u32` arguments. Booleans are JSON booleans. A pair or a swap step is a
 * list of strings. `{"error": true}` expects the function to fail (any MathError).
 *
 * Output (stdout): {"checked": N, "mismatches": [{"index", "fn", "args", "expect", "got"}]}
 * Exit status: 0 when every case matches, 1 on any mismatch, 2 on unreadable input.
 *
 * Functions, with the Rust names and argument order of guest-sdk/src/math/*.rs:
 *   get_sqrt_ratio_at_tick(tick: i32) -> u256
 *   get_tick_at_sqrt_ratio(sqrt_price_x96: u256) -> i32
 *   mul_div(a, b, denominator) -> u256
 *   mul_div_rounding_up(a, b, denominator) -> u256
 *   get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128, round_up: bool) -> u256
 *   get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128, round_up: bool) -> u256
 *   get_next_sqrt_price_from_input(sqrt_px96, liquidity: u128, amount_in, zero_for_one: bool) -> u256
 *   get_next_sqrt_price_from_output(sqrt_px96, liquidity: u128, amount_out, zero_for_one: bool) -> u256
 *   compute_swap_step(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity: u128,
 *                     amount_remaining, exact_in: bool, fee_pips: u32)
 *       -> [sqrt_ratio_next_x96, amount_in, amount_out, fee_amount]
 *   get_amounts_for_liquidity(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128) -> [amount0, amount1]
 *   amounts_for_mint(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128) -> [amount0, amount1]
 *   get_liquidity_for_amounts(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount0, amount1) -> u128
 * and the helpers behind them:
 *   get_liquidity_for_amount0(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount0) -> u128
 *   get_liquidity_for_amount1(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount1) -> u128
 *   get_amount0_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128) -> u256
 *   get_amount1_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity: u128) -> u256
 *   get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity: u128, amount, add: bool) -> u256
 *   get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity: u128, amount, add: bool) -> u256
 * Unlisted types are u256.
 */

import { readFileSync } from 'node:fs';

import * as m from '../stratbox/math/index.js';

const U = 'uint';
const I = 'small';
const B = 'bool';

/** name -> [JS function, argument kinds, result -> JSON] */
const FUNCTIONS = {
  get_sqrt_ratio_at_tick: [m.getSqrtRatioAtTick, [I], String],
  get_tick_at_sqrt_ratio: [m.getTickAtSqrtRatio, [U], String],
  mul_div: [m.mulDiv, [U, U, U], String],
  mul_div_rounding_up: [m.mulDivRoundingUp, [U, U, U], String],
  get_amount0_delta: [m.getAmount0Delta, [U, U, U, B], String],
  get_amount1_delta: [m.getAmount1Delta, [U, U, U, B], String],
  get_next_sqrt_price_from_input: [m.getNextSqrtPriceFromInput, [U, U, U, B], String],
  get_next_sqrt_price_from_output: [m.getNextSqrtPriceFromOutput, [U, U, U, B], String],
  compute_swap_step: [
    m.computeSwapStep,
    [U, U, U, U, B, I],
    (s) => [s.sqrtRatioNextX96, s.amountIn, s.amountOut, s.feeAmount].map(String),
  ],
  get_amounts_for_liquidity: [m.getAmountsForLiquidity, [U, U, U, U], (p) => p.map(String)],
  amounts_for_mint: [m.amountsForMint, [U, U, U, U], (p) => p.map(String)],
  get_liquidity_for_amounts: [m.getLiquidityForAmounts, [U, U, U, U, U], String],
  get_liquidity_for_amount0: [m.getLiquidityForAmount0, [U, U, U], String],
  get_liquidity_for_amount1: [m.getLiquidityForAmount1, [U, U, U], String],
  get_amount0_for_liquidity: [m.getAmount0ForLiquidity, [U, U, U], String],
  get_amount1_for_liquidity: [m.getAmount1ForLiquidity, [U, U, U], String],
  get_next_sqrt_price_from_amount0_rounding_up: [m.getNextSqrtPriceFromAmount0RoundingUp, [U, U, U, B], String],
  get_next_sqrt_price_from_amount1_rounding_down: [m.getNextSqrtPriceFromAmount1RoundingDown, [U, U, U, B], String],
};

/** Arguments as the SDK takes them; a malformed argument is an input error, not a result. */
function convert(arg, kind) {
  if (kind === B) {
    if (typeof arg !== 'boolean') throw new Error(`expected a boolean, got ${JSON.stringify(arg)}`);
    return arg;
  }
  const text = typeof arg === 'number' && kind === I && Number.isSafeInteger(arg) ? String(arg) : arg;
  if (typeof text !== 'string' || !/^-?(0|[1-9][0-9]*)$/.test(text)) {
    throw new Error(`expected an integer as a base-10 string, got ${JSON.stringify(arg)}`);
  }
  return kind === I ? Number(text) : BigInt(text);
}

function normalise(expect) {
  if (expect !== null && typeof expect === 'object' && !Array.isArray(expect)) return expect.error ? { error: true } : expect;
  if (Array.isArray(expect)) return expect.map((x) => String(x));
  return String(expect);
}

function runCase(c) {
  const entry = FUNCTIONS[c?.fn];
  if (!entry) return { error: `unknown fn ${JSON.stringify(c?.fn)}` };
  const [fn, kinds, out] = entry;
  if (!Array.isArray(c.args) || c.args.length !== kinds.length) {
    return { error: `${c.fn} takes ${kinds.length} arguments` };
  }
  const args = c.args.map((a, k) => convert(a, kinds[k]));
  try {
    return out(fn(...args));
  } catch (e) {
    return { error: true, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

function main() {
  let cases;
  try {
    cases = JSON.parse(readFileSync(0, 'utf8'));
    if (!Array.isArray(cases)) throw new Error('input must be a JSON list of cases');
  } catch (e) {
    process.stderr.write(`align: unreadable input: ${e.message}\n`);
    process.exit(2);
  }
  const mismatches = [];
  cases.forEach((c, index) => {
    let got;
    try {
      got = runCase(c);
    } catch (e) {
      got = { error: `bad case: ${e.message}` };
    }
    const expect = normalise(c?.expect);
    const matches =
      expect !== null && typeof expect === 'object' && !Array.isArray(expect)
        ? expect.error === true && got?.error === true
        : JSON.stringify(expect) === JSON.stringify(got);
    if (!matches) mismatches.push({ index, fn: c?.fn, args: c?.args, expect: c?.expect, got });
  });
  process.stdout.write(`${JSON.stringify({ checked: cases.length, mismatches })}\n`);
  process.exit(mismatches.length === 0 ? 0 : 1);
}

main();
