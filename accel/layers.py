"""The integer-layer description: what a quantized conv/linear layer *is* to the array.

A quantizer (``accel.quant``, ``models/``, or the torch.ao importer in ``sim.tlm``) produces one
:class:`IntLayer` per quantized ``nn.Linear`` / ``nn.Conv2d``; the transaction-level model lowers
it to GEMMs (SPEC section 1) and runs them on the simulated array. Everything the hardware needs
is here, as integers, plus the scales that give the integers a meaning:

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
``requant``
    How the accumulator becomes the next layer's codes (:class:`Requant`: per-channel fp32
    multiplier, round half to even, clamp to the next code range, next zero point), or ``None``
    for a last layer whose accumulator is dequantised to float: ``acc * input_scale * weight_scale``.

Real-valued meaning of the accumulator: ``acc[t, o] * input_scale * weight_scale[o]`` equals the
layer's real output (bias included) up to the rounding of the bias.

Checkpoints: :func:`layers_to_state` / :func:`layers_from_state` convert a list of layers to a
dict of plain tensors and JSON-able metadata (what ``torch.save`` stores and
``torch.load(weights_only=True)`` reads back); :func:`save_layers` / :func:`load_layers` do the
file round trip. A malformed or corrupt checkpoint raises :class:`LayerError` naming the file and
what is wrong.

Producers of these records: build them with keyword arguments; every field is validated on
construction and errors name the layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["LayerError", "Requant", "IntLayer", "HasIntLayer", "fold_zero_point", "code_range",
           "layers_to_state", "layers_from_state", "save_layers", "load_layers", "STATE_FORMAT"]

#: Identifies a checkpoint dict written by :func:`layers_to_state` (and its schema version).
STATE_FORMAT = "accel-int-layers"
STATE_VERSION = 1

KINDS = ("linear", "conv2d")


class LayerError(ValueError):
    """An invalid integer-layer description or checkpoint; the message names the layer/file."""


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive integer range of a ``bits``-bit code of the given sign."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


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


def _pair(layer: str, what: str, v: Any, lo: int) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < lo
                          for i in t):
        raise LayerError(f"layer {layer!r}: {what} must be an integer >= {lo} or a pair of them, "
                         f"not {v!r}")
    return int(t[0]), int(t[1])


@dataclass(frozen=True, kw_only=True, eq=False)
class Requant:
    """Requantization of an int accumulator to the next layer's codes (SPEC section 5).

    Per output channel o, on the Q-bit accumulator ``acc`` (int64)::

        v = fp32(acc)                              # int -> float32, round to nearest even
        v = fp32(v + offset[o])                    # only when offset is given (fbgemm float bias)
        v = fp32(v * multiplier[o])
        code = clamp(rint(v) + zero_point, lo, hi) # rint: round half to even
        code = max(code, zero_point) if relu

    Attributes
    ----------
    multiplier : float32 (1,) or (O,)
        ``s_x * s_w[o] / s_y``, as the producer computed it in fp32.
    scale : float
        ``s_y``, the real value of one output code step (dequantisation of the codes).
    zero_point : int
        The next layer's input zero point (code of real zero).
    out_bits : int
        Width of the next layer's codes, 1..32.
    out_signed : bool
        Sign of the next layer's codes.
    offset : float32 (O,) or None
        Added to the accumulator in fp32 before the multiplier (a float bias in accumulator
        units, as fbgemm applies it); ``None`` when the bias is in the integer accumulator.
    relu : bool
        Fused ReLU: clamp below at the zero point.
    """

    multiplier: np.ndarray
    scale: float
    zero_point: int
    out_bits: int = 8
    out_signed: bool = False
    offset: np.ndarray | None = None
    relu: bool = False
    layer: str = field(default="?", compare=False)

    def __post_init__(self) -> None:
        name = f"{self.layer} (requant)"
        m = np.atleast_1d(np.asarray(self.multiplier, dtype=np.float64))
        object.__setattr__(self, "multiplier",
                           _scale_array(name, "multiplier", m, max(m.shape[0], 1), np.float32))
        s = float(self.scale)
        if not np.isfinite(s) or s <= 0:
            raise LayerError(f"layer {name!r}: scale must be positive and finite, not {self.scale!r}")
        object.__setattr__(self, "scale", s)
        _check_bits(name, "out_bits", self.out_bits)
        if not isinstance(self.out_signed, (bool, np.bool_)):
            raise LayerError(f"layer {name!r}: out_signed must be true or false, not {self.out_signed!r}")
        lo, hi = code_range(self.out_bits, bool(self.out_signed))
        if isinstance(self.zero_point, bool) or not isinstance(self.zero_point, (int, np.integer)) \
                or not lo <= self.zero_point <= hi:
            raise LayerError(f"layer {name!r}: zero_point must be an integer in the output code "
                             f"range [{lo}, {hi}], not {self.zero_point!r}")
        object.__setattr__(self, "zero_point", int(self.zero_point))
        if self.offset is not None:
            off = np.atleast_1d(np.asarray(self.offset, dtype=np.float32))
            if off.ndim != 1 or not np.all(np.isfinite(off)):
                raise LayerError(f"layer {name!r}: offset must be a finite 1-D array")
            off.setflags(write=False)
            object.__setattr__(self, "offset", off)

    @property
    def out_range(self) -> tuple[int, int]:
        """Inclusive range of the output codes."""
        return code_range(self.out_bits, self.out_signed)

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """Codes (int64, same shape) of accumulators ``acc[..., O]`` (channel axis last)."""
        v = np.asarray(acc).astype(np.float32)      # a fresh array: the steps below run in place
        if self.offset is not None:
            v += self.offset
        v *= self.multiplier
        lo, hi = self.out_range
        if self.relu:
            lo = max(lo, self.zero_point)
        np.rint(v, out=v)
        # clamp(rint(v) + zp, lo, hi) == clamp(rint(v), lo - zp, hi - zp) + zp, with the bounds
        # exact: float32 holds them below 2^24, float64 for wider codes
        z = self.zero_point
        if max(z - lo, hi - z) >= 1 << 24:
            v = v.astype(np.float64)
        np.clip(v, lo - z, hi - z, out=v)
        return v.astype(np.int64) + z

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Real values (float32) of output codes: ``(code - zero_point) * scale``."""
        return ((np.asarray(codes, dtype=np.float64) - self.zero_point) * self.scale).astype(np.float32)


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
    requant : Requant or None
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
    requant: Requant | None = None
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
        if self.requant is not None:
            if not isinstance(self.requant, Requant):
                raise LayerError(f"layer {n!r}: requant must be a Requant or None, "
                                 f"not {type(self.requant).__name__}")
            for what, arr in (("multiplier", self.requant.multiplier), ("offset", self.requant.offset)):
                if arr is not None and arr.shape[0] not in (1, o):
                    raise LayerError(f"layer {n!r}: requant {what} must have shape (1,) or ({o},), "
                                     f"not {arr.shape}")
        if self.kind == "conv2d":
            object.__setattr__(self, "stride", _pair(n, "stride", self.stride, 1))
            object.__setattr__(self, "padding", _pair(n, "padding", self.padding, 0))
            object.__setattr__(self, "dilation", _pair(n, "dilation", self.dilation, 1))
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

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Codes (int64) of real inputs: ``clamp(rint(x / input_scale) + zero_point)``, half to even."""
        lo, hi = self.input_range
        z = self.input_zero_point
        q = np.array(x, dtype=np.float64)           # a fresh array: the steps below run in place
        q /= self.input_scale
        np.rint(q, out=q)
        np.clip(q, lo - z, hi - z, out=q)           # == clamp(rint(.) + z, lo, hi) - z
        return q.astype(np.int64) + z

    def dequantize_output(self, acc: np.ndarray) -> np.ndarray:
        """Real outputs (float32) of accumulators ``acc[..., O]`` when there is no requant."""
        return (np.asarray(acc, dtype=np.float64) * self.acc_scale).astype(np.float32)

    # --- (de)serialisation -------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """``{"meta": JSON-able dict, "arrays": {name: numpy array}}`` (see :func:`layers_to_state`)."""
        meta: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "input_scale": self.input_scale,
            "input_zero_point": self.input_zero_point, "act_bits": int(self.act_bits),
            "act_signed": self.act_signed, "weight_bits": int(self.weight_bits),
            "stride": list(self.stride), "padding": list(self.padding),
            "dilation": list(self.dilation), "groups": self.groups, "requant": None,
        }
        arrays: dict[str, np.ndarray] = {"weight": self.weight, "weight_scale": self.weight_scale}
        if self.bias is not None:
            arrays["bias"] = self.bias
        if self.requant is not None:
            r = self.requant
            meta["requant"] = {"scale": r.scale, "zero_point": r.zero_point, "out_bits": int(r.out_bits),
                               "out_signed": bool(r.out_signed), "relu": bool(r.relu)}
            arrays["requant_multiplier"] = r.multiplier
            if r.offset is not None:
                arrays["requant_offset"] = r.offset
        return {"meta": meta, "arrays": arrays}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "IntLayer":
        """Inverse of :meth:`to_state`; raises :class:`LayerError` on a malformed entry."""
        try:
            meta, arrays = state["meta"], state["arrays"]
            arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in arrays.items()}
            name = meta["name"]
            rq = None
            if meta.get("requant") is not None:
                rm = meta["requant"]
                rq = Requant(multiplier=arrays["requant_multiplier"], scale=rm["scale"],
                             zero_point=rm["zero_point"], out_bits=rm["out_bits"],
                             out_signed=rm["out_signed"], relu=rm["relu"],
                             offset=arrays.get("requant_offset"), layer=name)
            return cls(name=name, kind=meta["kind"], weight=arrays["weight"],
                       weight_scale=arrays["weight_scale"], input_scale=meta["input_scale"],
                       input_zero_point=meta["input_zero_point"], act_bits=meta["act_bits"],
                       act_signed=meta["act_signed"], weight_bits=meta["weight_bits"],
                       bias=arrays.get("bias"), requant=rq, stride=tuple(meta["stride"]),
                       padding=tuple(meta["padding"]), dilation=tuple(meta["dilation"]),
                       groups=meta["groups"])
        except LayerError:
            raise
        except (KeyError, TypeError, AttributeError) as e:
            raise LayerError(f"malformed integer-layer entry: missing or invalid field {e}") from None


@runtime_checkable
class HasIntLayer(Protocol):
    """A quantized module that the TLM can run on the array: it describes itself as integers.

    ``accel.quant``'s QuantLinear / QuantConv2d implement this; model execution replaces every
    module that does by the simulated array.
    """

    def to_int_layer(self, name: str) -> IntLayer:
        """The module's :class:`IntLayer`, named ``name`` (its path in the model)."""
        ...


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


# --- checkpoints -------------------------------------------------------------------------------

def layers_to_state(layers: list[IntLayer], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A checkpoint dict: torch tensors and JSON-able metadata, safe for ``torch.load(weights_only=True)``.

    ``meta`` (JSON-able: recipe, seed, accuracy, ...) is stored as given under ``"meta"``.
    """
    import torch

    if meta is not None:
        json.dumps(meta)  # fail now, not at load time, on a non-JSON-able value
    entries = []
    for layer in layers:
        st = layer.to_state()
        entries.append({"meta": st["meta"],
                        "arrays": {k: torch.from_numpy(np.array(v)) for k, v in st["arrays"].items()}})
    return {"format": STATE_FORMAT, "version": STATE_VERSION, "meta": meta or {}, "layers": entries}


def layers_from_state(state: Any, source: str = "checkpoint") -> tuple[list[IntLayer], dict[str, Any]]:
    """Inverse of :func:`layers_to_state`: ``(layers, meta)``; :class:`LayerError` names ``source``."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise LayerError(f"{source} is not an integer-layer checkpoint (expected a dict with "
                         f"format {STATE_FORMAT!r})")
    if state.get("version") != STATE_VERSION:
        raise LayerError(f"{source} has integer-layer format version {state.get('version')!r}; "
                         f"this accel-hw reads version {STATE_VERSION}")
    entries = state.get("layers")
    if not isinstance(entries, list):
        raise LayerError(f"{source}: 'layers' must be a list of layer entries")
    layers = []
    for i, entry in enumerate(entries):
        try:
            layers.append(IntLayer.from_state(entry))
        except LayerError as e:
            raise LayerError(f"{source}, layer entry {i}: {e}") from None
    return layers, dict(state.get("meta") or {})


def save_layers(path: str | Path, layers: list[IntLayer], meta: dict[str, Any] | None = None) -> None:
    """Write ``layers`` (and JSON-able ``meta``) to ``path`` with ``torch.save``."""
    import torch

    torch.save(layers_to_state(layers, meta), Path(path))


def load_layers(path: str | Path) -> tuple[list[IntLayer], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_layers`: ``(layers, meta)``.

    Raises :class:`LayerError` (naming the file) when it is missing, not a torch file, truncated,
    or holds anything but valid integer layers.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise LayerError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file; all mean the same here
        raise LayerError(f"checkpoint {path} cannot be read (corrupt or not a torch.save file): "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return layers_from_state(state, source=f"checkpoint {path}")
