"""`TickMath`: between ticks (powers of sqrt(1.0001)) and Q64.96 square-root prices.

Bit for bit the Solidity algorithm, magic constants included: a "mathematically
better" sqrt would differ from the pool in the last bit, and the pool is what the
engine simulates.
"""

from ..ints import U256_MAX, require_int, require_u256
from .errors import MAX_TICK, MIN_TICK, SqrtPriceOutOfRange, TickOutOfRange
from .words import require_u160, wrap256

__all__ = [
    "MIN_TICK",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MAX_SQRT_RATIO",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
]

MIN_SQRT_RATIO = 4295128739
"""`get_sqrt_ratio_at_tick(MIN_TICK)`."""
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
"""`get_sqrt_ratio_at_tick(MAX_TICK)`."""

# 1/sqrt(1.0001)^(2^i) as Q128.128, for bit i of |tick| (i >= 1); bit 0 is handled first.
_RATIOS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


def get_sqrt_ratio_at_tick(tick):
    """`TickMath.getSqrtRatioAtTick`: sqrt(1.0001^tick) as Q64.96, rounded up so that
    `get_tick_at_sqrt_ratio` of the result gives `tick` back."""
    tick = require_int("tick", tick)
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise TickOutOfRange(tick)
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 1 << 128
    for bit, factor in _RATIOS:
        if abs_tick & bit:
            # ratio <= 2^128 and factor < 2^128: the product fits 256 bits, as in Solidity.
            ratio = wrap256(ratio * factor) >> 128
    if tick > 0:
        ratio = U256_MAX // ratio
    # Q128.128 -> Q128.96, rounding up; fits in 160 bits for any tick in range.
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def _int24(value):
    """`int24(x)`: keeps the low 24 bits, sign-extended."""
    value &= 0xFFFFFF
    return value - (1 << 24) if value & 0x800000 else value


def get_tick_at_sqrt_ratio(sqrt_price_x96):
    """`TickMath.getTickAtSqrtRatio`: the greatest tick whose sqrt ratio is <= the input."""
    sqrt_price_x96 = require_u160(require_u256("sqrt_price_x96", sqrt_price_x96))
    if sqrt_price_x96 < MIN_SQRT_RATIO or sqrt_price_x96 >= MAX_SQRT_RATIO:
        raise SqrtPriceOutOfRange()
    ratio = sqrt_price_x96 << 32
    # The assembly cascade computes the index of the most significant bit.
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    # log_2 is an int256 in Solidity; it stays far inside that range, so Python's
    # signed int with its arithmetic `>>` is the same number.
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = wrap256(r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141
    tick_low = _int24((log_sqrt10001 - 3402992956809132418596140100660247210) >> 128)
    tick_hi = _int24((log_sqrt10001 + 291339464771989622907027621153398088495) >> 128)
    if tick_low == tick_hi:
        return tick_low
    return tick_hi if get_sqrt_ratio_at_tick(tick_hi) <= sqrt_price_x96 else tick_low
