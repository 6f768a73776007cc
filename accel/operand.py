"""A layer's GEMM operands (SPEC section 1) as the screen reads them: block sums and gathers.

:func:`accel.lowering.lower` materialises ``X[T, K]`` (im2col for a conv: K times the input).
The screen (:mod:`accel.screen`) needs less: per block of reduction rows ``[k0, k1)`` of every
group, the sums of the positive and of the negative products of every output, and for a few
outputs their operand values. Two operands provide them:

* :class:`Matrix` - a materialised ``x[T, K]`` and ``w[K, O]`` (a GEMM, or a linear layer): block
  sums are one numpy matmul per block;
* :class:`Patches` - a conv layer's padded input, kept as it is: block sums are one int8 GEMM
  per block of whole input channels on its channel-last patches where codes and weights fit int8
  (:func:`accel.intgemm.int8_mm`: exact int32 sums, about 8x float32's speed with VNNI), else one conv (torch,
  CPU); gathers read the padded input through the patch offsets, so im2col is never built whole.

Both return numpy arrays. Outputs are indexed by ``t`` in ``(n, ho, wo)`` order (linear: the
flattened leading dimensions) and by the layer's output channel ``o`` (group-major); reduction rows
``k`` of a group follow PyTorch's weight order ``(c, i, j)``, as in :mod:`accel.lowering`. Block
sums, gathers and accumulators are ``[*lead, ...]`` arrays whose memory layout the operand picks
(index them logically; :func:`index` and :func:`flat` convert to and from ``(t, o)``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from typing import Any, Protocol

import numpy as np

from accel.arith import exact_matmul, sign_weights
from accel.intgemm import I32_MAX, int8_mm, int8_operands
from accel.layers import IntLayer
from accel.lowering import GemmShape, check_codes, gemm_shape, padded_patches

__all__ = ["Operand", "Matrix", "Patches", "NumpyOps", "TorchOps", "layer_operand",
           "exact_float32", "one_blas_thread", "index", "flat", "torch_dtype", "NHWC_MIN_PIXELS",
           "F32_EXACT", "INT8_MIN_CHANNELS"]

#: Output pixels per image from which block sums are computed channel-last (faster there).
NHWC_MIN_PIXELS = 256
#: Integers up to this magnitude are exact in float32 (and every sum of them that stays below).
F32_EXACT = 1 << 24
#: Blocks of fewer input channels convolve in float (their channel-last patches gather slowly).
INT8_MIN_CHANNELS = 16
#: Float weights of each layer (its float32 [O, K] and per-block conv weights,
#: :meth:`Patches._block_weights`), kept while the layer is.
_WEIGHTS: "weakref.WeakKeyDictionary[IntLayer, dict]" = weakref.WeakKeyDictionary()


def weight_span(w2: np.ndarray, cache: dict) -> tuple[int, int] | None:
    """Smallest and largest of the weights ``w2`` (None: none), kept in ``cache``
    (:attr:`Operand.cache`)."""
    if "weight span" not in cache:
        cache["weight span"] = (int(w2.min()), int(w2.max())) if w2.size else None
    return cache["weight span"]


class NumpyOps:
    """The element-wise passes the screen makes over block-wide arrays, on numpy arrays."""

    @staticmethod
    def cast(a: np.ndarray, dtype: type) -> np.ndarray:
        return a.astype(dtype, copy=False)

    @staticmethod
    def minmax(a: np.ndarray) -> tuple[float, float]:
        return float(a.min()), float(a.max())

    @staticmethod
    def empty_like(a: np.ndarray) -> np.ndarray:
        return np.empty_like(a)

    @staticmethod
    def add(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        np.add(a, b, out=out)

    @staticmethod
    def numpy(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def int64(a: np.ndarray) -> np.ndarray:
        return np.rint(a).astype(np.int64)

    @staticmethod
    def fill(a: np.ndarray, values: np.ndarray) -> None:
        a[...] = values

    @staticmethod
    def zeros_bool(like: np.ndarray) -> np.ndarray:
        return np.zeros(like.shape, dtype=bool)


class TorchOps:
    """The same passes on torch tensors (CPU, on every core); results leave as numpy."""

    @staticmethod
    def cast(a: "torch.Tensor", dtype: type) -> "torch.Tensor":  # noqa: F821
        return a.to(torch_dtype(dtype))

    @staticmethod
    def minmax(a: "torch.Tensor") -> tuple[float, float]:  # noqa: F821
        import torch

        lo, hi = torch.aminmax(a.permute(sorted(range(a.dim()), key=lambda d: -a.stride(d))))
        return float(lo), float(hi)          # (in memory order: a full pass, not a strided one)

    @staticmethod
    def empty_like(a: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
        import torch

        return torch.empty_like(a)

    @staticmethod
    def add(a: "torch.Tensor", b: "torch.Tensor", out: "torch.Tensor") -> None:  # noqa: F821
        import torch

        torch.add(a, b, out=out)

    @staticmethod
    def numpy(a: "torch.Tensor") -> np.ndarray:  # noqa: F821
        return a.numpy()

    @staticmethod
    def int64(a: "torch.Tensor") -> np.ndarray:  # noqa: F821
        import torch

        return a.to(torch.int64).numpy()             # integer-valued: the cast is exact

    @staticmethod
    def fill(a: "torch.Tensor", values: np.ndarray) -> None:  # noqa: F821
        import torch

        a.copy_(torch.from_numpy(np.array(values)).to(a.dtype))

    @staticmethod
    def zeros_bool(like: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
        import torch

        return torch.zeros(like.shape, dtype=torch.bool)


class Operand(Protocol):
    """What the screen reads of the GEMMs of one layer (see the module docstring)."""

    shape: GemmShape
    lead: tuple[int, ...]
    kk: int
    w2: np.ndarray
    #: The element-wise passes over its block sums (:class:`NumpyOps` or :class:`TorchOps`).
    ops: Any
    #: The offset that brings every code into int8 for exact int8 GEMMs (None: no int8 GEMMs).
    int8: int | None
    #: Its block sums come exact in int32 (int8 GEMMs): the screen then runs in int32.
    int_blocks: bool
    #: Arrays derived from the weights alone (a conv's live as long as its layer, so later
    #: batches reuse them; a matrix's as long as the operand).
    cache: dict

    def code_span(self) -> tuple[int, int]: ...

    def block_sums(self, k0: int, k1: int, dtype: type) -> tuple[np.ndarray, np.ndarray]: ...

    def exact_sums(self) -> np.ndarray: ...

    def take(self, t: np.ndarray, o: np.ndarray, k0: int, k1: int, dtype: type) -> np.ndarray: ...

    def weights(self, o: np.ndarray | None, k0: int, k1: int, dtype: type) -> np.ndarray: ...

    def new_acc(self, dtype: type) -> np.ndarray: ...

    def rows(self, t: np.ndarray, g: int) -> np.ndarray: ...

    def row_step(self, n: int) -> int: ...

    def row_block(self, t0: int, t1: int, g: int, dtype: type) -> "torch.Tensor": ...  # noqa: F821

    def output(self, acc: np.ndarray) -> np.ndarray: ...


def index(lead: tuple[int, ...], t: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, ...]:
    """Index arrays of outputs ``(t[i], o[i])`` into a ``[*lead, O]`` array."""
    return (*np.unravel_index(np.asarray(t, np.int64), lead), np.asarray(o, np.int64))


def flat(lead: tuple[int, ...], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t, o)`` of the true elements of a boolean ``[*lead, O]`` array (of any memory layout:
    searched in memory order, which is several times faster than a strided search)."""
    order = sorted(range(mask.ndim), key=lambda d: -mask.strides[d])
    inner = mask.transpose(order)
    if not inner.flags.c_contiguous:
        inner = np.ascontiguousarray(inner)
    found = np.unravel_index(np.flatnonzero(inner), inner.shape)
    idx = [None] * mask.ndim
    for pos, d in enumerate(order):
        idx[d] = found[pos]
    return np.ravel_multi_index(idx[:-1], lead), idx[-1]


@contextmanager
def exact_float32() -> Iterator[None]:
    """Run float32 matmuls and convs in float32 (no TF32 / bfloat16 shortcuts, whatever the caller
    set): block sums rely on exact integer sums below 2^24. Restores the settings. (Block sums run
    on CPU tensors: no CUDA path has been through the exactness tests.)"""
    import torch

    knobs = [k for k in (getattr(torch.backends.mkldnn, "matmul", None),
                         getattr(torch.backends.mkldnn, "conv", None)) if hasattr(k, "fp32_precision")]
    saved = [k.fp32_precision for k in knobs]
    matmul = torch.get_float32_matmul_precision()
    try:
        for k in knobs:
            k.fp32_precision = "ieee"
        torch.set_float32_matmul_precision("highest")
        yield
    finally:
        for k, v in zip(knobs, saved):
            k.fp32_precision = v
        torch.set_float32_matmul_precision(matmul)


def torch_dtype(dtype: type) -> "torch.dtype":  # noqa: F821
    """The torch dtype of a numpy scalar type (int8, int32, float32, float64)."""
    import torch

    return {np.int8: torch.int8, np.int32: torch.int32, np.float32: torch.float32,
            np.float64: torch.float64}[dtype]


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread: the screen interleaves small numpy matmuls with torch's
    convs, and BLAS's spinning threads then compete with torch's for the same cores (measured on
    2 cores, ``benchmarks/bench_tlm.py``: the golden layers took 1.7 s with both pools, 1.05 s
    with one BLAS thread). The libraries are looked up once (:func:`_blas_controller`)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


@cache
def _blas_controller() -> Any:
    """The thread pools of the loaded libraries (numpy's BLAS among them: numpy is loaded),
    found once: a lookup walks every loaded library (6 ms each time once torch is loaded)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class Matrix:
    """Materialised GEMM operands ``x[T, K]`` (codes) and ``w[K, O]`` (one group).

    ``lead`` is the leading shape of ``x`` before it was flattened to ``T`` rows (a linear layer's
    leading input dimensions; ``(T,)`` for a plain GEMM). ``output`` reshapes to ``out_shape``.
    """

    kk = 1
    ops = NumpyOps
    #: block sums come from numpy matmuls (float)
    int_blocks = False

    def __init__(self, x: np.ndarray, w: np.ndarray, lead: tuple[int, ...] | None = None,
                 span: tuple[int, int] | None = None,
                 out_shape: tuple[int, ...] | None = None) -> None:
        self.x = np.asarray(x)
        t, k = self.x.shape
        o = int(np.shape(w)[1])
        self.w2 = np.ascontiguousarray(np.asarray(w, dtype=np.int64).T)            # [O, K]
        self.lead = tuple(lead) if lead else (t,)
        self.shape = GemmShape(t, k, o, 1, tuple(out_shape) if out_shape else (*self.lead, o))
        if span is None:
            span = (int(self.x.min()), int(self.x.max())) if self.x.size else (0, 0)
        self._span = span
        self._cast: dict[type, tuple[np.ndarray, np.ndarray]] = {}
        self.cache: dict = {}

    @cached_property
    def int8(self) -> int | None:
        """The offset that brings every code into int8 for exact int8 GEMMs, or None (as
        :attr:`Patches.int8`; asked for only by torch paths: finding it imports torch)."""
        return int8_operands(self._span, weight_span(self.w2, self.cache))

    def _as(self, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """``x[T, K]`` and ``w2`` as ``dtype`` (int8: the codes minus :attr:`int8`)."""
        if dtype not in self._cast:
            x = self.x - self.int8 if dtype == np.int8 else self.x
            self._cast[dtype] = (x.astype(dtype).reshape(self.shape.t, self.shape.k),
                                 self.w2.astype(dtype))
        return self._cast[dtype]

    def code_span(self) -> tuple[int, int]:
        """Smallest and largest code; (0, 0) when empty."""
        return self._span

    def block_sums(self, k0: int, k1: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Sums of the positive and of the negative products over rows ``[k0, k1)``, two
        ``[*lead, O]`` arrays, exact while every such sum fits ``dtype``'s integers (the caller
        guarantees it)."""
        x, w = self._as(dtype)
        x, w = x[:, k0:k1], w[:, k0:k1]
        shape = (*self.lead, w.shape[0])
        if self._span[0] >= 0:
            return (x @ np.maximum(w, 0).T).reshape(shape), (x @ np.minimum(w, 0).T).reshape(shape)
        # pos, neg = (S +- M) / 2 with S = x . w, M = |x| . |w| (exact: S and M agree mod 2)
        s, m = x @ w.T, np.abs(x) @ np.abs(w).T
        return ((s + m) * 0.5).reshape(shape), ((s - m) * 0.5).reshape(shape)

    def exact_sums(self) -> np.ndarray:
        """Exact ``x . w`` (int64 ``[*lead, O]``), no bias."""
        return exact_matmul(self.x, self.w2.T).reshape(*self.lead, self.shape.o)

    def take(self, t: np.ndarray, o: np.ndarray, k0: int, k1: int, dtype: type) -> np.ndarray:
        """``x[t[i], k0:k1]``, ``[n, k1 - k0]`` (int8: the codes minus :attr:`int8`)."""
        return self._as(dtype)[0][np.asarray(t, np.int64), k0:k1]

    def weights(self, o: np.ndarray | None, k0: int, k1: int, dtype: type) -> np.ndarray:
        """``w[k0:k1, o[i]]`` as rows, ``[n, k1 - k0]`` (``o`` None: every channel, a view)."""
        w = self._as(dtype)[1]
        return w[:, k0:k1] if o is None else w[np.asarray(o, np.int64), k0:k1]

    def new_acc(self, dtype: type) -> np.ndarray:
        """An empty ``[*lead, O]`` array."""
        return np.empty((*self.lead, self.shape.o), dtype=dtype)

    def rows(self, t: np.ndarray, g: int) -> np.ndarray:
        """The GEMM rows ``x[t]`` (int64 ``[n, K]``) of group ``g`` (0: one group)."""
        return self.x.reshape(self.shape.t, self.shape.k)[np.asarray(t, np.int64)].astype(np.int64)

    def row_step(self, n: int) -> int:
        """A chunk of about ``n`` rows (at least 1) for :meth:`row_block`."""
        return max(1, n)

    def row_block(self, t0: int, t1: int, g: int, dtype: type) -> "torch.Tensor":  # noqa: F821
        """The GEMM rows ``x[t0:t1]`` as a torch ``[t1 - t0, K]`` tensor of ``dtype`` (int8: the
        codes minus :attr:`int8`)."""
        import torch

        return torch.from_numpy(self._as(dtype)[0][t0:t1])

    def output(self, acc: np.ndarray) -> np.ndarray:
        """An ``[*lead, O]`` result in the output shape."""
        return acc.reshape(self.shape.out_shape)


class Patches:
    """The lowered operand of a conv ``layer`` on input ``codes`` (validated like :func:`lower`).

    Attributes
    ----------
    shape : GemmShape
        T, K (per group), O per group, groups and the layer's output shape.
    lead : tuple[int, ...]
        ``(N, Ho, Wo)``; ``prod(lead) == T``.
    kk : int
        Reduction rows per input channel (``kh * kw``). Block edges are multiples.
    w2 : int64 [O, K]
        The weights in PyTorch's order, one row per output channel.
    """

    ops = TorchOps

    def __init__(self, layer: IntLayer, codes: object, span: tuple[int, int]) -> None:
        if layer.kind != "conv2d":
            raise ValueError(f"Patches lowers conv2d layers, not {layer.kind} ({layer.name!r})")
        self.layer = layer
        self.shape: GemmShape = gemm_shape(layer, np.shape(codes))
        o = layer.out_channels
        self.w2 = layer.weight.reshape(o, -1)                                  # [O, K] int64
        lo, hi = span
        if any(layer.padding):                                  # the padding is a code too
            lo, hi = min(lo, layer.input_zero_point), max(hi, layer.input_zero_point)
        self._span = lo, hi
        #: a code (or the padding) is negative: products of both signs come from both signs of x
        self.signed = lo < 0
        self.kk = int(np.prod(layer.kernel_size))
        self.lead = self.shape.out_shape[:1] + self.shape.out_shape[2:]       # (N, Ho, Wo)
        self._codes = np.asarray(codes)
        _, ho, wo = self.lead
        self._x: dict[Any, "torch.Tensor"] = {}  # noqa: F821   (padded inputs, built when asked)
        self.cache = cache = _WEIGHTS.setdefault(layer, {})
        self._gather: tuple | None = None
        self._nhwc_x: dict[type, "torch.Tensor"] = {}  # noqa: F821
        self._wsplit: dict[Any, "torch.Tensor"] = {}  # noqa: F821
        #: the offset that brings every code into int8 for exact int8 GEMMs (None: they do not fit,
        #: the weights do not, or torch has no exact int8 GEMM here)
        self.int8 = int8_operands(self._span, weight_span(self.w2, cache))
        # block sums: int8 GEMMs on channel-last patches where they can (one group, unsigned
        # codes); large feature maps convolve faster channel-last (the block sums and A then are too)
        self.int_blocks = self.int8 is not None and layer.groups == 1 and not self.signed
        self._nhwc = layer.groups == 1 and not self.signed and (self.int_blocks
                                                                or ho * wo >= NHWC_MIN_PIXELS)

    def _input(self, dtype: type) -> "torch.Tensor":  # noqa: F821
        """The padded input ``[N, C, Hp, Wp]`` as a torch tensor of ``dtype``: float32 or float64,
        or int8 (the codes minus :attr:`int8`, laid out channel-last: :meth:`_int8_input`).
        Built when first asked."""
        import torch

        td = torch_dtype(dtype)
        if td not in self._x:
            if td == torch.int8:
                self._x[td] = self._int8_input()
            elif td == torch.float32:
                self._x[td] = padded_patches(self._codes, self.layer)[0]
            else:
                self._x[td] = self._input(np.float32).to(td)
        return self._x[td]

    def _weights(self, dtype: type) -> "torch.Tensor":  # noqa: F821
        """The weights ``[O, K]`` as a torch tensor of float ``dtype`` (:meth:`weights`' cast)."""
        import torch

        return torch.from_numpy(self.weights(None, 0, self.shape.k, dtype))

    def _int8_input(self) -> "torch.Tensor":  # noqa: F821
        """The codes minus :attr:`int8`, padded with the zero point's, as int8 ``[N, C, Hp, Wp]``
        in channel-last memory: one pass from the codes (no float copy on the way)."""
        import torch

        a = self._codes
        if not (a.dtype.kind == "i" and a.dtype.isnative and a.flags.writeable
                and min(a.strides, default=0) >= 0):
            a = a.astype(np.int32)                     # (codes are at most 16 bits)
        src = torch.from_numpy(a)        # in the codes' memory order (channel-last from a layer)
        n, c, h, w = src.shape
        ph, pw = self.layer.padding
        x = torch.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=torch.int8)
        if ph or pw:
            x.fill_(self.layer.input_zero_point - self.int8)
        lo, hi = self._span
        off = self.int8
        wide = torch.int16 if -(1 << 15) <= min(lo, off) and max(hi, off) < 1 << 15 else torch.int32
        # offset in int16 (3x as fast as in int64), then int8, then a byte transpose (twice as
        # fast as one conversion that also transposes)
        x8 = src.to(wide, copy=True).sub_(self.int8).to(torch.int8)
        x[:, ph:ph + h, pw:pw + w].copy_(x8.permute(0, 2, 3, 1))
        return x.permute(0, 3, 1, 2)

    def _channel_last(self, dtype: type) -> "torch.Tensor":  # noqa: F821
        import torch

        if dtype not in self._nhwc_x:
            self._nhwc_x[dtype] = self._input(dtype).contiguous(memory_format=torch.channels_last)
        return self._nhwc_x[dtype]

    def code_span(self) -> tuple[int, int]:
        """Smallest and largest code the GEMM sees (padding included); (0, 0) when empty."""
        return self._span

    def _conv(self, x: "torch.Tensor", w: "torch.Tensor", groups: int) -> "torch.Tensor":  # noqa: F821
        import torch.nn.functional as F

        return F.conv2d(x, w, groups=groups, stride=self.layer.stride,
                        dilation=self.layer.dilation)

    def _channels(self, x: "torch.Tensor", c0: int, c1: int) -> "torch.Tensor":  # noqa: F821
        """Input channels ``[c0, c1)`` of every group."""
        import torch

        if self.shape.groups == 1:
            return x[:, c0:c1]
        cg = self.layer.weight.shape[1]
        chans = (np.arange(self.shape.groups)[:, None] * cg + np.arange(c0, c1)[None, :]).ravel()
        return x.index_select(1, torch.from_numpy(chans))

    def block_sums(self, k0: int, k1: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Sums of the positive and of the negative products over rows ``[k0, k1)`` of every group.

        Two torch ``[*lead, O]`` tensors of ``dtype`` (possibly strided), the positive and the
        negative sums. ``k0`` and ``k1`` must be multiples of :attr:`kk` (or ``k1 == K``). Exact
        while every such sum fits float32's or float64's integers (int32: float32's); run inside
        :func:`exact_float32`. Int8 GEMMs on channel-last patches where :attr:`int_blocks` (and
        the block has ``INT8_MIN_CHANNELS``): one per sign, so that each sum is dense and every
        pass over it runs at stride 1 (1.3-1.7x as fast as over interleaved halves); else convs.
        """
        import torch

        o, g = self.layer.out_channels, self.shape.groups
        c0, c1 = k0 // self.kk, -(-k1 // self.kk)
        # (float64 asked for: the sums may pass int32, whatever the int8 GEMM's own sums)
        if (self.int_blocks and dtype != np.float64 and c1 - c0 >= INT8_MIN_CHANNELS
                and self.kk * (c1 - c0) << 14 <= I32_MAX):
            xb = self._patch_view(np.int8, c0, c1).reshape(self.shape.t, -1)      # (i, j, c) rows
            out = []
            for w8, wsum in self._int8_block_weights(c0, c1):                     # w+, w-
                y = int8_mm(xb, w8)
                # + c . sum(w) in int32: it may wrap there, the sums it completes do not (exact)
                y += torch.from_numpy((self.int8 * wsum).astype(np.int32))
                out.append((y if dtype == np.int32 else y.to(torch_dtype(dtype))).reshape(*self.lead, o))
            return out[0], out[1]
        if dtype == np.int32:       # the float kernels below, exact in float32 here
            return tuple(s.to(torch.int32) for s in self.block_sums(k0, k1, np.float32))
        xt = self._input(dtype)
        x = self._channels(xt, c0, c1)
        if self.signed:   # pos, neg = (S +- M) / 2 with S = x . w, M = |x| . |w| (exact: even sums)
            xa = self._channels(self._abs_input(dtype), c0, c1)
            y = self._conv(torch.cat([x, xa], dim=1), self._block_weights(dtype, c0, c1, "signed"),
                           2 * g)
            s, m = y[:, :o], y[:, o:]
            out = torch.stack([s + m, s - m], dim=1).mul_(0.5).permute(0, 3, 4, 1, 2)
        elif self._nhwc and c1 - c0 > 1 and self.lead[2] > 1:
            # (torch 2.13's channel-last conv returns wrong values for one input channel, output
            # width 1 and unequal strides: measured, hence the guard)
            # clone: a channel slice of a channel-last tensor can pass for a dense one (one channel)
            x = self._channel_last(dtype)[:, c0:c1].clone(memory_format=torch.channels_last)
            y = self._conv(x, self._block_weights(dtype, c0, c1, "nhwc"), 1)
            out = y.permute(0, 2, 3, 1).reshape(*self.lead, 2, o)
        else:
            og = o // g
            y = self._conv(x.contiguous(), self._block_weights(dtype, c0, c1, "nchw"), g)
            y = y.permute(0, 2, 3, 1).reshape(*self.lead, g, 2, og)           # a view when g == 1
            out = y.transpose(-3, -2).reshape(*self.lead, 2, o)
        return out[..., 0, :], out[..., 1, :]

    def _block_weights(self, dtype: type, c0: int, c1: int, layout: str) -> "torch.Tensor":  # noqa: F821
        """The conv weights of the block of input channels ``[c0, c1)``, ``[2 O, c1 - c0, kh, kw]``:
        the weights and their magnitudes (``signed``), or their positive and negative parts, in
        group-major order ``[g][pos|neg][og]`` (``nchw``) or channel-last (``nhwc``). Cached with
        the layer (its weights never change), so later batches reuse them."""
        import torch

        cache = _WEIGHTS.setdefault(self.layer, {})
        key = (dtype, c0, c1, layout)
        if key not in cache:
            w = self._weights(dtype).reshape(self.layer.weight.shape)[:, c0:c1]
            o, g = self.layer.out_channels, self.shape.groups
            kernel = (c1 - c0, *self.layer.kernel_size)
            if layout == "signed":
                wb = torch.cat([w, w.abs()])
            else:
                wb = torch.stack([w.clamp(min=0), w.clamp(max=0)])      # [2, O, ...]
                if layout == "nchw":
                    wb = wb.reshape(2, g, o // g, *kernel).transpose(0, 1)
                wb = wb.reshape(2 * o, *kernel)
            fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
            cache[key] = wb.contiguous(memory_format=fmt)
        return cache[key]

    def _int8_block_weights(self, c0: int, c1: int) -> list[tuple["torch.Tensor", np.ndarray]]:  # noqa: F821
        """The int8 GEMM weights of input channels ``[c0, c1)`` in channel-last patch order
        ``(i, j, c)``, ``[kh kw (c1 - c0), O]``, positive then negative parts, each with its
        column sums (int64 ``[O]``: times :attr:`int8`, which each batch's codes set, the offset's
        share of each sum). Cached with the layer."""
        import torch

        key = ("int8 block", c0, c1)
        if key not in self.cache:
            o = self.layer.out_channels
            w = self.layer.weight[:, c0:c1].transpose(2, 3, 1, 0).reshape(-1, o)   # [(i, j, c), O]
            sw = sign_weights(w, False)                                            # [w+ | w-]
            self.cache[key] = [(torch.from_numpy(np.ascontiguousarray(part).astype(np.int8)),
                                part.sum(axis=0, dtype=np.int64))
                               for part in (sw[:, :o], sw[:, o:])]
        return self.cache[key]

    def _patch_view(self, dtype: type, c0: int = 0, c1: int | None = None) -> "torch.Tensor":  # noqa: F821
        """Every patch of input channels ``[c0, c1)`` (default: all) of the channel-last padded
        input of ``dtype`` (:meth:`_input`), a strided view ``[N, Ho, Wo, kh, kw, c1 - c0]``. All
        channels: no copy (runs of whole channels); fewer: of a dense copy of those channels
        (a patch row is then one run of ``kw (c1 - c0)`` codes at stride 1: copied 2.5x as fast
        as ``kw`` runs of ``c1 - c0`` out of every channel)."""
        import torch

        _, ho, wo = self.lead
        kh, kw = self.layer.kernel_size
        x = self._channel_last(dtype)
        if c1 is not None and (c0, c1) != (0, x.shape[1]):
            x = x[:, c0:c1].clone(memory_format=torch.channels_last)
        sn, sc, sy, sx = x.stride()
        (th, tw), (dh, dw) = self.layer.stride, self.layer.dilation
        return x.as_strided((x.shape[0], ho, wo, kh, kw, x.shape[1]),
                            (sn, th * sy, tw * sx, dh * sy, dw * sx, sc))

    def _abs_input(self, dtype: type) -> "torch.Tensor":  # noqa: F821
        key = ("abs", dtype)
        if key not in self._wsplit:
            self._wsplit[key] = self._input(dtype).abs()
        return self._wsplit[key]

    def exact_sums(self) -> np.ndarray:
        """Exact ``x . w`` per output (int64 ``[*lead, O]``, no bias): float32 convs over blocks of
        whole input channels in which no sum of products can reach 2^24 (by the largest sum of
        |codes| under one patch of each channel, :meth:`_patch_l1`, times the largest |weight|;
        one block on typical data), added in float64 (exact below 2^53); float64 convs for a
        channel whose bound alone reaches 2^24."""
        import torch

        if self.shape.t == 0:                                   # an empty batch
            return np.zeros((*self.lead, self.layer.out_channels), np.int64)
        wmax = max(1, int(np.abs(self.w2).max(initial=0)))
        bound = self._patch_l1() * wmax                                        # per channel
        blocks, c0, run = [], 0, 0
        for c, b in enumerate(bound.tolist()):
            if c > c0 and run + b >= F32_EXACT:
                blocks.append((c0, c))
                c0, run = c, 0
            run += b
        blocks.append((c0, bound.size))
        o = self.layer.out_channels
        total = None
        for c0, c1 in blocks:
            dt = np.float32 if int(bound[c0:c1].sum()) < F32_EXACT else np.float64
            xt, wt = self._input(dt), self._weights(dt)
            w = wt.reshape(o, bound.size, *self.layer.kernel_size)[:, c0:c1]
            y = self._conv(self._channels(xt, c0, c1).contiguous(), w.contiguous(), self.shape.groups)
            if len(blocks) > 1:
                y = y.double()
                total = y if total is None else total.add_(y)
            else:
                total = y
        return total.permute(0, 2, 3, 1).to(torch.int64).numpy()

    def _patch_l1(self) -> np.ndarray:
        """Per input channel of a group (int64 ``[C / groups]``): the largest sum of |codes| under
        one patch, over every output and group (one depthwise conv of the magnitudes)."""
        import torch

        xa = self._abs_input(np.float32)
        c = xa.shape[1]
        ones = torch.ones(c, 1, *self.layer.kernel_size)
        y = torch.nn.functional.conv2d(xa, ones, groups=c, stride=self.layer.stride,
                                       dilation=self.layer.dilation)            # exact: < 2^24
        per = y.amax(dim=(0, 2, 3)).to(torch.int64).numpy()
        return per.reshape(self.shape.groups, -1).max(axis=0)

    def _gather_source(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int | None]:
        """What gathers read: the padded input flat (int8 where :attr:`int8` is set, the codes
        minus it, else float32), the flat offsets of each output's patch origin, of each row
        ``k`` of group 0 and of each group's first channel, and the offset (None: float32)."""
        if self._gather is None:
            off = self.int8
            x = self._input(np.float32 if off is None else np.int8)           # [N, C, Hp, Wp]
            sn, sc, sy, sx = x.stride()
            n, ho, wo = self.lead
            kh, kw = self.layer.kernel_size
            (th, tw), (dh, dw) = self.layer.stride, self.layer.dilation
            cg = self.layer.weight.shape[1]
            t_off = (np.arange(n)[:, None, None] * sn + np.arange(ho)[None, :, None] * th * sy
                     + np.arange(wo)[None, None, :] * tw * sx).reshape(-1)
            k_off = (np.arange(cg)[:, None, None] * sc + np.arange(kh)[None, :, None] * dh * sy
                     + np.arange(kw)[None, None, :] * dw * sx).reshape(-1)
            flat_x = x.permute(0, 2, 3, 1) if off is not None else x               # memory order
            self._gather = (flat_x.reshape(-1).numpy(), t_off, k_off, cg * sc, off)
        return self._gather

    def _gathered(self, t: np.ndarray, g: np.ndarray | int, k0: int, k1: int, dtype: type
                  ) -> np.ndarray:
        """``x[t[i], k0:k1]`` of group ``g[i]`` as ``dtype`` (int8: the codes minus :attr:`int8`)."""
        flat_x, t_off, k_off, g_off, off = self._gather_source()
        if off is None and dtype == np.int8:
            raise ValueError(f"layer {self.layer.name!r}: its codes do not fit int8 GEMMs")
        v = flat_x[(t_off[t] + np.asarray(g) * g_off)[:, None] + k_off[None, k0:k1]]
        if off is None or dtype == np.int8:
            return v if v.dtype == dtype else v.astype(dtype)
        out = v.astype(dtype)
        if off:
            out += off
        return out

    def take(self, t: np.ndarray, o: np.ndarray, k0: int, k1: int, dtype: type) -> np.ndarray:
        """``x[t[i], k0:k1]`` of output channel ``o[i]``'s group, ``[n, k1 - k0]`` (int8: the
        codes minus :attr:`int8`)."""
        t, o = np.asarray(t, np.int64), np.asarray(o, np.int64)
        return self._gathered(t, o // self.shape.o, k0, k1, dtype)

    def weights(self, o: np.ndarray | None, k0: int, k1: int, dtype: type) -> np.ndarray:
        """``w[k0:k1, o[i]]`` as rows, ``[n, k1 - k0]`` (exact: at most 16 bits; ``o`` None:
        every channel, a view). The weights of each dtype are kept with the layer."""
        key = ("w2", dtype)
        if key not in self.cache:
            self.cache[key] = self.w2 if self.w2.dtype == dtype else self.w2.astype(dtype)
        w = self.cache[key]
        return w[:, k0:k1] if o is None else w[np.asarray(o, np.int64), k0:k1]

    def new_acc(self, dtype: type) -> "torch.Tensor":  # noqa: F821
        """An empty ``[*lead, O]`` tensor laid out like :meth:`block_sums`' (channel-first for a
        conv on small feature maps)."""
        import torch

        td = torch_dtype(dtype)
        o = self.layer.out_channels
        if self._nhwc:
            return torch.empty(*self.lead, o, dtype=td)
        n, ho, wo = self.lead
        return torch.empty(n, o, ho, wo, dtype=td).permute(0, 2, 3, 1)

    def rows(self, t: np.ndarray, g: int) -> np.ndarray:
        """The im2col rows ``x[t]`` (int64 ``[n, K]``) of group ``g``."""
        return self._gathered(np.asarray(t, np.int64), g, 0, self.shape.k, np.int64)

    def row_step(self, n: int) -> int:
        """A chunk of about ``n`` rows (at least one output row) that :meth:`row_block` copies
        without waste: whole images, else whole output rows."""
        _, ho, wo = self.lead
        return n // (ho * wo) * ho * wo if n >= ho * wo else max(wo, n // wo * wo)

    def row_block(self, t0: int, t1: int, g: int, dtype: type) -> "torch.Tensor":  # noqa: F821
        """The im2col rows ``x[t0:t1]`` of group ``g``, a torch ``[t1 - t0, K]`` tensor of
        ``dtype`` (int8: the codes minus :attr:`int8`), copied from the patches of the output
        rows that hold them: channel-last patches ``(i, j, c)`` first (runs of whole channels,
        three times faster than gathering ``(c, i, j)`` directly), then transposed."""
        import torch

        _, ho, wo = self.lead
        cg = self.layer.weight.shape[1]
        kh, kw = self.layer.kernel_size
        view = self._patch_view(dtype)[..., g * cg:(g + 1) * cg]    # [N, Ho, Wo, kh, kw, cg]

        def cij(patches: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
            return patches.reshape(-1, kh * kw, cg).transpose(1, 2).reshape(-1, self.shape.k)

        r0, r1 = t0 // wo, -(-t1 // wo)                              # output rows n * Ho + h
        parts, r = [], r0
        while r < r1:
            n, h = divmod(r, ho)
            if h == 0 and r1 - r >= ho:                              # whole images
                m = (r1 - r) // ho
                parts.append(cij(view[n:n + m]))
                r += m * ho
            else:                                                    # rows of one image
                e = min(r1, (n + 1) * ho)
                parts.append(cij(view[n, h:h + e - r]))
                r = e
        block = parts[0] if len(parts) == 1 else torch.cat(parts)
        return block[t0 - r0 * wo:t1 - r0 * wo]

    def output(self, acc: np.ndarray) -> np.ndarray:
        """An ``[*lead, O]`` result in the layer's output shape ``[N, O, Ho, Wo]``."""
        return acc.transpose(0, 3, 1, 2)


def layer_operand(layer: IntLayer, codes: object, code_range: tuple[int, int] | None = None
                  ) -> Matrix | Patches:
    """The operand of ``layer`` on input ``codes`` (checked against ``code_range``, default the
    layer's N-bit range): :class:`Patches` for a conv, :class:`Matrix` for a linear layer."""
    codes = np.asarray(codes)
    span = check_codes(layer, codes, code_range)
    shape = gemm_shape(layer, codes.shape)
    if layer.kind == "conv2d":
        return Patches(layer, codes, span)
    lead = tuple(codes.shape[:-1]) or (1,)                    # one vector: T = 1
    return Matrix(codes.reshape(shape.t, shape.k), layer.weight.T, lead=lead, span=span,
                  out_shape=shape.out_shape)
