"""torchao pt2e quantized programs (``prepare_pt2e`` / ``convert_pt2e``) as integer graphs.

A converted pt2e program is an exported ATen graph in which every quantized tensor is a
``quantized_decomposed.quantize_per_tensor`` node followed by ``dequantize_per_tensor``, and the
operations between them run in fp32 on dequantized values: ``conv2d`` / ``linear`` on
dequantized activations and weights (``dequantize_per_channel`` of int8 constants) with a float
bias, ``relu``, ``add``, ``max_pool2d``, ``flatten``. :func:`from_pt2e` reads each quantize node
and the float expression that feeds it and emits the integer nodes that compute the same codes:

* ``quantize(x)`` of the program's input: :class:`~accel.nodes.Quantize` mode ``f32_mul_inv``
  (``round(x * fp32(1 / s)) + z``, half to even, as the decomposed op computes it);
* ``quantize([relu](conv2d | linear(dq(x), dq(w), b)))``: an array layer on the raw codes (zero
  point folded into the integer bias) and a :class:`~accel.nodes.Requantize` of order
  ``mul_add``, ``fp32(acc) * fp32(s_x s_w / s_y) + fp32(b / s_y)``, the float bias kept as the
  program adds it (outside the array); a fused ReLU clamps at the zero point;
* ``quantize([relu](dq(a) + dq(b)))``: :class:`~accel.nodes.Add` mode ``dequant_mul``, exactly the
  decomposed ops' fp32 arithmetic;
* ``quantize(max_pool2d | flatten | relu(dq(x)))`` with the input's own parameters: the integer
  max pool, reshape or clamp (exact);
* a float output ``dq(codes)``: :class:`~accel.nodes.Dequantize` mode ``f32``; a float output of a
  layer (no quantize after it, X86InductorQuantizer's last linear): the accumulator dequantised,
  the float bias folded into the integer bias as ``round(b / (s_x s_w))``.

What is exact: the codes of every quantize node fed by integer ops (input, add, pooling, reshape)
are the program's own. A layer's float conv sums rounded fp32 products, so its requantized codes
equal the program's except where that rounding crosses a rounding boundary (measured: 10 to 11
codes in 2 to 3 million, each off by one, fed the program's own input codes); float outputs
agree within one step of their scale. The reference,
:func:`reference`, is the converted program's own forward.

Anything else (a float op the quantizer left between quantized tensors, an unquantized path, an
op without an integer meaning) is a :class:`~accel.layers.LayerError` that names the node, its
op and what is supported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accel.frontends.values import Accumulator, Codes, recording_run
from accel.graph import Graph
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.nodes import (Add, ArrayLayer, Clamp, Dequantize, Input, MaxPool, Node, Quantize,
                         Requantize, Reshape)

__all__ = ["SEMANTICS", "SUPPORTED", "from_pt2e", "reference", "load", "register_ops"]

SEMANTICS = ("pt2e: decomposed quantize/dequantize replicated (round(x * fp32(1/s)) + z, fp32 "
             "dequantize, fp32 adds); layers as exact accumulators with the float bias after them")
SUPPORTED = ("quantize_per_tensor / dequantize_per_tensor (uint8, int8), dequantize_per_channel "
             "weights, conv2d, linear, relu, add, max_pool2d, flatten / view / reshape")


def register_ops() -> None:
    """Register torch's ``quantized_decomposed`` ops (needed before loading a saved program)."""
    from torch.ao.quantization.fx._decomposed import quantized_decomposed_lib  # noqa: F401


@dataclass
class _Sum:
    """``dq(a) + dq(b)`` in fp32 (a residual add)."""

    a: Codes
    b: Codes
    relu: bool = False


def _ops() -> dict[str, Any]:
    import torch

    register_ops()
    qd, aten = torch.ops.quantized_decomposed, torch.ops.aten
    return {"q": {qd.quantize_per_tensor.default}, "dq": {qd.dequantize_per_tensor.default},
            "dqc": {qd.dequantize_per_channel.default},
            "conv": {aten.conv2d.default}, "linear": {aten.linear.default},
            "relu": {aten.relu.default, aten.relu_.default},
            "add": {aten.add.Tensor}, "maxpool": {aten.max_pool2d.default},
            "reshape": {aten.flatten.using_ints, aten.view.default, aten.reshape.default}}


def _attr(gm: Any, node: Any) -> Any:
    t = gm
    for part in node.target.split("."):
        t = getattr(t, part)
    return t


def _module_path(fx: Any) -> str | None:
    """The model path of the module that made an exported node (``b1.c1``), if recorded."""
    stack = fx.meta.get("nn_module_stack")
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return path.replace("L['self'].", "").replace("L__self___", "") or None


def _bits(qmin: int, qmax: int, dtype: Any, where: str) -> tuple[int, bool]:
    import torch

    if dtype == torch.uint8:
        return 8, False
    if dtype == torch.int8:
        return 8, True
    raise LayerError(f"{where}: quantized dtype {dtype} is not supported (uint8 or int8)")


def from_pt2e(program: Any) -> Graph:
    """The integer graph of a converted pt2e program (module docstring).

    ``program`` is the ``torch.fx.GraphModule`` that ``convert_pt2e`` returns, or an
    ``ExportedProgram`` of it (``torch.export.export`` / ``torch.export.load``).
    """
    import torch

    gm = program.module() if hasattr(program, "module") and not isinstance(
        program, torch.nn.Module) else program
    ops = _ops()
    kind = {t: k for k, ts in ops.items() for t in ts}
    nodes: list[Node] = []
    val: dict[str, Any] = {}          # fx node name -> "real" graph node | Codes | Accumulator | _Sum | weight
    names: set[str] = set()
    qmap: dict[str, str] = {}         # fx quantize node -> graph node of its codes
    outputs: list[str] = []

    def unique(base: str) -> str:
        name, i = base, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        return name

    def emit(node: Node) -> str:
        nodes.append(node)
        return node.name

    def codes_of(fx: Any, arg: Any) -> Codes:
        v = val.get(getattr(arg, "name", None))
        if not isinstance(v, Codes):
            raise LayerError(f"node {fx.name!r} ({fx.target}): its input {arg} is not a "
                             f"dequantized tensor (float values the quantizer left "
                             f"unquantized); supported: {SUPPORTED}")
        return v

    for fx in gm.graph.nodes:
        k = kind.get(fx.target) if fx.op == "call_function" else None
        if fx.op == "placeholder":
            if any(isinstance(n, Input) for n in nodes):
                raise LayerError(f"node {fx.name!r}: the program takes more than one input")
            val[fx.name] = emit(Input(name=unique(fx.name)))
        elif fx.op == "get_attr":
            val[fx.name] = _attr(gm, fx)
        elif fx.op == "call_module" and fx.target.startswith("_guards"):
            continue
        elif k == "dqc" or (k == "dq" and fx.args[0].op == "get_attr"):
            w = _attr(gm, fx.args[0])                    # a weight: int8 constant
            if k == "dqc":
                _, scales, zps, axis, qmin, qmax, _ = fx.args[:7]
                scales, zps = _attr(gm, scales), _attr(gm, zps)
                if axis != 0:
                    raise LayerError(f"node {fx.name!r}: per-channel weights along axis {axis} "
                                     "are not supported (axis 0: output channels)")
            else:
                _, scales, zps, qmin, qmax = fx.args[:5]
            val[fx.name] = ("weight", np.asarray(w.int_repr() if w.is_quantized else w).astype(
                np.int64), np.atleast_1d(np.asarray(scales, np.float64)),
                np.atleast_1d(np.asarray(zps)), int(qmin), int(qmax))
        elif k == "dq":
            src = val.get(fx.args[0].name)
            s, z = float(fx.args[1]), int(fx.args[2])
            if not isinstance(src, str) or src not in qmap.values():
                raise LayerError(f"node {fx.name!r}: dequantize of something other than a "
                                 "quantize node's codes")
            val[fx.name] = Codes(src, s, z)
        elif k in ("conv", "linear"):
            x = codes_of(fx, fx.args[0])
            wv = val.get(fx.args[1].name)
            if not (isinstance(wv, tuple) and wv[0] == "weight"):
                raise LayerError(f"node {fx.name!r} ({fx.target}): weights must be a "
                                 "dequantized int8 constant (convert_pt2e folds them)")
            _, w, ws, wz, wmin, wmax = wv
            b = fx.args[2] if len(fx.args) > 2 else None
            bias = None if b is None else np.asarray(val[b.name].detach(), np.float32)
            name = unique(_module_path(fx) or fx.name)
            tq = _node_type(nodes, x.node)
            common = dict(name=name, weight=w, weight_scale=ws, weight_zero_point=wz,
                          input_scale=x.scale, input_zero_point=x.zero_point,
                          act_bits=tq.bits, act_signed=tq.signed,
                          weight_bits=max(-wmin - 1, wmax).bit_length() + 1,
                          bias=fold_zero_point(None, w, x.zero_point))
            if k == "linear":
                layer = IntLayer(kind="linear", **common)
            else:
                a = list(fx.args[3:]) + [None] * 4
                layer = IntLayer(kind="conv2d", stride=a[0] or 1, padding=a[1] or 0,
                                 dilation=a[2] or 1, groups=a[3] or 1, **common)
            emit(ArrayLayer(name=name, inputs=(x.node,), layer=layer))
            val[fx.name] = Accumulator(name, layer, bias)
        elif k == "relu":
            src = val.get(fx.args[0].name)
            if isinstance(src, (Accumulator, _Sum)):
                val[fx.name] = type(src)(**{**src.__dict__, "relu": True})
            elif isinstance(src, Codes):
                name = emit(Clamp(name=unique(fx.name), inputs=(src.node,), lo=src.zero_point))
                val[fx.name] = Codes(name, src.scale, src.zero_point)
            else:
                raise LayerError(f"node {fx.name!r} (relu) on values that are not quantized; "
                                 f"supported: {SUPPORTED}")
        elif k == "add":
            if len(fx.args) != 2 or fx.kwargs.get("alpha", 1) != 1:
                raise LayerError(f"node {fx.name!r}: add with a scalar or alpha is not supported")
            val[fx.name] = _Sum(codes_of(fx, fx.args[0]), codes_of(fx, fx.args[1]))
        elif k in ("maxpool", "reshape"):
            src = val.get(fx.args[0].name)
            make = _maxpool(fx) if k == "maxpool" else _reshape(fx)
            if isinstance(src, Accumulator):
                val[fx.name] = dataclasses.replace(src, post=src.post + ((fx, make),))
            else:
                x = codes_of(fx, fx.args[0])
                name = emit(make(unique(fx.name), x.node))
                val[fx.name] = Codes(name, x.scale, x.zero_point)
        elif k == "q":
            src = val.get(fx.args[0].name)
            s, z, qmin, qmax, dtype = float(fx.args[1]), int(fx.args[2]), int(fx.args[3]), \
                int(fx.args[4]), fx.args[5]
            bits, signed = _bits(qmin, qmax, dtype, f"node {fx.name!r}")
            out = dict(scale=s, zero_point=z, bits=bits, signed=signed, lo=qmin, hi=qmax)
            if isinstance(src, str):                               # the program's input
                name = emit(Quantize(name=unique(fx.name), inputs=(src,), mode="f32_mul_inv", **out))
            elif isinstance(src, Accumulator):
                f32 = np.float32
                lay = src.layer
                inv = f32(1) / f32(s)
                m = (f32(lay.input_scale) * lay.weight_scale.astype(f32)) * inv
                off = None if src.bias is None else src.bias * inv
                out["lo"] = max(qmin, z) if src.relu else qmin
                name = emit(Requantize(name=unique(f"{src.node}.requantize"), inputs=(src.node,),
                                       multiplier=m, offset=off,
                                       order="mul" if off is None else "mul_add",
                                       axis=1 if lay.kind == "conv2d" else -1, **out))
                for pfx, make in src.post:
                    name = emit(make(unique(pfx.name), name))
            elif isinstance(src, _Sum):
                out["lo"] = max(qmin, z) if src.relu else qmin
                name = emit(Add(name=unique(fx.name), inputs=(src.a.node, src.b.node),
                                multipliers=(src.a.scale, src.b.scale), mode="dequant_mul",
                                input_zero_points=(src.a.zero_point, src.b.zero_point), **out))
            elif isinstance(src, Codes):
                if (src.scale, src.zero_point) != (s, z):
                    raise LayerError(f"node {fx.name!r}: requantizing codes to other parameters "
                                     f"({src.scale}, {src.zero_point}) -> ({s}, {z}) after a "
                                     "pooling / reshape is not supported")
                name = src.node
            else:
                raise LayerError(f"node {fx.name!r}: quantize of {fx.args[0]}, which is not an "
                                 f"integer computation; supported: {SUPPORTED}")
            qmap[fx.name] = name
            val[fx.name] = name
        elif fx.op == "output":
            for o in fx.args[0] if isinstance(fx.args[0], (tuple, list)) else [fx.args[0]]:
                outputs.append(_output(o, val.get(o.name), nodes, emit, unique))
        else:
            what = fx.target if fx.op != "call_module" else f"module {fx.target}"
            raise LayerError(f"node {fx.name!r} ({fx.op} {what}) cannot be mapped to the integer "
                             f"graph; supported: {SUPPORTED}")
    return Graph(nodes, outputs,
                 {"frontend": "pt2e", "semantics": SEMANTICS, "pt2e_quantize_nodes": qmap})


def _maxpool(fx: Any) -> Callable[[str, str], Node]:
    """A builder ``(name, input) -> MaxPool`` for an ``aten.max_pool2d`` node."""
    a = list(fx.args[1:]) + [None] * 5
    if a[3] not in (None, 1, [1, 1]):
        raise LayerError(f"node {fx.name!r}: dilated max pooling is not supported")
    return lambda name, src: MaxPool(name=name, inputs=(src,), kernel=tuple(a[0]),
                                     stride=tuple(a[1]) if a[1] else None,
                                     padding=tuple(a[2]) if a[2] else (0, 0),
                                     ceil_mode=bool(a[4]))


def _reshape(fx: Any) -> Callable[[str, str], Node]:
    """A builder ``(name, input) -> Reshape`` for a flatten / view / reshape node."""
    import torch

    if fx.target == torch.ops.aten.flatten.using_ints:
        start = fx.args[1] if len(fx.args) > 1 else 0
        if start != 1 or (len(fx.args) > 2 and fx.args[2] != -1):
            raise LayerError(f"node {fx.name!r}: flatten from dimension {start} is not "
                             "supported (only 1 to the end: keep the batch)")
        shape: tuple[int, ...] = (-1,)
    else:
        shape = tuple(s if isinstance(s, int) else -1 for s in fx.args[1][1:])
    return lambda name, src: Reshape(name=name, inputs=(src,), shape=shape)


def _node_type(nodes: list[Node], name: str) -> Any:
    """The integer type of node ``name`` among the nodes built so far."""
    return Graph(list(nodes), [name]).types[name]


def _output(o: Any, v: Any, nodes: list[Node], emit: Callable[[Node], str],
            unique: Callable[[str], str]) -> str:
    """The graph node of one program output: a dequantized tensor or a layer's float output."""
    if isinstance(v, Codes):
        return emit(Dequantize(name=unique(f"{o.name}"), inputs=(v.node,), scale=[v.scale],
                               zero_point=v.zero_point, mode="f32"))
    if isinstance(v, Accumulator) and not v.relu:
        lay = v.layer
        if v.bias is not None:          # no bias after a Dequantize: into the accumulator
            i = next(i for i, n in enumerate(nodes) if n.name == v.node)
            b = np.rint(v.bias.astype(np.float64) / lay.acc_scale).astype(np.int64)
            lay = dataclasses.replace(lay, bias=lay.bias + b)
            nodes[i] = dataclasses.replace(nodes[i], layer=lay)
        return emit(Dequantize(name=unique(f"{v.node}.dequantize"), inputs=(v.node,),
                               scale=lay.acc_scale, axis=1 if lay.kind == "conv2d" else -1,
                               mode="f64"))
    raise LayerError(f"output {o.name!r} is neither a dequantized tensor nor a layer's output")


def reference(program: Any, graph: Graph) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``x -> {"logits": ..., node: codes}``: the program's own output and the codes of every one
    of its quantize nodes, at the graph node that computes them."""
    import torch

    gm = program.module() if hasattr(program, "module") and not isinstance(
        program, torch.nn.Module) else program
    qmap = graph.meta.get("pt2e_quantize_nodes", {})

    recorded = recording_run(gm, lambda n, out: (qmap[n.name], out.numpy().astype(np.int64))
                             if n.name in qmap else None)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out, seen = recorded(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        res = {"logits": out.numpy(), **seen}
        if graph.outputs[0] not in res:
            res[graph.outputs[0]] = res["logits"]
        return res

    return run


def load(path: Path, **_: Any) -> Any:
    """Load a ``.pt2`` file (``torch.export.save`` of a converted pt2e program)."""
    import torch

    from accel.frontends import LoadedModel

    register_ops()
    try:
        program = torch.export.load(str(path))
    except Exception as e:  # torch raises many types for a file it cannot read
        first = str(e).splitlines()[0] if str(e) else ""
        raise LayerError(f"model {path} cannot be read as a torch.export program (.pt2): "
                         f"{type(e).__name__}: {first[:200]}") from None
    graph = from_pt2e(program)
    return LoadedModel(graph, "pt2e", str(path), reference=reference(program, graph),
                       semantics=SEMANTICS)
