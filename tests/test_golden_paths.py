"""Every fast path of the golden model against the per-element reference (SPEC section 2).

The thresholds that pick a path are forced both ways: in the screen, block size, gathered or
dense refinement and whether a vector at risk leaves the screen whole (dense stepping) or output
by output (gathered stepping from its fold edge); in the stepping, dense or gathered scans, the
wrap closed form for one-signed folds and chunk sizes. Each then runs on data where it matters.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accel.arith as arith
import accel.screen as screen
import accel.steps as steps
from accel.arith import GemmResult
from accel.config import ArrayConfig
from accel.golden import gemm
from accel.reference import reference_gemm
from test_golden import assert_same


#: (steps.DENSE_SHARE, steps.CHUNK_OUTPUTS, arith.SCAN_CHUNK_ELEMS): dense or gathered scans,
#: one chunk or many; then (screen.BLOCK_FOLDS, screen.DENSE_RATIO, screen.DENSE_ROW_SHARE):
#: block size, gathered or dense refinement, vectors stepped whole or output by output
THRESHOLDS = [(0.0, 1 << 16, 1 << 21, 9, 64, 0.25), (2.0, 1 << 16, 1 << 21, 1, 0, 2.0),
              (0.0, 5, 7, 2, 10**9, 0.0), (2.0, 5, 7, 1, 0, 2.0), (0.25, 1, 1, 9, 10**9, 2.0),
              (0.0, 1 << 16, 1 << 21, 2, 0, 0.0)]
KNOBS = ((steps, "DENSE_SHARE"), (steps, "CHUNK_OUTPUTS"), (arith, "SCAN_CHUNK_ELEMS"),
         (screen, "BLOCK_FOLDS"), (screen, "DENSE_RATIO"), (screen, "DENSE_ROW_SHARE"))


def force_paths(monkeypatch, *values) -> None:
    """Set the thresholds that choose the path (see :data:`THRESHOLDS`)."""
    for (module, name), value in zip(KNOBS, values):
        monkeypatch.setattr(module, name, value)


def run_both(x, w, cfg, bias=None) -> GemmResult:
    res = gemm(x, w, cfg, bias)
    assert_same(res, reference_gemm(x, w, cfg, bias))
    return res


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("knobs", THRESHOLDS)
def test_one_signed_rails_overflow_every_fold(monkeypatch, mode, knobs):
    """Same-sign codes near the rails: every output overflows in every fold (wrap: closed form)."""
    force_paths(monkeypatch, *knobs)
    rng = np.random.default_rng(11)
    cfg = ArrayConfig(rows=6, act_bits=5, weight_bits=5, pe_acc_bits=10, out_acc_bits=12,
                      overflow=mode)
    x = rng.integers(24, 32, (9, 20))
    w = rng.integers(12, 16, (20, 7)) * rng.choice([-1, 1], size=7)   # one sign per channel
    res = run_both(x, w, cfg)
    folds = -(-20 // 6)
    assert res.pe_events >= x.shape[0] * w.shape[1] * (folds - 1)   # the short last fold may not
    assert res.pe_overflow.all()


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("knobs", THRESHOLDS)
def test_mixed_signs_and_screened_vectors(monkeypatch, mode, knobs):
    """Mixed signs (no closed form), some vectors and channels cleared by the screens."""
    force_paths(monkeypatch, *knobs)
    rng = np.random.default_rng(5)
    cfg = ArrayConfig(rows=5, act_bits=6, act_signed=True, weight_bits=5, pe_acc_bits=11,
                      out_acc_bits=13, overflow=mode)
    x = rng.integers(-32, 32, (17, 23))
    x[::3] //= 8                                   # small vectors: screened, not scanned
    w = rng.integers(-16, 16, (23, 8))
    w[:, 2] //= 8                                  # a small channel: cleared for every vector
    w[3::5, 5] = -np.abs(w[3::5, 5])               # a channel of (mostly) one sign
    res = run_both(x, w, cfg, bias=rng.integers(-3000, 3000, 8))
    assert res.pe_events > 0 and (~res.pe_overflow).any()


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("share", [0.0, 2.0])
def test_exact_folds_with_accumulator_overflow(monkeypatch, mode, share):
    """No PE step can overflow but the accumulator does: outputs stepped from their fold edge
    (share 2.0) or whole vectors fold by fold (share 0.0), with a bias near the rail."""
    monkeypatch.setattr(screen, "DENSE_ROW_SHARE", share)
    monkeypatch.setattr(arith, "SCAN_CHUNK_ELEMS", 13)
    rng = np.random.default_rng(7)
    cfg = ArrayConfig(rows=4, act_bits=4, weight_bits=4, pe_acc_bits=10, overflow=mode)  # Q = P
    x = rng.integers(0, 16, (11, 40))
    w = rng.integers(-8, 8, (40, 6))             # |fold| <= 15 * 8 * 4 = 480 < 511: PE clear
    w[:, :3] = np.abs(w[:, :3]).clip(max=7)       # three channels drift up: accumulator wraps
    bias = np.array([400, -500, 0, 511, -512, 3])
    res = run_both(x, w, cfg, bias)
    assert res.pe_events == 0 and res.acc_events > 0 and (~res.acc_overflow).any()


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_paths_equal_reference(mode, data):
    """Random small GEMMs under every combination of path thresholds."""
    n = data.draw(st.integers(1, 6))
    m = data.draw(st.integers(2, 6))
    p = data.draw(st.integers(n + m, n + m + 4))
    cfg = ArrayConfig(rows=data.draw(st.integers(1, 7)), act_bits=n,
                      act_signed=data.draw(st.booleans()), weight_bits=m, pe_acc_bits=p,
                      out_acc_bits=data.draw(st.integers(p, p + 3)), overflow=mode)
    t, k, o = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 16)), data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = cfg.act_range
    x = rng.integers(lo, hi + 1, (t, k))
    w = rng.integers(*cfg.weight_range, (k, o), endpoint=True)
    if data.draw(st.booleans()):                 # one sign per channel: the wrap closed form
        w = np.abs(w).clip(max=cfg.weight_range[1]) * rng.choice([-1, 1], size=o)
    if data.draw(st.booleans()):                 # codes on a rail
        x[:] = lo if cfg.act_signed and data.draw(st.booleans()) else hi
    bias = rng.integers(*cfg.out_range, o, endpoint=True) if data.draw(st.booleans()) else None
    knobs = data.draw(st.sampled_from(THRESHOLDS))
    with pytest.MonkeyPatch.context() as mp:
        force_paths(mp, *knobs)
        run_both(x, w, cfg, bias)
