/**
 * clamm-maker, in JavaScript: holds one concentrated-liquidity position around the current
 * price and moves it when the price walks away. The same strategy as the Rust
 * `strategies/clamm-maker`, and on the same events it proposes the same bytes: same ranges,
 * amount strings, reasons and error messages.
 *
 * Config (JSON):
 * `{"pool": "0x...", "half_width_ticks": 600, "margin_ticks": 120,
 *   "liquidity": "1000000000000000000", "max_slippage_bps": 50}`
 *
 * On each swap in its pool, and on each new block, it reads the pool from the snapshot:
 * - no position yet: propose adding `liquidity` on a range centred on the current tick,
 *   aligned to the pool's tick spacing;
 * - price more than `margin_ticks` outside the range: propose removing the old range and
 *   adding a new one centred on the current tick.
 *
 * Expected amounts come from the SDK's exact math: what the pool charges for the mint
 * (rounded up) and what `getAmountsForLiquidity` says the burn returns (rounded down).
 *
 * The only state is the range it believes it holds; unlike the Rust one it also hands that
 * range to its next version in a hot swap (`save`/`restore`).
 */

import {
  addLiquidity,
  BaseStrategyAgent,
  EventTag,
  exportAgent,
  math,
  MAX_TICK,
  MAX_U128,
  MIN_TICK,
  removeLiquidity,
  sameAddress,
} from '../../../guest-sdk/js/stratbox/index.js';

/** The `save` format's version; `restore` refuses any other. */
const STATE_VERSION = 1;

export class ClammMaker extends BaseStrategyAgent {
  static configName = 'clamm-maker';
  static configSchema = {
    pool: 'string',
    half_width_ticks: 'i32',
    margin_ticks: 'i32',
    liquidity: 'amount',
    max_slippage_bps: 'u32',
  };

  constructor(config) {
    super(config);
    if (config.half_width_ticks <= 0 || config.half_width_ticks > MAX_TICK) {
      throw new Error(`half_width_ticks must be in 1..=${MAX_TICK}, got ${config.half_width_ticks}`);
    }
    if (config.margin_ticks < 0) {
      throw new Error(`margin_ticks must not be negative, got ${config.margin_ticks}`);
    }
    if (config.max_slippage_bps > 10_000) {
      throw new Error(`max_slippage_bps must be <= 10000, got ${config.max_slippage_bps}`);
    }
    if (config.liquidity > MAX_U128) throw new Error('liquidity must fit in uint128');
    if (config.liquidity === 0n) throw new Error('liquidity must be positive');
    /** The range `{lower, upper}` it believes it holds (it assumes its proposals are executed). */
    this.position = null;
  }

  generateProposals(event, snapshot) {
    const relevant =
      event.tag === EventTag.NEW_BLOCK || (event.tag === EventTag.SWAP && sameAddress(event.val.pool, this.config.pool));
    if (!relevant) return [];
    const pool = snapshot.pool(this.config.pool);
    if (pool === undefined) return [];
    const held = this.position;
    if (held === null) {
      const range = centredRange(pool.tick, pool.tickSpacing, this.config.half_width_ticks);
      const add = this.#add(pool, range);
      this.position = range;
      return [add];
    }
    if (outside(pool.tick, held, this.config.margin_ticks)) {
      const range = centredRange(pool.tick, pool.tickSpacing, this.config.half_width_ticks);
      const remove = this.#remove(pool, held);
      const add = this.#add(pool, range);
      this.position = range;
      return [remove, add];
    }
    return [];
  }

  #add(pool, range) {
    const [a, b] = rangePrices(range);
    const [amount0, amount1] = math.amountsForMint(pool.sqrtPrice(), a, b, this.config.liquidity);
    return addLiquidity(this.config.pool, range.lower, range.upper, this.config.liquidity)
      .expect(amount0, amount1)
      .maxSlippageBps(this.config.max_slippage_bps)
      .reason(`centre liquidity on tick ${pool.tick}`)
      .build();
  }

  #remove(pool, range) {
    const [a, b] = rangePrices(range);
    const [amount0, amount1] = math.getAmountsForLiquidity(pool.sqrtPrice(), a, b, this.config.liquidity);
    return removeLiquidity(this.config.pool, range.lower, range.upper, this.config.liquidity)
      .expect(amount0, amount1)
      .maxSlippageBps(this.config.max_slippage_bps)
      .reason(`tick ${pool.tick} left [${range.lower}, ${range.upper}) by more than ${this.config.margin_ticks}`)
      .build();
  }

  save() {
    return JSON.stringify({ v: STATE_VERSION, position: this.position && [this.position.lower, this.position.upper] });
  }

  restore(state) {
    let saved;
    try {
      saved = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw new Error('clamm-maker state is not the UTF-8 JSON its save writes');
    }
    if (saved?.v !== STATE_VERSION) throw new Error(`clamm-maker cannot restore state version ${saved?.v}`);
    if (saved.position === null) return;
    const [lower, upper] = saved.position;
    if (!Number.isInteger(lower) || !Number.isInteger(upper) || lower >= upper || lower < MIN_TICK || upper > MAX_TICK) {
      throw new Error(`clamm-maker saved an invalid range ${JSON.stringify(saved.position)}`);
    }
    this.position = { lower, upper };
  }
}

function rangePrices(range) {
  return [math.getSqrtRatioAtTick(range.lower), math.getSqrtRatioAtTick(range.upper)];
}

/**
 * True once `tick` is more than `margin` ticks below the range or at/above its upper edge by
 * more than `margin` (the range is half-open, so `upper` itself is already outside).
 */
export function outside(tick, range, margin) {
  return tick < range.lower - margin || tick >= range.upper + margin;
}

/**
 * A range of about `2 * halfWidth` ticks centred on `tick`, on tick-spacing multiples,
 * clamped to the ticks the pool can use. In bigint, as the Rust one is in i64: tick and
 * spacing come from the host's snapshot, and no value of them may make this misbehave.
 */
export function centredRange(tick, spacing, halfWidth) {
  if (spacing <= 0) throw new Error(`pool tick spacing ${spacing} is not positive`);
  const s = BigInt(spacing);
  const t = BigInt(Math.min(Math.max(tick, MIN_TICK), MAX_TICK));
  // div_euclid by a positive divisor: floor division.
  const floorDiv = t >= 0n ? t / s : -((-t + s - 1n) / s);
  const centre = floorDiv * s;
  const half = ((BigInt(Math.max(halfWidth, 1)) + s - 1n) / s) * s;
  // `TickMath.MIN_TICK / spacing * spacing`: Solidity divides toward zero, as BigInt does.
  const minUsable = (BigInt(MIN_TICK) / s) * s;
  const maxUsable = (BigInt(MAX_TICK) / s) * s;
  const lower = centre - half > minUsable ? centre - half : minUsable;
  const upper = centre + half < maxUsable ? centre + half : maxUsable;
  if (lower >= upper) throw new Error(`no usable range around tick ${tick} with spacing ${spacing}`);
  return { lower: Number(lower), upper: Number(upper) };
}

export const { init, onEvent, save, restore } = exportAgent(ClammMaker);
