"""Exact partial-sum extremes of a layer's GEMMs: the widths its data really needs.

The smallest P with no PE event on some data is the signed width of the largest and smallest
exact PE partial sum (every prefix of every fold, 0 included); the smallest Q, of the largest and
smallest exact accumulator value (the bias and the bias plus every fold prefix). No wrapping, no
clamping: these describe the data, whatever P and Q the array has.

:func:`psum_extremes` finds them without stepping through every product. Vectors go in chunks
(:meth:`accel.operand.Operand.row_block`); per chunk one batched matmul over the folds gives, for
every (fold, vector, channel), the sums of its positive and of its negative products (the screen's
bound, :mod:`accel.screen`: every prefix of the fold lies between the two). Their sum is the fold
sum, which is itself a prefix (a lower bound on the PE extremes), and a cumulative sum over the
folds gives every accumulator value exactly. Only the (fold, vector, channel) triples whose bound
beats the extreme found so far are stepped, most promising first; on real data they are a few in
10^4 (measured on ``benchmarks/bench_tlm.py``'s ResNet-18).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.arith import chunk_rows, fold_count
from accel.operand import F32_EXACT, Operand
from accel.screen import sign_weights

__all__ = ["Extremes", "psum_extremes", "EXTREMES_CHUNK"]

#: Sign sums (folds x vectors x 2 channels) one chunk of vectors holds at once.
EXTREMES_CHUNK = 1 << 21


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


class _Candidates:
    """(fold, vector, channel) triples whose PE bound beats the extremes seen, with that bound."""

    def __init__(self) -> None:
        self.parts: dict[bool, list[tuple[np.ndarray, ...]]] = {True: [], False: []}

    def add(self, bound: "torch.Tensor", level: int, t0: int, o0: int, upper: bool) -> None:  # noqa: F821
        """The triples of ``bound`` (``[F, n, og]``, vectors from ``t0``, channels from ``o0``)
        above ``level`` (``upper``), else below it; (fold, vector) pairs are sifted first."""
        edge = bound.amax(dim=2) > level if upper else bound.amin(dim=2) < level
        f, t = edge.nonzero(as_tuple=True)
        if f.numel() == 0:
            return
        rows = bound[f, t]                                                    # [m, og]
        i, o = (rows > level if upper else rows < level).nonzero(as_tuple=True)
        f, t = f[i], t[i]
        self.parts[upper].append((f.numpy(), t.numpy() + t0, o.numpy() + o0,
                                  rows[i, o].numpy()))

    def sorted(self, upper: bool) -> tuple[np.ndarray, ...] | None:
        """Every triple kept, largest (``upper``) or smallest bound first."""
        parts = self.parts[upper]
        if not parts:
            return None
        f, t, o, bound = (np.concatenate(c) for c in zip(*parts))
        order = np.argsort(-bound if upper else bound, kind="stable")
        return f[order], t[order], o[order], bound[order]


def _fold_edges(s: "torch.Tensor", bias: np.ndarray, s_max: int) -> tuple[int, int]:  # noqa: F821
    """Smallest and largest accumulator value ``bias + s[0] + ... + s[f]`` over every fold f of
    the fold sums ``s[F, n, og]`` (exact integers, ``|s| <= s_max``; ``s`` is overwritten).

    The bias joins the first fold; then, in float32, one matmul with a lower-triangular matrix of
    ones when every sum it can form stays below 2^24 (several times faster than a cumulative sum
    over the outer axis), else a cumulative sum, again in float64 when a value reaches 2^24
    (rounding is monotone: below that every one was exact)."""
    import torch

    folds = s.shape[0]
    big = int(np.abs(bias).max(initial=0))
    if s.dtype == torch.float32 and big < F32_EXACT:
        first = s[0].clone()
        s[0] += torch.tensor(bias, dtype=torch.float32)
        if folds * s_max + big < F32_EXACT:
            acc = torch.mm(torch.tril(torch.ones(folds, folds)), s.reshape(folds, -1))
            lo, hi = torch.aminmax(acc)
            return int(lo), int(hi)
        lo, hi = torch.aminmax(torch.cumsum(s, dim=0))
        if max(int(hi), -int(lo)) < F32_EXACT:
            return int(lo), int(hi)
        s[0] = first
    s = s.double()
    s[0] += torch.tensor(bias, dtype=torch.float64)
    lo, hi = torch.aminmax(torch.cumsum(s, dim=0))
    return int(lo), int(hi)


def _step(op: Operand, f: np.ndarray, t: np.ndarray, o: np.ndarray, rows: int) -> tuple[int, int]:
    """Largest and smallest prefix of the products of fold ``f[i]`` of output ``(t[i], o[i])``."""
    hi = lo = 0
    k = op.shape.k
    for fi in np.unique(f):
        sel = f == fi
        k0, k1 = int(fi) * rows, min(k, (int(fi) + 1) * rows)
        prods = op.take(t[sel], o[sel], k0, k1, np.int64) * op.weights(o[sel], k0, k1, np.int64)
        np.cumsum(prods, axis=1, out=prods)
        hi, lo = max(hi, int(prods.max())), min(lo, int(prods.min()))
    return hi, lo


def psum_extremes(op: Operand, bias: np.ndarray | None, rows: int) -> Extremes:
    """Exact partial-sum extremes of every GEMM of the layer behind ``op`` (bias ``[O]`` preloaded)
    in folds of ``rows`` rows.

    Sign sums run in float32 while every fold's stay below 2^24 (exact), else float64 (exact below
    2^53); accumulator values in the sums' dtype, and again in float64 when one reaches 2^24 in
    float32 (rounding is monotone: below that every one was exact). On every core (torch); run
    inside :func:`accel.operand.exact_float32`.
    """
    import torch

    t, k, og, g = op.shape.t, op.shape.k, op.shape.o, op.shape.groups
    b = np.zeros(og * g, np.int64) if bias is None else np.asarray(bias, np.int64)
    if t == 0 or og == 0:
        return Extremes(acc_min=int(b.min(initial=0)), acc_max=int(b.max(initial=0)))
    lo, hi = op.code_span()
    amax, signed = max(hi, -lo), lo < 0
    folds = fold_count(k, rows)
    pe_lo = pe_hi = 0
    acc_lo, acc_hi = int(b.min()), int(b.max())
    cands = _Candidates()
    for gi in range(g):
        w = op.w2[gi * og:(gi + 1) * og].T                                   # [K, og] int64
        bg = b[gi * og:(gi + 1) * og]
        aw = np.abs(w)
        fold_bound = amax * int(aw.max(initial=0)) * min(rows, k)
        dt = torch.float32 if fold_bound < F32_EXACT else torch.float64
        npdt = np.float32 if dt == torch.float32 else np.float64
        w3 = np.pad(w, ((0, folds * rows - k), (0, 0))).reshape(folds, rows, og)
        rhs = torch.from_numpy(sign_weights(w3, signed)).to(dt)              # [F, R or 2R, 2og]
        step = op.row_step(EXTREMES_CHUNK // (folds * 2 * og))
        for t0 in range(0, t, step):
            x = op.row_block(t0, min(t, t0 + step), gi, npdt)                 # [n, K]
            n = x.shape[0]
            x3 = torch.nn.functional.pad(x, (0, folds * rows - k)).reshape(n, folds, rows)
            x3 = x3.transpose(0, 1)                                           # [F, n, R]
            if signed:
                x3 = torch.cat([x3.clamp(min=0), x3.clamp(max=0)], dim=2)
            pn = torch.bmm(x3, rhs)                                           # [F, n, 2 og]
            pos, neg = pn[..., :og], pn[..., og:]
            s = pos + neg                                                     # fold sums
            s_lo, s_hi = (int(v) for v in torch.aminmax(s))
            pe_lo, pe_hi = min(pe_lo, s_lo), max(pe_hi, s_hi)
            a_lo, a_hi = _fold_edges(s, bg, max(s_hi, -s_lo))
            acc_lo, acc_hi = min(acc_lo, a_lo), max(acc_hi, a_hi)
            cands.add(pos, pe_hi, t0, gi * og, True)
            cands.add(neg, pe_lo, t0, gi * og, False)
    for upper in (True, False):
        found = cands.sorted(upper)
        if found is None:
            continue
        f, tt, oo, bound = found
        n = chunk_rows(rows)
        for i in range(0, f.size, n):
            keep = bound[i:i + n] > pe_hi if upper else bound[i:i + n] < pe_lo
            if not keep.any():
                break                                  # sorted: no later triple can beat it
            h, l_ = _step(op, f[i:i + n][keep], tt[i:i + n][keep], oo[i:i + n][keep], rows)
            pe_hi, pe_lo = max(pe_hi, h), min(pe_lo, l_)
    return Extremes(pe_lo, pe_hi, acc_lo, acc_hi)
