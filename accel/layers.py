"""The integer-layer description: what a quantized conv/linear layer *is* to the array.

Every front end produces one :class:`IntLayer` per quantized conv/linear layer, the
:class:`~accel.nodes.ArrayLayer` node of the integer graph (:mod:`accel.graph`); the executor
lowers it to GEMMs (SPEC section 1) and hands them to an array back end. Everything the hardware
needs is here, as integers, plus the scales that give the integers a meaning:

``weight``
    Integer weights in PyTorch's layout (``[O, I]`` linear, ``[O, C_in/groups, kh, kw]`` conv),
    signed ``weight_bits``-bit, weight zero point 0 (SPEC section 2; anything else is refused).
``weight_scale``
    Real value of one weight step: shape ``(1,)`` per-tensor or ``(O,)`` per-channel (float64).
``input_scale``, ``input_zero_point``, ``act_bits``, ``act_signed``
    The input activation codes: ``real = (code - zero_point) * input_scale``, codes in the
    ``act_bits``-bit range of the given sign. The array sees raw codes; convolutions are padded
    with the zero point's code.
``bias``
    The int64 value preloaded into the output accumulator per channel, *with the zero-point
    correction already folded in*: ``bias = round(b / (s_x * s_w)) - z_x * sum_k w[k, o]``.
    Build it with :func:`fold_zero_point` (exact, int64). It must fit the array's Q bits.

Real-valued meaning of the accumulator: ``acc[t, o] * input_scale * weight_scale[o]`` equals the
layer's real output (bias included) up to the rounding of the bias. What follows the accumulator
(requantization to the next layer's codes, or dequantisation) is a node of its own.

Producers of these records: build them with keyword arguments; every field is validated on
construction and errors name the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from accel.arith import code_range

__all__ = ["LayerError", "IntLayer", "fold_zero_point", "check_pair"]

KINDS = ("linear", "conv2d")


class LayerError(ValueError):
    """An invalid integer-layer description or checkpoint; the message names the layer/file."""


def _int_array(layer: str, what: str, a: Any, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise LayerError(f"layer {layer!r}: {what} must hold integers, not fractional floats")
    elif arr.dtype.kind not in "iub":
        raise LayerError(f"layer {layer!r}: {what} must be an integer array, not {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise LayerError(f"layer {layer!r}: {what} must have {ndim} dimension(s), not shape {arr.shape}")
    out = arr.astype(np.int64)
    out.setflags(write=False)
    return out


def _scale_array(layer: str, what: str, a: Any, channels: int, dtype: type) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(a, dtype=np.float64))
    if arr.ndim != 1 or arr.shape[0] not in (1, channels):
        raise LayerError(f"layer {layer!r}: {what} must have shape (1,) (per-tensor) or "
                         f"({channels},) (per-channel), not {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = int(np.argmax(~np.isfinite(arr) | (arr <= 0)))
        raise LayerError(f"layer {layer!r}: {what}[{bad}] = {arr[bad]} must be positive and finite")
    out = arr.astype(dtype)
    out.setflags(write=False)
    return out


def _check_bits(layer: str, what: str, bits: Any, lo: int = 1, hi: int = 32) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise LayerError(f"layer {layer!r}: {what} must be an integer between {lo} and {hi}, not {bits!r}")


def check_pair(owner: str, what: str, v: Any, lo: int) -> tuple[int, int]:
    """An integer ``>= lo`` or a pair of them (kernel, stride, padding, ...) as a pair; the error
    begins with ``owner`` (``"layer 'conv1'"``, ``"node 'pool'"``)."""
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < lo
                          for i in t):
        raise LayerError(f"{owner}: {what} must be an integer >= {lo} or a pair of them, "
                         f"not {v!r}")
    return int(t[0]), int(t[1])


@dataclass(frozen=True, kw_only=True, eq=False)
class IntLayer:
    """One quantized conv/linear layer as integers (see the module docstring for every field).

    Attributes
    ----------
    name : str
        Module path in the model (``"features.0"``), used in every message.
    kind : {"linear", "conv2d"}
    weight : int64 array
        ``[O, I]`` (linear) or ``[O, C_in/groups, kh, kw]`` (conv2d), signed ``weight_bits`` bits.
    weight_scale : float64 (1,) or (O,)
    input_scale : float
    input_zero_point : int
    act_bits : int
        N of the input codes (1..16).
    act_signed : bool
    weight_bits : int
        M (2..16).
    weight_zero_point : int or int array
        Must be 0 everywhere (kept so producers hand over what they have and get a clear error).
    bias : int64 (O,) or None
        Accumulator preload with the zero-point correction folded in (:func:`fold_zero_point`).
    stride, padding, dilation : (int, int)
        Conv geometry (ignored for linear); padding is filled with ``input_zero_point``.
    groups : int
        Conv groups (depthwise: groups == C_in).
    """

    name: str
    kind: Literal["linear", "conv2d"]
    weight: np.ndarray
    weight_scale: np.ndarray
    input_scale: float
    input_zero_point: int
    act_bits: int = 8
    act_signed: bool = False
    weight_bits: int = 8
    weight_zero_point: Any = 0
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:  # noqa: C901 - one check per field, in field order
        n = str(self.name)
        object.__setattr__(self, "name", n)
        if self.kind not in KINDS:
            raise LayerError(f"layer {n!r}: kind must be one of {', '.join(map(repr, KINDS))}, "
                             f"not {self.kind!r}")
        w = _int_array(n, "weight", self.weight, 2 if self.kind == "linear" else 4)
        object.__setattr__(self, "weight", w)
        o = w.shape[0]
        if o == 0 or w.size == 0:
            raise LayerError(f"layer {n!r}: weight must not be empty, shape {w.shape}")
        _check_bits(n, "weight_bits", self.weight_bits, 2, 16)
        lo, hi = code_range(self.weight_bits, True)
        if int(w.min()) < lo or int(w.max()) > hi:
            raise LayerError(f"layer {n!r}: weights span [{int(w.min())}, {int(w.max())}], outside "
                             f"the signed {self.weight_bits}-bit range [{lo}, {hi}]")
        wz = np.asarray(self.weight_zero_point)
        if wz.dtype.kind not in "iubf" or np.any(wz != 0):
            raise LayerError(f"layer {n!r}: weight zero point must be 0 (symmetric weights, "
                             f"per-tensor or per-channel scale), not {self.weight_zero_point!r}")
        object.__setattr__(self, "weight_zero_point", 0)
        object.__setattr__(self, "weight_scale",
                           _scale_array(n, "weight_scale", self.weight_scale, o, np.float64))
        s = float(self.input_scale)
        if not np.isfinite(s) or s <= 0:
            raise LayerError(f"layer {n!r}: input_scale must be positive and finite, "
                             f"not {self.input_scale!r}")
        object.__setattr__(self, "input_scale", s)
        _check_bits(n, "act_bits", self.act_bits, 1, 16)
        if not isinstance(self.act_signed, (bool, np.bool_)):
            raise LayerError(f"layer {n!r}: act_signed must be true or false, not {self.act_signed!r}")
        object.__setattr__(self, "act_signed", bool(self.act_signed))
        alo, ahi = self.input_range
        z = self.input_zero_point
        if isinstance(z, bool) or not isinstance(z, (int, np.integer)) or not alo <= z <= ahi:
            raise LayerError(f"layer {n!r}: input_zero_point must be an integer in the "
                             f"{'signed' if self.act_signed else 'unsigned'} {self.act_bits}-bit "
                             f"code range [{alo}, {ahi}], not {z!r}")
        object.__setattr__(self, "input_zero_point", int(z))
        if self.bias is not None:
            b = _int_array(n, "bias", self.bias, 1)
            if b.shape != (o,):
                raise LayerError(f"layer {n!r}: bias must have shape ({o},) (one per output "
                                 f"channel), not {b.shape}")
            object.__setattr__(self, "bias", b)
        if self.kind == "conv2d":
            object.__setattr__(self, "stride", check_pair(f"layer {n!r}", "stride", self.stride, 1))
            object.__setattr__(self, "padding", check_pair(f"layer {n!r}", "padding", self.padding, 0))
            object.__setattr__(self, "dilation", check_pair(f"layer {n!r}", "dilation", self.dilation, 1))
            g = self.groups
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 or o % g:
                raise LayerError(f"layer {n!r}: groups must be a positive divisor of the {o} output "
                                 f"channels, not {g!r}")
            object.__setattr__(self, "groups", int(g))
        elif self.groups != 1:
            raise LayerError(f"layer {n!r}: a linear layer has groups = 1, not {self.groups!r}")

    # --- derived shapes and ranges ---------------------------------------------------------
    @property
    def out_channels(self) -> int:
        """O: output channels (features)."""
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        """Input channels (conv: C_in = weight.shape[1] * groups) or input features (linear)."""
        return int(self.weight.shape[1] * (self.groups if self.kind == "conv2d" else 1))

    @property
    def kernel_size(self) -> tuple[int, int]:
        """(kh, kw) of a conv; (1, 1) for linear."""
        return (int(self.weight.shape[2]), int(self.weight.shape[3])) if self.kind == "conv2d" else (1, 1)

    @property
    def input_range(self) -> tuple[int, int]:
        """Inclusive range of the input codes (``act_bits``, ``act_signed``)."""
        return code_range(self.act_bits, self.act_signed)

    @property
    def per_channel(self) -> bool:
        """True when the weight scale has one value per output channel."""
        return self.weight_scale.shape[0] > 1 or self.out_channels == 1

    @property
    def acc_scale(self) -> np.ndarray:
        """Real value of one accumulator step per channel, ``input_scale * weight_scale`` (float64)."""
        return self.input_scale * np.broadcast_to(self.weight_scale, (self.out_channels,))

    # --- (de)serialisation -------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """``{"meta": JSON-able dict, "arrays": {name: numpy array}}`` (see :func:`layers_to_state`)."""
        meta: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "input_scale": self.input_scale,
            "input_zero_point": self.input_zero_point, "act_bits": int(self.act_bits),
            "act_signed": self.act_signed, "weight_bits": int(self.weight_bits),
            "stride": list(self.stride), "padding": list(self.padding),
            "dilation": list(self.dilation), "groups": self.groups,
        }
        arrays: dict[str, np.ndarray] = {"weight": self.weight, "weight_scale": self.weight_scale}
        if self.bias is not None:
            arrays["bias"] = self.bias
        return {"meta": meta, "arrays": arrays}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "IntLayer":
        """Inverse of :meth:`to_state`; raises :class:`LayerError` on a malformed entry."""
        try:
            meta, arrays = state["meta"], state["arrays"]
            arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in arrays.items()}
            name = meta["name"]
            return cls(name=name, kind=meta["kind"], weight=arrays["weight"],
                       weight_scale=arrays["weight_scale"], input_scale=meta["input_scale"],
                       input_zero_point=meta["input_zero_point"], act_bits=meta["act_bits"],
                       act_signed=meta["act_signed"], weight_bits=meta["weight_bits"],
                       bias=arrays.get("bias"), stride=tuple(meta["stride"]),
                       padding=tuple(meta["padding"]), dilation=tuple(meta["dilation"]),
                       groups=meta["groups"])
        except LayerError:
            raise
        except (KeyError, TypeError, AttributeError) as e:
            raise LayerError(f"malformed integer-layer entry: missing or invalid field {e}") from None


def fold_zero_point(bias: np.ndarray | None, weight: np.ndarray, input_zero_point: int) -> np.ndarray:
    """Integer bias with the input zero-point correction folded in (SPEC section 2), exact int64.

    Parameters
    ----------
    bias : int (O,) or None
        Bias in accumulator units, ``round(b / (s_x * s_w[o]))`` (None: zero).
    weight : int [O, ...]
        Integer weights in PyTorch layout.
    input_zero_point : int
        The input code of real zero, z_x.

    Returns
    -------
    int64 (O,)
        ``bias[o] - z_x * sum_k weight[o, k]``, so that the array, fed raw codes, accumulates
        ``sum_k (x - z_x) * w + bias``.
    """
    w = np.asarray(weight).astype(np.int64).reshape(np.shape(weight)[0], -1)
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias).astype(np.int64)
    if b.shape != (w.shape[0],):
        raise LayerError(f"bias must have shape ({w.shape[0]},) to match the weights, not {b.shape}")
    return b - np.int64(input_zero_point) * w.sum(axis=1)
