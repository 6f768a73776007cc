"""Run one integer layer on the array's golden arithmetic (or exactly), for OAQ training, the
quantizer reports and :class:`accel.quant.intmodel.IntModel`. Lowering itself is
:mod:`accel.lowering` (SPEC section 1 order); this module only runs its GEMMs and raises the
accumulators back to the layer's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.config import ArrayConfig
from accel.golden import GemmResult, gemm
from accel.layers import IntLayer
from accel.lowering import gemm_shape, lower, raise_output

__all__ = ["run_layer", "LayerRun"]


@dataclass(frozen=True)
class LayerRun:
    """Accumulators of one layer on the array and its per-group golden results."""

    acc: np.ndarray
    results: list[GemmResult]

    @property
    def pe_events(self) -> int:
        return sum(r.pe_events for r in self.results)

    @property
    def acc_events(self) -> int:
        return sum(r.acc_events for r in self.results)

    @property
    def affected(self) -> int:
        """Outputs with any PE or accumulator event."""
        return int(sum((r.pe_overflow | r.acc_overflow).sum() for r in self.results))


def run_layer(layer: IntLayer, codes: object, config: ArrayConfig, exact: bool = False
              ) -> LayerRun:
    """Run ``layer`` on ``codes`` with the golden arithmetic of ``config`` (or exactly, int64).

    ``codes`` must fit the array's lanes (``config.lane_range``). Returns the int64
    accumulators shaped ``(B, O)`` or ``(B, O, Ho, Wo)``.
    """
    codes = np.asarray(codes)
    shape = gemm_shape(layer, codes.shape)
    ys, results = [], []
    for x, w, b in lower(layer, codes, config.lane_range):
        bias = np.zeros(w.shape[1], np.int64) if b is None else b
        if exact:
            ys.append(x.astype(np.int64) @ w + bias)
            continue
        r = gemm(x, w, config, bias)
        ys.append(r.y)
        results.append(r)
    return LayerRun(np.ascontiguousarray(raise_output(layer, ys, shape)), results)
