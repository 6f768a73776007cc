"""Accumulator bounds: when can integer weights never overflow a B-bit accumulator (SPEC section 5)?

Conventions shared by every function here:

* Integer weights are given as a GEMM operand ``q[K, O]`` (rows k = reduction, columns o = output
  channels), signed M-bit, as :func:`accel.golden.gemm` takes them. A convolution's channel o is
  the row ``weight[o].reshape(-1)``, whatever its group, so ``weight.reshape(O, -1).T`` is the
  right operand for every layer.
* Input codes are raw array lane codes in ``[x_min, x_max]`` with ``x_min <= 0 <= x_max`` (an
  unsigned N-bit input has ``(0, 2^N - 1)``, a signed one ``(-2^(N-1), 2^(N-1) - 1)``; OverQ range
  modes must pass their 2N-bit lane range, ``ArrayConfig.lane_range``). Each function names the
  range it assumes in its docstring.
* B is an accumulator width in bits (signed two's complement). "Fold" is one R-row slice of K:
  P is sized per fold (bias 0), Q over the whole K plus the preloaded bias.

The exact range test is the tightest and the one to certify given integers with; the data-type
bound, the A2Q l1 test and the A2Q+ half-norm test are the closed forms that quantizers target.
Nothing here certifies integers with the A2Q+ l1 form (``‖v‖₁ ≤ (2^B - 2)/(2^N - 1)``), which holds
for zero-centred *real* weights only: ``q = [129, -1 × 127]``, N = 8 unsigned, B = 16 has
``‖q‖₁ = 256`` yet reaches ``255 · 129 = 32895 > 32767``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SafeWidths", "check_input_range", "exact_range", "exact_range_ok", "exact_min_bits",
           "datatype_bound", "a2q_l1_limit", "a2q_min_bits", "a2qplus_real_l1_limit",
           "half_norm_limit", "half_norm_min_bits", "fold_sums", "min_safe_widths",
           "signed_bits"]


def check_input_range(x_range: tuple[int, int]) -> tuple[int, int]:
    """Validate an input code range ``(x_min, x_max)``: integers with ``x_min <= 0 <= x_max``."""
    try:
        x_min, x_max = (int(v) for v in x_range)
    except (TypeError, ValueError):
        raise ValueError(f"input code range must be a pair of integers (x_min, x_max), "
                         f"not {x_range!r}") from None
    if not x_min <= 0 <= x_max:
        raise ValueError(f"input code range ({x_min}, {x_max}) must contain 0 "
                         "(x_min <= 0 <= x_max), as every raw lane code range does")
    return x_min, x_max


def _weights(q: object) -> np.ndarray:
    arr = np.asarray(q)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"integer weights must be a [K, O] matrix (or one [K] column), "
                         f"not shape {arr.shape}")
    if arr.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) for v in arr.flat):
        return arr  # Python integers already (exact at any width)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"the bounds certify integer weights; got {arr.dtype} values that are "
                             "not integers")
    return arr.astype(object)  # Python integers: no int64 overflow in sums of wide products


def signed_bits(v: object) -> np.ndarray:
    """Smallest signed two's-complement width (bits) holding each integer of ``v``."""
    flat = [(int(a).bit_length() if a >= 0 else (-int(a) - 1).bit_length()) + 1
            for a in np.ravel(np.asarray(v, dtype=object))]
    return np.asarray(flat, dtype=np.int64).reshape(np.shape(v))


def exact_range(q: object, x_range: tuple[int, int], bias: object | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel extremes ``(lo[O], hi[O])`` of ``bias + sum_k x_k q[k, o]`` over the input range.

    With ``p = sum of positive q`` and ``n = sum of negative q`` per column,
    ``hi = b + x_max p + x_min n`` and ``lo = b + x_min p + x_max n``. Because
    ``x_min <= 0 <= x_max`` every partial sum, in any order and over any subset of rows, also lies in
    ``[lo, hi]``. Assumes inputs anywhere in the raw code range ``x_range`` (inclusive).

    Returns Python-integer (object) arrays, exact for any width.
    """
    x_min, x_max = check_input_range(x_range)
    w = _weights(q)
    p = np.where(w > 0, w, 0).sum(axis=0)
    n = np.where(w < 0, w, 0).sum(axis=0)
    b = 0 if bias is None else np.asarray(bias).astype(object)
    return b + x_min * p + x_max * n, b + x_max * p + x_min * n


def exact_range_ok(q: object, bits: int, x_range: tuple[int, int], bias: object | None = None
                   ) -> np.ndarray:
    """True per channel when the exact range test passes at width ``bits`` (SPEC section 5).

    ``b + x_max p + x_min n <= 2^(B-1) - 1`` and ``b + x_min p + x_max n >= -2^(B-1)``, for inputs
    anywhere in ``x_range``; ``bias`` is the preloaded accumulator value (None or 0 for P).
    """
    lo, hi = exact_range(q, x_range, bias)
    lim = 1 << (int(bits) - 1)
    return np.asarray((lo >= -lim) & (hi <= lim - 1), dtype=bool)


def exact_min_bits(q: object, x_range: tuple[int, int], bias: object | None = None) -> np.ndarray:
    """Smallest B per channel that passes the exact range test (inputs anywhere in ``x_range``)."""
    lo, hi = exact_range(q, x_range, bias)
    return np.maximum(signed_bits(lo), signed_bits(hi))


def datatype_bound(k: int, act_bits: int, weight_bits: int, act_signed: bool) -> int:
    """Data-type bound on the accumulator width for a K'-term dot product (per layer).

    ``B >= ceil(alpha + log2(1 + 2^-alpha) + 1)`` with ``alpha = log2 K' + N + M - 1 - signed(x)``
    (the paper's form, up to one bit pessimistic). It assumes the full N-bit input range of the given
    sign and any M-bit weights. Computed exactly: ``alpha + log2(1 + 2^-alpha) = log2(2^alpha + 1)``
    and ``2^alpha = K' 2^(N+M-1-signed)`` is an integer.
    """
    for name, v, lo in (("K'", k, 1), ("act_bits", act_bits, 1), ("weight_bits", weight_bits, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
    two_alpha = int(k) << (int(act_bits) + int(weight_bits) - 1 - int(bool(act_signed)))
    return two_alpha.bit_length() + 1   # smallest L with 2^L >= 2^alpha + 1, plus the sign bit


def a2q_l1_limit(bits: int, act_bits: int, act_signed: bool) -> float:
    """A2Q's bound on ``‖q‖₁`` for a B-bit accumulator: ``(2^(B-1) - 1) 2^(signed(x) - N)``.

    Assumes the full N-bit input range of the given sign (the paper's symmetric form: it bounds by
    the largest input magnitude, ``2^(N - signed)``).
    """
    return ((1 << (int(bits) - 1)) - 1) * 2.0 ** (int(bool(act_signed)) - int(act_bits))


def a2q_min_bits(q: object, act_bits: int, act_signed: bool) -> np.ndarray:
    """Smallest B per channel whose A2Q l1 test ``‖q‖₁ <= a2q_l1_limit(B)`` passes (exact integers).

    Assumes the full N-bit input range of the given sign. ``‖q‖₁ 2^(N - signed) <= 2^(B-1) - 1``
    holds iff ``B - 1 >= bit_length(‖q‖₁ 2^(N - signed))``.
    """
    l1 = np.abs(_weights(q)).sum(axis=0)
    shift = int(act_bits) - int(bool(act_signed))
    return np.asarray([(int(v) << shift).bit_length() + 1 for v in l1], dtype=np.int64)


def a2qplus_real_l1_limit(bits: int, act_bits: int) -> float:
    """A2Q+'s bound on the l1 norm of the zero-centred *real* (pre-rounding) weights, in steps.

    ``(2^B - 2) / (2^N - 1)``; for unsigned N-bit inputs ``[0, 2^N - 1]``. It constrains what the
    quantizer rounds, never given integers: certify those with :func:`half_norm_min_bits` or the exact
    test.
    """
    return ((1 << int(bits)) - 2) / ((1 << int(act_bits)) - 1)


def half_norm_limit(bits: int, act_bits: int) -> float:
    """A2Q+'s half-norm bound ``max(sum q+, -sum q-) <= (2^(B-1) - 1) / (2^N - 1)``.

    For unsigned N-bit inputs ``[0, 2^N - 1]`` only: a signed range weighs both halves at once.
    """
    return ((1 << (int(bits) - 1)) - 1) / ((1 << int(act_bits)) - 1)


def half_norm_min_bits(q: object, act_bits: int, act_signed: bool = False) -> np.ndarray:
    """Smallest B per channel passing the A2Q+ half-norm test (unsigned N-bit inputs only).

    ``h (2^N - 1) <= 2^(B-1) - 1`` with ``h = max(sum q+, -sum q-)`` holds iff
    ``B - 1 >= bit_length(h (2^N - 1))``. Raises ``ValueError`` for signed inputs, where the
    half-norm test does not bound the sum.
    """
    if act_signed:
        raise ValueError("the A2Q+ half-norm test assumes unsigned inputs [0, 2^N - 1]; for signed "
                         "inputs use exact_min_bits or a2q_min_bits")
    w = _weights(q)
    h = np.maximum(np.where(w > 0, w, 0).sum(axis=0), -np.where(w < 0, w, 0).sum(axis=0))
    xm = (1 << int(act_bits)) - 1
    return np.asarray([(int(v) * xm).bit_length() + 1 for v in h], dtype=np.int64)


def fold_sums(q: object, rows: int) -> list[np.ndarray]:
    """The R-row folds of ``q[K, O]`` in increasing order (the last one may be shorter)."""
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"fold height R must be a positive integer, not {rows!r}")
    w = np.asarray(q)
    w = w[:, None] if w.ndim == 1 else w
    return [w[k0:k0 + rows] for k0 in range(0, w.shape[0], int(rows))]


@dataclass(frozen=True)
class SafeWidths:
    """Minimum safe accumulator widths of one layer (exact range test).

    Attributes
    ----------
    pe_bits : int64 [O]
        Smallest P per channel with no PE event for any input: the widest of its folds (bias 0).
    out_bits : int64 [O]
        Smallest Q per channel with no accumulator event: whole K plus the preloaded bias.
    """

    pe_bits: np.ndarray
    out_bits: np.ndarray

    @property
    def p(self) -> int:
        """The layer's minimum safe P (widest channel)."""
        return int(self.pe_bits.max())

    @property
    def q(self) -> int:
        """The layer's minimum safe Q (widest channel, bias included), never below :attr:`p`.

        A configuration needs Q >= P, so the reported Q is ``max(whole-K bound, P)``.
        """
        return max(int(self.out_bits.max()), self.p)


def min_safe_widths(q: object, x_range: tuple[int, int], rows: int, bias: object | None = None
                    ) -> SafeWidths:
    """Minimum safe P (per fold of ``rows`` rows) and Q (whole K plus ``bias``) per channel.

    Assumes raw input codes anywhere in ``x_range`` (pass ``ArrayConfig.lane_range``). These are the
    widths of the bound alone; a configuration additionally needs ``P >= N + M`` (one exact product).
    """
    folds = fold_sums(q, rows)
    pe = np.max(np.stack([exact_min_bits(f, x_range) for f in folds]), axis=0)
    return SafeWidths(pe_bits=pe, out_bits=exact_min_bits(q, x_range, bias))
