"""Action counts of a GEMM job on the array: what the hardware does, counted exactly.

The schedule-dependent numbers (beats on each stream, accumulator reads and writes, useful MACs,
cycles) come from :func:`sim.cycles.gemm_cycles`, the one closed form of the canonical schedule
(SPEC section 6); this module only multiplies them by what the RTL does per beat, which is fixed
by its structure (``rtl_gen``: mesh, PE, accumulator memory, output FIFO):

* every ``x`` beat passes through all R x C PEs: one N x M multiply and one P-bit add in each
  (no zero gating: padded lanes and columns compute too), and each PE writes its activation
  register (lane bits) and its partial-sum register (P bits + 1 overflow flag);
* the input skew delays lane r by r + 1 registers (lane bits), the output de-skew column c by
  C - 1 - c registers (P + 1 bits);
* the accumulator memory adds one Q-bit value per column per ``x`` beat, reads a word for every
  beat without ``x_init`` and writes one for every beat (words of C * Q + 2C bits);
* a ``w`` beat writes one row of C weights (M bits each) into the shadow tile, a ``b`` beat C
  biases of Q bits;
* every ``y`` beat is written into and read out of the output FIFO (C * Q + 2C + address bits).

Not counted: control (counters, handshakes), the clock tree outside the registers, leakage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from accel.config import ArrayConfig

__all__ = ["ActionCounts", "action_counts", "word_bits", "fifo_bits"]


def word_bits(config: ArrayConfig) -> int:
    """Bits of one accumulator memory word (:attr:`accel.config.ArrayConfig.acc_word_bits`)."""
    return config.acc_word_bits


def fifo_bits(config: ArrayConfig) -> int:
    """Bits of one output FIFO entry (a ``y`` beat): C * Q data, the address, 2C flags."""
    return config.acc_word_bits + config.addr_bits


@dataclass(frozen=True)
class ActionCounts:
    """Actions of one or more GEMM jobs (sums add field by field).

    Attributes
    ----------
    jobs : int
        GEMM jobs counted.
    cycles : int
        Clock cycles under the canonical stimulus.
    macs : int
        Useful multiply-accumulates, T * K * O.
    x_beats, w_beats, b_beats, y_beats, tiles : int
        Stream beats and weight-tile loads.
    mults : int
        N x M multiplies performed (R * C per ``x`` beat).
    pe_adds : int
        P-bit additions in the PEs (R * C per ``x`` beat).
    acc_adds : int
        Q-bit additions in the accumulator memory (C per ``x`` beat).
    acc_reads, acc_writes : int
        Accumulator memory words read / written.
    pe_reg_bits : int
        Bits written into PE pipeline registers (activation, partial sum and flag).
    skew_reg_bits : int
        Bits written into the input skew and output de-skew registers.
    weight_bits : int
        Weight bits written into shadow tiles.
    bias_bits : int
        Bias bits written into the shadow bias.
    fifo_write_bits, fifo_read_bits : int
        Bits written into / read out of the output FIFO.
    """

    jobs: int
    cycles: int
    macs: int
    x_beats: int
    w_beats: int
    b_beats: int
    y_beats: int
    tiles: int
    mults: int
    pe_adds: int
    acc_adds: int
    acc_reads: int
    acc_writes: int
    pe_reg_bits: int
    skew_reg_bits: int
    weight_bits: int
    bias_bits: int
    fifo_write_bits: int
    fifo_read_bits: int

    def __add__(self, other: "ActionCounts") -> "ActionCounts":
        if not isinstance(other, ActionCounts):
            return NotImplemented
        return ActionCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                               for f in fields(self)})

    @classmethod
    def zero(cls) -> "ActionCounts":
        """No actions (the sum of nothing)."""
        return cls(**{f.name: 0 for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def action_counts(t: int, k: int, o: int, config: ArrayConfig) -> ActionCounts:
    """Actions of one GEMM job ``Y[T, O] = X[T, K] . W[K, O]`` run from reset on ``config``.

    Raises
    ------
    ValueError
        For a GEMM size that is not a positive integer.
    """
    from sim.cycles import gemm_cycles

    job = gemm_cycles(t, k, o, config)
    r, c = config.rows, config.cols
    pes = r * c
    lane, p, m, q = config.lane_bits, config.pe_acc_bits, config.weight_bits, config.out_bits
    skew_per_beat = lane * r * (r + 1) // 2 + (p + 1) * c * (c - 1) // 2
    return ActionCounts(
        jobs=1, cycles=job.cycles, macs=job.macs, x_beats=job.x_beats, w_beats=job.w_beats,
        b_beats=job.b_beats, y_beats=job.y_beats, tiles=job.tiles,
        mults=job.x_beats * pes, pe_adds=job.x_beats * pes, acc_adds=job.x_beats * c,
        acc_reads=job.acc_reads, acc_writes=job.acc_writes,
        pe_reg_bits=job.x_beats * pes * (lane + p + 1),
        skew_reg_bits=job.x_beats * skew_per_beat,
        weight_bits=job.w_beats * c * m, bias_bits=job.b_beats * c * q,
        fifo_write_bits=job.y_beats * fifo_bits(config),
        fifo_read_bits=job.y_beats * fifo_bits(config))
