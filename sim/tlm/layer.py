"""One integer layer on the simulated array: values, overflow events, cycles and statistics.

:func:`run_layer` computes the array's results in one of two ways. By default (no extremes) it
runs the block screen, :func:`accel.screen.screen_layer`, on the layer's lazy lowering
(:class:`accel.patches.Patches`): block sums bound every partial sum, and only outputs that may
overflow go through the golden arithmetic. With OverQ lanes or ``extremes=True`` it lowers the
layer (:mod:`accel.lowering`), runs every GEMM through :func:`accel.golden.gemm` and measures the
partial sums on the data (:func:`psum_extremes`): the largest exact PE partial sum and
accumulator value, hence the smallest P and Q that would have avoided every overflow event.
Both count cycles with :mod:`sim.cycles` and compare the results with the exact dot products.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.golden import GemmResult, check_operands, gemm
from accel.layers import IntLayer, LayerError
from accel.lowering import gemm_shape, lower, raise_output
from accel.patches import Patches
from accel.screen import screen_layer
from sim.cycles import GemmCycles, TimingNumbers, gemm_cycles, scalesim_conv_t, scalesim_cycles

__all__ = ["PsumExtremes", "LayerStats", "psum_extremes", "array_gemm", "merge_stats", "signed_bits", "check_layer_fits",
           "run_layer"]

#: Largest number of int64 elements gathered at once when scanning candidate partial sums.
SCAN_CHUNK_ELEMS = 1 << 21


def signed_bits(lo: int, hi: int) -> int:
    """Smallest B >= 1 whose signed range ``[-2^(B-1), 2^(B-1) - 1]`` holds ``[lo, hi]``."""
    return max(1, int(hi).bit_length() + 1 if hi > 0 else 1,
               (-int(lo) - 1).bit_length() + 1 if lo < 0 else 1)


@dataclass(frozen=True)
class PsumExtremes:
    """Exact extremes of one GEMM's partial sums (no wrapping, no clamping).

    Attributes
    ----------
    pe_min, pe_max : int
        Smallest and largest PE partial sum over every step of every fold (0 included: a fold
        starts from s = 0).
    acc_min, acc_max : int
        Smallest and largest output-accumulator value: the bias and every bias + fold prefix.
    exact : int64 [T, O]
        The exact dot product plus bias.
    at_risk : bool [T]
        Vectors for which some step *might* leave P or Q bits (bounds), i.e. all the vectors on
        which the array's result can differ from ``exact`` or raise a flag.
    """

    pe_min: int
    pe_max: int
    acc_min: int
    acc_max: int
    exact: np.ndarray
    at_risk: np.ndarray


def _scan_prefix(x: np.ndarray, w: np.ndarray, ti: np.ndarray, oi: np.ndarray
                 ) -> tuple[int, int]:
    """Largest and smallest prefix sum of ``x[t, :] * w[:, o]`` over the pairs ``(ti, oi)``."""
    hi = lo = 0
    step = max(1, SCAN_CHUNK_ELEMS // max(1, x.shape[1]))
    for i in range(0, ti.size, step):
        prods = x[ti[i:i + step]].astype(np.int64) * w[:, oi[i:i + step]].T
        np.cumsum(prods, axis=1, out=prods)
        hi, lo = max(hi, int(prods.max())), min(lo, int(prods.min()))
    return hi, lo


def psum_extremes(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, config: ArrayConfig,
                  extremes: bool = True) -> PsumExtremes:
    """Exact partial-sum extremes of ``x[T, K] . w[K, O] + bias`` in R-row folds, and the risk.

    One matmul per fold gives the fold sums (a lower bound on the PE extremes) and the running
    accumulator (exact accumulator extremes). Per vector and fold, ``sum_k |x| * max_o w+`` bounds
    every prefix from above (likewise from below); where that bound beats the extreme seen, the
    exact positive-product sums of the vector are computed and, where those still beat it, the
    prefixes are scanned step by step. The extremes are exact. A vector is *at risk* when a
    bound of one of its steps leaves P bits or one of its accumulator values leaves Q bits.
    Matmuls run in float32 when every sum stays below 2^24 (exact), else float64 (exact below
    2^53), else int64.

    With ``extremes=False`` the same per-fold pass gives the exact result and the risk (the
    positive- and negative-product sums are computed only where a bound leaves P bits, and
    nothing is scanned); the extremes are then reported as 0. The per-fold risk is what keeps
    the golden model off most vectors: it is cheaper than a coarser screen.
    """
    import torch

    t, k = x.shape
    o = w.shape[1]
    r = config.rows
    folds = -(-k // r)
    p_lo, p_hi = config.pe_range
    q_lo, q_hi = config.out_range
    b = np.zeros(o, np.int64) if bias is None else np.asarray(bias, np.int64)
    xmax = max(float(x.max()), -float(x.min())) if x.size else 0.0
    signed = bool(x.size) and float(x.min()) < 0
    wabs = np.abs(w)
    fold_bound = xmax * float(wabs.max()) * min(r, k)
    total_bound = float(np.abs(b).max(initial=0)) + xmax * float(wabs.sum(axis=0).max(initial=0))

    def dtype(bound: float) -> torch.dtype:
        return torch.float32 if bound < 2**24 else torch.float64 if bound < 2**53 else torch.int64

    dt = dtype(fold_bound)                      # fold sums and bounds
    adt = torch.int64 if dt == torch.int64 or total_bound >= 2**53 else torch.float64  # accumulator
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(dt)
    wt = torch.from_numpy(np.array(w)).to(dt)
    # per (vector, fold) bounds on every prefix: sum_k |x| * max_o |w| over the fold's rows
    sel = np.zeros((k, folds), dtype=np.float64)
    sel[np.arange(k), np.arange(k) // r] = 1
    wrow = torch.from_numpy(wabs.max(axis=1, initial=0)[:, None] * sel).to(dt)   # [K, F]
    rbn = (xt.abs() @ wrow).T.to(torch.float64).contiguous().numpy()             # [F, T]
    acc = torch.from_numpy(np.broadcast_to(b, (t, o)).copy()).to(adt)
    acc_lo, acc_hi = (int(b.min()), int(b.max())) if o else (0, 0)
    pe_lo = pe_hi = 0
    acc_risk = torch.zeros(t, dtype=torch.bool)
    for f in range(folds):
        k0 = f * r
        s = xt[:, k0:k0 + r] @ wt[k0:k0 + r]
        acc += s.to(adt)
        if t and o:
            if extremes:
                lo, hi = torch.aminmax(s)
                pe_lo, pe_hi = min(pe_lo, int(lo)), max(pe_hi, int(hi))
            lo, hi = torch.aminmax(acc)
            acc_lo, acc_hi = min(acc_lo, int(lo)), max(acc_hi, int(hi))
            if lo < q_lo or hi > q_hi:
                acc_risk |= ((acc < q_lo) | (acc > q_hi)).any(dim=1)
    risk = acc_risk.numpy().copy()
    # refine the (vector, fold) pairs whose coarse bound beats the extreme seen or leaves P bits:
    # exact sums of the positive and of the negative products (one matmul), then step scans
    wp_all = torch.cat([wt.clamp(min=0), wt.clamp(max=0)], dim=1)                 # [K, 2O]
    for f in range(folds):
        k0 = f * r
        seen_hi, seen_lo = (pe_hi, pe_lo) if extremes else (p_hi, p_lo)   # without extremes: risk only
        rows = np.flatnonzero((rbn[f] > min(seen_hi, p_hi)) | (-rbn[f] < max(seen_lo, p_lo)))
        if rows.size == 0:
            continue
        xf = xt[rows, k0:k0 + r]
        wpn = wp_all[k0:k0 + r]
        if signed:
            swap = torch.cat([wpn[:, o:], wpn[:, :o]], dim=1)       # x < 0 flips the product sign
            pn = xf.clamp(min=0) @ wpn + xf.clamp(max=0) @ swap
        else:
            pn = xf @ wpn
        pos, neg = pn[:, :o].to(torch.float64).numpy(), pn[:, o:].to(torch.float64).numpy()
        risk[rows] |= (pos > p_hi).any(axis=1) | (neg < p_lo).any(axis=1)
        xi, wi = x[rows, k0:k0 + r], w[k0:k0 + r]
        for bnd, upper in ((pos, True), (neg, False)) if extremes else ():
            ti, oi = np.nonzero(bnd > pe_hi) if upper else np.nonzero(bnd < pe_lo)
            if ti.size == 0:
                continue
            val = bnd[ti, oi]
            order = np.argsort(-val if upper else val, kind="stable")   # most promising first
            ti, oi, val = ti[order], oi[order], val[order]
            step = max(1, SCAN_CHUNK_ELEMS // max(1, r))
            for i in range(0, ti.size, step):
                keep = val[i:i + step] > pe_hi if upper else val[i:i + step] < pe_lo
                if not keep.any():
                    break                              # sorted: no later pair can beat it
                hi, lo = _scan_prefix(xi, wi, ti[i:i + step][keep], oi[i:i + step][keep])
                pe_hi, pe_lo = max(pe_hi, hi), min(pe_lo, lo)
    if not extremes:
        pe_lo = pe_hi = acc_lo = acc_hi = 0
    return PsumExtremes(pe_lo, pe_hi, acc_lo, acc_hi, acc.to(torch.int64).numpy(), risk)


def array_gemm(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, config: ArrayConfig,
               extremes: bool = True) -> tuple[GemmResult, PsumExtremes]:
    """The array's result of one GEMM and the exact extremes of its partial sums.

    :func:`accel.golden.gemm` computes every vector at risk (all of them with OverQ, whose
    encoded lanes the bounds do not describe); on the others no step can leave its range, so by
    SPEC section 2 the result is the exact sum and no flag is set.
    """
    ext = psum_extremes(x, w, bias, config, extremes)
    if config.overq is not None or ext.at_risk.all():
        return gemm(x, w, config, bias), ext
    rows = np.flatnonzero(ext.at_risk)
    y = ext.exact.copy()
    pe = np.zeros(y.shape, dtype=bool)
    accf = np.zeros(y.shape, dtype=bool)
    pe_events = acc_events = 0
    if rows.size:
        sub = gemm(x[rows], w, config, bias)
        y[rows], pe[rows], accf[rows] = sub.y, sub.pe_overflow, sub.acc_overflow
        pe_events, acc_events = sub.pe_events, sub.acc_events
    else:
        check_operands(x[:1], w, config, bias)     # same operand errors as the golden model
    return GemmResult(y, pe, accf, pe_events, acc_events), ext


@dataclass
class LayerStats:
    """Per-layer results of the TLM, summed over every batch the layer ran on (JSON-ready).

    Cycles are those of the jobs actually run (one per group and batch). ``min_pe_bits`` and
    ``min_out_bits`` are the smallest legal P and Q (P >= N + M, Q >= P) that would have avoided
    every PE and accumulator overflow event on this data.
    """

    name: str
    kind: str
    input_shape: list[int]
    output_shape: list[int]
    t: int = 0
    k: int = 0
    o: int = 0
    layer_groups: int = 1
    folds: int = 0
    col_groups: int = 0
    jobs: int = 0
    cycles: int = 0
    macs: int = 0
    utilisation: float = 0.0
    weight_tile_loads: int = 0
    acc_reads: int = 0
    acc_writes: int = 0
    scalesim_cycles: int = 0
    outputs: int = 0
    pe_events: int = 0
    acc_events: int = 0
    pe_overflow_outputs: int = 0
    acc_overflow_outputs: int = 0
    affected_outputs: int = 0
    affected_share: float = 0.0
    pe_psum_min: int = 0
    pe_psum_max: int = 0
    acc_min: int = 0
    acc_max: int = 0
    largest_psum: int = 0
    largest_acc: int = 0
    min_pe_bits: int = 0
    min_out_bits: int = 0
    exact_mismatches: int = 0
    extremes_measured: bool = True
    torch: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def check_layer_fits(layer: IntLayer, config: ArrayConfig) -> None:
    """Refuse a layer whose input codes or weights do not fit the array's lanes (names both)."""
    lo, hi = layer.input_range
    llo, lhi = config.lane_range
    if lo < llo or hi > lhi:
        raise LayerError(f"layer {layer.name!r}: its {'signed' if layer.act_signed else 'unsigned'} "
                         f"{layer.act_bits}-bit input codes [{lo}, {hi}] do not fit the array's "
                         f"lanes [{llo}, {lhi}] (act_bits = {config.act_bits}, act_signed = "
                         f"{config.act_signed}); choose a configuration whose lanes hold them")
    if layer.weight_bits > config.weight_bits:
        raise LayerError(f"layer {layer.name!r}: {layer.weight_bits}-bit weights do not fit the "
                         f"array's weight_bits = {config.weight_bits}")


def run_layer(layer: IntLayer, codes: np.ndarray, config: ArrayConfig, tm: TimingNumbers,
              extremes: bool = True) -> tuple[np.ndarray, LayerStats]:
    """Run ``layer`` on input codes: ``(acc, stats)``.

    Parameters
    ----------
    layer : IntLayer
    codes : int array
        Input codes, ``[..., I]`` (linear) or ``[N, C_in, H, W]`` (conv2d).
    config : ArrayConfig
    tm : TimingNumbers
        The array's timing numbers (:func:`accel.timing.timing`).
    extremes : bool
        Measure the exact partial-sum extremes (largest psum, minimum P and Q); without them
        the run is several times faster and those fields stay 0.

    Returns
    -------
    acc : int64
        Q-bit accumulator results in the layer's output shape (``[..., O]`` / ``[N, O, Ho, Wo]``).
    stats : LayerStats
        Of this call alone; :func:`merge_stats` sums calls.
    """
    check_layer_fits(layer, config)
    shape = gemm_shape(layer, np.shape(codes))
    stats = LayerStats(name=layer.name, kind=layer.kind, input_shape=list(np.shape(codes)),
                       output_shape=list(shape.out_shape), t=shape.t, k=shape.k, o=shape.o,
                       layer_groups=shape.groups)
    cyc = gemm_cycles(shape.t, shape.k, shape.o, config, tm)
    stats.folds, stats.col_groups = cyc.folds, cyc.groups
    screened = None if extremes else screen_layer(Patches(layer, codes), config)
    if screened is not None:
        acc = screened.acc
        for _ in range(shape.groups):
            _add_job(stats, cyc)
        stats.outputs = acc.size
        stats.pe_events, stats.acc_events = screened.pe_events, screened.acc_events
        stats.pe_overflow_outputs, stats.acc_overflow_outputs = screened.pe_outputs, screened.acc_outputs
        stats.affected_outputs = screened.affected_outputs
        stats.exact_mismatches = screened.mismatches
    else:
        ys = []
        pe_lo = pe_hi = acc_lo = acc_hi = 0
        for x, w, b in lower(layer, codes):
            res, ext = array_gemm(x, w, b, config, extremes)
            ys.append(res.y)
            _add_job(stats, cyc)
            stats.outputs += res.y.size
            stats.pe_events += res.pe_events
            stats.acc_events += res.acc_events
            stats.pe_overflow_outputs += int(res.pe_overflow.sum())
            stats.acc_overflow_outputs += int(res.acc_overflow.sum())
            stats.affected_outputs += int((res.pe_overflow | res.acc_overflow).sum())
            stats.exact_mismatches += int((res.y != ext.exact).sum())
            pe_lo, pe_hi = min(pe_lo, ext.pe_min), max(pe_hi, ext.pe_max)
            acc_lo, acc_hi = min(acc_lo, ext.acc_min), max(acc_hi, ext.acc_max)
        stats.pe_psum_min, stats.pe_psum_max, stats.acc_min, stats.acc_max = pe_lo, pe_hi, acc_lo, acc_hi
        acc = raise_output(layer, ys, shape)
    stats.scalesim_cycles = layer_scalesim_cycles(layer, np.shape(codes), config)
    stats.extremes_measured = extremes
    _finish(stats, config)
    return acc, stats


def _add_job(stats: LayerStats, cyc: GemmCycles) -> None:
    """Count one GEMM job (one group of one call) on the array."""
    stats.jobs += 1
    stats.cycles += cyc.cycles
    stats.macs += cyc.macs
    stats.weight_tile_loads += cyc.tiles
    stats.acc_reads += cyc.acc_reads
    stats.acc_writes += cyc.acc_writes


def layer_scalesim_cycles(layer: IntLayer, input_shape: tuple[int, ...], config: ArrayConfig) -> int:
    """SCALE-Sim's estimate for the layer (SPEC section 6), summed over groups.

    Convolutions use SCALE-Sim's output size on the unpadded input (dilated kernel extent) with
    the batch folded into T; linear layers are the GEMM as lowered.
    """
    shape = gemm_shape(layer, input_shape)
    if layer.kind == "linear":
        return scalesim_cycles(shape.t, shape.k, shape.o, config.rows, config.cols)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    fh, fw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    n, _, h, w = input_shape
    th = -(-(h - fh + sh) // sh)
    tw = -(-(w - fw + sw) // sw)
    t = n * (scalesim_conv_t(h, w, fh, fw, sh) if sh == sw else th * tw)
    return shape.groups * scalesim_cycles(t, shape.k, shape.o, config.rows, config.cols)


def _finish(stats: LayerStats, config: ArrayConfig) -> None:
    stats.utilisation = stats.macs / max(1, stats.cycles * config.rows * config.cols)
    stats.affected_share = stats.affected_outputs / max(1, stats.outputs)
    stats.largest_psum = max(stats.pe_psum_max, -stats.pe_psum_min)
    stats.largest_acc = max(stats.acc_max, -stats.acc_min)
    if stats.extremes_measured:
        stats.min_pe_bits = max(config.min_pe_acc_bits,
                                signed_bits(stats.pe_psum_min, stats.pe_psum_max))
        stats.min_out_bits = max(stats.min_pe_bits, signed_bits(stats.acc_min, stats.acc_max))


_SUMMED = ("t", "jobs", "cycles", "macs", "weight_tile_loads", "acc_reads", "acc_writes",
           "scalesim_cycles", "outputs", "pe_events", "acc_events", "pe_overflow_outputs",
           "acc_overflow_outputs", "affected_outputs", "exact_mismatches")


def merge_stats(total: LayerStats | None, new: LayerStats, config: ArrayConfig) -> LayerStats:
    """``total`` plus the stats of one more call of the same layer (``total`` may be None)."""
    if total is None:
        return new
    for name in _SUMMED:
        setattr(total, name, getattr(total, name) + getattr(new, name))
    total.pe_psum_min = min(total.pe_psum_min, new.pe_psum_min)
    total.pe_psum_max = max(total.pe_psum_max, new.pe_psum_max)
    total.acc_min = min(total.acc_min, new.acc_min)
    total.acc_max = max(total.acc_max, new.acc_max)
    total.output_shape[0] += new.output_shape[0]
    total.input_shape[0] += new.input_shape[0]
    total.extremes_measured = total.extremes_measured and new.extremes_measured
    _finish(total, config)
    return total
