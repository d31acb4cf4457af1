/**
 * Builders for proposals, taking bigint amounts so an author never formats a wire string by
 * hand (and so never writes "1.5" or "1e18" into one), and `checkProposal`, which vets a
 * proposal however it was made before it crosses the WIT boundary.
 */

import { asAmount, MAX_BPS, parseAmount, toWire } from './amount.js';
import { errorText, StratboxError } from './errors.js';
import { requireBool, requireI32, requireU32 } from './ints.js';

/** The host refuses anything above 100%. */
export const MAX_SLIPPAGE_BPS = MAX_BPS;

/** Why a builder refused to build; `kind` is the Rust `ProposalError` variant. */
export class ProposalError extends StratboxError {}

function requireString(v, what) {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}

/** A proposal under construction; start from `swap`, `addLiquidity` or `removeLiquidity`. */
export class ProposalBuilder {
  #tag;
  #val;
  #expected0 = 0n;
  #expected1 = 0n;
  #bps = 0;
  #reason = '';

  constructor(tag, val) {
    this.#tag = tag;
    this.#val = val;
  }

  /**
   * Magnitudes of token0 and token1 the strategy expects to move (see the WIT `proposal`
   * record for which direction each one goes).
   */
  expect(amount0, amount1) {
    this.#expected0 = asAmount(amount0, 'expected amount0');
    this.#expected1 = asAmount(amount1, 'expected amount1');
    return this;
  }

  /** How far the simulated outcome may fall short of the expectation, in basis points. */
  maxSlippageBps(bps) {
    this.#bps = requireU32(bps, 'max slippage bps');
    return this;
  }

  /** A price limit for a swap (Q64.96); ignored for liquidity actions, as in the Rust SDK. */
  sqrtPriceLimit(limitX96) {
    const limit = toWire(asAmount(limitX96, 'sqrt price limit'));
    if (this.#tag === 'swap') this.#val = { ...this.#val, sqrtPriceLimitX96: limit };
    return this;
  }

  /** Why the strategy wants this; shown to the operator who approves it. */
  reason(text) {
    this.#reason = requireString(text, 'reason');
    return this;
  }

  /** Checks what the host would refuse anyway, so the author hears about it first. */
  build() {
    if (this.#bps > MAX_SLIPPAGE_BPS) {
      throw new ProposalError('SlippageOutOfRange', `max slippage ${this.#bps} bps exceeds ${MAX_SLIPPAGE_BPS}`, this.#bps);
    }
    const v = this.#val;
    if (this.#tag === 'swap') {
      if (v.amountIn === '0') throw new ProposalError('ZeroAmount', 'a swap proposal needs a non-zero amount', 'swap');
    } else {
      if (v.tickLower >= v.tickUpper) {
        throw new ProposalError('EmptyRange', `tick range [${v.tickLower}, ${v.tickUpper}) is empty or inverted`, {
          lower: v.tickLower,
          upper: v.tickUpper,
        });
      }
      if (v.liquidity === '0') {
        throw new ProposalError('ZeroAmount', 'a liquidity proposal needs a non-zero amount', 'liquidity');
      }
    }
    return Object.freeze({
      action: Object.freeze({ tag: this.#tag, val: Object.freeze({ ...v }) }),
      expectedAmount0: toWire(this.#expected0),
      expectedAmount1: toWire(this.#expected1),
      maxSlippageBps: this.#bps,
      reason: this.#reason,
    });
  }
}

/** Swap `amountIn` of token0 (`zeroForOne`) or token1 on `pool`. */
export function swap(pool, zeroForOne, amountIn) {
  return new ProposalBuilder('swap', {
    pool: requireString(pool, 'pool'),
    zeroForOne: requireBool(zeroForOne, 'zeroForOne'),
    amountIn: toWire(asAmount(amountIn, 'amountIn')),
    sqrtPriceLimitX96: undefined,
  });
}

function range(pool, tickLower, tickUpper, liquidity) {
  return {
    pool: requireString(pool, 'pool'),
    tickLower: requireI32(tickLower, 'tickLower'),
    tickUpper: requireI32(tickUpper, 'tickUpper'),
    liquidity: toWire(asAmount(liquidity, 'liquidity')),
  };
}

/** Add `liquidity` on `[tickLower, tickUpper)` of `pool`. */
export function addLiquidity(pool, tickLower, tickUpper, liquidity) {
  return new ProposalBuilder('add-liquidity', range(pool, tickLower, tickUpper, liquidity));
}

/** Remove `liquidity` from `[tickLower, tickUpper)` of `pool`. */
export function removeLiquidity(pool, tickLower, tickUpper, liquidity) {
  return new ProposalBuilder('remove-liquidity', range(pool, tickLower, tickUpper, liquidity));
}

function field(obj, key, check) {
  if (obj === null || typeof obj !== 'object') throw new TypeError(`expected a record, got ${obj === null ? 'null' : typeof obj}`);
  return check(obj[key], key);
}

function amountField(v, key) {
  try {
    parseAmount(v);
  } catch (e) {
    throw new TypeError(`${key}: ${errorText(e)}`);
  }
  return v;
}

/**
 * The WIT-shaped copy of a proposal, or a `TypeError` naming the bad field.
 *
 * Why: a value the generated bindings cannot lower (a number where a string belongs, an
 * unknown variant tag) would trap the whole instance; checked here it becomes the
 * `on-event` error string instead. Amounts must be canonical wire strings, since the host
 * refuses anything else.
 */
export function checkProposal(p) {
  const action = field(p, 'action', (a) => a);
  const tag = field(action, 'tag', (t) => t);
  const val = field(action, 'val', (v) => v);
  let out;
  if (tag === 'swap') {
    const limit = field(val, 'sqrtPriceLimitX96', (v, k) => (v === undefined || v === null ? undefined : amountField(v, k)));
    out = {
      pool: field(val, 'pool', requireString),
      zeroForOne: field(val, 'zeroForOne', requireBool),
      amountIn: field(val, 'amountIn', amountField),
      sqrtPriceLimitX96: limit,
    };
  } else if (tag === 'add-liquidity' || tag === 'remove-liquidity') {
    out = {
      pool: field(val, 'pool', requireString),
      tickLower: field(val, 'tickLower', requireI32),
      tickUpper: field(val, 'tickUpper', requireI32),
      liquidity: field(val, 'liquidity', amountField),
    };
  } else {
    throw new TypeError(`action tag must be 'swap', 'add-liquidity' or 'remove-liquidity', got ${JSON.stringify(String(tag))}`);
  }
  return {
    action: { tag, val: out },
    expectedAmount0: field(p, 'expectedAmount0', amountField),
    expectedAmount1: field(p, 'expectedAmount1', amountField),
    maxSlippageBps: field(p, 'maxSlippageBps', requireU32),
    reason: field(p, 'reason', requireString),
  };
}
