"""Lowering of an integer layer to GEMMs in the fixed order of SPEC section 1 (the one copy: the
TLM, the quantizers and OAQ training all lower through it).

A linear layer is one GEMM: T = product of the leading input dimensions, K = input features,
O = output features. A conv2d layer is one GEMM per group: im2col over the input padded with the
*zero point's code*, T = N * Ho * Wo in ``(n, ho, wo)`` order, K = C_in/groups * kh * kw in
PyTorch's weight order ``k = (c_in * kh + i) * kw + j``, O = C_out/groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.layers import IntLayer, LayerError

__all__ = ["GemmShape", "check_codes", "conv_output_size", "gemm_shape", "im2col", "lower", "padded_patches",
           "raise_output"]


@dataclass(frozen=True)
class GemmShape:
    """The GEMMs of one layer: ``groups`` identical jobs of ``Y[T, O] = X[T, K] . W[K, O]``.

    ``out_shape`` is the layer's output tensor shape (``[..., O]`` or ``[N, C_out, Ho, Wo]``).
    """

    t: int
    k: int
    o: int
    groups: int
    out_shape: tuple[int, ...]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's output length of a conv along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def gemm_shape(layer: IntLayer, input_shape: tuple[int, ...]) -> GemmShape:
    """GEMM sizes of ``layer`` on an input of ``input_shape`` (errors name the layer)."""
    shape = tuple(int(s) for s in input_shape)
    if layer.kind == "linear":
        if len(shape) < 1 or shape[-1] != layer.in_channels:
            raise LayerError(f"layer {layer.name!r}: linear input must end in {layer.in_channels} "
                             f"features, not shape {shape}")
        t = int(np.prod(shape[:-1], dtype=np.int64))
        return GemmShape(t, layer.in_channels, layer.out_channels, 1, shape[:-1] + (layer.out_channels,))
    if len(shape) != 4 or shape[1] != layer.in_channels:
        raise LayerError(f"layer {layer.name!r}: conv2d input must be [N, {layer.in_channels}, H, W], "
                         f"not shape {shape}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (layer.kernel_size, layer.stride, layer.padding,
                                              layer.dilation)
    ho = conv_output_size(shape[2], kh, sh, ph, dh)
    wo = conv_output_size(shape[3], kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise LayerError(f"layer {layer.name!r}: input {shape[2]}x{shape[3]} is smaller than the "
                         f"dilated kernel {kh}x{kw} (dilation {dh}x{dw}, padding {ph}x{pw})")
    g = layer.groups
    return GemmShape(shape[0] * ho * wo, layer.weight.shape[1] * kh * kw, layer.out_channels // g, g,
                     (shape[0], layer.out_channels, ho, wo))


def padded_patches(codes: np.ndarray, layer: IntLayer) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """The conv input padded with the zero point's code, float32 ``[N, C, Hp, Wp]``, and every
    patch as a strided view of it, ``[N, Ho, Wo, C, kh, kw]`` (no copy; codes are at most 16
    bits, so float32 holds them exactly)."""
    import torch
    import torch.nn.functional as F

    (ph, pw), (kh, kw), (sh, sw), (dh, dw) = (layer.padding, layer.kernel_size, layer.stride,
                                              layer.dilation)
    x = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32))
    x = F.pad(x, (pw, pw, ph, ph), value=float(layer.input_zero_point))
    n, c, hp, wp = x.shape
    ho, wo = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    return x, x.as_strided((n, ho, wo, c, kh, kw), (c * hp * wp, sh * wp, sw, hp * wp, dh * wp, dw))


def im2col(codes: np.ndarray, layer: IntLayer) -> np.ndarray:
    """Patches ``[N * Ho * Wo, C_in * kh * kw]`` (float32, exact integers) padded with the zero point.

    Column order is ``(c, i, j)``, PyTorch's ``weight.reshape(O, -1)`` order; row order
    ``(n, ho, wo)``. One copy of :func:`padded_patches`' view.
    """
    _, view = padded_patches(codes, layer)
    n, ho, wo = view.shape[:3]
    return view.reshape(n * ho * wo, -1).numpy()


def check_codes(layer: IntLayer, codes: np.ndarray, code_range: tuple[int, int] | None = None
                ) -> tuple[int, int]:
    """Refuse input codes outside ``code_range`` (default: the layer's N-bit range), naming both.

    Returns the codes' smallest and largest value, ``(0, 0)`` when there are none.
    """
    if codes.size == 0:
        return 0, 0
    lo, hi = layer.input_range if code_range is None else code_range
    cmin, cmax = int(codes.min()), int(codes.max())
    if cmin < lo or cmax > hi:
        what = (f"{'signed' if layer.act_signed else 'unsigned'} {layer.act_bits}-bit"
                if code_range is None else "lane")
        raise LayerError(f"layer {layer.name!r}: input codes span [{cmin}, {cmax}], outside the "
                         f"layer's {what} range [{lo}, {hi}]")
    return cmin, cmax


def lower(layer: IntLayer, codes: np.ndarray, code_range: tuple[int, int] | None = None
          ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The GEMM operands of ``layer`` on input codes: ``[(x [T, K], w [K, O_g], bias [O_g]), ...]``.

    ``x`` is float32 holding exact integer codes (cheap to multiply; ``accel.golden`` accepts it),
    ``w`` and ``bias`` int64.

    One entry per group (a linear layer has one). ``codes`` are raw input codes (int), checked
    against ``code_range`` (default: the layer's N-bit range; OverQ lanes pass the array's wider
    raw lane range); weights and bias come from the layer.
    """
    codes = np.asarray(codes)
    check_codes(layer, codes, code_range)
    shape = gemm_shape(layer, codes.shape)
    w2 = layer.weight.reshape(layer.out_channels, -1)             # [O, K_g]
    bias = layer.bias
    if layer.kind == "linear":
        return [(codes.reshape(shape.t, shape.k).astype(np.float32), w2.T, bias)]
    cols = im2col(codes, layer)
    g, kg, og = shape.groups, shape.k, shape.o
    return [(cols[:, i * kg:(i + 1) * kg], w2[i * og:(i + 1) * og].T,
             None if bias is None else bias[i * og:(i + 1) * og]) for i in range(g)]


def raise_output(layer: IntLayer, ys: list[np.ndarray], shape: GemmShape) -> np.ndarray:
    """Inverse of the lowering on results: GEMM outputs ``[T, O_g]`` per group to the layer's shape."""
    y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=1)     # [T, O], groups in channel order
    if layer.kind == "linear":
        return y.reshape(shape.out_shape)
    n, o, ho, wo = shape.out_shape
    return y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
