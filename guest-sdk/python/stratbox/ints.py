"""Checks that a Python value is an integer of the width Rust or Solidity would give it.

Python's `int` has no width, so nothing stops a strategy from handing a negative
amount, a 300-bit price or `True` to a function the Rust SDK types as `U256`, `u128`
or `i32`. These checks stand in for those types: they refuse what the Rust signature
could never receive, before any arithmetic, so an out-of-domain value fails loudly here
instead of silently computing something Solidity never would.
"""

from .errors import StrategyError

U256_MAX = (1 << 256) - 1
U160_MAX = (1 << 160) - 1
U128_MAX = (1 << 128) - 1
U32_MAX = (1 << 32) - 1
I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1


class IntegerTypeError(StrategyError, TypeError):
    """A value that is not a plain `int` where one is required."""


class IntegerRangeError(StrategyError, ValueError):
    """An `int` outside the width its Rust counterpart has."""


def require_int(name, value):
    """`value` itself if it is a plain `int`.

    `bool` is refused although Python calls it an int: `True` as an amount is always a
    mix-up. Floats are refused because they cannot hold 256-bit values exactly; that is
    the whole reason amounts travel as strings.
    """
    if isinstance(value, bool):
        raise IntegerTypeError(f"{name} must be an int, got bool {value}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        raise IntegerTypeError(
            f"{name} must be an int, got float {value!r}; floats cannot hold "
            "raw token amounts exactly"
        )
    raise IntegerTypeError(f"{name} must be an int, got {type(value).__name__}")


def _require_range(name, value, low, high, width):
    value = require_int(name, value)
    if value < low or value > high:
        raise IntegerRangeError(f"{name} = {value} does not fit in {width}")
    return value


def require_u256(name, value):
    """An unsigned 256-bit integer, as `U256`."""
    return _require_range(name, value, 0, U256_MAX, "uint256")


def require_u128(name, value):
    """An unsigned 128-bit integer, as `u128` (a pool's liquidity)."""
    return _require_range(name, value, 0, U128_MAX, "uint128")


def require_u32(name, value):
    """An unsigned 32-bit integer, as `u32` (fees, basis points)."""
    return _require_range(name, value, 0, U32_MAX, "uint32")


def require_i32(name, value):
    """A signed 32-bit integer, as `i32` (ticks)."""
    return _require_range(name, value, I32_MIN, I32_MAX, "int32")


def require_bool(name, value):
    """A real `bool`: `1` for `zero_for_one` is more likely a bug than a direction."""
    if not isinstance(value, bool):
        raise IntegerTypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value
