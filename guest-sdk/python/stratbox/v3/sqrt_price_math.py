"""`SqrtPriceMath`: how far a given amount moves the price, and how much a move costs.

Rounding always favours the pool: prices move further for inputs (less output per
input) and amounts owed to the pool round up. The Solidity 0.7 unchecked wraps the
original uses as overflow tests are kept (see `words.wrap256`).
"""

from ..ints import U256_MAX, U160_MAX, require_bool, require_u128, require_u256
from .errors import (
    DivisionByZero,
    InsufficientLiquidity,
    Overflow,
    ResultOverflow,
    ZeroLiquidity,
    ZeroPrice,
)
from .full_math import mul_div, mul_div_rounding_up
from .words import Q96, div_rounding_up, require_u160, truncate_u160, wrap256


def _to_u160(value):
    """`SafeCast.toUint160`: a checked downcast."""
    if value > U160_MAX:
        raise ResultOverflow(160)
    return value


def get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount, add):
    """`getNextSqrtPriceFromAmount0RoundingUp`."""
    sqrt_px96 = require_u160(require_u256("sqrt_px96", sqrt_px96))
    liquidity = require_u128("liquidity", liquidity)
    amount = require_u256("amount", amount)
    add = require_bool("add", add)
    if amount == 0:
        return sqrt_px96
    numerator1 = liquidity << 96
    product = wrap256(amount * sqrt_px96)
    product_exact = product // amount == sqrt_px96
    if add:
        if product_exact:
            denominator = wrap256(numerator1 + product)
            if denominator >= numerator1:
                return truncate_u160(mul_div_rounding_up(numerator1, sqrt_px96, denominator))
        # Solidity: `numerator1 / sqrtPX96` reverts on a zero price (checked `/`).
        if sqrt_px96 == 0:
            raise DivisionByZero()
        denominator = numerator1 // sqrt_px96 + amount
        if denominator > U256_MAX:
            raise Overflow()
        return truncate_u160(div_rounding_up(numerator1, denominator))
    if not (product_exact and numerator1 > product):
        raise InsufficientLiquidity()
    denominator = numerator1 - product
    return _to_u160(mul_div_rounding_up(numerator1, sqrt_px96, denominator))


def get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount, add):
    """`getNextSqrtPriceFromAmount1RoundingDown`."""
    sqrt_px96 = require_u160(require_u256("sqrt_px96", sqrt_px96))
    liquidity = require_u128("liquidity", liquidity)
    amount = require_u256("amount", amount)
    add = require_bool("add", add)
    fits_u160 = amount <= U160_MAX
    if add:
        if fits_u160:
            if liquidity == 0:
                raise DivisionByZero()
            quotient = (amount << 96) // liquidity
        else:
            quotient = mul_div(amount, Q96, liquidity)
        total = sqrt_px96 + quotient
        if total > U256_MAX:
            raise Overflow()
        return _to_u160(total)
    if fits_u160:
        # UnsafeMath.divRoundingUp: a zero divisor gives 0 rather than reverting.
        quotient = div_rounding_up(amount << 96, liquidity)
    else:
        quotient = mul_div_rounding_up(amount, Q96, liquidity)
    if sqrt_px96 <= quotient:
        raise InsufficientLiquidity()
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96, liquidity, amount_in, zero_for_one):
    """`getNextSqrtPriceFromInput`: the price after `amount_in` of token0
    (`zero_for_one`) or token1 enters, rounded so the pool never gives more than it
    should."""
    sqrt_px96 = require_u256("sqrt_px96", sqrt_px96)
    liquidity = require_u128("liquidity", liquidity)
    zero_for_one = require_bool("zero_for_one", zero_for_one)
    if sqrt_px96 == 0:
        raise ZeroPrice()
    if liquidity == 0:
        raise ZeroLiquidity()
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_px96, liquidity, amount_out, zero_for_one):
    """`getNextSqrtPriceFromOutput`: the price after `amount_out` of token1
    (`zero_for_one`) or token0 leaves."""
    sqrt_px96 = require_u256("sqrt_px96", sqrt_px96)
    liquidity = require_u128("liquidity", liquidity)
    zero_for_one = require_bool("zero_for_one", zero_for_one)
    if sqrt_px96 == 0:
        raise ZeroPrice()
    if liquidity == 0:
        raise ZeroLiquidity()
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(
            sqrt_px96, liquidity, amount_out, False
        )
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, False)


def _sorted_u160(a, b):
    a = require_u160(require_u256("sqrt_ratio_a_x96", a))
    b = require_u160(require_u256("sqrt_ratio_b_x96", b))
    return (b, a) if a > b else (a, b)


def get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up):
    """`getAmount0Delta(uint160,uint160,uint128,bool)`: token0 between two prices for
    `liquidity`, i.e. `L * 2^96 * (sqrtB - sqrtA) / sqrtB / sqrtA`."""
    a, b = _sorted_u160(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    round_up = require_bool("round_up", round_up)
    numerator1 = liquidity << 96
    numerator2 = b - a
    if a == 0:
        raise ZeroPrice()
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, b), a)
    return mul_div(numerator1, numerator2, b) // a


def get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up):
    """`getAmount1Delta(uint160,uint160,uint128,bool)`: token1 between two prices for
    `liquidity`, i.e. `L * (sqrtB - sqrtA) / 2^96`."""
    a, b = _sorted_u160(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    round_up = require_bool("round_up", round_up)
    if round_up:
        return mul_div_rounding_up(liquidity, b - a, Q96)
    return mul_div(liquidity, b - a, Q96)
