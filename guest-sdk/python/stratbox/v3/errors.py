"""`MathError`: the conditions under which the Solidity code would revert.

One subclass per variant of the Rust SDK's `MathError`, with the same name (also in
`kind`) and the same message, so the same refusal reads the same in either SDK.
"""

from ..errors import StrategyError

MIN_TICK = -887272
MAX_TICK = 887272


class MathError(StrategyError, ArithmeticError):
    """A `require` of `TickMath`, `SqrtPriceMath`, `SwapMath`, `FullMath` or
    `LiquidityAmounts` that failed."""

    kind = "MathError"


class TickOutOfRange(MathError):
    """`TickMath.getSqrtRatioAtTick`: `require(absTick <= MAX_TICK, 'T')`."""

    kind = "TickOutOfRange"

    def __init__(self, tick):
        super().__init__(f"tick {tick} is outside [{MIN_TICK}, {MAX_TICK}]")
        self.tick = tick


class SqrtPriceOutOfRange(MathError):
    """`TickMath.getTickAtSqrtRatio`: `require(MIN_SQRT_RATIO <= p < MAX_SQRT_RATIO, 'R')`."""

    kind = "SqrtPriceOutOfRange"

    def __init__(self):
        super().__init__("sqrt price is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")


class NotUint160(MathError):
    """A value passed where Solidity takes a `uint160` does not fit."""

    kind = "NotUint160"

    def __init__(self):
        super().__init__("value does not fit in uint160")


class ResultOverflow(MathError):
    """A result Solidity downcasts with a check (`toUint160`, `toUint128`) does not fit."""

    kind = "ResultOverflow"

    def __init__(self, bits):
        super().__init__(f"result does not fit in uint{bits}")
        self.bits = bits


class DivisionByZero(MathError):
    """`FullMath.mulDiv`: `require(denominator > 0)`, and `x / 0` in checked code."""

    kind = "DivisionByZero"

    def __init__(self):
        super().__init__("division by zero")


class Overflow(MathError):
    """A quotient above 256 bits, a checked addition that overflowed, or
    `mulDivRoundingUp` unable to round past the maximum."""

    kind = "Overflow"

    def __init__(self):
        super().__init__("arithmetic overflow")


class ZeroPrice(MathError):
    """`SqrtPriceMath`: `require(sqrtPX96 > 0)`."""

    kind = "ZeroPrice"

    def __init__(self):
        super().__init__("sqrt price is zero")


class ZeroLiquidity(MathError):
    """`SqrtPriceMath`: `require(liquidity > 0)`."""

    kind = "ZeroLiquidity"

    def __init__(self):
        super().__init__("liquidity is zero")


class InsufficientLiquidity(MathError):
    """The price would cross zero: more output asked than the liquidity holds."""

    kind = "InsufficientLiquidity"

    def __init__(self):
        super().__init__("not enough liquidity for the requested output")


class InvalidFee(MathError):
    """`SwapMath`: a fee of 100% or more makes `1e6 - feePips` meaningless."""

    kind = "InvalidFee"

    def __init__(self, fee_pips):
        super().__init__(f"fee {fee_pips} pips is not below 1000000")
        self.fee_pips = fee_pips


class AmountRemainingOutOfRange(MathError):
    """`SwapMath`: `amountRemaining` is an `int256`; the magnitude does not fit."""

    kind = "AmountRemainingOutOfRange"

    def __init__(self):
        super().__init__("amount remaining does not fit in int256")
