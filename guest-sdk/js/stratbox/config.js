/**
 * Reading an instance's JSON config into typed values, with serde's rules and wording.
 *
 * A schema maps each field name to its type; a trailing `?` makes it optional (absent or
 * `null` reads as `undefined`):
 *
 *   'string' | 'bool'          a JSON string / boolean
 *   'i32' | 'u32'              a whole JSON number, as a JS number (ticks, bps, fees)
 *   'i64' | 'u64'              a whole JSON number, as a bigint (block numbers)
 *   'amount'                   a wire-form amount *string*, as a bigint; a JSON number is
 *                              refused, since a JSON reader anywhere may have rounded it
 *   'json'                     any JSON, integers as bigint, floats refused
 *
 * Unknown, duplicate and missing fields are refused, as `#[serde(deny_unknown_fields)]`
 * does; messages match the Rust strategies' (less serde_json's position on type errors).
 */

import { parseAmount } from './amount.js';
import { errorText, StratboxError } from './errors.js';
import { describeNode, JsonSyntaxError, nodeToValue, parseJsonNodes } from './json.js';
import { MAX_I32, MAX_U32, MAX_U64, MIN_I32 } from './ints.js';

/** A config the strategy refuses; the message is what `init` returns to the host. */
export class ConfigError extends StratboxError {}

const RANGES = {
  i32: [BigInt(MIN_I32), BigInt(MAX_I32)],
  u32: [0n, BigInt(MAX_U32)],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
  u64: [0n, MAX_U64],
};

const TYPES = { string: 1, bool: 1, i32: 1, u32: 1, i64: 1, u64: 1, amount: 1, json: 1 };

const EXPECTING = {
  string: 'a string',
  bool: 'a boolean',
  amount: 'a base-10 string of raw units',
  json: 'any JSON value',
};

function invalidType(node, type) {
  return `invalid type: ${describeNode(node)}, expected ${EXPECTING[type] ?? type}`;
}

function readField(node, type) {
  if (type in RANGES) {
    if (node.t !== 'int') throw invalidType(node, type);
    const [lo, hi] = RANGES[type];
    if (node.v < lo || node.v > hi) throw `invalid value: integer \`${node.v}\`, expected ${type}`;
    return type === 'i32' || type === 'u32' ? Number(node.v) : node.v;
  }
  switch (type) {
    case 'string':
    case 'bool':
      if (node.t !== type) throw invalidType(node, type);
      return node.v;
    case 'amount':
      if (node.t !== 'string') throw invalidType(node, type);
      return parseAmount(node.v);
    default: // 'json'
      return nodeToValue(node);
  }
}

function oneOf(names) {
  const q = names.map((n) => `\`${n}\``);
  if (q.length === 0) return 'there are no fields';
  if (q.length === 1) return `expected ${q[0]}`;
  if (q.length === 2) return `expected ${q[0]} or ${q[1]}`;
  return `expected one of ${q.join(', ')}`;
}

/**
 * The config `text` read against `schema`; with no schema, the whole JSON value (integers as
 * bigint). Throws `ConfigError("bad NAME config: ...")` on anything serde would refuse.
 */
export function readConfig(text, schema, name = 'strategy') {
  if (schema) {
    for (const [key, spec] of Object.entries(schema)) {
      if (typeof spec !== 'string' || !(spec.replace(/\?$/, '') in TYPES)) {
        throw new TypeError(`config schema: field ${key} has unknown type ${JSON.stringify(spec)}`);
      }
    }
  }
  const bad = (reason) => new ConfigError('BadConfig', `bad ${name} config: ${reason}`);
  if (typeof text !== 'string') throw bad('the config must be a JSON string');
  let root;
  try {
    root = parseJsonNodes(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw bad(e.message);
    throw e;
  }
  try {
    if (!schema) return nodeToValue(root);
    if (root.t !== 'object') throw invalidType(root, 'a JSON object');
    const fields = Object.entries(schema).map(([key, spec]) => [key, spec.replace(/\?$/, ''), spec.endsWith('?')]);
    const byName = new Map(fields.map((f) => [f[0], f]));
    const out = {};
    for (const [key, node] of root.v) {
      const field = byName.get(key);
      if (!field) throw `unknown field \`${key}\`, ${oneOf(fields.map((f) => f[0]))}`;
      const [, type, optional] = field;
      out[key] = optional && node.t === 'null' ? undefined : readField(node, type);
    }
    for (const [key, , optional] of fields) {
      if (!root.v.has(key)) {
        if (!optional) throw `missing field \`${key}\``;
        out[key] = undefined;
      }
    }
    return out;
  } catch (e) {
    throw bad(typeof e === 'string' ? e : errorText(e));
  }
}
