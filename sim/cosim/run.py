"""A whole model on the RTL: the executor with the ``rtl`` back end over a dataset.

:func:`cosim` feeds the executor blocks of several batches (so that the GEMMs of one layer run
in parallel across batches: the back end splits each block back into per-batch GEMMs), caches
every GEMM's outcome under ``out_dir/gemms`` as it finishes (a rerun resumes), and saves each
failing GEMM under ``out_dir/replay`` with its rerun command. Accuracy is computed from the
RTL's own outputs: the logits are what the executor computed from the values the RTL sent back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.config import ArrayConfig
from accel.stats import ModelResult
from sim.cosim.backend import CosimFailure, LayerCosim, RtlBackend
from sim.cosim.gemm import StimulusSpec

__all__ = ["CosimResult", "cosim", "gemm_count", "BATCHES_PER_WORKER"]

#: Batches per worker in one executor call (a block): enough GEMMs per layer to keep every
#: worker busy, few enough that a block's activations stay small.
BATCHES_PER_WORKER = 4


@dataclass
class CosimResult:
    """What :func:`cosim` found: the model's results and statistics (events from the golden
    model), the co-simulation totals per layer, and every failing GEMM."""

    model: ModelResult
    layers: list[LayerCosim]
    failures: list[CosimFailure]
    config: ArrayConfig
    stimulus: StimulusSpec
    wall_s: float
    out_dir: str | None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def gemms(self) -> int:
        return sum(s.gemms for s in self.layers)

    @property
    def edges(self) -> int:
        return sum(s.edges for s in self.layers)

    @property
    def harness_seconds(self) -> float:
        return sum(s.seconds for s in self.layers)

    def table(self) -> str:
        """Per-layer table, totals, accuracy and the failures (the human summary)."""
        head = (f"{'layer':<16} {'GEMMs':>6} {'y beats':>10} {'mismatch':>8} {'RTL cycles':>12} "
                f"{'closed form':>12} {'sim cycles/s':>13} {'per CPU s':>11}")
        lines = [head, "-" * len(head)]
        for s in self.layers + [self._total()]:
            lines.append(f"{s.name[:16]:<16} {s.gemms:>6} {s.y_beats:>10,} {s.mismatches:>8} "
                         f"{s.cycles:>12,} {s.closed_form:>12,} {s.cycles_per_second:>13,.0f} "
                         f"{s.cycles_per_cpu_second:>11,.0f}")
        res = self.model
        acc = "n/a" if res.accuracy is None else f"{100 * res.accuracy:.2f} %"
        ref = "" if res.reference_accuracy is None else \
            f" (the source runtime's own: {100 * res.reference_accuracy:.2f} %)"
        cached = sum(s.cached for s in self.layers)
        lines += ["", f"array {self.config.name}, {self.stimulus.describe()}",
                  f"samples {res.samples}, accuracy from the RTL's outputs {acc}{ref}",
                  f"{self.gemms} GEMMs ({cached} from the cache"
                  + (f" in {self.out_dir}" if self.out_dir else "") + f"), {self.edges:,} "
                  f"simulated cycles in {self.harness_seconds:.2f} s of harness time; wall "
                  f"{self.wall_s:.1f} s"]
        if self.stimulus.canonical:
            same = all(s.cycles == s.closed_form for s in self.layers)
            lines.append("cycles: every GEMM's measured cycles "
                         + ("equal the closed form" if same else "DIFFER from the closed form"))
        lines.append(f"{'PASSED' if self.ok else 'FAILED'}: "
                     f"{sum(s.y_beats for s in self.layers):,} y beats checked against the golden "
                     f"model, {sum(s.mismatches for s in self.layers)} mismatching, "
                     f"{len(self.failures)} failing GEMMs")
        for f in self.failures[:5]:
            lines.append(str(f))
        if len(self.failures) > 5:
            lines.append(f"... and {len(self.failures) - 5} more failing GEMMs (see the JSON)")
        return "\n".join(lines)

    def _total(self) -> LayerCosim:
        t = LayerCosim("total")
        for s in self.layers:
            for k in ("gemms", "cached", "y_beats", "mismatches", "failed_gemms", "cycles",
                      "closed_form", "edges"):
                setattr(t, k, getattr(t, k) + getattr(s, k))
            t.seconds += s.seconds
            t.cpu_seconds += s.cpu_seconds
        return t

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "config": self.config.to_dict(), "config_name": self.config.name,
                "stimulus": {**self.stimulus.__dict__, "canonical": self.stimulus.canonical},
                "samples": self.model.samples, "accuracy": self.model.accuracy,
                "reference_accuracy": self.model.reference_accuracy,
                "layers": [s.to_dict() for s in self.layers], "total": self._total().to_dict(),
                "failures": [{"layer": f.layer, "gemm": f.gemm, "report": f.text,
                              "rerun": f.rerun, "replay": f.replay} for f in self.failures],
                "wall_s": self.wall_s, "out_dir": self.out_dir,
                "model_result": self.model.to_dict()}


def gemm_count(graph: Any, samples: int, batch: int) -> int:
    """GEMMs a run of ``samples`` in batches of ``batch`` issues: per array layer and batch, one
    per convolution group."""
    return -(-samples // batch) * sum(n.layer.groups for n in graph.array_nodes)


def cosim(graph: Any, batches: Callable[[int], tuple[Iterable[tuple[Any, Any]], int]],
          config: ArrayConfig, *, batch: int, executor: Any = None,
          stimulus: StimulusSpec = StimulusSpec(), seed: int = 0,
          out_dir: str | Path | None = None, fresh: bool = False,
          reference: Callable[[Any], dict[str, Any]] | None = None,
          root: str | Path | None = None,
          progress: Callable[[Any, Any], None] | None = None,
          flip: tuple[str, int, int] | None = None, build: Any = None) -> CosimResult:
    """Run ``graph`` with every GEMM on the RTL of ``config``.

    Parameters
    ----------
    batches : callable
        ``batches(block) -> (iterator of (inputs, labels), samples)`` in blocks of ``block``
        samples (e.g. :func:`accel.cli.inputs.batches` on a dataset).
    batch : int
        Samples per GEMM (the executor's batch size; cycles are per batch).
    executor : sim.sweep.executors.Executor, optional
        Where GEMMs run (None: this process).
    out_dir : path, optional
        ``gemms/`` (outcome cache: a rerun resumes) and ``replay/`` (failing GEMMs).
    fresh : bool
        Do not read cached outcomes (they are still written).
    reference, progress, flip, build
        As in :func:`accel.executor.simulate` and :class:`RtlBackend`.
    """
    from accel.executor import simulate

    out = None if out_dir is None else Path(out_dir)
    workers = getattr(executor, "workers", 1) if executor is not None else 1
    backend = RtlBackend(config, batch=batch, executor=executor, stimulus=stimulus, seed=seed,
                         cache=None if out is None else out / "gemms", fresh=fresh,
                         replay_dir=None if out is None else out / "replay",
                         on_mismatch="record", root=root, progress=progress, flip=flip,
                         build=build)
    stream, _ = batches(batch * BATCHES_PER_WORKER * max(1, workers))
    start = time.perf_counter()
    with backend:
        res = simulate(graph, stream, backend, reference=reference)
    layers = [backend.layers[n.name] for n in graph.array_nodes if n.name in backend.layers]
    return CosimResult(res, layers, backend.failures, config, stimulus,
                       time.perf_counter() - start, None if out is None else str(out))
