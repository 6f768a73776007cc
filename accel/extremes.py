"""Exact partial-sum extremes of a layer's GEMMs: the widths its data really needs.

The smallest P with no PE event on some data is the signed width of the largest and smallest
exact PE partial sum (every prefix of every fold, 0 included); the smallest Q, of the largest and
smallest exact accumulator value (the bias and the bias plus every fold prefix). No wrapping, no
clamping: these describe the data, whatever P and Q the array has.

:func:`psum_extremes` finds them without stepping through every product. Vectors go in chunks
(:meth:`accel.operand.Operand.row_block`) small enough for the cache; per chunk and fold one GEMM
against ``[w+ | w- | w]`` gives, for every (vector, channel), the sums of its positive and of its
negative products (the screen's bound, :mod:`accel.screen`: every prefix of the fold lies between
the two) and the fold sum, the accumulator's step (its values come exact at every fold). The GEMMs are int8 (exact int32 sums, about 8x
float32's speed with VNNI) wherever the codes and weights fit. Per (fold, vector) only the
extremes over the channels are kept; the pairs whose bound beats the extreme found are expanded to
their channels, and those triples stepped, most promising first: on real data a few in 10^4
(measured on ``benchmarks/bench_tlm.py``'s ResNet-18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from accel.arith import chunk_rows, fold_count
from accel.intgemm import I32_MAX, int8_mm
from accel.operand import F32_EXACT, Operand
from accel.screen import ScreenResult, fold_weights, sign_sums, weight_l1

__all__ = ["Extremes", "psum_extremes", "screen_with_extremes", "EXTREMES_CHUNK", "PAIR_BATCH"]

#: Sums (vectors x 3 channels) one fold's GEMM of a chunk of vectors holds (8 MB of int32: in L3).
EXTREMES_CHUNK = 1 << 21
#: (fold, vector) pairs expanded to their channels at once, most promising first.
PAIR_BATCH = 1024
#: Triples stepped first (the most promising); each later round doubles.
FIRST_STEPS = 256
#: Pairs of each group expanded first (the most promising: they set the level the rest must beat).
FIRST_PAIRS = 8


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
    in folds of ``rows`` rows (module docstring).

    The sign sums are exact: int8 GEMMs (int32 sums) where the operand's codes and weights fit
    int8 (:attr:`accel.operand.Operand.int8`), else float32 while every fold's sums stay below
    2^24, else float64 (exact below 2^53); accumulator values in int32 / float32 where no value
    can reach 2^31 / 2^24, else int64 / float64 (int64 from 2^53). On every core (torch); run inside
    :func:`accel.operand.exact_float32`.
    """
    return _scan(op, bias, rows, None)[0]


def screen_with_extremes(op: Operand, bias: np.ndarray, config: Any) -> tuple[Extremes, ScreenResult]:
    """:func:`psum_extremes` of the layer behind ``op`` in folds of ``config.rows``, and from the
    same fold sums the screen's answer (:func:`accel.screen.screen`, plain lanes), exact at every
    fold: no block bound, no refinement. An output whose positive or negative sum of a fold leaves
    P bits goes to ``todo`` from that fold's edge; one whose accumulator leaves Q bits after some
    fold (each output's extremes are kept), from the first fold after which an accumulator of its
    chunk of vectors did, with the exact accumulator values there. ``bias`` int64 ``[O]``; Q at
    most 52 bits."""
    return _scan(op, bias, config.rows, config)


def _scan(op: Operand, bias: np.ndarray | None, rows: int, config: Any
          ) -> tuple[Extremes, ScreenResult | None]:
    """The fold-by-fold pass of :func:`psum_extremes`; with ``config`` also the screen's answer
    (:func:`screen_with_extremes`)."""
    import torch

    t, k, og, g = op.shape.t, op.shape.k, op.shape.o, op.shape.groups
    b = np.zeros(og * g, np.int64) if bias is None else np.asarray(bias, np.int64)
    watch = config is not None
    if watch:
        (p_lo, p_hi), (q_lo, q_hi) = config.pe_range, config.out_range
        exact = np.empty((t, og * g), np.int64)
        todo: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
    if t == 0 or og == 0:
        ext = Extremes(acc_min=int(b.min(initial=0)), acc_max=int(b.max(initial=0)))
        return ext, (ScreenResult(np.broadcast_to(b, (*op.lead, og * g)).copy()) if watch else None)
    lo, hi = op.code_span()
    amax, signed = max(hi, -lo), lo < 0
    folds = fold_count(k, rows)
    fold_bound = amax * weight_l1(op, rows)[0] * min(rows, k)             # |any fold's sums|
    ints = (op.int8 is not None and (op.int8 == 0 or not signed)     # x+, x- of the codes in int8
            and fold_bound <= I32_MAX)
    found = []                                      # per group: sign sums' extremes per (fold, vector)
    acc = [int(b.min()), int(b.max())]
    for gi in range(g):
        bg = b[gi * og:(gi + 1) * og]
        reach = folds * fold_bound + int(np.abs(bg).max(initial=0))          # |any accumulator value|
        if ints:
            dt, npdt = torch.int8, np.int8
            acc_dt = torch.int32 if reach <= I32_MAX else torch.int64
        else:
            dt = torch.float32 if fold_bound < F32_EXACT else torch.float64
            npdt = np.float32 if dt == torch.float32 else np.float64
            acc_dt = (torch.float32 if reach < F32_EXACT else torch.float64 if reach < 2 ** 53
                      else torch.int64)
        w3, rhs, wsum = fold_weights(op, gi, rows, signed, dt)
        if ints:   # (x - c) . w + c . sum(w) for codes offset by c
            corr = (op.int8 * wsum).to(torch.int32)                          # [F, 3og]
        # per (fold, vector): the largest positive and the smallest negative sum over the
        # channels; per (fold, chunk of vectors): the accumulator's extremes
        pmax, nmin = torch.empty(2, folds, t, dtype=torch.int32 if ints else dt)
        step = op.row_step(EXTREMES_CHUNK // (3 * og))
        chunks = range(0, t, step)
        c_ext = torch.empty(2, folds, len(chunks), dtype=acc_dt)
        for ci, t0 in enumerate(chunks):
            t1 = min(t, t0 + step)
            x = op.row_block(t0, t1, gi, npdt)                                # [n, K]
            parts = (x.clamp(min=0), x.clamp(max=0)) if signed else (x,)
            c = torch.tensor(bg, dtype=acc_dt).expand(t1 - t0, og).clone()  # accumulator values
            y = torch.empty(t1 - t0, 3 * og, dtype=torch.int32 if ints else dt)
            y2 = torch.empty_like(y) if signed else None
            done = torch.zeros(t1 - t0, og, dtype=torch.bool) if watch else None
            f0 = None        # the first fold after which an accumulator of the chunk left Q bits
            at_f0 = c_hi = c_lo = None   # from f0: the accumulators there, each one's extremes
            for f in range(folds):
                k0, k1 = f * rows, min(k, (f + 1) * rows)
                for xp, r, out in zip(parts, (rhs[f, :k1 - k0], rhs[f, rows:rows + k1 - k0]), (y, y2)):
                    if ints:
                        int8_mm(xp[:, k0:k1], r, out=out)
                    else:
                        torch.mm(xp[:, k0:k1], r, out=out)
                if signed:
                    y += y2
                if ints and op.int8:
                    y += corr[f]
                pos, neg, sf = y[:, :og], y[:, og:2 * og], y[:, 2 * og:]
                c += sf if c.dtype != torch.int64 else sf.to(torch.int64)   # (float sums: exact)
                torch.aminmax(c, out=(c_ext[0, f, ci], c_ext[1, f, ci]))
                torch.amax(pos, dim=1, out=pmax[f, t0:t1])    # (strided: no copy, unlike aminmax)
                torch.amin(neg, dim=1, out=nmin[f, t0:t1])
                if not watch:
                    continue
                if f0 is not None:                            # each output's extremes from f0 on
                    torch.maximum(c_hi, c, out=c_hi)
                    torch.minimum(c_lo, c, out=c_lo)
                elif c_ext[0, f, ci].item() < q_lo or c_ext[1, f, ci].item() > q_hi:
                    f0, at_f0 = f, c - sf                      # the accumulators at fold edge f0 R
                    c_hi, c_lo = c.clone(), c.clone()
                if pmax[f, t0:t1].max().item() > p_hi or nmin[f, t0:t1].min().item() < p_lo:
                    risk = ((pos > p_hi) | (neg < p_lo)) & ~done   # a PE step may leave P bits
                    ti, oi = risk.nonzero(as_tuple=True)
                    if ti.numel():   # from this fold, or from f0 (its accumulator may leave Q)
                        e0, base = (f, c - sf) if f0 is None else (f0, at_f0)
                        todo.append((ti.numpy() + t0, oi.numpy() + gi * og, e0 * rows,
                                     base[ti, oi].to(torch.int64).numpy()))
                        done |= risk
            if watch:
                if f0 is not None:   # outputs whose accumulator left Q bits: from fold f0
                    ti, oi = (((c_hi > q_hi) | (c_lo < q_lo)) & ~done).nonzero(as_tuple=True)
                    todo.append((ti.numpy() + t0, oi.numpy() + gi * og, f0 * rows,
                                 at_f0[ti, oi].to(torch.int64).numpy()))
                exact[t0:t1, gi * og:(gi + 1) * og] = c.to(torch.int64).numpy()
        acc = [min(acc[0], int(c_ext[0].min())), max(acc[1], int(c_ext[1].max()))]
        found.append((w3, pmax, nmin))
    pe_hi, pe_lo = _beyond(op, found, True, rows), _beyond(op, found, False, rows)
    ext = Extremes(pe_lo, pe_hi, *acc)
    if not watch:
        return ext, None
    return ext, ScreenResult(exact.reshape(*op.lead, og * g), todo, np.zeros((g, t), bool), 0, 2)


def _beyond(op: Operand, found: list, upper: bool, rows: int) -> int:
    """The largest (``upper``) or smallest PE partial sum (0, the empty prefix, at least).

    ``found``: per group its padded weights ``[F, R, og]`` and, per (fold, vector), the extreme
    sign sum over the channels ``[F, T]`` (overwritten). Each group's ``FIRST_PAIRS`` most
    promising pairs go first and find nearly the extreme; then the pairs whose extreme still beats
    it, in batches of ``PAIR_BATCH``, most promising first (:func:`_expand`)."""
    import torch

    level = 0
    for gi, (_, pmax, nmin) in enumerate(found):
        side = (pmax if upper else nmin).reshape(-1)
        top = torch.topk(side, min(FIRST_PAIRS, side.numel()), largest=upper).indices
        ft = np.divmod(top.numpy(), op.shape.t)
        level = _expand(op, found, np.full(top.numel(), gi), *ft, level, upper, rows)
        side[top] = 0                                  # done: 0 beats no level
    beats = (lambda v: v > level) if upper else (lambda v: v < level)
    pairs = []
    for gi, (_, pmax, nmin) in enumerate(found):
        side = pmax if upper else nmin
        f, t = beats(side).nonzero(as_tuple=True)
        pairs.append((np.full(f.numel(), gi), f.numpy(), t.numpy(), side[f, t].numpy()))
    g, f, t, bound = (np.concatenate(c) for c in zip(*pairs))
    while bound.size:
        order = np.argsort(-bound if upper else bound, kind="stable")[:PAIR_BATCH]
        level = _expand(op, found, g[order], f[order], t[order], level, upper, rows)
        rest = np.ones(bound.size, bool)
        rest[order] = False
        rest &= (bound > level) if upper else (bound < level)
        g, f, t, bound = g[rest], f[rest], t[rest], bound[rest]
    return level


def _expand(op: Operand, found: list, g: np.ndarray, f: np.ndarray, t: np.ndarray, level: int,
            upper: bool, rows: int) -> int:
    """``level`` raised to the extreme PE partial sum of the (fold ``f``, vector ``t``) pairs of
    groups ``g``: their (fold, vector, channel) triples whose exact sign sum beats it are stepped,
    most promising first, ``FIRST_STEPS`` of them, then twice as many each round, until no sign sum
    left beats the level."""
    og, k = op.shape.o, op.shape.k
    lo, hi = op.code_span()
    beats = (lambda v: v > level) if upper else (lambda v: v < level)
    parts = []
    for gi, fi in set(zip(g.tolist(), f.tolist())):
        w3 = found[gi][0]
        ts = t[(g == gi) & (f == fi)]
        k0 = fi * rows
        k1 = min(k, k0 + rows)
        x = op.take(ts, np.full(ts.size, gi * og), k0, k1, np.int64)         # [m, r]
        amax = max(hi, -lo) * float(np.abs(w3[fi], dtype=np.int64).sum(axis=0).max(initial=0))
        sums = sign_sums(x, w3[fi, :k1 - k0], amax)[0 if upper else 1]        # [m, og]
        ii, oo = np.nonzero(beats(sums))
        parts.append((np.full(ii.size, fi), ts[ii], oo + gi * og, sums[ii, oo]))
    if not parts:
        return level
    ff, tt, oo, sb = (np.concatenate(c) for c in zip(*parts))
    tri = np.argsort(-sb if upper else sb, kind="stable")
    j, n = 0, FIRST_STEPS
    while j < tri.size:
        keep = tri[j:j + n][beats(sb[tri[j:j + n]])]
        if keep.size == 0:
            break                                      # sorted: no later triple can beat it
        h, l_ = _step(op, ff[keep], tt[keep], oo[keep], rows)
        level = max(level, h) if upper else min(level, l_)
        j, n = j + n, min(2 * n, chunk_rows(rows))
    return level
