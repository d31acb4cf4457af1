"""A stand-in for the bindings componentize-py generates (`wit_world`,
`wit_world.imports.types`, `componentize_py_types`), with the same class names and
fields, so `stratbox.export` can be tested under plain CPython.

The real ones come from `componentize-py ... bindings OUT`; if the WIT changes, this
must follow (host/runtime/tests/foreign.rs runs the real build under the host).
"""

import sys
import types as pytypes
from dataclasses import dataclass, make_dataclass
from typing import Any, Protocol

_RECORDS = {
    "TokenBalance": ["token", "amount"],
    "PoolState": ["pool", "token0", "token1", "fee", "tick_spacing", "sqrt_price_x96", "tick", "liquidity"],
    "Snapshot": ["last_sync_block", "timestamp", "pools", "balances"],
    "BlockInfo": ["number", "timestamp", "hash"],
    "EventOrigin": ["block", "log_index", "tx_hash"],
    "SwapEvent": ["origin", "pool", "zero_for_one", "amount_in", "amount_out", "sqrt_price_x96", "liquidity", "tick"],
    "LiquidityEvent": ["origin", "pool", "owner", "tick_lower", "tick_upper", "liquidity", "amount0", "amount1"],
    "OraclePrice": ["origin", "source", "base", "quote", "price_e18"],
    "SwapAction": ["pool", "zero_for_one", "amount_in", "sqrt_price_limit_x96"],
    "RangeLiquidity": ["pool", "tick_lower", "tick_upper", "liquidity"],
    "Proposal": ["action", "expected_amount0", "expected_amount1", "max_slippage_bps", "reason"],
}
_CASES = [
    "Event_NewBlock",
    "Event_Swap",
    "Event_Mint",
    "Event_Burn",
    "Event_OraclePrice",
    "Action_Swap",
    "Action_AddLiquidity",
    "Action_RemoveLiquidity",
]


@dataclass(frozen=True)
class Err(Exception):
    value: Any


def install():
    """Puts the fake modules in `sys.modules`; returns the `types` module."""
    cpt = pytypes.ModuleType("componentize_py_types")
    cpt.Err = Err
    types = pytypes.ModuleType("wit_world.imports.types")
    for name, fields in _RECORDS.items():
        setattr(types, name, make_dataclass(name, fields))
    for name in _CASES:
        setattr(types, name, make_dataclass(name, ["value"]))
    imports = pytypes.ModuleType("wit_world.imports")
    imports.types = types
    world = pytypes.ModuleType("wit_world")

    class WitWorld(Protocol):
        pass

    world.WitWorld = WitWorld
    world.imports = imports
    sys.modules.update(
        {
            "componentize_py_types": cpt,
            "wit_world": world,
            "wit_world.imports": imports,
            "wit_world.imports.types": types,
        }
    )
    return types


def uninstall():
    for name in ("componentize_py_types", "wit_world", "wit_world.imports", "wit_world.imports.types"):
        sys.modules.pop(name, None)
