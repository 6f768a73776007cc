"""A layer's GEMM operand ``X`` (SPEC section 1) without building it: block sums and gathers.

:func:`accel.lowering.lower` materialises ``X[T, K]`` (im2col for a conv: K times the input).
:class:`Patches` keeps the padded input instead and offers the two things the block screen
(:mod:`accel.screen`) needs:

* :meth:`Patches.block_sums` - for a block of reduction rows ``[k0, k1)`` of every group, the sums
  of the positive and of the negative products of every output, ``[*lead, 2, O]`` (a conv over
  the block's input channels, or one matmul for a linear layer; float32, exact while each sum
  stays below 2^24, which the caller guarantees; run them inside :func:`exact_float32`);
* :meth:`Patches.take` / :meth:`Patches.weights` - the operand values ``x[t, k0:k1]`` and
  ``w[k0:k1, o]`` of a list of outputs ``(t, o)``, gathered.

Outputs are indexed by ``t`` in ``(n, ho, wo)`` order (linear: the flattened leading dimensions)
and by the layer's output channel ``o`` (group-major); reduction rows ``k`` of a group follow
PyTorch's weight order ``(c, i, j)``, as in :mod:`accel.lowering`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from accel.layers import IntLayer
from accel.lowering import GemmShape, check_codes, gemm_shape, padded_patches

__all__ = ["Patches", "NHWC_MIN_PIXELS", "exact_float32"]

#: Output pixels per image from which block sums are computed channel-last (faster there).
NHWC_MIN_PIXELS = 256


@contextmanager
def exact_float32() -> Iterator[None]:
    """Run float32 matmuls and convs in float32 (no TF32 / bfloat16 shortcuts, whatever the caller
    set): the block sums rely on exact integer sums below 2^24. Restores the settings."""
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


class Patches:
    """The lowered operand of ``layer`` on input ``codes`` (validated like :func:`lower`, against
    ``code_range`` when given).

    Attributes
    ----------
    shape : GemmShape
        T, K (per group), O per group, groups and the layer's output shape.
    lead : tuple[int, ...]
        Leading shape of the ``[..., O]`` views :meth:`block_sums` returns (``(N, Ho, Wo)`` for a
        conv, the input's leading dimensions for a linear layer, ``(1,)`` for one vector);
        ``prod(lead) == T``.
    kk : int
        Reduction rows per input channel (``kh * kw``; 1 for linear). Block edges are multiples.
    """

    def __init__(self, layer: IntLayer, codes: np.ndarray,
                 code_range: tuple[int, int] | None = None) -> None:
        import torch

        codes = np.asarray(codes)
        lo, hi = check_codes(layer, codes, code_range)
        self.layer = layer
        self.shape: GemmShape = gemm_shape(layer, codes.shape)
        o = layer.out_channels
        self.w2 = layer.weight.reshape(o, -1)                                  # [O, K] int64
        self._w = torch.from_numpy(self.w2.astype(np.float32))
        #: a code (or the padding) is negative: products of both signs come from both signs of x
        self.signed = lo < 0 or layer.input_zero_point < 0
        self._span = lo, hi
        self._nhwc = False
        if layer.kind == "linear":
            self.kk = 1
            self.lead = tuple(codes.shape[:-1]) or (1,)          # one vector: T = 1
            self._x = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32)).reshape(
                self.shape.t, self.shape.k)
            return
        self.kk = int(np.prod(layer.kernel_size))
        self.lead = self.shape.out_shape[:1] + self.shape.out_shape[2:]       # (N, Ho, Wo)
        if codes.size and any(layer.padding):                  # the padding is a code too
            z = layer.input_zero_point
            self._span = min(lo, z), max(hi, z)
        self._x, view = padded_patches(codes, layer)            # [N, C, Hp, Wp], its patches
        n, ho, wo, _, kh, kw = view.shape
        cg = layer.weight.shape[1]
        st = view.stride()
        # flat offsets into the padded input: of each output's patch origin, of each row k
        # (group 0), and of each group's first channel
        self._flat = self._x.reshape(-1).numpy()
        self._t_off = (np.arange(n)[:, None, None] * st[0] + np.arange(ho)[None, :, None] * st[1]
                       + np.arange(wo)[None, None, :] * st[2]).reshape(-1)
        self._k_off = (np.arange(cg)[:, None, None] * st[3] + np.arange(kh)[None, :, None] * st[4]
                       + np.arange(kw)[None, None, :] * st[5]).reshape(-1)
        self._g_off = cg * st[3]
        # large feature maps convolve faster channel-last (the block sums and A then are too)
        self._nhwc = layer.groups == 1 and not self.signed and ho * wo >= NHWC_MIN_PIXELS
        self._x_nhwc = self._x.contiguous(memory_format=torch.channels_last) if self._nhwc else None

    def code_span(self) -> tuple[int, int]:
        """Smallest and largest code the GEMM sees (padding included); (0, 0) when empty."""
        return self._span

    def block_sums(self, k0: int, k1: int) -> "torch.Tensor":  # noqa: F821
        """Sums of the positive and of the negative products over rows ``[k0, k1)`` of every group.

        A float32 ``[*lead, 2, O]`` tensor (possibly strided): ``[..., 0, :]`` the positive,
        ``[..., 1, :]`` the negative sums. ``k0`` and ``k1`` must be multiples of :attr:`kk` (or
        ``k1 == K``). Exact while every such sum stays below 2^24.
        """
        import torch
        import torch.nn.functional as F

        o, g = self.layer.out_channels, self.shape.groups
        w = self._w[:, k0:k1]                                                   # [O, rows]
        if self.layer.kind == "linear":
            x = self._x[:, k0:k1]
            if not self.signed:
                return (x @ torch.cat([w.clamp(min=0), w.clamp(max=0)]).T).reshape(*self.lead, 2, o)
            s, m = x @ w.T, x.abs() @ w.abs().T
            return torch.stack([s + m, s - m], dim=-2).mul_(0.5).reshape(*self.lead, 2, o)
        c0, c1 = k0 // self.kk, -(-k1 // self.kk)
        if g == 1:
            x = self._x[:, c0:c1]
        else:
            cg = self.layer.weight.shape[1]
            chans = (np.arange(g)[:, None] * cg + np.arange(c0, c1)[None, :]).ravel()
            x = self._x.index_select(1, torch.from_numpy(chans))
        kernel = (c1 - c0, *self.layer.kernel_size)
        conv = dict(stride=self.layer.stride, dilation=self.layer.dilation)
        if self.signed:   # pos, neg = (S +- M) / 2 with S = x . w, M = |x| . |w| (exact: even sums)
            y = F.conv2d(torch.cat([x, x.abs()], dim=1),
                         torch.cat([w, w.abs()]).reshape(2 * o, *kernel), groups=2 * g, **conv)
            s, m = y[:, :o], y[:, o:]
            return torch.stack([s + m, s - m], dim=1).mul_(0.5).permute(0, 3, 4, 1, 2)
        if self._nhwc and c1 - c0 > 1 and self.lead[2] > 1:
            # (torch 2.13's channel-last conv returns wrong values for one input channel, output
            # width 1 and unequal strides: measured, hence the guard)
            wpn = torch.cat([w.clamp(min=0), w.clamp(max=0)]).reshape(2 * o, *kernel)
            # clone: a channel slice of a channel-last tensor can pass for a dense one (one channel)
            x = self._x_nhwc[:, c0:c1].clone(memory_format=torch.channels_last)
            y = F.conv2d(x, wpn.contiguous(memory_format=torch.channels_last), **conv)
            return y.permute(0, 2, 3, 1).reshape(*self.lead, 2, o)
        og = o // g
        # group-major output channels: [g][pos|neg][og]
        wpn = torch.cat([w.clamp(min=0), w.clamp(max=0)]).reshape(2, g, og, *kernel).transpose(0, 1)
        y = F.conv2d(x.contiguous(), wpn.reshape(2 * o, *kernel).contiguous(), groups=g, **conv)
        y = y.permute(0, 2, 3, 1).reshape(*self.lead, g, 2, og)               # a view when g == 1
        return y.transpose(-3, -2).reshape(*self.lead, 2, o)

    def take(self, t: np.ndarray, o: np.ndarray, k0: int, k1: int) -> np.ndarray:
        """``x[t[i], k0:k1]`` of output channel ``o[i]``'s group, ``[n, k1 - k0]`` float32."""
        t, o = np.asarray(t, np.int64), np.asarray(o, np.int64)
        if self.layer.kind == "linear":
            return self._x.numpy()[t, k0:k1]
        base = self._t_off[t] + o // self.shape.o * self._g_off
        return self._flat[base[:, None] + self._k_off[None, k0:k1]]

    def weights(self, o: np.ndarray, k0: int, k1: int) -> np.ndarray:
        """``w[k0:k1, o[i]]`` as rows, ``[n, k1 - k0]`` float32 (exact: at most 16 bits)."""
        return self._w.numpy()[np.asarray(o, np.int64), k0:k1]

    def new_acc(self, dtype: "torch.dtype") -> "torch.Tensor":  # noqa: F821
        """An empty ``[*lead, O]`` tensor laid out like :meth:`block_sums` (channel-first for a conv
        on small feature maps)."""
        import torch

        o = self.layer.out_channels
        if self.layer.kind == "linear" or self._nhwc:
            return torch.empty(*self.lead, o, dtype=dtype)
        n, ho, wo = self.lead
        return torch.empty(n, o, ho, wo, dtype=dtype).permute(0, 2, 3, 1)

    def index(self, t: np.ndarray, o: np.ndarray) -> tuple["torch.Tensor", ...]:  # noqa: F821
        """Index tensors of outputs ``(t[i], o[i])`` into an ``[*lead, O]`` tensor."""
        import torch

        lead = np.unravel_index(np.asarray(t, np.int64), self.lead)
        return tuple(torch.from_numpy(np.asarray(a, np.int64)) for a in (*lead, o))

    def flat(self, idx: "torch.Tensor") -> tuple[np.ndarray, np.ndarray]:  # noqa: F821
        """``(t, o)`` of the rows of ``nonzero()`` over an ``[*lead, O]`` tensor."""
        a = idx.numpy()
        return np.ravel_multi_index(tuple(a[:, :-1].T), self.lead), a[:, -1].copy()

    def out_index(self, t: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, ...]:
        """Index arrays of outputs ``(t[i], o[i])`` into the array :meth:`output` returns."""
        lead = np.unravel_index(np.asarray(t, np.int64), self.lead)
        if self.layer.kind == "conv2d":
            return lead[0], np.asarray(o, np.int64), lead[1], lead[2]
        return (*lead, np.asarray(o, np.int64))

    def output(self, acc: "torch.Tensor") -> np.ndarray:  # noqa: F821
        """An ``[*lead, O]`` result in the layer's output shape (int64 numpy)."""
        import torch

        a = acc.to(torch.int64).numpy()
        return a.transpose(0, 3, 1, 2) if self.layer.kind == "conv2d" else a
