"""stratbox: the Python author SDK for stratbox strategies.

What a strategy author depends on: exact 256-bit amounts (`stratbox.amount`), exact
Uniswap V3 math (`stratbox.v3`), proposal builders (`stratbox.proposal`), the event and
snapshot types (`stratbox.types`), the host's log and history (`stratbox.host`), and
`BaseStrategyAgent` with `export`, which makes a componentize-py component of it.

Everything here but `export` (and `host` inside a component) is plain Python with the
standard library, so strategies are unit-tested under CPython. No float ever carries an
amount or a price: amounts are `int`s in [0, 2^256) and cross the boundary as strict
base-10 strings.
"""

from . import amount, host, proposal, types, v3
from .agent import BaseStrategyAgent
from .amount import AmountError, AmountParseError, parse_wire, to_wire
from .errors import ConfigError, StrategyError
from .export import export
from .proposal import Proposal, ProposalError, add_liquidity, remove_liquidity, swap
from .types import (
    Burn,
    Event,
    EventOrigin,
    LiquidityEvent,
    Mint,
    NewBlock,
    OraclePrice,
    PoolState,
    Snapshot,
    SwapEvent,
    TokenBalance,
    same_address,
)
from .v3 import MathError

__version__ = "0.1.1"
