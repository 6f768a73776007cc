"""The contract of SPEC section 2 written as plainly as possible, one Python integer at a time.

Slow, for tests: the vectorised golden model (:mod:`accel.golden`) and every fast path are
proven equal to :func:`reference_gemm`; OverQ's encoded arithmetic has its own reference in
:mod:`accel.overq`, built on :func:`reference_output`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from accel.arith import GemmResult, check_operands, op, signed_range

__all__ = ["reference_output", "reference_result", "reference_gemm"]


def reference_output(folds: Iterable[Iterable[int]], bias: int, config: object
                     ) -> tuple[int, int, int]:
    """One output element of SPEC section 2 (slow; for tests).

    ``folds`` yields, fold by fold, the terms its lanes add in lane order (plain: the products
    ``x[t, k] * w[k, o]``; OverQ: the encoded lane terms). Returns ``(acc, PE events,
    accumulator events)``.
    """
    p, q, mode = config.pe_acc_bits, config.out_bits, config.overflow

    def outside(v: int, bits: int) -> bool:
        lo, hi = signed_range(bits)
        return not lo <= v <= hi

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


def reference_gemm(x: object, w: object, config: object, bias: object | None = None
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
