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


def best_of_each(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """:func:`best_of` for several functions whose times are compared, run in turn in each of
    ``repeat`` rounds, so that a slow phase of the shared machine weighs on all of them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
