"""One GEMM of a model on the harness, checked: golden beat for beat, closed-form cycles.

A :class:`GemmJob` is a self-contained task (operands, configuration, stimulus, the built
harness), so that worker processes or a Dask cluster can run it; :func:`run_gemm` runs it and
returns a :class:`GemmOutcome`: the RTL's own values and flags in GEMM layout, the golden
model's event counts (the RTL has flags, no counts), the beats checked and the first
disagreement (:func:`sim.tb.scoreboard.compare`, the cocotb scoreboard's comparison), and under
the canonical stimulus the measured cycles next to :func:`sim.cycles.gemm_cycles`.

Outcomes are cached by the job's content hash (:meth:`GemmJob.key`: harness build stamp,
operands, stimulus) in a :class:`GemmCache` folder, which is what lets an interrupted
``accel cosim`` resume.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel.arith import exact_matmul
from accel.config import ArrayConfig
from accel.overq import OverQStats
from sim.cycles import gemm_cycles
from sim.tb.scoreboard import compare, expect
from sim.tb.streams import STREAMS, Stimulus, random_stimulus

__all__ = ["StimulusSpec", "GemmJob", "GemmOutcome", "GemmCache", "run_gemm", "save_job",
           "beat_counts", "CACHE_VERSION"]

#: Format of cached outcomes; bump to ignore every cached GEMM.
CACHE_VERSION = 2


@dataclass(frozen=True)
class StimulusSpec:
    """How a job's sources and ``y`` sink behave: canonical (the default), or seeded random gaps
    before beats and ``y_ready`` drops (:func:`sim.tb.streams.random_stimulus`).

    Attributes
    ----------
    gap_prob : float
        Probability of a gap before each ``w``, ``b``, ``x`` beat, in [0, 1).
    max_gap : int
        Longest gap, edges.
    stall_prob : float
        Probability per edge that ``y_ready`` drops, in [0, 1).
    max_stall : int
        Longest drop, edges.
    """

    gap_prob: float = 0.0
    max_gap: int = 0
    stall_prob: float = 0.0
    max_stall: int = 0

    def __post_init__(self) -> None:
        random_stimulus({s: 0 for s in STREAMS}, 0, 0, self.gap_prob, self.max_gap,
                        self.stall_prob, self.max_stall)          # the same checks, now

    @property
    def canonical(self) -> bool:
        """No gaps and ``y_ready`` = 1 (SPEC section 6): cycles are checked."""
        return self.gap_prob == 0.0 and self.stall_prob == 0.0

    def draw(self, counts: dict[str, int], cycles: int, seed: int) -> Stimulus | None:
        """The stimulus of a job with ``counts`` beats whose canonical run takes ``cycles``."""
        if self.canonical:
            return None
        edges = 2 * cycles * (1 + self.max_gap) + 64      # beyond it y_ready stays 1
        return random_stimulus(counts, edges, seed, self.gap_prob, self.max_gap,
                               self.stall_prob, self.max_stall)

    def describe(self) -> str:
        """One line: canonical, or which random gaps and back-pressure."""
        if self.canonical:
            return "canonical stimulus (no gaps, y_ready = 1)"
        parts = [f"random gaps (p = {self.gap_prob:g}, up to {self.max_gap} edges)"
                 if self.gap_prob else "",
                 f"random y back-pressure (p = {self.stall_prob:g}, up to {self.max_stall} "
                 "edges)" if self.stall_prob else ""]
        return " and ".join(p for p in parts if p)


@dataclass(frozen=True)
class GemmJob:
    """One GEMM of a model: ``Y[T, O] = X[T, K] . W[K, O] (+ bias)`` on the harness.

    Attributes
    ----------
    build : sim.runner.HarnessBuild
        The harness to run on (rebuilt from its configuration where the executable is missing,
        e.g. on a cluster worker).
    x : int [T, K]
        Lane codes (float32 holding integers, as the lowering gives them, or int).
    w : int64 [K, O]
    bias : int64 [O] or None
    layer : str
        The layer's name.
    batch, group : int
        Which GEMM of the layer: the batch of samples and the convolution group.
    seed : int
        Seed of the random stimulus (unused under the canonical stimulus).
    stimulus : StimulusSpec
    root : str or None
        Build root for a rebuild (:func:`sim.runner.build_harness`).
    flip : (int, int) or None
        Fault injection: invert bit ``flip[1]`` of received ``y`` beat ``flip[0]``.
    """

    build: Any
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray | None
    layer: str
    batch: int
    group: int
    seed: int = 0
    stimulus: StimulusSpec = StimulusSpec()
    root: str | None = None
    flip: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """``conv2 batch 3 group 0``."""
        return f"{self.layer} batch {self.batch} group {self.group}"

    @property
    def shape(self) -> tuple[int, int, int]:
        return int(self.x.shape[0]), int(self.x.shape[1]), int(self.w.shape[1])

    def key(self) -> str:
        """Content hash: what the outcome depends on (harness, operands, stimulus, fault)."""
        h = hashlib.sha256(json.dumps([
            CACHE_VERSION, self.build.stamp, self.build.config.hash, self.shape,
            dataclasses.asdict(self.stimulus), None if self.stimulus.canonical else self.seed,
            self.flip]).encode())
        for a in (self.x, self.w, self.bias):
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()[:32]


@dataclass
class GemmOutcome:
    """A job's result as the RTL gave it, and how it compared.

    Attributes
    ----------
    y : int64 [T, O]
        The RTL's results (the golden ones where it sent no beat: a failed job).
    pe_overflow, acc_overflow : bool [T, O]
        The RTL's ``y_pe_ovf`` / ``y_acc_ovf`` flags (golden where it sent no beat).
    exact : int64 [T, O]
        Exact ``bias + x . w``.
    pe_events, acc_events : int
        Overflow events of the golden model.
    overq : OverQStats or None
        The golden encoder's statistics (OverQ).
    y_beats, y_expected : int
        ``y`` beats received and compared, and expected.
    bad_beats : int
        Received beats that differ from the golden model in any field.
    first : (int, int, int, str, int, int) or None
        ``(beat, t, o, field, got, want)`` of the first value mismatch.
    status, message : str
        The harness's status (``ok``, ``watchdog``, ...) and its message.
    cycles : int or None
        Measured cycles (completed jobs).
    closed_form : int
        :func:`sim.cycles.gemm_cycles` of the shape.
    canonical : bool
        Run under the canonical stimulus (then ``cycles`` must equal ``closed_form`` and every
        ``y`` beat's latency the manifest's).
    latencies, latency : list of int, int
        The distinct ``y`` latencies measured (edges from an ``x_emit`` transfer to its ``y``
        transfer) and the manifest's.
    edges, seconds, cpu_seconds : int, float, float
        Simulated edges and the driver loop's wall and CPU time.
    """

    y: np.ndarray
    pe_overflow: np.ndarray
    acc_overflow: np.ndarray
    exact: np.ndarray
    pe_events: int
    acc_events: int
    overq: OverQStats | None
    y_beats: int
    y_expected: int
    bad_beats: int
    first: tuple[int, int, int, str, int, int] | None
    status: str
    message: str
    cycles: int | None
    closed_form: int
    canonical: bool
    latencies: list[int]
    latency: int
    edges: int
    seconds: float
    cpu_seconds: float
    cached: bool = field(default=False, compare=False)

    @property
    def cycles_ok(self) -> bool:
        """Not canonical, or cycles as the closed form and every latency the manifest's."""
        return not self.canonical or (self.cycles == self.closed_form
                                      and self.latencies == [self.latency])

    @property
    def ok(self) -> bool:
        """Completed, every beat equal to the golden model's, cycles as the closed form."""
        return self.status == "ok" and self.bad_beats == 0 and \
            self.y_beats == self.y_expected and self.cycles_ok

    _ARRAYS = ("y", "pe_overflow", "acc_overflow", "exact")

    def save(self, path: Path) -> None:
        """Write to ``path`` (an ``.npz``; atomically, so a killed run leaves no torn file)."""
        meta = {k: v for k, v in dataclasses.asdict(self).items()
                if k not in self._ARRAYS and k not in ("overq", "cached")}
        meta["overq"] = None if self.overq is None else dataclasses.asdict(self.overq)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **{k: getattr(self, k) for k in self._ARRAYS})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "GemmOutcome":
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in cls._ARRAYS}
        oq = meta.pop("overq")
        meta["first"] = tuple(meta["first"]) if meta["first"] is not None else None
        return cls(**arrays, **meta, cached=True,
                   overq=None if oq is None else OverQStats(tuple(oq.pop("handled")), **oq))


class GemmCache:
    """Outcomes by job key (:meth:`GemmJob.key`), one ``.npz`` file each in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> GemmOutcome | None:
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            return GemmOutcome.load(p)
        except (OSError, ValueError, KeyError, TypeError):   # torn or foreign: run it again
            return None

    def put(self, key: str, outcome: GemmOutcome) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        outcome.save(self._path(key))


def beat_counts(bt: Any) -> dict[str, int]:
    """Beats on each input stream of a job (:class:`sim.schedule.Beats`)."""
    return {"w": len(bt.w_lanes), "b": len(bt.b_lanes), "x": len(bt.x_lanes)}


def save_job(job: GemmJob, folder: str | Path) -> Path:
    """Save ``job`` for a cocotb replay (:func:`sim.tb.scenarios.replay_job`): operands, the
    stimulus it ran under, and the configuration (``config.json``)."""
    from sim.schedule import beats
    from sim.tb.scenarios import save_replay

    cfg = job.build.config
    t, k, o = job.shape
    bt = beats(np.asarray(job.x).astype(np.int64), job.w, job.bias, cfg)
    stim = job.stimulus.draw(beat_counts(bt), gemm_cycles(t, k, o, cfg).cycles, job.seed)
    out = save_replay(folder, job.x, job.w, job.bias, stim)
    cfg.save(out / "config.json")
    return out


@functools.lru_cache(maxsize=8)
def _harness(build: Any, root: str | None) -> Any:
    """The harness of ``build`` in this process (rebuilt where its executable is missing, unless
    it is a fault-injected build: only its maker has the faulty design)."""
    from sim.cosim.harness import Harness, HarnessError
    from sim.runner import build_harness

    if not Path(build.binary).exists():
        if build.variant is not None:
            raise HarnessError(f"the fault-injected harness {build.binary} is missing here; it "
                               "cannot be rebuilt from its configuration")
        build = build_harness(build.config, root)
    return Harness(build)


def run_gemm(job: GemmJob) -> GemmOutcome:
    """Run ``job`` on the harness and check it (module docstring)."""
    cfg: ArrayConfig = job.build.config
    harness = _harness(job.build, job.root)
    x = np.asarray(job.x).astype(np.int64)
    t, k, o = job.shape
    exp = expect(x, job.w, job.bias, cfg)
    closed = gemm_cycles(t, k, o, cfg).cycles
    bt = exp.beats
    run = harness.run(bt, job.stimulus.draw(beat_counts(bt), closed, job.seed), job.flip)
    n, found, bad = compare(job.label, exp, run.fields, cfg.cols, run.complete)
    res = exp.result
    y, pe, acc = res.y.copy(), res.pe_overflow.copy(), res.acc_overflow.copy()
    if n:      # the RTL's beats in GEMM layout: lane c of beat (t, g) is output g * C + c
        c = cfg.cols
        groups = -(-o // c)
        tt, gg = bt.y_order[:n, 0], bt.y_order[:n, 1]
        received = np.zeros((t, groups), dtype=bool)
        received[tt, gg] = True
        mask = np.repeat(received, c, axis=1)[:, :o]         # outputs a received beat carried
        for name, out in (("y_data", y), ("y_pe_ovf", pe), ("y_acc_ovf", acc)):
            lanes = np.zeros((t, groups, c), dtype=np.int64)
            lanes[tt, gg] = run.fields[name][:n]
            v = lanes.reshape(t, groups * c)[:, :o]
            out[mask] = v[mask] == 1 if out.dtype == bool else v[mask]
    first = next((m for m in found if m.t >= 0), None)
    return GemmOutcome(
        y=y, pe_overflow=pe, acc_overflow=acc,
        exact=exact_matmul(x, job.w) + (0 if job.bias is None else np.asarray(job.bias)),
        pe_events=int(res.pe_events), acc_events=int(res.acc_events), overq=res.overq,
        y_beats=n, y_expected=len(exp.y), bad_beats=bad,
        first=None if first is None else (first.beat, first.t, first.o, first.field, first.got,
                                          first.want),
        status=run.status, message=run.message, cycles=run.cycles, closed_form=closed,
        canonical=job.stimulus.canonical, latencies=run.latencies, latency=harness.latency,
        edges=run.edges, seconds=run.seconds,
        cpu_seconds=run.cpu_seconds)

