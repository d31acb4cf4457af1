"""Puts the SDK and the Python example strategies on `sys.path`, so the tests run with
`python3 -m unittest discover -s guest-sdk/python/tests` from anywhere, without
installing anything."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(SDK))
CLAMM = os.path.join(ROOT, "strategies", "python", "clamm-maker")

for path in (SDK, CLAMM):
    if path not in sys.path:
        sys.path.insert(0, path)
