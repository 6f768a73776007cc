"""The arithmetic primitives of SPEC section 2 that every model of the array shares (a leaf module).

Ranges of a width, op_B (wrap or saturate), the fold count ceil(K / R), the scan chunk size, the
operand checks and the result record of one GEMM. The golden model (:mod:`accel.golden`), its
stepping (:mod:`accel.steps`), the screen (:mod:`accel.screen`), OverQ (:mod:`accel.overq`) and
the slow references (:mod:`accel.reference`) all take these from here; nothing else writes them
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["code_range", "signed_range", "signed_bits", "op", "fold_count", "group_count", "SCAN_CHUNK_ELEMS",
           "chunk_rows", "exact_matmul", "sign_weights", "as_int_matrix", "check_range", "check_operands", "check_weights", "GemmResult"]

#: Largest number of int64 elements (pairs x steps) a gathered scan or gather holds at once.
SCAN_CHUNK_ELEMS = 1 << 21


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive integer range of a ``bits``-bit code: two's complement when ``signed``."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def signed_range(bits: int) -> tuple[int, int]:
    """Inclusive range ``[-2^(bits-1), 2^(bits-1) - 1]`` of a signed ``bits``-bit value."""
    return code_range(bits, True)


def signed_bits(v: object) -> np.ndarray:
    """Smallest signed two's-complement width (bits, >= 1) holding each integer of ``v``.

    Exact at any width (Python integers): ``signed_bits([-129, 127]) == [9, 8]``.
    """
    flat = [(int(a).bit_length() if a >= 0 else (-int(a) - 1).bit_length()) + 1
            for a in np.ravel(np.asarray(v, dtype=object))]
    return np.asarray(flat, dtype=np.int64).reshape(np.shape(v))


def op(v: np.ndarray | int, bits: int, mode: str) -> np.ndarray | int:
    """op_B of SPEC section 2: wrap modulo 2^bits into the signed range, or clamp to it."""
    lo, hi = signed_range(bits)
    if mode == "saturate":
        return np.clip(v, lo, hi) if isinstance(v, np.ndarray) else min(max(v, lo), hi)
    return ((v - lo) & ((1 << bits) - 1)) + lo


def fold_count(k: int, rows: int) -> int:
    """Row folds of a K-row reduction on an R-row array, ceil(K / R) (SPEC section 1)."""
    return -(-int(k) // int(rows))


def group_count(o: int, cols: int) -> int:
    """Column groups of O output channels on a C-column array, ceil(O / C) (SPEC section 1)."""
    return -(-int(o) // int(cols))


def chunk_rows(width: int) -> int:
    """Rows of ``width`` elements that one chunk of :data:`SCAN_CHUNK_ELEMS` holds (at least 1)."""
    return max(1, SCAN_CHUNK_ELEMS // max(1, int(width)))


def exact_matmul(a: np.ndarray, b: np.ndarray, bound: float | None = None) -> np.ndarray:
    """Exact int64 ``a @ b`` of integer-valued arrays: float64 BLAS when every partial sum stays
    below 2^53 (``bound`` on them, computed from the operands when not given), else int64."""
    if bound is None:
        bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).sum(axis=0).max(initial=0))
    if bound < 2.0**53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def sign_weights(w: np.ndarray, signed: bool) -> np.ndarray:
    """Weights ``w[..., R, C]`` as the right operand of one sign-sum matmul (:func:`accel.screen.sign_sums`):
    ``[w+ | w-]`` (``[..., R, 2 C]``) against unsigned codes, ``[[w+, w-], [w-, w+]]``
    (``[..., 2 R, 2 C]``) against ``[x+ | x-]``."""
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    top = np.concatenate([wp, wn], axis=-1)
    return np.concatenate([top, np.concatenate([wn, wp], axis=-1)], axis=-2) if signed else top


def as_int_matrix(name: str, a: object, shape_hint: str) -> np.ndarray:
    """``a`` as a 2-D int64 array; integer-valued floats are accepted, anything else refused."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D integer array {shape_hint}, not shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        if arr.size and arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif arr.size:
            raise ValueError(f"{name} must hold integers, not {arr.dtype}")
    return arr.astype(np.int64)


def check_range(name: str, a: np.ndarray, lo: int, hi: int, what: str) -> None:
    """Refuse an operand with a value outside ``[lo, hi]``, naming the index and the value."""
    if a.size == 0:
        return
    amin, amax = int(a.min()), int(a.max())
    if amin < lo or amax > hi:
        bad = np.argwhere((a < lo) | (a > hi))[0]
        idx = ", ".join(map(str, bad))
        raise ValueError(f"{name}[{idx}] = {int(a[tuple(bad)])} is outside {what} [{lo}, {hi}]; "
                         "operands are rejected, never wrapped")


def check_operands(x: object, w: object, config: Any, bias: object | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert operands: ``x[T, K]``, ``w[K, O]``, ``bias[O]`` as int64 arrays.

    Raises ``ValueError`` naming the operand, the offending index and value, and the valid range
    (lane codes of ``config.lane_range``, M-bit signed weights, Q-bit signed bias).
    """
    x = as_int_matrix("x", x, "[T, K]")
    w = as_int_matrix("w", w, "[K, O]")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"shape mismatch: x is {x.shape} ([T, K]) but w is {w.shape} ([K, O]); "
                         f"K must agree ({x.shape[1]} != {w.shape[0]})")
    if x.shape[1] == 0:
        raise ValueError("K = 0: a GEMM needs at least one reduction row (the array has no fold "
                         "to run)")
    b = check_weights(w, config, bias)
    sign = "signed" if config.act_signed else "unsigned"
    check_range("x", x, *config.lane_range, f"the {sign} {config.lane_bits}-bit lane range")
    return x, w, b


def check_weights(w: np.ndarray, config: Any, bias: object | None = None) -> np.ndarray:
    """Refuse weights ``w[K, O]`` outside M bits and a bias outside Q bits; the bias as int64."""
    o = w.shape[1]
    if bias is None:
        b = np.zeros(o, dtype=np.int64)
    else:
        b = np.asarray(bias)
        if b.shape != (o,):
            raise ValueError(f"bias must have shape ({o},) (one per output channel O), not {b.shape}")
        b = as_int_matrix("bias", b[None, :], "[O]")[0]
    check_range("w", w, *config.weight_range, f"the signed {config.weight_bits}-bit weight range")
    if b.size:
        lo, hi = config.out_range
        if int(b.min()) < lo or int(b.max()) > hi:
            ch = int(np.argmax((b < lo) | (b > hi)))
            raise ValueError(f"bias of channel {ch} = {int(b[ch])} does not fit Q = {config.out_bits} "
                             f"bits [{lo}, {hi}]; a bias is rejected, never wrapped")
    return b


@dataclass(frozen=True)
class GemmResult:
    """Result of one GEMM on the array.

    Attributes
    ----------
    y : int64 [T, O]
        The Q-bit signed results.
    pe_overflow, acc_overflow : bool [T, O]
        Whether any P-bit (PE) step, resp. Q-bit (output accumulator) step, of that output
        overflowed.
    pe_events, acc_events : int
        Number of overflow events (steps whose exact value left the range) over all outputs.
    overq : accel.overq.OverQStats or None
        Encoder statistics (outliers handled / displaced / unreached) when OverQ is enabled.
    """

    y: np.ndarray
    pe_overflow: np.ndarray
    acc_overflow: np.ndarray
    pe_events: int
    acc_events: int
    overq: Any = None

    def summary(self) -> dict[str, int | float]:
        """Event counts and the share of outputs affected (JSON-ready)."""
        n = max(1, self.y.size)
        return {
            "outputs": int(self.y.size),
            "pe_events": int(self.pe_events),
            "acc_events": int(self.acc_events),
            "pe_overflow_outputs": int(self.pe_overflow.sum()),
            "acc_overflow_outputs": int(self.acc_overflow.sum()),
            "affected_share": float((self.pe_overflow | self.acc_overflow).sum() / n),
        }
