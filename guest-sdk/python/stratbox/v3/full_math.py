"""`FullMath`: `a * b / denominator` with a 512-bit intermediate.

Python integers are unbounded, so the exact product is simply computed; what matters is
reproducing the Solidity failures: a zero denominator, and a quotient that does not fit
in 256 bits although every operand does.
"""

from ..ints import U256_MAX, require_u256
from .errors import DivisionByZero, Overflow


def _mul_div_rem(a, b, denominator):
    a = require_u256("a", a)
    b = require_u256("b", b)
    denominator = require_u256("denominator", denominator)
    if denominator == 0:
        raise DivisionByZero()
    q, r = divmod(a * b, denominator)
    if q > U256_MAX:
        raise Overflow()
    return q, r != 0


def mul_div(a, b, denominator):
    """`FullMath.mulDiv`: `floor(a * b / denominator)`."""
    return _mul_div_rem(a, b, denominator)[0]


def mul_div_rounding_up(a, b, denominator):
    """`FullMath.mulDivRoundingUp`: `ceil(a * b / denominator)`; like Solidity it
    refuses to round a floor of `2^256 - 1` up rather than wrap to zero."""
    q, inexact = _mul_div_rem(a, b, denominator)
    if inexact:
        if q == U256_MAX:
            raise Overflow()
        return q + 1
    return q
