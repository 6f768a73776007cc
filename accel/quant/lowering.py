"""A minimal lowering of one integer layer to GEMMs on the array (SPEC section 1 order).

The TLM (``sim.tlm``) owns lowering for whole-model execution; ``accel`` may not import ``sim``,
and OAQ needs the golden result of a layer *during training*, so this module keeps the smallest
lowering that OAQ, the quantizer reports and the reference-model evaluation need: im2col with
``torch.nn.functional.unfold`` (its row order is PyTorch's weight layout ``(c_in, i, j)``), padding
with the input zero point's code, one GEMM per group, vectors ordered ``t = (b, oy, ox)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from accel.config import ArrayConfig
from accel.golden import GemmResult, gemm
from accel.layers import IntLayer

__all__ = ["GemmOperands", "lower", "run_layer", "LayerRun"]


@dataclass(frozen=True)
class GemmOperands:
    """One GEMM of a lowered layer: ``x[T, K]`` codes, ``w[K, O_g]``, ``bias[O_g]`` (int64),
    and the output channels ``channels`` (a slice of the layer's O) it produces."""

    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    channels: slice


def lower(layer: IntLayer, codes: object) -> tuple[list[GemmOperands], tuple[int, ...]]:
    """Lower ``layer`` applied to input ``codes`` to GEMMs.

    Parameters
    ----------
    layer : IntLayer
    codes : int [B, I] (linear) or [B, C_in, H, W] (conv2d)
        Raw input codes in the layer's N-bit range.

    Returns
    -------
    gemms : list of GemmOperands
        One per group.
    out_shape : tuple
        ``(B, O)`` or ``(B, O, Ho, Wo)``: the shape :func:`run_layer` gives the accumulators.
    """
    x = torch.as_tensor(np.asarray(codes), dtype=torch.float64)
    o = layer.out_channels
    bias = layer.bias if layer.bias is not None else np.zeros(o, np.int64)
    wmat = layer.weight.reshape(o, -1)
    if layer.kind == "linear":
        if x.ndim != 2 or x.shape[1] != wmat.shape[1]:
            raise ValueError(f"layer {layer.name!r}: linear input must be [B, {wmat.shape[1]}], "
                             f"not {tuple(x.shape)}")
        xi = x.numpy().astype(np.int64)
        return [GemmOperands(xi, wmat.T.copy(), bias, slice(0, o))], (x.shape[0], o)
    if x.ndim != 4 or x.shape[1] != layer.in_channels:
        raise ValueError(f"layer {layer.name!r}: conv input must be [B, {layer.in_channels}, H, W], "
                         f"not {tuple(x.shape)}")
    ph, pw = layer.padding
    x = F.pad(x, (pw, pw, ph, ph), value=float(layer.input_zero_point))
    kh, kw = layer.kernel_size
    b, _, h, w_ = x.shape
    dh, dw = layer.dilation
    sh, sw = layer.stride
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (w_ - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"layer {layer.name!r}: input {tuple(x.shape)} (padded) is smaller than "
                         f"the {kh}x{kw} kernel with dilation {layer.dilation}")
    g, cg, og = layer.groups, layer.weight.shape[1], o // layer.groups
    gemms = []
    for gi in range(g):
        cols = F.unfold(x[:, gi * cg:(gi + 1) * cg], (kh, kw), dilation=(dh, dw), stride=(sh, sw))
        xi = cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy().astype(np.int64)
        sl = slice(gi * og, (gi + 1) * og)
        gemms.append(GemmOperands(xi, wmat[sl].T.copy(), bias[sl], sl))
    return gemms, (b, o, ho, wo)


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

    Returns the int64 accumulators shaped ``(B, O)`` or ``(B, O, Ho, Wo)``.
    """
    gemms, shape = lower(layer, codes)
    t = gemms[0].x.shape[0]
    acc = np.zeros((t, layer.out_channels), np.int64)
    results = []
    for op in gemms:
        if exact:
            acc[:, op.channels] = op.x @ op.w + op.bias
            continue
        r = gemm(op.x, op.w, config, op.bias)
        acc[:, op.channels] = r.y
        results.append(r)
    if len(shape) == 4:
        b, o, ho, wo = shape
        acc = acc.reshape(b, ho, wo, o).transpose(0, 3, 1, 2)
    return LayerRun(np.ascontiguousarray(acc), results)
