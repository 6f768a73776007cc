"""Cycle model of the array (SPEC section 6): closed-form cycles of a job, traffic, SCALE-Sim.

Under the canonical stimulus (``w``, ``b`` and ``x`` independent sources without gaps, the first
beat of each presented on edge 0, ``y_ready`` = 1) the tile switch rules of SPEC section 3 are the
only waits, so the edge of every transfer follows from the canonical schedule
(:func:`sim.schedule.steps`) and the timing numbers (:func:`accel.timing.timing`):

* No beat transfers on edge 0 (the first edge after reset), so the first ``w`` beat transfers on
  edge 1 and tile 0's ``w_last`` on edge R.
* Tile i >= 1 may start on ``w`` ``wfree_after_first`` edges after the ``x_first`` transfer that
  activated tile i - 1 (edge F(i-1)); its ``w_last`` follows R - 1 edges later. (The bias beat is
  never later: the RTL keeps ``bfree_after_first <= wfree_after_first + R - 1``.)
* ``x_first`` of tile i transfers at the later of the edge after the previous chunk's last beat
  and ``first_after_wlast`` edges after the tile's ``w_last``; the chunk's L beats follow back to
  back. Hence, with the tile period ``S = wfree_after_first + R - 1 + first_after_wlast``::

      F(0) = R + first_after_wlast
      F(i) = F(i-1) + max(L(i-1), S)

* The last ``y`` beat transfers ``latency`` edges after the last ``x`` beat, so
  ``cycles = 1 + F(n-1) + L(n-1) - 1 + latency``.

Chunk lengths repeat (``acc_depth`` vectors, then the remainder; F times per chunk, once per column
group), which makes the sum a closed form in O(1). ``tests/test_cycles.py`` checks it against an
edge-by-edge model of the handshake rules, and against the cocotb suite's measured cycles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from accel.arith import fold_count, group_count
from accel.config import ArrayConfig
from accel.lowering import GemmShape

__all__ = ["TimingNumbers", "GemmCycles", "default_timing", "job_cycles", "gemm_cycles",
           "scalesim_cycles", "scalesim_output_size", "scalesim_conv_t", "layer_scalesim_cycles",
           "CycleMeter", "FIRST_TRANSFER_EDGE"]

#: The earliest edge on which any beat transfers after reset (SPEC section 3: none on edge 0).
FIRST_TRANSFER_EDGE = 1


class TimingNumbers(Protocol):
    """The four timing numbers of SPEC section 3, in clock edges (``accel.timing.Timing``)."""

    latency: int
    first_after_wlast: int
    wfree_after_first: int
    bfree_after_first: int


def default_timing(config: ArrayConfig) -> TimingNumbers:
    """The RTL's timing numbers for ``config`` (:func:`accel.timing.timing`)."""
    from accel.timing import timing

    return timing(config)


@dataclass(frozen=True)
class GemmCycles:
    """Cycles and traffic of one GEMM job ``Y[T, O] = X[T, K] . W[K, O]`` run from reset.

    Attributes
    ----------
    t, k, o : int
        GEMM sizes.
    folds, groups, chunks : int
        Row folds ceil(K / R), column groups ceil(O / C), chunks ceil(T / acc_depth).
    tiles : int
        Weight-tile loads (``folds * groups * chunks``; a tile is re-sent per chunk).
    cycles : int
        Clock cycles of the job under the canonical stimulus (SPEC section 6).
    macs : int
        Useful multiply-accumulates, T * K * O.
    utilisation : float
        ``macs / (cycles * R * C)``.
    w_beats, b_beats, x_beats, y_beats : int
        Beats on each stream (``x`` beats = accumulator read-modify-writes).
    acc_reads, acc_writes : int
        Accumulator-memory entries (C x Q bits) read (beats without ``x_init``) and written.
    """

    t: int
    k: int
    o: int
    folds: int
    groups: int
    chunks: int
    tiles: int
    cycles: int
    macs: int
    utilisation: float
    w_beats: int
    b_beats: int
    x_beats: int
    y_beats: int
    acc_reads: int
    acc_writes: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _check_sizes(t: int, k: int, o: int) -> None:
    for name, v, lo in (("T", t, 1), ("K", k, 1), ("O", o, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"GEMM size {name} must be an integer >= {lo}, not {v!r}")


def job_cycles(t: int, k: int, o: int, config: ArrayConfig, tm: TimingNumbers) -> int:
    """Cycles of one GEMM job under the canonical stimulus, closed form (module docstring)."""
    _check_sizes(t, k, o)
    r, d = config.rows, config.acc_depth
    period = tm.wfree_after_first + r - 1 + tm.first_after_wlast
    if tm.wfree_after_first < 1:
        raise ValueError("wfree_after_first must be >= 1 edge (the next tile cannot load on the "
                         f"edge of the activating x_first), not {tm.wfree_after_first}")
    folds, groups = fold_count(k, config.rows), group_count(o, config.cols)
    full, rem = divmod(t, d)
    per_group = folds * (full * max(d, period) + (max(rem, period) if rem else 0))
    last = rem if rem else d
    first_x = FIRST_TRANSFER_EDGE + r - 1 + tm.first_after_wlast
    # F(n-1) = F(0) + sum over all tiles but the last of max(L, S); the last tile adds L only.
    last_x = first_x + groups * per_group - max(last, period) + last - 1
    return 1 + last_x + tm.latency


def gemm_cycles(t: int, k: int, o: int, config: ArrayConfig,
                tm: TimingNumbers | None = None) -> GemmCycles:
    """Cycles, utilisation and traffic of one GEMM job (``tm`` defaults to the RTL's timing)."""
    tm = default_timing(config) if tm is None else tm
    cycles = job_cycles(t, k, o, config, tm)
    folds, groups = fold_count(k, config.rows), group_count(o, config.cols)
    chunks = -(-t // config.acc_depth)
    tiles = folds * groups * chunks
    macs = t * k * o
    x_beats = groups * folds * t
    return GemmCycles(
        t=t, k=k, o=o, folds=folds, groups=groups, chunks=chunks, tiles=tiles, cycles=cycles,
        macs=macs, utilisation=macs / (cycles * config.rows * config.cols),
        w_beats=tiles * config.rows, b_beats=tiles, x_beats=x_beats, y_beats=groups * t,
        acc_reads=groups * (folds - 1) * t, acc_writes=x_beats)


def scalesim_cycles(t: int, k: int, o: int, rows: int, cols: int) -> int:
    """SCALE-Sim v3 weight-stationary compute cycles of a GEMM (SPEC section 6).

    ``ceil(K / R) * ceil(O / C) * (2R + C + T - 2) - 1``: serial folds, no overlap. For a conv
    layer T is SCALE-Sim's own output size on the unpadded input (:func:`scalesim_conv_t`).
    """
    _check_sizes(t, k, o)
    return math.ceil(k / rows) * math.ceil(o / cols) * (2 * rows + cols + t - 2) - 1


def scalesim_output_size(size: int, f: int, stride: int) -> int:
    """SCALE-Sim's output length of one axis, ``ceil((H - fh + s) / s)`` on the unpadded input."""
    return math.ceil((size - f + stride) / stride)


def scalesim_conv_t(h: int, w: int, fh: int, fw: int, stride: int) -> int:
    """SCALE-Sim's T = Ho * Wo of a conv with one stride (its topology files have one)."""
    return scalesim_output_size(h, fh, stride) * scalesim_output_size(w, fw, stride)


def layer_scalesim_cycles(layer: Any, input_shape: tuple[int, ...], config: ArrayConfig) -> int:
    """SCALE-Sim's estimate for an integer layer (SPEC section 6), summed over groups.

    Convolutions use SCALE-Sim's output size on the unpadded input (dilated kernel extent, each
    axis with its own stride) with the batch folded into T; linear layers are the GEMM as lowered.
    """
    from accel.lowering import gemm_shape

    shape = gemm_shape(layer, input_shape)
    if layer.kind == "linear":
        return scalesim_cycles(shape.t, shape.k, shape.o, config.rows, config.cols)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    n, _, h, w = input_shape
    t = n * scalesim_output_size(h, dh * (kh - 1) + 1, sh) * scalesim_output_size(w, dw * (kw - 1) + 1, sw)
    return shape.groups * scalesim_cycles(t, shape.k, shape.o, config.rows, config.cols)


class CycleMeter:
    """Adds the cycles and traffic of every GEMM job of an array-layer call to its statistics
    (an :class:`accel.executor.Meter`): one job per group, :func:`gemm_cycles` each, and
    SCALE-Sim's estimate next to it."""

    def __init__(self, config: ArrayConfig, tm: TimingNumbers | None = None) -> None:
        self.config = config
        self.tm = default_timing(config) if tm is None else tm

    def __call__(self, node: Any, shape: GemmShape, stats: Any) -> None:
        cyc = gemm_cycles(shape.t, shape.k, shape.o, self.config, self.tm)
        g = shape.groups
        stats.folds, stats.col_groups = cyc.folds, cyc.groups
        stats.jobs += g
        stats.cycles += g * cyc.cycles
        stats.macs += g * cyc.macs
        stats.weight_tile_loads += g * cyc.tiles
        stats.acc_reads += g * cyc.acc_reads
        stats.acc_writes += g * cyc.acc_writes
        stats.scalesim_cycles += layer_scalesim_cycles(node.layer, tuple(stats.input_shape),
                                                       self.config)
