"""Top level in Amaranth's simulator against the golden model, and the timing numbers measured.

A single cycle-based testbench drives ``w``, ``b`` and ``x`` as three independent valid/ready
sources (beats from :func:`sim.schedule.beats`, the canonical schedule) and sinks ``y``. Every
transfer is recorded with its edge index (edge 0 = first edge with ``rst`` low), so that the
timing numbers of SPEC section 3 are *measured* and compared with :func:`accel.timing.timing`,
and the cycles of the job with the closed form of :func:`sim.cycles.job_cycles`.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.golden import gemm
from accel.timing import timing
from rtl_gen.top import Top
from sim.cycles import job_cycles
from sim.schedule import beats, expected_lanes, unpack_lanes


@dataclass
class Source:
    """One valid/ready source: presents beats in order; ``gap`` is the chance of idling a cycle
    before presenting the next beat (0: canonical, a beat is always presented)."""

    n: int
    gap: float = 0.0
    index: int = 0
    presenting: bool = False
    edges: list[int] = field(default_factory=list)

    def valid(self, rng: random.Random) -> bool:
        if self.index < self.n and not self.presenting:
            self.presenting = rng.random() >= self.gap
        return self.presenting

    def fire(self, edge: int) -> None:
        self.edges.append(edge)
        self.index += 1
        self.presenting = False


@dataclass
class Run:
    """What one simulated job recorded."""

    w_edges: list[int]
    b_edges: list[int]
    x_edges: list[int]
    y_edges: list[int]
    y_data: list[int]
    y_addr: list[int]
    y_pe_ovf: list[int]
    y_acc_ovf: list[int]
    violations: list[str]


def simulate(config: ArrayConfig, x, w, bias=None, *, gap: float = 0.0, y_stall: float = 0.0,
             seed: int = 0, reset_after: int | None = None, max_edges: int = 20000) -> Run:
    """Run one GEMM through the generated top level; returns every transfer with its edge.

    ``reset_after``: pulse ``rst`` for 3 edges once that many ``x`` beats transferred, with beats
    in flight, then start the whole job again (checks that reset discards everything).
    """
    sched = beats(x, w, bias, config)
    dut = Top(config)
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6, domain="sync")
    rng = random.Random(seed)
    run = Run([], [], [], [], [], [], [], [], [])

    async def testbench(ctx):
        nonlocal reset_after
        ctx.set(cd.rst, 1)
        await ctx.tick()
        ctx.set(cd.rst, 0)
        ws, bs, xs = Source(len(sched.w_data), gap), Source(len(sched.b_data), gap), \
            Source(len(sched.x_data), gap)
        edge, after_reset = 0, True
        while len(run.y_edges) < len(sched.y_order):
            if edge >= max_edges:
                raise AssertionError(f"job did not finish in {max_edges} edges")
            wv, bv, xv = ws.valid(rng), bs.valid(rng), xs.valid(rng)
            ctx.set(dut.w_valid, wv)
            ctx.set(dut.b_valid, bv)
            ctx.set(dut.x_valid, xv)
            if wv:
                ctx.set(dut.w_data, sched.w_data[ws.index])
                ctx.set(dut.w_last, bool(sched.w_last[ws.index]))
            if bv:
                ctx.set(dut.b_data, sched.b_data[bs.index])
            if xv:
                i = xs.index
                ctx.set(dut.x_data, sched.x_data[i])
                ctx.set(dut.x_addr, int(sched.x_addr[i]))
                ctx.set(dut.x_first, bool(sched.x_first[i]))
                ctx.set(dut.x_init, bool(sched.x_init[i]))
                ctx.set(dut.x_emit, bool(sched.x_emit[i]))
            yr = rng.random() >= y_stall
            ctx.set(dut.y_ready, yr)
            wr, br, xr, yv = (ctx.get(dut.w_ready), ctx.get(dut.b_ready), ctx.get(dut.x_ready),
                              ctx.get(dut.y_valid))
            if after_reset and (wr or br or xr or yv):
                run.violations.append(f"ready/valid high on the first edge after reset ({edge})")
            if wv and wr:
                ws.fire(edge)
            if bv and br:
                bs.fire(edge)
            if xv and xr:
                xs.fire(edge)
            if yv and yr:
                run.y_edges.append(edge)
                run.y_data.append(ctx.get(dut.y_data))
                run.y_addr.append(ctx.get(dut.y_addr))
                run.y_pe_ovf.append(ctx.get(dut.y_pe_ovf))
                run.y_acc_ovf.append(ctx.get(dut.y_acc_ovf))
            await ctx.tick()
            edge += 1
            after_reset = False
            if reset_after is not None and xs.index >= reset_after:
                reset_after = None
                ctx.set(cd.rst, 1)
                for _ in range(3):
                    if ctx.get(dut.w_ready) or ctx.get(dut.b_ready) or ctx.get(dut.x_ready) or \
                            ctx.get(dut.y_valid):
                        run.violations.append("ready/valid high while rst is 1")
                    await ctx.tick()
                ctx.set(cd.rst, 0)
                for lst in (run.y_edges, run.y_data, run.y_addr, run.y_pe_ovf, run.y_acc_ovf):
                    lst.clear()
                ws, bs, xs = Source(len(sched.w_data), gap), Source(len(sched.b_data), gap), \
                    Source(len(sched.x_data), gap)
                edge, after_reset = 0, True
        run.w_edges, run.b_edges, run.x_edges = ws.edges, bs.edges, xs.edges

    sim.add_testbench(testbench)
    sim.run()
    return run


def check_values(run: Run, config: ArrayConfig, x, w, bias) -> None:
    """y payloads equal the golden model, in x_emit order."""
    sched = beats(x, w, bias, config)
    gold = gemm(x, w, config, bias)
    y, pe, acc = expected_lanes(gold, sched.y_order, config)
    c = config.cols
    assert not run.violations, run.violations
    assert len(run.y_data) == len(sched.y_order)
    np.testing.assert_array_equal(unpack_lanes(run.y_data, c, config.out_bits), y)
    np.testing.assert_array_equal(unpack_lanes(run.y_pe_ovf, c, 1, signed=False), pe)
    np.testing.assert_array_equal(unpack_lanes(run.y_acc_ovf, c, 1, signed=False), acc)
    emit_addr = sched.x_addr[sched.x_emit]
    np.testing.assert_array_equal(np.array(run.y_addr), emit_addr)


def measure(run: Run, config: ArrayConfig, x, w, bias) -> dict[str, set[int]]:
    """Timing numbers observed in a canonical run, each as the set of values seen."""
    sched = beats(x, w, bias, config)
    r = config.rows
    x_edges = np.array(run.x_edges)
    firsts = x_edges[sched.x_first]
    w_first = np.array(run.w_edges)[::r]
    w_last = np.array(run.w_edges)[r - 1::r]
    b = np.array(run.b_edges)
    emit_edges = x_edges[sched.x_emit]
    seen = {
        "latency": set((np.array(run.y_edges) - emit_edges).tolist()),
        "wfree_after_first": set((w_first[1:] - firsts[:-1]).tolist()),
        "bfree_after_first": set((b[1:] - firsts[:-1]).tolist()),
    }
    # an x_first that waited for its tile: the previous x beat transferred earlier than the edge
    # before it; it then transfers first_after_wlast edges after the later of w_last and b
    prev = np.concatenate([[-2], x_edges])[np.flatnonzero(sched.x_first)]
    waited = firsts > prev + 1
    seen["first_after_wlast"] = set((firsts - np.maximum(w_last, b))[waited].tolist())
    # no other waiting: every non-first x beat follows its predecessor on the next edge
    gaps = np.diff(x_edges)[~sched.x_first[1:]]
    seen["x_gaps"] = set(gaps.tolist())
    return seen


def check_timing(run: Run, config: ArrayConfig, x, w, bias) -> None:
    """Under the canonical stimulus every measured timing number equals ``timing(config)`` and the
    job's cycles equal the closed form."""
    tm = timing(config)
    seen = measure(run, config, x, w, bias)
    assert seen["latency"] == {tm.latency}
    assert seen["wfree_after_first"] == {tm.wfree_after_first}
    assert seen["bfree_after_first"] == {tm.bfree_after_first}
    assert seen["first_after_wlast"] == {tm.first_after_wlast}
    assert seen["x_gaps"] <= {1}
    (t, k), o = np.shape(x), np.shape(w)[1]
    assert run.y_edges[-1] + 1 == job_cycles(t, k, o, config, tm)


def operands(config: ArrayConfig, t: int, k: int, o: int, seed: int, bias: bool = True):
    """Random operands over the full declared ranges, with extreme corners mixed in."""
    rng = np.random.default_rng(seed)
    xlo, xhi = config.act_range
    wlo, whi = config.weight_range
    x = rng.integers(xlo, xhi + 1, size=(t, k))
    w = rng.integers(wlo, whi + 1, size=(k, o))
    x[0, :] = xlo if config.act_signed else xhi   # -2^(N-1) * -2^(M-1) (or max * min) corners
    w[:, 0] = wlo
    x[-1, :] = xhi
    w[:, -1] = whi
    b = None
    if bias:
        qlo, qhi = config.out_range
        b = rng.integers(qlo // 2, qhi // 2 + 1, size=o)
        # biases at the edges of Q, on the columns whose fold results push them out of range
        b[0] = qlo if xhi > 0 else qhi
        b[-1] = qhi
    return x, w, b


# small arithmetic widths so that both P and Q overflow often
TIMING_CONFIGS = [
    ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=10,
                acc_depth=4),
    ArrayConfig(rows=3, cols=2, act_bits=3, act_signed=True, weight_bits=3, pe_acc_bits=6,
                out_acc_bits=7, acc_depth=2, overflow="saturate"),
    ArrayConfig(rows=1, cols=1, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=1),
    ArrayConfig(rows=2, cols=4, act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=10,
                acc_depth=8, overflow="saturate"),
    ArrayConfig(rows=4, cols=1, act_bits=2, weight_bits=2, pe_acc_bits=4, out_acc_bits=5,
                acc_depth=4),
]


@pytest.mark.parametrize("config", TIMING_CONFIGS, ids=lambda c: c.name)
def test_canonical_values_and_timing(config):
    """K > R, O > C, T > acc_depth, bias: values exact; measured timing == timing(config)."""
    r, c, d = config.rows, config.cols, config.acc_depth
    t, k, o = 2 * d + 1, 2 * r + 1, 2 * c + 1
    x, w, b = operands(config, t, k, o, seed=r * 10 + c)
    run = simulate(config, x, w, b)
    check_values(run, config, x, w, b)
    gold = gemm(x, w, config, b)
    # (one row cannot overflow P >= N + M: a fold is a single exact product)
    assert gold.acc_events and (gold.pe_events or r == 1), "operands must exercise the flags"
    check_timing(run, config, x, w, b)


@pytest.mark.parametrize("rows, cols", [(2, 2), (3, 1), (1, 3)])
def test_single_fold_bias_switch(rows, cols):
    """K <= R: every tile is an init tile of a new column group, so each tile switch changes the
    bias while the old tile's last beats are in flight (guards bfree_after_first from below)."""
    config = ArrayConfig(rows=rows, cols=cols, act_bits=4, weight_bits=4, pe_acc_bits=8,
                         out_acc_bits=10, acc_depth=4)
    x, w, b = operands(config, 8, rows, 3 * cols, seed=rows + 7 * cols)
    b = np.arange(1, 3 * cols + 1) * 37  # a different bias per channel
    run = simulate(config, x, w, b)
    check_values(run, config, x, w, b)
    seen = measure(run, config, x, w, b)
    assert seen["bfree_after_first"] == {timing(config).bfree_after_first}
    assert seen["x_gaps"] <= {1}


def test_short_chunks_wait_for_tiles():
    """One vector per chunk: every x_first waits for its tile (first_after_wlast measured)."""
    config = ArrayConfig(rows=3, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=1)
    x, w, b = operands(config, 3, 7, 4, seed=5)
    run = simulate(config, x, w, b)
    check_values(run, config, x, w, b)
    seen = measure(run, config, x, w, b)
    tm = timing(config)
    assert seen["first_after_wlast"] == {tm.first_after_wlast}
    assert seen["wfree_after_first"] == {tm.wfree_after_first}
    assert run.y_edges[-1] + 1 == job_cycles(3, 7, 4, config, tm)


@pytest.mark.parametrize("seed", [1, 2])
def test_gaps_and_backpressure(seed):
    """Random source gaps and y_ready low (FIFO full): values still exact, nothing lost."""
    config = ArrayConfig(rows=2, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=8,
                         out_acc_bits=9, acc_depth=4, overflow="saturate")
    x, w, b = operands(config, 11, 5, 7, seed=seed)
    run = simulate(config, x, w, b, gap=0.3, y_stall=0.7, seed=seed)
    check_values(run, config, x, w, b)


def test_reset_with_beats_in_flight():
    """rst in the middle of a job discards everything; the rerun from reset is exact."""
    config = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=4)
    x, w, b = operands(config, 6, 3, 3, seed=9)
    run = simulate(config, x, w, b, reset_after=5, y_stall=0.5)
    check_values(run, config, x, w, b)


def test_bias_never_delays_a_tile():
    """SPEC: bfree_after_first <= wfree_after_first + R - 1 for every array shape."""
    for r in range(1, 40):
        for c in range(1, 40):
            tm = timing(ArrayConfig(rows=r, cols=c))
            assert tm.bfree_after_first <= tm.wfree_after_first + r - 1
            assert tm.fifo_depth >= tm.latency + 1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_elaborates_with_and_without_overq():
    from amaranth.hdl import Fragment
    Fragment.get(Top(ArrayConfig(rows=2, cols=3)), None)
    Fragment.get(Top(ArrayConfig(rows=2, cols=2, pe_acc_bits=24, overq=OverQConfig())), None)
    with pytest.raises(ConfigError, match=r"^config must be an accel.ArrayConfig, not dict$"):
        Top({"rows": 2})
    gc.collect()  # the half-built components warn when collected; inside the filter
