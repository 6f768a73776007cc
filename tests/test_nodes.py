"""accel.nodes: each host operation against its documented formula (or PyTorch), and validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.arith import code_range
from accel.layers import LayerError
from accel.nodes import (REAL, Add, AvgPool, Clamp, Concat, Dequantize, IntType, MaxPool,
                         Quantize, Requantize, Reshape, node_from_state)


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
