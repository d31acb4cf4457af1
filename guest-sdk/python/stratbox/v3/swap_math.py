"""`SwapMath.computeSwapStep`: one step of a swap, within a single tick range."""

from typing import NamedTuple

from ..ints import require_bool, require_u32, require_u128, require_u256
from .errors import AmountRemainingOutOfRange, InvalidFee
from .full_math import mul_div, mul_div_rounding_up
from .sqrt_price_math import (
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from .words import require_u160, wrap256

_PIPS = 1_000_000
"""1e6: fees are in hundredths of a basis point."""


class SwapStep(NamedTuple):
    """The result of one swap step, named as in `SwapMath.sol`."""

    sqrt_ratio_next_x96: int
    """The price after the step; equal to the target if the step used the whole range."""
    amount_in: int
    """What the pool takes in, fee excluded."""
    amount_out: int
    """What the pool pays out."""
    fee_amount: int
    """The fee taken on top of `amount_in`."""


def compute_swap_step(
    sqrt_ratio_current_x96,
    sqrt_ratio_target_x96,
    liquidity,
    amount_remaining,
    exact_in,
    fee_pips,
):
    """`SwapMath.computeSwapStep`, with the Rust SDK's argument order.

    Solidity's `int256 amountRemaining` is split, as in Rust, into a magnitude and
    `exact_in`: `exact_in = False` means `amountRemaining = -amount_remaining`. A zero
    magnitude is exact-in whatever the flag says, because Solidity's `exactIn` is
    `amountRemaining >= 0`. The magnitude must fit an `int256`: below 2^255 for
    exact-in, at most 2^255 for exact-out. The direction comes from the prices, as in
    Solidity: `zeroForOne` is `current >= target`.
    """
    current = require_u160(require_u256("sqrt_ratio_current_x96", sqrt_ratio_current_x96))
    target = require_u160(require_u256("sqrt_ratio_target_x96", sqrt_ratio_target_x96))
    liquidity = require_u128("liquidity", liquidity)
    amount_remaining = require_u256("amount_remaining", amount_remaining)
    exact_in = require_bool("exact_in", exact_in)
    fee_pips = require_u32("fee_pips", fee_pips)
    if fee_pips >= _PIPS:
        raise InvalidFee(fee_pips)
    half = 1 << 255
    exact_in = exact_in or amount_remaining == 0
    if (exact_in and amount_remaining >= half) or (not exact_in and amount_remaining > half):
        raise AmountRemainingOutOfRange()
    zero_for_one = current >= target

    amount_in = 0
    amount_out = 0
    if exact_in:
        amount_remaining_less_fee = mul_div(amount_remaining, _PIPS - fee_pips, _PIPS)
        if zero_for_one:
            amount_in = get_amount0_delta(target, current, liquidity, True)
        else:
            amount_in = get_amount1_delta(current, target, liquidity, True)
        if amount_remaining_less_fee >= amount_in:
            sqrt_ratio_next_x96 = target
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_input(
                current, liquidity, amount_remaining_less_fee, zero_for_one
            )
    else:
        if zero_for_one:
            amount_out = get_amount1_delta(target, current, liquidity, False)
        else:
            amount_out = get_amount0_delta(current, target, liquidity, False)
        if amount_remaining >= amount_out:
            sqrt_ratio_next_x96 = target
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_output(
                current, liquidity, amount_remaining, zero_for_one
            )

    reached = target == sqrt_ratio_next_x96
    # Solidity's `max && exactIn ? amountIn : ...` and `max && !exactIn ? amountOut : ...`:
    # keep the amount computed against the target, else recompute against the new price.
    keep_in = reached and exact_in
    keep_out = reached and not exact_in

    if zero_for_one:
        if not keep_in:
            amount_in = get_amount0_delta(sqrt_ratio_next_x96, current, liquidity, True)
        if not keep_out:
            amount_out = get_amount1_delta(sqrt_ratio_next_x96, current, liquidity, False)
    else:
        if not keep_in:
            amount_in = get_amount1_delta(current, sqrt_ratio_next_x96, liquidity, True)
        if not keep_out:
            amount_out = get_amount0_delta(current, sqrt_ratio_next_x96, liquidity, False)

    # Cap the output at the requested amount (rounding can overshoot by one).
    if not exact_in and amount_out > amount_remaining:
        amount_out = amount_remaining

    if exact_in and sqrt_ratio_next_x96 != target:
        # The remainder of the input is all fee; unchecked in Solidity, never negative.
        fee_amount = wrap256(amount_remaining - amount_in)
    else:
        fee_amount = mul_div_rounding_up(amount_in, fee_pips, _PIPS - fee_pips)

    return SwapStep(sqrt_ratio_next_x96, amount_in, amount_out, fee_amount)
