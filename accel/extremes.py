"""Exact partial-sum extremes of a GEMM: the widths its data really needs.

The smallest P with no PE event on some data is the signed width of the largest and smallest
exact PE partial sum (every prefix of every fold, 0 included); the smallest Q, of the largest and
smallest exact accumulator value (the bias and the bias plus every fold prefix). No wrapping, no
clamping: these describe the data, whatever P and Q the array has.

:func:`psum_extremes` finds them without stepping through every product: one matmul per fold
gives the fold sums (exact accumulator values at every fold edge, and a lower bound on the PE
extremes); per (vector, fold), ``sum |x| * max_o |w|`` bounds every prefix of every channel; where
that beats the extreme found so far, the exact sums of the positive and of the negative products
(:func:`accel.screen.sign_sums`, the screen's bound) bound each channel's prefixes, and only the
pairs whose bound still beats it are stepped, most promising first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.arith import chunk_rows, fold_count
from accel.screen import sign_sums

__all__ = ["Extremes", "psum_extremes"]


@dataclass(frozen=True)
class Extremes:
    """Exact extremes of partial sums (see the module docstring)."""

    pe_min: int = 0
    pe_max: int = 0
    acc_min: int = 0
    acc_max: int = 0

    def __or__(self, other: "Extremes") -> "Extremes":
        return Extremes(min(self.pe_min, other.pe_min), max(self.pe_max, other.pe_max),
                        min(self.acc_min, other.acc_min), max(self.acc_max, other.acc_max))


def _scan_prefix(x: np.ndarray, w: np.ndarray, ti: np.ndarray, oi: np.ndarray) -> tuple[int, int]:
    """Largest and smallest prefix sum of ``x[t, :] * w[:, o]`` over the pairs ``(ti, oi)``."""
    hi = lo = 0
    step = chunk_rows(x.shape[1])
    for i in range(0, ti.size, step):
        prods = x[ti[i:i + step]].astype(np.int64) * w[:, oi[i:i + step]].T
        np.cumsum(prods, axis=1, out=prods)
        hi, lo = max(hi, int(prods.max())), min(lo, int(prods.min()))
    return hi, lo


def psum_extremes(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, rows: int) -> Extremes:
    """Exact partial-sum extremes of ``x[T, K] . w[K, O] + bias`` in folds of ``rows`` rows.

    Matmuls run in float32 when every sum they form stays below 2^24 (exact), else float64 (exact
    below 2^53), on every core (torch).
    """
    import torch

    t, k = x.shape
    o = w.shape[1]
    b = np.zeros(o, np.int64) if bias is None else np.asarray(bias, np.int64)
    if t == 0 or o == 0:
        return Extremes(acc_min=int(b.min(initial=0)), acc_max=int(b.max(initial=0)))
    folds = fold_count(k, rows)
    wabs = np.abs(w)
    xmax = max(float(x.max()), -float(x.min()))
    fold_bound = xmax * float(wabs.max()) * min(rows, k)
    dt = torch.float32 if fold_bound < 2**24 else torch.float64      # fold sums and bounds
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(dt)
    wt = torch.from_numpy(np.array(w)).to(dt)
    # per (vector, fold) bounds on every prefix of every channel: sum_k |x| * max_o |w|
    sel = np.zeros((k, folds), dtype=np.float64)
    sel[np.arange(k), np.arange(k) // rows] = 1
    wrow = torch.from_numpy(wabs.max(axis=1, initial=0)[:, None] * sel).to(dt)   # [K, F]
    rbn = (xt.abs() @ wrow).T.to(torch.float64).contiguous().numpy()             # [F, T]
    acc = torch.from_numpy(np.broadcast_to(b, (t, o)).astype(np.float64))       # exact < 2^53
    acc_lo, acc_hi = int(b.min()), int(b.max())
    pe_lo = pe_hi = 0
    for f in range(folds):
        k0 = f * rows
        s = xt[:, k0:k0 + rows] @ wt[k0:k0 + rows]
        lo, hi = torch.aminmax(s)
        pe_lo, pe_hi = min(pe_lo, int(lo)), max(pe_hi, int(hi))
        acc += s
        lo, hi = torch.aminmax(acc)
        acc_lo, acc_hi = min(acc_lo, int(lo)), max(acc_hi, int(hi))
    # (vector, fold) pairs whose bound beats the extreme seen: the sums of their positive and of
    # their negative products (the screen's bound) per channel, then step scans, most promising
    # first
    for f in range(folds):
        k0 = f * rows
        cand = np.flatnonzero((rbn[f] > pe_hi) | (-rbn[f] < pe_lo))
        if cand.size == 0:
            continue
        xf, wf = x[cand, k0:k0 + rows], w[k0:k0 + rows]
        pos, neg = sign_sums(xf, wf, float(rbn[f][cand].max()))
        for bnd, upper in ((pos, True), (neg, False)):
            ti, oi = np.nonzero(bnd > pe_hi) if upper else np.nonzero(bnd < pe_lo)
            if ti.size == 0:
                continue
            val = bnd[ti, oi]
            order = np.argsort(-val if upper else val, kind="stable")
            ti, oi, val = ti[order], oi[order], val[order]
            step = chunk_rows(xf.shape[1])
            for i in range(0, ti.size, step):
                keep = val[i:i + step] > pe_hi if upper else val[i:i + step] < pe_lo
                if not keep.any():
                    break                              # sorted: no later pair can beat it
                hi, lo = _scan_prefix(xf, wf, ti[i:i + step][keep], oi[i:i + step][keep])
                pe_hi, pe_lo = max(pe_hi, hi), min(pe_lo, lo)
    return Extremes(pe_lo, pe_hi, acc_lo, acc_hi)
