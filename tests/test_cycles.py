"""Closed-form cycles (sim.cycles) against an edge-by-edge model of the handshake rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.config import ArrayConfig
from sim.cycles import (FIRST_TRANSFER_EDGE, gemm_cycles, job_cycles, scalesim_conv_t,
                        scalesim_cycles)
from sim.schedule import steps


@dataclass(frozen=True)
class FakeTiming:
    latency: int
    first_after_wlast: int
    wfree_after_first: int
    bfree_after_first: int


def edge_model(t: int, k: int, o: int, config: ArrayConfig, tm: FakeTiming) -> int:
    """Cycles of a job, one clock edge at a time, from the rules of SPEC sections 3 and 6.

    Deliberately literal: each source presents its next beat on the edge after a transfer; a ready
    is a function of what transferred on earlier edges only.
    """
    plan = steps(t, k, o, config)
    r = config.rows
    n_tiles = len(plan)
    w_total = n_tiles * r
    x_beats = [(i, j == 0) for i, s in enumerate(plan) for j in range(s.vectors)]
    w_i = b_i = x_i = 0                 # next beat index of each source
    w_next = b_next = x_next = FIRST_TRANSFER_EDGE   # earliest edge the source's beat is valid
    wlast_edge: dict[int, int] = {}     # tile -> edge of its w_last transfer
    b_edge: dict[int, int] = {}         # tile -> edge of its b transfer
    first_edge: dict[int, int] = {}     # tile -> edge of its x_first transfer
    last_x = -1
    edge = 0
    while x_i < len(x_beats):
        edge += 1
        assert edge < 10_000_000, "edge model deadlock"
        # w: tile i = w_i // r; blocked while the previous tile's shadow is not yet freed
        if w_i < w_total and edge >= w_next:
            tile = w_i // r
            ok = tile == 0 or (tile - 1 in first_edge and edge >= first_edge[tile - 1] + tm.wfree_after_first)
            if ok:
                if w_i % r == r - 1:
                    wlast_edge[tile] = edge
                w_i += 1
                w_next = edge + 1
        if b_i < n_tiles and edge >= b_next:
            ok = b_i == 0 or (b_i - 1 in first_edge and edge >= first_edge[b_i - 1] + tm.bfree_after_first)
            if ok:
                b_edge[b_i] = edge
                b_i += 1
                b_next = edge + 1
        if edge >= x_next:
            tile, first = x_beats[x_i]
            ok = True
            if first:
                ok = (tile in wlast_edge and edge >= wlast_edge[tile] + tm.first_after_wlast
                      and tile in b_edge and edge >= b_edge[tile] + tm.first_after_wlast)
            if ok:
                if first:
                    first_edge[tile] = edge
                last_x = edge
                x_i += 1
                x_next = edge + 1
    return 1 + last_x + tm.latency


@st.composite
def cases(draw):
    r = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    d = draw(st.sampled_from([1, 2, 4, 8]))
    config = ArrayConfig(rows=r, cols=c, acc_depth=d)
    wfree = draw(st.integers(1, r + 4))
    tm = FakeTiming(latency=draw(st.integers(1, 12)), first_after_wlast=draw(st.integers(1, 4)),
                    wfree_after_first=wfree,
                    bfree_after_first=draw(st.integers(1, wfree + r - 1)))
    return draw(st.integers(1, 20)), draw(st.integers(1, 14)), draw(st.integers(1, 11)), config, tm


@settings(max_examples=300)
@given(cases())
def test_closed_form_equals_edge_model(case):
    t, k, o, config, tm = case
    assert job_cycles(t, k, o, config, tm) == edge_model(t, k, o, config, tm)


def test_single_tile_by_hand():
    # R = 4: w beats on edges 1..4, x_first at 4 + 2 = 6, 3 vectors on 6, 7, 8, y at 8 + 5
    config = ArrayConfig(rows=4, cols=4, acc_depth=8)
    tm = FakeTiming(latency=5, first_after_wlast=2, wfree_after_first=1, bfree_after_first=1)
    assert job_cycles(3, 4, 4, config, tm) == 1 + 8 + 5


def test_long_chunks_hide_tile_loads():
    # chunks longer than the tile period: x streams without a gap after the first tile
    config = ArrayConfig(rows=4, cols=4, acc_depth=64)
    tm = FakeTiming(latency=7, first_after_wlast=2, wfree_after_first=3, bfree_after_first=3)
    t, k = 64, 12                      # 3 folds of 64 vectors, period 3 + 3 + 2 = 8 < 64
    assert job_cycles(t, k, 4, config, tm) == 1 + (4 + 2) + 3 * 64 - 1 + 7


def test_gemm_cycles_traffic():
    config = ArrayConfig(rows=4, cols=3, acc_depth=4)
    tm = FakeTiming(latency=6, first_after_wlast=1, wfree_after_first=2, bfree_after_first=2)
    g = gemm_cycles(10, 9, 7, config, tm)       # F = 3, G = 3, chunks = 3
    assert (g.folds, g.groups, g.chunks, g.tiles) == (3, 3, 3, 27)
    assert g.tiles == len(steps(10, 9, 7, config))
    assert g.w_beats == 27 * 4 and g.b_beats == 27
    assert g.x_beats == 3 * 3 * 10 and g.y_beats == 3 * 10
    assert g.acc_reads == 3 * 2 * 10 and g.acc_writes == g.x_beats
    assert g.macs == 10 * 9 * 7
    assert g.utilisation == pytest.approx(630 / (g.cycles * 12))
    assert 0 < g.utilisation <= 1


@pytest.mark.parametrize("t, k, o", [(0, 1, 1), (1, 0, 1), (1, 1, 0), (1.5, 1, 1)])
def test_bad_sizes(t, k, o):
    tm = FakeTiming(1, 1, 1, 1)
    with pytest.raises(ValueError, match="GEMM size . must be an integer >= 1"):
        job_cycles(t, k, o, ArrayConfig(), tm)


def test_bad_timing():
    with pytest.raises(ValueError, match="wfree_after_first must be >= 1"):
        job_cycles(4, 4, 4, ArrayConfig(), FakeTiming(3, 1, 0, 0))


# --- SCALE-Sim --------------------------------------------------------------------------------

#: ResNet-18 (ImageNet) conv layers as in SCALE-Sim's topology file: name, H, W, fh, fw, C, filters, s
RESNET18 = [
    ("Conv1", 224, 224, 7, 7, 3, 64, 2), ("Conv2_1a", 56, 56, 3, 3, 64, 64, 1),
    ("Conv3_1a", 56, 56, 3, 3, 64, 128, 2), ("Conv3_1b", 28, 28, 3, 3, 128, 128, 1),
    ("Conv3_s", 56, 56, 1, 1, 64, 128, 2), ("Conv4_1a", 28, 28, 3, 3, 128, 256, 2),
    ("Conv4_1b", 14, 14, 3, 3, 256, 256, 1), ("Conv4_s", 28, 28, 1, 1, 128, 256, 2),
    ("Conv5_1a", 14, 14, 3, 3, 256, 512, 2), ("Conv5_1b", 7, 7, 3, 3, 512, 512, 1),
    ("Conv5_s", 14, 14, 1, 1, 256, 512, 2),
]


def test_scalesim_formula_by_hand():
    # Conv1: Ho = ceil((224 - 7 + 2) / 2) = 110 -> T = 12100; K = 147 -> 5 folds; O = 64 -> 2
    assert scalesim_conv_t(224, 224, 7, 7, 2) == 12100
    assert scalesim_cycles(12100, 147, 64, 32, 32) == 5 * 2 * (64 + 32 + 12100 - 2) - 1


#: "Total Cycles" of SCALE-Sim 3.0.0's COMPUTE_REPORT.csv for these layers (and the FC layer,
#: 512 -> 1000), weight stationary, 32x32 array, run with its own topology rows above.
SCALESIM_3_0_0_TOTAL = {
    "Conv1": 121939, "Conv2_1a": 108359, "Conv3_1a": 63215, "Conv3_1b": 110879, "Conv3_s": 7479,
    "Conv4_1a": 83519, "Conv4_1b": 137087, "Conv4_s": 10207, "Conv5_1a": 164735,
    "Conv5_1b": 274175, "Conv5_s": 20223, "FC": 48639,
}


@pytest.mark.parametrize("row", RESNET18 + [("FC", 1, 1, 1, 1, 512, 1000, 1)], ids=lambda r: r[0])
def test_scalesim_reproduces_resnet18_table(row):
    name, h, w, fh, fw, c, o, s = row
    t = scalesim_conv_t(h, w, fh, fw, s)
    assert scalesim_cycles(t, fh * fw * c, o, 32, 32) == SCALESIM_3_0_0_TOTAL[name]


@pytest.mark.parametrize("rows, cols", [(2, 2), (4, 4), (8, 8), (3, 5)])
def test_rtl_timing_closed_form_equals_edge_model(rows, cols):
    from accel.timing import timing

    config = ArrayConfig(rows=rows, cols=cols, acc_depth=4)
    tm = timing(config)
    for t, k, o in [(1, 1, 1), (9, 2 * rows + 1, 2 * cols + 1), (4, rows, cols), (13, 3 * rows, cols)]:
        assert gemm_cycles(t, k, o, config).cycles == edge_model(t, k, o, config, tm)
