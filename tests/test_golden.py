"""The golden GEMM model against the per-element reference and worked cases (SPEC section 2)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accel.arith as arith
import accel.steps as steps
from accel.arith import GemmResult
from accel.config import ArrayConfig
from accel.arith import op
from accel.golden import gemm
from accel.reference import reference_gemm


def assert_same(a: GemmResult, b: GemmResult) -> None:
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.pe_overflow, b.pe_overflow)
    np.testing.assert_array_equal(a.acc_overflow, b.acc_overflow)
    assert (a.pe_events, a.acc_events) == (b.pe_events, b.acc_events)


@st.composite
def gemm_cases(draw, mode: str):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(2, 8))
    p = draw(st.integers(n + m, n + m + 6))
    cfg = ArrayConfig(rows=draw(st.integers(1, 6)), cols=2, act_bits=n,
                      act_signed=draw(st.booleans()), weight_bits=m, pe_acc_bits=p,
                      out_acc_bits=draw(st.integers(p, p + 4)), overflow=mode)
    t, k, o = draw(st.integers(1, 5)), draw(st.integers(1, 14)), draw(st.integers(1, 4))

    def matrix(shape, lo, hi):
        # extremes and near-zero values are drawn often: they are where overflow lives
        elem = st.one_of(st.sampled_from([lo, hi, 0, -1 if lo < 0 else 1]), st.integers(lo, hi))
        return np.array(draw(st.lists(elem, min_size=shape[0] * shape[1],
                                      max_size=shape[0] * shape[1]))).reshape(shape)

    x = matrix((t, k), *cfg.act_range)
    w = matrix((k, o), *cfg.weight_range)
    bias = None
    if draw(st.booleans()):
        lo, hi = cfg.out_range
        bias = matrix((1, o), lo, hi)[0]
    return cfg, x, w, bias


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@settings(max_examples=600)
@given(data=st.data())
def test_golden_equals_reference(mode, data):
    cfg, x, w, bias = data.draw(gemm_cases(mode))
    assert_same(gemm(x, w, cfg, bias), reference_gemm(x, w, cfg, bias))


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("dense_share, chunk", [(0.0, 1 << 21), (2.0, 1 << 21), (0.0, 7), (2.0, 7)])
def test_scan_paths_agree(monkeypatch, mode, dense_share, chunk):
    """Dense and gathered scans, with tiny chunks, give the reference answer on mixed data."""
    monkeypatch.setattr(steps, "DENSE_SHARE", dense_share)
    monkeypatch.setattr(arith, "SCAN_CHUNK_ELEMS", chunk)
    rng = np.random.default_rng(3)
    cfg = ArrayConfig(rows=5, act_bits=6, act_signed=True, weight_bits=5, pe_acc_bits=11,
                      out_acc_bits=16, overflow=mode)
    x = rng.integers(-32, 32, (23, 17))
    x[::3] //= 8                       # a third of the vectors small: screened, not scanned
    w = rng.integers(-16, 16, (17, 9))
    res = gemm(x, w, cfg)
    assert res.pe_events > 0 and (~res.pe_overflow).any()
    assert_same(res, reference_gemm(x, w, cfg))


def test_saturate_depends_on_fold_split_wrap_does_not():
    x = np.array([[15, 15, 15]])
    w = np.array([[7], [7], [-8]])              # products 105, 105, -120; P = 8 holds [-128, 127]
    base = ArrayConfig(act_bits=4, weight_bits=4, pe_acc_bits=8, out_acc_bits=16)
    sat3 = gemm(x, w, dataclasses.replace(base, rows=3, overflow="saturate"))
    sat1 = gemm(x, w, dataclasses.replace(base, rows=1, overflow="saturate"))
    assert sat3.y[0, 0] == 7 and sat3.pe_events == 1      # 105 + 105 clamps to 127, then -120
    assert sat1.y[0, 0] == 90 and sat1.pe_events == 0     # one product per fold: exact
    wrap3 = gemm(x, w, dataclasses.replace(base, rows=3, overflow="wrap"))
    assert wrap3.y[0, 0] == 90 and wrap3.pe_events == 2   # wraps twice, value still exact
    assert wrap3.pe_overflow[0, 0] and not wrap3.acc_overflow[0, 0]


@settings(max_examples=200)
@given(st.integers(1, 7), st.integers(0, 4), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_wrap_with_q_equal_p_is_exact_sum_mod_2q(rows, extra, k, seed):
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(rows=rows, act_bits=5, act_signed=True, weight_bits=5, pe_acc_bits=10 + extra,
                      overflow="wrap")
    x = rng.integers(-16, 16, (4, k))
    w = rng.integers(-16, 16, (k, 3))
    bias = rng.integers(*cfg.out_range, size=3, endpoint=True)
    exact = x @ w + bias
    np.testing.assert_array_equal(gemm(x, w, cfg, bias).y, op(exact, cfg.out_bits, "wrap"))


def test_bias_that_overflows_q():
    cfg = ArrayConfig(rows=2, act_bits=4, weight_bits=4, pe_acc_bits=8)   # Q = P = 8
    x, w = np.array([[1, 1]]), np.array([[1], [1]])
    res = gemm(x, w, cfg, bias=np.array([127]))           # 127 + 2 leaves Q
    assert res.y[0, 0] == -127 and res.acc_events == 1 and not res.pe_overflow[0, 0]
    sat = gemm(x, w, dataclasses.replace(cfg, overflow="saturate"), bias=np.array([127]))
    assert sat.y[0, 0] == 127 and sat.acc_overflow[0, 0]
    with pytest.raises(ValueError, match=r"bias of channel 0 = 128 does not fit Q = 8 bits \[-128, 127\]"):
        gemm(x, w, cfg, bias=np.array([128]))


@pytest.mark.parametrize("mode, expect", [("wrap", -32768), ("saturate", 32767)])
def test_most_negative_corner(mode, expect):
    """-2^(N-1) x -2^(M-1) fits one product at P = N + M; two of them overflow."""
    cfg = ArrayConfig(rows=2, act_bits=8, act_signed=True, weight_bits=8, pe_acc_bits=16, overflow=mode,
                      out_acc_bits=17)
    one = gemm(np.array([[-128]]), np.array([[-128]]), cfg)
    assert one.y[0, 0] == 16384 and one.pe_events == 0
    two = gemm(np.array([[-128, -128]]), np.array([[-128], [-128]]), cfg)
    assert two.y[0, 0] == expect and two.pe_events == 1 and two.acc_events == 0


def test_all_ones_unsigned_just_overflowing():
    """All-ones codes: the largest fold sum that fits, and one more product that does not."""
    cfg = ArrayConfig(rows=4, act_bits=4, weight_bits=4, pe_acc_bits=9, overflow="saturate")
    x = np.full((1, 4), 15)                 # 15 * 7 * 2 = 210 <= 255; 15 * 7 * 3 = 315 > 255
    assert gemm(x[:, :2], np.full((2, 1), 7), cfg).pe_events == 0
    res = gemm(x[:, :3], np.full((3, 1), 7), cfg)
    assert res.y[0, 0] == 255 and res.pe_events == 1


def test_zero_size_inputs():
    cfg = ArrayConfig()
    empty_t = gemm(np.zeros((0, 5), int), np.zeros((5, 3), int), cfg)
    assert empty_t.y.shape == (0, 3) and empty_t.pe_events == 0
    assert gemm(np.zeros((2, 5), int), np.zeros((5, 0), int), cfg).y.shape == (2, 0)
    with pytest.raises(ValueError, match="K = 0: a GEMM needs at least one reduction row"):
        gemm(np.zeros((2, 0), int), np.zeros((0, 3), int), cfg)


@pytest.mark.parametrize("x, w, bias, message", [
    (np.array([[256]]), np.array([[1]]), None,
     r"x\[0, 0\] = 256 is outside the unsigned 8-bit lane range \[0, 255\]"),
    (np.array([[-1]]), np.array([[1]]), None, r"x\[0, 0\] = -1 is outside the unsigned"),
    (np.array([[1]]), np.array([[-129]]), None,
     r"w\[0, 0\] = -129 is outside the signed 8-bit weight range \[-128, 127\]"),
    (np.ones((2, 3), int), np.ones((4, 2), int), None,
     r"shape mismatch: x is \(2, 3\) \(\[T, K\]\) but w is \(4, 2\) \(\[K, O\]\)"),
    (np.ones(3, int), np.ones((3, 2), int), None, r"x must be a 2-D integer array \[T, K\], not shape \(3,\)"),
    (np.ones((1, 1)) * 0.5, np.ones((1, 1), int), None, "x must hold integers, not float64"),
    (np.ones((1, 2), int), np.ones((2, 2), int), np.ones(3, int),
     r"bias must have shape \(2,\) \(one per output channel O\), not \(3,\)"),
])
def test_operand_errors(x, w, bias, message):
    with pytest.raises(ValueError, match=message):
        gemm(x, w, ArrayConfig(), bias)


def test_integral_floats_are_accepted():
    cfg = ArrayConfig()
    res = gemm(np.array([[2.0, 3.0]]), np.array([[4.0], [5.0]]), cfg)
    assert res.y.dtype == np.int64 and res.y[0, 0] == 23


def test_screen_clears_small_weights_and_matches_reference():
    """Weights with a small l1 norm per fold: no events, exact result (the fast path)."""
    rng = np.random.default_rng(1)
    cfg = ArrayConfig(rows=8, pe_acc_bits=20, overflow="saturate")
    x = rng.integers(0, 256, (6, 40))
    w = rng.integers(-3, 4, (40, 5))
    res = gemm(x, w, cfg)
    np.testing.assert_array_equal(res.y, x @ w)
    assert res.pe_events == res.acc_events == 0
    assert_same(res, reference_gemm(x, w, cfg))


def test_reference_refuses_overq():
    from accel.config import OverQConfig
    cfg = ArrayConfig(act_bits=4, weight_bits=4, pe_acc_bits=12, overq=OverQConfig())
    with pytest.raises(ValueError, match="reference_gemm covers the plain arithmetic"):
        reference_gemm(np.zeros((1, 1), int), np.zeros((1, 1), int), cfg)


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_64_bit_accumulators_never_wrap_int64(mode):
    """P = Q = 64: a bias on the rail plus a product must still be seen as an event."""
    cfg = ArrayConfig(rows=2, act_bits=8, act_signed=True, weight_bits=8, pe_acc_bits=64, overflow=mode)
    top = (1 << 63) - 1
    x, w = np.array([[127, 127], [-128, 1]]), np.array([[127], [127]])
    res = gemm(x, w, cfg, bias=np.array([top]))
    assert_same(res, reference_gemm(x, w, cfg, np.array([top])))
    assert res.acc_overflow[0, 0] and not res.acc_overflow[1, 0]


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_62_bit_partial_sums_scan_exactly(mode):
    cfg = ArrayConfig(rows=3, act_bits=16, act_signed=True, weight_bits=16, pe_acc_bits=62,
                      out_acc_bits=64, overflow=mode)
    rng = np.random.default_rng(5)
    x = rng.choice([-(1 << 15), (1 << 15) - 1], size=(4, 7))
    w = rng.choice([-(1 << 15), (1 << 15) - 1], size=(7, 3))
    bias = np.array([(1 << 63) - 1, -(1 << 63), 0])
    assert_same(gemm(x, w, cfg, bias), reference_gemm(x, w, cfg, bias))


def test_signed_bits():
    from accel.arith import signed_bits

    assert signed_bits([0, -1, 1, -128, 127, -129, 128]).tolist() == [1, 1, 2, 8, 8, 9, 9]
