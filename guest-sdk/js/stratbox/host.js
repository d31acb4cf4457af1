/**
 * What the host gives a strategy: `log` and `history` (interface `stratbox:strategy/host`).
 *
 * The SDK does not import the WIT interface itself: under plain Node that import cannot
 * resolve, and the SDK must stay testable there. The build's entry module imports it and
 * hands it to `installHost`; until then (in tests) a recording double stands in, like the
 * Rust SDK's `host::testing`.
 */

import { requireU32, requireU64 } from './ints.js';
import { Event } from './types.js';

/** The WIT `level` enum. */
export const LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error']);

/** The stand-in used when no host is installed: what was logged, and history to serve. */
export const testing = {
  /** `[level, message]` pairs, oldest first. */
  logs: [],
  /** `(pool, fromBlock, limit) => list of WIT events`; none by default. */
  history: () => [],
  reset() {
    this.logs = [];
    this.history = () => [];
  },
};

let bound = null;

/** Binds the real host imports (`{ log, history }` of `stratbox:strategy/host@0.1.0`). */
export function installHost(host) {
  if (typeof host?.log !== 'function' || typeof host?.history !== 'function') {
    throw new TypeError('installHost needs the host interface: an object with log and history functions');
  }
  bound = host;
}

/** Writes to the host's log, tagged by the host with the strategy, instance and trace id. */
export function log(level, message) {
  if (!LEVELS.includes(level)) throw new RangeError(`log level must be one of ${LEVELS.join(', ')}, got ${String(level)}`);
  const text = String(message);
  if (bound) bound.log(level, text);
  else testing.logs.push([level, text]);
}

export const trace = (message) => log('trace', message);
export const debug = (message) => log('debug', message);
export const info = (message) => log('info', message);
export const warn = (message) => log('warn', message);
export const error = (message) => log('error', message);

/**
 * Past events of `pool` from `fromBlock` (a bigint) on, oldest first, at most `limit` of
 * them; never one after the current watermark.
 */
export function history(pool, fromBlock, limit) {
  if (typeof pool !== 'string') throw new TypeError('history: pool must be an address string');
  requireU64(fromBlock, 'fromBlock');
  requireU32(limit, 'limit');
  const events = bound ? bound.history(pool, fromBlock, limit) : testing.history(pool, fromBlock, limit);
  return events.map((e) => new Event(e));
}
