"""The benchmarks' one timing rule: the shortest wall time of several runs (the machine is
shared, so the minimum is the signal). Imported by the scripts of this folder, which Python runs
with the folder on ``sys.path``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Shortest wall time of ``fn()`` over ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
