"""Array back ends on single layers: conv/linear lowering against PyTorch, cycles, extremes, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from accel.arith import signed_bits
from accel.backends import ExactBackend, GoldenBackend, check_layer_fits
from accel.config import ArrayConfig
from accel.executor import layer_stats
import accel.extremes
import accel.operand
import accel.screen
from accel.extremes import psum_extremes
from accel.golden import gemm
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.lowering import gemm_shape, lower
from accel.nodes import ArrayLayer
from accel.intgemm import int8_mm
from accel.operand import Matrix, Patches, exact_float32, layer_operand
from accel.reference import reference_gemm
from sim.cycles import CycleMeter, gemm_cycles
from test_screen import assert_screen_equals_golden

GEOMETRIES = [  # c_in, c_out, kernel, stride, padding, dilation, groups, h, w
    (3, 5, 3, 1, 1, 1, 1, 6, 7), (4, 6, 3, 2, 2, 1, 2, 7, 5), (4, 4, 3, 1, 1, 1, 4, 5, 5),
    (2, 3, (2, 3), (2, 1), (0, 1), (2, 1), 1, 8, 6), (6, 6, 1, 1, 0, 1, 3, 3, 3),
]


def conv_layer(rng, c_in, c_out, kernel, stride, padding, dilation, groups, zp=5, bias=True):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = rng.integers(-128, 128, (c_out, c_in // groups, kh, kw))
    raw = rng.integers(-1000, 1000, c_out) if bias else None
    return IntLayer(name="conv", kind="conv2d", weight=w, weight_scale=np.full(c_out, 0.01),
                    input_scale=0.1, input_zero_point=zp, bias=fold_zero_point(raw, w, zp),
                    stride=stride, padding=padding, dilation=dilation, groups=groups), raw


@pytest.mark.parametrize("geo", GEOMETRIES)
@pytest.mark.parametrize("backend", [ExactBackend, GoldenBackend])
def test_conv_lowering_equals_pytorch(geo, backend):
    rng = np.random.default_rng(1)
    c_in, c_out, kernel, stride, padding, dilation, groups, h, w = geo
    layer, raw = conv_layer(rng, c_in, c_out, kernel, stride, padding, dilation, groups)
    codes = rng.integers(0, 256, (2, c_in, h, w))
    config = ArrayConfig(rows=4, cols=3, acc_depth=8)
    run = backend(config).run(layer, codes)
    # real-zero padding: the conv of (codes - zp) with zero padding, plus the raw bias
    ref = F.conv2d(torch.from_numpy(codes - 5.0), torch.from_numpy(layer.weight.astype(float)),
                   torch.from_numpy(raw.astype(float)), stride, padding, dilation, groups)
    assert np.array_equal(run.acc, ref.numpy().astype(np.int64))
    stats = layer_stats(ArrayLayer(name="conv", inputs=("x",), layer=layer), codes.shape, run)
    CycleMeter(config)(ArrayLayer(name="conv", inputs=("x",), layer=layer), run.shape, stats)
    shape = gemm_shape(layer, codes.shape)
    assert stats.cycles == groups * gemm_cycles(shape.t, shape.k, shape.o, config).cycles
    assert stats.jobs == groups and stats.exact_mismatches == 0 and stats.pe_events == 0


def test_linear_lowering_keeps_leading_dims():
    rng = np.random.default_rng(2)
    w = rng.integers(-8, 8, (3, 5))
    layer = IntLayer(name="fc", kind="linear", weight=w, weight_scale=[0.5], input_scale=1.0,
                     input_zero_point=0)
    codes = rng.integers(0, 16, (2, 4, 5))
    for backend in (ExactBackend, GoldenBackend):
        assert np.array_equal(backend(ArrayConfig(rows=2, cols=2)).run(layer, codes).acc, codes @ w.T)
    one = GoldenBackend(ArrayConfig(rows=2, cols=2)).run(layer, codes[0, 0])     # one vector
    assert np.array_equal(one.acc, codes[0, 0] @ w.T)


def use_kernel(monkeypatch, kernel):
    """Run on the int8 GEMMs where operands fit ("int8") or on the float kernels ("float")."""
    if kernel == "float":
        monkeypatch.setattr(accel.operand, "int8_operands", lambda span, weight_span: None)


def random_grouped_conv(rng, half_c_in, kernels):
    """A random conv of one or two groups: 2 * [half_c_in) input and 2..6 output channels, a
    kernel size in [kernels), stride 1-2, padding 0-1 with a zero point 0-2. Returns it, its input
    channels and its groups."""
    groups = int(rng.choice([1, 2]))
    c_in, c_out = 2 * int(rng.integers(*half_c_in)), 2 * int(rng.integers(1, 4))
    layer, _ = conv_layer(rng, c_in, c_out, int(rng.integers(*kernels)), int(rng.integers(1, 3)),
                          int(rng.integers(0, 2)), 1, groups, zp=int(rng.integers(0, 3)))
    return layer, c_in, groups


def brute_extremes(x, w, b, r):
    pe = [0]
    acc = [int(v) for v in b]
    for t in range(x.shape[0]):
        for o in range(w.shape[1]):
            a = int(b[o])
            for k0 in range(0, x.shape[1], r):
                pref = np.cumsum(x[t, k0:k0 + r] * w[k0:k0 + r, o])
                pe += [int(pref.max()), int(pref.min())]
                a += int(pref[-1])
                acc.append(a)
    return min(pe), max(pe), min(acc), max(acc)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_extremes_exact_and_minimum_widths(seed, mode):
    rng = np.random.default_rng(seed)
    signed = seed % 2 == 1
    config = ArrayConfig(rows=int(rng.integers(1, 6)), cols=3, act_bits=4, act_signed=signed,
                         weight_bits=4, pe_acc_bits=int(rng.integers(8, 12)),
                         out_acc_bits=int(rng.integers(12, 14)), overflow=mode)
    t, k, o = (int(v) for v in rng.integers(1, 12, 3))
    lo, hi = config.act_range
    x = rng.integers(lo, hi + 1, (t, k))
    if seed % 3 == 0:
        x[:, :] = lo if signed else hi      # rails: -8 * -8 and all-ones, overflowing on purpose
    w = rng.integers(-8, 8, (k, o))
    if seed % 3 == 0:
        w[:, :] = -8
    b = rng.integers(-100, 100, o)
    with exact_float32():
        ext = psum_extremes(Matrix(x, w), b, config.rows)
    assert (ext.pe_min, ext.pe_max, ext.acc_min, ext.acc_max) == brute_extremes(x, w, b, config.rows)
    # the minimum widths avoid every event, one bit less does not (when it is legal)
    p_need = int(signed_bits([ext.pe_min, ext.pe_max]).max())
    if p_need >= config.min_pe_acc_bits:
        q = max(p_need, int(signed_bits([ext.acc_min, ext.acc_max]).max()))
        ok = gemm(x, w, ArrayConfig(**{**config.to_dict(), "pe_acc_bits": p_need, "out_acc_bits": q}), b)
        assert ok.pe_events == ok.acc_events == 0
        if p_need - 1 >= config.min_pe_acc_bits:
            bad = reference_gemm(x, w, ArrayConfig(**{**config.to_dict(), "pe_acc_bits": p_need - 1,
                                                      "out_acc_bits": max(q, p_need - 1)}), b)
            assert bad.pe_events > 0


def test_extremes_wide_operands():
    config = ArrayConfig(rows=64, cols=4, act_bits=16, weight_bits=16, pe_acc_bits=48)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 1 << 16, (5, 130))
    w = rng.integers(-(1 << 15), 1 << 15, (130, 3))
    with exact_float32():
        ext = psum_extremes(Matrix(x, w), None, 64)
    assert (ext.pe_min, ext.pe_max, ext.acc_min, ext.acc_max) == brute_extremes(x, w, np.zeros(3, int), 64)


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("kernel", ["int8", "float"])
def test_extremes_of_convs_in_chunks_equal_brute_force(seed, kernel, monkeypatch):
    """Conv operands (groups, strides, padding with a zero point, signed codes, codes that need an
    int8 offset or do not fit int8) in chunks of a few vectors, on int8 GEMMs and on float ones -
    the bias near 2^24 or 2^31 on some seeds, so the float32 accumulator falls back to float64
    and the int32 one to int64."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(accel.extremes, "EXTREMES_CHUNK", int(rng.integers(1, 4000)))
    use_kernel(monkeypatch, kernel)
    layer, c_in, groups = random_grouped_conv(rng, (1, 4), (1, 4))
    if seed % 4 == 3:
        layer = dataclasses.replace(layer, bias=layer.bias + (1 << (31 if seed % 8 == 7 else 24)) - 2000)
    signed = seed % 2 == 1
    top = 512 if seed % 6 == 4 else 256          # 9-bit codes: no int8 operands
    codes = rng.integers(-128 if signed else 0, 128 if signed else top, (2, c_in, 6, 7))
    rows = int(rng.integers(1, 12))
    span = (-128, top - 1)
    with exact_float32():
        op = layer_operand(layer, codes, span)
        assert (op.int8 is not None) == (kernel == "int8" and top == 256)
        ext = psum_extremes(op, layer.bias, rows)
    want = None
    for x, w, b in lower(layer, codes, span):
        e = brute_extremes(x.astype(np.int64), w, b, rows)
        want = e if want is None else (min(want[0], e[0]), max(want[1], e[1]),
                                       min(want[2], e[2]), max(want[3], e[3]))
    assert (ext.pe_min, ext.pe_max, ext.acc_min, ext.acc_max) == want


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kernel", ["int8", "float"])
def test_values_with_extremes_equal_the_reference(seed, kernel, monkeypatch):
    """With extremes the screen's answer comes from the fold-by-fold pass: the results, flags and
    events still equal SPEC section 2 one integer at a time (P at or one bit below what the data
    needs, Q one bit below: events on most seeds)."""
    rng = np.random.default_rng(100 + seed)
    monkeypatch.setattr(accel.extremes, "EXTREMES_CHUNK", int(rng.integers(1, 2000)))
    use_kernel(monkeypatch, kernel)
    layer, c_in, groups = random_grouped_conv(rng, (3, 9), (2, 4))
    signed = seed % 2 == 1
    codes = rng.integers(-128 if signed else 0, 128 if signed else 256, (2, c_in, 6, 7))
    layer = dataclasses.replace(layer, act_signed=signed)
    rows = int(rng.integers(1, 12))
    with exact_float32():
        ext = psum_extremes(layer_operand(layer, codes), layer.bias, rows)
    p_need = int(signed_bits([ext.pe_min, ext.pe_max]).max())
    q_need = int(signed_bits([ext.acc_min, ext.acc_max]).max())
    p = max(16, p_need - int(rng.integers(0, 2)))
    q = max(p, q_need - 1)
    config = ArrayConfig(rows=rows, cols=2, act_bits=8, act_signed=signed, pe_acc_bits=p,
                         out_acc_bits=q, overflow=str(rng.choice(["wrap", "saturate"])))
    layer = dataclasses.replace(layer, bias=np.clip(layer.bias, *config.out_range))
    with_ext = GoldenBackend(config, extremes=True).run(layer, codes)
    shape = gemm_shape(layer, codes.shape)
    og = shape.o
    for g, (x, w, b) in enumerate(lower(layer, codes, config.lane_range)):
        ref = reference_gemm(x, w, config, b)
        sl = (slice(None), slice(g * og, (g + 1) * og))
        for got, want in ((with_ext.acc, ref.y), (with_ext.pe_overflow, ref.pe_overflow),
                          (with_ext.acc_overflow, ref.acc_overflow)):
            assert np.array_equal(got.transpose(0, 2, 3, 1).reshape(-1, og * groups)[sl], want)
    plain = GoldenBackend(config).run(layer, codes)
    assert (with_ext.pe_events, with_ext.acc_events) == (plain.pe_events, plain.acc_events)
    assert with_ext.pe_events + with_ext.acc_events > 0 or (p >= p_need and q >= q_need)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kernel", ["int8", "float", "signed"])
@pytest.mark.parametrize("refine", ["as set", "dense", "gathered"])
def test_screen_on_int8_block_sums_equals_the_reference(seed, kernel, refine, monkeypatch):
    """Convs wide enough for int8 block GEMMs (16 and more channels a block), the screen in int32,
    narrow P and Q: results, flags and events equal SPEC section 2 one integer at a time, on the
    int8 kernels and on the float ones, and for signed codes (float block sums and refinement on
    ``[x+ | x-]``, gathers from the int8 input); on odd seeds ``A`` 'leaves' int32's exact range
    early, so the screen runs again in float64. Outputs at risk are refined as the module sets
    it, or all by fold sums of every channel of their vectors ("dense") or all by gathered
    products, and no vector is stepped whole (most of them would be at these widths); on seeds
    2, 3, 6, 7 in blocks of about two folds, most of which share a fold with the block before."""
    rng = np.random.default_rng(200 + seed)
    use_kernel(monkeypatch, kernel)
    if seed % 2:
        monkeypatch.setitem(accel.screen._EXACT, np.int32, 1 << 12)
    if refine != "as set":
        monkeypatch.setattr(accel.screen, "DENSE_RATIO", 10**9 if refine == "dense" else 0)
        monkeypatch.setattr(accel.screen, "DENSE_ROW_SHARE", 2.0)
    if seed % 4 >= 2:
        monkeypatch.setattr(accel.screen, "BLOCK_FOLDS", 2)
    c_in, c_out = int(rng.integers(16, 41)), int(rng.integers(2, 7))
    layer, _ = conv_layer(rng, c_in, c_out, int(rng.integers(1, 4)), 1, int(rng.integers(0, 2)),
                          1, 1, zp=int(rng.integers(0, 3)))
    signed = kernel == "signed"
    codes = rng.integers(-128 if signed else 0, 128 if signed else 256, (2, c_in, 5, 6))
    p = int(rng.integers(16, 20))
    config = ArrayConfig(rows=int(rng.integers(8, 40)), cols=2, pe_acc_bits=p, act_signed=signed,
                         out_acc_bits=p + int(rng.integers(0, 3)),
                         overflow=str(rng.choice(["wrap", "saturate"])))
    layer = dataclasses.replace(layer, bias=np.clip(layer.bias, *config.out_range),
                                act_signed=signed)
    op = layer_operand(layer, codes)
    assert op.int_blocks == (kernel == "int8")
    assert_screen_equals_golden(layer, codes, config)


def test_int8_block_sums_follow_each_batch_offset():
    """The int8 offset comes from each batch's codes (0 for codes that fit, the smallest + 128
    else) while the block weights stay cached with the layer: a second batch with another offset
    still gets exact sums (a cached correction was stale), and a correction past 2^24 (codes near
    256, 896 channels: P = 16, Q = 32 screens in float) is added exactly."""
    rng = np.random.default_rng(11)
    layer, _ = conv_layer(rng, 32, 3, 3, 1, 1, 1, 1, zp=0)
    config = ArrayConfig(rows=32, cols=2, pe_acc_bits=18, out_acc_bits=20)
    backend = GoldenBackend(config)
    for top in (128, 256, 200):
        codes = rng.integers(top - 128 if top == 200 else 0, top, (2, 32, 5, 6))
        run = backend.run(layer, codes)
        (x, w, b), = lower(layer, codes, config.lane_range)
        ref = reference_gemm(x, w, config, b)
        assert np.array_equal(run.exact.transpose(0, 2, 3, 1).reshape(-1, 3), x @ w + b)
        assert np.array_equal(run.acc.transpose(0, 2, 3, 1).reshape(-1, 3), ref.y)
        assert (run.pe_events, run.acc_events) == (ref.pe_events, ref.acc_events)
    w = np.full((4, 896, 1, 1), 127)
    w[:, 0] = 126
    wide = IntLayer(name="wide", kind="conv2d", weight=w, weight_scale=np.full(4, 0.01),
                    input_scale=0.1, input_zero_point=0)
    codes = rng.integers(129, 131, (1, 896, 2, 3))
    op = layer_operand(wide, codes)
    assert op.int_blocks and op.int8 == 257
    run = GoldenBackend(ArrayConfig(rows=128, cols=2, pe_acc_bits=16, out_acc_bits=32)).run(wide, codes)
    (x, w2, _), = lower(wide, codes, (0, 255))
    assert np.array_equal(run.exact.transpose(0, 2, 3, 1).reshape(-1, 4), x.astype(np.int64) @ w2)


def test_int8_mm_is_exact_on_views_with_any_strides():
    """One-column and one-row views whose size-1 dimension has an odd stride (what a transposed
    im2col of a one-channel 1x1 conv gives) come back exact, as do plain and sliced operands."""
    rng = np.random.default_rng(7)
    for n, k, m in ((32, 1, 3), (1, 5, 4), (40, 96, 37), (3, 2, 1)):
        base = torch.from_numpy(rng.integers(-128, 128, (n * k + n * 16,), dtype=np.int8))
        a_odd = base.as_strided((n, k), (1, 16)) if k == 1 else base[:n * k].view(n, k)
        b = torch.from_numpy(rng.integers(-128, 128, (k, m + 2), dtype=np.int8))[:, 2:]
        for a in (a_odd, a_odd.contiguous()):
            want = a.numpy().astype(np.int64) @ b.numpy().astype(np.int64)
            assert np.array_equal(int8_mm(a, b).numpy(), want)
            out = torch.empty(n, m, dtype=torch.int32)
            int8_mm(a, b, out=out)
            assert np.array_equal(out.numpy(), want)


@pytest.mark.parametrize("seed", range(8))
def test_patches_row_blocks_equal_im2col_rows(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 3]))
    layer, _ = conv_layer(rng, 3 * groups, 2 * groups, int(rng.integers(1, 4)),
                          int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3)), groups)
    codes = rng.integers(0, 256, (3, 3 * groups, 9, 8))
    op = layer_operand(layer, codes)
    assert isinstance(op, Patches)
    t = op.shape.t
    step = op.row_step(int(rng.integers(1, 2 * t)))
    for g in range(groups):
        got = np.concatenate([op.row_block(t0, min(t, t0 + step), g, np.float32).numpy()
                              for t0 in range(0, t, step)])
        assert np.array_equal(got, op.rows(np.arange(t), g))
        t0, t1 = sorted(int(v) for v in rng.integers(0, t + 1, 2))
        assert np.array_equal(op.row_block(t0, t1, g, np.float64).numpy(), op.rows(np.arange(t0, t1), g))
        assert op.int8 == 128                        # codes 0..255 offset into int8
        got = op.row_block(t0, t1, g, np.int8)
        assert got.dtype == torch.int8
        assert np.array_equal(got.numpy().astype(np.int64) + 128, op.rows(np.arange(t0, t1), g))


def test_golden_backend_extremes_reach_layer_stats():
    rng = np.random.default_rng(4)
    layer, _ = conv_layer(rng, 3, 4, 3, 1, 1, 1, 1, zp=0)
    codes = rng.integers(0, 256, (1, 3, 5, 5))
    config = ArrayConfig(rows=4, cols=2, pe_acc_bits=19, overflow="saturate")
    run = GoldenBackend(config, extremes=True).run(layer, codes)
    stats = layer_stats(ArrayLayer(name="conv", inputs=("x",), layer=layer), codes.shape, run)
    stats.finish(config)
    want = None
    for x, w, b in lower(layer, codes):
        want = brute_extremes(x.astype(np.int64), w, b, 4)
    assert (stats.pe_psum_min, stats.pe_psum_max, stats.acc_min, stats.acc_max) == want
    assert stats.min_pe_bits == max(config.min_pe_acc_bits, int(signed_bits(list(want[:2])).max()))
    assert stats.extremes_measured and stats.largest_psum == max(-want[0], want[1])


def test_errors_name_layer():
    rng = np.random.default_rng(0)
    layer, _ = conv_layer(rng, 3, 4, 3, 1, 1, 1, 1)
    with pytest.raises(LayerError, match=r"'conv'.*input codes span \[256, 256\]"):
        lower(layer, np.full((1, 3, 4, 4), 256))
    with pytest.raises(LayerError, match=r"conv2d input must be \[N, 3, H, W\]"):
        gemm_shape(layer, (1, 2, 4, 4))
    with pytest.raises(LayerError, match="smaller than the dilated kernel"):
        gemm_shape(IntLayer(**{**layer.__dict__, "padding": 0}), (1, 3, 2, 2))
    with pytest.raises(LayerError, match="do not fit the array's lanes"):
        check_layer_fits(layer, ArrayConfig(act_bits=8, act_signed=True))
    with pytest.raises(LayerError, match="weights do not fit the array's weight_bits = 4"):
        check_layer_fits(layer, ArrayConfig(weight_bits=4, act_bits=8))
    lin = IntLayer(name="fc", kind="linear", weight=np.ones((2, 3), int), weight_scale=[1.0],
                   input_scale=1.0, input_zero_point=0)
    with pytest.raises(LayerError, match="linear input must end in 3 features"):
        gemm_shape(lin, (4, 2))


@pytest.mark.parametrize("high, c_in, groups", [(256, 130, 1), (256, 64, 2), (1 << 16, 6, 1)])
def test_patches_exact_sums_over_channel_blocks(high, c_in, groups):
    """Codes near the top of their range on many channels: the float32 convs split into several
    channel blocks (or run in float64 where one channel alone could reach 2^24)."""
    rng = np.random.default_rng(5)
    layer, _ = conv_layer(rng, c_in, 4 * groups, 3, 1, 1, 1, groups, zp=0, bias=False)
    layer = dataclasses.replace(layer, weight=rng.integers(100, 128, layer.weight.shape))  # sums > 2^24
    codes = rng.integers(high - 8, high, (2, c_in, 5, 6))
    op = layer_operand(layer, codes, (0, high - 1))
    want = np.concatenate([x.astype(np.int64) @ w for x, w, _ in lower(layer, codes, (0, high - 1))],
                          axis=1)
    assert np.array_equal(op.exact_sums().reshape(-1, 4 * groups), want)
