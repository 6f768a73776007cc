"""The lazy operands (accel.operand) and the screen (accel.screen) of the golden back end against
lower() + the per-element reference (accel.reference.reference_gemm), output for output."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accel.operand as operand_mod
import accel.screen as screen_mod
from accel.arith import code_range
from accel.backends import GoldenBackend
from accel.config import ArrayConfig
from accel.layers import IntLayer
from accel.lowering import gemm_shape, lower, raise_output
from accel.operand import Patches, layer_operand
from accel.reference import reference_gemm
from accel.screen import block_edges, screen


def make_layer(rng, kind, act_bits, act_signed, weight_bits, zp, c_in=4, c_out=6, groups=1,
               kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), bias_bits=None,
               fill=None):
    lo, hi = code_range(weight_bits, True)
    shape = (c_out, c_in) if kind == "linear" else (c_out, c_in // groups, *kernel)
    w = np.full(shape, fill) if fill is not None else rng.integers(lo, hi + 1, shape)
    bias = None if bias_bits is None else rng.integers(-(1 << bias_bits), 1 << bias_bits, c_out)
    extra = {} if kind == "linear" else dict(stride=stride, padding=padding, dilation=dilation,
                                             groups=groups)
    return IntLayer(name="l", kind=kind, weight=w, weight_scale=[1.0], input_scale=1.0,
                    input_zero_point=zp, act_bits=act_bits, act_signed=act_signed,
                    weight_bits=weight_bits, bias=bias, **extra)


def reference_layer(layer, codes, config):
    """lower() + reference_gemm per group: layer-shaped results, flags, events and exact sums."""
    shape = gemm_shape(layer, codes.shape)
    parts = [(reference_gemm(x.astype(np.int64), w, config, b),
              x.astype(np.int64) @ w + (0 if b is None else b)) for x, w, b in lower(layer, codes)]

    def join(get):
        return raise_output(layer, [get(p) for p in parts], shape)

    return (join(lambda p: p[0].y), join(lambda p: p[0].pe_overflow),
            join(lambda p: p[0].acc_overflow), join(lambda p: p[1]),
            sum(p[0].pe_events for p in parts), sum(p[0].acc_events for p in parts))


def assert_screen_equals_golden(layer, codes, config):
    """The golden back end (operand, screen, stepping) equals the reference, every output."""
    got = GoldenBackend(config).run(layer, codes)
    y, pe, acc, exact, pe_ev, acc_ev = reference_layer(layer, codes, config)
    assert got.acc.shape == y.shape
    assert np.array_equal(got.acc, y) and np.array_equal(got.exact, exact)
    assert np.array_equal(got.pe_overflow, pe) and np.array_equal(got.acc_overflow, acc)
    assert (got.pe_events, got.acc_events) == (pe_ev, acc_ev)
    return got


def codes_for(rng, layer, shape, dist):
    lo, hi = layer.input_range
    if dist == "uniform":
        return rng.integers(lo, hi + 1, shape)
    if dist == "rails":   # only the two extreme codes: every sum as far out as it gets
        return rng.choice([lo, hi], shape)
    return np.full(shape, hi if dist == "max" else lo)


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["conv2d", "linear"]))
    n_bits, m_bits = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    signed = draw(st.booleans())
    lo, hi = code_range(n_bits, signed)
    zp = draw(st.integers(lo, hi))
    rows = draw(st.integers(1, 6))
    p = draw(st.integers(n_bits + m_bits, n_bits + m_bits + 5))
    q = draw(st.integers(p, p + 3))
    config = ArrayConfig(rows=rows, cols=3, act_bits=n_bits, act_signed=signed, weight_bits=m_bits,
                         pe_acc_bits=p, out_acc_bits=q, overflow=draw(st.sampled_from(["wrap", "saturate"])))
    if kind == "linear":
        geo = dict(c_in=draw(st.integers(1, 40)), c_out=draw(st.integers(1, 5)))
        lead = draw(st.sampled_from([(), (1,), (3,), (2, 3)]))      # () : one vector
        shape = (*lead, geo["c_in"])
    else:
        groups = draw(st.integers(1, 3))
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        h = draw(st.integers(dilation[0] * (kernel[0] - 1) + 1, 7))
        w = draw(st.integers(dilation[1] * (kernel[1] - 1) + 1, 7))
        geo = dict(c_in=groups * draw(st.integers(1, 5)), c_out=groups * draw(st.integers(1, 3)),
                   groups=groups, kernel=kernel, dilation=dilation, padding=padding,
                   stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))))
        shape = (draw(st.integers(1, 2)), geo["c_in"], h, w)
    bias_bits = draw(st.one_of(st.none(), st.integers(0, q - 2)))
    knobs = (draw(st.sampled_from([1, 2, 9])), draw(st.sampled_from([0, 10**9])),
             draw(st.sampled_from([1, 10**9])), draw(st.sampled_from([0.0, 0.25, 2.0])))
    return (kind, n_bits, signed, m_bits, zp, geo, shape, bias_bits, config, knobs,
            draw(st.sampled_from(["uniform", "rails", "max", "min"])), draw(st.integers(0, 2**31)))


def with_knobs(stack, knobs):
    """Force block size (folds per block), the refinement path (0: gathered, 1e9: dense), the
    conv layout of the block sums (1: channel-last, 1e9: channel-first) and whether vectors at
    risk are stepped whole (0.0) or output by output (2.0)."""
    stack.enter_context(mock.patch.object(screen_mod, "BLOCK_FOLDS", knobs[0]))
    stack.enter_context(mock.patch.object(screen_mod, "DENSE_RATIO", knobs[1]))
    stack.enter_context(mock.patch.object(operand_mod, "NHWC_MIN_PIXELS", knobs[2]))
    stack.enter_context(mock.patch.object(screen_mod, "DENSE_ROW_SHARE", knobs[3]))


@settings(max_examples=250, deadline=None)
@given(cases())
def test_screen_equals_golden(case):
    kind, n_bits, signed, m_bits, zp, geo, shape, bias_bits, config, knobs, dist, seed = case
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, kind, n_bits, signed, m_bits, zp, bias_bits=bias_bits, **geo)
    codes = codes_for(rng, layer, shape, dist)
    with ExitStack() as stack:
        with_knobs(stack, knobs)
        assert_screen_equals_golden(layer, codes, config)


@pytest.mark.parametrize("knobs", [(1, 0, 1, 2.0), (2, 10**9, 10**9, 0.0), (9, 0, 10**9, 0.25),
                                   (9, 10**9, 1, 2.0)])
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_corner_operands(knobs, mode):
    """-2^(N-1) * -2^(M-1) everywhere (signed), and all-max unsigned codes with min weights."""
    rng = np.random.default_rng(3)
    config = ArrayConfig(rows=4, cols=2, act_bits=8, act_signed=True, weight_bits=8, pe_acc_bits=16,
                         out_acc_bits=18, overflow=mode)
    with ExitStack() as stack:
        with_knobs(stack, knobs)
        layer = make_layer(rng, "conv2d", 8, True, 8, -128, c_in=8, c_out=3, fill=-128)
        got = assert_screen_equals_golden(layer, np.full((1, 8, 4, 4), -128), config)
        assert got.pe_events > 0 and (got.acc_events > 0 or mode == "wrap")   # wrapped folds stay small
        config = replace(config, act_signed=False)
        layer = make_layer(rng, "linear", 8, False, 8, 0, c_in=300, c_out=2, fill=-128)
        assert_screen_equals_golden(layer, np.full((3, 300), 255), config)


@pytest.mark.parametrize("nhwc", [1, 10**9])
def test_one_channel_blocks_of_unequal_strides(nhwc):
    """Blocks of one input channel, output width 1, strides (1, 2) (found by the property test:
    a channel-last conv gets this shape wrong, so the block sums must not take that path)."""
    rng = np.random.default_rng(0)
    layer = make_layer(rng, "conv2d", 2, False, 2, 0, c_in=2, c_out=3, kernel=(1, 3), padding=(2, 0),
                       stride=(1, 2))
    config = ArrayConfig(rows=1, cols=3, act_bits=2, weight_bits=2, pe_acc_bits=4, overflow="wrap")
    with ExitStack() as stack:
        with_knobs(stack, (1, 0, nhwc, 2.0))
        assert_screen_equals_golden(layer, codes_for(rng, layer, (2, 2, 1, 3), "uniform"), config)


@pytest.mark.parametrize("extra, events", [(0, 0), (1, 1)])
def test_just_overflowing_sum(extra, events):
    """A sum that reaches exactly 2^(Q-1) - 1 raises nothing; one more is one accumulator event."""
    config = ArrayConfig(rows=4, cols=2, act_bits=8, weight_bits=8, pe_acc_bits=16, overflow="wrap")
    x = np.full((1, 160), 205)
    x[0, -1] = config.out_range[1] - 159 * 205 + extra          # the last fold tips it over, or not
    layer = IntLayer(name="l", kind="linear", weight=np.ones((1, 160), np.int64), weight_scale=[1.0],
                     input_scale=1.0, input_zero_point=0)
    got = assert_screen_equals_golden(layer, x, config)
    res = screen(layer_operand(layer, x), np.zeros(1, np.int64), config)
    stepped = sum(t.size for t, *_ in res.todo) + int(res.dense.sum()) if res.dense is not None else 0
    assert got.acc_events == events and stepped == events


def test_float64_screen_and_restart():
    """Q > 24 screens in float64; an exact sum that leaves 2^24 restarts a float32 screen."""
    rng = np.random.default_rng(5)
    wide = ArrayConfig(rows=2, cols=2, act_bits=12, weight_bits=12, pe_acc_bits=24, out_acc_bits=26,
                       overflow="saturate")
    layer = make_layer(rng, "linear", 12, False, 12, 0, c_in=64, c_out=3)
    codes = codes_for(rng, layer, (4, 64), "rails")
    assert_screen_equals_golden(layer, codes, wide)
    runs = []
    real_run = screen_mod._Blocks.run

    def spy(self, edges):
        runs.append((self.dtype, real_run(self, edges)))
        return runs[-1][1]

    narrow = ArrayConfig(rows=8, cols=2, act_bits=8, weight_bits=8, pe_acc_bits=20, out_acc_bits=24,
                         overflow="wrap")
    layer = make_layer(rng, "linear", 8, False, 8, 0, c_in=1200, c_out=2, fill=127)
    with mock.patch.object(screen_mod._Blocks, "run", spy):
        got = assert_screen_equals_golden(layer, np.full((2, 1200), 255), narrow)
    assert [ok is not None for _, ok in runs] == [False, True] and got.acc_events > 0


def test_wide_operands_and_errors():
    """16-bit operands (2^31 products) screen with float64 block sums; Q > 52 steps every vector;
    codes outside the lanes and a bias outside Q are errors."""
    rng = np.random.default_rng(6)
    big = make_layer(rng, "linear", 16, False, 16, 0, c_in=8, c_out=2)
    cfg16 = ArrayConfig(rows=4, cols=2, act_bits=16, weight_bits=16, pe_acc_bits=34)
    assert_screen_equals_golden(big, rng.integers(0, 1 << 16, (2, 8)), cfg16)
    q60 = ArrayConfig(rows=4, cols=2, act_bits=16, weight_bits=16, pe_acc_bits=40, out_acc_bits=60)
    res = screen(layer_operand(big, rng.integers(0, 1 << 16, (3, 8))), np.zeros(2, np.int64), q60)
    assert res.dense.all()
    assert_screen_equals_golden(big, rng.integers(0, 1 << 16, (3, 8)), q60)
    signed = make_layer(rng, "linear", 8, True, 8, 0, c_in=8, c_out=2)
    with pytest.raises(ValueError, match=r"span \[-128, -\d+\], outside the layer's lane range \[0, 255\]"):
        layer_operand(signed, rng.integers(-128, 0, (2, 8)), (0, 255))
    biased = make_layer(rng, "linear", 8, False, 8, 0, c_in=8, c_out=2, bias_bits=30)
    with pytest.raises(ValueError, match="bias of channel"):
        GoldenBackend(ArrayConfig(rows=4, cols=2, pe_acc_bits=16)).run(
            biased, rng.integers(0, 256, (3, 8)))


def test_exact_whatever_the_float32_precision_settings():
    """Block sums run in float32 (12-bit codes would lose bits in bfloat16) whatever the caller
    set, and the caller's settings come back."""
    import torch

    rng = np.random.default_rng(9)
    layer = make_layer(rng, "conv2d", 12, False, 8, 0, c_in=4, c_out=3)
    config = ArrayConfig(rows=4, cols=2, act_bits=12, weight_bits=8, pe_acc_bits=22, overflow="wrap")
    conv = torch.backends.mkldnn.conv
    seen = []
    real = torch.nn.functional.conv2d

    def spy(*args, **kwargs):
        seen.append((conv.fp32_precision, torch.get_float32_matmul_precision()))
        return real(*args, **kwargs)

    old = conv.fp32_precision, torch.get_float32_matmul_precision()
    try:
        conv.fp32_precision = "bf16"
        torch.set_float32_matmul_precision("medium")
        with mock.patch.object(torch.nn.functional, "conv2d", spy):
            assert_screen_equals_golden(layer, rng.integers(3000, 4096, (2, 4, 5, 5)), config)
        assert seen and set(seen) == {("ieee", "highest")}
        assert (conv.fp32_precision, torch.get_float32_matmul_precision()) == ("bf16", "medium")
    finally:
        conv.fp32_precision = old[0]
        torch.set_float32_matmul_precision(old[1])


def test_block_edges():
    assert block_edges(576, 9, 32, 511) == [0, 288, 576]            # 3x3: whole folds, 32 channels
    assert block_edges(600, 1, 32, 511) == [0, 288, 576, 600]       # linear / 1x1
    assert block_edges(490, 49, 32, 511) == [0, 245, 490]           # 7x7: no whole fold fits
    assert block_edges(100, 1, 4, 3) is None                        # a fold is not exact in float32
    assert block_edges(2, 1, 4, 3) == [0, 2]                        # K below one fold


@pytest.mark.parametrize("groups", [1, 2])
def test_patches_equal_lowering(groups):
    rng = np.random.default_rng(7)
    layer = make_layer(rng, "conv2d", 8, False, 8, 3, c_in=4, c_out=4, groups=groups,
                       kernel=(2, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    codes = rng.integers(0, 256, (2, 4, 6, 7))
    p = layer_operand(layer, codes)
    assert isinstance(p, Patches)
    mats = lower(layer, codes)
    t = rng.integers(0, p.shape.t, 20)
    o = rng.integers(0, layer.out_channels, 20)
    x = np.stack([mats[oc // p.shape.o][0][tt] for tt, oc in zip(t, o)])
    w = np.stack([mats[oc // p.shape.o][1][:, oc % p.shape.o] for oc in o])
    assert np.array_equal(p.take(t, o, 3, 9, np.float32), x[:, 3:9])
    assert np.array_equal(p.weights(o, 3, 9, np.int64), w[:, 3:9])
    assert np.array_equal(p.rows(t, 1 if groups == 2 else 0), mats[1 if groups == 2 else 0][0][t])
    pos, neg = (s.reshape(p.shape.t, -1) for s in p.block_sums(p.kk, 2 * p.kk, np.float32))
    for g, (xg, wg, _) in enumerate(mats):
        prods = xg[:, None, p.kk:2 * p.kk].astype(np.int64) * wg.T[None, :, p.kk:2 * p.kk]
        sl = slice(g * p.shape.o, (g + 1) * p.shape.o)
        assert np.array_equal(pos[:, sl], np.maximum(prods, 0).sum(axis=2))
        assert np.array_equal(neg[:, sl], np.minimum(prods, 0).sum(axis=2))


def test_exact_sums_equal_the_lowering():
    rng = np.random.default_rng(8)
    layer = make_layer(rng, "conv2d", 8, False, 8, 0, c_in=64, c_out=8, bias_bits=10, groups=2)
    codes = rng.integers(0, 256, (2, 64, 6, 6))
    op = layer_operand(layer, codes)
    ys = [x.astype(np.int64) @ w for x, w, _ in lower(layer, codes)]
    want = raise_output(layer, ys, op.shape)
    assert np.array_equal(op.output(op.exact_sums()), want)


def _offset_past_int16():
    """16-bit codes in [32700, 32767]: they fit int16, their int8 offset (32828) does not."""
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 8, (3, 16, 3, 3))
    layer = IntLayer(name="l", kind="conv2d", weight=w, weight_scale=[1.0], input_scale=1.0,
                     input_zero_point=32700, act_bits=16, weight_bits=8, padding=(1, 1))
    codes = rng.integers(32700, 32768, (1, 16, 4, 5))
    return layer, codes, ArrayConfig(rows=8, cols=2, act_bits=16, weight_bits=8,
                                     pe_acc_bits=24, out_acc_bits=24)


def _offset_sums_past_int32(kernel):
    """16-bit codes of a narrow span [60000, 60200] (int8 GEMMs with offset 60128), weights 127:
    output 0's first fold of 300 rows sums to 2.3e9 > 2^31, and its accumulator leaves Q = 40
    bits by one there. As a 1x1 conv of 300 channels the int8 block sums would carry it; as a
    7x7 conv of 10 channels (one block of too few channels: float64 convs) the int8 dense
    refinement would."""
    c, ks = (300, 1) if kernel == 1 else (10, 7)
    w = np.ones((8, c, ks, ks), np.int64)
    w[0] = 127
    codes = np.full((1, c, ks, ks), 60200)
    codes[0, 0, 0, 0] = 60000
    bias = np.zeros(8, np.int64)
    bias[0] = (1 << 39) - 1 - int(codes.reshape(-1)[:300] @ w[0].reshape(-1)[:300]) + 1
    layer = IntLayer(name="l", kind="conv2d", weight=w, weight_scale=[1.0], input_scale=1.0,
                     input_zero_point=60000, act_bits=16, weight_bits=8, bias=bias)
    return layer, codes, ArrayConfig(rows=300, cols=2, act_bits=16, weight_bits=8,
                                     pe_acc_bits=40, out_acc_bits=40)


def _float64_fold_sums():
    """A linear layer with folds of 520 rows (float64 block sums): fold 0's negative products
    leave P = 25 bits; a running sum that aliased fold 0's sums hid it."""
    w = np.zeros((8, 1040), np.int64)
    w[0, :520], w[0, 520:528] = -128, 100
    layer = IntLayer(name="l", kind="linear", weight=w, weight_scale=[1.0], input_scale=1.0,
                     input_zero_point=0)
    return layer, np.full((1, 1040), 255), ArrayConfig(rows=520, cols=2, pe_acc_bits=25,
                                                       out_acc_bits=26)


def _running_sum_past_2_24(o):
    """Blocks of 9 rows, folds of 4 (1x3 kernel): the refinement of block [27, 36) runs over
    folds [24, 36), whose sum is 2^24 + 1 (float32 rounds it to 2^24): the accumulator leaves
    Q = 26 bits by one at fold edge 36. ``o`` 8: dense refinement; 128: gathered."""
    w = np.zeros((o, 12, 1, 3), np.int64)
    x = np.zeros((1, 12, 1, 3), np.int64)
    x.reshape(-1)[:] = np.arange(36) * 300 % 13001            # a wide span: no int8 GEMMs
    for i, (xv, wv) in enumerate([(13000, 127)] * 10 + [(2104, 127), (9, 1)]):
        x.reshape(-1)[24 + i], w[0].reshape(-1)[24 + i] = xv, wv
    bias = np.zeros(o, np.int64)
    bias[0] = 2**24 - 1
    layer = IntLayer(name="l", kind="conv2d", weight=w, weight_scale=[1.0], input_scale=1.0,
                     input_zero_point=0, act_bits=16, weight_bits=8, bias=bias)
    return layer, x, ArrayConfig(rows=4, cols=2, act_bits=16, weight_bits=8, pe_acc_bits=26,
                                 out_acc_bits=26)


@pytest.mark.parametrize("case", [_offset_past_int16, lambda: _offset_sums_past_int32(1),
                                  lambda: _offset_sums_past_int32(7), _float64_fold_sums,
                                  lambda: _running_sum_past_2_24(8),
                                  lambda: _running_sum_past_2_24(128)],
                         ids=["offset-past-int16", "int8-block-sums-past-int32",
                              "int8-refinement-past-int32", "float64-fold-sums",
                              "dense-running-sum-past-2^24", "gathered-running-sum-past-2^24"])
def test_dtype_edges_of_the_fast_paths(case):
    """Each one of the fast paths' dtype limits, at the edge where it once gave a wrong answer
    (found in review): results, flags and events equal the reference."""
    assert_screen_equals_golden(*case())


@pytest.mark.parametrize("padding", [(1, 1), (0, 0)])
def test_empty_batch(padding):
    """A batch of no images: empty results of the layer's output shape, no events."""
    layer = make_layer(np.random.default_rng(0), "conv2d", 8, False, 8, 0, c_in=32, c_out=4,
                       padding=padding)
    got = GoldenBackend(ArrayConfig(rows=8, cols=2, pe_acc_bits=17, out_acc_bits=19)).run(
        layer, np.zeros((0, 32, 4, 4), np.int64))
    assert got.acc.shape == (0, 4, 4 - 2 * (1 - padding[0]), 4 - 2 * (1 - padding[1]))
    assert (got.pe_events, got.acc_events) == (0, 0)
