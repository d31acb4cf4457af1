"""The two things the host offers a strategy: a log line and a look at past events.

Inside a component these call the WIT imports. Under plain CPython (a strategy's unit
tests) there is no host, so they fall back to a test double, `testing`: logs are
collected and `history` serves events a test installed. A strategy's logic is then
tested through the same calls it makes in the sandbox.
"""

from enum import IntEnum

from .types import same_address


class Level(IntEnum):
    """The WIT `level` enum, in its order."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


_host = None
_checked = False


def _bindings():
    """The generated `host` import module inside a component, else None.

    `componentize_py_runtime` exists only inside a componentize-py build (the bindings
    directory ships just a `.pyi` of it), so its absence means "plain CPython".
    """
    global _host, _checked
    if not _checked:
        _checked = True
        try:
            import componentize_py_runtime  # noqa: F401
            from wit_world.imports import host
        except ImportError:
            host = None
        _host = host
    return _host


def log(level, message):
    """Writes one line to the host's log, tagged there with strategy, instance and
    trace id."""
    level = Level(level)
    message = str(message)
    host = _bindings()
    if host is None:
        testing.logs.append((level, message))
    else:
        host.log(host.Level(int(level)), message)


def trace(message):
    log(Level.TRACE, message)


def debug(message):
    log(Level.DEBUG, message)


def info(message):
    log(Level.INFO, message)


def warn(message):
    log(Level.WARN, message)


def error(message):
    log(Level.ERROR, message)


def history(pool, from_block, limit):
    """Past events of `pool` from `from_block` on, oldest first, at most `limit`. The
    host never returns anything after the current watermark, so this cannot see the
    future."""
    host = _bindings()
    if host is None:
        return testing.serve_history(pool, from_block, limit)
    from .wire import event_from_wit

    return [event_from_wit(e) for e in host.history(pool, from_block, limit)]


class testing:
    """The CPython stand-in for the host, shared by the whole process."""

    logs = []
    """(Level, message) pairs logged so far; `take_logs` empties it."""
    events = []

    @classmethod
    def set_history(cls, events):
        """Installs the events `history` serves, in chain order. Like the real host it
        filters by pool and block and caps at `limit`; the caller must not install
        events past the watermark it is simulating."""
        cls.events = list(events)

    @classmethod
    def take_logs(cls):
        """Takes (and clears) the lines logged so far."""
        logs, cls.logs = cls.logs, []
        return logs

    @classmethod
    def serve_history(cls, pool, from_block, limit):
        out = []
        for event in cls.events:
            if len(out) >= limit:
                break
            if event.pool is not None and same_address(event.pool, pool) and event.block >= from_block:
                out.append(event)
        return out
