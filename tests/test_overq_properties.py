"""Property tests of the OverQ encoder and GEMM against the SPEC rules and the slow reference.

Hypothesis runs derandomised when CI=true.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.config import ArrayConfig, OverQConfig
from accel.golden import gemm
from accel.overq import Fate, LaneTag, decode, encode, reference_encode, reference_overq_gemm

SETTINGS = settings(max_examples=150, deadline=None, derandomize=os.environ.get("CI") == "true")


@st.composite
def configs(draw: st.DrawFn, narrow: bool = False) -> ArrayConfig:
    """Small OverQ arrays; ``narrow`` picks P and Q near their minimum so that events happen."""
    rows = draw(st.integers(2, 7))
    n = draw(st.integers(1, 4))
    m = draw(st.integers(2, 4))
    oq = OverQConfig(mode=draw(st.sampled_from(["range", "precision", "both"])),
                     cascade=draw(st.integers(0, rows - 2)))
    base = ArrayConfig(rows=rows, cols=2, act_bits=n, weight_bits=m, overq=oq)
    p = draw(st.integers(base.min_pe_acc_bits, base.min_pe_acc_bits + 1)) if narrow else 60
    q = draw(st.integers(p, p + 2)) if narrow else 62
    return ArrayConfig(rows=rows, cols=2, act_bits=n, weight_bits=m, pe_acc_bits=p,
                       out_acc_bits=q, overflow=draw(st.sampled_from(["wrap", "saturate"])),
                       overq=oq)


def lane_codes(c: ArrayConfig) -> st.SearchStrategy[int]:
    """Raw codes biased to zeros, outliers and the extremes of the lane range."""
    n, f = c.act_bits, c.frac_bits
    int_bits = c.lane_bits - f
    frac = st.integers(0, (1 << f) - 1)
    plain = st.builds(lambda i, fr: (i << f) | fr, st.integers(0, (1 << n) - 1), frac)
    choices = [st.just(0), st.just(0), plain, st.just((1 << c.lane_bits) - 1)]
    if int_bits > n:
        choices.append(st.builds(lambda i, fr: (i << f) | fr,
                                 st.integers(1 << n, (1 << int_bits) - 1), frac))
    return st.one_of(choices)


@st.composite
def problems(draw: st.DrawFn, narrow: bool = False, max_t: int = 4
             ) -> tuple[ArrayConfig, np.ndarray]:
    c = draw(configs(narrow))
    t = draw(st.integers(1, max_t))
    k = draw(st.integers(1, 3 * c.rows))
    codes = draw(st.lists(lane_codes(c), min_size=t * k, max_size=t * k))
    return c, np.array(codes, dtype=np.int64).reshape(t, k)


def folds_of(x: np.ndarray, c: ArrayConfig) -> np.ndarray:
    """Raw codes as [T, F, R] with the zero padding of the last fold."""
    t, k = x.shape
    f = -(-k // c.rows)
    out = np.zeros((t, f * c.rows), np.int64)
    out[:, :k] = x
    return out.reshape(t, f, c.rows)


def chains_of(chain_row: np.ndarray) -> list[tuple[int, int]]:
    """(first lane, used zero lane) of every handled chain of one fold."""
    return [(k, k + int(j)) for k, j in enumerate(chain_row) if j]


@SETTINGS
@given(problems())
def test_handled_iff_a_free_zero_lies_within_reach(problem):
    c, x = problem
    enc = encode(x, c)
    raw = folds_of(x, c)
    n, f, reach, r = c.act_bits, c.frac_bits, c.overq.cascade + 1, c.rows
    for t, fi in np.ndindex(raw.shape[:2]):
        lanes, fate, chain = raw[t, fi], enc.fate[t, fi], enc.chain[t, fi]
        used: set[int] = set()
        last_end = -1
        for k in range(r):
            if (lanes[k] >> f) < (1 << n):
                assert fate[k] == Fate.PLAIN and chain[k] == 0
                continue
            if k <= last_end:                          # inside an earlier chain
                assert fate[k] == Fate.DISPLACED
                continue
            free = [j for j in range(1, r - k) if lanes[k + j] == 0 and k + j not in used]
            if c.overq.has_range and free and free[0] <= reach:
                assert fate[k] == Fate.HANDLED and chain[k] == free[0]
                used.add(k + free[0])
                last_end = k + free[0]
            else:
                assert fate[k] == Fate.UNREACHED and chain[k] == 0


@SETTINGS
@given(problems())
def test_no_zero_is_consumed_twice_and_nothing_crosses_a_fold(problem):
    c, x = problem
    enc = encode(x, c)
    raw = folds_of(x, c)
    assert np.all(enc.tag[:, :, 0] == LaneTag.OWN)     # lane 0 never takes a weight from above
    for t, fi in np.ndindex(raw.shape[:2]):
        chains = chains_of(enc.chain[t, fi])
        slots = np.flatnonzero(enc.tag[t, fi] == LaneTag.FRAC).tolist()
        consumed = [end for _, end in chains] + slots
        assert len(consumed) == len(set(consumed))
        assert all(raw[t, fi, i] == 0 and i < c.rows for i in consumed)
        covered = sorted(i for k, end in chains for i in range(k, end + 1))
        assert len(covered) == len(set(covered))       # chains are disjoint
    # each fold is encoded on its own
    for fi in range(raw.shape[1]):
        alone = encode(raw[:, fi], c)
        for a, b in ((alone.value, enc.value), (alone.tag, enc.tag), (alone.fate, enc.fate)):
            assert np.array_equal(a[:, 0], b[:, fi])


@SETTINGS
@given(problems())
def test_precision_slot_rule(problem):
    c, x = problem
    enc = encode(x, c)
    raw = folds_of(x, c)
    f, n = c.frac_bits, c.act_bits
    for t, fi in np.ndindex(raw.shape[:2]):
        lanes = raw[t, fi]
        touched = {i for k, end in chains_of(enc.chain[t, fi]) for i in range(k, end + 1)}
        for i in range(c.rows):
            above = lanes[i - 1] if i else 0
            slot = (c.overq.has_precision and i > 0 and lanes[i] == 0 and i not in touched
                    and i - 1 not in touched and above != 0 and (above >> f) < (1 << n))
            assert (enc.tag[t, fi, i] == LaneTag.FRAC) == slot
            if slot:
                assert enc.value[t, fi, i] == above & ((1 << f) - 1)


@SETTINGS
@given(problems(), st.data())
def test_decode_gives_the_exact_dot_product_of_handled_values(problem, data):
    c, x = problem
    enc = encode(x, c)
    assert enc.value.min() >= 0 and enc.value.max() < (1 << c.act_bits)   # N-bit lanes
    n, f, k = c.act_bits, c.frac_bits, x.shape[1]
    fate = enc.fate.reshape(x.shape[0], -1)[:, :k]
    ints = x >> f
    handled = np.where((fate == Fate.PLAIN) | (fate == Fate.HANDLED), ints, (1 << n) - 1) << f
    below = enc.tag.reshape(x.shape[0], -1)[:, 1:k + 1] == LaneTag.FRAC  # padding lane included
    slot_below = np.zeros_like(x, dtype=bool)
    slot_below[:, :below.shape[1]] = below
    handled += np.where(slot_below, x & ((1 << f) - 1), 0)
    assert np.array_equal(decode(enc), handled)
    w = np.array(data.draw(st.lists(st.integers(*c.weight_range), min_size=k * 2, max_size=k * 2)),
                 dtype=np.int64).reshape(k, 2)
    res = gemm(x, w, c)                               # P = 60, Q = 62: no event possible
    assert (res.pe_events, res.acc_events) == (0, 0)
    assert np.array_equal(res.y, handled @ w)


@SETTINGS
@given(problems())
def test_vectorised_encoder_equals_reference(problem):
    c, x = problem
    enc = encode(x, c)
    raw = folds_of(x, c)
    for t, fi in np.ndindex(raw.shape[:2]):
        lanes, fates, chains = reference_encode(raw[t, fi].tolist(), c)
        assert enc.value[t, fi].tolist() == [v for v, _ in lanes]
        assert enc.tag[t, fi].tolist() == [tag for _, tag in lanes]
        assert enc.fate[t, fi].tolist() == fates
        assert enc.chain[t, fi].tolist() == chains


@SETTINGS
@given(problems(narrow=True, max_t=3), st.data())
def test_vectorised_gemm_equals_reference(problem, data):
    c, x = problem
    k = x.shape[1]
    w_draw = st.one_of(st.integers(*c.weight_range), st.sampled_from(c.weight_range))
    w = np.array(data.draw(st.lists(w_draw, min_size=2 * k, max_size=2 * k)),
                 dtype=np.int64).reshape(k, 2)
    bias = data.draw(st.none() | st.lists(st.integers(*c.out_range), min_size=2, max_size=2))
    got, ref = gemm(x, w, c, bias), reference_overq_gemm(x, w, c, bias)
    assert np.array_equal(got.y, ref.y)
    assert np.array_equal(got.pe_overflow, ref.pe_overflow)
    assert np.array_equal(got.acc_overflow, ref.acc_overflow)
    assert (got.pe_events, got.acc_events) == (ref.pe_events, ref.acc_events)


@SETTINGS
@given(problems())
def test_stats_count_every_outlier_once(problem):
    c, x = problem
    s = encode(x, c).stats
    outliers = int(np.count_nonzero((x >> c.frac_bits) >= (1 << c.act_bits)))
    assert s.outliers == outliers
    assert len(s.handled) == c.overq.cascade + 1
    raw = folds_of(x, c)
    ref = [reference_encode(raw[t, fi].tolist(), c) for t, fi in np.ndindex(raw.shape[:2])]
    assert s.precision_slots == sum(tag == LaneTag.FRAC for lanes, _, _ in ref for _, tag in lanes)
    assert s.displaced == sum(fate == Fate.DISPLACED for _, fates, _ in ref for fate in fates)
