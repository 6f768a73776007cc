"""One GEMM job on the compiled harness: beats in bulk to the C++ driver, ``y`` beats back.

The beats are the canonical schedule's (:func:`sim.schedule.beats`), encoded as the records of
:mod:`sim.records`; the stimulus (gaps, ``y`` back-pressure) is a
:class:`sim.tb.streams.Stimulus` fixed in advance. :func:`run_job` writes the job file, runs the
harness executable once (one process per job, the whole job in C++) and decodes what it sent
back: every ``y`` beat's fields and the edge it transferred on.

Example::

    from sim.runner import build_harness
    h = Harness(build_harness(config))
    run = h.run(beats(x, w, bias, config))
    run.fields["y_data"], run.cycles
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.cosim.driver import HEADER, MAGIC, NO_FLIP, VERSION
from sim.records import RecordLayout
from sim.schedule import Beats
from sim.tb.harness import load_manifest
from sim.tb.streams import STREAMS, Stimulus
from sim.tb.testbench import manifest_timing, watchdog_limits

__all__ = ["HarnessRun", "Harness", "HarnessError"]


class HarnessError(RuntimeError):
    """The harness executable itself failed (crashed, unreadable job): not a design finding."""


@dataclass(frozen=True)
class HarnessRun:
    """What the harness saw of one job.

    Attributes
    ----------
    status : str
        ``ok``, or what stopped the job (:data:`sim.cosim.driver.STATUSES`).
    message : str
        Why it stopped ('' when ``ok``).
    fields : dict of str to int64 array
        The received ``y`` beats, per field of the ``y`` record (``y_data [n, C]``, ``y_addr
        [n, 1]``, ``y_pe_ovf`` / ``y_acc_ovf [n, C]``).
    y_edges : int64 [n]
        The edge each ``y`` beat transferred on (edge 0: the first after reset).
    emit_edges : int64 [m]
        The edge each ``x_emit`` beat transferred on.
    edges : int
        Clock edges simulated after reset.
    sent : dict of str to int
        Beats transferred on ``w``, ``b`` and ``x``.
    seconds, cpu_seconds : float
        Wall and CPU time of the driver's clock loop (not the process start or the file I/O).
    """

    status: str
    message: str
    fields: dict[str, np.ndarray]
    y_edges: np.ndarray
    emit_edges: np.ndarray
    edges: int
    sent: dict[str, int]
    seconds: float
    cpu_seconds: float

    @property
    def complete(self) -> bool:
        return self.status == "ok"

    @property
    def latencies(self) -> list[int]:
        """The distinct ``y`` latencies seen (y edge - its x_emit edge), in edges."""
        n = min(len(self.y_edges), len(self.emit_edges))
        return sorted({int(v) for v in self.y_edges[:n] - self.emit_edges[:n]})

    @property
    def cycles(self) -> int | None:
        """1 + the edge of the last ``y`` transfer (SPEC section 6), when the job completed."""
        return int(self.y_edges[-1]) + 1 if self.complete and self.y_edges.size else None


class Harness:
    """Runs jobs on one built harness (:class:`sim.runner.HarnessBuild`)."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.config = build.config
        manifest = load_manifest(build.manifest)
        self.layout = RecordLayout(manifest)
        self.timing = manifest_timing(manifest)
        self.latency = int(manifest["timing"]["latency"])

    def run(self, bt: Beats, stimulus: Stimulus | None = None,
            flip: tuple[int, int] | None = None) -> HarnessRun:
        """Run the job of ``bt`` (from reset) under ``stimulus`` (None: canonical).

        ``flip = (beat, bit)`` inverts that bit of that received ``y`` record (fault injection,
        for testing the checker).
        """
        stim = stimulus or Stimulus()
        rec = self.layout.beat_records(bt)
        counts = {s: len(rec[s]) for s in STREAMS}
        n_y = int(bt.x_emit.sum())
        idle, total = watchdog_limits(self.timing, self.config.rows, counts["w"], counts["x"],
                                      n_y, counts["b"], stim.max_gap, stim.max_stall)
        ready = np.zeros(0, np.uint8) if stim.y_ready is None else stim.y_ready.astype(np.uint8)
        if flip is not None and not 0 <= flip[1] < self.layout.bits["y"]:
            raise ValueError(f"flip bit {flip[1]} is outside the {self.layout.bits['y']}-bit y "
                             "record")
        head = {"magic": MAGIC, "version": VERSION, "n_w": counts["w"], "n_b": counts["b"],
                "n_x": counts["x"], "n_y": n_y, "n_ready": ready.size,
                "has_gaps": int(stim.gaps is not None), "idle_limit": idle, "edge_limit": total,
                "drain": self.latency + 2, "flip_beat": NO_FLIP if flip is None else flip[0],
                "flip_bit": 0 if flip is None else flip[1]}
        parts = [np.array([head[k] for k in HEADER], dtype="<u8").tobytes()]
        parts += [rec[s].tobytes() for s in STREAMS]
        if stim.gaps is not None:
            parts += [np.asarray(stim.gaps[s], dtype="<u4").tobytes() for s in STREAMS]
        parts.append(ready.tobytes())
        with tempfile.TemporaryDirectory(prefix="accel-cosim-") as tmp:
            job, out, emit = (Path(tmp) / n for n in ("job.bin", "y.bin", "emit.bin"))
            job.write_bytes(b"".join(parts))
            proc = subprocess.run([str(self.build.binary), str(job), str(out), str(emit)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if proc.returncode or not out.exists() or not emit.exists():
                raise HarnessError(f"the harness {self.build.binary} failed (exit "
                                   f"{proc.returncode}): {proc.stderr.strip()[-2000:]}")
            raw = np.fromfile(out, dtype="<u4")
            emits = np.fromfile(emit, dtype="<u8").astype(np.int64)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        words = self.layout.words["y"]
        raw = raw.reshape(-1, 2 + words)
        edges = raw[:, 0].astype(np.int64) | (raw[:, 1].astype(np.int64) << 32)
        return HarnessRun(info["status"], info["message"], self.layout.unpack("y", raw[:, 2:]),
                          edges, emits, int(info["edges"]),
                          {s: int(info[f"{s}_sent"]) for s in STREAMS},
                          float(info["seconds"]), float(info["cpu_seconds"]))
