"""QONNX models (``Quant`` nodes of any bit width, as Brevitas' ``export_qonnx`` and FINN write
them) as integer graphs, with qonnx's own executor as the reference.

A QONNX graph is a float graph with *fake quantization*: ``Quant(x, scale, zero_point,
bit_width)`` (attributes ``signed``, ``narrow``, ``rounding_mode``) is
``scale * (clamp(round(x / scale + zero_point)) - zero_point)``. Its codes are the integers of
the graph: a ``Quant`` on a constant gives integer weights (or a bias), on the input the input
codes, and on the result of a float op between quantized tensors the requantization of that op:

* ``Conv`` / ``Gemm`` / ``MatMul`` of quantized input and weights (bias quantized, or float) ->
  an array layer; the ``Quant`` after it (a ``Relu`` between fused) -> :class:`~accel.nodes.Requantize`
  (order ``mul``, ``m = fp32(fp32(s_x * s_w) / s_y)``; a float bias or one of another scale as an
  ``add_mul`` offset in accumulator units);
* ``Add`` of two quantized tensors -> :class:`~accel.nodes.Add` mode ``dequant_sum`` (the fp32 sum
  of the dequantised inputs, then the quantizer);
* ``GlobalAveragePool`` / ``AveragePool`` / ``ReduceMean`` over H and W -> :class:`~accel.nodes.AvgPool`
  mode ``f32_mean``; ``MaxPool``, ``Relu``, ``Flatten``, ``Reshape``, ``Concat`` on the codes;
  a ``Quant`` of a quantized tensor requantizes it (:class:`~accel.nodes.Dequantize` ``f32`` then
  :class:`~accel.nodes.Quantize` ``f32_div_zp``, qonnx's arithmetic).

qonnx's executor runs the float ops in onnxruntime (fp32). Where every scale is a power of two
(FINN's fixed-point quantizers) the fake-quantized values and their sums are exact in fp32 and
the graph reproduces qonnx's codes exactly; with float scales a convolution's fp32 sum may round
a code the other way, and the share of codes within 1 LSB is what :func:`reference` lets
:func:`accel.executor.simulate` report. A real-valued model output (the logits) of a layer with a
float bias adds the bias rounded to accumulator units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from accel.arith import code_range
from accel.frontends import QONNX_DOMAINS
from accel.frontends.onnx_graph import OnnxGraph, OnnxNode, read_onnx, unique_name
from accel.graph import Graph
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.nodes import (Add, ArrayLayer, AvgPool, Clamp, Concat, Dequantize, Input, MaxPool,
                         Node, Quantize, Requantize, Reshape)

if TYPE_CHECKING:
    from accel.frontends import LoadedModel

__all__ = ["SUPPORTED", "SEMANTICS", "from_qonnx", "reference", "load_qonnx"]

SUPPORTED = ("Quant (any bit width; ROUND or HALF_UP; per-tensor activations, per-tensor or "
             "per-channel weights) on the input, weights, biases and activations; Conv, Gemm, "
             "MatMul of quantized tensors; Add of two quantized tensors; Relu; MaxPool; "
             "GlobalAveragePool, AveragePool, ReduceMean over H and W; Flatten, Reshape, Concat, "
             "Identity")
SEMANTICS = ("qonnx executor (float fake-quant): exact integer accumulators, fp32 multiplier "
             "(s_x*s_w)/s_y, the Quant's fp32 arithmetic; exact where scales are powers of two")

F32 = np.float32
_ROUNDING = {"ROUND": "half_even", "HALF_EVEN": "half_even", "HALF_UP": "half_away"}


@dataclass
class _Codes:
    """A quantized tensor: the graph node of its codes and their quantizer."""

    node: str
    scale: float
    zero_point: int
    bits: int
    signed: bool
    lo: int
    hi: int


@dataclass
class _Const:
    """A quantized constant (weights, bias): integers and their scale (one, or per channel)."""

    ints: np.ndarray
    scale: np.ndarray
    bits: int
    zero_point: np.ndarray


@dataclass
class _Pending:
    """A float op on quantized tensors whose result only a following Quant turns into codes:
    ``kind`` ``"acc"`` (an array layer: ``node``, its input and weight scales, a float bias
    ``offset`` in accumulator units), ``"add"``, ``"pool"`` or ``"concat"`` (``inputs``), with a
    ``relu`` applied on the way."""

    kind: str
    onnx: OnnxNode
    node: str = ""
    inputs: list[_Codes] = field(default_factory=list)
    acc_scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    relu: bool = False


class _Mapper:
    def __init__(self, g: OnnxGraph) -> None:
        self.g = g
        self.input = ""                            # the graph's Input node
        self.nodes: list[Node] = []
        self.names: set[str] = set()
        self.val: dict[str, Any] = {}              # tensor -> _Codes | _Const | _Pending | "real"
        self.observed: dict[str, tuple[str, float, int]] = {}

    def name(self, base: str) -> str:
        return unique_name(base, self.names)

    def emit(self, node: Node) -> str:
        self.nodes.append(node)
        return node.name

    def codes(self, n: OnnxNode, i: int) -> _Codes:
        v = self.val.get(n.input(i))
        if not isinstance(v, _Codes):
            what = {type(None): "nothing this mapper computes", _Const: "a constant",
                    _Pending: "an unquantized result (no Quant after it)",
                    str: "real values (no Quant before it)"}[type(v)]
            raise self.g.error(n, f"input {i} ({n.input(i)!r}) carries {what}, not a quantized "
                                  f"tensor; supported: {SUPPORTED}")
        return v

    # --- Quant --------------------------------------------------------------------------------
    def quant_params(self, n: OnnxNode) -> tuple[np.ndarray, np.ndarray, int, bool, bool, str]:
        scale = self.g.const(n, 1, "scale").astype(F32)
        zp = self.g.const(n, 2, "zero point").astype(F32)
        bits = self.g.const(n, 3, "bit width").reshape(-1)
        if bits.size != 1 or bits[0] != np.round(bits[0]) or not 2 <= bits[0] <= 32:
            raise self.g.error(n, f"bit width {bits.tolist()} must be one integer from 2 to 32 "
                                  "(1-bit and bipolar quantization are not supported)")
        if np.any(zp != np.round(zp)):
            raise self.g.error(n, f"zero point {zp.reshape(-1)[:4].tolist()} must be an integer")
        mode = str(n.attrs.get("rounding_mode", "ROUND")).upper()
        if mode not in _ROUNDING:
            raise self.g.error(n, f"rounding_mode {mode!r} is not supported (ROUND, HALF_EVEN or "
                                  "HALF_UP)")
        return (scale, zp, int(bits[0]), bool(n.attrs.get("signed", 1)),
                bool(n.attrs.get("narrow", 0)), _ROUNDING[mode])

    @staticmethod
    def code_limits(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
        lo, hi = code_range(bits, signed)
        if narrow:
            lo, hi = (lo + 1, hi) if signed else (lo, hi - 1)
        return lo, hi

    def op_Quant(self, n: OnnxNode) -> None:
        scale, zp, bits, signed, narrow, rounding = self.quant_params(n)
        lo, hi = self.code_limits(bits, signed, narrow)
        x = n.inputs[0]
        if x in self.g.constants:                     # weights or a bias: integers now
            v = self.g.constants[x].astype(F32)
            q = v / scale + zp                        # qonnx's int_quant, fp32
            q = np.clip(q, lo, hi)
            q = np.rint(q) if rounding == "half_even" else np.trunc(q + np.copysign(F32(0.5), q))
            self.val[n.outputs[0]] = _Const((q - zp).astype(np.int64), scale, bits, zp)
            return
        if scale.size != 1 or zp.size != 1:
            raise self.g.error(n, f"activation scale and zero point must be one value each (per "
                                  f"tensor), not shapes {list(scale.shape)}, {list(zp.shape)}")
        if bits > 16:
            raise self.g.error(n, f"{bits}-bit activations are wider than the 16 the array takes")
        s, z = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
        out = _Codes("", s, z, bits, signed, lo, hi)
        common = dict(scale=s, zero_point=z, bits=bits, signed=signed, lo=lo, hi=hi,
                      rounding=rounding)
        src = self.val.get(x)
        base = self.name(n.name)
        if src == "real":
            out.node = self.emit(Quantize(name=base, inputs=(self.input,), mode="f32_div_zp", **common))
        elif isinstance(src, _Codes):
            if (src.scale, src.zero_point, src.bits, src.signed) == (s, z, bits, signed) \
                    and (src.lo, src.hi) == (lo, hi):
                out.node = src.node
            else:
                dq = self.emit(Dequantize(name=self.name(f"{base}.dequantize"), inputs=(src.node,),
                                          scale=[src.scale], zero_point=src.zero_point, mode="f32"))
                out.node = self.emit(Quantize(name=base, inputs=(dq,), mode="f32_div_zp", **common))
        elif isinstance(src, _Pending):
            out.node = self.pending(n, src, base, common)
        else:
            raise self.g.error(n, f"quantizes {x!r}, which this mapper does not compute; "
                                  f"supported: {SUPPORTED}")
        self.val[n.outputs[0]] = out
        self.observed[out.node] = (n.outputs[0], s, z)

    def pending(self, n: OnnxNode, p: _Pending, base: str, common: dict[str, Any]) -> str:
        """The node that turns the float op ``p`` into the codes of Quant ``n``."""
        if p.relu:
            common = dict(common, lo=max(common["lo"], common["zero_point"]))
        if p.kind == "acc":
            s_y = F32(common["scale"])
            mult = p.acc_scale / s_y
            order = "mul" if p.offset is None else "add_mul"
            return self.emit(Requantize(name=base, inputs=(p.node,), multiplier=mult,
                                        offset=p.offset, order=order,
                                        axis=1 if self.layer_kind(p.node) == "conv2d" else -1,
                                        **common))
        if p.kind == "add":
            a, b = p.inputs
            return self.emit(Add(name=base, inputs=(a.node, b.node), multipliers=(a.scale, b.scale),
                                 input_zero_points=(a.zero_point, b.zero_point), mode="dequant_sum",
                                 **common))
        if p.kind == "pool":
            (src,) = p.inputs
            kw = p.onnx.attrs
            if p.onnx.op_type in ("GlobalAveragePool", "ReduceMean"):
                geo: dict[str, Any] = {"global_pool": True}
            else:
                kernel = tuple(kw.get("kernel_shape", ()))
                pads = list(kw.get("pads", [0, 0, 0, 0]))
                if len(kernel) != 2 or pads[:2] != pads[2:] or int(kw.get("ceil_mode", 0)):
                    raise self.g.error(p.onnx, "average pooling needs a 2-D kernel, symmetric "
                                               "pads and no ceil_mode")
                geo = dict(kernel=kernel, stride=tuple(kw.get("strides", [1, 1])),
                           padding=tuple(pads[:2]),
                           count_include_pad=bool(kw.get("count_include_pad", 0)))
            return self.emit(AvgPool(name=base, inputs=(src.node,), mode="f32_mean",
                                     input_scale=src.scale, input_zero_point=src.zero_point,
                                     **geo, **common))
        parts = []                                   # concat: each input in the output's codes
        for k, c in enumerate(p.inputs):
            if (c.scale, c.zero_point, c.bits, c.signed) == (common["scale"], common["zero_point"],
                                                              common["bits"], common["signed"]):
                parts.append(c.node)
                continue
            dq = self.emit(Dequantize(name=self.name(f"{base}.input{k}.dequantize"), inputs=(c.node,),
                                      scale=[c.scale], zero_point=c.zero_point, mode="f32"))
            parts.append(self.emit(Quantize(name=self.name(f"{base}.input{k}"), inputs=(dq,),
                                            mode="f32_div_zp", **common)))
        cat = self.emit(Concat(name=self.name(f"{base}.concat"), inputs=tuple(parts),
                               axis=int(p.onnx.attrs.get("axis", 1))))
        return self.emit(Clamp(name=base, inputs=(cat,), lo=common["lo"], hi=common["hi"]))

    def layer_kind(self, node: str) -> str:
        return next(n.layer.kind for n in self.nodes if n.name == node)

    # --- layers -----------------------------------------------------------------------------
    def weight(self, n: OnnxNode, i: int) -> _Const:
        w = self.val.get(n.input(i))
        if not isinstance(w, _Const):
            raise self.g.error(n, f"its weights ({n.input(i)!r}) must be a Quant of a constant")
        if np.any(w.zero_point != 0):
            raise self.g.error(n, "its weight zero point must be 0 (symmetric weights)")
        if not 2 <= w.bits <= 16:
            raise self.g.error(n, f"{w.bits}-bit weights are not supported (2 to 16 bits)")
        return w

    def layer(self, n: OnnxNode, kind: str, w: _Const, weight: np.ndarray, geo: dict[str, Any]) -> None:
        x = self.codes(n, 0)
        o = weight.shape[0]
        ws = w.scale.reshape(-1).astype(F32)
        if ws.size not in (1, o):
            raise self.g.error(n, f"{ws.size} weight scales for {o} output channels")
        acc_scale = F32(x.scale) * ws                  # fp32(s_x * s_w)
        bias, offset = None, None
        b = n.input(2) if n.op_type != "MatMul" else ""
        if b:
            bv = self.val.get(b)
            full = np.broadcast_to(acc_scale, (o,))
            if isinstance(bv, _Const):
                bs = np.broadcast_to(bv.scale.reshape(-1).astype(F32), (o,))
                if np.allclose(bs, full, rtol=1e-6, atol=0) and np.all(bv.zero_point == 0):
                    bias = bv.ints.reshape(-1)
                else:
                    offset = ((bv.ints.reshape(-1) * bs.astype(np.float64)) / full).astype(F32)
            elif b in self.g.constants:
                offset = (self.g.constants[b].astype(np.float64).reshape(-1) / full).astype(F32)
            else:
                raise self.g.error(n, f"its bias ({b!r}) must be a constant or a Quant of one")
        layer = IntLayer(name=n.name, kind=kind, weight=weight, weight_scale=ws.astype(np.float64),
                         input_scale=x.scale, input_zero_point=x.zero_point, act_bits=x.bits,
                         act_signed=x.signed, weight_bits=w.bits,
                         bias=fold_zero_point(bias, weight, x.zero_point), **geo)
        node = self.emit(ArrayLayer(name=self.name(n.name), inputs=(x.node,), layer=layer))
        self.val[n.outputs[0]] = _Pending("acc", n, node, [x], acc_scale, offset)

    def op_Conv(self, n: OnnxNode) -> None:
        w = self.weight(n, 1)
        a = n.attrs
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if w.ints.ndim != 4 or pads[:2] != pads[2:] or a.get("auto_pad", "NOTSET") != "NOTSET":
            raise self.g.error(n, "only 2-D convolutions with explicit symmetric pads are supported")
        geo = dict(stride=tuple(a.get("strides", [1, 1])), padding=tuple(pads[:2]),
                   dilation=tuple(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))
        self.layer(n, "conv2d", w, w.ints, geo)

    def op_Gemm(self, n: OnnxNode) -> None:
        a = n.attrs
        if int(a.get("transA", 0)) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            raise self.g.error(n, "only Gemm with transA = 0, alpha = 1 and beta = 1 is supported")
        w = self.weight(n, 1)
        self.layer(n, "linear", w, w.ints if int(a.get("transB", 0)) else w.ints.T, {})

    def op_MatMul(self, n: OnnxNode) -> None:
        w = self.weight(n, 1)
        if w.ints.ndim != 2:
            raise self.g.error(n, "its weights must be a matrix [K, N]")
        self.layer(n, "linear", w, w.ints.T, {})

    # --- other ops --------------------------------------------------------------------------
    def op_Relu(self, n: OnnxNode) -> None:
        v = self.val.get(n.inputs[0])
        if isinstance(v, _Pending):
            self.val[n.outputs[0]] = _Pending(v.kind, v.onnx, v.node, v.inputs, v.acc_scale,
                                              v.offset, relu=True)
            return
        c = self.codes(n, 0)
        node = self.emit(Clamp(name=self.name(n.name), inputs=(c.node,), lo=c.zero_point))
        self.val[n.outputs[0]] = _Codes(node, c.scale, c.zero_point, c.bits, c.signed,
                                        max(c.lo, c.zero_point), c.hi)

    def op_Add(self, n: OnnxNode) -> None:
        self.val[n.outputs[0]] = _Pending("add", n, inputs=[self.codes(n, 0), self.codes(n, 1)])

    def op_Concat(self, n: OnnxNode) -> None:
        """Codes of one quantizer concatenate as they are; others wait for the Quant after them."""
        ins = [self.codes(n, i) for i in range(len(n.inputs))]
        if all((c.scale, c.zero_point, c.bits, c.signed) == (ins[0].scale, ins[0].zero_point,
                                                              ins[0].bits, ins[0].signed)
               for c in ins):
            node = self.emit(Concat(name=self.name(n.name), inputs=tuple(c.node for c in ins),
                                    axis=int(n.attrs.get("axis", 1))))
            self.val[n.outputs[0]] = dataclasses.replace(ins[0], node=node,
                                                         lo=min(c.lo for c in ins),
                                                         hi=max(c.hi for c in ins))
            return
        self.val[n.outputs[0]] = _Pending("concat", n, inputs=ins)

    def _pool(self, n: OnnxNode) -> None:
        self.val[n.outputs[0]] = _Pending("pool", n, inputs=[self.codes(n, 0)])

    op_GlobalAveragePool = op_AveragePool = _pool

    def op_ReduceMean(self, n: OnnxNode) -> None:
        axes = n.attrs.get("axes")
        if axes is None and n.input(1):
            axes = self.g.const(n, 1, "axes").reshape(-1).tolist()
        if sorted(int(a) % 4 for a in (axes or [])) != [2, 3] or not int(n.attrs.get("keepdims", 1)):
            raise self.g.error(n, f"only a mean over H and W (axes 2, 3) keeping them is "
                                  f"supported, not axes {axes}")
        self._pool(n)

    def op_MaxPool(self, n: OnnxNode) -> None:
        c = self.codes(n, 0)
        a = n.attrs
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:] or list(a.get("dilations", [1, 1])) != [1, 1]:
            raise self.g.error(n, "max pooling needs symmetric pads and no dilation")
        node = self.emit(MaxPool(name=self.name(n.name), inputs=(c.node,),
                                 kernel=tuple(a["kernel_shape"]), stride=tuple(a.get("strides", [1, 1])),
                                 padding=tuple(pads[:2]), ceil_mode=bool(a.get("ceil_mode", 0))))
        self.val[n.outputs[0]] = _Codes(node, c.scale, c.zero_point, c.bits, c.signed, c.lo, c.hi)

    def _reshape(self, n: OnnxNode, shape: tuple[int, ...]) -> None:
        c = self.codes(n, 0)
        node = self.emit(Reshape(name=self.name(n.name), inputs=(c.node,), shape=shape))
        self.val[n.outputs[0]] = _Codes(node, c.scale, c.zero_point, c.bits, c.signed, c.lo, c.hi)

    def op_Flatten(self, n: OnnxNode) -> None:
        if int(n.attrs.get("axis", 1)) != 1:
            raise self.g.error(n, "flatten from an axis other than 1 is not supported")
        self._reshape(n, (-1,))

    def op_Reshape(self, n: OnnxNode) -> None:
        shape = [int(s) for s in self.g.const(n, 1, "shape").reshape(-1)]
        batch = (self.g.shapes.get(self.g.inputs[0]) or (None,))[0]
        if not shape or (shape[0] not in (0, -1) and shape[0] != batch) or 0 in shape[1:]:
            raise self.g.error(n, f"shape {shape} must keep the batch axis first (0, -1 or the "
                                  "batch size) and give the other sizes")
        self._reshape(n, tuple(shape[1:]))

    def op_Identity(self, n: OnnxNode) -> None:
        self.val[n.outputs[0]] = self.val.get(n.inputs[0])

    op_Dropout = op_Identity

    # --- the whole graph ----------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.g
        if len(g.inputs) != 1:
            raise LayerError(f"{g.source}: the model takes {len(g.inputs)} inputs; the integer "
                             "graph has one")
        self.input = self.emit(Input(name=self.name(g.inputs[0])))
        self.val[g.inputs[0]] = "real"
        for n in g.nodes:
            op = "Quant" if n.op_type in ("Quant", "IntQuant") and n.domain in QONNX_DOMAINS else (
                n.op_type if n.domain in ("", "ai.onnx") else None)
            method = getattr(self, f"op_{op}", None) if op else None
            if method is None:
                raise self.g.error(n, f"cannot be mapped to the integer graph; supported: {SUPPORTED}")
            method(n)
        outputs = [self.output(o) for o in g.outputs]
        return Graph(self.nodes, outputs, {"frontend": "qonnx", "semantics": SEMANTICS})

    def output(self, tensor: str) -> str:
        """A graph output: codes dequantised, or an array layer's accumulator dequantised with
        its scale (a float bias rounded into the accumulator's int bias first)."""
        v = self.val.get(tensor)
        if isinstance(v, _Codes):
            return self.emit(Dequantize(name=self.name(f"{tensor}.dequantize"), inputs=(v.node,),
                                        scale=[v.scale], zero_point=v.zero_point, mode="f32"))
        if not (isinstance(v, _Pending) and v.kind == "acc" and not v.relu):
            raise LayerError(f"{self.g.source}: graph output {tensor!r} is not a quantized tensor "
                             "or a layer's output; put a Quant before it")
        i, node = next((i, n) for i, n in enumerate(self.nodes) if n.name == v.node)
        if v.offset is not None:
            lay = node.layer
            bias = np.zeros(lay.out_channels, np.int64) if lay.bias is None else lay.bias
            bias = bias + np.rint(np.broadcast_to(v.offset, bias.shape)).astype(np.int64)
            self.nodes[i] = dataclasses.replace(node, layer=dataclasses.replace(lay, bias=bias))
        return self.emit(Dequantize(name=self.name(f"{v.node}.dequantize"), inputs=(v.node,),
                                    scale=v.acc_scale.astype(np.float64),
                                    axis=1 if node.layer.kind == "conv2d" else -1, mode="f32"))


def from_qonnx(model: Any, source: str = "model") -> tuple[Graph, dict[str, tuple[str, float, int]]]:
    """The integer graph of a QONNX ``onnx.ModelProto`` and, for every graph node that holds the
    codes of one of its ``Quant`` nodes after an array layer, ``(tensor, scale, zero point)`` of
    that Quant's output (for :func:`reference`)."""
    g = OnnxGraph(model, source)
    m = _Mapper(g)
    graph = m.run()
    observed = {}
    for node, spec in m.observed.items():
        cur = graph.node(node)
        while not isinstance(cur, ArrayLayer) and cur.inputs:
            cur = graph.node(cur.inputs[0])
        if isinstance(cur, ArrayLayer):
            observed[node] = spec
    return graph, observed


def reference(model: Any, observed: dict[str, tuple[str, float, int]]
              ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``x -> {"logits": ..., node: codes}``: qonnx's ``execute_onnx`` (float fake-quant) on the
    batch, in chunks of the model's batch size (one when it is symbolic), with the codes of every
    observed Quant recovered as ``round(out / scale + zero point)``."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    batch = dim.dim_value if dim.HasField("dim_value") else 1
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in list(m.graph.input[:1]) + list(m.graph.output):
        d = v.type.tensor_type.shape.dim
        if len(d):
            d[0].Clear()
            d[0].dim_value = batch
    del m.graph.value_info[:]
    mw = ModelWrapper(m).transform(InferShapes())
    in_name, out_name = mw.graph.input[0].name, mw.graph.output[0].name

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(x, np.float32)
        parts: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            pad = batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *x.shape[1:]), np.float32)])
            ctx = execute_onnx(mw, {in_name: chunk}, return_full_exec_context=True)
            keep = len(chunk) - pad
            parts.setdefault("logits", []).append(ctx[out_name][:keep])
            for node, (tensor, s, z) in observed.items():
                codes = np.rint(ctx[tensor][:keep].astype(np.float64) / s + z).astype(np.int64)
                parts.setdefault(node, []).append(codes)
        return {k: np.concatenate(v) for k, v in parts.items()}

    return run


def load_qonnx(path: str | Path, **_: Any) -> LoadedModel:
    """Load a QONNX ``.onnx`` file: the graph and qonnx's executor as its reference (when qonnx
    is installed)."""
    from accel.frontends import LoadedModel

    path = Path(path)
    model = read_onnx(path)
    graph, observed = from_qonnx(model, f"model {path}")
    try:
        ref = reference(model, observed)
    except ImportError:
        ref = None
    return LoadedModel(graph, "qonnx", str(path), reference=ref, semantics=SEMANTICS,
                       extra={"observed": {k: v[0] for k, v in observed.items()}})
