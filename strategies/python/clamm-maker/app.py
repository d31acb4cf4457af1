"""The module componentize-py builds: the agent, exported as the world's `WitWorld`.

Kept apart from `clamm_maker` because `export` needs the generated bindings, which
exist only inside a componentize-py build; tests import `clamm_maker` directly.
"""

from clamm_maker import ClammMaker

import stratbox

WitWorld = stratbox.export(ClammMaker)
