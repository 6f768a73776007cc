"""Run a sweep: skip finished points, evaluate the rest on an executor, store rows as they finish."""

from __future__ import annotations

import datetime
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.sweep.evaluate import evaluate_point
from sim.sweep.executors import Executor, WorkerLost
from sim.sweep.progress import Progress
from sim.sweep.spec import PointSpec
from sim.sweep.store import ResultStore

__all__ = ["SweepSummary", "run_sweep", "spread_configs"]


@dataclass
class SweepSummary:
    """What one run of a sweep did (JSON-ready via :meth:`to_dict`)."""

    points: int = 0
    skipped: int = 0
    finished: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    lost: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when every point of the sweep has a row now."""
        return not self.failed and not self.lost

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points, "skipped": self.skipped, "finished": self.finished,
                "failed": self.failed, "lost": self.lost, "seconds": self.seconds,
                "complete": self.complete}


def run_sweep(points: list[PointSpec], store: ResultStore, executor: Executor,
              evaluate: Callable[[PointSpec], dict[str, Any]] = evaluate_point,
              progress: Progress | None = None) -> SweepSummary:
    """Evaluate every point that the store does not hold yet.

    Rows are written one transaction each as points finish, so a run killed at any moment keeps
    every finished point and the next run does only the rest. A point whose evaluation raises is
    recorded in the store's ``failures`` table (with the error) and retried by the next run.

    Parameters
    ----------
    points : list of PointSpec
    store : ResultStore
    executor : Executor
    evaluate : callable
        The point evaluator (default :func:`sim.sweep.evaluate.evaluate_point`); must be
        importable by workers (a module-level function).
    progress : Progress, optional
        Advanced once per point of the run (skipped points are counted up front).
    """
    start = time.perf_counter()
    summary = SweepSummary(points=len(points))
    todo = [p for p in points if not store.finished(p)]
    summary.skipped = len(points) - len(todo)
    for spec, row, error in executor.run(evaluate, spread_configs(todo)):
        if error is None:
            store.add(row)
            summary.finished += 1
            note = f"{spec.label}: accuracy {_pct(row.get('accuracy'))}"
        elif isinstance(error, WorkerLost):
            summary.lost += 1
            note = f"{spec.label}: lost ({error})"
        else:
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            store.add_failure(spec, text, _now())
            summary.failed.append({"point": spec.label, "error": text})
            note = f"{spec.label}: FAILED: {text}"
        if progress is not None:
            progress.update(1, note)
    summary.seconds = time.perf_counter() - start
    return summary


def spread_configs(points: list[PointSpec]) -> list[PointSpec]:
    """Reorder points round-robin over their configurations.

    Points of one configuration share its synthesis (cached on disk by the flow); running them
    back to back would make concurrent workers synthesise the same array at once. Spread out,
    the first points synthesise distinct arrays and later ones find their area in the cache.
    """
    groups: dict[str, list[PointSpec]] = {}
    for p in points:
        groups.setdefault(p.config.hash, []).append(p)
    out = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
