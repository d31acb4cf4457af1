"""Exact integer Uniswap V3 math: bit for bit the Solidity libraries (`FullMath`,
`TickMath`, `SqrtPriceMath`, `SwapMath` in v3-core, `LiquidityAmounts` in
v3-periphery), function for function the Rust SDK's `stratbox_sdk::math`.

Why exact: the engine turns a strategy's expected amounts into hard bounds on the
simulated outcome, and the simulation runs the real pool bytecode. A one-wei difference
in rounding direction is the difference between a trade that passes and one refused for
slippage. Every rounding direction, every `require` (as a `MathError` subclass) and
every unchecked wrap of the Solidity 0.7 code is reproduced, with Python `int` only.

Square-root prices are Q64.96 integers; where Solidity takes a `uint160` a wider value
raises `NotUint160` rather than being truncated. Liquidity is a `uint128`.
"""

from .errors import (
    AmountRemainingOutOfRange,
    DivisionByZero,
    InsufficientLiquidity,
    InvalidFee,
    MathError,
    NotUint160,
    Overflow,
    ResultOverflow,
    SqrtPriceOutOfRange,
    TickOutOfRange,
    ZeroLiquidity,
    ZeroPrice,
)
from .full_math import mul_div, mul_div_rounding_up
from .liquidity_amounts import (
    amounts_for_mint,
    get_amount0_for_liquidity,
    get_amount1_for_liquidity,
    get_amounts_for_liquidity,
    get_liquidity_for_amount0,
    get_liquidity_for_amount1,
    get_liquidity_for_amounts,
)
from .price import E18, input_for_step, spot_price_e18, token0_in_token1, token0_in_token1_wide
from .sqrt_price_math import (
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_amount0_rounding_up,
    get_next_sqrt_price_from_amount1_rounding_down,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from .swap_math import SwapStep, compute_swap_step
from .tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from .words import Q96
