"""What a strategy is handed: events and the snapshot, as immutable records.

They mirror the WIT records field for field (amounts stay wire strings, as on the
wire, so nothing is converted that the strategy does not read), but belong to the SDK
rather than to the generated bindings: a strategy and its tests then run under plain
CPython, and a WIT version bump touches `stratbox.wire` instead of every strategy.
They are immutable because they are the host's view of the chain: a strategy that edits
its snapshot is about to reason about a state that never existed.

Why named tuples and not frozen dataclasses: every call builds a snapshot and an event
from the bindings, and a frozen dataclass's `__init__` sets each field through
`object.__setattr__`, which made that conversion the largest part of a warm call. A
tuple is built in one step (`stratbox.wire` calls `tuple.__new__` directly). Equality
still includes the type, so a `Mint` never equals a `Burn` with the same fields.

Each event has `kind` (the WIT case name), `origin` (None for a new block), `block`
and `pool` (None for events that concern no pool), so a strategy can filter without
matching every case; `isinstance(e, Event)` holds for all five.
"""

from abc import ABC
from typing import NamedTuple, Optional, Tuple

from .amount import ZERO, parse_wire, parse_wire_bits

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_address(a, b):
    """Addresses arrive in any hex case; comparing them byte for byte would make a
    strategy silently ignore its own pool. ASCII-only, as Rust's `eq_ignore_ascii_case`,
    so both SDKs agree on every pair of strings."""
    return a == b or a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)


def _eq(self, other):
    return type(self) is type(other) and tuple.__eq__(self, other)


def _ne(self, other):
    return not _eq(self, other)


def _hash(self):
    return hash((type(self).__name__, tuple.__hash__(self)))


class TokenBalance(NamedTuple):
    token: str
    amount: str


class PoolState(NamedTuple):
    """The state of one Uniswap V3 pool at the snapshot's watermark block."""

    pool: str
    token0: str
    token1: str
    fee: int
    """Fee in hundredths of a basis point (3000 = 0.3%)."""
    tick_spacing: int
    sqrt_price_x96: str
    """Q64.96 square root of the price of token0 in token1, as a wire string."""
    tick: int
    liquidity: str
    """In-range liquidity, as a wire string."""

    def sqrt_price(self):
        """The pool's Q64.96 square-root price, parsed."""
        return parse_wire(self.sqrt_price_x96)

    def liquidity_u128(self):
        """In-range liquidity, parsed; the pool stores it as `uint128`."""
        return parse_wire_bits(self.liquidity, 128)


class Snapshot(NamedTuple):
    """What a strategy may know when it is called: nothing after `last_sync_block`."""

    last_sync_block: int
    timestamp: int
    """Unix seconds of the watermark block; the only clock a strategy has."""
    pools: Tuple[PoolState, ...]
    balances: Tuple[TokenBalance, ...]
    """Balances of the account this instance trades for."""

    def pool(self, address) -> Optional[PoolState]:
        """The state of `address` at the watermark, if the host included it."""
        for state in self.pools:
            if same_address(state.pool, address):
                return state
        return None

    def balance(self, token):
        """This instance's balance of `token`; a token the host did not list counts as
        zero."""
        for balance in self.balances:
            if same_address(balance.token, token):
                return parse_wire(balance.amount)
        return ZERO


class EventOrigin(NamedTuple):
    """Position of an event in the chain; orders events and identifies them uniquely."""

    block: int
    log_index: int
    tx_hash: str
    """0x-prefixed 32-byte hash of the transaction, empty for synthetic events."""


class Event(ABC):
    """Base of the five event kinds (registered, as named tuples take no other base);
    see the module docstring for what they share."""

    __slots__ = ()


class NewBlock(NamedTuple):
    """A new block (WIT `new-block(block-info)`)."""

    number: int
    timestamp: int
    hash: str

    kind = "new-block"
    origin = None
    pool = None

    @property
    def block(self):
        return self.number


class SwapEvent(NamedTuple):
    """A swap, written as unsigned magnitudes: `zero_for_one` says which way it went.
    Price, liquidity and tick are the pool's state after the swap."""

    origin: EventOrigin
    pool: str
    zero_for_one: bool
    amount_in: str
    amount_out: str
    sqrt_price_x96: str
    liquidity: str
    tick: int

    kind = "swap"

    @property
    def block(self):
        return self.origin.block

    def sqrt_price(self):
        """The pool's Q64.96 square-root price after this swap, parsed."""
        return parse_wire(self.sqrt_price_x96)


class LiquidityEvent(NamedTuple):
    """A mint or burn on a tick range; see `Mint` and `Burn`."""

    origin: EventOrigin
    pool: str
    owner: str
    tick_lower: int
    tick_upper: int
    liquidity: str
    amount0: str
    amount1: str

    @property
    def block(self):
        return self.origin.block


class Mint(LiquidityEvent):
    """Liquidity added (WIT `mint(liquidity-event)`)."""

    __slots__ = ()
    kind = "mint"


class Burn(LiquidityEvent):
    """Liquidity removed (WIT `burn(liquidity-event)`)."""

    __slots__ = ()
    kind = "burn"


class OraclePrice(NamedTuple):
    """A price from one oracle source: units of `quote` per one unit of `base`, as a
    fixed-point integer with 18 decimals (raw units on both sides)."""

    origin: EventOrigin
    source: str
    base: str
    quote: str
    price_e18: str

    kind = "oracle-price"
    pool = None

    @property
    def block(self):
        return self.origin.block


for _record in (TokenBalance, PoolState, Snapshot, EventOrigin, NewBlock, SwapEvent, LiquidityEvent, OraclePrice):
    _record.__eq__ = _eq
    _record.__ne__ = _ne
    _record.__hash__ = _hash
for _event in (NewBlock, SwapEvent, LiquidityEvent, OraclePrice):
    Event.register(_event)
del _record, _event
