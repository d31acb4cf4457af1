// Synthetic WIT values, shaped as ComponentizeJS hands them to the world exports.
import { math } from '../stratbox/index.js';

export const POOL = '0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8';

export function snapshot(tick, { pools } = {}) {
  return {
    lastSyncBlock: 10n,
    timestamp: 1_700_000_000n,
    pools: pools ?? [
      {
        pool: POOL.toUpperCase().replace('0X', '0x'),
        token0: '0x0000000000000000000000000000000000000010',
        token1: '0x0000000000000000000000000000000000000020',
        fee: 3000,
        tickSpacing: 60,
        sqrtPriceX96: math.getSqrtRatioAtTick(tick).toString(),
        tick,
        liquidity: '5000000000000000000',
      },
    ],
    balances: [],
  };
}

export function swapEvent(tick, pool = POOL) {
  return {
    tag: 'swap',
    val: {
      origin: { block: 10n, logIndex: 0, txHash: '' },
      pool,
      zeroForOne: true,
      amountIn: '1',
      amountOut: '1',
      sqrtPriceX96: math.getSqrtRatioAtTick(tick).toString(),
      liquidity: '1',
      tick,
    },
  };
}

export function newBlock(number) {
  return { tag: 'new-block', val: { number, timestamp: 0n, hash: '' } };
}
