"""The testbench: wires sources, sink, checkers, scoreboard, coverage and the cycle counter.

One coroutine does all the work, once per clock edge: it reads ``tb_out`` (the DUT's outputs as
sampled on the rising edge, see :mod:`sim.tb.harness`) at the falling edge, decides which beats
transferred, updates every role, and writes the next ``tb_in`` word. Edge 0 of a job is the first
rising edge with ``rst`` low; a job's cycles are ``1 + `` the edge of its last ``y`` transfer.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel.arith import fold_count, group_count
from accel.config import ArrayConfig
from accel.timing import CONTRACT_FIELDS
from sim.tb.coverage import Coverage, overflow_bins, shape_bins
from sim.tb.harness import TbLayout, load_manifest
from sim.tb.scenarios import Job, make_jobs
from sim.tb.scoreboard import Expected, Scoreboard
from sim.tb.streams import ProtocolChecker, ProtocolError, Sink, Source

__all__ = ["Plan", "Testbench", "TestbenchError", "RESET_EDGES", "watchdog_limits"]

#: Edges with ``rst`` high before each job.
RESET_EDGES = 2
#: Extra edges of slack in the watchdog on top of the timing numbers.
WATCHDOG_SLACK = 16


def watchdog_limits(timing: dict[str, int], rows: int, n_w: int, n_x: int, n_y: int,
                    n_steps: int, max_gap: int = 0, max_stall: int = 0) -> tuple[int, int]:
    """The watchdog of a job, in clock edges: ``(idle, total)``.

    ``idle``: the most edges without any transfer (nor a ``y`` beat stalled on purpose), twice
    the timing numbers' sum plus R and :data:`WATCHDOG_SLACK`; ``total``: the most edges of the
    whole job with ``n_w`` / ``n_x`` / ``n_y`` beats in ``n_steps`` tile steps, gaps of at most
    ``max_gap`` edges and ``y`` drops of at most ``max_stall`` edges.
    """
    idle = 2 * (sum(timing.values()) + rows + WATCHDOG_SLACK)
    stall = (max_gap + 1) * (1 + max_stall)
    return idle, (n_w + n_x + n_y + n_steps * idle) * stall + idle


class TestbenchError(AssertionError):
    """A failed run: mismatch, protocol violation, deadlock, wrong latency or missing coverage."""


@dataclass
class Plan:
    """Everything a run needs, passed to the cocotb module as a JSON file (see :mod:`sim.runner`)."""

    config: dict[str, Any]
    manifest: str
    scenario: str
    seed: int
    results: str
    rerun: str = ""
    waves: str | None = None
    max_jobs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=2) + "\n")


def manifest_timing(manifest: dict[str, Any]) -> dict[str, int]:
    """The four timing numbers of SPEC section 3 from a manifest."""
    t = manifest.get("timing", {})
    missing = [k for k in CONTRACT_FIELDS if k not in t]
    if missing:
        raise ValueError(f"manifest timing lacks {', '.join(missing)}")
    return {k: int(t[k]) for k in CONTRACT_FIELDS}


class Testbench:
    """Runs a plan's jobs on the wrapped DUT and writes the results JSON."""

    def __init__(self, dut: Any, plan: Plan):
        from cocotb.triggers import FallingEdge

        self.dut = dut
        self.plan = plan
        self.config = ArrayConfig.from_dict(plan.config)
        self.manifest = load_manifest(Path(plan.manifest))
        self.timing = manifest_timing(self.manifest)
        self.layout = TbLayout(self.manifest, self.config)
        self.scoreboard = Scoreboard(self.config, self.layout)
        self.coverage = Coverage()
        self.falling = FallingEdge(dut.clk)
        self.edges = 0
        self.transfers = {"w": 0, "b": 0, "x": 0, "y": 0}
        self.jobs: list[dict[str, Any]] = []
        self.digest = hashlib.sha256()
        self._last_in: int | None = None
        self.idle_limit = watchdog_limits(self.timing, self.config.rows, 0, 0, 0, 0)[0]

    # --- signal access -----------------------------------------------------------------------
    def _write(self, word: int) -> None:
        if word != self._last_in:
            self.dut.tb_in.value = word
            self._last_in = word

    def _read(self, e: int) -> int:
        v = self.dut.tb_out.value
        try:
            return int(v)
        except ValueError:
            bad = self.layout.describe_x(str(v))
            raise ProtocolError(f"X or Z on {', '.join(bad)} at edge {e} (on a valid/ready or a "
                                f"valid y payload)") from None

    # --- reset ------------------------------------------------------------------------------
    async def reset(self, held: int = 0, edges: int = RESET_EDGES) -> None:
        """Hold ``rst`` for ``edges`` edges, with ``held`` beats presented (in-flight reset)."""
        fin, fout = self.layout.fin, self.layout.fout
        self._write(fin["rst"].put(1) | held)
        for i in range(edges):
            await self.falling
            out = self._read(-1)
            self.edges += 1
            if fout["y_valid"].get(out):
                raise ProtocolError("y_valid is 1 while rst is 1")
            for s in ("w", "b", "x"):
                if fin[f"{s}_valid"].get(held) and fout[f"{s}_ready"].get(out):
                    raise ProtocolError(f"{s}: a beat transferred during reset")

    # --- one job ----------------------------------------------------------------------------
    def _sources(self, job: Job, exp: Expected, rng: np.random.Generator
                 ) -> tuple[Source, Source, Source, Sink]:
        fin, bt = self.layout.fin, exp.beats
        w_words = [fin["w_valid"].put(1) | fin["w_data"].put(d) | fin["w_last"].put(int(last))
                   for d, last in zip(bt.w_data, bt.w_last)]
        b_words = [fin["b_valid"].put(1) | fin["b_data"].put(d) for d in bt.b_data]
        x_words = [fin["x_valid"].put(1) | fin["x_data"].put(d) | fin["x_addr"].put(int(a)) |
                   fin["x_first"].put(int(f)) | fin["x_init"].put(int(i)) |
                   fin["x_emit"].put(int(m))
                   for d, a, f, i, m in zip(bt.x_data, bt.x_addr, bt.x_first, bt.x_init,
                                            bt.x_emit)]

        def gaps(n: int) -> np.ndarray | None:
            if job.gap_prob == 0.0:
                return None
            g = rng.integers(1, job.max_gap + 1, size=n)
            return np.where(rng.random(n) < job.gap_prob, g, 0)

        if job.stimulus is not None:       # a replayed job: gaps and y_ready as recorded
            g = job.stimulus.gaps or {}
            return (Source("w", w_words, g.get("w")), Source("b", b_words, g.get("b")),
                    Source("x", x_words, g.get("x")), Sink(pattern=job.stimulus.y_ready))
        if job.long_stall:
            depth = self.timing["latency"] + 1
            sink = Sink(rng, job.stall_prob, 20 * depth, 24 * depth)
        else:
            sink = Sink(rng if job.stall_prob else None, job.stall_prob, 1, job.max_stall)
        return (Source("w", w_words, gaps(len(w_words))), Source("b", b_words, gaps(len(b_words))),
                Source("x", x_words, gaps(len(x_words))), sink)

    async def run_job(self, job: Job, rng: np.random.Generator) -> None:
        """Run one job from the end of its reset; check it and record its cycles."""
        cfg, lay, cov = self.config, self.layout, self.coverage
        exp = self.scoreboard.expect(job.x, job.w, job.bias)
        t_n, k_n, o_n = job.shape
        cov.target(job.targets)
        for b in shape_bins(t_n, k_n, o_n, cfg) | overflow_bins(*_ops(job), cfg):
            cov.hit(b)
        w, b, x, sink = self._sources(job, exp, rng)
        checks = {s: ProtocolChecker(s) for s in ("w", "b", "x", "y")}
        fout, fin = lay.fout, lay.fin
        rdy_w, rdy_b, rdy_x, yv_bit = (fout[n].offset for n in ("w_ready", "b_ready", "x_ready",
                                                                "y_valid"))
        po = lay.payload_offset
        y_ready_bit = fin["y_ready"].put(1)
        w_last, x_first, x_emit, x_addr = (exp.beats.w_last, exp.beats.x_first, exp.beats.x_emit,
                                           exp.beats.x_addr)
        n_y = len(exp.y)
        n_steps = len(exp.beats.b_lanes)
        max_gap, max_stall = ((job.stimulus.max_gap, job.stimulus.max_stall) if job.stimulus
                              else (job.max_gap, sink.max_len if sink.prob else 0))
        total_limit = watchdog_limits(self.timing, cfg.rows, len(w.words), len(x.words), n_y,
                                      n_steps, max_gap, max_stall)[1]
        latency = self.timing["latency"]
        r_rows = cfg.rows
        faw = self.timing["first_after_wlast"]
        w_last_edges: list[int] = []
        b_edges: list[int] = []

        payloads: list[int] = []
        y_edges: list[int] = []
        emit_edges: list[int] = []
        w_tiles = b_tiles = active = 0
        prev_addr = -1
        y_stall_run = 0
        last_progress = 0
        e = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        self._write(w.word | b.word | x.word | (y_ready_bit if sink.ready else 0))
        while True:
            await self.falling
            out = self._read(e)
            first_edge = e == 0
            if first_edge and (out >> yv_bit) & 1:
                raise ProtocolError("y_valid is 1 on the first edge after reset")
            wr, br, xr = (out >> rdy_w) & 1, (out >> rdy_b) & 1, (out >> rdy_x) & 1
            yv = (out >> yv_bit) & 1
            wf = checks["w"].edge(e, w.valid, wr, w.word, False, first_edge)
            bf = checks["b"].edge(e, b.valid, br, b.word, False, first_edge)
            xf = checks["x"].edge(e, x.valid, xr, x.word, False, first_edge)
            yf = checks["y"].edge(e, bool(yv), sink.ready, out >> po, False, first_edge)
            # coverage of the waiting conditions of SPEC section 3
            if x.valid and not xr:
                # an x_first beat waits for its tile until first_after_wlast edges after the
                # tile completed; any other refusal is the credit counter: the output FIFO is full
                tile_wait = False
                if x_first[x.index]:
                    if w_tiles <= active or b_tiles <= active:
                        cov.hit("x_first_wait")
                        tile_wait = True
                    else:
                        tile_wait = e < max(w_last_edges[active], b_edges[active]) + faw
                if not tile_wait and y_stall_run > latency:
                    cov.hit("y_backpressure_fifo_full")
                    if job.long_stall:      # the FIFO is full: end the drop soon
                        sink.release(2)
            if w.valid and not wr and w_tiles > active:
                cov.hit("w_wait_complete_shadow")
            y_stall_run = y_stall_run + 1 if (yv and not sink.ready) else 0
            if wf:
                if bool(w_last[w.index]) != (w.index % r_rows == r_rows - 1):
                    raise ProtocolError(f"w_last = {int(w_last[w.index])} on beat "
                                        f"{w.index % r_rows} of a tile (edge {e}); it must be 1 "
                                        f"exactly on beat R - 1 = {r_rows - 1}")
                if w_last[w.index]:
                    w_tiles += 1
                    w_last_edges.append(e)
            if bf:
                b_tiles += 1
                b_edges.append(e)
            if xf:
                i = x.index
                if x_first[i]:
                    active += 1
                if x_emit[i]:
                    emit_edges.append(e)
                if x_addr[i] == prev_addr:
                    cov.hit("same_addr_consecutive")
                prev_addr = int(x_addr[i])
            if yf:
                payloads.append(out >> po)
                y_edges.append(e)
                if len(payloads) > n_y:
                    break
            if wf or bf or xf or yf or (yv and not sink.ready):   # y stalled on purpose
                last_progress = e
            elif e - last_progress > self.idle_limit or e > total_limit:
                self._fail(job, exp, payloads, f"watchdog: no transfer for {e - last_progress} "
                           f"edges at edge {e} (limit {self.idle_limit} from the timing numbers; "
                           f"w {w.index}/{len(w.words)}, b {b.index}/{len(b.words)}, "
                           f"x {x.index}/{len(x.words)}, y {len(payloads)}/{n_y} beats)")
            w.advance(wf)
            b.advance(bf)
            x.advance(xf)
            sink.advance()
            e += 1
            if len(payloads) == n_y or (job.reset_at is not None and e >= job.reset_at):
                break
            self._write(w.word | b.word | x.word | (y_ready_bit if sink.ready else 0))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        self.edges += e
        complete = job.reset_at is None
        for name, src in (("w", w), ("b", b), ("x", x)):
            self.transfers[name] += src.index
            if complete and not src.done:
                self._fail(job, exp, payloads, f"all y beats arrived but {name} still has "
                           f"{len(src.words) - src.index} beats to send")
        self.transfers["y"] += len(payloads)
        for p in payloads:
            self.digest.update(p.to_bytes((p.bit_length() + 7) // 8 + 1, "little"))
        self.scoreboard.check(job.name, exp, payloads, complete)
        lat = sorted({ye - xe for ye, xe in zip(y_edges, emit_edges)})
        record = {"name": job.name, "T": t_n, "K": k_n, "O": o_n,
                  "folds": fold_count(k_n, cfg.rows), "groups": group_count(o_n, cfg.cols),
                  "canonical": job.canonical and complete, "complete": complete,
                  "y_beats": len(payloads), "edges": e, "seconds": elapsed, "cpu_seconds": cpu,
                  "latency_seen": lat}
        if complete and job.canonical:
            record["cycles"] = 1 + y_edges[-1]
        self.jobs.append(record)
        if self.scoreboard.mismatches:
            self._fail(job, exp, payloads, str(self.scoreboard.mismatches[0]))
        if complete and job.canonical and lat != [latency]:
            self._fail(job, exp, payloads, f"measured latency {lat} edges, manifest says "
                       f"{latency}")
        if not complete:
            if x.index and len(payloads) < n_y:
                cov.hit("reset_in_flight")
            await self.reset(held=w.word | b.word | x.word)

    def _fail(self, job: Job, exp: Expected, payloads: list[int], what: str) -> None:
        self.write_results(error=what)
        lines = [f"{what}", f"  seed {self.plan.seed}, scenario {self.plan.scenario}, job "
                 f"{job.name} (T={job.shape[0]}, K={job.shape[1]}, O={job.shape[2]})",
                 f"  rerun: {self.plan.rerun}"]
        if self.plan.waves:
            lines.append(f"  waves: {self.plan.waves}")
        raise TestbenchError("\n".join(lines))

    # --- whole run ----------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Start the clock, run every job of the plan, write and return the results."""
        from cocotb.clock import Clock

        Clock(self.dut.clk, 10, unit="ns").start(start_high=False)
        jobs = make_jobs(self.config, self.plan.scenario, self.plan.seed,
                         self.plan.extra.get("shapes"), self.plan.extra.get("replay"))
        if self.plan.max_jobs is not None:
            jobs = jobs[:self.plan.max_jobs]
        rng = np.random.default_rng([self.plan.seed, 1])
        self._write(self.layout.fin["rst"].put(1))
        await self.falling
        wall = time.perf_counter()
        for job in jobs:
            if not self.jobs or self.jobs[-1]["complete"]:
                await self.reset()
            try:
                await self.run_job(job, rng)
            except ProtocolError as err:
                self.write_results(error=f"protocol: {err}")
                raise TestbenchError(
                    f"protocol: {err}\n  seed {self.plan.seed}, scenario {self.plan.scenario}, "
                    f"job {job.name}\n  rerun: {self.plan.rerun}"
                    + (f"\n  waves: {self.plan.waves}" if self.plan.waves else "")) from None
        self.wall = time.perf_counter() - wall
        missing = self.coverage.missing()
        results = self.write_results(error=f"coverage bins never hit: {', '.join(missing)}"
                                     if missing else None)
        if missing:
            raise TestbenchError(f"targeted coverage bins stayed empty: {', '.join(missing)} "
                                 f"(seed {self.plan.seed}; rerun: {self.plan.rerun})")
        return results

    def write_results(self, error: str | None = None) -> dict[str, Any]:
        """Write the results JSON of the plan (also on failure, with ``error``)."""
        job_edges = sum(j["edges"] for j in self.jobs)
        job_secs = sum(j["seconds"] for j in self.jobs)
        job_cpu = sum(j["cpu_seconds"] for j in self.jobs)
        res = {
            "config": self.config.to_dict(), "config_hash": self.config.hash,
            "scenario": self.plan.scenario, "seed": self.plan.seed,
            "timing": self.timing, "transfers": self.transfers,
            "y_checked": self.scoreboard.checked,
            "mismatches": [str(m) for m in self.scoreboard.mismatches],
            "coverage": self.coverage.to_dict(), "jobs": self.jobs,
            "edges": self.edges,
            "cycles_per_second": job_edges / job_secs if job_secs else 0.0,
            # per second of the simulator process's CPU time: comparable on a loaded machine
            "cycles_per_cpu_second": job_edges / job_cpu if job_cpu else 0.0,
            "y_digest": self.digest.hexdigest(), "error": error, **self.plan.extra,
        }
        Path(self.plan.results).write_text(json.dumps(res, indent=2) + "\n")
        return res


def _ops(job: Job) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    return (np.asarray(job.x, np.int64), np.asarray(job.w, np.int64),
            None if job.bias is None else np.asarray(job.bias, np.int64))
