"""ONNX models quantized elsewhere (QDQ and QOperator) as integer graphs, with onnxruntime's CPU
arithmetic replicated bit for bit.

Two passes, in order (as qonnx and hls4ml run named passes over one graph):

1. :func:`fuse_qdq` turns every ``DequantizeLinear -> op -> QuantizeLinear`` unit of a QDQ model
   (what ``onnxruntime.quantization.quantize_static`` writes with ``QuantFormat.QDQ``) into the
   QOperator node onnxruntime's graph optimiser fuses it into (``QLinearConv``, ``QGemm``, ...),
   and ops that only move codes (MaxPool, Flatten, Reshape, Relu, Clip) onto the codes;
2. :func:`from_onnx` maps the QOperator nodes onto the graph of :mod:`accel.nodes`.

What the graph replicates is onnxruntime's CPU execution provider (MLAS kernels, x86-64) at
:data:`OPTIMIZATION`, read from its sources and confirmed against onnxruntime 1.32:

``QLinearConv``, ``QLinearMatMul``, ``QGemm``
    an exact int32 accumulator of ``(x - z_x) * w`` plus the int32 bias, then
    ``fp32(acc) * m`` rounded half to even with ``m = fp32(fp32(s_x * s_w) / s_y)`` per channel
    (``fp32(fp32(fp32(alpha * s_a) * s_b) / s_y)`` for QGemm): :class:`~accel.nodes.Requantize`
    order ``mul``; a QGemm without output scale dequantises ``fp32(acc) * fp32(alpha s_a s_b)``.
``QLinearAdd`` (com.microsoft)
    :class:`~accel.nodes.Add` mode ``fma_offset`` (MLAS's fused multiply-adds with the zero
    points folded into one offset).
``QLinearGlobalAveragePool`` / ``QLinearAveragePool`` (com.microsoft)
    :class:`~accel.nodes.AvgPool` modes ``sum_rescale`` (exact sum, ``fp32(s_x / fp32(s_y n))``)
    and ``f32_mean`` (fp32 mean of dequantised codes).
``QLinearConcat`` (com.microsoft)
    an input with other scale or zero point goes through onnxruntime's lookup table:
    ``fp32(s_x * (x - z_x))`` quantized again (:class:`~accel.nodes.Dequantize` mode ``f32`` then
    :class:`~accel.nodes.Quantize` mode ``f32_div``).
``QuantizeLinear`` / ``DequantizeLinear``
    ``round_half_even(fp32(x / s)) + z`` clamped (mode ``f32_div``); ``fp32(x - z) * s``.
``ConvInteger`` / ``MatMulInteger``
    with a constant activation zero point, followed by ``Cast`` to float and ``Mul`` by a
    constant: the accumulator and its fp32 dequantisation.

The accumulation is exact on x86 CPUs with AVX-VNNI or AVX512-VNNI. Without VNNI, MLAS's
u8 x s8 kernels (``vpmaddubsw``) saturate the sum of each pair of products to int16, which
8-bit weights reach (255 * (|w1| + |w2|) > 32767); 7-bit weights (``reduce_range=True``) cannot.
:func:`load_onnx` records the CPU's VNNI flag and whether a layer could saturate.

Unused opset imports are ignored. Dynamic quantization (``DynamicQuantizeLinear``, what
``quantize_dynamic`` writes) is refused: its activation scales exist only at run time.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from accel.frontends.onnx_graph import OnnxGraph, OnnxNode, read_onnx, unique_name
from accel.graph import Graph
from accel.layers import IntLayer, LayerError, fold_zero_point
from accel.nodes import (Add, ArrayLayer, AvgPool, Clamp, Concat, Dequantize, Input, MaxPool,
                         Node, Quantize, Requantize, Reshape)

if TYPE_CHECKING:
    from accel.frontends import LoadedModel

__all__ = ["OPTIMIZATION", "SUPPORTED", "SEMANTICS", "fuse_qdq", "from_onnx", "reference",
           "load_onnx", "cpu_has_vnni", "saturation_risk"]

#: The onnxruntime graph optimisation level whose execution the graph replicates (the default
#: of ``InferenceSession``; QDQ units are fused at this level and at ORT_ENABLE_EXTENDED).
OPTIMIZATION = "ORT_ENABLE_ALL"
SUPPORTED = ("QDQ (QuantizeLinear / DequantizeLinear around Conv, Gemm, MatMul, Add, "
             "GlobalAveragePool, AveragePool, MaxPool, Concat, Relu, Clip, Flatten, Reshape) and "
             "QOperator (QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QGemm, "
             "QLinearAdd, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, MaxPool, "
             "Concat, Flatten, Reshape, Clip on codes; ConvInteger / MatMulInteger with constant "
             "zero points then Cast and Mul)")
SEMANTICS = (f"onnxruntime CPU (MLAS, x86-64) at {OPTIMIZATION}: int32 accumulators with the "
             "bias, fp32 multiplier (s_x*s_w)/s_y, round half even; QLinearAdd as MLAS's fma; "
             "pooling and QuantizeLinear as onnxruntime computes them")

F32 = np.float32
_DQ, _Q = "DequantizeLinear", "QuantizeLinear"
_MS = "com.microsoft"
_DEFAULT = ("", "ai.onnx")
_INT_DTYPES = {np.dtype(np.uint8): False, np.dtype(np.int8): True}


# --- pass 1: QDQ units to QOperator nodes -----------------------------------------------------
#: Compute ops of a QDQ unit and the QOperator op each becomes (domain, op type).
_FUSED = {"Conv": ("", "QLinearConv"), "MatMul": ("", "QLinearMatMul"), "Gemm": (_MS, "QGemm"),
          "Add": (_MS, "QLinearAdd"), "GlobalAveragePool": (_MS, "QLinearGlobalAveragePool"),
          "AveragePool": (_MS, "QLinearAveragePool"), "Concat": (_MS, "QLinearConcat")}
#: Ops that move or clamp codes: computed on the codes (then requantized where the unit's output
#: codes differ from its input codes; exact, as each of them commutes with a monotone requantize).
_ON_CODES = ("MaxPool", "Flatten", "Reshape", "Relu", "Clip", "Identity")


def _qparams(g: OnnxGraph, node: OnnxNode) -> tuple[str, str, str]:
    """``(codes, scale, zero point)`` tensor names of a Q or DQ node (a zero-point constant made
    when it is omitted)."""
    codes = node.inputs[0] if node.op_type == _DQ else node.outputs[0]
    zp = node.input(2)
    if not zp:
        zp = f"{node.name}/zero_point"
        dt = np.uint8
        if node.op_type == _DQ and node.inputs[0] in g.constants:
            dt = g.constants[node.inputs[0]].dtype
        g.constants[zp] = np.zeros((), dt)
    return codes, node.inputs[1], zp


def _same(g: OnnxGraph, a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Same scale and zero point (values, not names)."""
    return all(x in g.constants and y in g.constants
               and np.array_equal(g.constants[x], g.constants[y]) for x, y in zip(a[1:], b[1:]))


def _data_inputs(node: OnnxNode) -> list[int]:
    if node.op_type in ("Conv", "Gemm"):
        return [i for i in (0, 1, 2) if node.input(i)]
    if node.op_type in ("MatMul", "Add"):
        return [0, 1]
    if node.op_type == "Concat":
        return list(range(len(node.inputs)))
    return [0]


def fuse_qdq(g: OnnxGraph) -> None:
    """Rewrite ``g`` in place: every QDQ unit (module docstring) becomes its QOperator node (the
    compute node's name kept), and DequantizeLinear nodes nothing reads any more are dropped.

    A unit is a compute node whose data inputs all come from DequantizeLinear nodes and whose
    output goes to one QuantizeLinear and nowhere else; anything else stays as it is (and the
    mapper names it if it cannot run it).
    """
    prod = {o: n for n in g.nodes for o in n.outputs}
    cons: dict[str, list[OnnxNode]] = {}
    for n in g.nodes:
        for i in n.inputs:
            cons.setdefault(i, []).append(n)
    out: list[OnnxNode] = []
    dropped: set[int] = set()
    for n in g.nodes:
        if id(n) in dropped:
            continue
        rep = None
        if n.domain in _DEFAULT and (n.op_type in _FUSED or n.op_type in _ON_CODES):
            dqs = [prod.get(n.input(i)) for i in _data_inputs(n)]
            after = cons.get(n.outputs[0], [])
            if all(d is not None and d.op_type == _DQ and d.domain in _DEFAULT for d in dqs) \
                    and len(after) == 1 and after[0].op_type == _Q and after[0].domain in _DEFAULT \
                    and n.outputs[0] not in g.outputs:
                rep = _fuse_unit(g, n, dqs, after[0])
                dropped.add(id(after[0]))
        out.extend(rep if rep is not None else [n])
    g.nodes = out
    g.remove_dead()


def _fuse_unit(g: OnnxGraph, n: OnnxNode, dqs: list[OnnxNode], q: OnnxNode) -> list[OnnxNode]:
    """The QOperator nodes of one QDQ unit (``n`` between ``dqs`` and ``q``)."""
    ins = [_qparams(g, d) for d in dqs]
    y = _qparams(g, q)
    yc = q.outputs[0]
    op = n.op_type
    if op in _ON_CODES:
        return _codes_unit(g, n, ins[0], y)
    domain, qop = _FUSED[op]
    attrs = dict(n.attrs)
    if op in ("Conv", "Gemm", "MatMul"):
        _check_weight_axis(g, n, dqs[1])
    if op == "Conv":
        bias = []
        if len(ins) == 3:
            _check_bias(g, n, ins)
            bias = [ins[2][0]]
        inputs = [*ins[0], *ins[1], y[1], y[2], *bias]
    elif op == "Gemm":
        if len(ins) == 3 and float(attrs.pop("beta", 1.0)) != 1.0:
            raise g.error(n, f"beta = {n.attrs['beta']} with a quantized bias cannot be fused "
                             "(onnxruntime's QGemm adds the int32 bias as it is); use beta = 1")
        attrs.pop("beta", None)
        if len(ins) == 3:
            _check_bias(g, n, ins)
        inputs = [*ins[0], *ins[1], ins[2][0] if len(ins) == 3 else "", y[1], y[2]]
    elif op in ("MatMul", "Add"):
        inputs = [*ins[0], *ins[1], y[1], y[2]]
    elif op == "Concat":
        inputs = [y[1], y[2], *[t for i in ins for t in i]]
    else:       # the pools
        inputs = [*ins[0], y[1], y[2]]
        if op == "GlobalAveragePool":
            attrs["channels_last"] = 0
    return [OnnxNode(n.name, qop, domain, inputs, [yc], attrs)]


def _check_weight_axis(g: OnnxGraph, n: OnnxNode, dq: OnnxNode) -> None:
    """Per-channel weight scales must run along the output channels (Conv and Gemm with transB:
    axis 0 of the weights; MatMul and Gemm without: axis 1)."""
    if g.constants.get(dq.inputs[1], np.zeros(1)).size <= 1:
        return
    want = 0 if n.op_type == "Conv" or (n.op_type == "Gemm" and int(n.attrs.get("transB", 0))) else 1
    axis = int(dq.attrs.get("axis", 1))
    rank = g.constants[dq.inputs[0]].ndim if dq.inputs[0] in g.constants else 2
    if axis % rank != want:
        raise g.error(n, f"its weights are quantized per channel along axis {axis}; the array "
                         f"needs one scale per output channel (axis {want})")


def _check_bias(g: OnnxGraph, n: OnnxNode, ins: list[tuple[str, str, str]]) -> None:
    """The bias of a fused Conv/Gemm: int32 codes in units of s_x * s_w (what the fused kernel
    adds to its accumulator as they are)."""
    codes, scale, _ = ins[2]
    if codes not in g.constants or g.constants[codes].dtype != np.int32:
        raise g.error(n, "its bias must be a constant int32 tensor behind a DequantizeLinear "
                         "(quantize_static writes one); a float bias cannot be fused")
    sx = F32(g.constants[ins[0][1]].reshape(-1)[0])
    want = sx * g.constants[ins[1][1]].astype(F32).reshape(-1)
    got = g.constants[scale].astype(F32).reshape(-1)
    if not np.allclose(got, want, rtol=1e-6, atol=0):
        raise g.error(n, f"its bias scale {got[:4].tolist()} is not input scale x weight scale "
                         f"{want[:4].tolist()}; the fused kernel adds the int32 bias as "
                         "accumulator units")


def _codes_unit(g: OnnxGraph, n: OnnxNode, x: tuple[str, str, str], y: tuple[str, str, str]
                ) -> list[OnnxNode]:
    """A move/clamp op between DQ and Q, on the codes: the op, then the requantization when the
    codes change (Relu/Clip: the requantization, then the clamp in the output's codes)."""
    yc = y[0]
    same = _same(g, x, y)

    def requant(src: str, out: str) -> list[OnnxNode]:
        return [OnnxNode(f"{n.name}/dequantize", _DQ, "", [src, x[1], x[2]], [f"{yc}/real"]),
                OnnxNode(f"{n.name}/quantize", _Q, "", [f"{yc}/real", y[1], y[2]], [out])]

    if n.op_type in ("Relu", "Clip"):
        lo, hi = _clip_codes(g, n, y)
        g.constants[f"{yc}/lo"], g.constants[f"{yc}/hi"] = lo, hi
        pre = [] if same else requant(x[0], f"{yc}/requant")
        src = x[0] if same else f"{yc}/requant"
        return pre + [OnnxNode(n.name, "Clip", "", [src, f"{yc}/lo", f"{yc}/hi"], [yc])]
    moved = OnnxNode(n.name, n.op_type, n.domain, [x[0], *n.inputs[1:]],
                     [yc if same else f"{yc}/moved"], dict(n.attrs))
    return [moved] if same else [moved] + requant(f"{yc}/moved", yc)


def _clip_codes(g: OnnxGraph, n: OnnxNode, y: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The output codes of a Relu's 0 or a Clip's bounds (QuantizeLinear's arithmetic)."""
    s = F32(g.constants[y[1]].reshape(-1)[0])
    zp = g.constants[y[2]]
    info = np.iinfo(zp.dtype)
    z = int(zp.reshape(-1)[0])
    if n.op_type == "Relu":
        lo, hi = z, info.max
    else:
        mn = n.attrs.get("min") if "min" in n.attrs else (
            g.const(n, 1, "minimum").reshape(-1)[0] if n.input(1) else None)
        mx = n.attrs.get("max") if "max" in n.attrs else (
            g.const(n, 2, "maximum").reshape(-1)[0] if n.input(2) else None)

        def code(v: Any, default: int) -> int:
            if v is None:
                return default
            return int(np.clip(np.rint(F32(v) / s) + z, info.min, info.max))

        lo, hi = code(mn, info.min), code(mx, info.max)
    return np.array(lo, zp.dtype), np.array(hi, zp.dtype)


# --- pass 2: QOperator nodes to the integer graph -----------------------------------------
class _Codes:
    """What a tensor holds: integer codes of one scale and zero point (8 bits of a sign)."""

    def __init__(self, scale: float, zero_point: int, signed: bool) -> None:
        self.scale, self.zero_point, self.signed = float(F32(scale)), int(zero_point), signed


class _Mapper:
    """Builds the graph node by node; ``value[tensor]`` is the graph node computing an ONNX
    tensor and ``kind[tensor]`` what it holds (:class:`_Codes` or ``"real"``); ``skip`` holds the
    nodes an earlier one consumed (the Cast and Mul after an integer op)."""

    def __init__(self, g: OnnxGraph) -> None:
        self.g = g
        self.nodes: list[Node] = []
        self.value: dict[str, str] = {}
        self.kind: dict[str, Any] = {}
        self.skip: set[int] = set()
        self.names: set[str] = set()

    # helpers ---------------------------------------------------------------------------------
    def name(self, base: str) -> str:
        return unique_name(base, self.names)

    def emit(self, node: Node, tensor: str | None, kind: Any) -> Node:
        self.nodes.append(node)
        if tensor is not None:
            self.value[tensor], self.kind[tensor] = node.name, kind
        return node

    def scalar(self, n: OnnxNode, i: int, what: str) -> Any:
        a = self.g.const(n, i, what)
        if a.size != 1:
            raise self.g.error(n, f"its {what} must be one value (per tensor), not shape "
                                  f"{list(a.shape)}")
        return a.reshape(-1)[0]

    def zero_point(self, n: OnnxNode, i: int, what: str) -> tuple[int, bool]:
        """A constant 8-bit zero point and whether its codes are signed."""
        a = self.g.const(n, i, what, np.zeros((), np.uint8))
        if a.dtype not in _INT_DTYPES:
            raise self.g.error(n, f"its {what} is {a.dtype}; 8-bit codes (uint8 or int8) only")
        if a.size != 1:
            raise self.g.error(n, f"its {what} must be one value (per tensor), not shape "
                                  f"{list(a.shape)}")
        return int(a.reshape(-1)[0]), _INT_DTYPES[a.dtype]

    def codes_in(self, n: OnnxNode, i: int, scale_i: int | None = None,
                 zp_i: int | None = None) -> tuple[str, _Codes]:
        """Input ``i`` as codes (graph node, codes), checked against the scale and zero point
        inputs the node declares for it."""
        t = n.input(i)
        kind = self.kind.get(t)
        if t in self.g.constants:
            raise self.g.error(n, f"input {i} ({t!r}) is a constant; a quantized op on a "
                                  "constant tensor has no node here (fold it into the model)")
        if not isinstance(kind, _Codes):
            what = "real values" if kind == "real" else "an int32 accumulator" if kind else "nothing"
            raise self.g.error(n, f"input {i} ({t!r}) carries {what}, not quantized codes")
        if scale_i is not None:
            s = F32(self.scalar(n, scale_i, f"input {i} scale"))
            z, signed = self.zero_point(n, zp_i, f"input {i} zero point")
            if (float(s), z, signed) != (kind.scale, kind.zero_point, kind.signed):
                raise self.g.error(n, f"input {i} declares scale {float(s)!r}, zero point {z} but "
                                      f"its codes have scale {kind.scale!r}, zero point "
                                      f"{kind.zero_point} ({'int8' if kind.signed else 'uint8'})")
        return self.value[t], kind

    def out_codes(self, n: OnnxNode, scale_i: int, zp_i: int) -> _Codes:
        s = self.scalar(n, scale_i, "output scale")
        z, signed = self.zero_point(n, zp_i, "output zero point")
        return _Codes(s, z, signed)

    def weight(self, n: OnnxNode, i: int, scale_i: int, zp_i: int, axis: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """Constant int8 weights (symmetric: zero point 0) and their fp32 scales."""
        w = self.g.const(n, i, "weight")
        if w.dtype != np.int8:
            raise self.g.error(n, f"its weights are {w.dtype}; the array takes int8 weights "
                                  "with zero point 0 (quantize with weight_type=QuantType.QInt8)")
        wz = self.g.const(n, zp_i, "weight zero point", np.zeros((), np.int8))
        if np.any(wz != 0):
            raise self.g.error(n, "its weight zero point must be 0 (symmetric weights, per "
                                  f"tensor or per channel), not {wz.reshape(-1)[:4].tolist()}")
        ws = self.g.const(n, scale_i, "weight scale").astype(F32).reshape(-1)
        o = w.shape[axis]
        if ws.size not in (1, o):
            raise self.g.error(n, f"{ws.size} weight scales for {o} output channels")
        return w.astype(np.int64), ws

    def int32_bias(self, n: OnnxNode, i: int, o: int) -> np.ndarray | None:
        if not n.input(i):
            return None
        b = self.g.const(n, i, "bias")
        if b.dtype != np.int32:
            raise self.g.error(n, f"its bias is {b.dtype}, not int32 accumulator units")
        if b.size == 1:
            return np.full(o, int(b.reshape(-1)[0]), np.int64)
        if b.size != o:
            raise self.g.error(n, f"its bias has {b.size} values for {o} output channels")
        return b.reshape(-1).astype(np.int64)

    def conv_geometry(self, n: OnnxNode, kernel: tuple[int, ...]) -> dict[str, Any]:
        a = n.attrs
        if len(kernel) != 2:
            raise self.g.error(n, f"only 2-D convolutions and pooling (NCHW) are supported, not "
                                  f"a {len(kernel)}-D kernel")
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise self.g.error(n, f"auto_pad {a['auto_pad']!r} is not supported; export with "
                                  "explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if a.get("auto_pad") == "VALID":
            pads = [0, 0, 0, 0]
        if pads[:2] != pads[2:]:
            raise self.g.error(n, f"asymmetric pads {pads} are not supported (begin and end must "
                                  "be equal per axis)")
        if int(a.get("channels_last", 0)):
            raise self.g.error(n, "channels_last layouts are not supported (NCHW only)")
        return dict(stride=tuple(a.get("strides", [1, 1])), padding=tuple(pads[:2]),
                    dilation=tuple(a.get("dilations", [1, 1])))

    def array(self, n: OnnxNode, src: str, x: _Codes, kind: str, w: np.ndarray, ws: np.ndarray,
              bias: np.ndarray | None, **geo: Any) -> str:
        """An array layer named after ``n`` (unique): weights ``w`` in PyTorch's layout with
        scales ``ws``, the int32 ``bias`` with the input zero point folded in."""
        name = self.name(n.name)
        layer = IntLayer(name=name, kind=kind, weight=w, weight_scale=ws.astype(np.float64),
                         input_scale=x.scale, input_zero_point=x.zero_point, act_bits=8,
                         act_signed=x.signed, weight_bits=8,
                         bias=fold_zero_point(bias, w, x.zero_point), **geo)
        return self.emit(ArrayLayer(name=name, inputs=(src,), layer=layer), None, None).name

    def requantize(self, n: OnnxNode, src: str, mult: np.ndarray, y: _Codes, axis: int) -> None:
        self.emit(Requantize(name=self.name(f"{src}.requantize"), inputs=(src,), multiplier=mult,
                             scale=y.scale, zero_point=y.zero_point, bits=8, signed=y.signed,
                             order="mul", axis=axis), n.outputs[0], y)

    # ops ------------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.g
        reals = [i for i in g.inputs]
        if len(reals) != 1:
            raise LayerError(f"{g.source}: the model takes {len(reals)} inputs ({', '.join(reals)}); "
                             "the integer graph has one input")
        self.emit(Input(name=self.name(reals[0])), reals[0], "real")
        for n in g.nodes:
            if id(n) in self.skip:
                continue
            key = n.op_type if n.domain in _DEFAULT else f"{n.domain}:{n.op_type}"
            method = getattr(self, "op_" + key.replace(".", "_").replace(":", "__"), None)
            if method is None:
                raise self._unsupported(n)
            method(n)
        outputs = []
        for o in g.outputs:
            if o not in self.value:
                raise LayerError(f"{g.source}: graph output {o!r} is not computed by a mapped node")
            outputs.append(self.value[o])
        return Graph(self.nodes, outputs, {"frontend": "onnx", "optimization": OPTIMIZATION,
                                           "semantics": SEMANTICS})

    def _unsupported(self, n: OnnxNode) -> LayerError:
        if n.op_type == "DynamicQuantizeLinear":
            return self.g.error(n, "dynamic quantization computes activation scales at run time "
                                   "(quantize_dynamic); the array needs them fixed: quantize "
                                   "with onnxruntime.quantization.quantize_static")
        reals = [i for i in n.inputs if self.kind.get(i) == "real"]
        why = (f" (it computes on real values, {reals[0]!r}: a float op, or one onnxruntime runs "
               "in float between DequantizeLinear and QuantizeLinear)") if reals else ""
        if n.op_type == "ReduceMean":
            why += ("; torch.onnx.export's torch.export path writes adaptive average pooling as "
                    "ReduceMean, which onnxruntime computes in float: export with dynamo=False "
                    "(GlobalAveragePool, which it runs quantized)")
        return self.g.error(n, f"cannot be mapped to the integer graph{why}; supported: {SUPPORTED}")

    def op_QuantizeLinear(self, n: OnnxNode) -> None:
        x = n.inputs[0]
        if self.kind.get(x) != "real":
            raise self.g.error(n, f"quantizes {x!r}, which does not carry real values")
        y = self.out_codes(n, 1, 2)
        self.emit(Quantize(name=self.name(n.name), inputs=(self.value[x],), scale=y.scale,
                           zero_point=y.zero_point, bits=8, signed=y.signed, mode="f32_div"),
                  n.outputs[0], y)

    def op_DequantizeLinear(self, n: OnnxNode) -> None:
        src, c = self.codes_in(n, 0, 1, 2)
        self.emit(Dequantize(name=self.name(n.name), inputs=(src,), scale=[c.scale],
                             zero_point=c.zero_point, mode="f32"), n.outputs[0], "real")

    def op_QLinearConv(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0, 1, 2)
        w, ws = self.weight(n, 3, 4, 5, 0)
        if w.ndim != 4:
            raise self.g.error(n, f"only 2-D convolutions are supported, not weights of shape "
                                  f"{list(w.shape)}")
        y = self.out_codes(n, 6, 7)
        geo = self.conv_geometry(n, tuple(w.shape[2:]))
        acc = self.array(n, src, x, "conv2d", w, ws, self.int32_bias(n, 8, w.shape[0]),
                         groups=int(n.attrs.get("group", 1)), **geo)
        self.requantize(n, acc, (F32(x.scale) * ws) / F32(y.scale), y, 1)

    def op_QLinearMatMul(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0, 1, 2)
        w, ws = self.weight(n, 3, 4, 5, 1)
        if w.ndim != 2:
            raise self.g.error(n, f"its weights must be a constant matrix [K, N], not shape "
                                  f"{list(w.shape)}")
        y = self.out_codes(n, 6, 7)
        acc = self.array(n, src, x, "linear", w.T, ws, None)
        self.requantize(n, acc, (F32(x.scale) * ws) / F32(y.scale), y, -1)

    def op_com_microsoft__QGemm(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0, 1, 2)
        a = n.attrs
        if int(a.get("transA", 0)):
            raise self.g.error(n, "transA = 1 is not supported (activations [M, K])")
        w, ws = self.weight(n, 3, 4, 5, 0 if int(a.get("transB", 0)) else 1)
        if w.ndim != 2:
            raise self.g.error(n, f"its weights must be a constant matrix, not shape {list(w.shape)}")
        w = w if int(a.get("transB", 0)) else w.T
        alpha = F32(a.get("alpha", 1.0))
        acc = self.array(n, src, x, "linear", w, ws, self.int32_bias(n, 6, w.shape[0]))
        scale = (alpha * F32(x.scale)) * ws                   # fp32(fp32(alpha * s_a) * s_b)
        if not n.input(7):                                    # float output
            self.emit(Dequantize(name=self.name(f"{acc}.dequantize"), inputs=(acc,),
                                 scale=scale.astype(np.float64), axis=-1, mode="f32"),
                      n.outputs[0], "real")
            return
        y = self.out_codes(n, 7, 8)
        self.requantize(n, acc, scale / F32(y.scale), y, -1)

    def _integer(self, n: OnnxNode, kind: str) -> None:
        """ConvInteger / MatMulInteger, its Cast to float and the Mul by a constant scale."""
        src, x = self.codes_in(n, 0)
        az = self.g.const(n, 2, "activation zero point", np.zeros((), np.uint8))
        if az.size != 1 or int(az.reshape(-1)[0]) != x.zero_point:
            raise self.g.error(n, f"its activation zero point {az.reshape(-1)[:4].tolist()} must "
                                  f"be the constant zero point of its input codes ({x.zero_point})")
        w = self.g.const(n, 1, "weight")
        if w.dtype != np.int8:
            raise self.g.error(n, f"its weights are {w.dtype}; int8 with zero point 0 only")
        if np.any(self.g.const(n, 3, "weight zero point", np.zeros((), np.int8)) != 0):
            raise self.g.error(n, "its weight zero point must be 0 (symmetric weights)")
        w = w.astype(np.int64)
        cast = self.g.consumers(n.outputs[0])
        mul = self.g.consumers(cast[0].outputs[0]) if len(cast) == 1 else []
        if not (len(cast) == 1 and cast[0].op_type == "Cast" and int(cast[0].attrs.get("to", 0)) == 1
                and len(mul) == 1 and mul[0].op_type == "Mul"):
            raise self.g.error(n, "its int32 output must go to one Cast to float and then one Mul "
                                  "by a constant scale (the dequantisation); nothing else reads "
                                  "an accumulator")
        m = mul[0]
        other = [t for t in m.inputs if t != cast[0].outputs[0]]
        if len(other) != 1 or other[0] not in self.g.constants:
            raise self.g.error(m, "the scale an integer accumulator is multiplied by must be a "
                                  "constant")
        o = w.shape[0] if kind == "conv2d" else w.shape[1]
        scale = self.g.constants[other[0]].astype(F32).reshape(-1)
        if scale.size not in (1, o) or np.any(scale <= 0):
            raise self.g.error(m, f"the dequantisation scale must be positive, one value or one "
                                  f"per output channel ({o}), not shape {list(scale.shape)}")
        ws = scale.astype(np.float64) / x.scale          # the weight scale, for the layer's meaning
        if kind == "conv2d":
            acc = self.array(n, src, x, "conv2d", w, ws, None, groups=int(n.attrs.get("group", 1)),
                             **self.conv_geometry(n, tuple(w.shape[2:])))
        else:
            acc = self.array(n, src, x, "linear", w.T, ws, None)
        self.skip |= {id(cast[0]), id(m)}
        self.emit(Dequantize(name=self.name(f"{acc}.dequantize"), inputs=(acc,),
                             scale=scale.astype(np.float64), axis=1 if kind == "conv2d" else -1,
                             mode="f32"), m.outputs[0], "real")

    def op_ConvInteger(self, n: OnnxNode) -> None:
        self._integer(n, "conv2d")

    def op_MatMulInteger(self, n: OnnxNode) -> None:
        self._integer(n, "linear")

    def op_com_microsoft__QLinearAdd(self, n: OnnxNode) -> None:
        a, ca = self.codes_in(n, 0, 1, 2)
        b, cb = self.codes_in(n, 3, 4, 5)
        y = self.out_codes(n, 6, 7)
        sy = F32(y.scale)
        self.emit(Add(name=self.name(n.name), inputs=(a, b),
                      multipliers=(F32(ca.scale) / sy, F32(cb.scale) / sy),
                      input_zero_points=(ca.zero_point, cb.zero_point), scale=y.scale,
                      zero_point=y.zero_point, bits=8, signed=y.signed, mode="fma_offset"),
                  n.outputs[0], y)

    def op_com_microsoft__QLinearGlobalAveragePool(self, n: OnnxNode) -> None:
        if int(n.attrs.get("channels_last", 0)):
            raise self.g.error(n, "channels_last layouts are not supported (NCHW only)")
        src, x = self.codes_in(n, 0, 1, 2)
        y = self.out_codes(n, 3, 4)
        self.emit(AvgPool(name=self.name(n.name), inputs=(src,), global_pool=True,
                          mode="sum_rescale", input_scale=x.scale, input_zero_point=x.zero_point,
                          scale=y.scale, zero_point=y.zero_point, bits=8, signed=y.signed),
                  n.outputs[0], y)

    def op_com_microsoft__QLinearAveragePool(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0, 1, 2)
        y = self.out_codes(n, 3, 4)
        kernel = tuple(n.attrs.get("kernel_shape", ()))
        geo = self.conv_geometry(n, kernel)
        if int(n.attrs.get("ceil_mode", 0)) or geo["dilation"] != (1, 1):
            raise self.g.error(n, "ceil_mode and dilations are not supported for average pooling")
        self.emit(AvgPool(name=self.name(n.name), inputs=(src,), kernel=kernel,
                          stride=geo["stride"], padding=geo["padding"],
                          count_include_pad=bool(n.attrs.get("count_include_pad", 0)),
                          mode="f32_mean", input_scale=x.scale, input_zero_point=x.zero_point,
                          scale=y.scale, zero_point=y.zero_point, bits=8, signed=y.signed),
                  n.outputs[0], y)

    def op_com_microsoft__QLinearConcat(self, n: OnnxNode) -> None:
        y = self.out_codes(n, 0, 1)
        parts = []
        for k, i in enumerate(range(2, len(n.inputs), 3)):
            src, c = self.codes_in(n, i, i + 1, i + 2)
            if (c.scale, c.zero_point, c.signed) != (y.scale, y.zero_point, y.signed):
                if c.signed != y.signed:
                    raise self.g.error(n, f"input {k} and the output differ in sign")
                dq = self.emit(Dequantize(name=self.name(f"{n.name}.input{k}.dequantize"),
                                          inputs=(src,), scale=[c.scale], zero_point=c.zero_point,
                                          mode="f32"), None, None)
                src = self.emit(Quantize(name=self.name(f"{n.name}.input{k}.quantize"),
                                         inputs=(dq.name,), scale=y.scale, zero_point=y.zero_point,
                                         bits=8, signed=y.signed, mode="f32_div"), None, None).name
            parts.append(src)
        self.emit(Concat(name=self.name(n.name), inputs=tuple(parts), axis=int(n.attrs["axis"])),
                  n.outputs[0], y)

    def op_Concat(self, n: OnnxNode) -> None:
        ins = [self.codes_in(n, i) for i in range(len(n.inputs))]
        self.emit(Concat(name=self.name(n.name), inputs=tuple(s for s, _ in ins),
                         axis=int(n.attrs["axis"])), n.outputs[0], ins[0][1])

    def op_MaxPool(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0)
        if len(n.outputs) > 1 and n.outputs[1]:
            raise self.g.error(n, "its Indices output is not supported")
        kernel = tuple(n.attrs.get("kernel_shape", ()))
        geo = self.conv_geometry(n, kernel)
        if geo["dilation"] != (1, 1):
            raise self.g.error(n, "dilated max pooling is not supported")
        self.emit(MaxPool(name=self.name(n.name), inputs=(src,), kernel=kernel, stride=geo["stride"],
                          padding=geo["padding"], ceil_mode=bool(n.attrs.get("ceil_mode", 0))),
                  n.outputs[0], x)

    def op_Clip(self, n: OnnxNode) -> None:
        src, x = self.codes_in(n, 0)
        lo = int(self.scalar(n, 1, "minimum")) if n.input(1) else None
        hi = int(self.scalar(n, 2, "maximum")) if n.input(2) else None
        self.emit(Clamp(name=self.name(n.name), inputs=(src,), lo=lo, hi=hi), n.outputs[0], x)

    def _pass(self, n: OnnxNode) -> tuple[str, Any]:
        t = n.inputs[0]
        if t not in self.value:
            raise self.g.error(n, f"reads {t!r}, which no mapped node computes")
        return self.value[t], self.kind[t]

    def op_Identity(self, n: OnnxNode) -> None:
        src, k = self._pass(n)
        self.value[n.outputs[0]], self.kind[n.outputs[0]] = src, k

    op_Dropout = op_Identity

    def op_Flatten(self, n: OnnxNode) -> None:
        src, k = self._pass(n)
        if int(n.attrs.get("axis", 1)) != 1:
            raise self.g.error(n, f"flatten from axis {n.attrs['axis']} is not supported (only 1: "
                                  "keep the batch)")
        self.emit(Reshape(name=self.name(n.name), inputs=(src,), shape=(-1,)), n.outputs[0], k)

    def op_Reshape(self, n: OnnxNode) -> None:
        src, k = self._pass(n)
        shape = [int(s) for s in self.g.const(n, 1, "shape").reshape(-1)]
        batch = (self.g.shapes.get(n.inputs[0]) or (None,))[0]
        if not shape or shape[0] not in (0, -1) and shape[0] != batch:
            raise self.g.error(n, f"shape {shape} must keep the batch axis first (0, -1 or the "
                                  "batch size)")
        rest = shape[1:]
        if 0 in rest:
            inshape = self.g.shapes.get(n.inputs[0])
            if not inshape or any(inshape[i + 1] is None for i, s in enumerate(rest) if s == 0):
                raise self.g.error(n, f"shape {shape} copies dimensions whose size is unknown")
            rest = [inshape[i + 1] if s == 0 else s for i, s in enumerate(rest)]
        if shape[0] == -1 and -1 in rest:
            raise self.g.error(n, f"shape {shape} has two -1 entries")
        self.emit(Reshape(name=self.name(n.name), inputs=(src,), shape=tuple(rest)), n.outputs[0], k)


def from_onnx(model: Any, source: str = "model") -> tuple[Graph, dict[str, str]]:
    """The integer graph of a QDQ or QOperator ``onnx.ModelProto`` and, for every graph node
    whose codes onnxruntime also computes, the ONNX tensor holding them (for :func:`reference`).

    Unsupported nodes raise :class:`LayerError` naming the node, its op type and what is
    supported.
    """
    g = OnnxGraph(model, source)
    fuse_qdq(g)
    m = _Mapper(g)
    graph = m.run()
    known = g.all_tensors()
    observed = {}
    for tensor, node in m.value.items():
        if tensor in known and isinstance(m.kind.get(tensor), _Codes) and _after_array(graph, node):
            observed[node] = tensor
    return graph, observed


def _after_array(graph: Graph, name: str) -> bool:
    node = graph.node(name)
    while not isinstance(node, ArrayLayer):
        if not node.inputs:
            return False
        node = graph.node(node.inputs[0])
    return True


def reference(model: Any, graph: Graph, observed: dict[str, str]
              ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``x -> {"logits": ..., node: codes}``: onnxruntime (CPU, :data:`OPTIMIZATION`, one
    thread) on a copy of ``model`` whose outputs also include the codes of every node in
    ``observed`` (graph node -> ONNX tensor)."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    types = {node: onnx.TensorProto.INT8 if graph.types[node].signed else onnx.TensorProto.UINT8
             for node in observed}
    for node, tensor in observed.items():
        if tensor not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(tensor, types[node], None))
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION)
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    first = model.graph.output[0].name

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        outs = dict(zip(names, sess.run(None, {in_name: np.asarray(x, np.float32)})))
        res = {"logits": outs[first]}
        res.update({node: outs[t].astype(np.int64) for node, t in observed.items()})
        return res

    return run


def cpu_has_vnni() -> bool | None:
    """Whether this x86 CPU has AVX-VNNI or AVX512-VNNI (None when it cannot be told: not x86 or
    no /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def saturation_risk(graph: Graph) -> list[str]:
    """Layers of uint8 activations x int8 weights where two products can exceed int16 (what
    MLAS's kernels without VNNI saturate): ``255 * (two largest |w| of a channel) > 32767``."""
    risky = []
    for lay in graph.layers:
        if lay.act_signed:
            continue
        top = np.sort(np.abs(lay.weight.reshape(lay.out_channels, -1)), axis=1)[:, -2:]
        if np.any(255 * top.sum(axis=1) > 32767):
            risky.append(lay.name)
    return risky


def load_onnx(path: str | Path, **_: Any) -> LoadedModel:
    """Load a QDQ or QOperator ``.onnx`` file: the graph and onnxruntime as its reference (when
    onnxruntime is installed)."""
    from accel.frontends import LoadedModel

    path = Path(path)
    model = read_onnx(path)
    graph, observed = from_onnx(model, f"model {path}")
    vnni = cpu_has_vnni()
    risky = saturation_risk(graph)
    semantics = SEMANTICS
    if vnni is False and risky:
        semantics += (f"; NOT exact on this CPU (no VNNI): layers {', '.join(risky)} can saturate "
                      "pairs of products to int16 in onnxruntime")
    try:
        ref = reference(model, graph, observed)
    except ImportError:
        ref = None
    return LoadedModel(graph, "onnx", str(path), reference=ref, semantics=semantics,
                       extra={"vnni": vnni, "saturation_risk": risky, "observed": observed,
                              "optimization": OPTIMIZATION})
