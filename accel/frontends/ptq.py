"""Float PyTorch models quantized here: post-training quantization to an integer graph.

:func:`from_float` traces a float ``nn.Module`` with ``torch.fx``, runs it once on calibration
inputs to see the range of every tensor, and builds the integer graph:

* every tensor a quantized operation reads gets codes of ``act_bits`` bits: unsigned with scale
  ``max / (2^N - 1)`` when it never goes negative (ReLU outputs, images), else signed symmetric
  with scale ``max|x| / (2^(N-1) - 1)``; zero point 0 (max calibration);
* ``nn.Conv2d`` / ``nn.Linear`` become array layers: integer weights from the module's
  ``int_weight`` and ``weight_scale`` attributes when it has them (networks that are integer by
  construction, like the built-in random-weight references), else symmetric per-channel
  ``weight_bits``-bit weights ``round(w / s)`` with ``s = max|w| / (2^(M-1) - 1)``; the bias
  ``round(b / (s_x s_w))`` in the accumulator; a following ReLU is fused into the requantization;
* additions of two tensors (residual blocks) become :class:`~accel.nodes.Add` (a ReLU after it
  fused), average pooling (global too) :class:`~accel.nodes.AvgPool`, ``MaxPool2d``, ``ReLU``,
  ``cat`` and flatten / reshape their nodes; what reaches the model's output is dequantised.

Anything else is an error naming the node, its op and what is supported.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from accel.arith import code_range
from accel.graph import Graph
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.nodes import (Add, ArrayLayer, AvgPool, Clamp, Concat, Dequantize, Input, IntType,
                         MaxPool, Node, Quantize, Requantize, Reshape)

__all__ = ["from_float", "SUPPORTED"]

SUPPORTED = ("Conv2d, Linear, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), + / torch.add, "
             "torch.cat, flatten / reshape / view")


def _is(fx: Any, mods: dict[str, Any], *types: type) -> bool:
    return fx.op == "call_module" and isinstance(mods[fx.target], types)


def _is_relu(fx: Any, mods: dict[str, Any]) -> bool:
    import torch
    import torch.nn.functional as F

    return _is(fx, mods, torch.nn.ReLU) or (fx.op in ("call_function", "call_method")
                                            and fx.target in (torch.relu, F.relu, "relu"))


def _is_add(fx: Any) -> bool:
    import torch

    return (fx.op == "call_function" and fx.target in (operator.add, torch.add)) or \
        (fx.op == "call_method" and fx.target == "add")


def _ranges(traced: Any, x: Any) -> dict[str, tuple[float, float]]:
    """Smallest and largest value of every traced node's output on the calibration input."""
    import torch
    import torch.fx

    seen: dict[str, tuple[float, float]] = {}

    class Observer(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
                seen[n.name] = (float(out.min()), float(out.max()))
            return out

    with torch.no_grad():
        Observer(traced).run(x)
    return seen


class _Builder:
    """The graph under construction: nodes, and the codes type of each fx value."""

    def __init__(self, act_bits: int, weight_bits: int, ranges: dict[str, tuple[float, float]]):
        self.n, self.m, self.ranges = act_bits, weight_bits, ranges
        self.nodes: list[Node] = []
        self.value: dict[str, str] = {}          # fx node -> graph node holding its value

    def codes(self, fx_name: str) -> tuple[float, bool]:
        """``(scale, signed)`` of the codes of a traced value (max calibration)."""
        lo, hi = self.ranges.get(fx_name, (0.0, 0.0))
        signed = lo < 0
        top = code_range(self.n, signed)[1]
        return max(max(hi, -lo), 1e-12) / top, signed


def _weights(mod: Any, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights and per-channel scales of a float conv / linear module."""
    q = getattr(mod, "int_weight", None)
    if q is not None:
        return np.asarray(q, np.int64), np.asarray(mod.weight_scale, np.float64)
    w = mod.weight.detach().double().numpy()
    top = code_range(bits, True)[1]
    scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / top
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -top, top).astype(np.int64)
    return q, scale


def from_float(model: Any, calibration: Any, act_bits: int = 8, weight_bits: int = 8) -> Graph:
    """The integer graph of float ``model`` calibrated on ``calibration`` (module docstring)."""
    import torch
    import torch.fx
    import torch.nn.functional as F

    try:
        traced = torch.fx.symbolic_trace(model.eval())
    except Exception as e:  # tracing failures come in many types
        raise LayerError(f"torch.fx cannot trace the model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); supported: {SUPPORTED}") from None
    x = calibration if isinstance(calibration, torch.Tensor) else torch.from_numpy(np.asarray(calibration))
    ranges = _ranges(traced, x.float())
    mods = dict(traced.named_modules())
    b = _Builder(act_bits, weight_bits, ranges)
    types: dict[str, Any] = {}

    def emit(node: Node) -> str:
        types[node.name] = node.out_type([types[i] for i in node.inputs])
        b.nodes.append(node)
        return node.name

    def only_user(fx: Any) -> Any:
        users = list(fx.users)
        return users[0] if len(users) == 1 else None

    def requant_to(src: str, fx_out: str, name: str, relu: bool) -> str:
        """Codes of the traced value ``fx_out`` from the integers of graph node ``src``."""
        s_y, signed = b.codes(fx_out)
        t = types[src]
        mult = (t.scale / s_y).astype(np.float32)
        return emit(Requantize(name=name, inputs=(src,), multiplier=mult, scale=s_y, zero_point=0,
                               bits=act_bits, signed=signed, lo=0 if relu else None,
                               input_zero_point=t.zero_point, axis=t.axis))

    skip: set[str] = set()
    outputs: list[str] = []
    for fx in traced.graph.nodes:
        if fx.name in skip:
            continue
        args = [b.value[a.name] for a in fx.args if hasattr(a, "name") and a.name in b.value]
        name = fx.target if fx.op == "call_module" else fx.name
        if any(n.name == name for n in b.nodes):
            name = fx.name
        user = only_user(fx)
        fuse = user is not None and _is_relu(user, mods)
        out_fx = user.name if fuse else fx.name
        if fx.op == "placeholder":
            emit(Input(name=fx.name))
            s, signed = b.codes(fx.name)
            b.value[fx.name] = emit(Quantize(name=f"{fx.name}.quantize", inputs=(fx.name,), scale=s,
                                             bits=act_bits, signed=signed))
            continue
        if fx.op == "output":
            out = fx.args[0]
            for o in out if isinstance(out, (tuple, list)) else [out]:
                src = b.value[o.name]
                t = types[src]
                if isinstance(t, IntType):
                    src = emit(Dequantize(name=f"{src}.dequantize", inputs=(src,), scale=t.scale,
                                          zero_point=t.zero_point, axis=t.axis))
                outputs.append(src)
            continue
        if _is(fx, mods, torch.nn.Conv2d, torch.nn.Linear):
            mod = mods[fx.target]
            t = types[args[0]]
            q, s_w = _weights(mod, weight_bits)
            bias = None
            if mod.bias is not None:
                bias = np.rint(mod.bias.detach().double().numpy() / (t.scale[0] * s_w)).astype(np.int64)
            common = dict(name=name, weight=q, weight_scale=s_w, input_scale=float(t.scale[0]),
                          input_zero_point=t.zero_point, act_bits=t.bits, act_signed=t.signed,
                          weight_bits=weight_bits, bias=fold_zero_point(bias, q, t.zero_point))
            if isinstance(mod, torch.nn.Conv2d):
                if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                    raise LayerError(f"node {fx.name!r}: only explicit zero padding is supported")
                layer = IntLayer(kind="conv2d", stride=mod.stride, padding=mod.padding,
                                 dilation=mod.dilation, groups=mod.groups, **common)
            else:
                layer = IntLayer(kind="linear", **common)
            acc = emit(ArrayLayer(name=name, inputs=(args[0],), layer=layer))
            if user is not None and user.op == "output":
                b.value[fx.name] = acc                   # dequantised at the output
                continue
            b.value[out_fx] = requant_to(acc, out_fx, f"{name}.requantize", fuse)
            if fuse:
                skip.add(user.name)
            continue
        if _is_add(fx):
            if len(args) != 2:
                raise LayerError(f"node {fx.name!r}: an addition of two tensors is supported, "
                                 f"not {fx.args!r}")
            ta, tb = types[args[0]], types[args[1]]
            s_y, signed = b.codes(out_fx)
            b.value[out_fx] = emit(Add(name=name, inputs=tuple(args),
                                       multipliers=(ta.scale[0] / s_y, tb.scale[0] / s_y),
                                       input_zero_points=(ta.zero_point, tb.zero_point), scale=s_y,
                                       bits=act_bits, signed=signed, lo=0 if fuse else None))
            if fuse:
                skip.add(user.name)
            continue
        if _is_relu(fx, mods):
            b.value[fx.name] = emit(Clamp(name=name, inputs=(args[0],), lo=types[args[0]].zero_point))
            continue
        if _is(fx, mods, torch.nn.MaxPool2d):
            mod = mods[fx.target]
            b.value[fx.name] = emit(MaxPool(name=name, inputs=(args[0],), kernel=mod.kernel_size,
                                            stride=mod.stride, padding=mod.padding,
                                            ceil_mode=mod.ceil_mode))
            continue
        pool = None
        if _is(fx, mods, torch.nn.AdaptiveAvgPool2d):
            size = mods[fx.target].output_size
            if size not in (1, (1, 1)):
                raise LayerError(f"node {fx.name!r}: adaptive average pooling to {size} is not "
                                 "supported (only 1: global)")
            pool = dict(global_pool=True)
        elif fx.op == "call_function" and fx.target is F.adaptive_avg_pool2d and fx.args[1] in (1, (1, 1)):
            pool = dict(global_pool=True)
        elif _is(fx, mods, torch.nn.AvgPool2d):
            mod = mods[fx.target]
            pool = dict(kernel=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                        ceil_mode=mod.ceil_mode, count_include_pad=mod.count_include_pad)
        if pool is not None:
            t = types[args[0]]
            s_y, signed = b.codes(fx.name)
            b.value[fx.name] = emit(AvgPool(name=name, inputs=(args[0],), multiplier=t.scale[0] / s_y,
                                            scale=s_y, bits=act_bits, signed=signed,
                                            input_zero_point=t.zero_point, **pool))
            continue
        if (fx.op == "call_method" and fx.target in ("flatten", "view", "reshape")) or \
                (fx.op == "call_function" and fx.target in (torch.flatten, torch.reshape)):
            from accel.frontends.torch_ao import _reshape_shape

            b.value[fx.name] = emit(Reshape(name=name, inputs=(args[0],), shape=_reshape_shape(fx)))
            continue
        if _is(fx, mods, torch.nn.Flatten):
            b.value[fx.name] = emit(Reshape(name=name, inputs=(args[0],), shape=(-1,)))
            continue
        if fx.op == "call_function" and fx.target is torch.cat:
            parts = [b.value[a.name] for a in fx.args[0]]
            s_y, signed = b.codes(fx.name)
            want = IntType(np.array([s_y]), 0, act_bits, signed)
            ins = [p if types[p].same_codes(want) else requant_to(p, fx.name, f"{name}.in{i}", False)
                   for i, p in enumerate(parts)]
            axis = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("dim", 0)
            b.value[fx.name] = emit(Concat(name=name, inputs=tuple(ins), axis=axis))
            continue
        if _is(fx, mods, torch.nn.Identity, torch.nn.Dropout):
            b.value[fx.name] = args[0]
            continue
        what = type(mods[fx.target]).__name__ if fx.op == "call_module" else str(fx.target)
        raise LayerError(f"node {name!r} ({fx.op} {what}) cannot be quantized to the integer "
                         f"graph; supported: {SUPPORTED}")
    return Graph(b.nodes, outputs, {"frontend": "ptq", "act_bits": act_bits,
                                    "weight_bits": weight_bits})
