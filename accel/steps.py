"""Stepping through partial sums (SPEC section 2) where the screen could not rule overflow out.

Two strategies over the same steps ``s = op_P(s + x·w)`` per fold, ``acc = op_Q(acc + s)``:

* :func:`pair_outputs` - a list of outputs given as gathered operand rows, from any fold edge and
  any accumulator value there (what :mod:`accel.screen` leaves at risk);
* :func:`accumulate_folds` - every output of a set of vectors, fold by fold, vectors in
  cache-sized chunks on parallel threads (dense: no gather), with a per-fold screen
  (:func:`accel.screen.sign_sums`) that leaves only the outputs at risk to the step-by-step scan.

Both scan a fold with :func:`scan_pairs`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from accel.arith import GemmResult, chunk_rows, exact_matmul, fold_count, op, signed_range
from accel.operand import one_blas_thread
from accel.screen import pe_risky, sign_sums

__all__ = ["scan_pairs", "pair_outputs", "accumulate_folds", "CHUNK_OUTPUTS", "SCAN_THREADS",
           "DENSE_SHARE"]

#: Outputs (t, o) per chunk of vectors (each chunk runs through every fold on one thread, its
#: arrays small enough to stay in cache).
CHUNK_OUTPUTS = 1 << 16
#: Threads over chunks of vectors (numpy releases the GIL inside its loops): the usable cores.
SCAN_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
#: The outputs at risk of a fold are scanned densely (no gather) over the vectors and channels
#: concerned when they are at least this share of those pairs.
DENSE_SHARE = 0.25


def scan_pairs(xg: np.ndarray, wg: np.ndarray, bits: int, mode: str
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
    step = chunk_rows(xf.shape[1])
    for i0 in range(0, ti.size, step):
        sl = slice(i0, i0 + step)
        s[sl], ev[sl] = scan_pairs(xf[ti[sl]], wf[:, oi[sl]].T, bits, mode)
    return s, ev


def _fold_psums(xf: np.ndarray, wf: np.ndarray, config: Any) -> tuple[np.ndarray, np.ndarray]:
    """P-bit fold results ``s[T, O]`` and PE events per output for one fold.

    Screens in two stages: the largest |x| times each channel's l1 norm clears whole channels;
    then, per output, the exact sums of the positive and of the negative products bound every
    prefix (:func:`accel.screen.sign_sums`). In wrap mode, an output whose products all have one
    sign crosses the wrap boundary once per event (no product reaches past 2^P), so its events
    are the number of 2^P periods its exact sum crosses (and its value, like every wrap result,
    is that sum wrapped). The outputs still at risk are scanned step by step: densely over the
    vectors and channels concerned when they are at least ``DENSE_SHARE`` of those pairs, else
    gathered.
    """
    bits, mode = config.pe_acc_bits, config.overflow
    hi = signed_range(bits)[1]
    t, o = xf.shape[0], wf.shape[1]
    amax = int(np.abs(xf).max(initial=0))
    l1 = np.abs(wf).sum(axis=0)                            # [O] per-channel l1 of the fold
    big = amax * int(l1.max(initial=0))
    cols = np.flatnonzero(amax * l1 > hi)                 # channels not cleared for every vector
    if cols.size == 0:
        return exact_matmul(xf, wf, big), np.zeros((t, o), dtype=np.int32)
    full = cols.size == o
    pos, neg = sign_sums(xf, wf if full else wf[:, cols], big)
    exact = pos + neg                                     # exact fold sums of those channels
    s = exact if full else exact_matmul(xf, wf, big)
    risky = pe_risky(pos, neg, config)
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
        sd, evd = scan_pairs(xf[rows, None, :], wf[:, cs].T[None, :, :], bits, mode)
        if rows.size == t and cs.size == o:
            return sd, evd
        s[np.ix_(rows, cs)], ev[np.ix_(rows, cs)] = sd, evd
    else:
        ti, ci = np.nonzero(risky)
        s[rows[ti], cols[ci]], ev[rows[ti], cols[ci]] = _scan_gathered(
            xf, wf, rows[ti], cols[ci], bits, mode)
    return s, ev


def pair_outputs(xg: np.ndarray, wg: np.ndarray, start: np.ndarray, config: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC section 2 for a list of outputs given as operand rows: ``xg[i] . wg[i]`` from ``start[i]``.

    ``xg`` and ``wg`` are ``[n, K']`` (integer-valued; the caller gathers them, in chunks of
    :func:`accel.arith.chunk_rows`) and begin on a fold edge; ``start`` is the accumulator's
    Q-bit value there (the bias, or the accumulator at that edge). Per fold, the sums of the
    positive and of the negative products bound every PE prefix; only folds that may leave P bits
    are scanned step by step. In wrap mode an accumulator event is a crossing of a 2^Q period by
    the running sum of the (P-bit) fold results, at most one per fold since P <= Q. Q <= 62.
    Returns ``(y, PE events, accumulator events)``, int64 ``[n]`` each.
    """
    bits, q, mode, r = config.pe_acc_bits, config.out_bits, config.overflow, config.rows
    lo_q, hi_q = config.out_range
    n, k = xg.shape
    folds = fold_count(k, r)
    x3, w3 = np.asarray(xg, np.int64), np.asarray(wg, np.int64)
    if folds * r > k:                              # zero products past K change no step
        pad = ((0, 0), (0, folds * r - k))
        x3, w3 = np.pad(x3, pad), np.pad(w3, pad)
    x3, w3 = x3.reshape(n, folds, r), w3.reshape(n, folds, r)
    prods = x3 * w3
    pos = np.maximum(prods, 0).sum(axis=2)
    s = prods.sum(axis=2)                          # exact fold sums [n, F]
    pe = np.zeros(s.shape, np.int64)
    ii, ff = np.nonzero(pe_risky(pos, s - pos, config))
    if ii.size:
        s[ii, ff], pe[ii, ff] = scan_pairs(x3[ii, ff], w3[ii, ff], bits, mode)
    b = np.asarray(start, np.int64)
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
                     shape: tuple[int, int], config: Any, overq: Any = None) -> GemmResult:
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
        with one_blas_thread(), ThreadPoolExecutor(SCAN_THREADS) as pool:
            events = list(pool.map(chunk, chunks))
    return GemmResult(y, pe_ovf, acc_ovf, sum(e[0] for e in events), sum(e[1] for e in events),
                      overq)
