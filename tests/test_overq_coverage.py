"""OverQ coverage: the formulas, a small fixed-seed measurement against them, and errors.

The full table (100k vectors) is made by ``benchmarks/bench_overq.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.overq_coverage import (CoveragePoint, coverage_law, coverage_sweep, coverage_table,
                                  edge_corrected_share, measure_coverage, random_lanes)

RANGE16 = ArrayConfig(rows=16, overq=OverQConfig(mode="range"))


def test_coverage_law_values():
    assert coverage_law(0.5, 0) == 0.5
    assert coverage_law(0.3, 2) == pytest.approx(1 - 0.7 ** 3)
    # R = 4, c = 1, z = 0.5: lanes 0, 1 reach 2 (0.75), lane 2 reaches 1 (0.5), lane 3 none
    assert edge_corrected_share(0.5, 1, 4) == pytest.approx((0.75 + 0.75 + 0.5 + 0.0) / 4)
    assert edge_corrected_share(0.3, 2, 1000) == pytest.approx(coverage_law(0.3, 2), abs=2e-3)


def test_random_lanes_follow_the_rates():
    c = ArrayConfig(rows=8, act_bits=4, pe_acc_bits=20, overq=OverQConfig(mode="both"))
    x = random_lanes(np.random.default_rng(0), 20_000, c, zero_rate=0.4, outlier_rate=0.1)
    ints = x >> c.frac_bits
    outlier = ints >= 16
    assert x.min() >= 0 and x.max() < 1 << 12
    assert outlier.mean() == pytest.approx(0.1, abs=0.005)
    assert (x[~outlier] == 0).mean() == pytest.approx(0.4, abs=0.01)   # z among non-outliers
    assert np.all(ints[~outlier & (x != 0)] >= 1)


def test_small_sweep_matches_both_formulas():
    points = coverage_sweep(RANGE16, [0.3, 0.5], range(5), vectors=30_000, outlier_rate=0.001,
                            seed=7)
    assert [(p.zero_rate, p.cascade) for p in points] == [(z, c) for z in (0.3, 0.5) for c in range(5)]
    for p in points:
        assert p.cond_eligible > 200 and p.all_outliers > 300
        assert p.passes(4.0), coverage_table([p])
    # the check can fail: the law of a reach one lane longer is far outside 4 sigma
    p = points[1]                                          # z = 0.3, c = 1
    wrong = (p.cond_share - coverage_law(0.3, 2)) / math.sqrt(p.cond_expected
                                                              * (1 - p.cond_expected) / p.cond_eligible)
    assert abs(wrong) > 4


def test_conditional_law_holds_at_a_high_outlier_rate():
    # among non-outliers lanes are zeros with probability z exactly, so the conditional law
    # does not depend on the outlier rate (the all-lane share does)
    c = ArrayConfig(rows=8, overq=OverQConfig(mode="range", cascade=2))
    x = random_lanes(np.random.default_rng(3), 20_000, c, zero_rate=0.3, outlier_rate=0.05)
    p = measure_coverage(x, c, 0.3, 0.05)
    assert p.cond_eligible > 1000
    assert abs(p.cond_sigmas) <= 4


def test_table_and_dict():
    p = CoveragePoint(rows=4, cascade=0, zero_rate=0.5, outlier_rate=0.001, vectors=10,
                      cond_handled=5, cond_eligible=10, all_handled=3, all_outliers=10)
    d = p.to_dict()
    assert (d["cond_share"], d["all_share"], d["cond_sigmas"]) == (0.5, 0.3, 0.0)
    assert d["all_expected"] == pytest.approx(0.375)
    table = coverage_table([p])
    assert table.splitlines()[2] == ("| 4 | 0.5 | 0 | 10 | 0.5000 | 0.5000 | +0.00 | 10 | 0.3000 "
                                     "| 0.3750 | -0.49 | yes |")
    empty = CoveragePoint(4, 0, 0.5, 0.001, 10, 0, 0, 0, 0)
    assert math.isnan(empty.cond_share) and not empty.passes()


def test_coverage_needs_range_overwrite():
    with pytest.raises(ConfigError,
                       match="needs overq mode 'range' or 'both', not overq mode 'precision'"):
        random_lanes(np.random.default_rng(0), 10, ArrayConfig(overq=OverQConfig(mode="precision")),
                     0.3, 0.001)
    with pytest.raises(ConfigError, match="not no OverQ"):
        measure_coverage(np.zeros((1, 8), np.int64), ArrayConfig(), 0.3, 0.001)


def test_coverage_input_errors():
    with pytest.raises(ValueError, match="zero_rate must be a probability between 0 and 1, not 1.5"):
        random_lanes(np.random.default_rng(0), 10, RANGE16, 1.5, 0.001)
    with pytest.raises(ValueError, match="outlier_rate must be a probability between 0 and 1, not -0.1"):
        random_lanes(np.random.default_rng(0), 10, RANGE16, 0.5, -0.1)
    with pytest.raises(ValueError, match=r"K a multiple of R = 16 .* not shape \(2, 20\)"):
        measure_coverage(np.zeros((2, 20), np.int64), RANGE16, 0.3, 0.001)
