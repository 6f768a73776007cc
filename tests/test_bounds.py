"""accel.bounds: SPEC section 5's worked numbers, the counter-example, and property tests against
the golden model (the exact test never certifies weights that overflow, and is the tightest)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel import bounds
from accel.config import ArrayConfig
from accel.golden import gemm


# --- worked numbers (SPEC section 5) ----------------------------------------------------------

def test_a2q_worked_numbers():
    assert math.floor(bounds.a2q_l1_limit(16, 8, False)) == 127
    assert math.floor(bounds.a2q_l1_limit(16, 8, True)) == 255


def test_a2qplus_worked_numbers():
    assert bounds.a2qplus_real_l1_limit(16, 8) == pytest.approx(256.996, abs=5e-4)
    assert math.floor(bounds.a2qplus_real_l1_limit(16, 8)) == 256
    assert math.floor(bounds.half_norm_limit(16, 8)) == 128


def test_datatype_worked_numbers():
    assert bounds.datatype_bound(576, 8, 8, False) == 26
    assert bounds.datatype_bound(4608, 8, 8, False) == 29


@pytest.mark.parametrize("n, ratio", [(8, 2.0078), (4, 2.1333)])
@pytest.mark.parametrize("b", [12, 16, 20, 32])
def test_real_budget_ratio_independent_of_b(n, ratio, b):
    r = bounds.a2qplus_real_l1_limit(b, n) / bounds.a2q_l1_limit(b, n, False)
    assert r == pytest.approx(ratio, abs=5e-5)


def test_datatype_bound_matches_float_formula():
    for k in (1, 2, 3, 9, 100, 576, 4608, 65535):
        for n, m, s in ((8, 8, False), (4, 4, True), (1, 2, False), (16, 16, True)):
            alpha = math.log2(k) + n + m - 1 - int(s)
            assert bounds.datatype_bound(k, n, m, s) == math.ceil(alpha + math.log2(1 + 2 ** -alpha) + 1)


# --- the A2Q+ l1 form does not certify integers --------------------------------------------------

def test_a2qplus_l1_form_is_not_an_integer_certificate():
    q = np.array([129] + [-1] * 127)
    assert np.abs(q).sum() == 256 <= bounds.a2qplus_real_l1_limit(16, 8)
    lo, hi = bounds.exact_range(q, (0, 255))
    assert int(hi[0]) == 32895 > 32767
    assert not bounds.exact_range_ok(q, 16, (0, 255))[0]
    assert bounds.half_norm_min_bits(q, 8)[0] == 17 == bounds.exact_min_bits(q, (0, 255))[0]


# --- exact test details ------------------------------------------------------------------------

def test_exact_range_includes_bias_and_signed_inputs():
    q = np.array([[3], [-2]])
    lo, hi = bounds.exact_range(q, (-4, 3), bias=[10])
    assert (int(lo[0]), int(hi[0])) == (10 - 12 - 6, 10 + 9 + 8)
    assert bounds.exact_min_bits(q, (-4, 3), bias=[10])[0] == 6  # 27 needs 6 signed bits


def test_bias_alone_can_overflow_q():
    q = np.zeros((4, 1), np.int64)
    assert bounds.exact_min_bits(q, (0, 255), bias=[40000])[0] == 17


def test_signed_bits_edges():
    v = np.array([0, -1, 1, -128, 127, 128, -129], dtype=object)
    assert bounds.signed_bits(v).tolist() == [1, 1, 2, 8, 8, 9, 9]


def test_min_safe_widths_folds_and_bias():
    q = np.array([[100], [100], [-100], [-100]])
    sw = bounds.min_safe_widths(q, (0, 255), rows=2, bias=[0])
    assert sw.pe_bits[0] == bounds.signed_bits(200 * 255)[()]          # fold 0: two +100
    assert sw.out_bits[0] == bounds.signed_bits(200 * 255)[()]
    sw1 = bounds.min_safe_widths(q, (0, 255), rows=1, bias=[1 << 20])
    assert sw1.p == bounds.signed_bits(100 * 255)[()] and sw1.q == 22


# --- errors name what is wrong ------------------------------------------------------------------

@pytest.mark.parametrize("call, msg", [
    (lambda: bounds.exact_range([[1]], (1, 5)), r"must contain 0"),
    (lambda: bounds.exact_range([[1]], "ab"), r"pair of integers"),
    (lambda: bounds.exact_range([[0.5]], (0, 1)), r"not integers"),
    (lambda: bounds.exact_range(np.zeros((2, 2, 2), int), (0, 1)), r"\[K, O\] matrix"),
    (lambda: bounds.fold_sums([[1]], 0), r"fold height R must be a positive integer"),
    (lambda: bounds.half_norm_min_bits([[1]], 8, act_signed=True), r"assumes unsigned inputs"),
    (lambda: bounds.datatype_bound(0, 8, 8, False), r"K' must be an integer >= 1"),
    (lambda: bounds.datatype_bound(4, 8, 1, False), r"weight_bits must be an integer >= 2"),
])
def test_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


# --- properties against the golden model ------------------------------------------------------

@st.composite
def layer_case(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(2, 8))
    signed = draw(st.booleans())
    k = draw(st.integers(1, 24))
    o = draw(st.integers(1, 4))
    r = draw(st.integers(1, 12))
    lo_w, hi_w = -(1 << (m - 1)), (1 << (m - 1)) - 1
    dense = st.integers(lo_w, hi_w)
    sparse = st.sampled_from([0, 0, 0, lo_w, hi_w, 1, -1])
    q = np.array(draw(st.lists(st.lists(st.one_of(dense, sparse), min_size=o, max_size=o),
                               min_size=k, max_size=k)), dtype=np.int64)
    return n, m, signed, r, q


def _adversarial(q: np.ndarray, x_range: tuple[int, int]) -> np.ndarray:
    """Per channel, the input that maximises, then the one that minimises, every partial sum."""
    x_min, x_max = x_range
    up = np.where(q.T > 0, x_max, x_min)
    down = np.where(q.T > 0, x_min, x_max)
    return np.concatenate([up, down])


@settings(max_examples=150)
@given(layer_case())
def test_exact_is_tightest(case):
    n, m, signed, r, q = case
    x_range = ArrayConfig(act_bits=n, act_signed=signed, weight_bits=m).act_range
    exact = np.max([bounds.exact_min_bits(f, x_range) for f in bounds.fold_sums(q, r)], axis=0)
    a2q = np.max([bounds.a2q_min_bits(f, n, signed) for f in bounds.fold_sums(q, r)], axis=0)
    assert np.all(exact <= a2q)
    if not signed:
        half = np.max([bounds.half_norm_min_bits(f, n) for f in bounds.fold_sums(q, r)], axis=0)
        assert np.all(exact <= half)
    dt = bounds.datatype_bound(min(r, q.shape[0]), n, m, signed)
    assert np.all(exact <= dt)


@settings(max_examples=150)
@given(layer_case(), st.sampled_from(["wrap", "saturate"]), st.integers(0, 2 ** 31 - 1))
def test_exact_never_certifies_an_overflow(case, mode, seed):
    n, m, signed, r, q = case
    base = ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m, overflow=mode)
    x_range = base.act_range
    safe = bounds.min_safe_widths(q, x_range, r)
    p = max(safe.p, base.min_pe_acc_bits)
    rng = np.random.default_rng(seed)
    x = np.concatenate([_adversarial(q, x_range),
                        rng.integers(x_range[0], x_range[1] + 1, size=(16, q.shape[0]))])
    res = gemm(x, q, ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m,
                                 pe_acc_bits=p, out_acc_bits=max(p, safe.q), overflow=mode))
    assert res.pe_events == 0 and res.acc_events == 0
    np.testing.assert_array_equal(res.y, x @ q)
    # tight: one bit less overflows on the adversarial inputs
    if safe.p - 1 >= base.min_pe_acc_bits:
        tight = ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m,
                            pe_acc_bits=safe.p - 1, out_acc_bits=48, overflow=mode)
        assert gemm(_adversarial(q, x_range), q, tight).pe_events > 0


@settings(max_examples=100)
@given(layer_case(), st.integers(-(1 << 20), 1 << 20))
def test_exact_q_with_bias_never_overflows(case, b):
    n, m, signed, r, q = case
    base = ArrayConfig(act_bits=n, act_signed=signed, weight_bits=m)
    bias = np.full(q.shape[1], b)
    safe = bounds.min_safe_widths(q, base.act_range, r, bias)
    p = max(safe.p, base.min_pe_acc_bits)
    cfg = ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m, pe_acc_bits=p,
                      out_acc_bits=max(p, safe.q))
    res = gemm(_adversarial(q, base.act_range), q, cfg, bias)
    assert res.pe_events == 0 and res.acc_events == 0
    if safe.q > p and safe.q - 1 >= p:
        narrow = ArrayConfig(rows=r, act_bits=n, act_signed=signed, weight_bits=m, pe_acc_bits=p,
                             out_acc_bits=safe.q - 1)
        if np.all(np.abs(bias) <= narrow.out_range[1]):
            assert gemm(_adversarial(q, base.act_range), q, narrow, bias).acc_events > 0


@settings(max_examples=100)
@given(st.integers(0, 1 << 40), st.integers(1, 16), st.booleans())
def test_closed_form_min_bits_are_the_smallest_passing_widths(v, n, signed):
    q = np.array([[v], [-(v // 3)]], dtype=object)
    l1, half = v + v // 3, v
    b = int(bounds.a2q_min_bits(q, n, signed)[0])
    assert l1 <= bounds.a2q_l1_limit(b, n, signed)
    assert b <= 2 or l1 > bounds.a2q_l1_limit(b - 1, n, signed)
    h = int(bounds.half_norm_min_bits(q, n)[0])
    assert half <= bounds.half_norm_limit(h, n)
    assert h <= 2 or half > bounds.half_norm_limit(h - 1, n)
