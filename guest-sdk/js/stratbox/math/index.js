/**
 * Exact integer Uniswap V3 math in BigInt: the same numbers, bit for bit, as the Solidity
 * libraries and the Rust SDK's `stratbox_sdk::math`, function for function.
 *
 * Why exact and not "close enough": the engine turns a strategy's expected amounts into hard
 * bounds on the simulated outcome, and the simulation runs the real pool bytecode. A one-wei
 * difference in rounding direction is the difference between a trade that passes and one
 * refused for slippage.
 */

export { Q96 } from './common.js';
export { MathError } from './errors.js';
export { mulDiv, mulDivRoundingUp } from './full_math.js';
export { getSqrtRatioAtTick, getTickAtSqrtRatio, MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK } from './tick_math.js';
export {
  getAmount0Delta,
  getAmount1Delta,
  getNextSqrtPriceFromAmount0RoundingUp,
  getNextSqrtPriceFromAmount1RoundingDown,
  getNextSqrtPriceFromInput,
  getNextSqrtPriceFromOutput,
} from './sqrt_price_math.js';
export { computeSwapStep } from './swap_math.js';
export {
  amountsForMint,
  getAmount0ForLiquidity,
  getAmount1ForLiquidity,
  getAmountsForLiquidity,
  getLiquidityForAmount0,
  getLiquidityForAmount1,
  getLiquidityForAmounts,
} from './liquidity_amounts.js';
export { E18, inputForStep, spotPriceE18, token0InToken1, token0InToken1Wide } from './price.js';
