"""A Python strategy that misbehaves on purpose, one way per `{"mode": ...}`.

Written straight against componentize-py's bindings rather than the SDK: it tests the host's
limits on an interpreter-sized guest (fuel, deadline, memory, output caps), so it must do the
harm itself, not through code that might guard against it.

Modes: `loop` (spins in on-event), `alloc` (grows memory until refused), `raise-init`
(an ordinary exception escapes `init`), `err-init` (init returns the world's error),
`raise` (an exception escapes on-event), `flood` (ten thousand proposals, far past the cap),
`giant-string` (a proposal whose reason is 8 MiB), `well-behaved`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

MODES = {
    "loop",
    "alloc",
    "raise-init",
    "err-init",
    "raise",
    "flood",
    "giant-string",
    "well-behaved",
}

# componentize-py makes one WitWorld object per export, so `init` and `on_event` run on
# different objects: what must outlive a call lives at module level.
_mode = None


def _proposal(reason: str) -> types.Proposal:
    return types.Proposal(
        action=types.Action_Swap(
            types.SwapAction(
                pool="0x0000000000000000000000000000000000000001",
                zero_for_one=True,
                amount_in="1",
                sqrt_price_limit_x96=None,
            )
        ),
        expected_amount0="0",
        expected_amount1="0",
        max_slippage_bps=0,
        reason=reason,
    )


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global _mode
        mode = json.loads(config).get("mode")
        if mode not in MODES:
            raise Err(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        if mode == "raise-init":
            raise ValueError("raised on purpose in init")
        if mode == "err-init":
            raise Err("refused on purpose in init")
        _mode = mode

    def on_event(self, event: types.Event, snapshot: types.Snapshot) -> list:
        if _mode == "loop":
            n = 0
            while True:
                n += 1
        if _mode == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if _mode == "raise":
            raise RuntimeError("raised on purpose in on-event")
        if _mode == "flood":
            one = _proposal("flood")
            return [one] * 10_000
        if _mode == "giant-string":
            return [_proposal("x" * (8 << 20))]
        return []

    def save(self) -> bytes:
        return (_mode or "").encode()

    def restore(self, state: bytes) -> None:
        pass
