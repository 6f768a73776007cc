"""Exported integer models: a chain of :class:`~accel.layers.IntLayer` and code-domain ops.

:func:`export_int_model` turns a quantization-aware ``nn.Sequential`` (the reference networks of
``models/``) into an :class:`IntModel`: the integer layers, each with the :class:`Requant` to the
next quantized layer, plus a small graph of the operations between them (``relu``, ``maxpool2d``,
``flatten``). :meth:`IntModel.run` evaluates it the way the hardware would: raw input codes, every
layer lowered to GEMMs and computed by :func:`accel.golden.gemm`, requantization to the next
layer's codes, pooling on codes, the last layer's accumulators dequantised to logits.

Checkpoints are :func:`accel.layers.save_layers` files whose ``meta`` holds the graph, the OAQ
input clamps and the recipe (``load_int_model`` reads them back).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from accel.config import ArrayConfig
from accel.layers import IntLayer, LayerError, Requant, load_layers, save_layers
from accel.overq import OverQStats
from accel.quant.lowering import run_layer
from accel.quant.modules import QuantLayer

__all__ = ["IntModel", "LayerStats", "ModelRun", "export_int_model", "load_int_model"]

#: Modules allowed between two quantized layers of an exportable nn.Sequential.
_PASS = (nn.Identity, nn.Dropout)


def _op_of(mod: nn.Module, path: str) -> dict[str, Any] | None:
    if isinstance(mod, _PASS):
        return None
    if isinstance(mod, nn.ReLU):
        return {"op": "relu"}
    if isinstance(mod, nn.MaxPool2d):
        k, s = mod.kernel_size, mod.stride
        if mod.padding not in (0, (0, 0)) or mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
            raise ValueError(f"{path}: only unpadded, undilated max pooling is exportable")
        return {"op": "maxpool2d", "kernel": k, "stride": s}
    if isinstance(mod, nn.Flatten):
        return {"op": "flatten", "start_dim": mod.start_dim}
    raise ValueError(f"{path}: {type(mod).__name__} cannot be exported to an integer model; "
                     "supported between quantized layers: ReLU, MaxPool2d, Flatten, Identity, "
                     "Dropout")


def _flat_modules(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if isinstance(model, QuantLayer) or not isinstance(model, nn.Sequential):
        return [(prefix, model)]
    out = []
    for name, child in model.named_children():
        out += _flat_modules(child, f"{prefix}.{name}" if prefix else name)
    return out


def export_int_model(model: nn.Module) -> "IntModel":
    """Export a quantization-aware ``nn.Sequential`` to an :class:`IntModel` (module docstring)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"integer-model export needs an nn.Sequential, not {type(model).__name__}; "
                         "export single layers with QuantLayer.to_int_layer")
    items = _flat_modules(model)
    graph: list[dict[str, Any]] = []
    quant: list[tuple[str, QuantLayer]] = []
    for path, mod in items:
        if isinstance(mod, QuantLayer):
            graph.append({"op": "layer", "name": path})
            quant.append((path, mod))
        else:
            op = _op_of(mod, path)
            if op is not None:
                graph.append(op)
    if not quant:
        raise ValueError("model has no quantized layer to export")
    layers = []
    positions = [i for i, g in enumerate(graph) if g["op"] == "layer"]
    for idx, (path, mod) in enumerate(quant):
        rq = None
        if idx + 1 < len(quant):
            nxt = quant[idx + 1][1]
            between = graph[positions[idx] + 1:positions[idx + 1]]
            s_x = float(mod.act_quant.scale())
            s_w = mod.quantized_weight().scale.detach().numpy()
            s_y = float(nxt.act_quant.scale())
            rq = Requant(multiplier=(s_x * s_w / s_y).astype(np.float32), scale=s_y, zero_point=0,
                         out_bits=nxt.config.act_bits, out_signed=nxt.config.act_signed,
                         relu=any(g["op"] == "relu" for g in between), layer=path)
        layers.append(mod.to_int_layer(path, rq))
    clamps = {path: int(mod.act_quant.code_max) for path, mod in quant}
    return IntModel(layers=layers, graph=graph, input_clamps=clamps)


@dataclass(frozen=True)
class LayerStats:
    """Overflow statistics of one layer over one run."""

    name: str
    outputs: int
    pe_events: int
    acc_events: int
    affected: int
    #: OverQ encoder statistics of the layer's lanes (None without OverQ).
    overq: OverQStats | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if self.overq is None:
            del d["overq"]                    # plain runs keep the recorded checkpoint format
        else:
            d["overq"] = self.overq.to_dict()
        return d


@dataclass(frozen=True)
class ModelRun:
    """Logits (float32 [B, classes]) and per-layer overflow statistics of one :meth:`IntModel.run`."""

    logits: np.ndarray
    layers: list[LayerStats]


@dataclass
class IntModel:
    """An exported integer model (module docstring).

    Attributes
    ----------
    layers : list of IntLayer
    graph : list of dict
        ``{"op": "layer", "name": ...}``, ``{"op": "relu"}``, ``{"op": "maxpool2d", "kernel", "stride"}``,
        ``{"op": "flatten", "start_dim"}`` in execution order.
    input_clamps : dict
        Per layer, the highest input code (OAQ's ``c_x``; the full range otherwise). Requant
        clamps to the N-bit range; this clamp is applied after it.
    meta : dict
        Recipe, seed, accuracy, quantizer, report (JSON-able).
    """

    layers: list[IntLayer]
    graph: list[dict[str, Any]]
    input_clamps: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> IntLayer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no layer {name!r}; layers are {', '.join(l.name for l in self.layers)}")

    def _clamp(self, lay: IntLayer, codes: np.ndarray) -> np.ndarray:
        hi = self.input_clamps.get(lay.name, lay.input_range[1])
        lo = -(hi + 1) if lay.act_signed else 0
        return np.clip(codes, lo, hi)

    def run(self, x: np.ndarray, config: ArrayConfig, exact: bool = False) -> ModelRun:
        """Evaluate on real inputs ``x`` with ``config``'s arithmetic (P, Q, R, mode).

        ``config`` must have the layers' N, sign and M. ``exact=True`` uses exact int64 sums
        (no accumulator width), the reference for overflow effects.

        With OverQ the activations between layers keep their raw wide codes, so each layer's
        encoder sees the outliers: the requantization clamps to the raw lane range
        (``config.lane_bits``) instead of N bits (no input clamp applies) and, in the precision
        modes, keeps F = N fraction bits (``integer << F | fraction``, round half to even); each
        layer then counts in units of 2^-F (bias × 2^F, output scale / 2^F) and the image codes
        enter as ``code << F``. Per-layer encoder statistics are in ``ModelRun.layers[i].overq``.
        """
        state: np.ndarray = np.asarray(x, dtype=np.float32)
        is_codes = False
        stats = []
        for g in self.graph:
            if g["op"] == "layer":
                lay = self.layer(g["name"])
                codes = state if is_codes else lay.quantize_input(state)
                if config.overq is None or not is_codes:
                    codes = self._clamp(lay, codes) << config.frac_bits
                lay = _in_fraction_units(lay, config.frac_bits)
                run = run_layer(lay, codes, config, exact=exact)
                oq = run.overq
                stats.append(LayerStats(lay.name, int(run.acc.size), run.pe_events, run.acc_events,
                                        run.affected, sum(oq[1:], oq[0]) if oq else None))
                if lay.requant is not None:
                    rq = lay.requant
                    if config.overq is not None:      # keep the raw wide codes (SPEC section 4)
                        rq = dataclasses.replace(rq, out_bits=config.lane_bits, multiplier=(
                            rq.multiplier * (1 << config.frac_bits)).astype(np.float32))
                    state, is_codes = _requant(rq, run.acc), True
                else:
                    state = _dequant(lay, run.acc)
                    is_codes = False
            elif g["op"] == "relu":
                state = np.maximum(state, 0)
            elif g["op"] == "maxpool2d":
                t = torch.from_numpy(np.ascontiguousarray(state, dtype=np.float64))
                state = F.max_pool2d(t, g["kernel"], g["stride"]).numpy()
                state = state.astype(np.int64) if is_codes else state.astype(np.float32)
            elif g["op"] == "flatten":
                state = state.reshape(*state.shape[:g["start_dim"]], -1)
            else:
                raise LayerError(f"unknown graph op {g['op']!r} in integer model")
        if is_codes:
            raise LayerError("integer model ends in codes: its last layer needs requant = None")
        return ModelRun(np.asarray(state, dtype=np.float32), stats)

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> None:
        """Write a checkpoint (:func:`accel.layers.save_layers`) with graph and clamps in meta."""
        self.meta = {**self.meta, **(meta or {})}
        plain = json.loads(json.dumps({**self.meta, "graph": self.graph,
                                       "input_clamps": self.input_clamps}))  # plain JSON types
        save_layers(path, self.layers, plain)


def _in_fraction_units(lay: IntLayer, f: int) -> IntLayer:
    """``lay`` on inputs scaled by 2^f (OverQ precision lanes): bias × 2^f, output scale / 2^f."""
    if f == 0:
        return lay
    rq = lay.requant
    return dataclasses.replace(
        lay, bias=None if lay.bias is None else lay.bias << f, input_scale=lay.input_scale / (1 << f),
        requant=None if rq is None else dataclasses.replace(
            rq, multiplier=(rq.multiplier / (1 << f)).astype(np.float32)))


def _requant(rq: Requant, acc: np.ndarray) -> np.ndarray:
    moved = np.moveaxis(acc, 1, -1)
    return np.ascontiguousarray(np.moveaxis(rq.apply(moved), -1, 1))


def _dequant(lay: IntLayer, acc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(lay.dequantize_output(np.moveaxis(acc, 1, -1)), -1, 1))


def load_int_model(path: str | Path) -> IntModel:
    """Read a checkpoint written by :meth:`IntModel.save`; :class:`LayerError` if it is not one."""
    layers, meta = load_layers(path)
    meta = dict(meta)
    try:
        graph = meta.pop("graph")
        clamps = {str(k): int(v) for k, v in meta.pop("input_clamps").items()}
    except (KeyError, AttributeError, TypeError, ValueError):
        raise LayerError(f"checkpoint {path} holds integer layers but no integer-model graph "
                         "(graph and input_clamps in meta); write it with IntModel.save") from None
    return IntModel(layers=layers, graph=graph, input_clamps=clamps, meta=meta)
