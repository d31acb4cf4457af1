/**
 * The stratbox JavaScript author SDK: everything a strategy imports, from one module.
 *
 * Amounts and prices are `bigint` everywhere; see README.md for the rules.
 */

export { BaseStrategyAgent, exportAgent } from './agent.js';
export {
  AmountError,
  AmountParseError,
  asAmount,
  checkedAdd,
  checkedDiv,
  checkedMul,
  checkedSub,
  lessBps,
  MAX_BPS,
  MAX_DIGITS,
  mulDiv,
  parseAmount,
  plusBps,
  toWire,
} from './amount.js';
export { ConfigError, readConfig } from './config.js';
export { errorText, StratboxError } from './errors.js';
export * as host from './host.js';
export { installHost } from './host.js';
export {
  MAX_I32,
  MAX_U128,
  MAX_U160,
  MAX_U256,
  MAX_U32,
  MAX_U64,
  MIN_I32,
  requireBool,
  requireI32,
  requireU128,
  requireU256,
  requireU32,
  requireU64,
} from './ints.js';
export * as math from './math/index.js';
export { MathError, MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, Q96 } from './math/index.js';
export * as proposal from './proposal.js';
export {
  addLiquidity,
  checkProposal,
  MAX_SLIPPAGE_BPS,
  ProposalBuilder,
  ProposalError,
  removeLiquidity,
  swap,
} from './proposal.js';
export { Event, EventTag, PoolState, sameAddress, Snapshot } from './types.js';
