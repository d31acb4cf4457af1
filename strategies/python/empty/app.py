"""The world in Python with nothing in it: `init` accepts any config and `on_event`
returns no proposals without reading its arguments.

It is the floor of a componentize-py strategy: what one call costs in the bindings'
lifting of the event and snapshot into Python objects, the dispatch into the interpreter
and the lowering of the empty result, before any strategy or SDK code runs.
`stratbox bench host` times it beside the Python clamm-maker, so the SDK's own share of
a call is the difference of two figures measured in one run.
"""

import wit_world


class WitWorld(wit_world.WitWorld):
    def init(self, config):
        return None

    def on_event(self, event, snapshot):
        return []

    def save(self):
        return b""

    def restore(self, state):
        return None
