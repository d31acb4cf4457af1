"""`BaseStrategyAgent`: what a Python strategy subclasses.

The host calls `init` once per instance (and again whenever it rebuilds the instance
after a failure), then `on-event` for every event in chain order; `stratbox.export`
turns those calls into `from_config` and `generate_proposals` on one agent object.
Everything a strategy may know arrives in those calls or through `stratbox.host`; there
is no clock, file or network, so an agent that is a pure function of its inputs is
deterministic for free.
"""

from .config import load_json, read_struct
from .errors import ConfigError, StrategyError


class BaseStrategyAgent:
    """Subclass it, implement `__init__(self, config)` and `generate_proposals`.

    `name` prefixes config errors ("bad NAME config: ..."), as the Rust strategies do;
    it defaults to the class name.
    """

    name = None

    def __init__(self, config):
        """Builds the instance from the operator's config, already parsed from JSON.

        Raise (ideally a `stratbox.ConfigError`) to refuse it; the message reaches the
        operator.
        """
        self.config = config

    @classmethod
    def from_config(cls, config):
        """The agent for `config`, the operator's JSON text.

        Invalid JSON (including NaN, Infinity and duplicate keys, which serde also
        refuses) raises `ConfigError`; the parsed value goes to `__init__`.
        """
        try:
            value = load_json(config)
        except ConfigError as e:
            raise ConfigError(f"bad {cls._config_name()} config: {e}") from None
        return cls(value)

    @classmethod
    def _config_name(cls):
        return cls.name or cls.__name__

    def read_config(self, value, struct_name, fields):
        """`stratbox.config.read_struct` with this agent's "bad NAME config: " prefix,
        the way a Rust strategy's serde errors read."""
        try:
            return read_struct(value, struct_name, fields)
        except StrategyError as e:
            raise ConfigError(f"bad {self._config_name()} config: {e}") from None

    def generate_proposals(self, event, snapshot):
        """Reacts to one event with zero or more `stratbox.Proposal`s.

        `snapshot` is the state as of the watermark. An exception fails this call only:
        the host logs it and the instance carries on with the next event.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement generate_proposals")

    def save(self):
        """What the next version needs to carry on where this one stops, as bytes in
        this strategy's own format (version it: the reader may be a newer release).

        The default has nothing to hand over.
        """
        return b""

    def restore(self, state):
        """Takes over `state` written by `save` of an earlier (or the same) version;
        called after `from_config`, before the first event. On an exception the instance
        must be left as `from_config` made it; the host logs the reason and runs it.

        The default accepts only an empty state: silently dropping a predecessor's state
        would hide that the new version starts from scratch.
        """
        if state:
            raise StrategyError(
                f"{type(self).__name__} does not restore saved state ({len(state)} bytes "
                "ignored); it starts from its initial state"
            )
