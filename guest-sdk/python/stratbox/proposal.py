"""Proposals and their builders.

The builders take amounts as `int`s (or strictly parsed wire strings), so an author
never formats a wire string by hand and so never writes "1.5" or "1e18" into one.
`build()` refuses what the host would refuse anyway, with the Rust SDK's messages, so
the author hears about it first and in the same words.
"""

from dataclasses import dataclass
from typing import Optional, Union

from .amount import ZERO, amount, to_wire
from .errors import StrategyError
from .ints import IntegerTypeError, require_bool, require_i32, require_u32

MAX_SLIPPAGE_BPS = 10_000
"""The host refuses anything above 100%."""


class ProposalError(StrategyError, ValueError):
    """Why a builder refused to build. `kind` names the Rust variant."""

    kind = "ProposalError"


class SlippageOutOfRange(ProposalError):
    kind = "SlippageOutOfRange"

    def __init__(self, bps):
        super().__init__(f"max slippage {bps} bps exceeds {MAX_SLIPPAGE_BPS}")
        self.bps = bps


class EmptyRange(ProposalError):
    kind = "EmptyRange"

    def __init__(self, lower, upper):
        super().__init__(f"tick range [{lower}, {upper}) is empty or inverted")
        self.lower = lower
        self.upper = upper


class ZeroAmount(ProposalError):
    kind = "ZeroAmount"

    def __init__(self, what):
        super().__init__(f"a {what} proposal needs a non-zero amount")
        self.what = what


@dataclass(frozen=True)
class SwapAction:
    """Swap `amount_in` of token0 (`zero_for_one`) or token1 on `pool`."""

    pool: str
    zero_for_one: bool
    amount_in: str
    sqrt_price_limit_x96: Optional[str]
    """Optional price limit; None means no limit beyond the pool's bounds."""

    kind = "swap"


@dataclass(frozen=True)
class RangeLiquidity:
    """Liquidity on [tick_lower, tick_upper) of a pool, sized in liquidity units."""

    pool: str
    tick_lower: int
    tick_upper: int
    liquidity: str


@dataclass(frozen=True)
class AddLiquidity(RangeLiquidity):
    kind = "add-liquidity"


@dataclass(frozen=True)
class RemoveLiquidity(RangeLiquidity):
    kind = "remove-liquidity"


Action = Union[SwapAction, AddLiquidity, RemoveLiquidity]


@dataclass(frozen=True)
class Proposal:
    """One trade a strategy would like made.

    `expected_amount0` / `expected_amount1` are the magnitudes of token0 and token1 the
    strategy expects to move: for a swap one is paid in and the other received; for
    add-liquidity both are paid; for remove-liquidity both are received. The engine
    turns them and `max_slippage_bps` into hard bounds on the simulated outcome.
    """

    action: Action
    expected_amount0: str
    expected_amount1: str
    max_slippage_bps: int
    reason: str


def _pool(pool):
    if not isinstance(pool, str):
        raise IntegerTypeError(f"pool must be an address string, got {type(pool).__name__}")
    return pool


def swap(pool, zero_for_one, amount_in):
    """Swap `amount_in` of token0 (`zero_for_one`) or token1 on `pool`."""
    return ProposalBuilder(
        SwapAction(
            pool=_pool(pool),
            zero_for_one=require_bool("zero_for_one", zero_for_one),
            amount_in=to_wire(amount(amount_in)),
            sqrt_price_limit_x96=None,
        )
    )


def add_liquidity(pool, tick_lower, tick_upper, liquidity):
    """Add `liquidity` on `[tick_lower, tick_upper)` of `pool`."""
    return ProposalBuilder(_range(AddLiquidity, pool, tick_lower, tick_upper, liquidity))


def remove_liquidity(pool, tick_lower, tick_upper, liquidity):
    """Remove `liquidity` from `[tick_lower, tick_upper)` of `pool`."""
    return ProposalBuilder(_range(RemoveLiquidity, pool, tick_lower, tick_upper, liquidity))


def _range(cls, pool, tick_lower, tick_upper, liquidity):
    return cls(
        pool=_pool(pool),
        tick_lower=require_i32("tick_lower", tick_lower),
        tick_upper=require_i32("tick_upper", tick_upper),
        liquidity=to_wire(amount(liquidity)),
    )


class ProposalBuilder:
    """A proposal under construction; start from `swap`, `add_liquidity` or
    `remove_liquidity`. Each setter returns the builder, for chaining."""

    def __init__(self, action):
        self._action = action
        self._expected_amount0 = ZERO
        self._expected_amount1 = ZERO
        self._max_slippage_bps = 0
        self._reason = ""

    def expect(self, amount0, amount1):
        """Magnitudes of token0 and token1 the strategy expects to move (see
        `Proposal` for which direction each one goes)."""
        self._expected_amount0 = amount(amount0)
        self._expected_amount1 = amount(amount1)
        return self

    def max_slippage_bps(self, bps):
        """How far the simulated outcome may fall short of the expectation, in basis
        points; over `MAX_SLIPPAGE_BPS` is refused by `build`, as in Rust."""
        self._max_slippage_bps = require_u32("max_slippage_bps", bps)
        return self

    def sqrt_price_limit(self, limit_x96):
        """A price limit for a swap (Q64.96); ignored for liquidity actions."""
        limit = to_wire(amount(limit_x96))
        if isinstance(self._action, SwapAction):
            self._action = SwapAction(
                pool=self._action.pool,
                zero_for_one=self._action.zero_for_one,
                amount_in=self._action.amount_in,
                sqrt_price_limit_x96=limit,
            )
        return self

    def reason(self, text):
        """Why the strategy wants this; shown to the operator who approves it."""
        if not isinstance(text, str):
            raise IntegerTypeError(f"reason must be a str, got {type(text).__name__}")
        self._reason = text
        return self

    def build(self):
        """The proposal, or a `ProposalError` for what the host would refuse anyway."""
        if self._max_slippage_bps > MAX_SLIPPAGE_BPS:
            raise SlippageOutOfRange(self._max_slippage_bps)
        action = self._action
        if isinstance(action, SwapAction):
            if action.amount_in == "0":
                raise ZeroAmount("swap")
        else:
            if action.tick_lower >= action.tick_upper:
                raise EmptyRange(action.tick_lower, action.tick_upper)
            if action.liquidity == "0":
                raise ZeroAmount("liquidity")
        return Proposal(
            action=action,
            expected_amount0=to_wire(self._expected_amount0),
            expected_amount1=to_wire(self._expected_amount1),
            max_slippage_bps=self._max_slippage_bps,
            reason=self._reason,
        )
