/**
 * The WIT records an author reads on every call, wrapped with the read helpers of the Rust
 * SDK's `types.rs`.
 *
 * Amount fields stay the wire strings the host sent and are parsed only when read
 * (`pool.sqrtPrice()`, `snapshot.balance()`): a strategy then fails on exactly the values it
 * uses, the same ones a Rust strategy would fail on, never on an unrelated field.
 */

import { amountOverflow, parseAmount } from './amount.js';
import { MAX_U128 } from './ints.js';

/** Event variant tags, as the WIT spells them. */
export const EventTag = Object.freeze({
  NEW_BLOCK: 'new-block',
  SWAP: 'swap',
  MINT: 'mint',
  BURN: 'burn',
  ORACLE_PRICE: 'oracle-price',
});

const ASCII_UPPER = /[A-Z]/g;
const asciiLower = (s) => s.replace(ASCII_UPPER, (c) => c.toLowerCase());

/**
 * Addresses arrive in any hex case; comparing them as strings would make a strategy silently
 * ignore its own pool. ASCII-only, as Rust's `eq_ignore_ascii_case`.
 */
export function sameAddress(a, b) {
  return typeof a === 'string' && typeof b === 'string' && a.length === b.length && asciiLower(a) === asciiLower(b);
}

/** One event: the WIT variant `{ tag, val }` plus the questions every strategy asks of it. */
export class Event {
  constructor(wit) {
    this.tag = wit.tag;
    this.val = wit.val;
  }

  /** Where the event sits in the chain; `undefined` for a new-block event, which has no log. */
  origin() {
    return this.tag === EventTag.NEW_BLOCK ? undefined : this.val.origin;
  }

  /** The block the event belongs to (a bigint, as every u64). */
  block() {
    return this.tag === EventTag.NEW_BLOCK ? this.val.number : (this.origin()?.block ?? 0n);
  }

  /** The pool a pool event concerns; `undefined` for new-block and oracle events. */
  pool() {
    return this.tag === EventTag.SWAP || this.tag === EventTag.MINT || this.tag === EventTag.BURN
      ? this.val.pool
      : undefined;
  }
}

/** One pool's state at the watermark: the WIT `pool-state` fields plus parsed readers. */
export class PoolState {
  constructor(wit) {
    Object.assign(this, wit);
  }

  /** The pool's Q64.96 square-root price, parsed. */
  sqrtPrice() {
    return parseAmount(this.sqrtPriceX96);
  }

  /** In-range liquidity, parsed; the pool stores it as `uint128`. */
  liquidityU128() {
    const v = parseAmount(this.liquidity);
    if (v > MAX_U128) throw amountOverflow(128);
    return v;
  }
}

/** What a strategy may know when it is called: the WIT `snapshot` plus lookups. */
export class Snapshot {
  constructor(wit) {
    this.lastSyncBlock = wit.lastSyncBlock;
    this.timestamp = wit.timestamp;
    this.pools = wit.pools.map((p) => new PoolState(p));
    this.balances = wit.balances;
  }

  /** The state of `pool` at the watermark, if the host included it. */
  pool(pool) {
    return this.pools.find((p) => sameAddress(p.pool, pool));
  }

  /** This instance's balance of `token`; a token the host did not list counts as zero. */
  balance(token) {
    const b = this.balances.find((x) => sameAddress(x.token, token));
    return b === undefined ? 0n : parseAmount(b.amount);
  }
}
