"""The canonical schedule (SPEC section 6) and lane packing of sim.schedule."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.config import ArrayConfig
from accel.arith import op
from accel.golden import gemm
from accel.reference import reference_gemm
from accel.arith import fold_count, group_count
from sim.schedule import (beats, expected_lanes, pack_lanes,
                          steps, unpack_lanes)

settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

SMALL = ArrayConfig(rows=2, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=8, acc_depth=2)


def test_steps_order_and_chunks() -> None:
    got = steps(5, 3, 4, SMALL)
    # g outermost, then chunks of acc_depth = 2 vectors, then folds
    want = [(g, t0, t1, f) for g in range(2) for t0, t1 in ((0, 2), (2, 4), (4, 5))
            for f in range(2)]
    assert [(s.g, s.t0, s.t1, s.f) for s in got] == want
    assert all(s.folds == 2 for s in got)
    assert [s.init for s in got[:2]] == [True, False]
    assert [s.emit for s in got[:2]] == [False, True]
    assert got[4].vectors == 1


def test_steps_one_fold_resends_tile_per_chunk() -> None:
    got = steps(5, 2, 3, SMALL)
    assert len(got) == 3 and all(s.init and s.emit for s in got)


def test_counts() -> None:
    assert (fold_count(5, SMALL.rows), group_count(7, SMALL.cols)) == (3, 3)
    assert (fold_count(2, SMALL.rows), group_count(3, SMALL.cols)) == (1, 1)


@pytest.mark.parametrize("shape, name", [((1, 0, 1), "K"), ((1, 1, 0), "O"), ((-1, 1, 1), "T"),
                                         ((1.5, 1, 1), "T")])
def test_steps_rejects_bad_sizes(shape: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=f"GEMM size {name} must be an integer >= "):
        steps(*shape, SMALL)


def test_pack_lane_layout() -> None:
    # lane c at bits c*4: lanes (1, -1, -8) -> 0x8F1
    assert pack_lanes([[1, -1, -8]], 4) == [0x8F1]
    assert pack_lanes([[3]], 1) == [1]
    np.testing.assert_array_equal(unpack_lanes([0x8F1], 3, 4), [[1, -1, -8]])
    np.testing.assert_array_equal(unpack_lanes([0x8F1], 3, 4, signed=False), [[1, 15, 8]])


def test_pack_64_bit_extremes() -> None:
    v = [[-(1 << 63), (1 << 63) - 1, -1]]
    np.testing.assert_array_equal(unpack_lanes(pack_lanes(v, 64), 3, 64), v)


@given(st.integers(1, 64).flatmap(lambda wd: st.tuples(
    st.just(wd), st.lists(st.lists(st.integers(-(1 << (wd - 1)), (1 << (wd - 1)) - 1),
                                   min_size=3, max_size=3), min_size=1, max_size=4))))
def test_pack_roundtrip(case: tuple[int, list[list[int]]]) -> None:
    width, rows = case
    words = pack_lanes(rows, width)
    assert all(0 <= w < (1 << (3 * width)) for w in words)
    # each lane is the two's complement field at c * width
    for word, row in zip(words, rows):
        for c, v in enumerate(row):
            assert (word >> (c * width)) & ((1 << width) - 1) == v % (1 << width)
    np.testing.assert_array_equal(unpack_lanes(words, 3, width), rows)


@pytest.mark.parametrize("call, msg", [
    (lambda: pack_lanes([1, 2], 4), "pack_lanes needs a 2-D array"),
    (lambda: pack_lanes([[1]], 0), "lane width must be between 1 and 64 bits, not 0"),
    (lambda: unpack_lanes([1], 1, 65), "lane width must be between 1 and 64 bits, not 65"),
    (lambda: unpack_lanes([0x100], 2, 4), "word 0 = 0x100 does not fit 2 lanes of 4 bits"),
])
def test_pack_errors(call, msg: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=msg):
        call()


def _run_beats(bt, config: ArrayConfig, t_n: int, o_n: int):  # type: ignore[no-untyped-def]
    """A slow, literal model of SPEC section 3 driven by the beats alone (no schedule knowledge).

    Tiles and biases are taken in order from the w/b streams at each x_first; every x beat runs
    one fold (P-bit steps), x_init preloads the bias, x_emit snapshots the entry.
    """
    r, c = config.rows, config.cols
    p, q, mode = config.pe_acc_bits, config.out_bits, config.overflow
    w_rows = unpack_lanes(bt.w_data, c, config.weight_bits)
    b_rows = unpack_lanes(bt.b_data, c, q)
    xs = unpack_lanes(bt.x_data, r, config.lane_bits, signed=config.act_signed)
    acc = [[0] * c for _ in range(config.acc_depth)]
    flags = [[(False, False)] * c for _ in range(config.acc_depth)]
    tile = bias = None
    n_tile = 0
    out = []
    for i in range(len(xs)):
        if bt.x_first[i]:
            tile, bias = w_rows[n_tile * r:(n_tile + 1) * r], b_rows[n_tile]
            assert bt.w_last[n_tile * r + r - 1] and not bt.w_last[n_tile * r:(n_tile + 1) * r - 1].any()
            n_tile += 1
        a = int(bt.x_addr[i])
        for lane in range(c):
            s, pe = 0, False
            for k in range(r):
                v = s + int(xs[i, k]) * int(tile[k, lane])
                pe |= not -(1 << (p - 1)) <= v < (1 << (p - 1))
                s = op(v, p, mode)
            base = int(bias[lane]) if bt.x_init[i] else acc[a][lane]
            v = base + s
            ao = not -(1 << (q - 1)) <= v < (1 << (q - 1))
            old = (False, False) if bt.x_init[i] else flags[a][lane]
            acc[a][lane] = op(v, q, mode)
            flags[a][lane] = (old[0] or pe, old[1] or ao)
        if bt.x_emit[i]:
            out.append((list(acc[a]), [f[0] for f in flags[a]], [f[1] for f in flags[a]]))
    return out


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("signed", [False, True])
def test_beats_reproduce_golden(mode: str, signed: bool) -> None:
    cfg = ArrayConfig(rows=2, cols=3, act_bits=4, act_signed=signed, weight_bits=4,
                      pe_acc_bits=8, out_acc_bits=10, overflow=mode, acc_depth=2)
    rng = np.random.default_rng(7)
    t_n, k_n, o_n = 5, 5, 4          # 3 folds (last padded), 2 groups (last padded), 3 chunks
    lo, hi = cfg.lane_range
    x = rng.integers(lo, hi + 1, size=(t_n, k_n))
    w = rng.integers(-8, 8, size=(k_n, o_n))
    bias = rng.integers(-512, 512, size=o_n)
    bt = beats(x, w, bias, cfg)
    assert len(bt.w_data) == len(bt.w_last) == 2 * 3 * 3 * cfg.rows
    assert len(bt.b_data) == 18 and len(bt.x_data) == 2 * 5 * 3
    assert bt.x_first.sum() == 18
    model = _run_beats(bt, cfg, t_n, o_n)
    ref = reference_gemm(x, w, cfg, bias)
    y, pe, acc = expected_lanes(gemm(x, w, cfg, bias), bt.y_order, cfg)
    assert len(model) == len(bt.y_order) == t_n * 2
    for i, (t, g) in enumerate(bt.y_order):
        ys, pes, accs = model[i]
        np.testing.assert_array_equal(ys, y[i])
        np.testing.assert_array_equal(pes, pe[i])
        np.testing.assert_array_equal(accs, acc[i])
        for lane in range(cfg.cols):
            o = g * cfg.cols + lane
            if o < o_n:
                assert ys[lane] == ref.y[t, o]
            else:
                assert ys[lane] == 0 and not pes[lane] and not accs[lane]


def test_beats_fields() -> None:
    x = np.array([[1, 2, 3]])
    w = np.array([[1, -1], [2, -2], [3, -3]])
    bt = beats(x, w, None, SMALL)
    # fold 0 rows (1, 2) and fold 1 rows (3, pad 0) of group 0; O = 2 < C = 3 pads lane 2
    assert bt.w_data == pack_lanes([[1, -1, 0], [2, -2, 0], [3, -3, 0], [0, 0, 0]], 4)
    assert bt.w_last.tolist() == [False, True, False, True]
    assert bt.b_data == [0, 0]
    assert bt.x_data == pack_lanes([[1, 2], [3, 0]], 4)
    assert bt.x_init.tolist() == [True, False] and bt.x_emit.tolist() == [False, True]
    assert bt.y_order.tolist() == [[0, 0]]
