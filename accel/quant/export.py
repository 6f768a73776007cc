"""Export of a quantization-aware model to the integer graph (:mod:`accel.graph`), exactly as its
forward pass computes.

The model is traced with ``torch.fx`` (:class:`~accel.quant.modules.QuantLayer` modules are
leaves). Each quantized layer becomes an array layer; its input quantizer
(:class:`~accel.quant.act.ActQuant`) becomes the requantization of the layer that feeds it
(``s_x * s_w / s_y`` in float64, stored as fp32; the quantizer's top code, OAQ's ``c_x``, as the
clamp) or, for a layer that reads the model input, the graph's input quantization (float64
division, half to even, as ActQuant computes it); a layer whose result reaches the model output is
dequantised to logits. ``ReLU``, ``MaxPool2d`` and flatten between layers become code-domain nodes;
``Identity`` and ``Dropout`` vanish. Each layer's result must reach one quantized layer (or the
output) through those: anything else is an error naming the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from accel.graph import Graph
from accel.layers import LayerError
from accel.nodes import (REAL, ArrayLayer, Clamp, Dequantize, Input, MaxPool, Node, Quantize,
                         Requantize, Reshape)
from accel.quant.modules import QuantLayer

__all__ = ["export_graph"]

SUPPORTED = "quantized layers with ReLU, MaxPool2d, Flatten / flatten, Identity, Dropout between them"


def _tracer() -> Any:
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, QuantLayer) or super().is_leaf_module(m, name)

    return Tracer()


def _kind(fx: Any, mods: dict[str, nn.Module]) -> str:
    """What a traced node is to the export: quant, relu, maxpool, flatten, pass, input, output."""
    import torch
    import torch.nn.functional as F

    if fx.op == "placeholder":
        return "input"
    if fx.op == "output":
        return "output"
    mod = mods.get(fx.target) if fx.op == "call_module" else None
    if isinstance(mod, QuantLayer):
        return "quant"
    if isinstance(mod, nn.ReLU) or fx.target in (torch.relu, F.relu, "relu"):
        return "relu"
    if isinstance(mod, nn.MaxPool2d):
        return "maxpool"
    if isinstance(mod, nn.Flatten) or fx.target in ("flatten", torch.flatten):
        return "flatten"
    if isinstance(mod, (nn.Identity, nn.Dropout)):
        return "pass"
    what = type(mod).__name__ if mod is not None else str(fx.target)
    name = fx.target if mod is not None else fx.name
    raise LayerError(f"node {name!r} ({fx.op} {what}) cannot be exported to an integer graph; "
                     f"supported: {SUPPORTED}")


def _consumer(fx: Any, mods: dict[str, nn.Module]) -> Any:
    """The quantized layer (or the output) a layer's result reaches through code-domain ops."""
    node = fx
    while True:
        users = list(node.users)
        if len(users) != 1:
            raise LayerError(f"node {fx.name!r}: its result reaches {len(users)} nodes; each "
                             "quantized layer must feed one quantized layer or the output")
        node = users[0]
        if _kind(node, mods) in ("quant", "output"):
            return node


def export_graph(model: nn.Module, meta: dict[str, Any] | None = None) -> Graph:
    """The integer graph of a quantization-aware model (module docstring)."""
    import torch.fx

    try:
        traced = torch.fx.GraphModule(model, _tracer().trace(model))
    except Exception as e:  # tracing failures come in many types
        raise LayerError(f"torch.fx cannot trace the model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); supported: {SUPPORTED}") from None
    mods = dict(traced.named_modules())
    if not any(isinstance(m, QuantLayer) for m in mods.values()):
        raise ValueError("model has no quantized layer to export")
    nodes: list[Node] = []
    types: dict[str, Any] = {}
    value: dict[str, str] = {}
    outputs: list[str] = []

    def emit(node: Node) -> str:
        types[node.name] = node.out_type([types[i] for i in node.inputs])
        nodes.append(node)
        return node.name

    for fx in traced.graph.nodes:
        kind = _kind(fx, mods)
        prev = value.get(fx.args[0].name) if fx.args and hasattr(fx.args[0], "name") else None
        if kind == "input":
            value[fx.name] = emit(Input(name="input"))
            continue
        if kind == "output":
            out = fx.args[0]
            outputs = [value[o.name] for o in (out if isinstance(out, (tuple, list)) else [out])]
            continue
        if kind == "pass":
            value[fx.name] = prev
            continue
        name = fx.target if fx.op == "call_module" else fx.name
        if kind == "quant":
            mod = mods[fx.target]
            if types[prev] == REAL:      # the model input (reshaped, maybe): its quantizer
                aq = mod.act_quant
                prev = emit(Quantize(name=f"{name}.quantize", inputs=(prev,),
                                     scale=float(aq.scale()), zero_point=0, bits=aq.bits,
                                     signed=aq.signed, lo=aq.code_min, hi=int(aq.code_max)))
            lay = mod.to_int_layer(name)
            emit(ArrayLayer(name=name, inputs=(prev,), layer=lay))
            axis = 1 if lay.kind == "conv2d" else -1
            nxt = _consumer(fx, mods)
            if nxt.op == "output":
                emit(Dequantize(name=f"{name}.dequantize", inputs=(name,),
                                        scale=lay.acc_scale, axis=axis))
            else:
                aq = mods[nxt.target].act_quant
                s_y = float(aq.scale())
                s_w = mod.quantized_weight().scale.detach().numpy()
                emit(Requantize(name=f"{name}.requantize", inputs=(name,),
                                        multiplier=(lay.input_scale * s_w / s_y).astype(np.float32),
                                        scale=s_y, zero_point=0, bits=aq.bits, signed=aq.signed,
                                        lo=aq.code_min, hi=int(aq.code_max), axis=axis))
        elif kind == "relu":
            emit(Clamp(name=name, inputs=(prev,), lo=0))      # codes with zero point 0
        elif kind == "maxpool":
            mp = mods[fx.target]
            if mp.dilation not in (1, (1, 1)):
                raise LayerError(f"node {fx.name!r}: dilated max pooling is not exportable")
            emit(MaxPool(name=name, inputs=(prev,), kernel=mp.kernel_size, stride=mp.stride,
                                 padding=mp.padding, ceil_mode=mp.ceil_mode))
        else:                                                           # flatten
            start = (mods[fx.target].start_dim if fx.op == "call_module"
                     else (fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("start_dim", 0)))
            if start != 1:
                raise LayerError(f"node {fx.name!r}: flatten from dimension {start} is not "
                                 "exportable (only 1: keep the batch)")
            emit(Reshape(name=name, inputs=(prev,), shape=(-1,)))
        value[fx.name] = nodes[-1].name
    return Graph(nodes, outputs, meta)
