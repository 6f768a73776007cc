"""The bit-exact golden arithmetic of the array (SPEC section 2).

For every output element ``(t, o)``::

    acc = bias[o]
    for each row fold f (R rows, increasing):
        s = 0                                   # P bits
        for each row k of the fold (increasing):
            s = op_P(s + x[t, k] * w[k, o])     # an overflow event if the exact value leaves P bits
        acc = op_Q(acc + s)                     # an overflow event if the exact value leaves Q bits

:func:`gemm` is the vectorised model: it *screens* first (cheap l1-style bounds prove that most
partial sums cannot leave their range, so the exact sum is the answer in both modes) and scans
partial sums step by step only for the outputs that might overflow, in chunks of bounded memory.
:func:`reference_gemm` is the same contract written as plainly as possible, one Python integer
at a time; the tests prove the two equal.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from accel.config import ArrayConfig

__all__ = ["GemmResult", "gemm", "pair_outputs", "pair_chunk", "reference_gemm", "reference_output",
           "check_operands", "op"]

#: Largest number of (t, o) pairs x steps held at once by a gathered scan (int64 elements).
SCAN_CHUNK_ELEMS = 1 << 21
#: Outputs (t, o) per chunk of vectors (each chunk runs through every fold on one thread, its
#: arrays small enough to stay in cache).
CHUNK_OUTPUTS = 1 << 16
#: Threads over chunks of vectors (numpy releases the GIL inside its loops): the usable cores.
SCAN_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
#: The outputs at risk of a fold are scanned densely (no gather) over the vectors and channels
#: concerned when they are at least this share of those pairs.
DENSE_SHARE = 0.25


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


def op(v: np.ndarray | int, bits: int, mode: str) -> np.ndarray | int:
    """op_B of SPEC section 2: wrap modulo 2^bits into the signed range, or clamp to it."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if mode == "saturate":
        return np.clip(v, lo, hi) if isinstance(v, np.ndarray) else min(max(v, lo), hi)
    return ((v - lo) & ((1 << bits) - 1)) + lo


def _as_int_matrix(name: str, a: object, shape_hint: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D integer array {shape_hint}, not shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        if arr.size and arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif arr.size:
            raise ValueError(f"{name} must hold integers, not {arr.dtype}")
    return arr.astype(np.int64)


def _check_range(name: str, a: np.ndarray, lo: int, hi: int, what: str) -> None:
    if a.size == 0:
        return
    amin, amax = int(a.min()), int(a.max())
    if amin < lo or amax > hi:
        bad = np.argwhere((a < lo) | (a > hi))[0]
        idx = ", ".join(map(str, bad))
        raise ValueError(f"{name}[{idx}] = {int(a[tuple(bad)])} is outside {what} [{lo}, {hi}]; "
                         "operands are rejected, never wrapped")


def check_operands(x: object, w: object, config: ArrayConfig, bias: object | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert operands: ``x[T, K]``, ``w[K, O]``, ``bias[O]`` as int64 arrays.

    Raises ``ValueError`` naming the operand, the offending index and value, and the valid range
    (lane codes of ``config.lane_range``, M-bit signed weights, Q-bit signed bias).
    """
    x = _as_int_matrix("x", x, "[T, K]")
    w = _as_int_matrix("w", w, "[K, O]")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"shape mismatch: x is {x.shape} ([T, K]) but w is {w.shape} ([K, O]); "
                         f"K must agree ({x.shape[1]} != {w.shape[0]})")
    if x.shape[1] == 0:
        raise ValueError("K = 0: a GEMM needs at least one reduction row (the array has no fold "
                         "to run)")
    o = w.shape[1]
    if bias is None:
        b = np.zeros(o, dtype=np.int64)
    else:
        b = np.asarray(bias)
        if b.shape != (o,):
            raise ValueError(f"bias must have shape ({o},) (one per output channel O), not {b.shape}")
        b = _as_int_matrix("bias", b[None, :], "[O]")[0]
    sign = "signed" if config.act_signed else "unsigned"
    _check_range("x", x, *config.lane_range, f"the {sign} {config.lane_bits}-bit lane range")
    _check_range("w", w, *config.weight_range, f"the signed {config.weight_bits}-bit weight range")
    if b.size:
        lo, hi = config.out_range
        if int(b.min()) < lo or int(b.max()) > hi:
            ch = int(np.argmax((b < lo) | (b > hi)))
            raise ValueError(f"bias of channel {ch} = {int(b[ch])} does not fit Q = {config.out_bits} "
                             f"bits [{lo}, {hi}]; a bias is rejected, never wrapped")
    return x, w, b


def _exact_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """Exact int64 product ``a @ b``; float64 BLAS when every partial sum stays below 2^53."""
    if bound < (1 << 53):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def _scan_pairs(xg: np.ndarray, wg: np.ndarray, bits: int, mode: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Step through ``s = op(s + xg[..., k] * wg[..., k])`` over the last axis (one fold).

    ``xg`` and ``wg`` broadcast to ``[..., steps]`` (dense scans pass ``[T, 1, steps]`` and
    ``[1, C, steps]``, gathered scans ``[pairs, steps]`` twice). The partial sum is kept offset
    by 2^(bits-1) (``u = s + 2^(bits-1)``, in ``[0, 2^bits)``), so a step overflows iff wrapping
    or clamping its offset value changes it. Returns the final ``s`` (int64) and the number of
    events per element (uint8 below 256 steps, else int32).
    """
    half, mask = 1 << (bits - 1), (1 << bits) - 1
    shape = np.broadcast_shapes(xg.shape, wg.shape)[:-1]
    # offset values reach 2^bits plus one product: int32 up to 30 bits, int64 up to 61, then
    # Python integers (object arrays; slow, only for the widest configurations)
    dt = np.int32 if bits <= 30 else np.int64 if bits <= 61 else object
    lo_u, hi_u = (dt(0), dt(mask)) if dt is not object else (0, mask)   # typed: fast ufunc loops
    u = np.full(shape, half, dtype=dt)
    ev = np.zeros(shape, dtype=np.uint8 if xg.shape[-1] < 256 else np.int32)  # <= steps events
    p = np.empty(shape, dtype=dt)
    xg, wg = xg.astype(dt), wg.astype(dt)
    for k in range(xg.shape[-1]):
        np.multiply(xg[..., k], wg[..., k], out=p)
        p += u
        if mode == "saturate":
            np.clip(p, lo_u, hi_u, out=u)           # one pass (minimum + maximum is 4x slower)
        else:
            np.bitwise_and(p, mask, out=u)
        ev += p != u
    u -= half
    return u.astype(np.int64), ev


def _scan_gathered(xf: np.ndarray, wf: np.ndarray, ti: np.ndarray, oi: np.ndarray, bits: int,
                   mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Fold results and event counts of the pairs ``(ti[i], oi[i])``, gathered, chunked."""
    s = np.empty(ti.size, dtype=np.int64)
    ev = np.empty(ti.size, dtype=np.int32)
    step = max(1, SCAN_CHUNK_ELEMS // xf.shape[1])
    for i0 in range(0, ti.size, step):
        sl = slice(i0, i0 + step)
        s[sl], ev[sl] = _scan_pairs(xf[ti[sl]], wf[:, oi[sl]].T, bits, mode)
    return s, ev


def _sign_sums(xf: np.ndarray, wf: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact sums of the positive and of the negative products of ``xf[T, R] . wf[R, C]``.

    Every prefix of a fold lies between the two, a tighter bound than ``|x| . |w|``; one
    matmul (``[x+ | x-] . [[w+, w-], [w-, w+]]``; unsigned codes need only ``x . [w+ | w-]``).
    """
    wp, wn = np.maximum(wf, 0), np.minimum(wf, 0)
    if xf.size and xf.min() < 0:
        xs = np.concatenate([np.maximum(xf, 0), np.minimum(xf, 0)], axis=1)
        ws = np.block([[wp, wn], [wn, wp]])
    else:
        xs, ws = xf, np.concatenate([wp, wn], axis=1)
    both = _exact_matmul(xs, ws, bound)
    return both[:, :wf.shape[1]], both[:, wf.shape[1]:]


def _fold_psums(xf: np.ndarray, wf: np.ndarray, config: ArrayConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """P-bit fold results ``s[T, O]`` and PE events per output for one fold.

    Screens in two stages: the largest |x| times each channel's l1 norm clears whole channels;
    then, per output, the exact sums of the positive and of the negative products bound every
    prefix. In wrap mode, an output whose products all have one sign crosses the wrap boundary
    once per event (no product reaches past 2^P), so its events are the number of 2^P periods
    its exact sum crosses (and its value, like every wrap result, is that sum wrapped). The
    outputs still at risk are scanned step by step: densely over the vectors and channels
    concerned when they are at least ``DENSE_SHARE`` of those pairs, else gathered.
    """
    bits, mode = config.pe_acc_bits, config.overflow
    lo, hi = config.pe_range
    t, o = xf.shape[0], wf.shape[1]
    amax = int(np.abs(xf).max(initial=0))
    l1 = np.abs(wf).sum(axis=0)                            # [O] per-channel l1 of the fold
    big = amax * int(l1.max(initial=0))
    cols = np.flatnonzero(amax * l1 > hi)                 # channels not cleared for every vector
    if cols.size == 0:
        return _exact_matmul(xf, wf, big), np.zeros((t, o), dtype=np.int32)
    full = cols.size == o
    pos, neg = _sign_sums(xf, wf if full else wf[:, cols], big)
    exact = pos + neg                                     # exact fold sums of those channels
    s = exact if full else _exact_matmul(xf, wf, big)
    risky = (pos > hi) | (neg < lo)
    ev = np.zeros((t, o), dtype=np.int32)
    evc = ev if full else np.zeros(risky.shape, dtype=np.int32)   # events of those channels
    if mode == "wrap":
        s = op(s, bits, "wrap")                           # the value of every output, scanned or not
        if amax * int(np.abs(wf).max()) <= 1 << bits:     # one step crosses one period at most
            mono = risky & ((pos == 0) | (neg == 0))
            np.copyto(evc, np.abs((exact + (1 << (bits - 1))) >> bits), where=mono)
            risky &= ~mono
    if not full:
        ev[:, cols] = evc
    at_risk = np.count_nonzero(risky)
    if at_risk == 0:
        return s, ev
    rows = np.flatnonzero(risky.any(axis=1))
    risky = risky[rows]
    if at_risk >= DENSE_SHARE * risky.size:
        cs = cols[risky.any(axis=0)]
        sd, evd = _scan_pairs(xf[rows, None, :], wf[:, cs].T[None, :, :], bits, mode)
        if rows.size == t and cs.size == o:
            return sd, evd
        s[np.ix_(rows, cs)], ev[np.ix_(rows, cs)] = sd, evd
    else:
        ti, ci = np.nonzero(risky)
        s[rows[ti], cols[ci]], ev[rows[ti], cols[ci]] = _scan_gathered(
            xf, wf, rows[ti], cols[ci], bits, mode)
    return s, ev


def gemm(x: object, w: object, config: ArrayConfig, bias: object | None = None) -> GemmResult:
    """Run ``Y[T, O] = X[T, K] . W[K, O] (+ bias[O])`` with the array's exact arithmetic.

    Parameters
    ----------
    x : int [T, K]
        Activation codes on the lanes (``config.lane_range``: N bits, signed or unsigned).
    w : int [K, O]
        Signed M-bit weights.
    config : ArrayConfig
        R (fold height), P, Q and the overflow mode are used.
    bias : int [O], optional
        Preloaded into the Q-bit accumulator; must fit Q bits.
    """
    x, w, b = check_operands(x, w, config, bias)
    if config.overq is not None:
        from accel.overq import overq_gemm  # encoded lanes, SPEC section 4
        return overq_gemm(x, w, config, b)
    t, k = x.shape
    o = w.shape[1]
    r, q = config.rows, config.out_bits
    if t == 0 or o == 0:
        empty = np.zeros((t, o), dtype=bool)
        return GemmResult(np.zeros((t, o), np.int64), empty, empty.copy(), 0, 0)

    # Whole-GEMM screen: when no fold of any channel can leave P bits for any vector, and no
    # accumulator step can leave Q bits, the answer is the exact sum (one matmul, both modes).
    amax = int(np.abs(x).max())
    aw = np.abs(w)
    fold_l1 = np.add.reduceat(aw, np.arange(0, k, r), axis=0)        # [F, O]
    acc_bound = np.abs(b.astype(object)) + amax * aw.sum(axis=0)     # Python ints: no int64 wrap
    pe_clear = amax * int(fold_l1.max()) <= config.pe_range[1]
    if pe_clear and max(acc_bound) <= config.out_range[1]:
        y = _exact_matmul(x, w, amax * int(aw.sum(axis=0).max())) + b
        zeros = np.zeros((t, o), dtype=bool)
        return GemmResult(y, zeros, zeros.copy(), 0, 0)
    if pe_clear and q <= 62:
        res = _accumulate_exact_folds(x, w, b, config)
        if res is not None:
            return res
    return accumulate_folds(((x[:, k0:k0 + r], w[k0:k0 + r]) for k0 in range(0, k, r)), b,
                            (t, o), config)


def _accumulate_exact_folds(x: np.ndarray, w: np.ndarray, b: np.ndarray, config: ArrayConfig
                            ) -> GemmResult | None:
    """Step 2 of SPEC section 2 when no PE step can leave P bits (every fold sum is exact).

    Every accumulator value of output ``(t, o)`` lies between ``b[o]`` plus the sum of its
    negative products and ``b[o]`` plus the sum of its positive products (:func:`_sign_sums`);
    where that stays inside Q bits the result is the exact sum. The other outputs are gathered
    and run through :func:`pair_outputs`.
    Q <= 62 bits, so no int64 sum can wrap. Returns None when at least ``DENSE_SHARE`` of the
    outputs are at risk (:func:`accumulate_folds` is then cheaper than gathering).
    """
    lo_q, hi_q = config.out_range
    k = x.shape[1]
    pos, neg = _sign_sums(x, w, int(np.abs(x).max()) * int(np.abs(w).sum(axis=0).max()))
    y = pos + neg + b
    risky = (b + pos > hi_q) | (b + neg < lo_q)
    if np.count_nonzero(risky) >= DENSE_SHARE * risky.size:
        return None                                       # fold by fold is cheaper
    ti, oi = np.nonzero(risky)
    acc_ovf = np.zeros(y.shape, dtype=bool)
    acc_events = 0
    step = pair_chunk(k)
    for i0 in range(0, ti.size, step):
        tc, oc = ti[i0:i0 + step], oi[i0:i0 + step]
        y[tc, oc], _, ev = pair_outputs(x[tc], w[:, oc].T, b[oc], config)
        acc_ovf[tc, oc] = ev > 0
        acc_events += int(ev.sum())
    zeros = np.zeros(y.shape, dtype=bool)
    return GemmResult(y, zeros, acc_ovf, 0, acc_events)


def pair_chunk(k: int) -> int:
    """Outputs per call of :func:`pair_outputs` with K = ``k`` (bounded memory)."""
    return max(1, SCAN_CHUNK_ELEMS // max(1, k))


def pair_outputs(xg: np.ndarray, wg: np.ndarray, bias: np.ndarray, config: ArrayConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC section 2 for a list of outputs given as operand rows: ``xg[i] . wg[i] + bias[i]``.

    ``xg`` and ``wg`` are ``[n, K]`` (integer-valued; the caller gathers them, in chunks of
    :func:`pair_chunk`); ``bias`` is the accumulator's Q-bit start value (the bias, or the
    accumulator at a fold edge when the operands begin there). Per fold, the sums of the positive
    and of the negative products bound every PE prefix; only folds that may leave P bits are
    scanned step by step. In wrap mode an accumulator event is a crossing of a 2^Q period by the
    running sum of the (P-bit) fold results, at most one per fold since P <= Q. Q <= 62. Returns
    ``(y, PE events, accumulator events)``, int64 ``[n]`` each.
    """
    bits, q, mode, r = config.pe_acc_bits, config.out_bits, config.overflow, config.rows
    p_lo, p_hi = config.pe_range
    lo_q, hi_q = config.out_range
    n, k = xg.shape
    folds = -(-k // r)
    x3, w3 = np.asarray(xg, np.int64), np.asarray(wg, np.int64)
    if folds * r > k:                              # zero products past K change no step
        pad = ((0, 0), (0, folds * r - k))
        x3, w3 = np.pad(x3, pad), np.pad(w3, pad)
    x3, w3 = x3.reshape(n, folds, r), w3.reshape(n, folds, r)
    prods = x3 * w3
    pos = np.maximum(prods, 0).sum(axis=2)
    s = prods.sum(axis=2)                          # exact fold sums [n, F]
    pe = np.zeros(s.shape, np.int64)
    ii, ff = np.nonzero((pos > p_hi) | (s - pos < p_lo))
    if ii.size:
        s[ii, ff], pe[ii, ff] = _scan_pairs(x3[ii, ff], w3[ii, ff], bits, mode)
    b = np.asarray(bias, np.int64)
    if mode == "wrap":
        period = (b[:, None] + np.cumsum(s, axis=1) - lo_q) >> q
        ae = np.count_nonzero(np.diff(period, axis=1, prepend=0), axis=1)
        return op(b + s.sum(axis=1), q, mode), pe.sum(axis=1), ae.astype(np.int64)
    acc, ae = b.copy(), np.zeros(n, np.int64)
    for f in range(folds):
        acc += s[:, f]
        ae += (acc < lo_q) | (acc > hi_q)
        np.clip(acc, lo_q, hi_q, out=acc)
    return acc, pe.sum(axis=1), ae


def accumulate_folds(folds: Iterable[tuple[np.ndarray, np.ndarray]], bias: np.ndarray,
                     shape: tuple[int, int], config: ArrayConfig, overq: Any = None) -> GemmResult:
    """Step 2 of SPEC section 2 over fold operands: ``acc = op_Q(acc + s_f)``, with events.

    ``folds`` yields ``(x_f[T, steps], w_f[steps, O])`` in fold order; each fold's P-bit sum
    ``s_f`` steps through its rows in order. ``bias[O]`` is preloaded. Vectors are independent:
    they run in chunks of about ``CHUNK_OUTPUTS`` outputs (each chunk through every fold, its
    arrays in cache) on ``SCAN_THREADS`` threads. Above 62 bits the accumulator is held in
    Python integers so that ``acc + s`` can never wrap int64.
    """
    folds = list(folds)
    t, o = shape
    q, mode = config.out_bits, config.overflow
    lo_q, hi_q = config.out_range
    wide = q > 62
    y = np.empty(shape, dtype=np.int64)
    pe_ovf = np.empty(shape, dtype=bool)
    acc_ovf = np.empty(shape, dtype=bool)

    def chunk(rows: slice) -> tuple[int, int]:
        n = len(range(*rows.indices(t)))
        acc = np.broadcast_to(bias.astype(object) if wide else bias, (n, o)).copy()
        pe, af = np.zeros((n, o), dtype=bool), np.zeros((n, o), dtype=bool)
        pe_events = acc_events = 0
        for xf, wf in folds:
            s, ev = _fold_psums(xf[rows], wf, config)
            pe |= ev > 0
            pe_events += int(ev.sum())
            acc += s.astype(object) if wide else s
            over = (acc < lo_q) | (acc > hi_q)
            af |= over
            acc_events += int(over.sum())
            acc = op(acc, q, mode)
        y[rows], pe_ovf[rows], acc_ovf[rows] = acc.astype(np.int64), pe, af
        return pe_events, acc_events

    step = max(1, CHUNK_OUTPUTS // max(1, o))
    chunks = [slice(t0, t0 + step) for t0 in range(0, t, step)]
    if len(chunks) == 1 or SCAN_THREADS == 1:
        events = [chunk(rows) for rows in chunks]
    else:   # one BLAS thread per chunk: BLAS's own threads would compete with the chunks'
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(SCAN_THREADS) as pool:
            events = list(pool.map(chunk, chunks))
    return GemmResult(y, pe_ovf, acc_ovf, sum(e[0] for e in events), sum(e[1] for e in events),
                      overq)


def reference_output(folds: Iterable[Iterable[int]], bias: int, config: ArrayConfig
                     ) -> tuple[int, int, int]:
    """One output element of SPEC section 2, one Python integer at a time (slow; for tests).

    ``folds`` yields, fold by fold, the terms its lanes add in lane order (plain: the products
    ``x[t, k] * w[k, o]``; OverQ: the encoded lane terms). Returns ``(acc, PE events,
    accumulator events)``.
    """
    p, q, mode = config.pe_acc_bits, config.out_bits, config.overflow

    def outside(v: int, bits: int) -> bool:
        return not -(1 << (bits - 1)) <= v < (1 << (bits - 1))

    acc, pe_events, acc_events = int(bias), 0, 0
    for terms in folds:
        s = 0
        for term in terms:
            v = s + term
            pe_events += outside(v, p)
            s = op(v, p, mode)
        v = acc + s
        acc_events += outside(v, q)
        acc = op(v, q, mode)
    return acc, pe_events, acc_events


def reference_result(t_n: int, o_n: int, output: Callable[[int, int], tuple[int, int, int]]
                     ) -> GemmResult:
    """A :class:`GemmResult` from ``output(t, o) -> (acc, PE events, accumulator events)``."""
    y = np.zeros((t_n, o_n), dtype=np.int64)
    pe = np.zeros((t_n, o_n), dtype=np.int64)
    ae = np.zeros((t_n, o_n), dtype=np.int64)
    for t in range(t_n):
        for o in range(o_n):
            y[t, o], pe[t, o], ae[t, o] = output(t, o)
    return GemmResult(y, pe > 0, ae > 0, int(pe.sum()), int(ae.sum()))


def reference_gemm(x: object, w: object, config: ArrayConfig, bias: object | None = None
                   ) -> GemmResult:
    """The contract of SPEC section 2 written one Python integer at a time (slow; for tests).

    Plain lanes only: OverQ's encoded arithmetic has its own reference in :mod:`accel.overq`.
    """
    if config.overq is not None:
        raise ValueError("reference_gemm covers the plain arithmetic (overq = None); "
                         "OverQ has its own reference in accel.overq")
    x, w, b = check_operands(x, w, config, bias)
    k_n, r = x.shape[1], config.rows

    def output(t: int, o: int) -> tuple[int, int, int]:
        folds = ([int(x[t, k]) * int(w[k, o]) for k in range(f0, min(f0 + r, k_n))]
                 for f0 in range(0, k_n, r))
        return reference_output(folds, int(b[o]), config)

    return reference_result(x.shape[0], w.shape[1], output)
