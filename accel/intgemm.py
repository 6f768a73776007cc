"""Exact int8 GEMMs: int8 codes and weights, int32 sums (VNNI on x86, no rounding anywhere).

The screen's block sums and the partial-sum extremes multiply narrow integers: where the codes fit
int8 after an offset (:func:`int8_offset`, ``x - c``; ``c . sum(w)`` is added back per column) and
the weights fit int8, torch's int8 GEMM gives their sums exactly, several times faster than
float32 (:func:`int8_mm`). :func:`int8_gemm_exact` checks once that the kernel is there and exact;
without it the float kernels run (:mod:`accel.operand`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["I32_MAX", "int8_offset", "int8_gemm_exact", "int8_mm", "int8_operands"]

#: Largest sum an int8 GEMM's int32 accumulators hold.
I32_MAX = (1 << 31) - 1


def int8_offset(span: tuple[int, int]) -> int | None:
    """The offset ``c`` that brings codes spanning ``span`` into int8 (every ``x - c`` in
    [-128, 127]): 0 where they fit, else the smallest code + 128 (128 for unsigned 8-bit codes);
    None where they span more than 256 values."""
    lo, hi = span
    if hi - lo > 255:
        return None
    return 0 if lo >= -128 and hi <= 127 else lo + 128


@cache
def int8_gemm_exact() -> bool:
    """torch's int8 GEMM (``torch._int_mm``: int8 ``[n, k] . [k, m]`` to int32 sums, VNNI on x86,
    about 8x float32's speed on one AVX-512 core) is there and equals int64 matmuls: checked once
    on random and extreme operands of odd shapes and strides. Without it the float path runs."""
    import torch

    mm = getattr(torch, "_int_mm", None)
    if mm is None:
        return False
    rng = np.random.default_rng(0)
    cases = [rng.integers(-128, 128, (n, k + 3), dtype=np.int8) for n, k in ((1, 1), (7, 29), (40, 96))]
    try:
        for x in cases:
            w = rng.integers(-128, 128, (x.shape[1] - 3, 37), dtype=np.int8)
            for xs in (x[:, 3:], np.full_like(x[:, 3:], -128)):
                ws = np.full_like(w, -128) if xs[0, 0] == -128 else w
                got = mm(torch.from_numpy(xs), torch.from_numpy(ws)).numpy()
                if not np.array_equal(got, xs.astype(np.int64) @ ws.astype(np.int64)):
                    return False
    except RuntimeError:
        return False
    return True


def int8_mm(a: "torch.Tensor", b: "torch.Tensor", out: "torch.Tensor | None" = None  # noqa: F821
            ) -> "torch.Tensor":  # noqa: F821
    """Exact int8 GEMM ``a[n, k] . b[k, m]`` to int32 (:func:`int8_gemm_exact` must hold).

    Operands go in row-major with a row stride of at least their width: torch passes the strides
    to oneDNN as they are, and a size-1 dimension with any other stride (a one-column view of a
    transpose, say) comes back as garbage (measured on torch 2.13), so such an operand is copied."""
    import torch

    def row_major(t: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
        if t.stride(-1) == 1 and t.stride(0) >= t.shape[1]:
            return t
        return torch.empty(t.shape, dtype=t.dtype).copy_(t)

    return torch._int_mm(row_major(a), row_major(b), out=out)


def int8_operands(span: tuple[int, int], weight_span: tuple[int, int] | None) -> int | None:
    """:func:`int8_offset` of codes spanning ``span`` where weights spanning ``weight_span``
    (smallest, largest; None: no weights) fit int8 too and torch's int8 GEMM is exact here
    (:func:`int8_gemm_exact`), else None."""
    off = int8_offset(span)
    if (off is None or weight_span is None or weight_span[0] < -128 or weight_span[1] > 127
            or not int8_gemm_exact()):
        return None
    return off
