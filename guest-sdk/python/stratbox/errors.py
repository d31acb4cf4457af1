"""The one error family the SDK raises on purpose, and how any error becomes host text.

A strategy's failure crosses the WIT boundary as a plain string. Errors the SDK raises
deliberately (a refused amount, a Solidity `require`, a bad config) carry a message
that is already meant for the operator, and it is the same text the Rust SDK gives for
the same refusal, so a Python and a Rust strategy fail alike. Anything else is a bug in
the strategy; its message is prefixed with the exception's type and where it was raised,
because "list index out of range" alone helps nobody.
"""

import traceback


class StrategyError(Exception):
    """A refusal whose message goes to the host verbatim.

    Raise it (or a subclass) from a strategy to fail a call with exactly that text.
    Two errors are equal when they are of one type with one message, so tests can
    compare them the way the Rust tests compare enum values.
    """

    def __eq__(self, other):
        return type(self) is type(other) and self.args == other.args

    def __hash__(self):
        return hash((type(self), self.args))

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class ConfigError(StrategyError, ValueError):
    """The operator's config was refused; the message says which field and why."""


def describe(exc):
    """The text the host gets for `exc`.

    A `StrategyError` keeps its message. Any other exception is a bug, so the reader
    gets its type and the innermost frame it came from as well.
    """
    if isinstance(exc, StrategyError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        name = last.filename.replace("\\", "/").rsplit("/", 1)[-1]
        text += f" (at {name}:{last.lineno} in {last.name})"
    return text
