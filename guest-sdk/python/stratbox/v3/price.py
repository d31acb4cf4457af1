"""Prices from a pool's square-root price, with the engine's integer arithmetic.

The engine values books and gates oracle prices with these exact floors; a strategy
that computes "the price" another way (let alone with floats) would disagree with the
engine about what it is looking at.
"""

from ..ints import U256_MAX, require_bool, require_u256
from .words import Q96

E18 = 10**18
"""1e18, the fixed point of oracle prices."""


def token0_in_token1_wide(amount0, sqrt_price_x96):
    """`amount0` of token0 in token1 at `sqrt_price_x96`: amount*sqrtP^2/2^192, floor.

    Shifted in two steps, as the Rust SDK does, so the floor is the same number.
    """
    amount0 = require_u256("amount0", amount0)
    p = require_u256("sqrt_price_x96", sqrt_price_x96)
    return (((amount0 * p) >> 96) * p) >> 96


def token0_in_token1(amount0, sqrt_price_x96):
    """`token0_in_token1_wide`, saturated to 256 bits."""
    return min(token0_in_token1_wide(amount0, sqrt_price_x96), U256_MAX)


def spot_price_e18(sqrt_price_x96):
    """The pool's spot price, token1 per token0 with 18 decimals (the oracle's form)."""
    return token0_in_token1(E18, sqrt_price_x96)


def input_for_step(zero_for_one, sqrt_price_x96, liquidity, step_ppm, floor):
    """An input that moves sqrt(P) by about `step_ppm` millionths: L*d(1/sqrtP) when
    selling token0, L*d(sqrtP) when selling token1 (both Q96-scaled), at least `floor`.

    Saturating and wrapping exactly where the Rust SDK's `U256` operators are, so that
    even absurd inputs size the same swap in both SDKs.
    """
    zero_for_one = require_bool("zero_for_one", zero_for_one)
    sqrt_price_x96 = require_u256("sqrt_price_x96", sqrt_price_x96)
    liquidity = require_u256("liquidity", liquidity)
    step_ppm = require_u256("step_ppm", step_ppm)
    floor = require_u256("floor", floor)
    million = 1_000_000
    if zero_for_one:
        scaled = min(liquidity * Q96, U256_MAX) // max(sqrt_price_x96, 1)
        amount = min(scaled * step_ppm, U256_MAX) // million
    else:
        # `saturating_mul`, then `/ Q96 * step_ppm` with ruint's wrapping `*`.
        amount = ((min(liquidity * sqrt_price_x96, U256_MAX) // Q96) * step_ppm & U256_MAX) // million
    return max(amount, floor)
