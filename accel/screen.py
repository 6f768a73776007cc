"""The screen: one bound that proves most partial sums cannot leave their range (SPEC section 2).

By SPEC section 2 an output's result differs from the exact dot product (and raises a flag) only
if one of its PE steps leaves P bits or one of its accumulator steps leaves Q bits. The bound:
every prefix of a run of products lies between the sum of its negative products ``neg`` and the
sum of its positive products ``pos`` (:func:`sign_sums`, :func:`beyond`, :func:`pe_risky`).
The golden model, the fast values path of the executor and the per-fold checks of the stepping
(:mod:`accel.steps`) all decide with these three functions; :func:`screen` applies them to a
whole layer (any :class:`accel.operand.Operand`) in levels:

0. the whole GEMM: the largest |code| times each fold's (and the whole row's) l1 norm; when that
   clears P and Q for every output the result is the exact sum (one matmul or conv);
1. blocks of whole input channels, about ``BLOCK_FOLDS`` folds each: ``pos`` and ``neg`` of every
   output (:meth:`Operand.block_sums`, one matmul or conv per block) bound every PE prefix of a
   fold inside the block (a fold that straddles two blocks: the sum of both), and ``A + [neg,
   pos]`` every accumulator value at a fold edge inside it, where ``A`` is the exact bias plus
   every earlier block;
2. outputs whose bound leaves a range in a block are *refined* there: their products over the
   folds that touch the block (gathered, or for vectors with many of them one GEMM per fold over
   every channel, int8 where the block sums are) give the exact running sums at every fold edge
   and, where the block flagged PE, per-fold bounds;
3. what is left is returned: outputs with the fold edge where their risk begins and the exact
   accumulator value there (``todo``), and vectors most of whose outputs are at risk (``dense``),
   for the golden stepping (:func:`accel.golden.resolve`).

Comparisons run in float32 while every threshold and every ``A`` stays within 2^24 (integers are
exact there, and rounding is monotone, so no comparison against a threshold can flip), in int32
where the operand's block sums come from int8 GEMMs (:attr:`accel.operand.Operand.int_blocks`;
``A`` within 2^30), else in float64; block sums in float32 while a block's sums stay below 2^24,
else float64. Above Q = 52 bits the screen does not run: every vector is returned as ``dense``.
With the exact partial-sum extremes the screen's answer comes from their fold-by-fold pass
instead (:func:`accel.extremes.screen_with_extremes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np

from accel.arith import chunk_rows, exact_matmul, fold_count, sign_weights
from accel.intgemm import int8_mm
from accel.operand import F32_EXACT, Operand, flat, index, torch_dtype

__all__ = ["sign_sums", "beyond", "pe_risky", "ScreenResult", "screen",
           "block_edges", "fold_weights", "weight_l1", "BLOCK_FOLDS", "DENSE_RATIO", "DENSE_ROW_SHARE"]

#: Folds per block: finer blocks refine fewer outputs but cost more, smaller convs.
BLOCK_FOLDS = 9
#: A block's outputs at risk are refined by matmuls over every output channel of their vectors
#: (instead of gathered products) when there are at least 1/DENSE_RATIO of those channels per vector.
DENSE_RATIO = 64
#: A vector with at least this share of a group's outputs at risk in a block leaves the screen
#: whole: the golden stepping runs it fold by fold without gathering (:func:`accel.steps.accumulate_folds`).
DENSE_ROW_SHARE = 0.25
#: Largest number of fold sums (folds x vectors x channels) a dense refinement holds at once.
DENSE_CHUNK = 1 << 24
#: Widest Q the screen runs for (its exact running sums are float64).
MAX_SCREEN_Q = 52
#: Magnitudes from which ``A`` and its bounds are no longer exact in the screen's narrow dtypes
#: (int32: with room for one more block's sums, each below 2^24).
_EXACT = {np.float32: F32_EXACT, np.int32: 1 << 30}


def sign_sums(x: np.ndarray, w: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact sums of the positive and of the negative products of ``x[T, R] . w[R, C]`` (int64).

    Every prefix of the products lies between the two. One matmul
    (``[x+ | x-] . [[w+, w-], [w-, w+]]``; unsigned codes need only ``x . [w+ | w-]``); ``bound``
    bounds every partial sum (float64 BLAS below 2^53).
    """
    signed = bool(x.size and x.min() < 0)
    xs = np.concatenate([np.maximum(x, 0), np.minimum(x, 0)], axis=1) if signed else x
    both = exact_matmul(xs, sign_weights(w, signed), bound)
    return both[:, :w.shape[1]], both[:, w.shape[1]:]


def beyond(low: np.ndarray, high: np.ndarray, value_range: tuple[int, int]) -> np.ndarray:
    """Where values known to lie in ``[low, high]`` may leave ``value_range`` (inclusive): the one
    test every level of the screen, the golden model and its stepping decide with."""
    lo, hi = value_range
    return (high > hi) | (low < lo)


def pe_risky(pos: np.ndarray, neg: np.ndarray, config: Any) -> np.ndarray:
    """Where a run of products with these positive / negative sums may take a P-bit partial sum
    out of range (started from 0): every prefix lies in ``[neg, pos]``."""
    return beyond(neg, pos, config.pe_range)


def fold_weights(op: Operand, g: int, rows: int, signed: bool, dtype: "torch.dtype"  # noqa: F821
                 ) -> tuple[np.ndarray, "torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """Group ``g``'s weights per fold of ``rows`` rows: int16 ``[F, R, og]`` (zero rows past K),
    the right operand of the per-fold sign-sum GEMMs, ``[F, R or 2R, 3og]`` of ``dtype``
    (``[w+ | w- | w]``, :func:`accel.arith.sign_weights`), and its sums over the rows (int64
    ``[F, 3og]``). Kept with the layer's weights (:attr:`accel.operand.Operand.cache`)."""
    import torch

    key = ("fold weights", g, rows, signed, dtype)
    if key not in op.cache:
        k, og = op.shape.k, op.shape.o
        folds = fold_count(k, rows)
        w = np.zeros((og, folds * rows), np.int16)                           # weights: <= 16 bits
        w[:, :k] = op.w2[g * og:(g + 1) * og]
        w3 = np.ascontiguousarray(w.reshape(og, folds, rows).transpose(1, 2, 0))
        sw = sign_weights(w3, signed)
        rhs = torch.from_numpy(np.concatenate([sw, sw[..., :og] + sw[..., og:]], axis=-1))
        op.cache[key] = (w3, rhs.to(dtype), rhs.sum(dim=1, dtype=torch.int64))
    return op.cache[key]


@dataclass
class ScreenResult:
    """What the screen proved about one layer, and what it left to the golden stepping.

    Attributes
    ----------
    exact : int64 [*lead, O]
        The exact sums ``bias + x . w`` of every output (no widths); the array's result wherever
        the output is neither in ``todo`` nor in a ``dense`` vector.
    todo : list of (t, o, e0, start)
        Outputs ``(t[i], o[i])`` at risk from fold edge ``e0`` on, with the exact accumulator value
        ``start[i]`` there (every step before is exact and in range).
    dense : bool [groups, T]
        Vectors whose outputs of a group are stepped whole, from fold 0 (the ``todo`` entries of
        such a vector and group are included in it).
    refined : int
        (output, block) pairs refined at fold level.
    level : int
        The deepest level that ran (0: the whole-GEMM bound cleared every output).
    """

    exact: np.ndarray
    todo: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = field(default_factory=list)
    dense: np.ndarray | None = None
    refined: int = 0
    level: int = 0


def block_edges(k: int, kk: int, rows: int, max_rows: int) -> list[int] | None:
    """Block edges ``[0, ..., K]`` over K reduction rows, or None when no block fits.

    Blocks hold whole input channels (``kk`` rows each): about ``BLOCK_FOLDS`` folds of ``rows``,
    a multiple of the fold height where one fits, at least one fold (so that a fold touches two
    blocks at most) and at most ``max_rows`` (exactness of the block sums).
    """
    size = min(BLOCK_FOLDS * rows, max_rows) // kk * kk
    size = max(size, -(-rows // kk) * kk)
    lcm = kk * rows // gcd(kk, rows)
    if lcm <= size:
        size = size // lcm * lcm
    if min(size, k) > max_rows:
        return None
    return list(range(0, k, size)) + [k]


def weight_l1(op: Operand, rows: int) -> tuple[int, int, np.ndarray]:
    """Of the weights behind ``op``: the largest |weight|, the largest l1 norm of a fold of
    ``rows`` rows of one output, and each output's l1 norm (int64 ``[O]``). Kept with the
    layer's weights (:attr:`accel.operand.Operand.cache`)."""
    key = ("weight l1", rows)
    if key not in op.cache:
        aw = np.abs(op.w2)                                                      # [O, K]
        fold_l1 = np.add.reduceat(aw, np.arange(0, op.shape.k, rows), axis=1) if aw.size else aw
        op.cache[key] = (int(aw.max(initial=0)), int(fold_l1.max(initial=0)), aw.sum(axis=1))
    return op.cache[key]


def _whole_gemm_clear(op: Operand, bias: np.ndarray, config: Any) -> bool:
    """Level 0: the largest |code| times every fold's l1 norm stays inside P bits and, with the
    bias, times every row's l1 norm inside Q bits (exact Python integers)."""
    lo, hi = op.code_span()
    amax = max(hi, -lo)
    _, fold_l1, row_l1 = weight_l1(op, config.rows)
    if amax * fold_l1 > config.pe_range[1]:
        return False
    row = np.abs(bias.astype(object)) + amax * row_l1.astype(object)
    return max(row, default=0) <= config.out_range[1]


def screen(op: Operand, bias: np.ndarray, config: Any) -> ScreenResult:
    """Screen every output of the layer behind ``op`` with the bias ``bias[O]`` (int64, fits Q).

    Returns the exact sums and what may still overflow (module docstring). Plain lanes only: OverQ
    steps are encoded lanes, which the block sums do not describe.
    """
    g, t = op.shape.groups, op.shape.t
    if config.out_bits > MAX_SCREEN_Q:
        return ScreenResult(op.exact_sums() + bias, dense=np.ones((g, t), bool), level=3)
    if t == 0 or _whole_gemm_clear(op, bias, config):
        return ScreenResult(op.exact_sums() + bias)
    lo, hi = op.code_span()
    prod_max = max(1, max(hi, -lo) * weight_l1(op, config.rows)[0])
    block_dtype = np.float32
    edges = block_edges(op.shape.k, op.kk, config.rows, (F32_EXACT - 1) // prod_max)
    if edges is None:
        block_dtype = np.float64
        edges = block_edges(op.shape.k, op.kk, config.rows, (1 << 53) // prod_max)
    p_lo, q_lo = config.pe_range[0], config.out_range[0]
    small = max(-p_lo, -q_lo) <= F32_EXACT // 2 and block_dtype == np.float32
    if small and op.int_blocks:          # int32 block sums, A and bounds: no conversions
        block_dtype = np.int32
    dtype = block_dtype if small else np.float64
    res = _Blocks(op, config, bias, dtype, block_dtype).run(edges)
    if res is None:                      # A left float32's or int32's exact range: in float64
        res = _Blocks(op, config, bias, np.float64, block_dtype).run(edges)
    return res


class _Blocks:
    """Levels 1 and 2 of one screen: ``A`` (exact running sums), the outputs that left it.

    The block-wide arrays (block sums, ``A``, masks) are the operand's own kind
    (:attr:`Operand.ops`: numpy for a :class:`~accel.operand.Matrix`, torch for
    :class:`~accel.operand.Patches`, whose element-wise passes then run on every core); what
    leaves a block (outputs at risk, their values) is numpy.
    """

    def __init__(self, op: Operand, config: Any, bias: np.ndarray, dtype: type,
                 block_dtype: type) -> None:
        self.op, self.config, self.bias = op, config, bias
        self.dtype, self.block_dtype = dtype, block_dtype
        #: refinements gather and multiply in float (BLAS), exact as the block sums are
        self.gather_dtype = np.float32 if block_dtype == np.int32 else block_dtype
        self.ops = op.ops
        self.acc = op.new_acc(dtype)
        self.ops.fill(self.acc, bias)
        self.done = self.ops.zeros_bool(self.acc)               # outputs that left the screen
        self.dense = np.zeros((op.shape.groups, op.shape.t), dtype=bool)
        self.todo: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
        self.refined = 0

    def run(self, edges: list[int]) -> ScreenResult | None:
        """Screen every block; None when ``A`` left float32's exact range (rerun in float64).

        A block whose largest positive and smallest negative sums, added to the extremes of
        ``A``, stay inside Q bits cannot move any accumulator out of range: the per-output bounds
        ``A + [neg, pos]`` are only formed for the other blocks."""
        p_lo, p_hi = self.config.pe_range
        q_lo, q_hi = self.config.out_range
        r, ops = self.config.rows, self.ops
        prev = bounds = None
        a_lo, a_hi = float(self.bias.min(initial=0)), float(self.bias.max(initial=0))
        for k0, k1 in zip(edges[:-1], edges[1:]):
            pos, neg = (ops.cast(s, self.dtype) for s in self.op.block_sums(k0, k1, self.block_dtype))
            p_top, n_lo = ops.minmax(pos)[1], ops.minmax(neg)[0]
            straddle = prev is not None and k0 % r                # a fold spans both blocks
            pe = (pos + prev[0], neg + prev[1]) if straddle else (pos, neg)
            pe_hi, pe_lo = (ops.minmax(pe[0])[1], ops.minmax(pe[1])[0]) if straddle else (p_top, n_lo)
            acc_out = a_hi + p_top > q_hi or a_lo + n_lo < q_lo   # coarse: extremes of A
            if acc_out:
                if bounds is None:
                    bounds = ops.empty_like(pos), ops.empty_like(neg)
                ops.add(self.acc, pos, out=bounds[0])             # A + pos
                ops.add(self.acc, neg, out=bounds[1])             # A + neg
                hi, lo = ops.minmax(bounds[0])[1], ops.minmax(bounds[1])[0]
                if max(hi, -lo) >= _EXACT.get(self.dtype, np.inf):
                    return None
                acc_out = hi > q_hi or lo < q_lo
            pe_out = pe_hi > p_hi or pe_lo < p_lo
            if acc_out or pe_out:
                pe_flag = pe_risky(pe[0], pe[1], self.config) if pe_out else None
                if acc_out:
                    risky = beyond(bounds[1], bounds[0], self.config.out_range)
                    if pe_out:
                        risky |= pe_flag
                else:
                    risky = pe_flag
                risky &= ~self.done
                t, oc = flat(self.op.lead, ops.numpy(risky))
                if t.size:
                    t, oc = self._dense_rows(t, oc)
                if t.size:
                    flags = (ops.numpy(pe_flag[index(self.op.lead, t, oc)]) if pe_out
                             else np.zeros(t.size, bool))
                    self._refine(t, oc, flags, k0, k1)
            ops.add(self.acc, pos, out=self.acc)                  # A + pos + neg, exact
            ops.add(self.acc, neg, out=self.acc)
            a_lo, a_hi = ops.minmax(self.acc)
            if max(a_hi, -a_lo) >= _EXACT.get(self.dtype, np.inf):
                return None
            prev = pos, neg
        return ScreenResult(ops.int64(self.acc), self.todo, self.dense, self.refined, 2)

    def _dense_rows(self, t: np.ndarray, oc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Send every (vector, group) with ``DENSE_ROW_SHARE`` of its outputs at risk to the dense
        stepping whole; return the other outputs at risk."""
        og, g = self.op.shape.o, self.op.shape.groups
        key = t * g + oc // og
        counts = np.bincount(key, minlength=self.op.shape.t * g)
        whole = (counts > 0) & (counts >= DENSE_ROW_SHARE * og)
        if not whole.any():
            return t, oc
        rows, groups = np.divmod(np.flatnonzero(whole), g)
        self.dense[groups, rows] = True
        chans = (groups[:, None] * og + np.arange(og)[None, :]).ravel()
        self.ops.numpy(self.done)[index(self.op.lead, np.repeat(rows, og), chans)] = True
        keep = ~whole[key]
        return t[keep], oc[keep]

    def _refine(self, t: np.ndarray, oc: np.ndarray, pe_flag: np.ndarray, k0: int, k1: int) -> None:
        """Exact running sums of outputs ``(t, oc)`` over the folds touching ``[k0, k1)``; outputs
        whose PE or accumulator steps there may leave their range go to ``todo``.

        Only outputs with ``pe_flag`` need per-fold PE bounds: for the others the block's bound
        already keeps every PE step of those folds inside P bits."""
        r, k = self.config.rows, self.op.shape.k
        e0, e1 = k0 // r * r, min(k, fold_count(k1, r) * r)  # whole folds
        lead = self.op.lead
        if t.size > 1 and (t[1:] < t[:-1]).any():    # (channel-first accumulators: not in t order)
            order = np.argsort(t, kind="stable")
            t, oc, pe_flag = t[order], oc[order], pe_flag[order]
        a0 = self.ops.numpy(self.acc)[index(lead, t, oc)]                    # A at k0
        a0 = (np.rint(a0) if a0.dtype.kind == "f" else a0).astype(np.int64)
        first = np.flatnonzero(np.concatenate(([True], t[1:] != t[:-1])))    # each vector's first
        rows, ends = t[first], np.r_[first, t.size]
        o = self.op.shape.o
        dense = self.op.shape.groups == 1 and t.size * DENSE_RATIO >= rows.size * o
        step = (max(1, DENSE_CHUNK // ((e1 - e0) * o)) if dense else chunk_rows(e1 - e0))
        for i0 in range(0, (rows if dense else t).size, step):
            if dense:   # every output of a few vectors: matmuls per fold
                rc = rows[i0:i0 + step]
                sel = slice(ends[i0], ends[i0 + rc.size])
                tc, occ, pe = t[sel], oc[sel], pe_flag[sel]
                lo, hi, pe_bad, pre = self._fold_runs_dense(rc, np.searchsorted(rc, tc), occ,
                                                            e0, e1, k0, pe.any())
            else:       # a few outputs of many vectors: gathered products
                sel = slice(i0, i0 + step)
                tc, occ, pe = t[sel], oc[sel], pe_flag[sel]
                lo, hi, pe_bad, pre = self._fold_runs_gathered(tc, occ, e0, e1, k0, pe.any())
            start = a0[sel] if pre is None else a0[sel] - pre            # A at fold edge e0
            bad = beyond(start + lo, start + hi, self.config.out_range)   # A after some fold
            if pe_bad is not None:
                bad |= pe & pe_bad
            if bad.any():   # no event before fold edge e0: the golden stepping starts there
                self.ops.numpy(self.done)[index(lead, tc[bad], occ[bad])] = True
                self.todo.append((tc[bad], occ[bad], e0, start[bad]))
        self.refined += t.size

    def _fold_runs_gathered(self, t: np.ndarray, oc: np.ndarray, e0: int, e1: int, k0: int,
                            with_pe: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                    np.ndarray | None]:
        """Per output, over folds ``[e0, e1)``: the smallest and largest running sum of its products
        from ``e0`` to a fold edge (int64 ``[n]``), whether a fold may take a PE out of P bits
        (``with_pe``, else None) and the sum of its products over ``[e0, k0)`` (None where the
        block starts on a fold edge, ``k0 == e0``). Each fold's sums are exact in the block dtype
        (block_edges keeps a block's products, in any order, in range); the running sums span
        the folds that straddle the block's edges too, so they are formed in float64."""
        r, dt = self.config.rows, self.gather_dtype
        nf = fold_count(e1 - e0, r)
        prods = self.op.take(t, oc, e0, e1, dt) * self.op.weights(oc, e0, e1, dt)
        if prods.shape[1] < nf * r:
            prods = np.pad(prods, ((0, 0), (0, nf * r - prods.shape[1])))
        p3 = prods.reshape(t.size, nf, r)
        s = p3.sum(axis=2)                                                # fold sums [n, F]
        run = np.cumsum(s, axis=1, dtype=np.float64)    # (folds past the block: may pass 2^24)
        pe_bad = None
        if with_pe:
            pos = np.maximum(p3, 0).sum(axis=2)
            pe_bad = pe_risky(pos, s - pos, self.config).any(axis=1)
        return (run.min(axis=1).astype(np.int64), run.max(axis=1).astype(np.int64), pe_bad,
                prods[:, :k0 - e0].sum(axis=1).astype(np.int64) if k0 > e0 else None)

    def _fold_runs_dense(self, rows: np.ndarray, ri: np.ndarray, oc: np.ndarray, e0: int, e1: int,
                         k0: int, with_pe: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                          np.ndarray | None]:
        """As :meth:`_fold_runs_gathered` for outputs ``(rows[ri[i]], oc[i])`` (one group), from
        the fold sums of every output channel of ``rows`` (:meth:`_fold_sums`): running sums,
        their extremes and the PE test over every channel, then the outputs picked."""
        import torch

        s, pos, pre = self._fold_sums(rows, e0, e1, k0, with_pe)          # [F, n, O], .., [n, O]
        ri, oc = torch.from_numpy(ri), torch.from_numpy(oc)

        def picked(y: "torch.Tensor") -> np.ndarray:                    # [n, O] -> [m]
            return y[ri, oc].numpy()

        # running sums over the folds (a pass per fold: 10x faster than cumsum and aminmax), in
        # int32 or float64: past the block's edges they may pass float32's 2^24
        run = s[0].to(torch.int32 if s.dtype == torch.int32 else torch.float64, copy=True)
        lo, hi = run.clone(), run.clone()
        for f in range(1, s.shape[0]):
            run += s[f]
            torch.minimum(lo, run, out=lo)
            torch.maximum(hi, run, out=hi)
        pe_bad = picked(pe_risky(pos, s - pos, self.config).any(0)) if with_pe else None
        return (picked(lo).astype(np.int64), picked(hi).astype(np.int64), pe_bad,
                None if pre is None else picked(pre).astype(np.int64))

    def _fold_sums(self, rows: np.ndarray, e0: int, e1: int, k0: int, with_pe: bool
                   ) -> tuple["torch.Tensor", "torch.Tensor | None",  # noqa: F821
                              "torch.Tensor | None"]:  # noqa: F821
        """Of vectors ``rows`` and every output channel (one group), over folds ``[e0, e1)``: the
        fold sums ``[F, n, O]``, their positive-product sums (``with_pe``, else None) and the
        sums over ``[e0, k0)`` (``[n, O]``; None where ``k0 == e0``), torch tensors exact in
        their dtype, against the layer's per-fold weights (:func:`fold_weights`): one int8 GEMM
        per fold where the screen's block sums are int32 (every sum of a block below 2^24), else
        one batched float matmul over the folds."""
        import torch
        import torch.nn.functional as F

        r, o, op = self.config.rows, self.op.shape.o, self.op
        nf, f0 = fold_count(e1 - e0, r), e0 // r
        # int8 where the block sums were (unsigned codes: x = x8 + c, x . w = x8 . w + c . sum(w);
        # their int32 sums are exact: every sum of a block's products is below 2^24)
        ints = self.block_dtype == np.int32
        dt = np.int8 if ints else self.gather_dtype
        signed = not ints and op.code_span()[0] < 0     # [x+ | x-] . [[w+, w-], [w-, w+]]
        _, rhs, wsum = fold_weights(op, 0, r, signed, torch_dtype(dt))     # [w+ | w- | w]
        cols = slice(0, 2 * o) if with_pe else slice(2 * o, 3 * o)
        w = rhs[f0:f0 + nf, :, cols]
        x = torch.from_numpy(op.take(rows, np.zeros(rows.size, np.int64), e0, e1, dt))  # [n, L]
        x = F.pad(x, (0, nf * r - x.shape[1]))
        if ints:                    # (torch has no int8 bmm)
            y = torch.empty(nf, rows.size, w.shape[-1], dtype=torch.int32)
            for f in range(nf):
                int8_mm(x[:, f * r:(f + 1) * r], w[f], out=y[f])
            y += (op.int8 * wsum[f0:f0 + nf, None, cols]).to(torch.int32)
        else:
            x3 = x.reshape(rows.size, nf, r).transpose(0, 1)                    # [F, n, R]
            y = torch.bmm(torch.cat([x3.clamp(min=0), x3.clamp(max=0)], -1) if signed else x3, w)
        pre = None
        if k0 > e0:                 # the first rows of the first fold: x . w (rows of x+ are w)
            wp = rhs[f0, :k0 - e0, 2 * o:]
            pre = int8_mm(x[:, :k0 - e0], wp) if ints else x[:, :k0 - e0] @ wp
            if ints:
                pre += torch.from_numpy((op.int8 * op.w2[:, e0:k0].sum(axis=1)).astype(np.int32))
        return (y[..., :o] + y[..., o:], y[..., :o], pre) if with_pe else (y, None, pre)
