/**
 * `BaseStrategyAgent`, the class an author extends, and `exportAgent`, which turns it into
 * the world exports ComponentizeJS binds (`init`, `onEvent`, `save`, `restore` of
 * `stratbox:strategy/strategy@0.1.1`).
 *
 * Why the exports never throw: ComponentizeJS turns a thrown `Error` in an export into a
 * trap, and a trap kills the instance. Every failure of author code is caught here and
 * returned as the world's `err(string)`, which the host logs and survives, as it does for a
 * Rust strategy's `Err`. Proposals are vetted before they are returned for the same reason:
 * a value the bindings cannot lower would trap too.
 */

import { readConfig } from './config.js';
import { errorText } from './errors.js';
import * as host from './host.js';
import { checkProposal } from './proposal.js';
import { Event, Snapshot } from './types.js';

/** What an author extends: override `generateProposals`, and `save`/`restore` to keep state across versions. */
export class BaseStrategyAgent {
  /** Names the strategy in config errors: "bad NAME config: ...". */
  static configName = 'strategy';

  /** The config's fields (see `config.js`); `null` accepts any JSON (integers as bigint). */
  static configSchema = null;

  /**
   * Builds an instance from the operator's JSON. Override the constructor to validate the
   * parsed config: whatever it throws is the error `init` returns.
   */
  static fromConfig(text) {
    return new this(readConfig(text, this.configSchema, this.configName));
  }

  constructor(config) {
    this.config = config;
  }

  /**
   * Reacts to one event (an `Event`) with zero or more proposals (an array, usually from the
   * builders in `proposal.js`), given the `Snapshot` as of the watermark. Throw to report an
   * error: the host logs it and keeps the instance.
   */
  generateProposals(_event, _snapshot) {
    throw new Error(`${this.constructor.name} does not override generateProposals`);
  }

  /**
   * The state the next version needs, as bytes (a `Uint8Array`, or a string sent as UTF-8).
   * Version the format: the reader may be a newer release.
   */
  save() {
    return new Uint8Array(0);
  }

  /**
   * Takes over what an earlier version's `save` wrote. Called on a fresh instance after
   * `init` and before the first event; throwing leaves the instance as `init` made it.
   */
  restore(state) {
    if (state.length !== 0) {
      throw new Error(`${this.constructor.name} keeps no state to restore; ${state.length} saved bytes ignored`);
    }
  }
}

/**
 * Bytes as a `Uint8Array` of this realm. ComponentizeJS's bindings live in another global,
 * so a typed array they pass fails `instanceof Uint8Array` here: recognise views and
 * buffers by what they are, not by their constructor.
 */
function toBytes(state) {
  if (ArrayBuffer.isView(state)) return new Uint8Array(state.buffer, state.byteOffset, state.byteLength);
  if (Object.prototype.toString.call(state) === '[object ArrayBuffer]') return new Uint8Array(state);
  if (typeof state === 'string') return new TextEncoder().encode(state);
  throw new TypeError(`expected a Uint8Array or a string, got ${state === null ? 'null' : typeof state}`);
}

function isThenable(v) {
  return v !== null && typeof v === 'object' && typeof v.then === 'function';
}

function toWitProposals(out) {
  if (isThenable(out)) {
    throw new TypeError('generateProposals returned a Promise; strategies are synchronous (the host has nothing to await)');
  }
  if (!Array.isArray(out)) {
    throw new TypeError(`generateProposals must return an array of proposals, got ${out === null ? 'null' : typeof out}`);
  }
  return out.map((p, i) => {
    try {
      return checkProposal(p);
    } catch (e) {
      throw new TypeError(`proposal ${i}: ${e instanceof Error ? e.message : errorText(e)}`);
    }
  });
}

const ok = (val) => ({ tag: 'ok', val });
const err = (e) => ({ tag: 'err', val: errorText(e) });

/**
 * The world exports for `AgentClass`. Use as
 * `export const { init, onEvent, save, restore } = exportAgent(MyStrategy);`.
 *
 * `init` replaces the instance, so a host that re-initialises after a failure gets a fresh
 * one; a failed `init` leaves none, and `on-event` then says so rather than running a
 * half-configured instance.
 */
export function exportAgent(AgentClass) {
  if (typeof AgentClass !== 'function' || typeof AgentClass.fromConfig !== 'function') {
    throw new TypeError('exportAgent needs a class that extends BaseStrategyAgent');
  }
  let agent = null;
  let configText = null;

  const construct = (text) => {
    const a = AgentClass.fromConfig(text);
    if (a === null || typeof a !== 'object' || typeof a.generateProposals !== 'function') {
      throw new TypeError(`${AgentClass.name}.fromConfig must return an agent with generateProposals`);
    }
    return a;
  };

  return {
    init(config) {
      agent = null;
      configText = null;
      try {
        agent = construct(config);
        configText = config;
        return ok(undefined);
      } catch (e) {
        return err(e);
      }
    },

    onEvent(event, snapshot) {
      if (!agent) return err('on-event called before a successful init');
      try {
        return ok(toWitProposals(agent.generateProposals(new Event(event), new Snapshot(snapshot))));
      } catch (e) {
        return err(e);
      }
    },

    /** `save` has no error channel: a failure is logged and hands over no state. */
    save() {
      if (!agent) return new Uint8Array(0);
      try {
        const state = agent.save();
        if (isThenable(state)) throw new TypeError('save returned a Promise; strategies are synchronous');
        if (typeof state !== 'string' && !ArrayBuffer.isView(state)) {
          throw new TypeError(`save must return a Uint8Array or a string, got ${state === null ? 'null' : typeof state}`);
        }
        return toBytes(state);
      } catch (e) {
        try {
          host.error(`save failed, handing over no state: ${errorText(e)}`);
        } catch {
          // Logging is best effort; the empty state below is the answer either way.
        }
        return new Uint8Array(0);
      }
    },

    /**
     * Restores into a fresh instance built from the same config and swaps it in only on
     * success, so a `restore` that throws halfway cannot leave a half-restored instance.
     */
    restore(state) {
      if (!agent) return err('restore called before a successful init');
      try {
        const fresh = construct(configText);
        const r = fresh.restore(toBytes(state));
        if (isThenable(r)) throw new TypeError('restore returned a Promise; strategies are synchronous');
        agent = fresh;
        return ok(undefined);
      } catch (e) {
        return err(e);
      }
    },
  };
}
