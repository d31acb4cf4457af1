"""Amounts: unsigned 256-bit integers of raw token units, as plain Python `int`s, and
their strict wire form.

Every amount crossing the WIT boundary is a base-10 string. The parser is strict on
purpose: a sign, a decimal point or an exponent means the producer was thinking in
floats, and accepting "1.5" or "1e18" by rounding would turn a bug upstream into a
wrong trade downstream. So anything but canonical digits is refused, with the reason,
in the same words as the Rust parser (`stratbox-amount`) the host and engine use, so a
string is never read as two different values by two parts of stratbox.
"""

from .errors import StrategyError
from .ints import IntegerTypeError, U256_MAX, require_u256, require_u32
from .v3 import errors as math_errors
from .v3.full_math import mul_div as _mul_div
from .v3.full_math import mul_div_rounding_up as _mul_div_rounding_up

ZERO = 0
"""Zero raw units."""
MAX = U256_MAX
"""2^256 - 1 raw units."""
MAX_DIGITS = 78
"""Decimal digits of 2^256 - 1; longer input is refused before any arithmetic, so a
hostile megabyte-long string costs one length check."""

# Rust's `char::is_whitespace` (Unicode White_Space). Python's `str.isspace` also takes
# U+001C..U+001F, which Rust reports as a non-digit instead; the reason must match.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class AmountParseError(StrategyError, ValueError):
    """Why a string is not a wire-form amount. `kind` names the Rust variant."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class AmountError(StrategyError, ArithmeticError):
    """A checked operation on amounts left the 256-bit range (or divided by zero).
    `kind` names the Rust variant."""

    kind = "AmountError"


class AmountOverflow(AmountError):
    """A result above 2^256 - 1."""

    kind = "Overflow"

    def __init__(self):
        super().__init__("amount arithmetic overflowed 256 bits")


class AmountUnderflow(AmountError):
    """A subtraction that would go below zero."""

    kind = "Underflow"

    def __init__(self):
        super().__init__("amount arithmetic underflowed zero")


class AmountDivisionByZero(AmountError):
    """A division by a zero amount."""

    kind = "DivisionByZero"

    def __init__(self):
        super().__init__("amount divided by zero")


class BpsOutOfRange(AmountError):
    """Basis points over 10000 (100%)."""

    kind = "BpsOutOfRange"

    def __init__(self, bps):
        super().__init__(f"basis points {bps} exceed 10000")
        self.bps = bps


def _char_debug(ch):
    """`{:?}` of a Rust `char`, so the message names the character as Rust does."""
    escapes = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "'": "\\'", "\\": "\\\\", "\0": "\\0"}
    if ch in escapes:
        return f"'{escapes[ch]}'"
    if ch.isprintable():
        return f"'{ch}'"
    return f"'\\u{{{ord(ch):x}}}'"


def _utf8_len(ch):
    code = ord(ch)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def parse_wire(text):
    """The value of a wire-form amount string.

    Raises `AmountParseError` for anything but canonical base-10 digits (the message
    gives the reason and the byte offset, never the input), and `TypeError` for
    anything that is not a `str`: a float or a bool is never an amount.
    """
    if not isinstance(text, str):
        kind = type(text).__name__
        if isinstance(text, float):
            raise IntegerTypeError(
                f"amount must be a base-10 string of raw units, got float {text!r}; "
                "floats cannot hold raw token amounts exactly"
            )
        raise IntegerTypeError(f"amount must be a base-10 string of raw units, got {kind}")
    if not text:
        raise AmountParseError("Empty", "amount is empty")
    first = text[0]
    if first in "+-":
        raise AmountParseError(
            "Sign", f"amount has a sign ('{first}'); amounts are unsigned magnitudes"
        )
    index = 0
    for ch in text:
        if "0" <= ch <= "9":
            pass
        elif ch in _WHITESPACE:
            raise AmountParseError("Whitespace", f"amount contains whitespace at byte {index}")
        elif ch == ".":
            raise AmountParseError(
                "DecimalPoint",
                f"amount has a decimal point at byte {index}; amounts are integers of raw units",
            )
        elif ch in "eE":
            raise AmountParseError(
                "Exponent", f"amount has an exponent ('{ch}') at byte {index}; write every digit"
            )
        elif ch in "+-":
            raise AmountParseError(
                "Sign", f"amount has a sign ('{ch}'); amounts are unsigned magnitudes"
            )
        else:
            raise AmountParseError(
                "InvalidDigit", f"amount has a non-digit {_char_debug(ch)} at byte {index}"
            )
        index += _utf8_len(ch)
    if first == "0" and len(text) > 1:
        raise AmountParseError(
            "LeadingZero", 'amount has a leading zero; only "0" itself may start with 0'
        )
    if len(text) > MAX_DIGITS:
        raise AmountParseError("Overflow", "amount does not fit in 256 bits")
    # Only ASCII digits are left, at most 78 of them: `int` sees no sign, underscore or
    # non-ASCII digit, and the only failure left is overflow.
    value = int(text, 10)
    if value > U256_MAX:
        raise AmountParseError("Overflow", "amount does not fit in 256 bits")
    return value


def parse_wire_bits(text, bits):
    """`parse_wire`, refusing values of `bits` bits or more with the same `Overflow`
    reason, for fields the chain stores narrower (liquidity is a `uint128`)."""
    value = parse_wire(text)
    if value >> bits:
        raise AmountParseError("Overflow", f"amount does not fit in {bits} bits")
    return value


def to_wire(value):
    """The wire form of an amount, for a WIT field."""
    return str(require_u256("amount", value))


def amount(value):
    """An amount from an `int` or a wire string, checked to be in [0, 2^256).

    What the proposal builders accept, so a value read off a snapshot string and one
    computed with the math can be passed alike; anything else is refused.
    """
    if isinstance(value, str):
        return parse_wire(value)
    return require_u256("amount", value)


def checked_add(a, b):
    """Sum; `AmountOverflow` past 2^256 - 1."""
    total = require_u256("a", a) + require_u256("b", b)
    if total > U256_MAX:
        raise AmountOverflow()
    return total


def checked_sub(a, b):
    """Difference; `AmountUnderflow` if `b` is larger."""
    a, b = require_u256("a", a), require_u256("b", b)
    if b > a:
        raise AmountUnderflow()
    return a - b


def checked_mul(a, b):
    """Product; `AmountOverflow` past 2^256 - 1."""
    product = require_u256("a", a) * require_u256("b", b)
    if product > U256_MAX:
        raise AmountOverflow()
    return product


def checked_div(a, b):
    """Quotient rounded down; `AmountDivisionByZero` if `b` is zero."""
    a, b = require_u256("a", a), require_u256("b", b)
    if b == 0:
        raise AmountDivisionByZero()
    return a // b


def mul_div(a, mul, div):
    """`a * mul / div` rounded down, exact whatever the size of the product: the product
    of two realistic token amounts overflows 256 bits long before the quotient does."""
    try:
        return _mul_div(a, mul, div)
    except math_errors.DivisionByZero:
        raise AmountDivisionByZero() from None
    except math_errors.MathError:
        raise AmountOverflow() from None


def less_bps(value, bps):
    """`value` reduced by `bps` basis points, rounded down: the least a trade may
    deliver under a slippage tolerance of `bps`."""
    bps = require_u32("bps", bps)
    if bps > 10_000:
        raise BpsOutOfRange(bps)
    return mul_div(value, 10_000 - bps, 10_000)


def plus_bps(value, bps):
    """`value` raised by `bps` basis points, rounded up: the most a trade may cost under
    a slippage tolerance of `bps`."""
    bps = require_u32("bps", bps)
    if bps > 10_000:
        raise BpsOutOfRange(bps)
    try:
        return _mul_div_rounding_up(value, 10_000 + bps, 10_000)
    except math_errors.MathError:
        raise AmountOverflow() from None
