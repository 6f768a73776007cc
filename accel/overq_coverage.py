"""OverQ range-overwrite coverage, measured against the coverage law of SPEC section 4.

Lanes are drawn independently: an outlier with probability ``outlier_rate``, otherwise a zero
with probability ``zero_rate`` (so a lane that is not an outlier is a zero with probability z
exactly, whatever the outlier rate), otherwise a plain non-zero N-bit code. Two shares are
measured on the encoder's output (:func:`accel.overq.encode`):

* **conditional**: outliers in lane k <= R - c - 2 with no other outlier within c lanes above or
  c + 1 lanes below (in the same fold); the law says P(handled) = 1 - (1 - z)^(c+1) exactly;
* **all-lane**: every outlier; as the outlier rate tends to 0 the share tends to
  (1/R) · sum_k [1 - (1 - z)^min(c+1, R-1-k)] (:func:`edge_corrected_share`).

Each is compared with its formula in units of the binomial standard error for the observed
number of outliers, sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from accel.config import ArrayConfig, ConfigError, OverQConfig
from accel.overq import Fate, encode

__all__ = ["coverage_law", "edge_corrected_share", "random_lanes", "CoveragePoint",
           "measure_coverage", "coverage_sweep", "coverage_table"]


def coverage_law(zero_rate: float, cascade: int) -> float:
    """P(handled) of an isolated outlier with full reach: 1 - (1 - z)^(c + 1)."""
    return 1.0 - (1.0 - zero_rate) ** (cascade + 1)


def edge_corrected_share(zero_rate: float, cascade: int, rows: int) -> float:
    """All-lane handled share as the outlier rate tends to 0 (lanes near a fold's end reach less)."""
    return sum(1.0 - (1.0 - zero_rate) ** min(cascade + 1, rows - 1 - k) for k in range(rows)) / rows


def _require_range(config: ArrayConfig) -> None:
    if config.overq is None or not config.overq.has_range:
        mode = "no OverQ" if config.overq is None else f"overq mode {config.overq.mode!r}"
        raise ConfigError(f"coverage is measured on range overwrite: needs overq mode 'range' or "
                          f"'both', not {mode}")


def random_lanes(rng: np.random.Generator, vectors: int, config: ArrayConfig, zero_rate: float,
                 outlier_rate: float) -> np.ndarray:
    """Raw lane codes ``[vectors, R]`` (one fold per vector) in the format of ``config``.

    Outliers have an integer part uniform in [2^N, 2^(2N) - 1], plain lanes in [1, 2^N - 1];
    fraction bits (precision modes) are uniform.
    """
    _require_range(config)
    for name, rate in (("zero_rate", zero_rate), ("outlier_rate", outlier_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, not {rate}")
    shape = (vectors, config.rows)
    n, f = config.act_bits, config.frac_bits
    outlier = rng.random(shape) < outlier_rate
    zero = ~outlier & (rng.random(shape) < zero_rate)
    ints = np.where(outlier, rng.integers(1 << n, 1 << (2 * n), shape),
                    rng.integers(1, 1 << n, shape))
    codes = (ints << f) | rng.integers(0, 1 << f, shape)
    codes[zero] = 0
    return codes


@dataclass(frozen=True)
class CoveragePoint:
    """Measured coverage of one (R, c, z, outlier rate) point; counts are outliers."""

    rows: int
    cascade: int
    zero_rate: float
    outlier_rate: float
    vectors: int
    cond_handled: int
    cond_eligible: int
    all_handled: int
    all_outliers: int

    @property
    def cond_expected(self) -> float:
        """The coverage law, 1 - (1 - z)^(c + 1)."""
        return coverage_law(self.zero_rate, self.cascade)

    @property
    def all_expected(self) -> float:
        """The edge-corrected all-lane share."""
        return edge_corrected_share(self.zero_rate, self.cascade, self.rows)

    @property
    def cond_share(self) -> float:
        """Measured conditional handled share (NaN without eligible outliers)."""
        return self.cond_handled / self.cond_eligible if self.cond_eligible else math.nan

    @property
    def all_share(self) -> float:
        """Measured all-lane handled share (NaN without outliers)."""
        return self.all_handled / self.all_outliers if self.all_outliers else math.nan

    @property
    def cond_sigmas(self) -> float:
        """(measured - law) in binomial standard errors."""
        return _sigmas(self.cond_share, self.cond_expected, self.cond_eligible)

    @property
    def all_sigmas(self) -> float:
        """(measured - formula) in binomial standard errors."""
        return _sigmas(self.all_share, self.all_expected, self.all_outliers)

    def passes(self, n_sigma: float = 4.0) -> bool:
        """Both shares within ``n_sigma`` standard errors (False when a count is 0)."""
        return abs(self.cond_sigmas) <= n_sigma and abs(self.all_sigmas) <= n_sigma

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with the counts, shares, formulas and deviations."""
        d = dataclasses.asdict(self)
        d.update(cond_share=self.cond_share, cond_expected=self.cond_expected,
                 cond_sigmas=self.cond_sigmas, all_share=self.all_share,
                 all_expected=self.all_expected, all_sigmas=self.all_sigmas, passes=self.passes())
        return d


def _sigmas(measured: float, expected: float, n: int) -> float:
    if n == 0:
        return math.nan
    sd = math.sqrt(expected * (1.0 - expected) / n)
    if sd == 0.0:
        return 0.0 if measured == expected else math.inf
    return (measured - expected) / sd


def measure_coverage(x: np.ndarray, config: ArrayConfig, zero_rate: float,
                     outlier_rate: float) -> CoveragePoint:
    """Encode ``x[T, K]`` (K a multiple of R) and count handled outliers, conditional and overall."""
    _require_range(config)
    r, c = config.rows, config.overq.cascade
    if x.ndim != 2 or x.shape[1] % r:
        raise ValueError(f"x must be [T, K] with K a multiple of R = {r} (the coverage law assumes "
                         f"full folds), not shape {x.shape}")
    fate = encode(x, config).fate.reshape(-1, r)
    outlier = fate != Fate.PLAIN
    handled = fate == Fate.HANDLED
    # before[:, k] = outliers in lanes < k of the fold
    before = np.concatenate([np.zeros((fate.shape[0], 1), np.int64), np.cumsum(outlier, axis=1)], axis=1)
    cond_handled = cond_eligible = 0
    for k in range(r - c - 1):                             # k <= R - c - 2
        above = before[:, k] - before[:, max(0, k - c)]
        below = before[:, k + c + 2] - before[:, k + 1]
        eligible = outlier[:, k] & (above == 0) & (below == 0)
        cond_eligible += int(eligible.sum())
        cond_handled += int((eligible & handled[:, k]).sum())
    return CoveragePoint(r, c, zero_rate, outlier_rate, x.shape[0], cond_handled, cond_eligible,
                         int(handled.sum()), int(outlier.sum()))


def coverage_sweep(config: ArrayConfig, zero_rates: Iterable[float], cascades: Iterable[int],
                   vectors: int, outlier_rate: float, seed: int,
                   progress: Callable[[CoveragePoint], None] | None = None) -> list[CoveragePoint]:
    """Measure every (z, c): one lane set per z (seeded by ``seed`` and z), encoded at each c.

    ``config`` supplies R, N and the OverQ mode ('range' or 'both'); its cascade is replaced.
    """
    _require_range(config)
    cascades = list(cascades)
    points = []
    for z in zero_rates:
        rng = np.random.default_rng([seed, round(z * 1_000_000)])
        x = random_lanes(rng, vectors, config, z, outlier_rate)
        for c in cascades:
            cfg = dataclasses.replace(config, overq=OverQConfig(mode=config.overq.mode, cascade=c))
            point = measure_coverage(x, cfg, z, outlier_rate)
            if progress is not None:
                progress(point)
            points.append(point)
    return points


def coverage_table(points: Iterable[CoveragePoint], n_sigma: float = 4.0) -> str:
    """Markdown table of measured shares against their formulas."""
    lines = ["| R | z | c | cond. outliers | cond. handled | 1-(1-z)^(c+1) | dev (σ) "
             "| all outliers | all handled | edge formula | dev (σ) | within "
             f"{n_sigma:g}σ |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.rows} | {p.zero_rate:g} | {p.cascade} | {p.cond_eligible} "
                     f"| {p.cond_share:.4f} | {p.cond_expected:.4f} | {p.cond_sigmas:+.2f} "
                     f"| {p.all_outliers} | {p.all_share:.4f} | {p.all_expected:.4f} "
                     f"| {p.all_sigmas:+.2f} | {'yes' if p.passes(n_sigma) else 'NO'} |")
    return "\n".join(lines)
