"""The EVM word rules the Solidity code leans on, for Python's unbounded `int`.

Solidity 0.7 arithmetic wraps silently, and `SqrtPriceMath` uses that wrap as its own
overflow test; Python integers never wrap. Every place the original relies on a wrap
masks with `U256_MAX` explicitly, so the wrap is visible in the code that needs it.
"""

from ..ints import U256_MAX, U160_MAX
from .errors import NotUint160

Q96 = 1 << 96
"""2^96: the fixed-point one of a Q64.96 number (`FixedPoint96.Q96`)."""


def wrap256(value):
    """The low 256 bits: what an unchecked EVM `add`, `sub` or `mul` leaves."""
    return value & U256_MAX


def require_u160(value):
    """Refuses what Solidity's `uint160` parameter type would never admit."""
    if value > U160_MAX:
        raise NotUint160()
    return value


def truncate_u160(value):
    """`uint160(x)`: an unchecked downcast, kept where Solidity does not check."""
    return value & U160_MAX


def div_rounding_up(x, y):
    """`UnsafeMath.divRoundingUp`: EVM `div`/`mod` by zero yield zero, so never fails."""
    if y == 0:
        return 0
    q, r = divmod(x, y)
    return wrap256(q + 1) if r else q
