"""accel.nodes: each host operation against its documented formula (or PyTorch), and validation."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.arith import code_range
from accel.layers import LayerError
from accel.nodes import (REAL, Add, AvgPool, Clamp, Concat, Dequantize, IntType, MaxPool,
                         Quantize, Requantize, Reshape, fma_f32, node_from_state)


@settings(max_examples=300, deadline=None)
@given(bits=st.integers(1, 32), signed=st.booleans(), relu=st.booleans(),
       order=st.sampled_from(["mul", "add_mul", "mul_add"]), izp=st.integers(-300, 300),
       rounding=st.sampled_from(["half_even", "half_away"]), seed=st.integers(0, 2**31))
def test_requantize_equals_its_formula(bits, signed, relu, order, izp, rounding, seed):
    """Every order, rounding and zero point, step by step in fp32 (float64 clamps), on values
    from 0 to the rails of 40 bits."""
    rng = np.random.default_rng(seed)
    lo, hi = code_range(bits, signed)
    zp = int(rng.integers(lo, hi + 1))
    mult = rng.uniform(1e-6, 4.0, 3).astype(np.float32)
    off = None if order == "mul" else rng.uniform(-1e3, 1e3, 3).astype(np.float32)
    rq = Requantize(name="r", inputs=("a",), multiplier=mult, scale=0.5, zero_point=zp, bits=bits,
                    signed=signed, lo=zp if relu else None, input_zero_point=izp, offset=off,
                    order=order, rounding=rounding, axis=-1)
    acc = np.concatenate([rng.integers(-(1 << 40), 1 << 40, (5, 3)), rng.integers(-300, 300, (5, 3)),
                          np.array([[-(1 << 40)] * 3, [(1 << 40) - 1] * 3, [0] * 3]),
                          np.array([[1, 3, 5]])])
    v = (acc - izp).astype(np.float32)
    if order == "add_mul":
        v = (v + off).astype(np.float32)
    v = (v * mult).astype(np.float32)
    if order == "mul_add":
        v = (v + off).astype(np.float32)
    r = np.rint(v) if rounding == "half_even" else np.trunc(v + np.copysign(np.float32(0.5), v))
    want = np.clip(r.astype(np.float64) + zp, zp if relu else lo, hi)
    assert np.array_equal(rq.apply(acc), want.astype(np.int64))


def test_requantize_worked_numbers_and_channel_axis():
    rq = Requantize(name="r", inputs=("a",), multiplier=[0.5], scale=1.0, zero_point=10)
    # 1 * 0.5 = 0.5 -> 0 ; 3 * 0.5 = 1.5 -> 2 ; 5 * 0.5 = 2.5 -> 2 (half to even)
    assert rq.apply(np.array([1, 3, 5, 1000, -1000])).tolist() == [10, 12, 12, 255, 0]
    away = Requantize(name="r", inputs=("a",), multiplier=[0.5], scale=1.0, rounding="half_away")
    assert away.apply(np.array([1, 3, 5])).tolist() == [1, 2, 3]
    per = Requantize(name="r", inputs=("a",), multiplier=[1.0, 2.0], scale=1.0, axis=1)
    assert per.apply(np.array([[[[3]], [[3]]]])).ravel().tolist() == [3, 6]       # NCHW channel


@pytest.mark.parametrize("mode", ["f64_div", "f32_div", "f32_mul_inv", "f32_fma_inv"])
def test_quantize_modes_equal_their_formulas(mode):
    rng = np.random.default_rng(1)
    s = float(np.float32(0.0371))
    x = np.concatenate([rng.normal(0, 3, 500), (np.arange(-60, 60) + 0.5) * s]).astype(np.float32)
    q = Quantize(name="q", inputs=("x",), scale=s, zero_point=7, bits=8, signed=False, hi=200,
                 mode=mode)
    if mode == "f64_div":
        v = np.rint(x.astype(np.float64) / s) + 7
    elif mode == "f32_div":
        v = np.rint(x / np.float32(s)) + 7
    elif mode == "f32_mul_inv":
        v = np.rint(x * (np.float32(1) / np.float32(s))) + 7
    else:   # one rounding of x * inv + z (exact in float64 for these values), then half to even
        v = np.rint((x.astype(np.float64) * np.float64(np.float32(1) / np.float32(s)) + 7)
                    .astype(np.float32))
    assert np.array_equal(q.apply(x), np.clip(v, 0, 200).astype(np.int64))


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantize_f32_fma_inv_is_torch_quantize_per_tensor():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s, zp = float(np.float32(rng.uniform(1e-3, 0.2))), int(rng.integers(0, 256))
        x = ((rng.integers(-300, 300, 4000) + 0.5) * s).astype(np.float32)   # near ties
        want = torch.quantize_per_tensor(torch.from_numpy(x), s, zp, torch.quint8).int_repr()
        got = Quantize(name="q", inputs=("x",), scale=s, zero_point=zp, mode="f32_fma_inv").apply(x)
        assert np.array_equal(got, want.numpy().astype(np.int64))


def _pool_cases():
    for k, s, p, ceil in itertools.product([1, 2, 3], [1, 2, 3], [0, 1], [False, True]):
        if 2 * p <= k:
            for h, w in [(5, 7), (6, 6), (3, 4)]:
                if h + 2 * p >= k and w + 2 * p >= k:
                    yield k, s, p, ceil, h, w


@pytest.mark.parametrize("k, s, p, ceil, h, w", list(_pool_cases()))
def test_pooling_windows_equal_pytorch(k, s, p, ceil, h, w):
    x = np.random.default_rng(k * 100 + s * 10 + p).integers(0, 256, (2, 3, h, w))
    mp = MaxPool(name="m", inputs=("a",), kernel=k, stride=s, padding=p, ceil_mode=ceil).apply(x)
    ref = F.max_pool2d(torch.from_numpy(x).double(), k, s, p, ceil_mode=ceil).numpy()
    assert mp.shape == ref.shape and np.array_equal(mp, ref)
    for cip in (False, True):
        ap = AvgPool(name="a", inputs=("a",), kernel=k, stride=s, padding=p, ceil_mode=ceil,
                     count_include_pad=cip, multiplier=1.0, scale=1.0, bits=16).apply(x)
        ref = F.avg_pool2d(torch.from_numpy(x).double(), k, s, p, ceil_mode=ceil,
                           count_include_pad=cip).numpy()
        assert ap.shape == ref.shape and np.all(np.abs(ap - ref) <= 0.5 + 1e-9)


def test_avgpool_sum_then_rescale_and_shift():
    x = np.array([[[[1, 2], [3, 6]]]])                   # sum 12, minus 4 * zp 1 = 8
    g = AvgPool(name="g", inputs=("a",), global_pool=True, multiplier=0.5, scale=1.0, zero_point=3,
                input_zero_point=1)
    assert g.apply(x).ravel().tolist() == [4]             # round(8 * 0.5 / 4) + 3 = 1 + 3
    sh = AvgPool(name="g", inputs=("a",), kernel=2, mode="sum_shift", scale=1.0, signed=True)
    assert sh.apply(np.array([[[[-1, -2], [0, 0]]]])).ravel().tolist() == [-1]   # -3 >> 2
    with pytest.raises(LayerError, match="sum_shift needs power-of-two windows"):
        AvgPool(name="g", inputs=("a",), kernel=3, mode="sum_shift", scale=1.0).apply(
            np.zeros((1, 1, 3, 3), np.int64))


def test_add_concat_clamp_reshape_dequantize():
    add = Add(name="s", inputs=("a", "b"), multipliers=(0.5, 0.25), input_zero_points=(2, 0),
              scale=1.0, zero_point=1, lo=1)
    # (4 - 2) * 0.5 + 8 * 0.25 = 3 -> 4 ; (0 - 2) * 0.5 + 0 = -1 -> 0 -> clamp at 1 (ReLU)
    assert add.apply(np.array([4, 0]), np.array([8, 0])).tolist() == [4, 1]
    cat = Concat(name="c", inputs=("a", "b"), axis=1)
    assert cat.apply(np.ones((1, 2)), np.zeros((1, 1))).shape == (1, 3)
    assert Clamp(name="r", inputs=("a",), lo=5).apply(np.array([3, 9])).tolist() == [5, 9]
    assert Reshape(name="f", inputs=("a",), shape=(-1,)).apply(np.zeros((2, 3, 4))).shape == (2, 12)
    dq = Dequantize(name="d", inputs=("a",), scale=[0.5, 2.0], zero_point=1, axis=-1)
    assert dq.apply(np.array([[3, 3]])).tolist() == [[1.0, 4.0]]
    t = IntType(np.array([1.0]), 0, 8, False)
    with pytest.raises(LayerError, match="input 1 has other codes than input 0"):
        Concat(name="c", inputs=("a", "b")).out_type([t, IntType(np.array([2.0]), 0, 8, False)])
    with pytest.raises(LayerError, match="needs integers on its input"):
        Clamp(name="r", inputs=("a",), lo=0).out_type([REAL])


@pytest.mark.parametrize("make, msg", [
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=-1.0), "scale must be positive"),
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=1.0, zero_point=300),
     r"zero_point must be an integer in \[0, 255\]"),
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=1.0, bits=60), "bits must be"),
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[np.inf], scale=1.0), "multiplier must be finite"),
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=1.0, order="add_mul"),
     "order 'add_mul' needs an offset"),
    (lambda: Requantize(name="r", inputs=("a",), multiplier=[1.0], scale=1.0, order="x"), "order must be one of"),
    (lambda: Quantize(name="q", inputs=("x",), scale=1.0, mode="round"), "mode must be one of"),
    (lambda: Add(name="s", inputs=("a",), multipliers=(1, 1)), r"takes 2 input\(s\), not 1"),
    (lambda: MaxPool(name="m", inputs=("a",), kernel=2, padding=2), "padding .* at most half"),
    (lambda: Reshape(name="f", inputs=("a",), shape=(-2,)), "shape entry must be an integer"),
])
def test_validation_names_the_node(make, msg):
    with pytest.raises(LayerError, match=msg) as e:
        make()
    assert "node '" in str(e.value)


def test_state_round_trip_and_errors():
    rq = Requantize(name="r", inputs=("a",), multiplier=[0.5, 0.25], scale=2.0, zero_point=3,
                    offset=[1.0, 2.0], order="add_mul", axis=-1)
    back = node_from_state(*rq.to_state())
    assert isinstance(back, Requantize) and back.order == "add_mul" and back.axis == -1
    assert np.array_equal(back.multiplier, rq.multiplier) and np.array_equal(back.offset, rq.offset)
    with pytest.raises(LayerError, match="unknown node op 'nope'"):
        node_from_state({"op": "nope"}, {})
    with pytest.raises(LayerError, match="malformed 'clamp' node"):
        node_from_state({"op": "clamp", "name": "c", "inputs": ["a"], "bogus": 1}, {})


def _round_f32(q: Fraction) -> np.float32:
    """The rational ``q`` rounded to the nearest float32, ties to even (exact, slow)."""
    f = np.float32(float(q))
    cands = (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf)))
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - q), int(np.array(c).view(np.int32)) & 1))


def _fma_exact(x, y, z) -> np.float32:
    return _round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))


_f32s = st.floats(-1e6, 1e6, width=32, allow_subnormal=False)


@settings(max_examples=400, deadline=None)
@given(x=_f32s, y=_f32s, z=_f32s, near_tie=st.booleans())
def test_fma_f32_rounds_once(x, y, z, near_tie):
    """fma_f32 against exact rational arithmetic, also where x * y + z lies next to a float32
    rounding tie (where a float64 sum rounded again to float32 can be one ulp off)."""
    if near_tie:                     # z moves x * y onto (about) a midpoint between two float32
        p = float(np.float32(x)) * float(np.float32(y))
        f = np.float32(p)
        mid = (float(f) + float(np.nextafter(f, np.float32(np.inf)))) / 2
        z = float(np.float32(mid - p + z * 1e-12))
    got = fma_f32(np.array([x], np.float32), np.array([y], np.float32), np.array([z], np.float32))
    assert got[0] == _fma_exact(np.float32(x), np.float32(y), np.float32(z))


def test_fma_f32_arrays_broadcast_and_round_each_element_once():
    """Vectors mixing exact sums, sums that need rounding to odd and the double-rounding case,
    with a scalar ``y`` broadcast: every element equals its exact rational rounding."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(-255, 256, 200).astype(np.float32),
                        rng.uniform(-1e6, 1e6, 200).astype(np.float32), [np.float32(65)]])
    y = np.float32(1) / np.float32(65)
    z = np.concatenate([rng.uniform(-1e3, 1e3, 400).astype(np.float32), [np.float32(2**24)]])
    got = fma_f32(x, y, z)
    assert [got[i] for i in range(len(x))] == [_fma_exact(x[i], y, z[i]) for i in range(len(x))]


def test_fma_f32_double_rounding_case():
    # 65 * fp32(1/65) = 1 + 2^-30; + 2^24 is 2^24 + 1 + 2^-30, just above a float32 tie: rounded
    # once it goes up to 2^24 + 2; float64 first rounds it onto the tie, which then goes to even
    x, y, z = np.float32(65), np.float32(1) / np.float32(65), np.float32(2**24)
    assert _fma_exact(x, y, z) == fma_f32(x, y, z) == np.float32(2**24 + 2)
    assert np.float32(float(x) * float(y) + float(z)) == np.float32(2**24)


@settings(max_examples=200, deadline=None)
@given(signed=st.booleans(), seed=st.integers(0, 2**31))
def test_add_fma_offset_equals_its_formula(signed, seed):
    rng = np.random.default_rng(seed)
    lo, hi = code_range(8, signed)
    za, zb, zy = (int(v) for v in rng.integers(lo, hi + 1, 3))
    ma, mb = (float(np.float32(10 ** rng.uniform(-2, 1))) for _ in range(2))
    node = Add(name="s", inputs=("a", "b"), multipliers=(ma, mb), input_zero_points=(za, zb),
               scale=0.1, zero_point=zy, bits=8, signed=signed, mode="fma_offset")
    a, b = rng.integers(lo, hi + 1, 64), rng.integers(lo, hi + 1, 64)
    f = np.float32
    c = f(f(zy) - _fma_exact(f(ma), f(za), f(f(mb) * f(zb))))
    want = [int(np.clip(np.rint(_fma_exact(f(ai), f(ma), _fma_exact(f(bi), f(mb), c))), lo, hi))
            for ai, bi in zip(a, b)]
    assert node.apply(a, b).tolist() == want


def test_add_modes_differ_where_the_roundings_do():
    """One pair of codes where the two evaluations round the same real sum apart: exactly it is
    -125.50000083 (code 100.49999917); the three roundings of sum_products land on the tie
    -125.5 (to even: -126, code 100), MLAS's fused form on 100.5 + (code 101)."""
    f = np.float32
    ma, mb, za, zb, zy = float(f(0.7478828)), float(f(0.36186987)), 218, 61, 226
    exact = Fraction(float(f(ma))) * (26 - za) + Fraction(float(f(mb))) * (111 - zb)
    assert -125.5000009 < float(exact) < -125.5000008
    kw = dict(multipliers=(ma, mb), input_zero_points=(za, zb), scale=1.0, zero_point=zy, bits=8)
    a, b = np.array([26]), np.array([111])
    assert Add(name="s", inputs=("a", "b"), mode="sum_products", **kw).apply(a, b).tolist() == [100]
    assert Add(name="s", inputs=("a", "b"), mode="fma_offset", **kw).apply(a, b).tolist() == [101]
    with pytest.raises(LayerError, match="mode must be one of 'sum_products', 'fma_offset', "
                                         "'dequant_sum'"):
        Add(name="s", inputs=("a", "b"), mode="fma", **kw)


def test_add_dequant_sum_equals_its_formula():
    rng = np.random.default_rng(8)
    f = np.float32
    for _ in range(20):
        sa, sb, sy = (f(10 ** rng.uniform(-3, -1)) for _ in range(3))
        za, zb, zy = (int(v) for v in rng.integers(-8, 8, 3))
        a, b = rng.integers(-8, 8, 500), rng.integers(-8, 8, 500)
        node = Add(name="s", inputs=("a", "b"), multipliers=(float(sa), float(sb)),
                   input_zero_points=(za, zb), scale=float(sy), zero_point=zy, bits=4, signed=True,
                   lo=zy, mode="dequant_sum")
        v = (f(a - za) * sa).astype(f) + (f(b - zb) * sb).astype(f)
        want = np.clip(np.rint(((v.astype(f) / sy).astype(f) + f(zy)).astype(f)), zy, 7)
        assert np.array_equal(node.apply(a, b), want)


def _avg_windows(x, k, s, p):
    """Row-major window positions of an NCHW pooling (inside the input only), slowly."""
    h, w = x.shape[2:]
    for i in range((h + 2 * p - k) // s + 1):
        for j in range((w + 2 * p - k) // s + 1):
            hs, ws = i * s - p, j * s - p
            cells = [(r, c) for r in range(hs, hs + k) for c in range(ws, ws + k)
                     if 0 <= r < h and 0 <= c < w]
            yield i, j, cells


@pytest.mark.parametrize("k, s, p, cip", [(2, 2, 0, False), (3, 1, 1, False), (3, 2, 1, True),
                                          (2, 1, 1, True)])
def test_avgpool_f32_mean_equals_its_formula(k, s, p, cip):
    rng = np.random.default_rng(k * 10 + s + p)
    f = np.float32
    x = rng.integers(0, 256, (2, 3, 6, 5))
    si, so, zi, zo = f(0.0371), f(0.0213), 17, 9
    node = AvgPool(name="a", inputs=("a",), kernel=k, stride=s, padding=p, count_include_pad=cip,
                   mode="f32_mean", input_scale=float(si), input_zero_point=zi, scale=float(so),
                   zero_point=zo)
    got = node.apply(x)
    want = np.zeros_like(got)
    for i, j, cells in _avg_windows(x, k, s, p):
        acc = np.zeros((2, 3), f)
        for r, c in cells:
            acc = (acc + (si * (x[:, :, r, c] - zi).astype(f)).astype(f)).astype(f)
        n = f(k * k if cip else len(cells))
        v = ((acc / n).astype(f) / so).astype(f) + f(zo)
        want[:, :, i, j] = np.clip(np.rint(v.astype(f)), 0, 255)
    assert np.array_equal(got, want)


def test_avgpool_sum_rescale_equals_its_formula():
    rng = np.random.default_rng(5)
    f = np.float32
    for _ in range(20):
        si, so = f(10 ** rng.uniform(-3, -1)), f(10 ** rng.uniform(-3, -1))
        h, w = (int(v) for v in rng.integers(1, 9, 2))
        x = rng.integers(0, 256, (2, 4, h, w))
        node = AvgPool(name="g", inputs=("a",), global_pool=True, mode="sum_rescale",
                       input_scale=float(si), input_zero_point=128, scale=float(so), zero_point=3)
        m = f(si / f(so * f(h * w)))
        s = (x - 128).sum(axis=(2, 3), keepdims=True)
        want = np.clip(np.rint(s.astype(f) * m) + 3, 0, 255)
        assert np.array_equal(node.apply(x), want)


def test_avgpool_input_scale_is_needed_and_checked():
    with pytest.raises(LayerError, match="mode 'f32_mean' needs the input_scale"):
        AvgPool(name="a", inputs=("a",), kernel=2, mode="f32_mean", scale=1.0)
    node = AvgPool(name="a", inputs=("a",), kernel=2, mode="f32_mean", input_scale=0.5, scale=1.0)
    with pytest.raises(LayerError, match="input_scale 0.5 but its input codes have scale 0.25"):
        node.out_type([IntType(np.array([0.25]), 0, 8, False)])


def test_quantize_f32_div_zp_rounds_after_the_zero_point():
    f = np.float32
    s = f(1.0)
    x = np.array([0.50000006, 1.5, -0.5], f)             # 0.50000006 + 128 rounds to 128.5 in fp32
    q = Quantize(name="q", inputs=("x",), scale=float(s), zero_point=128, mode="f32_div_zp")
    want = np.rint((x / s).astype(f) + f(128))
    assert q.apply(x).tolist() == want.tolist() == [128, 130, 128]
    div = Quantize(name="q", inputs=("x",), scale=float(s), zero_point=128, mode="f32_div")
    assert div.apply(x).tolist() == [129, 130, 128]
