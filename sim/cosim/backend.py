"""The ``rtl`` array back end of the executor: every GEMM of a model on the generated Verilog.

:class:`RtlBackend` implements :class:`accel.backends.ArrayBackend`: for each array-layer call it
lowers the input codes to the layer's GEMMs (:func:`accel.lowering.lower`), one job per batch of
``batch`` samples and per convolution group (the GEMMs the executor issues for that batch, so
cycles are per batch as in ``accel simulate``), runs them on the compiled harness
(:func:`sim.cosim.gemm.run_gemm`) in parallel on an executor (:mod:`sim.sweep.executors`: local
processes or Dask; None runs them here), and returns what the RTL computed: values and both
overflow flags per output from the ``y`` beats, event counts from the golden model. Every beat is
compared with the golden model and, under the canonical stimulus, every GEMM's cycles with the
closed form; a disagreement is a :class:`CosimFailure` that names the layer, the GEMM, (t, o),
both values, the seed and a one-line cocotb command that replays the GEMM with waves (its
operands and stimulus are saved under ``replay_dir``).

Example::

    backend = RtlBackend(config, batch=32, executor=LocalExecutor(2), cache="out/cosim/gemms")
    with backend:
        res = simulate(graph, batches, backend)
    backend.layers["conv2"].cycles, backend.failures
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accel.backends import LayerRun, check_layer_fits
from accel.config import ArrayConfig
from accel.layers import IntLayer
from accel.lowering import gemm_shape, lower, raise_output
from sim.cosim.gemm import GemmCache, GemmJob, GemmOutcome, StimulusSpec, run_gemm, save_job

__all__ = ["RtlBackend", "CosimFailure", "CosimMismatch", "LayerCosim"]

#: The per-output results of an outcome that make a layer's :class:`LayerRun`.
RESULTS = ("y", "exact", "pe_overflow", "acc_overflow")


class CosimMismatch(AssertionError):
    """The RTL disagreed with the golden model (or the cycle model); the message says where."""


@dataclass(frozen=True)
class CosimFailure:
    """One GEMM whose RTL run disagreed: where, what, and how to replay it.

    ``text`` is the report: layer, GEMM, (t, o), field, both values, the seed and the rerun
    command.
    """

    layer: str
    gemm: str
    text: str
    rerun: str | None
    replay: str | None

    def __str__(self) -> str:
        return self.text


@dataclass
class LayerCosim:
    """Co-simulation totals of one layer over every call.

    ``cycles`` are the RTL's (completed GEMMs), ``closed_form`` the cycle model's for the same
    GEMMs; ``seconds`` the harness loop's wall time, so ``edges / seconds`` is the simulation
    speed.
    """

    name: str
    gemms: int = 0
    cached: int = 0
    y_beats: int = 0
    mismatches: int = 0
    failed_gemms: int = 0
    cycles: int = 0
    closed_form: int = 0
    edges: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def cycles_per_second(self) -> float:
        """Simulated clock cycles per second of the harness loop's wall time."""
        return self.edges / self.seconds if self.seconds else 0.0

    @property
    def cycles_per_cpu_second(self) -> float:
        """The same per second of its CPU time (comparable on a loaded machine)."""
        return self.edges / self.cpu_seconds if self.cpu_seconds else 0.0

    def add(self, o: GemmOutcome) -> None:
        self.gemms += 1
        self.cached += int(o.cached)
        self.y_beats += o.y_beats
        self.mismatches += o.bad_beats
        self.failed_gemms += int(not o.ok)
        self.cycles += o.cycles or 0
        self.closed_form += o.closed_form
        self.edges += o.edges
        self.seconds += o.seconds
        self.cpu_seconds += o.cpu_seconds

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "cycles_per_second": self.cycles_per_second,
                "cycles_per_cpu_second": self.cycles_per_cpu_second}


def _stable_seed(*parts: object) -> int:
    """A 31-bit seed from its parts (the same in every process and run)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


class RtlBackend:
    """Array back end that runs every GEMM on the Verilated RTL (module docstring).

    Parameters
    ----------
    config : ArrayConfig
        The array (plain or OverQ); its harness is built (cached) on construction.
    batch : int, optional
        Samples per GEMM: a layer call on more samples is split into GEMMs of ``batch``
        samples (the executor's batches), all in parallel. None: one GEMM per call and group.
    executor : sim.sweep.executors.Executor, optional
        Where GEMMs run (None: in this process, one after another).
    stimulus : StimulusSpec
        Canonical (default: values and cycles checked) or random gaps and back-pressure
        (values checked).
    seed : int
        Seeds every GEMM's random stimulus (each GEMM's own seed derives from it, its layer
        and its position).
    cache : path, optional
        Folder of outcomes by GEMM content hash: finished GEMMs are not run again.
    fresh : bool
        Run every GEMM even when the cache has it (outcomes are still written).
    replay_dir : path, optional
        Where a failing GEMM's operands and stimulus are saved for its rerun command
        (default: ``<cache>/../replay``, else none saved).
    on_mismatch : {"raise", "record"}
        Raise :class:`CosimMismatch` at the end of the layer call with a failure, or record it
        in :attr:`failures` and go on with the RTL's values.
    root : path, optional
        Build root of the harness (:func:`sim.runner.build_harness`).
    progress : callable, optional
        ``progress(outcome, job)`` after each GEMM.
    flip : (str, int, int), optional
        Fault injection, for testing the checker: in every GEMM of the layer named
        ``flip[0]``, invert bit ``flip[2]`` of ``y`` beat ``flip[1]`` as received.
    build : sim.runner.HarnessBuild, optional
        The harness to run on instead of ``build_harness(config, root)`` (a fault-injected
        design, for testing the checker: :func:`sim.runner.build_harness`'s ``dut``).
    """

    semantics = ("RTL co-simulation: every GEMM on the generated Verilog (Verilator harness), "
                 "checked beat for beat against the golden model")

    def __init__(self, config: ArrayConfig, *, batch: int | None = None, executor: Any = None,
                 stimulus: StimulusSpec = StimulusSpec(), seed: int = 0,
                 cache: str | Path | None = None, fresh: bool = False,
                 replay_dir: str | Path | None = None,
                 on_mismatch: str = "raise", root: str | Path | None = None,
                 progress: Callable[[GemmOutcome, GemmJob], None] | None = None,
                 flip: tuple[str, int, int] | None = None, build: Any = None) -> None:
        from sim.runner import build_harness

        if on_mismatch not in ("raise", "record"):
            raise ValueError(f"on_mismatch must be 'raise' or 'record', not {on_mismatch!r}")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                                  or batch < 1):
            raise ValueError(f"batch must be a positive number of samples, not {batch!r}")
        self.config = config
        self.batch, self.executor, self.stimulus, self.seed = batch, executor, stimulus, seed
        self.on_mismatch, self.progress, self.flip = on_mismatch, progress, flip
        self.root = None if root is None else str(root)
        if build is not None and build.config != config:
            raise ValueError(f"the harness was built for {build.config.name}, not {config.name}")
        self.build = build_harness(config, self.root) if build is None else build
        self.cache = None if cache is None else GemmCache(cache)
        self.fresh = fresh
        if replay_dir is None and cache is not None:
            replay_dir = Path(cache).parent / "replay"
        self.replay_dir = None if replay_dir is None else Path(replay_dir)
        self.layers: dict[str, LayerCosim] = {}
        self.failures: list[CosimFailure] = []
        self._batches: dict[str, int] = {}        # batches each layer has run: GEMM numbers

    def __enter__(self) -> "RtlBackend":
        if self.executor is not None:
            self.executor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.executor is not None:
            self.executor.__exit__(*exc)

    # --- one layer call ---------------------------------------------------------------------
    def _jobs(self, layer: IntLayer, codes: np.ndarray
              ) -> list[tuple[tuple[int, ...], list[GemmJob]]]:
        """The GEMM jobs of a call: per batch of samples (its input shape), one per group."""
        step = self.batch or codes.shape[0]
        out = []
        for s0 in range(0, codes.shape[0], step):
            b = self._batches.get(layer.name, 0)
            self._batches[layer.name] = b + 1
            part = codes[s0:s0 + step]
            out.append((part.shape, [
                GemmJob(self.build, x, w, bias, layer.name, b, g,
                        _stable_seed(self.seed, layer.name, b, g), self.stimulus, self.root,
                        self._flip_for(layer.name))
                for g, (x, w, bias) in enumerate(lower(layer, part, self.config.lane_range))]))
        return out

    def _flip_for(self, name: str) -> tuple[int, int] | None:
        return None if self.flip is None or self.flip[0] != name else self.flip[1:]

    def _outcomes(self, jobs: list[GemmJob]) -> list[GemmOutcome]:
        """Outcomes in job order: from the cache, else run (in parallel), cached as they come."""
        done: dict[int, GemmOutcome] = {}
        keys = [job.key() if self.cache is not None else "" for job in jobs]
        todo = []
        for i, job in enumerate(jobs):
            hit = self.cache.get(keys[i]) if self.cache is not None and not self.fresh else None
            if hit is not None:
                done[i] = hit
                self._note(hit, job)
            else:
                todo.append(i)
        if self.executor is None:
            results = ((i, run_gemm(jobs[i]), None) for i in todo)
        else:
            index = {id(jobs[i]): i for i in todo}
            results = ((index[id(job)], out, err)
                       for job, out, err in self.executor.run(run_gemm, [jobs[i] for i in todo]))
        for i, out, err in results:
            if err is not None:
                raise err
            if self.cache is not None:
                self.cache.put(keys[i], out)
            done[i] = out
            self._note(out, jobs[i])
        return [done[i] for i in range(len(jobs))]

    def _note(self, out: GemmOutcome, job: GemmJob) -> None:
        self.layers.setdefault(job.layer, LayerCosim(job.layer)).add(out)
        if not out.ok:
            self.failures.append(self._failure(out, job))
        if self.progress is not None:
            self.progress(out, job)

    def run(self, layer: IntLayer, codes: np.ndarray) -> LayerRun:
        """The layer's results as the RTL computed them (events from the golden model)."""
        check_layer_fits(layer, self.config)
        codes = np.asarray(codes)
        shape = gemm_shape(layer, codes.shape)
        per_batch = self._jobs(layer, codes)
        failed = len(self.failures)
        outcomes = self._outcomes([j for _, jobs in per_batch for j in jobs])
        it = iter(outcomes)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in RESULTS}
        for part_shape, jobs in per_batch:
            outs = [next(it) for _ in jobs]
            sub = gemm_shape(layer, part_shape)
            for key in RESULTS:
                parts[key].append(raise_output(layer, [getattr(o, key) for o in outs], sub))
        overq = None
        for o in outcomes:
            if o.overq is not None:
                overq = o.overq if overq is None else overq + o.overq
        if self.on_mismatch == "raise" and len(self.failures) > failed:
            new = self.failures[failed:]
            more = f"\n({len(new) - 1} more GEMMs of {layer.name} failed)" if len(new) > 1 else ""
            raise CosimMismatch(f"{new[0]}{more}")

        def cat(key: str) -> np.ndarray:
            return np.ascontiguousarray(np.concatenate(parts[key], axis=0))

        return LayerRun(cat("y"), cat("exact"), cat("pe_overflow"), cat("acc_overflow"),
                        sum(o.pe_events for o in outcomes), sum(o.acc_events for o in outcomes),
                        shape, overq=overq)

    # --- reporting --------------------------------------------------------------------------
    def _failure(self, out: GemmOutcome, job: GemmJob) -> CosimFailure:
        """The report of a failing GEMM; saves its replay folder (operands, stimulus, config)."""
        from sim.runner import replay_command

        t, k, o = job.shape
        lines = [f"co-simulation FAILED: layer {job.layer}, GEMM {job.label} (T={t}, K={k}, "
                 f"O={o}) on {self.config.name}"]
        if out.first is not None:
            beat, tt, oo, fld, got, want = out.first
            lines.append(f"  first mismatch at (t={tt}, o={oo}), y beat {beat}: {fld} = {got} "
                         f"from the RTL, {want} from the golden model ({out.bad_beats} of "
                         f"{out.y_expected} y beats differ)")
        if out.y_beats != out.y_expected:
            lines.append(f"  {out.y_beats} y beats received, {out.y_expected} expected")
        if out.status != "ok":
            lines.append(f"  harness: {out.status}: {out.message}")
        if out.canonical and out.cycles != out.closed_form:
            lines.append(f"  cycles: {out.cycles} measured on the RTL, {out.closed_form} from the "
                         "closed form (sim.cycles.gemm_cycles)")
        if out.canonical and out.latencies != [out.latency]:
            lines.append(f"  y latency: {out.latencies} edges measured, {out.latency} in the "
                         "manifest")
        lines.append(f"  seed {self.seed} (GEMM stimulus seed {job.seed}; "
                     f"{self.stimulus.describe()})")
        rerun = folder = None
        if self.replay_dir is not None:
            folder = save_job(job, self.replay_dir / f"{job.layer}-b{job.batch}-g{job.group}"
                              .replace("/", "_"))
            rerun = replay_command(folder / "config.json", folder)
            lines.append(f"  rerun under cocotb with waves: {rerun}")
        return CosimFailure(job.layer, job.label, "\n".join(lines), rerun,
                            None if folder is None else str(folder))
