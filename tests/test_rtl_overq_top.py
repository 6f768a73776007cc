"""OverQ top level in Amaranth's simulator against ``accel.golden.gemm``, timing measured.

Every mode (range, precision, both) and cascade depth 0 .. 3: random raw codes with planted
outliers and zeros at chosen distances (every chain length, displaced and unreached outliers),
fold edges (K not a multiple of R: chains reaching into the zero padding), extreme codes and
weights so that P and Q overflow. The measured timing numbers must equal ``timing(config)``,
and the job's cycles the closed form of :func:`sim.cycles.job_cycles`.

The simulation harness (:func:`simulate`, :func:`check_values`, :func:`measure`) is the plain
array's, from ``tests/test_rtl_top.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_rtl_top import check_timing, check_values, simulate

from accel.config import ArrayConfig, OverQConfig
from accel.golden import gemm
from accel.overq import encode
from accel.timing import ENCODER_STAGES, timing
from rtl_gen import tiles


def oq_config(mode: str, cascade: int, **kw) -> ArrayConfig:
    """R = 5 (room for cascade 3), N = 2, M = 3, the minimum P, Q = P + 1, acc_depth 2."""
    base = ArrayConfig(rows=5, cols=2, act_bits=2, weight_bits=3, pe_acc_bits=64, acc_depth=2,
                       overq=OverQConfig(mode=mode, cascade=cascade))
    p = base.min_pe_acc_bits
    return dataclasses.replace(base, **{"pe_acc_bits": p, "out_acc_bits": p + 1, **kw})


def planted_x(config: ArrayConfig, t: int, k: int, seed: int) -> np.ndarray:
    """Raw lane codes ``[t, k]``: random zeros / plain values / outliers (range modes) /
    fraction-only codes, all-ones codes, and in range modes planted patterns per fold on the
    first rows: an outlier on lane 0 whose first zero lies j = 1 .. c + 1 lanes below (and a
    zero two lanes below that chain, a precision slot), one with no zero in reach (unreached),
    and two adjacent outliers (the second is displaced when c >= 1)."""
    rng = np.random.default_rng(seed)
    n, f, w, r = config.act_bits, config.frac_bits, config.lane_bits, config.rows
    c = config.overq.cascade

    def plain(size: int | tuple[int, ...]) -> np.ndarray:
        return rng.integers(1, 1 << n, size=size) << f | rng.integers(0, 1 << f, size=size)

    def outlier(size: int | tuple[int, ...]) -> np.ndarray:
        return rng.integers(1 << (n + f), 1 << w, size=size)

    kind = rng.choice(4, size=(t, k), p=[0.35, 0.35, 0.2, 0.1])
    if config.overq.has_range:
        odd = outlier((t, k))
    else:                                   # a fraction only: non-zero, integer part 0
        odd = rng.integers(1, 1 << f, size=(t, k))
    x = np.select([kind == 0, kind == 1, kind == 2], [0, plain((t, k)), odd], (1 << w) - 1)
    if config.overq.has_range:
        patterns = c + 3
        for row in range(min(t, 4)):
            for fold in range(-(-k // r)):
                lanes = x[row, fold * r:(fold + 1) * r]    # a view: the fold's real lanes
                p = (row * 3 + fold) % patterns
                lanes[:] = plain(len(lanes))
                lanes[0] = outlier(1)[0]
                if p <= c:                      # first zero j = p + 1 lanes below
                    lanes[p + 1:p + 2] = 0
                    lanes[p + 3:p + 4] = 0          # a precision slot below the chain
                elif p == c + 2:                # a second outlier right below: displaced
                    lanes[1:2] = outlier(1)
                    lanes[c + 1:c + 2] = 0
                # p == c + 1: no zero in reach (unless the fold's zero padding is)
    return x.astype(np.int64)


def operands(config: ArrayConfig, t: int, k: int, o: int, seed: int):
    """Planted codes, weights over the full range with both extremes, a bias near the Q rails."""
    rng = np.random.default_rng(seed + 1)
    x = planted_x(config, t, k, seed)
    wlo, whi = config.weight_range
    w = rng.integers(wlo, whi + 1, size=(k, o))
    w[:, 0], w[:, -1] = wlo, whi
    qlo, qhi = config.out_range
    b = rng.integers(qlo // 2, qhi // 2 + 1, size=o)
    b[0], b[-1] = qlo, qhi
    return x, w, b


CONFIGS = [oq_config(mode, c, overflow="saturate" if c % 2 else "wrap")
           for mode in ("range", "precision", "both") for c in range(4)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_overq_top_values_and_timing(config):
    """K = 2R + 2 (padded last fold), O > C, T > acc_depth: y exact, timing measured exactly."""
    r, cols, d = config.rows, config.cols, config.acc_depth
    t, k, o = 2 * d + 1, 2 * r + 2, cols + 1
    x, w, b = operands(config, t, k, o, seed=config.overq.cascade)
    gold = gemm(x, w, config, b)
    stats = encode(x, config).stats
    reach = config.overq.cascade + 1
    assert gold.pe_events and gold.acc_events, "operands must overflow P and Q"
    if config.overq.has_range:
        assert all(stats.handled) and len(stats.handled) == reach and stats.unreached
        assert stats.displaced or reach == 1
    if config.overq.has_precision:
        assert stats.precision_slots
    run = simulate(config, x, w, b)
    check_values(run, config, x, w, b)
    check_timing(run, config, x, w, b)


def test_encoder_adds_its_stages_to_the_timing():
    """OverQ costs ENCODER_STAGES edges of latency and the upstream weight read one more edge of
    tile-switch wait, for every shape."""
    for r in range(2, 12):
        for c in range(1, 12):
            plain = timing(ArrayConfig(rows=r, cols=c))
            for mode in ("range", "precision", "both"):
                tm = timing(ArrayConfig(rows=r, cols=c, pe_acc_bits=32,
                                        overq=OverQConfig(mode=mode, cascade=0)))
                assert tm.latency == plain.latency + ENCODER_STAGES
                assert tm.mesh_delay == plain.mesh_delay + ENCODER_STAGES
                assert tm.wfree_after_first == c + ENCODER_STAGES
                assert tm.bfree_after_first == plain.bfree_after_first + ENCODER_STAGES
                assert tm.bfree_after_first <= tm.wfree_after_first + r - 1
                assert tm.fifo_depth == tm.latency + 1


def test_upstream_weight_read_needs_its_edge(monkeypatch):
    """With one edge less of w wait the next tile overwrites row i while PE (i + 1, C - 1) still
    reads it as its upstream weight: results go wrong. Guards wfree_after_first from below."""
    config = oq_config("range", 1, acc_depth=16)   # long chunks: x never pauses at a switch
    x, w, b = operands(config, 16, 3 * config.rows, 3, seed=3)   # tile 2 overwrites tile 0
    run = simulate(config, x, w, b)
    check_values(run, config, x, w, b)
    tm = timing(config)
    short = dataclasses.replace(tm, wfree_after_first=tm.wfree_after_first - 1)
    monkeypatch.setattr(tiles, "timing", lambda cfg: short)
    run = simulate(config, x, w, b)
    with pytest.raises(AssertionError):
        check_values(run, config, x, w, b)


@pytest.mark.parametrize("seed", [1, 2])
def test_overq_gaps_backpressure_and_reset(seed):
    """Random source gaps, y back-pressure, and a reset with beats in flight: still exact."""
    config = oq_config("both", 2, cols=3, acc_depth=4)
    x, w, b = operands(config, 9, 13, 4, seed=seed)
    run = simulate(config, x, w, b, gap=0.3, y_stall=0.6, seed=seed)
    check_values(run, config, x, w, b)
    run = simulate(config, x, w, b, reset_after=4, y_stall=0.5, seed=seed)
    check_values(run, config, x, w, b)
