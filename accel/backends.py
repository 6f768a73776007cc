"""Array back ends of the executor: what computes the GEMMs of one array layer.

A back end answers one question, "run the GEMMs of this layer on these input codes", with a
:class:`LayerRun`; everything else in a model is the executor's (:mod:`accel.executor`). Two live
here, the third plugs in from ``sim`` (the compiled RTL co-simulation):

* :class:`ExactBackend` - exact int64 sums, no widths (the reference for overflow effects);
* :class:`GoldenBackend` - the bit-exact arithmetic of SPEC sections 2 and 4: the screen proves
  most outputs exact (:mod:`accel.screen`) and the golden stepping runs the rest
  (:func:`accel.golden.layer_values`); OverQ configurations run the lowered GEMMs on their encoded
  lanes (:func:`accel.golden.gemm`). Optionally the exact partial-sum extremes
  (:mod:`accel.extremes`), whose fold-by-fold pass then also gives the screen's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from accel.config import ArrayConfig
from accel.extremes import Extremes
from accel.golden import gemm, layer_values
from accel.heap import keep_freed_memory
from accel.layers import IntLayer, LayerError
from accel.lowering import GemmShape, gemm_shape, lower, raise_output
from accel.operand import exact_float32, layer_operand, one_blas_thread

__all__ = ["LayerRun", "ArrayBackend", "ExactBackend", "GoldenBackend", "check_layer_fits"]


@dataclass(frozen=True)
class LayerRun:
    """The GEMMs of one array layer on one batch, in the layer's output shape.

    Attributes
    ----------
    acc : int64
        The array's Q-bit results (exact sums for :class:`ExactBackend`).
    exact : int64
        The exact sums ``bias + x . w``.
    pe_overflow, acc_overflow : bool or None
        Per output: a PE step, resp. an accumulator step, overflowed (None: no widths).
    pe_events, acc_events : int
        Overflow events (SPEC section 2) over all outputs.
    shape : GemmShape
        The layer's GEMMs.
    overq : accel.overq.OverQStats or None
        Encoder statistics of the layer's lanes (OverQ configurations).
    extremes : Extremes or None
        Exact partial-sum extremes, where measured.
    """

    acc: np.ndarray
    exact: np.ndarray
    pe_overflow: np.ndarray | None
    acc_overflow: np.ndarray | None
    pe_events: int
    acc_events: int
    shape: GemmShape
    overq: Any = None
    extremes: Extremes | None = None


class ArrayBackend(Protocol):
    """Computes the GEMMs of array layers for the executor."""

    #: The array whose arithmetic it runs (lanes, widths, R).
    config: ArrayConfig
    #: One line that says what it computes (printed in reports).
    semantics: str

    def run(self, layer: IntLayer, codes: np.ndarray) -> LayerRun:
        """The layer's results on input codes (raw lane codes, ``config.lane_range``)."""
        ...


def check_layer_fits(layer: IntLayer, config: ArrayConfig) -> None:
    """Refuse a layer whose input codes or weights do not fit the array's lanes (names both)."""
    lo, hi = layer.input_range
    llo, lhi = config.lane_range
    if lo < llo or hi > lhi:
        raise LayerError(f"layer {layer.name!r}: its {'signed' if layer.act_signed else 'unsigned'} "
                         f"{layer.act_bits}-bit input codes [{lo}, {hi}] do not fit the array's "
                         f"lanes [{llo}, {lhi}] (act_bits = {config.act_bits}, act_signed = "
                         f"{config.act_signed}); choose a configuration whose lanes hold them")
    if layer.weight_bits > config.weight_bits:
        raise LayerError(f"layer {layer.name!r}: {layer.weight_bits}-bit weights do not fit the "
                         f"array's weight_bits = {config.weight_bits}")


class ExactBackend:
    """Exact int64 sums of every GEMM (no accumulator widths); ``config`` gives only the lanes."""

    semantics = "exact int64 sums (no accumulator widths)"

    def __init__(self, config: ArrayConfig) -> None:
        self.config = config

    def run(self, layer: IntLayer, codes: np.ndarray) -> LayerRun:
        check_layer_fits(layer, self.config)
        op = layer_operand(layer, codes, self.config.lane_range)
        bias = 0 if layer.bias is None else layer.bias
        with exact_float32(), one_blas_thread():
            exact = op.output(op.exact_sums() + bias)
        return LayerRun(exact, exact, None, None, 0, 0, op.shape)


class GoldenBackend:
    """The bit-exact golden arithmetic of ``config`` (module docstring).

    ``extremes``: also measure the exact partial-sum extremes of every GEMM (the smallest P and Q
    this data needs); several times slower. Not with OverQ, whose steps are the encoded lanes.
    """

    semantics = "golden model: bit-exact SPEC arithmetic (P-bit PE steps, Q-bit accumulator)"

    def __init__(self, config: ArrayConfig, extremes: bool = False) -> None:
        self.config, self.extremes = config, extremes
        keep_freed_memory()           # layers reuse each other's freed memory (no page faults)

    def run(self, layer: IntLayer, codes: np.ndarray) -> LayerRun:
        check_layer_fits(layer, self.config)
        cfg = self.config
        if cfg.overq is not None:
            return self._lowered(layer, codes)
        op = layer_operand(layer, codes, cfg.lane_range)
        with exact_float32(), one_blas_thread():
            v, ext = layer_values(op, layer.bias, cfg, self.extremes)
        exact = op.output(v.exact)
        acc = exact if v.y is v.exact else op.output(v.y)
        return LayerRun(acc, exact, op.output(v.pe_overflow),
                        op.output(v.acc_overflow), v.pe_events, v.acc_events, op.shape,
                        extremes=ext)

    def _lowered(self, layer: IntLayer, codes: np.ndarray) -> LayerRun:
        """OverQ: each group's GEMM on its encoded lanes (:func:`accel.overq.overq_gemm`)."""
        shape = gemm_shape(layer, np.shape(codes))
        parts, stats = [], None
        for x, w, b in lower(layer, codes, self.config.lane_range):
            r = gemm(x, w, self.config, b)
            exact = x.astype(np.int64) @ w + (0 if b is None else b)
            parts.append((r, exact))
            stats = r.overq if stats is None else stats + r.overq

        def join(get: Any) -> np.ndarray:
            return np.ascontiguousarray(raise_output(layer, [get(p) for p in parts], shape))

        return LayerRun(join(lambda p: p[0].y), join(lambda p: p[1]),
                        join(lambda p: p[0].pe_overflow), join(lambda p: p[0].acc_overflow),
                        sum(p[0].pe_events for p in parts), sum(p[0].acc_events for p in parts),
                        shape, overq=stats)
