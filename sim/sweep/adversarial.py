"""Adversarial inputs for overflow: every input code at the extreme that maximises, then minimises,
each output channel's partial sums (SPEC section 5's exact range test, made concrete).

For channel o with weights ``w[:, o]``, the vector ``x = hi where w > 0 else lo`` makes every
product as large as it can be and ``x = lo where w > 0 else hi`` as small, so every partial sum of
that channel, in any order, reaches its extreme. A layer that passes the exact range test at P
(per fold) and Q (whole K plus bias) has no overflow event on these vectors; one that fails it has.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adversarial_codes"]


def adversarial_codes(w: np.ndarray, x_range: tuple[int, int]) -> np.ndarray:
    """The ``2 * O`` adversarial input vectors of a GEMM's weights.

    Parameters
    ----------
    w : int [K, O]
        Signed integer weights.
    x_range : (int, int)
        Inclusive input code range ``(lo, hi)`` with ``lo <= 0 <= hi`` (raw codes).

    Returns
    -------
    int64 [2 * O, K]
        Rows ``2o`` (maximising channel o) and ``2o + 1`` (minimising it).
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D weight matrix [K, O], not shape {w.shape}")
    lo, hi = x_range
    if not lo <= 0 <= hi:
        raise ValueError(f"x_range must satisfy lo <= 0 <= hi, not {x_range}")
    pos = (w > 0).T                                            # [O, K]
    out = np.empty((2 * w.shape[1], w.shape[0]), dtype=np.int64)
    out[0::2] = np.where(pos, hi, lo)
    out[1::2] = np.where(pos, lo, hi)
    return out
