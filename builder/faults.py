"""Fault injection for the crash-safety tests; inert unless its environment variable is set.

``BUILDER_CRASH_AFTER_<NAME>=N`` makes the N-th pass through :func:`crash_point` ``NAME`` kill
this process with SIGKILL (``samples``: right after a sample is written, i.e. inside an
unfinished shard; ``shards``: right after a finished shard is recorded in the manifest).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_passes: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Count a pass through crash point ``name``; SIGKILL on the configured pass."""
    limit = os.environ.get(f"BUILDER_CRASH_AFTER_{name.upper()}")
    if limit is None:
        return
    _passes[name] += 1
    if _passes[name] >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)
