"""Export of a quantization-aware model to the integer graph (:mod:`accel.graph`), as its forward
pass computes.

The model is traced with ``torch.fx`` (:class:`~accel.quant.modules.QuantLayer` and
:class:`~accel.quant.modules.QuantAdd` modules are leaves). One activation quantizer
(:class:`~accel.quant.act.ActQuant`) stands for one code tensor:

* a quantized layer becomes an array layer; its result is requantized to the quantizer of what
  reads it (``s_x * s_w / s_y`` in float64, stored as fp32; the quantizer's top code, OAQ's
  ``c_x``, as the clamp), or dequantised to logits when it reaches the model output;
* a layer (or addition) that reads the model input gets the graph's input quantization (float64
  division, half to even, as ActQuant computes it);
* a residual addition becomes :class:`~accel.nodes.Add` of its two inputs' codes, requantized to
  the quantizer of what reads the sum (``s_a / s_y``, ``s_b / s_y``);
* ``ReLU``, ``MaxPool2d``, average pooling (global too) and flatten between them are code-domain
  nodes (the pooling keeps its input's scale); ``Identity`` and ``Dropout`` vanish.

Everything a result reaches through those ops must read it with one quantizer (the quantizer
sharing of :func:`accel.quant.convert.quantize_model` sees to it); anything else is an error naming
the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from accel.graph import Graph
from accel.layers import LayerError
from accel.nodes import (REAL, Add, ArrayLayer, AvgPool, Clamp, Dequantize, Input, MaxPool, Node,
                         Quantize, Requantize, Reshape)
from accel.quant.act import ActQuant
from accel.quant.modules import QuantAdd, QuantLayer

__all__ = ["export_graph", "tracer"]

SUPPORTED = ("quantized layers and residual additions with ReLU, MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d(1), Flatten / flatten, Identity, Dropout between them")
#: Code-domain operations between quantized layers.
_HOST = ("relu", "maxpool", "avgpool", "flatten", "pass")


def tracer() -> Any:
    """A ``torch.fx`` tracer that keeps quantized layers, additions and quantizers as leaves."""
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, (QuantLayer, QuantAdd, ActQuant)) or super().is_leaf_module(m, name)

    return Tracer()


def _kind(fx: Any, mods: dict[str, nn.Module]) -> str:
    """What a traced node is to the export (module docstring)."""
    import torch
    import torch.nn.functional as F

    if fx.op in ("placeholder", "output"):
        return "input" if fx.op == "placeholder" else "output"
    mod = mods.get(fx.target) if fx.op == "call_module" else None
    if isinstance(mod, QuantLayer):
        return "quant"
    if isinstance(mod, QuantAdd):
        return "add"
    if isinstance(mod, nn.ReLU) or fx.target in (torch.relu, F.relu, "relu"):
        return "relu"
    if isinstance(mod, nn.MaxPool2d):
        return "maxpool"
    if isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "avgpool"
    if isinstance(mod, nn.Flatten) or fx.target in ("flatten", torch.flatten):
        return "flatten"
    if isinstance(mod, (nn.Identity, nn.Dropout, ActQuant)):
        return "pass"                       # (an activation quantizer: codes are quantized)
    what = type(mod).__name__ if mod is not None else str(fx.target)
    name = fx.target if mod is not None else fx.name
    raise LayerError(f"node {name!r} ({fx.op} {what}) cannot be exported to an integer graph; "
                     f"supported: {SUPPORTED}")


def _target(fx: Any, mods: dict[str, nn.Module]) -> Any:
    """The quantizer that reads ``fx``'s result through code-domain ops (None: the output)."""
    found: dict[int, Any] = {}
    stack = [fx]
    while stack:
        node = stack.pop()
        for user in node.users:
            kind = _kind(user, mods)
            if kind in _HOST:
                stack.append(user)
            elif kind == "output":
                found[0] = None
            elif kind == "quant":
                aq = mods[user.target].act_quant
                found[id(aq)] = aq
            else:                                          # an addition: its input's quantizer
                add = mods[user.target]
                for i, a in enumerate(user.args[:2]):
                    if a is node:
                        aq = (add.act_a, add.act_b)[i]
                        found[id(aq)] = aq
    if len(found) != 1:
        what = "nothing" if not found else f"{len(found)} different quantizers (or the output)"
        raise LayerError(f"node {fx.name!r}: its result is read by {what}; every reader of one "
                         "tensor must share one quantizer (quantize_model shares them)")
    return next(iter(found.values()))


def export_graph(model: nn.Module, meta: dict[str, Any] | None = None) -> Graph:
    """The integer graph of a quantization-aware model (module docstring)."""
    import torch.fx

    try:
        traced = torch.fx.GraphModule(model, tracer().trace(model))
    except Exception as e:  # tracing failures come in many types
        raise LayerError(f"torch.fx cannot trace the model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); supported: {SUPPORTED}") from None
    mods = dict(traced.named_modules())
    if not any(isinstance(m, QuantLayer) for m in mods.values()):
        raise ValueError("model has no quantized layer to export")
    nodes: list[Node] = []
    types: dict[str, Any] = {}
    value: dict[str, str] = {}
    quantized: dict[int, str] = {}          # id of an input's quantizer -> its Quantize node
    outputs: list[str] = []

    def emit(node: Node) -> str:
        types[node.name] = node.out_type([types[i] for i in node.inputs])
        nodes.append(node)
        return node.name

    def codes(src: str, aq: Any, name: str) -> str:
        """``src`` as codes of ``aq``: the input quantized, or codes already of that scale."""
        if types[src] != REAL:
            return src
        if id(aq) not in quantized:
            quantized[id(aq)] = emit(Quantize(name=f"{name}.quantize", inputs=(src,),
                                              scale=float(aq.scale()), zero_point=0, bits=aq.bits,
                                              signed=aq.signed, lo=aq.code_min, hi=int(aq.code_max)))
        return quantized[id(aq)]

    def requant(src: str, name: str, s_in: np.ndarray, aq: Any, axis: int) -> str:
        s_y = float(aq.scale())
        return emit(Requantize(name=f"{name}.requantize", inputs=(src,),
                               multiplier=(s_in / s_y).astype(np.float32), scale=s_y, zero_point=0,
                               bits=aq.bits, signed=aq.signed, lo=aq.code_min,
                               hi=int(aq.code_max), axis=axis))

    for fx in traced.graph.nodes:
        kind = _kind(fx, mods)
        args = [value[a.name] for a in fx.args if hasattr(a, "name") and a.name in value]
        name = fx.target if fx.op == "call_module" else fx.name
        if kind == "input":
            value[fx.name] = emit(Input(name="input"))
            continue
        if kind == "output":
            out = fx.args[0]
            outputs = [value[o.name] for o in (out if isinstance(out, (tuple, list)) else [out])]
            continue
        if kind == "pass":
            value[fx.name] = args[0]
            continue
        if kind == "quant":
            mod = mods[fx.target]
            lay = mod.to_int_layer(name)
            emit(ArrayLayer(name=name, inputs=(codes(args[0], mod.act_quant, name),), layer=lay))
            axis = 1 if lay.kind == "conv2d" else -1
            aq = _target(fx, mods)
            if aq is None:
                emit(Dequantize(name=f"{name}.dequantize", inputs=(name,), scale=lay.acc_scale,
                                axis=axis))
            else:
                s_w = mod.quantized_weight().scale.detach().numpy().astype(np.float64)
                requant(name, name, lay.input_scale * s_w, aq, axis)
        elif kind == "add":
            add, aq = mods[fx.target], _target(fx, mods)
            if aq is None:
                raise LayerError(f"node {name!r}: a residual sum that reaches the model output "
                                 "unquantized is not exportable")
            a, b = codes(args[0], add.act_a, f"{name}.a"), codes(args[1], add.act_b, f"{name}.b")
            s_y = float(aq.scale())
            emit(Add(name=name, inputs=(a, b), multipliers=(float(add.act_a.scale()) / s_y,
                                                            float(add.act_b.scale()) / s_y),
                     scale=s_y, bits=aq.bits, signed=aq.signed, lo=aq.code_min,
                     hi=int(aq.code_max)))
        elif kind == "relu":
            emit(Clamp(name=name, inputs=(args[0],), lo=0))       # codes with zero point 0
        elif kind == "maxpool":
            mp = mods[fx.target]
            if mp.dilation not in (1, (1, 1)):
                raise LayerError(f"node {name!r}: dilated max pooling is not exportable")
            emit(MaxPool(name=name, inputs=(args[0],), kernel=mp.kernel_size, stride=mp.stride,
                         padding=mp.padding, ceil_mode=mp.ceil_mode))
        elif kind == "avgpool":
            emit(_avgpool(mods[fx.target], name, args[0], types[args[0]]))
        else:                                                           # flatten
            start = (mods[fx.target].start_dim if fx.op == "call_module"
                     else (fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("start_dim", 0)))
            if start != 1:
                raise LayerError(f"node {name!r}: flatten from dimension {start} is not "
                                 "exportable (only 1: keep the batch)")
            emit(Reshape(name=name, inputs=(args[0],), shape=(-1,)))
        value[fx.name] = nodes[-1].name
    return Graph(nodes, outputs, meta)


def _avgpool(mod: nn.Module, name: str, src: str, t: Any) -> AvgPool:
    """Average pooling on codes, keeping their scale (the sum rescaled by 1 / window)."""
    common = dict(name=name, inputs=(src,), multiplier=1.0, scale=float(t.scale[0]), bits=t.bits,
                  signed=t.signed)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        if mod.output_size not in (1, (1, 1)):
            raise LayerError(f"node {name!r}: adaptive average pooling to {mod.output_size} is not "
                             "exportable (only 1: global)")
        return AvgPool(global_pool=True, **common)
    if mod.divisor_override is not None:
        raise LayerError(f"node {name!r}: average pooling with divisor_override is not exportable")
    return AvgPool(kernel=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                   ceil_mode=mod.ceil_mode, count_include_pad=mod.count_include_pad, **common)
