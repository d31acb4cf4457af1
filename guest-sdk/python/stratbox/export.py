"""`export`: makes the `WitWorld` class componentize-py builds a component from.

Why the agent lives in a closure and not on `self`: componentize-py (0.25.1, runtime
`do_init`) creates one `WitWorld()` per *exported function* when the component is
initialised, and calls each export on its own object. `init` and `on-event` therefore
run on two different `WitWorld` instances, and state kept on `self` in `init` would be
missing in `on-event`. The one agent instance is held in a slot shared by the class
instead; `init` replaces it (so a host that re-initialises after a failure gets a fresh
instance) and a failed `init` leaves it empty.

Why every exception is caught: componentize-py turns only a raised
`componentize_py_types.Err` into the WIT `result`'s error; any other exception traps the
instance. A strategy's bug must fail one call, not the instance, so every exception
becomes `Err(text)` (see `stratbox.errors.describe`). `save` has no error case in WIT;
a failing `save` is logged and hands over nothing rather than trapping.
"""

from . import host
from .agent import BaseStrategyAgent
from .errors import describe


class _Slot:
    """The agent of this component instance, or None before a successful `init`."""

    def __init__(self):
        self.agent = None


def _err_text(exc, err_type):
    if isinstance(exc, err_type) and isinstance(exc.value, str):
        return exc.value
    return describe(exc)


def export(agent_class):
    """The `WitWorld` class for `agent_class`; bind it to the name componentize-py looks
    up in the app module: `WitWorld = stratbox.export(MyAgent)`.

    Needs the bindings componentize-py generates, so call it only in the module that is
    componentized (keep the agent in its own module, importable by tests).
    """
    if not (isinstance(agent_class, type) and issubclass(agent_class, BaseStrategyAgent)):
        raise TypeError("export() takes a subclass of stratbox.BaseStrategyAgent")

    import wit_world
    from componentize_py_types import Err

    from .wire import event_from_wit, proposal_to_wit, snapshot_from_wit

    slot = _Slot()

    def fail(exc):
        return Err(_err_text(exc, Err))

    class WitWorld(wit_world.WitWorld):
        def init(self, config):
            slot.agent = None
            error = None
            try:
                agent = agent_class.from_config(config)
                if not isinstance(agent, agent_class):
                    raise TypeError(f"from_config returned {type(agent).__name__}, not {agent_class.__name__}")
                slot.agent = agent
            except BaseException as e:  # noqa: BLE001 - anything else traps the instance
                error = fail(e)
            if error is not None:
                raise error

        def on_event(self, event, snapshot):
            agent = slot.agent
            if agent is None:
                raise Err("on-event called before a successful init")
            error = None
            try:
                proposals = agent.generate_proposals(event_from_wit(event), snapshot_from_wit(snapshot))
                if proposals is None:
                    proposals = []
                if not isinstance(proposals, (list, tuple)):
                    raise TypeError(f"generate_proposals returned {type(proposals).__name__}, not a list")
                return [proposal_to_wit(i, p) for i, p in enumerate(proposals)]
            except BaseException as e:  # noqa: BLE001
                error = fail(e)
            raise error

        def save(self):
            agent = slot.agent
            if agent is None:
                return b""
            try:
                state = agent.save()
                if not isinstance(state, (bytes, bytearray, memoryview)):
                    raise TypeError(f"save returned {type(state).__name__}, not bytes")
                return bytes(state)
            except BaseException as e:  # noqa: BLE001
                host.error(f"save failed, handing over no state: {describe(e)}")
                return b""

        def restore(self, state):
            agent = slot.agent
            if agent is None:
                raise Err("restore called before a successful init")
            error = None
            try:
                agent.restore(bytes(state))
                return None
            except BaseException as e:  # noqa: BLE001
                error = fail(e)
            raise error

    WitWorld.__qualname__ = WitWorld.__name__ = "WitWorld"
    WitWorld.agent_class = agent_class
    return WitWorld
