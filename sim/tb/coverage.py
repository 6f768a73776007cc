"""Functional coverage: named bins counted during a run, and the bins a job's operands reach.

Dynamic bins are counted by the testbench at each edge (``x_first_wait``, ``w_wait_complete_shadow``,
``y_backpressure_fifo_full``, ``same_addr_consecutive``, ``reset_in_flight``); static bins follow
from a job's shape and operands (folds, groups, padding, chunks, overflow rails per mode).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from accel.config import ArrayConfig
from accel.arith import op
from accel.golden import gemm

__all__ = ["Coverage", "shape_bins", "overflow_bins"]


class Coverage:
    """Counts per bin; :meth:`missing` names targeted bins that stayed empty."""

    def __init__(self) -> None:
        self.bins: Counter[str] = Counter()
        self.targets: set[str] = set()

    def hit(self, name: str, n: int = 1) -> None:
        self.bins[name] += n

    def target(self, names: set[str]) -> None:
        self.targets |= names

    def missing(self) -> list[str]:
        """Targeted bins with no hit, sorted."""
        return sorted(b for b in self.targets if self.bins[b] == 0)

    def to_dict(self) -> dict[str, object]:
        return {"bins": dict(sorted(self.bins.items())), "targets": sorted(self.targets),
                "missing": self.missing()}


def shape_bins(t: int, k: int, o: int, config: ArrayConfig) -> set[str]:
    """Bins hit by the shape alone: several folds / groups, a padded last fold, T > acc_depth."""
    bins = set()
    if k > config.rows:
        bins.add("multi_fold")
    if o > config.cols:
        bins.add("multi_group")
    if k % config.rows:
        bins.add("padded_last_fold")
    if o % config.cols:
        bins.add("padded_last_group")
    if t > config.acc_depth:
        bins.add("t_gt_acc_depth")
    return bins


def overflow_bins(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, config: ArrayConfig
                  ) -> set[str]:
    """Overflow rails the operands cross: ``{pe,acc}_ovf_{high,low}_{mode}``.

    PE: a fold's exact sum beyond the P-bit range (which forces an event in either mode).
    Accumulator: a step ``acc + s`` of SPEC section 2 beyond the Q-bit range, with the fold
    results ``s`` taken from the golden model fold by fold.
    """
    r, mode = config.rows, config.overflow
    plo, phi = config.pe_range
    qlo, qhi = config.out_range
    t, k = x.shape
    acc = np.broadcast_to(np.zeros(w.shape[1], np.int64) if bias is None else bias,
                          (t, w.shape[1])).astype(np.int64)
    if config.out_bits > 62:          # acc + s may leave int64: exact Python integers
        acc = acc.astype(object)
    bins = set()
    for k0 in range(0, k, r):
        xf, wf = x[:, k0:k0 + r], w[k0:k0 + r]
        exact = xf @ wf
        if (exact > phi).any():
            bins.add(f"pe_ovf_high_{mode}")
        if (exact < plo).any():
            bins.add(f"pe_ovf_low_{mode}")
        v = acc + gemm(xf, wf, config).y
        if (v > qhi).any():
            bins.add(f"acc_ovf_high_{mode}")
        if (v < qlo).any():
            bins.add(f"acc_ovf_low_{mode}")
        acc = op(v, config.out_bits, mode)
    return bins
