"""Random GEMM operands inside an array's declared widths (for ``accel gemm`` and sweeps)."""

from __future__ import annotations

import numpy as np

from accel.config import ArrayConfig

__all__ = ["DISTRIBUTIONS", "random_operands"]

DISTRIBUTIONS = ("uniform", "extreme")


def random_operands(config: ArrayConfig, t: int, k: int, o: int, dist: str, seed: int,
                    with_bias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random operands inside the declared widths.

    ``uniform`` draws every code uniformly; ``extreme`` draws only the range ends (and 0), which
    makes long same-sign runs that overflow narrow accumulators on purpose.
    """
    rng = np.random.default_rng(seed)
    (xl, xh), (wl, wh) = config.lane_range, config.weight_range
    if dist == "uniform":
        x = rng.integers(xl, xh, size=(t, k), endpoint=True)
        w = rng.integers(wl, wh, size=(k, o), endpoint=True)
    else:
        x = rng.choice(np.array([xl, 0, xh]), size=(t, k))
        w = rng.choice(np.array([wl, wh]), size=(k, o))
    bias = None
    if with_bias:
        ql, qh = config.out_range
        bias = rng.integers(ql // 4, qh // 4, size=o, endpoint=True)
    return x, w, bias
