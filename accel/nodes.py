"""Nodes of the integer graph (:mod:`accel.graph`): each operation of a quantized network, with its
exact integer semantics written once.

Every edge carries either real values (float32) or *integers* described by an :class:`IntType`:
``real = (v - zero_point) * scale``, with ``bits``/``signed`` for codes and ``bits = None`` for an
array layer's accumulator (exact int64, per-channel scale ``s_x * s_w[o]``). Tensors are NCHW for
convolutions and ``[..., features]`` for linear layers; per-channel parameters apply along
``axis`` (1 for NCHW, -1 for features).

Runtimes differ in the details of requantization, so the node carries them instead of one
formula hiding them: a :class:`Requantize` stores its fp32 multiplier *as its front end computed
it* and a declared order of operations (:data:`REQUANT_ORDERS`), and the rounding mode
(:data:`ROUNDINGS`). :class:`ArrayLayer` is the only node the host does not compute: the executor
(:mod:`accel.executor`) hands it to an array back end.

Serialisation: :meth:`Node.to_state` gives ``(attrs, arrays)`` (JSON-able attributes, numpy
arrays); :func:`node_from_state` inverts it. Errors name the node.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from accel.arith import code_range
from accel.layers import IntLayer, LayerError, check_pair

__all__ = ["IntType", "REAL", "Node", "Input", "Quantize", "ArrayLayer", "Requantize", "Clamp",
           "MaxPool", "AvgPool", "Add", "Concat", "Reshape", "Dequantize", "NODE_TYPES",
           "REQUANT_ORDERS", "ROUNDINGS", "QUANTIZE_MODES", "ADD_MODES", "node_from_state",
           "round_to_int", "fma_f32"]

#: How a requantizing node computes ``v`` from its integer input ``a`` (zero point removed) in
#: fp32 before rounding: ``mul`` = ``fp32(a) * m``; ``add_mul`` = ``(fp32(a) + offset) * m`` (a float
#: bias in accumulator units, as fbgemm adds it); ``mul_add`` = ``fp32(a) * m + offset`` (a float
#: bias in output units, added after scaling).
REQUANT_ORDERS = ("mul", "add_mul", "mul_add")
#: Rounding of a requantized value to an integer: half to even (``rint``, what C's nearbyint and
#: numpy do) or half away from zero (C's round).
ROUNDINGS = ("half_even", "half_away")
#: How :class:`Quantize` computes ``x / scale + zero_point``: float64 division, float32 division,
#: float32 multiplication by the fp32 reciprocal, one fused multiply-add ``fma(x, 1 / scale,
#: zero_point)`` rounded once to fp32 (``torch.quantize_per_tensor`` through fbgemm;
#: :func:`fma_f32`), or float32 division followed by a float32 addition of the zero point before the
#: one rounding (``fp32(fp32(x / scale) + zero_point)``, qonnx's ``Quant``; equals ``f32_div``
#: when the zero point is 0).
QUANTIZE_MODES = ("f64_div", "f32_div", "f32_mul_inv", "f32_fma_inv", "f32_div_zp")
#: How :class:`Add` combines its inputs (formulas in its docstring): fp32 multipliers of the
#: zero-point-free codes; onnxruntime's QLinearAdd (fused multiply-adds of the raw codes); qonnx's
#: float Add of dequantised tensors; torch's x86/fbgemm kernel (dequantize with a fused
#: multiply-add, add, multiply by the reciprocal output scale); the same with the dequantization a
#: subtraction and a multiplication (torch's decomposed ops, as pt2e programs run them); QNNPACK's
#: fixed-point multipliers and shift.
ADD_MODES = ("sum_products", "fma_offset", "dequant_sum", "dequant_fma", "dequant_mul", "fixed")
#: Widest codes on an edge: OverQ's raw lanes of 16-bit activations with both overwrites (3N).
MAX_CODE_BITS = 48


def round_to_int(v: np.ndarray, rounding: str) -> np.ndarray:
    """``v`` rounded to integers (same float dtype, in place when possible)."""
    if rounding == "half_even":
        return np.rint(v, out=v) if v.flags.writeable else np.rint(v)
    return np.trunc(v + np.copysign(np.asarray(0.5, v.dtype), v))


def fma_f32(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``fma(x, y, z)`` of float32 operands: ``x * y + z`` rounded once to float32, as an FMA
    instruction computes it (exactly, also where float64 alone would round twice).

    ``x * y`` is exact in float64 (24 + 24 significant bits); the sum is formed in float64 with
    its exact error (TwoSum) and rounded to odd, from which the rounding to float32 is correct
    (53 >= 24 + 2 bits).
    """
    p = np.asarray(x, np.float32).astype(np.float64) * np.asarray(y, np.float32).astype(np.float64)
    z = np.asarray(z, np.float32).astype(np.float64)
    s = np.asarray(p + z)
    bp = s - z
    err = p - bp
    err += z - (s - bp)
    fix = err != 0                                      # inexact and even: round to odd
    fix &= (s.view(np.int64) & 1) == 0
    if fix.any():                                       # rare: most sums are exact in float64
        s = np.array(s, copy=True) if s.ndim == 0 else s
        s[fix] = np.nextafter(s[fix], np.copysign(np.inf, np.broadcast_to(err, s.shape)[fix]))
    return s.astype(np.float32)


def _clip_codes(v: np.ndarray, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """``clamp(v + zero_point, lo, hi)`` as int64, for float ``v`` holding integers: the bounds are
    applied before the shift, exactly (float32 below 2^24, else float64)."""
    if max(zero_point - lo, hi - zero_point) >= 1 << 24:
        v = v.astype(np.float64)
    np.clip(v, lo - zero_point, hi - zero_point, out=v)
    out = v.astype(np.int64)
    if zero_point:
        out += zero_point
    return out


@dataclass(frozen=True)
class IntType:
    """Integers on an edge: ``real = (v - zero_point) * scale``.

    ``bits``/``signed`` bound codes (``None``: an accumulator, exact int64); ``lo``/``hi`` the
    range actually produced (a clamp narrower than the width, e.g. OAQ's input clamp); ``scale``
    has one value (per tensor) or one per channel along ``axis``.
    """

    scale: np.ndarray
    zero_point: int = 0
    bits: int | None = None
    signed: bool = True
    lo: int | None = None
    hi: int | None = None
    axis: int = 1

    @property
    def is_codes(self) -> bool:
        return self.bits is not None

    def same_codes(self, other: "IntType") -> bool:
        """True when both describe the same codes (width, sign, zero point and scale)."""
        return (self.bits, self.signed, self.zero_point) == (other.bits, other.signed, other.zero_point) \
            and self.scale.shape == other.scale.shape and bool(np.all(self.scale == other.scale))


#: The type of an edge of real values.
REAL = "real"


def _f32(name: str, what: str, a: Any, size: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(a, dtype=np.float32))
    if arr.ndim != 1 or (size is not None and arr.shape[0] not in (1, size)):
        raise LayerError(f"node {name!r}: {what} must have shape (1,) or ({size},), not {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise LayerError(f"node {name!r}: {what} must be finite")
    arr.setflags(write=False)
    return arr


def _scale(name: str, what: str, a: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(a, dtype=np.float64))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise LayerError(f"node {name!r}: {what} must be positive and finite (one value or one "
                         f"per channel), not {a!r}")
    arr.setflags(write=False)
    return arr


def _int(name: str, what: str, v: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) \
            or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = "" if lo is None else f" in [{lo}, {hi}]"
        raise LayerError(f"node {name!r}: {what} must be an integer{rng}, not {v!r}")
    return int(v)


def _choice(name: str, what: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise LayerError(f"node {name!r}: {what} must be one of {', '.join(map(repr, choices))}, "
                         f"not {v!r}")
    return v


def _broadcast(p: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Per-channel parameters ``p`` shaped to broadcast along ``axis`` of an ``ndim`` array."""
    if p.shape[0] == 1 or ndim == 0:
        return p.reshape(()) if p.shape[0] == 1 else p
    shape = [1] * ndim
    shape[axis] = p.shape[0]
    return p.reshape(shape)


@dataclass(frozen=True, kw_only=True, eq=False)
class Node:
    """One operation: ``name`` (unique in the graph) and the names of its ``inputs``, in order."""

    name: str
    inputs: tuple[str, ...] = ()
    op: ClassVar[str] = ""
    arity: ClassVar[int | None] = 1
    #: Fields stored as arrays (the rest are JSON attributes).
    array_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        if self.arity is not None and len(self.inputs) != self.arity:
            raise LayerError(f"node {self.name!r} ({self.op}) takes {self.arity} input(s), "
                             f"not {len(self.inputs)}")

    def out_type(self, ins: list[IntType | str]) -> IntType | str:
        """The type of the output given the input types (validates them)."""
        raise NotImplementedError

    def apply(self, *values: np.ndarray) -> np.ndarray:
        """The output of the host operation on its input values."""
        raise NotImplementedError

    def _need_ints(self, t: IntType | str, which: str = "input") -> IntType:
        if not isinstance(t, IntType):
            raise LayerError(f"node {self.name!r} ({self.op}) needs integers on its {which}, "
                             "not real values (quantize them first)")
        return t

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(attrs, arrays)``: JSON-able attributes and the array fields (None ones omitted)."""
        attrs: dict[str, Any] = {"op": self.op}
        arrays: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in self.array_fields:
                if v is not None:
                    arrays[f.name] = np.asarray(v)
            else:
                attrs[f.name] = list(v) if isinstance(v, tuple) else v
        return attrs, arrays


@dataclass(frozen=True, kw_only=True, eq=False)
class Input(Node):
    """The graph input: real values (float32), e.g. an image batch."""

    op: ClassVar[str] = "input"
    arity: ClassVar[int | None] = 0

    def out_type(self, ins):
        return REAL


@dataclass(frozen=True, kw_only=True, eq=False)
class _Codes(Node):
    """A node whose output is codes ``clamp(round(v) + zero_point, lo, hi)`` of ``bits`` bits of a
    sign, one step worth ``scale``; ``lo``/``hi`` default to the ends of that range."""

    scale: float = 1.0
    zero_point: int = 0
    bits: int = 8
    signed: bool = False
    lo: int | None = None
    hi: int | None = None
    rounding: str = "half_even"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.name
        _int(n, "bits", self.bits, 1, MAX_CODE_BITS)
        lo, hi = code_range(self.bits, bool(self.signed))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "zero_point", _int(n, "zero_point", self.zero_point, lo, hi))
        object.__setattr__(self, "lo", lo if self.lo is None else _int(n, "lo", self.lo, lo, hi))
        object.__setattr__(self, "hi", hi if self.hi is None else _int(n, "hi", self.hi, self.lo, hi))
        object.__setattr__(self, "scale", float(_scale(n, "scale", self.scale)[0]))
        _choice(n, "rounding", self.rounding, ROUNDINGS)

    def _codes_type(self) -> IntType:
        return IntType(np.array([self.scale]), self.zero_point, self.bits, self.signed, self.lo,
                       self.hi)

    def _finish(self, v: np.ndarray) -> np.ndarray:
        return _clip_codes(round_to_int(v, self.rounding), self.zero_point, self.lo, self.hi)


@dataclass(frozen=True, kw_only=True, eq=False)
class Quantize(_Codes):
    """Real values to codes: ``clamp(round(x / scale) + zero_point, lo, hi)`` (half to even by
    default, ``rounding``).

    ``lo``/``hi`` default to the ``bits``-bit range of the sign; a narrower ``hi`` is a clamp of
    the input quantizer (OAQ's ``c_x``). ``mode`` is how ``x / scale`` is computed
    (:data:`QUANTIZE_MODES`).
    """

    mode: str = "f64_div"
    op: ClassVar[str] = "quantize"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self.name, "mode", self.mode, QUANTIZE_MODES)

    def out_type(self, ins):
        if ins[0] != REAL:
            raise LayerError(f"node {self.name!r} (quantize) needs real values on its input")
        return self._codes_type()

    def apply(self, x: np.ndarray) -> np.ndarray:
        inv = np.float32(1.0) / np.float32(self.scale)
        if self.mode in ("f32_fma_inv", "f32_div_zp"):        # the zero point inside the rounding
            if self.mode == "f32_fma_inv":
                q = fma_f32(x, inv, np.float32(self.zero_point))
            else:
                q = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
                q += np.float32(self.zero_point)
            return _clip_codes(round_to_int(q, self.rounding), 0, self.lo, self.hi)
        if self.mode == "f64_div":
            q = np.array(x, dtype=np.float64)
            q /= self.scale
        elif self.mode == "f32_div":
            q = np.array(x, dtype=np.float32)
            q /= np.float32(self.scale)
        else:
            q = np.array(x, dtype=np.float32)
            q *= inv
        return _clip_codes(round_to_int(q, self.rounding), self.zero_point, self.lo, self.hi)


@dataclass(frozen=True, kw_only=True, eq=False)
class ArrayLayer(Node):
    """A conv/linear layer computed on the array (:class:`accel.layers.IntLayer`): input codes to
    the int64 accumulator, per channel ``real = acc * input_scale * weight_scale[o]``.

    ``pair_bits`` (None: off) replicates a source runtime that adds the products of a depthwise
    convolution in pairs of kernel taps saturated to ``pair_bits`` signed bits (fbgemm's depthwise
    kernel: 16, ``vpmaddubsw``). With taps ``t = i * kw + j`` of output channel o and raw input
    codes ``x_t`` (padding = the zero point's code)::

        acc_runtime = acc + sum over pairs (t, t + 1), t = 0, 2, 4, ... of
                      sat_B(x_t w_t + x_(t+1) w_(t+1)) - (x_t w_t + x_(t+1) w_(t+1))

    (a last odd tap pairs with 0). The array itself computes exact products; the executor adds
    this host-side correction (:meth:`pair_correction`) to the array's accumulator.
    """

    layer: IntLayer
    pair_bits: int | None = None
    op: ClassVar[str] = "array"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.layer, IntLayer):
            raise LayerError(f"node {self.name!r}: layer must be an IntLayer, not "
                             f"{type(self.layer).__name__}")
        if self.pair_bits is not None:
            _int(self.name, "pair_bits", self.pair_bits, 2, 62)
            lay = self.layer
            if lay.kind != "conv2d" or lay.weight.shape[1] != 1 or lay.groups != lay.in_channels:
                raise LayerError(f"node {self.name!r}: pair_bits applies to depthwise "
                                 "convolutions (groups = input channels) only")

    def pair_correction(self, codes: np.ndarray) -> np.ndarray:
        """``acc_runtime - acc`` of the pair saturation (class docstring), int64, the layer's
        output shape ``[N, O, Ho, Wo]``; one pass per pair of taps."""
        from accel.lowering import padded_patches

        lay = self.layer
        _, view = padded_patches(codes, lay)                   # [N, Ho, Wo, C, kh, kw]
        kh, kw = lay.kernel_size
        mult = lay.out_channels // lay.in_channels             # outputs per input channel
        w = lay.weight.reshape(lay.out_channels, kh * kw)
        lo, hi = code_range(int(self.pair_bits), True)
        x = view.numpy()                  # float32 codes; every value below is an integer
        if float(np.abs(x).max(initial=0)) * float(np.abs(w).max()) * kh * kw * 4 >= 2 ** 24:
            x = x.astype(np.float64)     # float32 would no longer be exact
        wf = w.astype(x.dtype)
        out = np.zeros((*x.shape[:3], lay.out_channels), x.dtype)

        def tap(t: int) -> np.ndarray:                          # [N, Ho, Wo, O] products, exact
            v = x[:, :, :, :, t // kw, t % kw]
            return (v if mult == 1 else np.repeat(v, mult, axis=3)) * wf[:, t]

        for t in range(0, kh * kw, 2):
            p = tap(t) if t + 1 == kh * kw else tap(t) + tap(t + 1)
            out += np.clip(p, lo, hi) - p
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).astype(np.int64)

    @property
    def axis(self) -> int:
        return 1 if self.layer.kind == "conv2d" else -1

    def out_type(self, ins):
        t = self._need_ints(ins[0])
        lay = self.layer
        if not t.is_codes or (t.bits, t.signed, t.zero_point) != (lay.act_bits, lay.act_signed,
                                                                    lay.input_zero_point):
            got = "an accumulator" if not t.is_codes else (
                f"{'signed' if t.signed else 'unsigned'} {t.bits}-bit codes, zero point {t.zero_point}")
            raise LayerError(f"node {self.name!r}: layer {lay.name!r} takes "
                             f"{'signed' if lay.act_signed else 'unsigned'} {lay.act_bits}-bit codes "
                             f"with zero point {lay.input_zero_point}, but its input carries {got}")
        if t.scale.shape != (1,) or not np.isclose(t.scale[0], lay.input_scale, rtol=1e-6):
            raise LayerError(f"node {self.name!r}: layer {lay.name!r} has input scale "
                             f"{lay.input_scale!r}, its input codes scale {t.scale.tolist()}")
        return IntType(lay.acc_scale, 0, None, True, axis=self.axis)

    def to_state(self):
        meta = self.layer.to_state()
        attrs = {"op": self.op, "name": self.name, "inputs": list(self.inputs), "layer": meta["meta"],
                 "pair_bits": self.pair_bits}
        return attrs, {f"layer.{k}": v for k, v in meta["arrays"].items()}


@dataclass(frozen=True, kw_only=True, eq=False)
class Requantize(_Codes):
    """Integers (an accumulator, or codes with ``input_zero_point``) to codes, per channel::

        a = fp32(v - input_zero_point)
        v = a * multiplier                 (order "mul")
            (a + offset) * multiplier      (order "add_mul")
            a * multiplier + offset        (order "mul_add")     every step in fp32
        code = clamp(round(v) + zero_point, lo, hi)

    ``multiplier`` (fp32, one or one per channel along ``axis``) is kept as the front end computed
    it (``s_x * s_w / s_y`` in its runtime's operand order); ``scale`` is ``s_y``. ``lo`` defaults
    to the range's low end (a fused ReLU sets it to the zero point), ``hi`` to its high end.
    """

    multiplier: np.ndarray
    input_zero_point: int = 0
    offset: np.ndarray | None = None
    order: str = "mul"
    axis: int = 1
    op: ClassVar[str] = "requantize"
    array_fields: ClassVar[tuple[str, ...]] = ("multiplier", "offset")

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.name
        object.__setattr__(self, "multiplier", _f32(n, "multiplier", self.multiplier))
        _choice(n, "order", self.order, REQUANT_ORDERS)
        if (self.offset is None) != (self.order == "mul"):
            raise LayerError(f"node {n!r}: order {self.order!r} "
                             + ("takes no offset" if self.order == "mul" else "needs an offset"))
        if self.offset is not None:
            object.__setattr__(self, "offset", _f32(n, "offset", self.offset))
        _int(n, "input_zero_point", self.input_zero_point)
        _int(n, "axis", self.axis)

    def out_type(self, ins):
        t = self._need_ints(ins[0])
        if t.zero_point != self.input_zero_point:
            raise LayerError(f"node {self.name!r}: input zero point {self.input_zero_point} but its "
                             f"input carries {t.zero_point}")
        for what, p in (("multiplier", self.multiplier), ("offset", self.offset)):
            if p is not None and p.shape[0] > 1 and t.scale.shape[0] not in (1, p.shape[0]):
                raise LayerError(f"node {self.name!r}: {p.shape[0]} {what}s for an input with "
                                 f"{t.scale.shape[0]} channel scales")
        return self._codes_type()

    def apply(self, v: np.ndarray) -> np.ndarray:
        a = np.asarray(v)
        a = (a - self.input_zero_point if self.input_zero_point else a).astype(np.float32)
        m = _broadcast(self.multiplier, a.ndim, self.axis)
        if self.order == "add_mul":
            a += _broadcast(self.offset, a.ndim, self.axis)
        a *= m
        if self.order == "mul_add":
            a += _broadcast(self.offset, a.ndim, self.axis)
        return self._finish(a)


@dataclass(frozen=True, kw_only=True, eq=False)
class Clamp(Node):
    """Codes clamped to ``[lo, hi]`` (``None``: no bound); ReLU is ``lo = zero point``."""

    lo: int | None = None
    hi: int | None = None
    op: ClassVar[str] = "clamp"

    def out_type(self, ins):
        t = self._need_ints(ins[0])
        lo = t.lo if self.lo is None or (t.lo is not None and t.lo > self.lo) else self.lo
        hi = t.hi if self.hi is None or (t.hi is not None and t.hi < self.hi) else self.hi
        return dataclasses.replace(t, lo=lo, hi=hi)

    def apply(self, v: np.ndarray) -> np.ndarray:
        return np.clip(v, self.lo, self.hi)


class _Window:
    """Mixin: a 2-D pooling window over NCHW integers (``kernel``, ``stride``, ``padding``)."""

    def _check_window(self) -> None:
        n = self.name
        object.__setattr__(self, "kernel", check_pair(f"node {n!r}", "kernel", self.kernel, 1))
        object.__setattr__(self, "stride", check_pair(f"node {n!r}", "stride", self.kernel if self.stride is None
                                                 else self.stride, 1))
        object.__setattr__(self, "padding", check_pair(f"node {n!r}", "padding", self.padding, 0))
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise LayerError(f"node {n!r}: padding {self.padding} must be at most half the kernel "
                             f"{self.kernel}")

    def _out(self, size: int, k: int, s: int, p: int) -> int:
        """PyTorch's pooled length of an axis of ``size`` (unpadded) codes."""
        if size + 2 * p < k:
            raise LayerError(f"node {self.name!r}: input smaller than the {self.kernel} window")
        n = (size + 2 * p - k + (s - 1 if self.ceil_mode else 0)) // s + 1
        if self.ceil_mode and (n - 1) * s >= size + p:       # a window may not start in the padding
            n -= 1
        return n

    def _windows(self, v: np.ndarray, fill: int, extra: int | None = None) -> Iterator[np.ndarray]:
        """The window positions of the padded input, row-major: for each ``(i, j)`` of the
        kernel, ``[N, C, Ho, Wo]`` (strided views) of the element at that position of every
        window. ``fill`` in the padding, ``extra`` (default ``fill``) past it, where ceil_mode
        windows run over the edge. Reductions over windows are ``kh * kw`` whole-array passes."""
        if v.ndim != 4:
            raise LayerError(f"node {self.name!r} ({self.op}) needs NCHW input, not shape {v.shape}")
        (ph, pw), (kh, kw), (sh, sw) = self.padding, self.kernel, self.stride
        ho, wo = self._out(v.shape[2], kh, sh, ph), self._out(v.shape[3], kw, sw, pw)
        eh = max(0, (ho - 1) * sh + kh - v.shape[2] - 2 * ph)     # ceil_mode: past the padding
        ew = max(0, (wo - 1) * sw + kw - v.shape[3] - 2 * pw)
        p = v
        if ph or pw:
            p = np.pad(p, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
        if eh or ew:
            p = np.pad(p, ((0, 0), (0, 0), (0, eh), (0, ew)),
                       constant_values=fill if extra is None else extra)
        for i in range(kh):
            for j in range(kw):
                yield p[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]

    def _reduce(self, v: np.ndarray, ufunc: np.ufunc, fill: int,
                extra: int | None = None) -> np.ndarray:
        """``ufunc`` reduced over every window (:meth:`_windows`), ``[N, C, Ho, Wo]``."""
        out = None
        for pos in self._windows(v, fill, extra):
            out = pos.copy() if out is None else ufunc(out, pos, out=out)
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class MaxPool(_Window, Node):
    """Max over each window of NCHW codes (padding never wins: it is below every code)."""

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    op: ClassVar[str] = "maxpool"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_window()

    def out_type(self, ins):
        return self._need_ints(ins[0])

    def apply(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        return self._reduce(v, np.maximum, np.iinfo(np.int64).min)


@dataclass(frozen=True, kw_only=True, eq=False)
class AvgPool(_Window, _Codes):
    """Average pooling of NCHW codes, by ``mode``. The integer modes sum exactly, then rescale::

        S = sum over the window of (code - input_zero_point)          (int64; padding adds 0)
        n = window size (count_include_pad) or the codes inside it
        "sum_mul":     code = clamp(round(fp32(S) * fp32(multiplier / n)) + zero_point, lo, hi)
        "sum_shift":   code = clamp((S >> log2(n)) + zero_point, lo, hi)
        "sum_rescale": code = clamp(round(fp32(S) * m) + zero_point, lo, hi),
                       m = fp32(input_scale / fp32(scale * fp32(n)))     (every step in fp32)

    and ``"f32_mean"`` averages dequantised values in fp32::

        d = fp32(input_scale * fp32(code - input_zero_point))
        S = ((0 + d_1) + d_2) + ...        fp32, the window's codes in row-major order
        code = clamp(round(fp32(fp32(fp32(S / n) / scale) + zero_point)), lo, hi)

    ``multiplier`` is ``s_in / s_out`` (fp32 as computed by the front end; ``sum_mul``);
    ``input_scale`` is ``s_in`` (fp32; ``sum_rescale`` and ``f32_mean``, which need it);
    ``sum_shift`` truncates toward minus infinity and needs a power-of-two window.
    ``sum_rescale`` is onnxruntime's QLinearGlobalAveragePool, ``f32_mean`` its
    QLinearAveragePool. ``global_pool``: the window is the whole feature map (kernel and stride
    are ignored).
    """

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    global_pool: bool = False
    multiplier: float = 1.0
    mode: str = "sum_mul"
    input_zero_point: int = 0
    input_scale: float | None = None
    op: ClassVar[str] = "avgpool"
    MODES: ClassVar[tuple[str, ...]] = ("sum_mul", "sum_shift", "sum_rescale", "f32_mean")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.global_pool:
            self._check_window()
        _choice(self.name, "mode", self.mode, self.MODES)
        object.__setattr__(self, "multiplier", float(np.float32(self.multiplier)))
        if self.mode in ("sum_rescale", "f32_mean"):
            if self.input_scale is None:
                raise LayerError(f"node {self.name!r}: mode {self.mode!r} needs the input_scale")
            object.__setattr__(self, "input_scale", float(np.float32(
                _scale(self.name, "input_scale", self.input_scale)[0])))

    def out_type(self, ins):
        t = self._need_ints(ins[0])
        if t.zero_point != self.input_zero_point or t.scale.shape != (1,):
            raise LayerError(f"node {self.name!r}: input zero point {self.input_zero_point} (per "
                             f"tensor) but its input carries {t.zero_point}")
        if self.input_scale is not None and np.float32(t.scale[0]) != np.float32(self.input_scale):
            raise LayerError(f"node {self.name!r}: input_scale {self.input_scale!r} but its input "
                             f"codes have scale {float(t.scale[0])!r}")
        return self._codes_type()

    def apply(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.int64) - self.input_zero_point
        if self.global_pool:
            s = v.sum(axis=(2, 3), keepdims=True)
            n = np.full(s.shape, v.shape[2] * v.shape[3], dtype=np.int64)
        else:
            s = self._reduce(v, np.add, 0)
            # the divisor counts the codes (and with count_include_pad the padding) a window
            # covers, never the part past the padding that ceil_mode adds
            ones = self._reduce(np.ones((1, 1, *v.shape[2:]), np.int64), np.add,
                                1 if self.count_include_pad else 0, 0)
            n = np.broadcast_to(ones, s.shape)
        if self.mode == "f32_mean":
            return self._f32_mean(v, n)
        if self.mode == "sum_shift":
            if np.any(n & (n - 1)):
                raise LayerError(f"node {self.name!r}: sum_shift needs power-of-two windows, "
                                 f"not {sorted(set(n.ravel().tolist()))}")
            shift = np.log2(n).astype(np.int64)
            return _clip_codes((s >> shift).astype(np.float64), self.zero_point, self.lo, self.hi)
        if self.mode == "sum_rescale":
            f32 = np.float32
            m = f32(self.input_scale) / (f32(self.scale) * n.astype(f32))
        else:
            m = (np.float64(self.multiplier) / n).astype(np.float32)
        return self._finish(s.astype(np.float32) * m)

    def _f32_mean(self, v: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Mode ``f32_mean`` (class docstring) on codes ``v`` with the zero point removed."""
        f32 = np.float32
        d = f32(self.input_scale) * v.astype(f32)
        if self.global_pool:                          # every position of the map is a window position
            positions = (d[:, :, i:i + 1, j:j + 1] for i in range(d.shape[2])
                         for j in range(d.shape[3]))
        else:
            positions = self._windows(d, 0)
        acc = None
        for pos in positions:                         # one fp32 add per window position, in order
            # the sum starts at +0, as in the docstring: 0 + d_1 (turns a -0 into +0)
            acc = pos + f32(0) if acc is None else np.add(acc, pos, out=acc)
        q = acc / n.astype(f32)
        q /= f32(self.scale)
        q += f32(self.zero_point)
        return _clip_codes(round_to_int(q, self.rounding), 0, self.lo, self.hi)


@dataclass(frozen=True, kw_only=True, eq=False)
class Add(_Codes):
    """Sum of two code tensors (a residual connection) requantized to output codes, as ``mode``
    says (:data:`ADD_MODES`; fp32 ``multipliers`` ``(ma, mb)``: ``s_a / s_y, s_b / s_y``, the
    input scales ``s_a, s_b`` in ``dequant_sum``, ``dequant_fma`` and ``dequant_mul``, integers in
    ``fixed``)::

        "sum_products":  v = fp32(a - za) * ma + fp32(b - zb) * mb          (three fp32 roundings)
                         code = clamp(round(v) + zero_point, lo, hi)
        "fma_offset":    c = fp32(zero_point) - fma(ma, za, fp32(mb * zb))  (the zero points folded)
                         v = fma(fp32(a), ma, fma(fp32(b), mb, c))           (raw codes a, b)
                         code = clamp(round(v), lo, hi)
        "dequant_sum":   v = fp32(fp32(a - za) * ma) + fp32(fp32(b - zb) * mb)   (reals, fp32)
                         code = clamp(round(fp32(fp32(v / scale) + zero_point)), lo, hi)
        "dequant_fma":   da = fma(ma, fp32(a), fp32(ma * -za)), db likewise
                         v = fp32(fp32(da + db) * fp32(1 / scale))
                         code = clamp(round(v) + zero_point, lo, hi)
        "dequant_mul":   da = fp32(fp32(a - za) * ma), db likewise
                         v = fp32(fp32(da + db) * fp32(1 / scale))
                         code = clamp(round(v) + zero_point, lo, hi)
        "fixed":         v = (ma (a - za) + mb (b - zb)) / 2^shift           (exact integers)
                         code = clamp(round(v) + zero_point, lo, hi)

    ``fma_offset`` is onnxruntime's QLinearAdd (MLAS, x86 AVX2 kernel; the offset's expression as
    its compiler contracts it); ``fma`` rounds once (:func:`fma_f32`). ``dequant_sum`` is a float
    Add of two dequantised tensors and a quantizer after it (qonnx's executor). ``dequant_fma`` is
    torch's quantized add on x86 / fbgemm (its vector kernel); ``dequant_mul`` a float add between
    torch's decomposed dequantize and quantize ops (pt2e); ``fixed`` is QNNPACK's
    (``rounding="half_away"``). ``rounding`` applies to ``v`` in every mode. A fused ReLU:
    ``lo = zero point``.
    """

    multipliers: tuple[float, float]
    input_zero_points: tuple[int, int] = (0, 0)
    mode: str = "sum_products"
    shift: int = 0
    op: ClassVar[str] = "add"
    arity: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "multipliers", tuple(float(np.float32(m)) for m in self.multipliers))
        object.__setattr__(self, "input_zero_points",
                           tuple(_int(self.name, "input zero point", z) for z in self.input_zero_points))
        _choice(self.name, "mode", self.mode, ADD_MODES)
        object.__setattr__(self, "shift", _int(self.name, "shift", self.shift, 0, 62))
        if self.mode == "fixed":
            for m in self.multipliers:
                if m != int(m) or not 0 <= m < 2 ** 31:
                    raise LayerError(f"node {self.name!r}: fixed-point multipliers must be "
                                     f"integers in [0, 2^31), not {self.multipliers}")

    def out_type(self, ins):
        for i, (t, z) in enumerate(zip(ins, self.input_zero_points)):
            t = self._need_ints(t, f"input {i}")
            if t.zero_point != z:
                raise LayerError(f"node {self.name!r}: input {i} zero point {z} but it carries "
                                 f"{t.zero_point}")
        return self._codes_type()

    def apply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (za, zb), (ma, mb) = self.input_zero_points, self.multipliers
        if self.mode == "fixed":
            acc = (np.asarray(a, np.int64) - za) * int(ma) + (np.asarray(b, np.int64) - zb) * int(mb)
            return _clip_codes(_shift_round(acc, self.shift, self.rounding), self.zero_point,
                               self.lo, self.hi)
        f32 = np.float32
        if self.mode == "fma_offset":
            c = f32(self.zero_point) - fma_f32(f32(ma), f32(za), f32(mb) * f32(zb))
            v = fma_f32(np.asarray(a).astype(f32), f32(ma),
                        fma_f32(np.asarray(b).astype(f32), f32(mb), c))
            return _clip_codes(round_to_int(v, self.rounding), 0, self.lo, self.hi)
        if self.mode == "dequant_sum":
            v = (np.asarray(a) - za).astype(f32) * f32(ma) + (np.asarray(b) - zb).astype(f32) * f32(mb)
            v /= f32(self.scale)
            v += f32(self.zero_point)
            return _clip_codes(round_to_int(v, self.rounding), 0, self.lo, self.hi)
        if self.mode == "dequant_fma":
            da = fma_f32(ma, a, f32(ma) * f32(-za))
            db = fma_f32(mb, b, f32(mb) * f32(-zb))
            return self._finish((da + db) * (f32(1) / f32(self.scale)))
        if self.mode == "dequant_mul":
            da = (np.asarray(a) - za).astype(f32) * f32(ma)
            db = (np.asarray(b) - zb).astype(f32) * f32(mb)
            return self._finish((da + db) * (f32(1) / f32(self.scale)))
        v = (np.asarray(a) - za if za else np.asarray(a)).astype(f32)
        v *= f32(ma)
        vb = (np.asarray(b) - zb if zb else np.asarray(b)).astype(f32)
        vb *= f32(mb)
        v += vb
        return self._finish(v)


def _shift_round(acc: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """``round(acc / 2^shift)`` of int64 ``acc``, exactly, as float64 integers (for clipping)."""
    if shift == 0:
        return acc.astype(np.float64)
    q = acc >> shift                                   # floor
    rem = acc - (q << shift)                           # in [0, 2^shift)
    half = np.int64(1) << (shift - 1)
    if rounding == "half_away":
        up = (rem > half) | ((rem == half) & (acc >= 0))
    else:
        up = (rem > half) | ((rem == half) & (q & 1 == 1))
    return (q + up).astype(np.float64)


@dataclass(frozen=True, kw_only=True, eq=False)
class Concat(Node):
    """Concatenation along ``axis`` of codes that share width, sign, scale and zero point."""

    axis: int = 1
    op: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None

    def out_type(self, ins):
        if not ins:
            raise LayerError(f"node {self.name!r} (concat) needs at least one input")
        first = self._need_ints(ins[0], "input 0")
        for i, t in enumerate(ins[1:], 1):
            if not self._need_ints(t, f"input {i}").same_codes(first):
                raise LayerError(f"node {self.name!r} (concat): input {i} has other codes than "
                                 "input 0 (width, sign, scale, zero point); requantize it first")
        return first

    def apply(self, *values: np.ndarray) -> np.ndarray:
        return np.concatenate(values, axis=self.axis)


@dataclass(frozen=True, kw_only=True, eq=False)
class Reshape(Node):
    """A new shape for every sample (the batch axis stays): ``shape`` excludes it, -1 allowed.
    Flatten is ``Reshape(shape=(-1,))``."""

    shape: tuple[int, ...] = (-1,)
    op: ClassVar[str] = "reshape"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "shape", tuple(_int(self.name, "shape entry", s, -1) for s in self.shape))

    def out_type(self, ins):
        t = ins[0]
        if isinstance(t, IntType) and t.scale.shape[0] > 1:
            raise LayerError(f"node {self.name!r}: per-channel scales do not survive a reshape; "
                             "requantize to per-tensor codes first")
        return t

    def apply(self, v: np.ndarray) -> np.ndarray:
        return np.reshape(v, (np.shape(v)[0], *self.shape))


@dataclass(frozen=True, kw_only=True, eq=False)
class Dequantize(Node):
    """Integers to real values, per channel along ``axis``: ``(v - zero_point) * scale`` in float64
    rounded once to float32 (mode ``f64``), or ``fp32(v - zero_point) * fp32(scale)`` as a runtime's
    fp32 arithmetic does (mode ``f32``)."""

    scale: np.ndarray
    zero_point: int = 0
    axis: int = 1
    mode: str = "f64"
    op: ClassVar[str] = "dequantize"
    array_fields: ClassVar[tuple[str, ...]] = ("scale",)
    MODES: ClassVar[tuple[str, ...]] = ("f64", "f32")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", _scale(self.name, "scale", self.scale))
        _int(self.name, "zero_point", self.zero_point)
        _choice(self.name, "mode", self.mode, self.MODES)

    def out_type(self, ins):
        self._need_ints(ins[0])
        return REAL

    def apply(self, v: np.ndarray) -> np.ndarray:
        dt = np.float64 if self.mode == "f64" else np.float32
        a = np.asarray(v)
        a = (a - self.zero_point if self.zero_point else a).astype(dt)
        return (a * _broadcast(self.scale.astype(dt), a.ndim, self.axis)).astype(np.float32)


#: Node classes by their ``op`` name.
NODE_TYPES: dict[str, type[Node]] = {c.op: c for c in (Input, Quantize, ArrayLayer, Requantize,
                                                       Clamp, MaxPool, AvgPool, Add, Concat,
                                                       Reshape, Dequantize)}


def node_from_state(attrs: dict[str, Any], arrays: dict[str, np.ndarray]) -> Node:
    """Inverse of :meth:`Node.to_state`; raises :class:`LayerError` on a malformed entry."""
    attrs = dict(attrs)
    op = attrs.pop("op", None)
    if op not in NODE_TYPES:
        raise LayerError(f"unknown node op {op!r}; known: {', '.join(NODE_TYPES)}")
    cls = NODE_TYPES[op]
    try:
        if cls is ArrayLayer:
            layer = IntLayer.from_state({"meta": attrs.pop("layer"),
                                         "arrays": {k[len("layer."):]: v for k, v in arrays.items()
                                                    if k.startswith("layer.")}})
            return ArrayLayer(layer=layer, **attrs)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in attrs.items()}
        kw.update({k: np.asarray(v) for k, v in arrays.items()})
        return cls(**kw)
    except LayerError:
        raise
    except (TypeError, ValueError) as e:
        raise LayerError(f"malformed {op!r} node {attrs.get('name')!r}: {e}") from None
