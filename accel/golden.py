"""The bit-exact golden arithmetic of the array (SPEC section 2).

For every output element ``(t, o)``::

    acc = bias[o]
    for each row fold f (R rows, increasing):
        s = 0                                   # P bits
        for each row k of the fold (increasing):
            s = op_P(s + x[t, k] * w[k, o])     # an overflow event if the exact value leaves P bits
        acc = op_Q(acc + s)                     # an overflow event if the exact value leaves Q bits

:func:`gemm` runs one GEMM: the screen (:func:`accel.screen.screen`) proves most outputs cannot
overflow (their result is the exact sum, no flag), and :func:`resolve` steps through the rest
(:mod:`accel.steps`). :func:`layer_values` does the same for a whole layer on its lazy operand
(:mod:`accel.operand`), without materialising im2col. OverQ configurations run on the encoded
lanes (:func:`accel.overq.overq_gemm`). :func:`accel.reference.reference_gemm` is the contract one
Python integer at a time; the tests prove the two equal. numpy only: no torch for a plain GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.arith import GemmResult, check_operands, check_weights, chunk_rows
from accel.operand import Matrix, Operand, index
from accel.overq import overq_gemm
from accel.extremes import Extremes, psum_extremes, screen_with_extremes
from accel.screen import MAX_SCREEN_Q, ScreenResult, screen
from accel.steps import accumulate_folds, pair_outputs

__all__ = ["Values", "gemm", "resolve", "layer_values"]


@dataclass(frozen=True)
class Values:
    """The array's results of one layer (all its GEMMs), in the operand's ``[*lead, O]`` layout.

    Attributes
    ----------
    y : int64
        Q-bit results.
    exact : int64
        Exact ``bias + x . w`` (no widths).
    pe_overflow, acc_overflow : bool
        Per output: a PE step, resp. an accumulator step, overflowed.
    pe_events, acc_events : int
        Overflow events over all outputs.
    stepped : int
        Outputs the golden stepping ran (the rest the screen proved exact).
    """

    y: np.ndarray
    exact: np.ndarray
    pe_overflow: np.ndarray
    acc_overflow: np.ndarray
    pe_events: int
    acc_events: int
    stepped: int


def resolve(op: Operand, res: ScreenResult, bias: np.ndarray, config: object) -> Values:
    """Step through what the screen left (``res.todo``, ``res.dense``); every other output is its
    exact sum with no event. Gathered outputs start at their fold edge, dense vectors at fold 0."""
    stepping = bool(res.todo) or (res.dense is not None and res.dense.any())
    y = res.exact.copy() if stepping else res.exact     # nothing stepped: the exact sums
    pe_f = np.zeros(y.shape, dtype=bool)
    acc_f = np.zeros(y.shape, dtype=bool)
    pe_ev = acc_ev = stepped = 0
    og, k, r = op.shape.o, op.shape.k, config.rows
    dense = res.dense
    for t, o, e0, start in res.todo:
        if dense is not None:
            keep = ~dense[o // og, t]
            t, o, start = t[keep], o[keep], start[keep]
        step = chunk_rows(k - e0)
        for i0 in range(0, t.size, step):
            tc, oc = t[i0:i0 + step], o[i0:i0 + step]
            yv, pe, ae = pair_outputs(op.take(tc, oc, e0, k, np.int64),
                                      op.weights(oc, e0, k, np.int64), start[i0:i0 + step], config)
            idx = index(op.lead, tc, oc)
            y[idx], pe_f[idx], acc_f[idx] = yv, pe > 0, ae > 0
            pe_ev, acc_ev = pe_ev + int(pe.sum()), acc_ev + int(ae.sum())
        stepped += t.size
    for g in range(0 if dense is None else dense.shape[0]):
        rows = np.flatnonzero(dense[g])
        w = op.w2[g * og:(g + 1) * og].T
        step = chunk_rows(k) * 4
        for i0 in range(0, rows.size, step):
            rc = rows[i0:i0 + step]
            x = op.rows(rc, g)
            out = accumulate_folds(((x[:, k0:k0 + r], w[k0:k0 + r]) for k0 in range(0, k, r)),
                                   bias[g * og:(g + 1) * og], (rc.size, og), config)
            idx = index(op.lead, np.repeat(rc, og), np.tile(np.arange(g * og, (g + 1) * og), rc.size))
            y[idx], pe_f[idx], acc_f[idx] = out.y.ravel(), out.pe_overflow.ravel(), out.acc_overflow.ravel()
            pe_ev, acc_ev = pe_ev + out.pe_events, acc_ev + out.acc_events
            stepped += rc.size * og
    return Values(y, res.exact, pe_f, acc_f, pe_ev, acc_ev, stepped)


def layer_values(op: Operand, bias: np.ndarray | None, config: object, extremes: bool = False
                 ) -> tuple[Values, Extremes | None]:
    """The array's results of every output of the layer behind ``op`` (plain lanes; the bias,
    with the zero-point correction folded in, must fit Q bits), and with ``extremes`` its exact
    partial-sum extremes: then the screen's answer comes from the same fold-by-fold pass
    (:func:`accel.extremes.screen_with_extremes`; up to Q = 52, as the screen)."""
    b = np.zeros(op.w2.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    og = op.shape.o
    for g in range(op.shape.groups):      # the same operand errors as gemm() per group
        check_weights(op.w2[g * og:(g + 1) * og].T, config, b[g * og:(g + 1) * og])
    ext = None
    if not extremes:
        res = screen(op, b, config)
    elif config.out_bits <= MAX_SCREEN_Q:
        ext, res = screen_with_extremes(op, b, config)
    else:
        res, ext = screen(op, b, config), psum_extremes(op, b, config.rows)
    return resolve(op, res, b, config), ext


def gemm(x: object, w: object, config: object, bias: object | None = None) -> GemmResult:
    """Run ``Y[T, O] = X[T, K] . W[K, O] (+ bias[O])`` with the array's exact arithmetic.

    Parameters
    ----------
    x : int [T, K]
        Activation codes on the lanes (``config.lane_range``: N bits, signed or unsigned; OverQ:
        raw lane codes).
    w : int [K, O]
        Signed M-bit weights.
    config : ArrayConfig
        R (fold height), P, Q, the overflow mode and OverQ are used.
    bias : int [O], optional
        Preloaded into the Q-bit accumulator; must fit Q bits.
    """
    x, w, b = check_operands(x, w, config, bias)
    if config.overq is not None:       # encoded lanes, SPEC section 4
        return overq_gemm(x, w, config, b)
    t, o = x.shape[0], w.shape[1]
    if t == 0 or o == 0:
        empty = np.zeros((t, o), dtype=bool)
        return GemmResult(np.zeros((t, o), np.int64), empty, empty.copy(), 0, 0)
    op = Matrix(x, w)
    v = resolve(op, screen(op, b, config), b, config)
    return GemmResult(v.y, v.pe_overflow, v.acc_overflow, v.pe_events, v.acc_events)
