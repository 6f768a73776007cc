"""Run a sweep: skip finished points, claim the rest one by one, evaluate them on an executor and
store rows as they finish.

Sweeps that share one store split the work: each point is claimed in the store just before it is
handed to a worker (:meth:`sim.sweep.store.ResultStore.claim`), so a second sweep skips what the
first is computing and takes the next free point. A background thread refreshes this run's claims
every :data:`CLAIM_HEARTBEAT_S` seconds; a claim whose heartbeat is older than
:data:`CLAIM_STALE_S` belongs to a sweep that died and is taken over. Points another live sweep
holds are waited for at the end and counted as ``by_others`` once its rows appear.

Ctrl-C or SIGTERM (:class:`KeyboardInterrupt`, see :func:`accel.cli.main`) stops the workers,
releases the claims and returns the summary with ``interrupted`` set: every finished row is
stored, and the same command resumes.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accel.progress import Progress
from sim.sweep.evaluate import evaluate_point
from sim.sweep.executors import Executor, WorkerLost
from sim.sweep.spec import PointSpec
from sim.sweep.store import ResultStore

__all__ = ["SweepSummary", "run_sweep", "spread_configs", "CLAIM_STALE_S", "CLAIM_HEARTBEAT_S"]

#: Seconds after which another sweep's claim without a heartbeat is taken over.
CLAIM_STALE_S = 60.0
#: Seconds between two heartbeats of this run's claims.
CLAIM_HEARTBEAT_S = 10.0


@dataclass
class SweepSummary:
    """What one run of a sweep did (JSON-ready via :meth:`to_dict`).

    ``skipped``: points that had a row before this run; ``by_others``: points another sweep on the
    same store finished while this one ran; ``interrupted``: ``"SIGINT"``/``"SIGTERM"`` when the
    run was stopped, else None.
    """

    points: int = 0
    skipped: int = 0
    finished: int = 0
    by_others: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    lost: int = 0
    seconds: float = 0.0
    interrupted: str | None = None

    @property
    def complete(self) -> bool:
        """True when every point of the sweep has a row now."""
        return (not self.failed and not self.lost and not self.interrupted
                and self.skipped + self.finished + self.by_others == self.points)

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points, "skipped": self.skipped, "finished": self.finished,
                "by_others": self.by_others, "failed": self.failed, "lost": self.lost,
                "seconds": self.seconds, "interrupted": self.interrupted,
                "complete": self.complete}


class _Heartbeat(threading.Thread):
    """Refreshes the claims of ``owner`` in its own connection until stopped."""

    def __init__(self, path: Path, owner: str, every: float) -> None:
        super().__init__(name="sweep-claims-heartbeat", daemon=True)
        self.path, self.owner, self.every = path, owner, every
        self.halt = threading.Event()

    def run(self) -> None:
        store = ResultStore(self.path)
        try:
            while not self.halt.wait(self.every):
                store.heartbeat(self.owner)
        finally:
            store.close()


def run_sweep(points: list[PointSpec], store: ResultStore, executor: Executor,
              evaluate: Callable[[PointSpec], dict[str, Any]] = evaluate_point,
              progress: Progress | None = None, stale_after: float = CLAIM_STALE_S,
              heartbeat: float = CLAIM_HEARTBEAT_S, poll: float = 2.0) -> SweepSummary:
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
        Total ``len(points)``; the points already stored are counted with ``skip`` (not in the
        rate), then one step per point finished, failed or finished by another sweep.
    stale_after, heartbeat, poll : float
        Seconds: age of a dead sweep's claim, period of this run's heartbeats, and the wait
        between two looks at points another sweep holds.
    """
    start = time.perf_counter()
    summary = SweepSummary(points=len(points))
    todo = [p for p in points if not store.finished(p)]
    summary.skipped = len(points) - len(todo)
    if progress is not None:
        progress.skip(summary.skipped)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    beat = _Heartbeat(store.path, owner, heartbeat)
    beat.start()

    def step(note: str) -> None:
        if progress is not None:
            progress.advance(1, note)

    try:
        todo = spread_configs(todo)
        while todo:
            busy: list[PointSpec] = []

            def claimed() -> Iterator[PointSpec]:
                for spec in todo:
                    state = store.claim(spec, owner, stale_after)
                    if state == "mine":
                        yield spec
                    elif state == "busy":
                        busy.append(spec)
                    else:
                        summary.by_others += 1
                        step(f"{spec.label}: finished by another sweep")

            for spec, row, error in executor.run(evaluate, claimed()):
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
                step(note)
            if summary.lost:
                break
            todo = busy
            if todo:            # held by another live sweep: look again shortly
                time.sleep(poll)
    except KeyboardInterrupt as e:
        summary.interrupted = str(e) or "SIGINT"
    finally:
        beat.halt.set()
        beat.join()
        store.release(owner)
        if progress is not None:
            progress.close()
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
