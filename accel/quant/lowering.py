"""Run one integer layer on the array's golden arithmetic (or exactly), for OAQ training, the
quantizer reports and :class:`accel.quant.intmodel.IntModel`. Lowering itself is
:mod:`accel.lowering` (SPEC section 1 order) or, for plain lanes, the block screen
(:mod:`accel.screen`); this module only picks one and collects the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.golden import gemm
from accel.layers import IntLayer
from accel.lowering import gemm_shape, lower, raise_output
from accel.patches import Patches
from accel.screen import screen_layer

__all__ = ["run_layer", "LayerRun"]


@dataclass(frozen=True)
class LayerRun:
    """Accumulators of one layer on the array and its overflow statistics (all groups).

    ``overq`` holds the encoder statistics of each group's GEMM (OverQ configurations only).
    """

    acc: np.ndarray
    pe_events: int = 0
    acc_events: int = 0
    affected: int = 0          #: outputs with any PE or accumulator event
    overq: list[Any] = field(default_factory=list)


def run_layer(layer: IntLayer, codes: object, config: ArrayConfig, exact: bool = False
              ) -> LayerRun:
    """Run ``layer`` on ``codes`` with the golden arithmetic of ``config`` (or exactly, int64).

    ``codes`` must fit the array's lanes (``config.lane_range``). Returns the int64
    accumulators shaped ``(B, O)`` or ``(B, O, Ho, Wo)``. Plain lanes run the block screen
    (:func:`accel.screen.screen_layer`, the golden arithmetic only where an output may overflow);
    OverQ lanes and the exact reference run the lowered GEMMs.
    """
    codes = np.asarray(codes)
    if not exact and config.overq is None:
        res = screen_layer(Patches(layer, codes, config.lane_range), config)
        if res is not None:
            return LayerRun(res.acc, res.pe_events, res.acc_events, res.affected_outputs)
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
    return LayerRun(np.ascontiguousarray(raise_output(layer, ys, shape)),
                    sum(r.pe_events for r in results), sum(r.acc_events for r in results),
                    int(sum((r.pe_overflow | r.acc_overflow).sum() for r in results)),
                    [r.overq for r in results if r.overq is not None])
