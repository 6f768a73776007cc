"""Block screen: a whole layer's array result from block sums, the golden arithmetic only where needed.

By SPEC section 2 an output's result differs from the exact dot product (and raises a flag) only
if one of its PE steps leaves P bits or one of its accumulator steps leaves Q bits. The screen
proves that most outputs do neither, without stepping through folds:

1. The reduction rows of each group are cut into blocks of whole input channels, about
   ``BLOCK_FOLDS`` folds each. Per block, the sums of the positive products ``pos`` and of the
   negative products ``neg`` of every output (:meth:`accel.patches.Patches.block_sums`: one conv
   or matmul, float32, exact) bound every partial sum inside it: a PE prefix of a fold inside the
   block lies in ``[neg, pos]`` (a fold that straddles two blocks: in the sum of both), an
   accumulator value at a fold boundary inside it in ``A + [neg, pos]``, where ``A`` is the exact
   bias plus every earlier block.
2. Outputs whose bound leaves a range in a block are *refined* there: their products over the
   folds that touch the block (gathered, or one matmul per fold for vectors with many of them)
   give the exact fold sums and, where the block flagged PE, per-fold bounds.
3. Outputs still at risk run through :func:`accel.golden.pair_outputs` from the fold edge where
   their risk begins (every step before it is exact and in range); every other output is the
   exact sum with no event.

The result equals :func:`accel.golden.gemm` on the lowered GEMMs, output for output (tests prove
it). Comparisons run in float32 while every threshold and every ``A`` stays within 2^24 (integers
are exact there, and rounding is monotone, so no comparison against a threshold can flip), else in
float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from accel.config import ArrayConfig
from accel.golden import check_operands, pair_chunk, pair_outputs
from accel.patches import Patches, exact_float32

__all__ = ["ScreenResult", "block_edges", "screen_layer", "BLOCK_FOLDS"]

#: Folds per block: finer blocks refine fewer outputs but cost more, smaller convs.
BLOCK_FOLDS = 9
#: A block's outputs at risk are refined by matmuls over every output channel of their vectors
#: (instead of gathered products) when there are at least 1/DENSE_RATIO of those channels per vector.
DENSE_RATIO = 64
#: Largest number of float32 fold sums (folds x vectors x channels) a dense refinement holds at once.
DENSE_CHUNK = 1 << 24
_F32_EXACT = 1 << 24


@dataclass(frozen=True)
class ScreenResult:
    """The array's result of one layer (all groups) and its overflow statistics.

    Attributes
    ----------
    acc : int64
        Q-bit accumulator results in the layer's output shape.
    pe_events, acc_events : int
        PE and accumulator overflow events over all outputs.
    pe_outputs, acc_outputs, affected_outputs : int
        Outputs with a PE event, with an accumulator event, with either.
    mismatches : int
        Outputs whose result differs from the exact dot product plus bias.
    refined, resolved : int
        (output, block) pairs refined, outputs run through the golden arithmetic.
    """

    acc: np.ndarray
    pe_events: int
    acc_events: int
    pe_outputs: int
    acc_outputs: int
    affected_outputs: int
    mismatches: int
    refined: int
    resolved: int


def block_edges(k: int, kk: int, rows: int, max_rows: int) -> list[int] | None:
    """Block edges ``[0, ..., K]`` over K reduction rows, or None when no block fits.

    Blocks hold whole input channels (``kk`` rows each): about ``BLOCK_FOLDS`` folds of ``rows``,
    a multiple of the fold height where one fits, at least one fold (so that a fold touches two
    blocks at most) and at most ``max_rows`` (float32 exactness).
    """
    size = min(BLOCK_FOLDS * rows, max_rows) // kk * kk
    size = max(size, -(-rows // kk) * kk)
    lcm = kk * rows // gcd(kk, rows)
    if lcm <= size:
        size = size // lcm * lcm
    if min(size, k) > max_rows:
        return None
    return list(range(0, k, size)) + [k]


def screen_layer(patches: Patches, config: ArrayConfig) -> ScreenResult | None:
    """The array's result of the layer behind ``patches``, or None where the screen cannot run.

    None (use :func:`accel.golden.gemm` on the lowered GEMMs instead) with OverQ lanes, Q > 52,
    no output, or operands so wide that one block of a fold's height cannot be summed exactly in
    float32. Weights and bias are checked like :func:`accel.golden.check_operands`.
    """
    import torch

    layer, sh = patches.layer, patches.shape
    o = layer.out_channels
    bias = np.zeros(o, np.int64) if layer.bias is None else layer.bias
    for g in range(sh.groups):
        check_operands(np.zeros((1, sh.k), np.int64), patches.w2[g * sh.o:(g + 1) * sh.o].T, config,
                       bias[g * sh.o:(g + 1) * sh.o])
    if config.overq is not None or config.out_bits > 52 or sh.t == 0:
        return None
    lo, hi = patches.code_span()
    llo, lhi = config.lane_range
    if lo < llo or hi > lhi:
        raise ValueError(f"input codes (padding included) span [{lo}, {hi}], outside the "
                         f"{'signed' if config.act_signed else 'unsigned'} {config.lane_bits}-bit "
                         f"lane range [{llo}, {lhi}]; operands are rejected, never wrapped")
    p_lo, p_hi = config.pe_range
    q_lo, q_hi = config.out_range
    prod_max = max(1, max(hi, -lo) * int(np.abs(patches.w2).max()))
    edges = block_edges(sh.k, patches.kk, config.rows, (_F32_EXACT - 1) // prod_max)
    if edges is None:
        return None
    dt = torch.float32 if max(-p_lo, -q_lo) <= _F32_EXACT // 2 else torch.float64
    with exact_float32():
        screen = _Screen(patches, config, bias, dt)
        if not screen.run(edges):
            screen = _Screen(patches, config, bias, torch.float64)   # A left float32's exact range
            screen.run(edges)
        return screen.finish()


def _physical(t: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
    """``t`` with its dimensions in memory order (contiguous for a dense tensor): reductions over
    every element run several times faster than on the strided view."""
    return t.permute(sorted(range(t.dim()), key=lambda d: -t.stride(d)))


class _Screen:
    """State of one screen: ``A`` (exact running sums), outputs sent to the golden arithmetic."""

    def __init__(self, patches: Patches, config: ArrayConfig, bias: np.ndarray, dtype) -> None:
        import torch

        self.p, self.config, self.bias, self.dtype = patches, config, bias, dtype
        self.acc = patches.new_acc(dtype)
        self.acc.copy_(torch.tensor(bias, dtype=dtype))
        self.golden = patches.new_acc(torch.bool).fill_(False)   # outputs sent to golden
        self.todo: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []   # (t, o, e0, A at e0)
        self.refined = 0

    def run(self, edges: list[int]) -> bool:
        """Screen every block; False when ``A`` left float32's exact range (rerun in float64)."""
        import torch

        p_lo, p_hi = self.config.pe_range
        q_lo, q_hi = self.config.out_range
        r = self.config.rows
        prev = bounds = None
        for k0, k1 in zip(edges[:-1], edges[1:]):
            pn = self.p.block_sums(k0, k1).to(self.dtype)          # [..., 2, O]: pos, neg
            if prev is not None and k0 % r:    # a fold straddles k0: its bound spans both blocks
                pe = pn + prev
            else:
                pe = pn
            pe_lo, pe_hi = torch.aminmax(_physical(pe))   # min(neg), max(pos)
            if bounds is None:
                bounds = torch.empty_like(pn)
            torch.add(self.acc.unsqueeze(-2), pn, out=bounds)       # A + pos, A + neg
            lo, hi = (float(v) for v in torch.aminmax(_physical(bounds)))   # min(A+neg), max(A+pos)
            if self.dtype == torch.float32 and max(hi, -lo) >= _F32_EXACT:
                return False
            acc_out, pe_out = hi > q_hi or lo < q_lo, float(pe_hi) > p_hi or float(pe_lo) < p_lo
            if acc_out or pe_out:
                pe_risky = (pe[..., 0, :] > p_hi) | (pe[..., 1, :] < p_lo) if pe_out else None
                risky = (bounds[..., 0, :] > q_hi) | (bounds[..., 1, :] < q_lo)
                risky = (risky | pe_risky) if pe_out else risky
                risky &= ~self.golden
                t, oc = self.p.flat(risky.nonzero())
                if t.size:
                    pe_flag = (pe_risky[self.p.index(t, oc)].numpy() if pe_out
                               else np.zeros(t.size, bool))
                    self._refine(t, oc, pe_flag, k0, k1)
            torch.add(bounds[..., 0, :], pn[..., 1, :], out=self.acc)   # A + pos + neg, exact
            prev = pn
        return True

    def _refine(self, t: np.ndarray, oc: np.ndarray, pe_flag: np.ndarray, k0: int, k1: int) -> None:
        """Exact fold sums of outputs ``(t, oc)`` over the folds touching ``[k0, k1)``; outputs
        whose PE or accumulator steps there may leave their range go to the golden arithmetic.

        Only outputs with ``pe_flag`` need per-fold PE bounds: for the others the block's bound
        already keeps every PE step of those folds inside P bits."""
        p_lo, p_hi = self.config.pe_range
        q_lo, q_hi = self.config.out_range
        r, k = self.config.rows, self.p.shape.k
        e0, e1 = k0 // r * r, min(k, -(-k1 // r) * r)        # whole folds
        a0 = self.acc[self.p.index(t, oc)].double().numpy().astype(np.int64)   # exact: A at k0
        rows = np.unique(t)
        dense = self.p.shape.groups == 1 and t.size * DENSE_RATIO >= rows.size * self.p.shape.o
        step = pair_chunk(e1 - e0) if not dense else max(1, DENSE_CHUNK // ((e1 - e0) * self.p.shape.o))
        for i0 in range(0, (rows if dense else t).size, step):
            if dense:   # every output of a few vectors: matmuls per fold
                rc = rows[i0:i0 + step]
                sel = np.flatnonzero(np.isin(t, rc))
                tc, occ, pe = t[sel], oc[sel], pe_flag[sel]
                s, pos, pre = self._fold_sums_dense(rc, np.searchsorted(rc, tc), occ, e0, e1, k0,
                                                    pe.any())
            else:       # a few outputs of many vectors: gathered products
                sel = np.arange(i0, min(i0 + step, t.size))
                tc, occ, pe = t[sel], oc[sel], pe_flag[sel]
                s, pos, pre = self._fold_sums_gathered(tc, occ, e0, e1, k0, pe.any())
            start = a0[sel] - pre                                          # A at fold edge e0
            run = start[:, None] + np.cumsum(s.astype(np.int64), axis=1)  # A after each fold
            bad = (run > q_hi).any(axis=1) | (run < q_lo).any(axis=1)
            if pos is not None:
                bad |= pe & ((pos > p_hi) | (s - pos < p_lo)).any(axis=1)
            if bad.any():   # no event before fold edge e0: the golden arithmetic starts there
                self.golden[self.p.index(tc[bad], occ[bad])] = True
                self.todo.append((tc[bad], occ[bad], e0, start[bad]))
        self.refined += t.size

    def _fold_sums_gathered(self, t: np.ndarray, oc: np.ndarray, e0: int, e1: int, k0: int,
                            with_pos: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Per output: fold sums over folds ``[e0, e1)`` ``[n, F]``, their positive-product sums
        (``with_pos``, else None) and the sum of its products over ``[e0, k0)``. float32 is
        exact: block_edges keeps a fold's products below 2^24 in sum."""
        r = self.config.rows
        nf = -(-(e1 - e0) // r)
        prods = self.p.take(t, oc, e0, e1) * self.p.weights(oc, e0, e1)
        if prods.shape[1] < nf * r:
            prods = np.pad(prods, ((0, 0), (0, nf * r - prods.shape[1])))
        p3 = prods.reshape(t.size, nf, r)
        return (p3.sum(axis=2), np.maximum(p3, 0).sum(axis=2) if with_pos else None,
                prods[:, :k0 - e0].sum(axis=1).astype(np.int64))

    def _fold_sums_dense(self, rows: np.ndarray, ri: np.ndarray, oc: np.ndarray, e0: int, e1: int,
                         k0: int, with_pos: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """As :meth:`_fold_sums_gathered` for outputs ``(rows[ri[i]], oc[i])`` (one group), from
        one matmul per fold over every output channel of ``rows``."""
        import torch

        r, o = self.config.rows, self.p.shape.o
        nf = -(-(e1 - e0) // r)
        x = torch.from_numpy(self.p.take(rows, np.zeros(rows.size, np.int64), e0, e1))
        w = torch.from_numpy(self.p.weights(np.arange(o), e0, e1)).T           # [L, O]
        pad = nf * r - x.shape[1]
        x3 = torch.nn.functional.pad(x, (0, pad)).reshape(rows.size, nf, r).transpose(0, 1)
        w3 = torch.nn.functional.pad(w, (0, 0, 0, pad)).reshape(nf, r, o)
        pick = (slice(None), torch.from_numpy(ri), torch.from_numpy(oc))
        pos = None
        if with_pos:
            pp = torch.bmm(x3.clamp(min=0), w3.clamp(min=0))
            if x.numel() and float(x.min()) < 0:
                pp += torch.bmm(x3.clamp(max=0), w3.clamp(max=0))
            pos = pp[pick].T.numpy()
        pre = x[:, :k0 - e0] @ w[:k0 - e0]                                      # [n, O]
        return torch.bmm(x3, w3)[pick].T.numpy(), pos, pre[ri, oc].numpy().astype(np.int64)

    def finish(self) -> ScreenResult:
        """Run the outputs at risk through the golden arithmetic from the fold edge where their
        risk begins (every step before it is exact and in range); assemble the result."""
        acc = self.p.output(self.acc)
        k = self.p.shape.k
        pe_ev, acc_ev, mism = [], [], 0
        for t, oc, e0, start in self.todo:
            step = pair_chunk(k - e0)
            for i0 in range(0, t.size, step):
                tc, occ = t[i0:i0 + step], oc[i0:i0 + step]
                y, pe, ae = pair_outputs(self.p.take(tc, occ, e0, k), self.p.weights(occ, e0, k),
                                         start[i0:i0 + step], self.config)
                idx = self.p.out_index(tc, occ)
                mism += int((acc[idx] != y).sum())
                acc[idx] = y
                pe_ev.append(pe), acc_ev.append(ae)
        none = np.zeros(0, np.int64)
        pe_ev, acc_ev = np.concatenate([none, *pe_ev]), np.concatenate([none, *acc_ev])
        pe, ae = pe_ev > 0, acc_ev > 0
        acc = acc.reshape(self.p.shape.out_shape)          # one vector: [1, O] -> [O]
        return ScreenResult(acc, int(pe_ev.sum()), int(acc_ev.sum()), int(pe.sum()), int(ae.sum()),
                            int((pe | ae).sum()), mism, self.refined, int(pe_ev.size))
