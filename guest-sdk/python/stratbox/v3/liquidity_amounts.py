"""`LiquidityAmounts` (v3-periphery): between token amounts and liquidity on a range.

These round down, as the periphery does; the pool itself charges a mint with
`SqrtPriceMath` rounding up, see `amounts_for_mint`.
"""

from ..ints import U128_MAX, require_u128, require_u256
from .errors import DivisionByZero, ResultOverflow
from .full_math import mul_div
from .sqrt_price_math import get_amount0_delta, get_amount1_delta
from .words import Q96, require_u160


def _to_u128(value):
    if value > U128_MAX:
        raise ResultOverflow(128)
    return value


def _sorted(a, b):
    a = require_u160(require_u256("sqrt_ratio_a_x96", a))
    b = require_u160(require_u256("sqrt_ratio_b_x96", b))
    return (b, a) if a > b else (a, b)


def _price(sqrt_ratio_x96):
    return require_u160(require_u256("sqrt_ratio_x96", sqrt_ratio_x96))


def get_liquidity_for_amount0(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount0):
    """`getLiquidityForAmount0`: the liquidity `amount0` buys on [a, b] when the price
    is at or below a."""
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    amount0 = require_u256("amount0", amount0)
    intermediate = mul_div(a, b, Q96)
    return _to_u128(mul_div(amount0, intermediate, b - a))


def get_liquidity_for_amount1(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount1):
    """`getLiquidityForAmount1`: the liquidity `amount1` buys on [a, b] when the price
    is at or above b."""
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    amount1 = require_u256("amount1", amount1)
    return _to_u128(mul_div(amount1, Q96, b - a))


def get_liquidity_for_amounts(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount0, amount1):
    """`getLiquidityForAmounts`: the most liquidity both amounts together buy at the
    current price `sqrt_ratio_x96` on [a, b]."""
    p = _price(sqrt_ratio_x96)
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    amount0 = require_u256("amount0", amount0)
    amount1 = require_u256("amount1", amount1)
    if p <= a:
        return get_liquidity_for_amount0(a, b, amount0)
    if p < b:
        l0 = get_liquidity_for_amount0(p, b, amount0)
        l1 = get_liquidity_for_amount1(a, p, amount1)
        return min(l0, l1)
    return get_liquidity_for_amount1(a, b, amount1)


def get_amount0_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity):
    """`getAmount0ForLiquidity`: token0 held by `liquidity` on [a, b], rounded down."""
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    if a == 0:
        raise DivisionByZero()
    return mul_div(liquidity << 96, b - a, b) // a


def get_amount1_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity):
    """`getAmount1ForLiquidity`: token1 held by `liquidity` on [a, b], rounded down."""
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    return mul_div(liquidity, b - a, Q96)


def get_amounts_for_liquidity(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity):
    """`getAmountsForLiquidity`: (token0, token1) held by `liquidity` on [a, b] at the
    current price, rounded down; what a burn of that liquidity returns."""
    p = _price(sqrt_ratio_x96)
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    if p <= a:
        return (get_amount0_for_liquidity(a, b, liquidity), 0)
    if p < b:
        return (
            get_amount0_for_liquidity(p, b, liquidity),
            get_amount1_for_liquidity(a, p, liquidity),
        )
    return (0, get_amount1_for_liquidity(a, b, liquidity))


def amounts_for_mint(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity):
    """What `UniswapV3Pool.mint` charges for `liquidity` on [a, b] at the current price:
    the split of `get_amounts_for_liquidity` rounded up, as `_modifyPosition` does with
    `SqrtPriceMath.getAmount{0,1}Delta(.., roundUp = true)`.

    The pool picks the branch by its current *tick*, this by price. They differ only
    when the price sits exactly on the lower bound, and there both charge the full
    token0 amount and no token1.
    """
    p = _price(sqrt_ratio_x96)
    a, b = _sorted(sqrt_ratio_a_x96, sqrt_ratio_b_x96)
    liquidity = require_u128("liquidity", liquidity)
    if p <= a:
        return (get_amount0_delta(a, b, liquidity, True), 0)
    if p < b:
        return (
            get_amount0_delta(p, b, liquidity, True),
            get_amount1_delta(a, p, liquidity, True),
        )
    return (0, get_amount1_delta(a, b, liquidity, True))
