"""clamm-maker: holds one concentrated-liquidity position around the current price and
moves it when the price walks away. The Python twin of `strategies/clamm-maker`: on the
same config and events it makes the same proposals, string for string.

Config (JSON):
`{"pool": "0x...", "half_width_ticks": 600, "margin_ticks": 120,
  "liquidity": "1000000000000000000", "max_slippage_bps": 50}`

On each swap in its pool, and on each new block, it reads the pool from the snapshot:
- no position yet: propose adding `liquidity` on a range centred on the current tick,
  aligned to the pool's tick spacing;
- price more than `margin_ticks` outside the range: propose removing the old range and
  adding a new one centred on the current tick.

Expected amounts come from the SDK's exact math: what the pool charges for the mint
(rounded up) and what `get_amounts_for_liquidity` says the burn returns (rounded down).

The only state is the range it believes it holds, so the same events give the same
proposals. Like the Rust one it hands no state over on a hot swap (the default `save`).
"""

from typing import NamedTuple

from stratbox import BaseStrategyAgent, NewBlock, StrategyError, SwapEvent, same_address
from stratbox.config import amount_field, i32_field, string_field, u32_field
from stratbox.ints import U128_MAX
from stratbox.proposal import add_liquidity, remove_liquidity
from stratbox.v3 import (
    MAX_TICK,
    MIN_TICK,
    amounts_for_mint,
    get_amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
)

CONFIG_FIELDS = [
    ("pool", string_field),
    # Half the range width, in ticks; rounded up to the pool's tick spacing.
    ("half_width_ticks", i32_field),
    # How far past the range edge the price may go before the position is moved.
    ("margin_ticks", i32_field),
    # Liquidity units to provide (the pool's `uint128`).
    ("liquidity", amount_field),
    ("max_slippage_bps", u32_field),
]


class Range(NamedTuple):
    """A tick range `[lower, upper)`."""

    lower: int
    upper: int


class ClammMaker(BaseStrategyAgent):
    name = "clamm-maker"

    def __init__(self, config):
        c = self.read_config(config, "Config", CONFIG_FIELDS)
        if c["half_width_ticks"] <= 0 or c["half_width_ticks"] > MAX_TICK:
            raise StrategyError(
                f"half_width_ticks must be in 1..={MAX_TICK}, got {c['half_width_ticks']}"
            )
        if c["margin_ticks"] < 0:
            raise StrategyError(f"margin_ticks must not be negative, got {c['margin_ticks']}")
        if c["max_slippage_bps"] > 10_000:
            raise StrategyError(f"max_slippage_bps must be <= 10000, got {c['max_slippage_bps']}")
        if c["liquidity"] > U128_MAX:
            raise StrategyError("liquidity must fit in uint128")
        if c["liquidity"] == 0:
            raise StrategyError("liquidity must be positive")
        self.pool = c["pool"]
        self.half_width_ticks = c["half_width_ticks"]
        self.margin_ticks = c["margin_ticks"]
        self.liquidity = c["liquidity"]
        self.max_slippage_bps = c["max_slippage_bps"]
        self.position = None
        """The range the maker believes it holds (it assumes its proposals are executed)."""

    def generate_proposals(self, event, snapshot):
        if isinstance(event, NewBlock):
            relevant = True
        elif isinstance(event, SwapEvent):
            relevant = same_address(event.pool, self.pool)
        else:
            relevant = False
        if not relevant:
            return []
        pool = snapshot.pool(self.pool)
        if pool is None:
            return []
        held = self.position
        if held is None:
            new = centred_range(pool.tick, pool.tick_spacing, self.half_width_ticks)
            add = self._add(pool, new)
            self.position = new
            return [add]
        if outside(pool.tick, held, self.margin_ticks):
            new = centred_range(pool.tick, pool.tick_spacing, self.half_width_ticks)
            remove = self._remove(pool, held)
            add = self._add(pool, new)
            self.position = new
            return [remove, add]
        return []

    def _add(self, pool, rng):
        a, b = range_prices(rng)
        amount0, amount1 = amounts_for_mint(pool.sqrt_price(), a, b, self.liquidity)
        return (
            add_liquidity(self.pool, rng.lower, rng.upper, self.liquidity)
            .expect(amount0, amount1)
            .max_slippage_bps(self.max_slippage_bps)
            .reason(f"centre liquidity on tick {pool.tick}")
            .build()
        )

    def _remove(self, pool, rng):
        a, b = range_prices(rng)
        amount0, amount1 = get_amounts_for_liquidity(pool.sqrt_price(), a, b, self.liquidity)
        return (
            remove_liquidity(self.pool, rng.lower, rng.upper, self.liquidity)
            .expect(amount0, amount1)
            .max_slippage_bps(self.max_slippage_bps)
            .reason(
                f"tick {pool.tick} left [{rng.lower}, {rng.upper}) by more than {self.margin_ticks}"
            )
            .build()
        )


def range_prices(rng):
    return get_sqrt_ratio_at_tick(rng.lower), get_sqrt_ratio_at_tick(rng.upper)


def outside(tick, rng, margin):
    """True once `tick` is more than `margin` ticks below the range or at/above its
    upper edge by more than `margin` (the range is half-open, so `upper` itself is
    already outside)."""
    return tick < rng.lower - margin or tick >= rng.upper + margin


def centred_range(tick, spacing, half_width):
    """A range of about `2 * half_width` ticks centred on `tick`, on tick-spacing
    multiples, clamped to the ticks the pool can use.

    Rust computes this in i64 with `div_euclid` for the centre and Solidity's
    truncating division for the usable bounds; Python's `//` floors, so the bounds
    are written with the sign handled explicitly.
    """
    if spacing <= 0:
        raise StrategyError(f"pool tick spacing {spacing} is not positive")
    s = spacing
    centre = (min(max(tick, MIN_TICK), MAX_TICK) // s) * s
    half = ((max(half_width, 1) + s - 1) // s) * s
    # `TickMath.MIN_TICK / spacing * spacing`: Solidity divides toward zero.
    min_usable = -((-MIN_TICK) // s) * s
    max_usable = (MAX_TICK // s) * s
    lower = max(centre - half, min_usable)
    upper = min(centre + half, max_usable)
    if lower >= upper:
        raise StrategyError(f"no usable range around tick {tick} with spacing {spacing}")
    return Range(lower, upper)
