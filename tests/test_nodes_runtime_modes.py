"""Runtime arithmetic modes of graph nodes against their formulas, computed here one element at a
time in plain Python (fractions for the exact ones, struct-rounded fp32 for the float ones)."""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.layers import IntLayer, LayerError
from accel.nodes import Add, ArrayLayer, fma_f32


def f32(v: float) -> float:
    """``v`` rounded to the nearest float32 (ties to even), as a Python float."""
    return struct.unpack("f", struct.pack("f", v))[0]


def rne(v: Fraction) -> int:
    """Round half to even of an exact rational."""
    fl = v.numerator // v.denominator
    rem = v - fl
    return fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)


def away(v: Fraction) -> int:
    """Round half away from zero of an exact rational."""
    s = -1 if v < 0 else 1
    a = abs(v)
    fl = a.numerator // a.denominator
    return s * (fl + (1 if a - fl >= Fraction(1, 2) else 0))


def f32_fma(a: float, b: float, c: float) -> float:
    """Exact ``a * b + c`` rounded once to float32."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    lo = f32(float(exact))                   # float64 first, then repair a double rounding
    cands = sorted({lo, np.nextafter(np.float32(lo), np.float32(-np.inf)).item(),
                    np.nextafter(np.float32(lo), np.float32(np.inf)).item()},
                   key=lambda v: (abs(Fraction(v) - exact),
                                  struct.unpack("I", struct.pack("f", v))[0] & 1))
    return cands[0]


codes = st.lists(st.integers(0, 255), min_size=1, max_size=40)
scales = st.floats(1e-3, 1.0, allow_nan=False).map(f32)


@settings(max_examples=60)
@given(codes, st.data(), scales, scales, scales, st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 255), st.booleans())
def test_add_dequant_fma_is_its_formula(a, data, sa, sb, sy, za, zb, zy, relu):
    b = data.draw(st.lists(st.integers(0, 255), min_size=len(a), max_size=len(a)))
    node = Add(name="add", inputs=("a", "b"), multipliers=(sa, sb), input_zero_points=(za, zb),
               mode="dequant_fma", scale=sy, zero_point=zy, bits=8, lo=zy if relu else None)
    got = node.apply(np.array(a), np.array(b))
    inv = f32(1 / f32(sy))
    for i, (x, y) in enumerate(zip(a, b)):
        da = f32_fma(sa, x, f32(sa * -za))
        db = f32_fma(sb, y, f32(sb * -zb))
        v = f32(f32(da + db) * inv)
        want = min(255, max(zy if relu else 0, rne(Fraction(v)) + zy))
        assert got[i] == want


@settings(max_examples=60)
@given(codes, st.data(), st.integers(0, 2 ** 22 - 1), st.integers(0, 2 ** 22 - 1),
       st.integers(13, 31), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
       st.sampled_from(["half_away", "half_even"]))
def test_add_fixed_is_its_formula(a, data, ma, mb, shift, za, zb, zy, rounding):
    b = data.draw(st.lists(st.integers(0, 255), min_size=len(a), max_size=len(a)))
    node = Add(name="add", inputs=("a", "b"), multipliers=(ma, mb), input_zero_points=(za, zb),
               mode="fixed", shift=shift, rounding=rounding, scale=0.1, zero_point=zy, bits=8)
    got = node.apply(np.array(a), np.array(b))
    rnd = away if rounding == "half_away" else rne
    for i, (x, y) in enumerate(zip(a, b)):
        v = Fraction(ma * (x - za) + mb * (y - zb), 2 ** shift)
        assert got[i] == min(255, max(0, rnd(v) + zy))


def test_fixed_add_needs_integer_multipliers():
    with pytest.raises(LayerError, match="fixed-point multipliers must be integers"):
        Add(name="a", inputs=("x", "y"), multipliers=(0.5, 3), mode="fixed", shift=2)


def test_fma_f32_is_one_rounding():
    rng = np.random.default_rng(0)
    s = rng.uniform(1e-3, 1, 200).astype(np.float32)
    x = rng.integers(0, 65536, 200)
    c = (s * np.float32(-37)).astype(np.float32)
    got = np.array([fma_f32(si, np.array([xi]), ci)[0] for si, xi, ci in zip(s, x, c)])
    want = np.array([f32_fma(float(si), float(xi), float(ci)) for si, xi, ci in zip(s, x, c)],
                    np.float32)
    assert np.array_equal(got, want)


def _dw(channels, mult, k, weights):
    w = weights.reshape(channels * mult, 1, k, k)
    return IntLayer(name="dw", kind="conv2d", weight=w, weight_scale=[0.1], input_scale=0.1,
                    input_zero_point=7, groups=channels, padding=((k - 1) // 2,) * 2)


@pytest.mark.parametrize("k, mult", [(3, 1), (5, 1), (3, 2)])
def test_pair_correction_is_pairwise_saturation(k, mult):
    rng = np.random.default_rng(k * mult)
    c = 3
    lay = _dw(c, mult, k, rng.integers(-128, 128, c * mult * k * k))
    node = ArrayLayer(name="dw", inputs=("x",), layer=lay, pair_bits=16)
    x = rng.integers(100, 256, (2, c, 5, 6))
    got = node.pair_correction(x)
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=7)
    w = lay.weight.reshape(c * mult, k * k)
    assert got.shape == (2, c * mult, 5, 6) and np.any(got != 0)
    for n, o, i, j in [(0, 0, 0, 0), (1, c * mult - 1, 4, 5), (0, 1, 2, 3), (1, 2, 0, 5)]:
        taps = xp[n, o // mult, i:i + k, j:j + k].reshape(-1)
        want = 0
        for t in range(0, k * k, 2):
            pair = taps[t] * w[o, t] + (taps[t + 1] * w[o, t + 1] if t + 1 < k * k else 0)
            want += min(32767, max(-32768, int(pair))) - int(pair)
        assert got[n, o, i, j] == want


def test_pair_bits_only_for_depthwise():
    lay = IntLayer(name="c", kind="conv2d", weight=np.ones((2, 2, 3, 3), int), weight_scale=[1.0],
                   input_scale=1.0, input_zero_point=0)
    with pytest.raises(LayerError, match="pair_bits applies to depthwise convolutions"):
        ArrayLayer(name="c", inputs=("x",), layer=lay, pair_bits=16)
