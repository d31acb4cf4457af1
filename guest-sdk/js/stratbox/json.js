/**
 * A strict JSON reader that keeps every number's source text.
 *
 * Why not `JSON.parse`: it turns `"liquidity": 1000000000000000000000` into a float that has
 * already lost digits, reads `600.0` as `600`, and keeps the last of two duplicate keys
 * without a word. Configs carry amounts and ticks, so this reader hands back numbers as text
 * (integers as `bigint` on request), refuses duplicate keys, and reports syntax errors with
 * serde_json's wording and position, as the Rust strategies' config errors have.
 *
 * Nodes: `{ t: 'null' | 'bool' | 'int' | 'float' | 'string' | 'array' | 'object', v, text }`;
 * an object's `v` is a `Map` in source order.
 */

/** serde_json's nesting limit: the 128th open bracket is refused. */
const MAX_DEPTH = 128;

export class JsonSyntaxError extends Error {
  constructor(message) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** Parses `text` into nodes; throws `JsonSyntaxError` ("... at line L column C"). */
export function parseJsonNodes(text) {
  let i = 0;
  let depth = 0;

  // `at` counts the characters serde_json has consumed when it fails: a peeked offending
  // character counts, so callers pass its index + 1.
  const fail = (msg, at = i) => {
    const lineStart = text.lastIndexOf('\n', at - 1) + 1;
    let line = 1;
    for (let k = 0; k < lineStart; k++) if (text[k] === '\n') line += 1;
    throw new JsonSyntaxError(`${msg} at line ${line} column ${at - lineStart}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const literal = (word, node) => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return node;
    }
    for (let k = 0; k < word.length; k++) {
      if (i + k >= text.length) fail('EOF while parsing a value', text.length);
      if (text[i + k] !== word[k]) fail('expected ident', i + k + 1);
    }
    return node;
  };

  const number = () => {
    const start = i;
    if (text[i] === '-') i++;
    if (text[i] === '0') {
      i++;
      if (text[i] >= '0' && text[i] <= '9') fail('invalid number', i + 1);
    } else if (text[i] >= '1' && text[i] <= '9') {
      while (text[i] >= '0' && text[i] <= '9') i++;
    } else {
      fail('invalid number', i + 1);
    }
    let float = false;
    if (text[i] === '.') {
      float = true;
      i++;
      if (!(text[i] >= '0' && text[i] <= '9')) fail('invalid number');
      while (text[i] >= '0' && text[i] <= '9') i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      float = true;
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!(text[i] >= '0' && text[i] <= '9')) fail('invalid number');
      while (text[i] >= '0' && text[i] <= '9') i++;
    }
    const src = text.slice(start, i);
    return float ? { t: 'float', text: src } : { t: 'int', v: BigInt(src), text: src };
  };

  const string = () => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('EOF while parsing a string', text.length);
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c < ' ') fail('control character (\\u0000-\\u001F) found while parsing a string', i + 1);
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = text[i + 1];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) {
        out += simple[e];
        i += 2;
        continue;
      }
      if (e !== 'u') fail('invalid escape', i + 2);
      const hex = (at) => {
        const h = text.slice(at, at + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid escape', at + 1);
        return parseInt(h, 16);
      };
      let cp = hex(i + 2);
      i += 6;
      if (cp >= 0xdc00 && cp <= 0xdfff) fail('lone leading surrogate in hex escape');
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (text[i] !== '\\' || text[i + 1] !== 'u') fail('unexpected end of hex escape');
        const lo = hex(i + 2);
        if (lo < 0xdc00 || lo > 0xdfff) fail('lone leading surrogate in hex escape');
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      }
      out += String.fromCodePoint(cp);
    }
  };

  const value = () => {
    ws();
    if (i >= text.length) fail('EOF while parsing a value', text.length);
    const c = text[i];
    if (c === '{' || c === '[') {
      if (++depth >= MAX_DEPTH) fail('recursion limit exceeded', i + 1);
      const node = c === '{' ? object() : array();
      depth--;
      return node;
    }
    if (c === '"') return { t: 'string', v: string() };
    if (c === 't') return literal('true', { t: 'bool', v: true });
    if (c === 'f') return literal('false', { t: 'bool', v: false });
    if (c === 'n') return literal('null', { t: 'null' });
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    fail('expected value', i + 1);
  };

  const array = () => {
    i++;
    const items = [];
    ws();
    if (text[i] === ']') {
      i++;
      return { t: 'array', v: items };
    }
    for (;;) {
      items.push(value());
      ws();
      if (i >= text.length) fail('EOF while parsing a list', text.length);
      if (text[i] === ']') {
        i++;
        return { t: 'array', v: items };
      }
      if (text[i] !== ',') fail('expected `,` or `]`', i + 1);
      i++;
      ws();
      if (text[i] === ']') fail('trailing comma', i + 1);
    }
  };

  const object = () => {
    i++;
    const entries = new Map();
    ws();
    if (text[i] === '}') {
      i++;
      return { t: 'object', v: entries };
    }
    for (;;) {
      ws();
      if (i >= text.length) fail('EOF while parsing an object', text.length);
      if (text[i] !== '"') fail(text[i] === '}' ? 'trailing comma' : 'key must be a string', i + 1);
      const key = string();
      if (entries.has(key)) fail(`duplicate field \`${key}\``);
      ws();
      if (i >= text.length) fail('EOF while parsing an object', text.length);
      if (text[i] !== ':') fail('expected `:`', i + 1);
      i++;
      entries.set(key, value());
      ws();
      if (i >= text.length) fail('EOF while parsing an object', text.length);
      if (text[i] === '}') {
        i++;
        return { t: 'object', v: entries };
      }
      if (text[i] !== ',') fail('expected `,` or `}`', i + 1);
      i++;
    }
  };

  const root = value();
  ws();
  if (i < text.length) fail('trailing characters', i + 1);
  return root;
}

/** serde's description of a value it did not expect ("integer `5`", "map", ...). */
export function describeNode(node) {
  switch (node.t) {
    case 'null':
      return 'null';
    case 'bool':
      return `boolean \`${node.v}\``;
    case 'int':
      return `integer \`${node.v}\``;
    case 'float': {
      const shown = String(Number(node.text));
      return `floating point \`${/[.e]/.test(shown) ? shown : shown + '.0'}\``;
    }
    case 'string':
      return `string ${JSON.stringify(node.v)}`;
    case 'array':
      return 'sequence';
    default:
      return 'map';
  }
}

/**
 * Plain JS values from nodes: integers as `bigint`, objects as plain objects. A number with
 * a fraction or an exponent is refused: nothing in a strategy's config may be a float.
 */
export function nodeToValue(node, path = '$') {
  switch (node.t) {
    case 'null':
      return null;
    case 'bool':
    case 'int':
    case 'string':
      return node.v;
    case 'float':
      throw new Error(
        `${path} is the non-integer number ${node.text}; write amounts as strings of raw units and other numbers as integers`,
      );
    case 'array':
      return node.v.map((n, k) => nodeToValue(n, `${path}[${k}]`));
    default:
      return Object.fromEntries([...node.v].map(([k, n]) => [k, nodeToValue(n, `${path}.${k}`)]));
  }
}
