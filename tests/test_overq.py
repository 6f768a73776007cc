"""OverQ encoder, decoder and GEMM: hand-worked golden vectors and every error message."""

from __future__ import annotations

import numpy as np
import pytest

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.golden import gemm
from accel.overq import (EncodedLanes, Fate, LaneTag, OverQStats, decode, encode, overq_stats,
                         reference_encode, reference_overq_gemm, tag_shifts)

OWN, UP, HIGH, FRAC = LaneTag.OWN, LaneTag.UP, LaneTag.UP_HIGH, LaneTag.FRAC


def cfg(mode: str = "range", cascade: int = 0, rows: int = 4, n: int = 4, m: int = 4,
        p: int | None = None, overflow: str = "wrap") -> ArrayConfig:
    """A small OverQ array; P defaults to 32."""
    return ArrayConfig(rows=rows, cols=2, act_bits=n, weight_bits=m, pe_acc_bits=p or 32,
                       overflow=overflow, overq=OverQConfig(mode=mode, cascade=cascade))


def one(enc: EncodedLanes) -> tuple[list[int], list[int], list[int], list[int]]:
    """Value, tag, fate and chain of the first vector, folds concatenated, as plain lists."""
    return tuple(a[0].reshape(-1).tolist() for a in (enc.value, enc.tag, enc.fate, enc.chain))


def test_range_chain_moves_lanes_down():
    # N = 4, c = 1: 200 = 12 * 16 + 8; the first zero is 2 lanes below, within reach 2.
    c = cfg(cascade=1)
    enc = encode([[200, 5, 0, 3]], c)
    assert one(enc) == ([8, 12, 5, 3], [OWN, HIGH, UP, OWN], [Fate.HANDLED, 0, 0, 0], [2, 0, 0, 0])
    assert decode(enc).tolist() == [[200, 5, 0, 3]]
    assert enc.stats == OverQStats((0, 1), 0, 0, 0, 4)
    w = np.array([[1, 2], [3, -1], [5, 7], [-8, 2]])
    y = gemm([[200, 5, 0, 3]], w, c)
    assert y.y.tolist() == [[200 + 15 - 24, 400 - 5 + 6]]
    assert (y.pe_events, y.acc_events) == (0, 0)


def test_outlier_beyond_reach_is_clamped():
    enc = encode([[200, 5, 0, 3]], cfg(cascade=0))      # zero 2 lanes below, reach 1
    assert one(enc) == ([15, 5, 0, 3], [OWN] * 4, [Fate.UNREACHED, 0, 0, 0], [0] * 4)
    assert decode(enc).tolist() == [[15, 5, 0, 3]]
    assert enc.stats == OverQStats((0,), 0, 1, 0, 4)


def test_outlier_moved_by_a_chain_is_displaced_and_clamped():
    # c = 2, R = 5: the chain of lane 0 moves lanes 1 (an outlier) and 2 down to the zero at 3.
    enc = encode([[200, 100, 7, 0, 0]], cfg(cascade=2, rows=5))
    assert one(enc) == ([8, 12, 15, 7, 0], [OWN, HIGH, UP, UP, OWN],
                        [Fate.HANDLED, Fate.DISPLACED, 0, 0, 0], [3, 0, 0, 0, 0])
    assert decode(enc).tolist() == [[200, 15, 7, 0, 0]]
    assert enc.stats == OverQStats((0, 0, 1), 1, 0, 0, 5)
    assert enc.stats.outliers == 2


def test_second_chain_takes_the_next_free_zero():
    enc = encode([[200, 0, 17, 0]], cfg(cascade=0))
    assert one(enc) == ([8, 12, 1, 1], [OWN, HIGH, OWN, HIGH], [1, 0, 1, 0], [1, 0, 1, 0])
    assert decode(enc).tolist() == [[200, 0, 17, 0]]


def test_nothing_crosses_a_fold():
    # lane 3 is the last of fold 0; the zero right below it belongs to fold 1.
    enc = encode([[1, 2, 3, 200, 0, 0, 0, 0]], cfg(cascade=2))
    assert one(enc)[2] == [0, 0, 0, Fate.UNREACHED, 0, 0, 0, 0]
    assert decode(enc).tolist() == [[1, 2, 3, 15, 0, 0, 0, 0]]


def test_zero_padding_of_the_last_fold_is_a_free_zero():
    c = cfg(cascade=0)
    enc = encode([[0, 0, 200]], c)                        # K = 3, lane 3 is padding
    assert one(enc)[:2] == ([0, 0, 8, 12], [OWN, OWN, OWN, HIGH])
    assert decode(enc).tolist() == [[0, 0, 200]]
    w = np.array([[5, 1], [5, 1], [-3, 7]])
    assert gemm([[0, 0, 200]], w, c).y.tolist() == [[-600, 1400]]


def test_precision_slot_needs_a_zero_below_a_plain_lane():
    # N = 4 integer bits . 4 fraction bits: 53 = 3 + 5/16, 41 = 2 + 9/16.
    c = cfg(mode="precision")
    enc = encode([[53, 0, 41, 0], [53, 41, 0, 0], [0, 0, 9, 0]], c)
    assert enc.tag.reshape(3, 4).tolist() == [[OWN, FRAC, OWN, FRAC], [OWN, OWN, FRAC, OWN],
                                              [OWN, OWN, OWN, FRAC]]
    assert enc.value.reshape(3, 4).tolist() == [[3, 5, 2, 9], [3, 2, 9, 0], [0, 0, 0, 9]]
    # accumulator units are 1/16 of an activation step; a dropped fraction leaves 16 * integer
    assert decode(enc).tolist() == [[53, 0, 41, 0], [48, 41, 0, 0], [0, 0, 9, 0]]
    assert enc.stats.precision_slots == 4  # 2 + 1 + 1
    assert enc.stats.outliers == 0


def test_both_modes_precision_only_on_untouched_lanes():
    c = cfg(mode="both", cascade=1)
    o = (200 << 4) | 7                                     # outlier 200 with fraction 7/16
    enc = encode([[o, 0, 53, 0], [o, 83, 0, 0], [o, 0, 0, 0]], c)
    assert enc.tag.reshape(3, 4).tolist() == [[OWN, HIGH, OWN, FRAC], [OWN, HIGH, UP, OWN],
                                              [OWN, HIGH, OWN, OWN]]
    assert decode(enc).tolist() == [[3200, 0, 53, 0], [3200, 80, 0, 0], [3200, 0, 0, 0]]
    assert tag_shifts(c).tolist() == [4, 4, 8, 0]


def test_gemm_events_on_encoded_steps():
    # N = M = 4, range: P = 2N + M = 12 bits, [-2048, 2047]. Steps 105, 1680, 105, 1680 reach
    # 3570 on the last lane: one PE event; the wrapped sum is 3570 - 4096.
    x, w = [[255, 0, 255, 0]], [[7], [0], [7], [0]]
    for overflow, y in (("wrap", -526), ("saturate", 2047)):
        c = ArrayConfig(rows=4, cols=1, act_bits=4, weight_bits=4, pe_acc_bits=12,
                        overflow=overflow, overq=OverQConfig(mode="range"))
        res = gemm(x, w, c)
        assert res.y.tolist() == [[y]]
        assert (res.pe_events, res.acc_events, bool(res.pe_overflow[0, 0])) == (1, 0, True)
        ref = reference_overq_gemm(x, w, c)
        assert (ref.y.tolist(), ref.pe_events) == ([[y]], 1)


def test_gemm_bias_and_accumulator_overflow_across_folds():
    # two folds of 2; P = 12, Q = 13 saturating: bias 4000 + 255 * 7 overflows Q on fold 0.
    c = ArrayConfig(rows=2, cols=1, act_bits=4, weight_bits=4, pe_acc_bits=12, out_acc_bits=13,
                    overflow="saturate", overq=OverQConfig(mode="range"))
    res = gemm([[255, 0, 1, 0]], [[7], [0], [-8], [0]], c, bias=[4000])
    assert res.y.tolist() == [[4095 - 8]]
    assert (res.pe_events, res.acc_events) == (0, 1)
    assert reference_overq_gemm([[255, 0, 1, 0]], [[7], [0], [-8], [0]], c, [4000]).y.tolist() \
        == [[4087]]


def test_stats_of_an_empty_batch_and_addition():
    c = cfg(cascade=1)
    assert overq_stats(np.zeros((0, 4), np.int64), c) == OverQStats((0, 0), 0, 0, 0, 0)
    a = overq_stats([[200, 0, 0, 0]], c)
    assert (a + a).to_dict() == {"outliers": 2, "handled_total": 2, "handled": {"1": 2, "2": 0},
                                 "displaced": 0, "unreached": 0, "precision_slots": 0, "lanes": 8}


@pytest.mark.parametrize("mode, n, m, minimum", [("range", 8, 8, 24), ("precision", 8, 8, 24),
                                                 ("both", 8, 8, 32), ("both", 4, 6, 18)])
def test_p_below_the_minimum_is_refused(mode, n, m, minimum):
    oq = OverQConfig(mode=mode)
    with pytest.raises(ConfigError, match=rf"pe_acc_bits must be between {minimum} and 64 "
                                          rf"\(OverQ {mode} lanes .* at least .* = {minimum}\)"):
        ArrayConfig(act_bits=n, weight_bits=m, pe_acc_bits=minimum - 1, overq=oq)
    assert ArrayConfig(act_bits=n, weight_bits=m, pe_acc_bits=minimum, overq=oq).min_pe_acc_bits \
        == minimum


def test_signed_activations_are_refused():
    with pytest.raises(ConfigError, match="overq requires unsigned activations"):
        ArrayConfig(act_signed=True, overq=OverQConfig())


# --- error messages ---------------------------------------------------------------------------

def test_encode_needs_overq():
    with pytest.raises(ConfigError,
                       match=r"encode needs an OverQ configuration .* config.overq is None"):
        encode([[1, 2]], ArrayConfig(rows=2))


def test_encode_rejects_codes_outside_the_lane_range():
    with pytest.raises(ValueError, match=r"x\[0, 1\] = 256 is outside the unsigned 8-bit OverQ "
                                         r"lane range \[0, 255\]"):
        encode([[1, 256]], cfg())
    with pytest.raises(ValueError, match=r"x\[0, 0\] = -1 is outside"):
        encode([[-1, 0]], cfg())


def test_encode_rejects_a_non_matrix():
    with pytest.raises(ValueError, match=r"x must be a 2-D integer array \[T, K\], not shape \(3,\)"):
        encode([1, 2, 3], cfg())


def test_gemm_rejects_raw_codes_outside_the_lane_range():
    with pytest.raises(ValueError, match=r"x\[0, 0\] = 4096 is outside the unsigned 12-bit lane"):
        gemm([[4096, 0]], [[1], [1]], cfg(mode="both"))


def test_reference_encode_errors():
    with pytest.raises(ValueError, match="a fold has R = 4 lane codes, not 3"):
        reference_encode([1, 2, 3], cfg())
    with pytest.raises(ConfigError, match="reference_encode needs an OverQ configuration"):
        reference_encode([1, 2], ArrayConfig(rows=2))
    with pytest.raises(ConfigError, match="reference_overq_gemm needs an OverQ configuration"):
        reference_overq_gemm([[1, 2]], [[1], [1]], ArrayConfig(rows=2))


def test_stats_of_different_depths_do_not_add():
    with pytest.raises(ValueError, match="cannot add OverQ statistics of cascade depths 0 and 1"):
        OverQStats((1,), 0, 0, 0, 4) + OverQStats((1, 0), 0, 0, 0, 4)


def test_gemm_refuses_lanes_too_wide_for_exact_int64_folds():
    c = ArrayConfig(rows=4, act_bits=16, weight_bits=16, pe_acc_bits=64,
                    overq=OverQConfig(mode="both"))
    with pytest.raises(ConfigError, match=r"lane_bits \+ weight_bits \+ ceil\(log2\(rows\)\) <= 64, "
                                          r"here 48 \+ 16 \+ 2 = 66"):
        gemm([[1, 0, 0, 0]], [[1], [1], [1], [1]], c)
