"""Where points run: local worker processes (default) or an existing Dask distributed cluster.

An executor takes the points and yields ``(spec, row, error)`` as each finishes, in completion
order; the caller (:func:`sim.sweep.run.run_sweep`) writes rows to the store as they arrive, so
workers never touch the database and a cluster needs no shared file system. A point is any
picklable task for the evaluator: sweep points, or the GEMM jobs of a co-simulation
(:mod:`sim.cosim.backend`). Used as a context manager (``with executor: ...``) an executor keeps
its worker pool (or cluster client) across several ``run`` calls; otherwise each call starts and
stops its own.

* :class:`LocalExecutor`: a ``ProcessPoolExecutor`` of ``workers`` processes (default 2, one per
  core of a laptop). A worker that dies (killed, out of memory) breaks the pool: the points in
  flight are reported with :class:`WorkerLost` and the sweep stops; a rerun resumes. Workers
  ignore SIGINT (the parent alone handles Ctrl-C and stops them) and exit on their own within
  :data:`ORPHAN_POLL_S` seconds when the parent dies, even in the middle of a point.
* :class:`DaskExecutor`: ``distributed.Client(address)`` on a running scheduler (a
  ``dask-jobqueue`` SLURMCluster / LSFCluster's ``scheduler_address``, or a ``LocalCluster``). The
  workers must have accel-hw installed.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sim.sweep.errors import SweepError
from sim.sweep.spec import PointSpec

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "WorkerLost", "make_executor", "EXECUTORS",
           "ORPHAN_POLL_S"]

#: Seconds between a worker's checks that its parent is still alive.
ORPHAN_POLL_S = 0.5

EXECUTORS = ("local", "dask")
Evaluator = Callable[[Any], Any]
Outcome = tuple[Any, Any, BaseException | None]


class WorkerLost(RuntimeError):
    """A worker process died while it ran a point (the point is not recorded; rerun to resume)."""


class Executor:
    """Runs ``evaluate`` on every point; yields outcomes as points finish."""

    name = "executor"

    def run(self, evaluate: Evaluator, points: Iterable[PointSpec]) -> Iterator[Outcome]:
        """Evaluate ``points``, drawn lazily (a point is taken only when a worker can start it)."""
        raise NotImplementedError

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> str:
        raise NotImplementedError


def _exit_when_orphaned(parent: int) -> None:
    while True:
        if os.getppid() != parent:       # the parent died: we were re-parented
            os._exit(1)
        threading.Event().wait(ORPHAN_POLL_S)


def _worker_init(parent: int) -> None:
    # each worker gets one core's worth of threads; set before numpy/torch load their pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    # Ctrl-C reaches the whole process group: only the parent handles it (and stops us)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True,
                     name="exit-when-orphaned").start()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel queued points and terminate the workers (no waiting for points)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)


class LocalExecutor(Executor):
    """Local processes (``spawn``: a fresh interpreter per worker, no inherited threads).

    Parameters
    ----------
    workers : int
        Worker processes (default 2).
    """

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise SweepError(f"--workers must be a positive integer, not {workers!r}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None      # kept while used as a context

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers > 1 else ''}"

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))

    def __enter__(self) -> "LocalExecutor":
        self._pool = self._new_pool()
        return self

    def __exit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            if exc[0] is None:
                pool.shutdown(wait=True)
            else:
                _stop(pool)

    def run(self, evaluate: Evaluator, points: Iterable[PointSpec]) -> Iterator[Outcome]:
        todo = iter(points)
        first = next(todo, None)
        if first is None:
            return
        todo = itertools.chain([first], todo)
        kept = self._pool
        pool = kept or self._new_pool()
        try:
            pending: dict[Future, PointSpec] = {}

            def submit_one() -> None:
                """Queue the next point; once the pool broke (a worker died) it is lost at once."""
                spec = next(todo, None)
                if spec is not None:
                    try:
                        pending[pool.submit(evaluate, spec)] = spec
                    except BrokenProcessPool:
                        pending[_broken()] = spec

            # keep the queue short: a killed sweep then loses at most `workers` points in flight,
            # and points are claimed only when a worker is about to start them
            for _ in range(self.workers + 1):
                submit_one()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    spec = pending.pop(fut)
                    try:
                        yield spec, fut.result(), None
                    except BrokenProcessPool:
                        lost = [spec, *pending.values()]
                        pending.clear()
                        if kept is not None:         # a broken pool cannot be used again
                            self._pool = None
                            _stop(pool)
                        for s in lost:
                            yield s, None, WorkerLost(
                                "a worker process died (killed or out of memory) while points were "
                                "running; finished points are saved: run the same sweep again to "
                                "resume")
                        return
                    except Exception as e:  # the point's own error: record it, go on
                        yield spec, None, e
                    submit_one()
        except BaseException:                # Ctrl-C, SIGTERM, a closed generator: stop now
            if kept is not None:
                self._pool = None
            _stop(pool)
            raise
        if kept is None:
            pool.shutdown(wait=True)


def _broken() -> Future:
    """A future that already failed with BrokenProcessPool: a point the broken pool refused."""
    fut: Future = Future()
    fut.set_exception(BrokenProcessPool("the pool broke before this point could start"))
    return fut


class DaskExecutor(Executor):
    """Points as tasks on a Dask distributed cluster.

    Parameters
    ----------
    scheduler : str
        Address of a running scheduler (``tcp://host:8786``).
    """

    name = "dask"

    def __init__(self, scheduler: str) -> None:
        if not scheduler:
            raise SweepError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786), "
                             "the address of a running Dask scheduler")
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise SweepError("--executor dask needs the 'distributed' package: "
                             "pip install 'dask[distributed]' (or accel-hw[cluster])") from None
        self.scheduler = scheduler
        self._kept: Any = None                              # the client, while used as a context

    def describe(self) -> str:
        return f"Dask cluster at {self.scheduler}"

    def _client(self) -> Any:
        from distributed import Client

        try:
            return Client(self.scheduler, timeout="20s")
        except OSError as e:
            raise SweepError(f"cannot reach the Dask scheduler at {self.scheduler}: {e}") from None

    def __enter__(self) -> "DaskExecutor":
        self._kept = self._client()
        return self

    def __exit__(self, *exc: object) -> None:
        client, self._kept = self._kept, None
        if client is not None:
            client.close()

    def run(self, evaluate: Evaluator, points: Iterable[PointSpec]) -> Iterator[Outcome]:
        from distributed import as_completed

        kept = self._kept
        client = kept or self._client()
        futures: list[Any] = []
        try:
            points = list(points)
            futures = [client.submit(evaluate, spec, pure=False) for spec in points]
            by_key = {fut.key: spec for fut, spec in zip(futures, points)}
            for fut in as_completed(futures):
                spec = by_key[fut.key]
                try:
                    yield spec, fut.result(), None
                except Exception as e:
                    yield spec, None, e
                fut.release()
        except BaseException:                # Ctrl-C, SIGTERM: take the points off the cluster
            client.cancel(futures)
            raise
        finally:
            if kept is None:
                client.close()


def make_executor(name: str, workers: int = 2, scheduler: str | None = None) -> Executor:
    """The executor called ``name`` (:data:`EXECUTORS`), checked before any work."""
    if name == "local":
        if scheduler:
            raise SweepError("--scheduler is only used with --executor dask")
        return LocalExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler or "")
    raise SweepError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
