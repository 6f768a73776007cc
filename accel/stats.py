"""What a run of a model on the array measured: per array layer (:class:`LayerStats`) and per model
(:class:`ModelResult`). JSON-ready; every count is summed over the batches a layer ran on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from accel.arith import signed_bits

__all__ = ["LayerStats", "ModelResult", "SUMMED"]


@dataclass
class LayerStats:
    """Per-layer results of running a model, summed over every batch the layer ran on.

    Shapes, sizes and counts are plain integers; widths are bits.

    Attributes
    ----------
    name, kind : str
        The array node's name and its layer kind (``conv2d`` / ``linear``).
    input_shape, output_shape : list of int
        Of the layer's tensors, the batch axis summed over calls.
    t, k, o, layer_groups : int
        GEMM sizes per group (T vectors summed over calls, K rows, O columns) and the groups.
    folds, col_groups : int
        Row folds ceil(K / R) and column groups ceil(O / C) of one GEMM.
    jobs, cycles, macs, weight_tile_loads, acc_reads, acc_writes, scalesim_cycles : int
        Filled by a cycle meter (``sim.cycles``): GEMM jobs run, clock cycles of those jobs under
        the canonical stimulus (SPEC section 6), useful multiply-accumulates, weight tiles
        loaded, accumulator-memory entries read and written, SCALE-Sim v3's estimate.
    utilisation : float
        ``macs / (cycles * R * C)``.
    outputs : int
        Output elements computed.
    pe_events, acc_events : int
        Overflow events (SPEC section 2) of the P-bit PE steps and of the Q-bit accumulator.
    pe_overflow_outputs, acc_overflow_outputs, affected_outputs : int
        Outputs with a PE event, with an accumulator event, with either.
    affected_share : float
        ``affected_outputs / outputs``.
    exact_mismatches : int
        Outputs whose array result differs from the exact dot product plus bias.
    pe_psum_min, pe_psum_max, acc_min, acc_max : int
        Exact extremes (no wrapping) of every PE partial sum and of every accumulator value at a
        fold edge, bias included (only with ``extremes_measured``).
    largest_psum, largest_acc : int
        ``max(|min|, |max|)`` of those.
    min_pe_bits, min_out_bits : int
        The smallest legal P (>= the configuration's minimum) and Q (>= P) with no event on this
        data (0 without extremes).
    extremes_measured : bool
        Whether the extremes above were measured on every call.
    overq : accel.overq.OverQStats or None
        OverQ encoder statistics of the layer's lanes (None without OverQ).
    agreement : dict
        Against a reference runtime's codes at this layer's output, where one was given:
        ``compared``, ``equal``, ``within_1lsb`` (counts) and their shares.
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
    exact_mismatches: int = 0
    pe_psum_min: int = 0
    pe_psum_max: int = 0
    acc_min: int = 0
    acc_max: int = 0
    largest_psum: int = 0
    largest_acc: int = 0
    min_pe_bits: int = 0
    min_out_bits: int = 0
    extremes_measured: bool = False
    overq: Any = None
    agreement: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready); ``overq`` as :meth:`accel.overq.OverQStats.to_dict` or None."""
        d = asdict(self)
        d["overq"] = None if self.overq is None else self.overq.to_dict()
        return d

    def merge(self, new: "LayerStats") -> None:
        """Add the counts of one more call of the same layer."""
        if self.overq is not None:
            self.overq = self.overq + new.overq
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(new, name))
        self.pe_psum_min, self.pe_psum_max = min(self.pe_psum_min, new.pe_psum_min), \
            max(self.pe_psum_max, new.pe_psum_max)
        self.acc_min, self.acc_max = min(self.acc_min, new.acc_min), max(self.acc_max, new.acc_max)
        self.output_shape[0] += new.output_shape[0]
        self.input_shape[0] += new.input_shape[0]
        self.extremes_measured = self.extremes_measured and new.extremes_measured

    def finish(self, config: Any) -> None:
        """Derive shares, largest values and minimum widths from the counts (``config``: R, C and
        the smallest legal P)."""
        self.utilisation = self.macs / max(1, self.cycles * config.rows * config.cols)
        self.affected_share = self.affected_outputs / max(1, self.outputs)
        self.largest_psum = max(self.pe_psum_max, -self.pe_psum_min)
        self.largest_acc = max(self.acc_max, -self.acc_min)
        if self.extremes_measured:
            self.min_pe_bits = max(config.min_pe_acc_bits,
                                   int(signed_bits([self.pe_psum_min, self.pe_psum_max]).max()))
            self.min_out_bits = max(self.min_pe_bits,
                                    int(signed_bits([self.acc_min, self.acc_max]).max()))
        if self.agreement:
            a = self.agreement
            a["equal_share"] = a["equal"] / max(1, a["compared"])
            a["within_1lsb_share"] = a["within_1lsb"] / max(1, a["compared"])


#: Counters of :class:`LayerStats` that add up over calls.
SUMMED = ("t", "jobs", "cycles", "macs", "weight_tile_loads", "acc_reads", "acc_writes",
          "scalesim_cycles", "outputs", "pe_events", "acc_events", "pe_overflow_outputs",
          "acc_overflow_outputs", "affected_outputs", "exact_mismatches")


@dataclass
class ModelResult:
    """Per-layer statistics and per-model totals of running a model on batches (JSON-ready).

    Accuracy is a share in 0..1 of the labelled samples whose top-1 class (argmax of the first
    graph output) is the label; ``reference_correct`` counts the reference runtime's own correct
    answers on the same samples, where one was given.
    """

    config: dict[str, Any]
    semantics: str
    layers: list[LayerStats]
    timing: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    labelled: int = 0
    correct: int = 0
    reference_correct: int | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cycles(self) -> int:
        """Cycles of every job of every layer (no overlap between jobs, SPEC section 6)."""
        return sum(s.cycles for s in self.layers)

    def inference_gemms(self) -> dict[str, list[tuple[int, int, int]]]:
        """The GEMM jobs ``(T, K, O)`` of one inference per array layer: T is the layer's vectors
        per sample, one job per group (what the cycle and energy models price per inference)."""
        n = max(1, self.samples)
        return {s.name: [(s.t // n, s.k, s.o)] * s.layer_groups for s in self.layers}

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy of the array's outputs against the labels (None without labels)."""
        return self.correct / self.labelled if self.labelled else None

    @property
    def reference_accuracy(self) -> float | None:
        ref = self.reference_correct
        return None if ref is None or not self.labelled else ref / self.labelled

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "config": self.config, "timing": self.timing, "semantics": self.semantics,
            "samples": self.samples, "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "total_cycles": self.total_cycles,
            "cycles_per_sample": self.total_cycles / self.samples if self.samples else None,
            "wall_s": self.wall_s, "layers": [s.to_dict() for s in self.layers], **self.extra,
        }
