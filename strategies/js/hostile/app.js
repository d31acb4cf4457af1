// A JavaScript strategy that misbehaves on purpose, one way per `{"mode": ...}`.
//
// Written against the world's exports directly rather than the SDK: it tests the host's
// limits on an engine-sized guest (fuel, deadline, memory, output caps), so it must do the
// harm itself, not through code that might guard against it.
//
// Modes: `loop` (spins in onEvent), `alloc` (grows memory until refused), `throw-init`
// (an Error escapes init: ComponentizeJS traps), `err-init` (init returns the world's
// error), `throw` (an Error escapes onEvent), `flood` (ten thousand proposals, far past the cap),
// `giant-string` (a proposal whose reason is 1 MiB), `well-behaved`.

const MODES = [
  'loop',
  'alloc',
  'throw-init',
  'err-init',
  'throw',
  'flood',
  'giant-string',
  'well-behaved',
];

let mode = null;

function proposal(reason) {
  return {
    action: {
      tag: 'swap',
      val: {
        pool: '0x0000000000000000000000000000000000000001',
        zeroForOne: true,
        amountIn: '1',
        sqrtPriceLimitX96: undefined,
      },
    },
    expectedAmount0: '0',
    expectedAmount1: '0',
    maxSlippageBps: 0,
    reason,
  };
}

export function init(config) {
  const wanted = JSON.parse(config).mode;
  if (!MODES.includes(wanted)) {
    return { tag: 'err', val: `unknown mode ${JSON.stringify(wanted)}; one of ${MODES.join(', ')}` };
  }
  if (wanted === 'throw-init') {
    throw new Error('thrown on purpose in init');
  }
  if (wanted === 'err-init') {
    return { tag: 'err', val: 'refused on purpose in init' };
  }
  mode = wanted;
  return { tag: 'ok' };
}

export function onEvent(_event, _snapshot) {
  switch (mode) {
    case 'loop': {
      let n = 0;
      for (;;) {
        n += 1;
      }
    }
    case 'alloc': {
      const hoard = [];
      for (;;) {
        hoard.push(new Uint8Array(1 << 20).fill(1));
      }
    }
    case 'throw':
      throw new Error('thrown on purpose in onEvent');
    case 'flood': {
      const one = proposal('flood');
      return { tag: 'ok', val: new Array(10_000).fill(one) };
    }
    case 'giant-string':
      return { tag: 'ok', val: [proposal('x'.repeat(1 << 20))] };
    default:
      return { tag: 'ok', val: [] };
  }
}

export function save() {
  return new TextEncoder().encode(mode ?? '');
}

export function restore(_state) {
  return { tag: 'ok' };
}
