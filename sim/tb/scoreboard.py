"""The scoreboard: every job goes to ``accel.golden.gemm``; ``y`` beats are compared bit for bit.

``y`` beats arrive in the order of the ``x_emit`` beats (SPEC section 3), so checking is in-order:
beat i is compared with expected beat i (``y_data`` per lane, ``y_pe_ovf``, ``y_acc_ovf``,
``y_addr``). The first mismatch is reported with its ``(t, o)``, both values, the seed and a
one-line rerun command.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.config import ArrayConfig
from accel.golden import gemm
from sim.schedule import Beats, beats, expected_lanes, unpack_lanes
from sim.tb.harness import TbLayout

__all__ = ["Expected", "Mismatch", "Scoreboard"]


@dataclass(frozen=True)
class Expected:
    """What one job must produce: its beats and the expected ``y`` beats as lanes."""

    beats: Beats
    y: np.ndarray        # int64 [n_y, C]
    pe_ovf: np.ndarray   # bool [n_y, C]
    acc_ovf: np.ndarray  # bool [n_y, C]
    y_addr: np.ndarray   # int64 [n_y]


@dataclass(frozen=True)
class Mismatch:
    """The first disagreement of a job (``t``, ``o``: GEMM coordinates; ``beat``: y beat index)."""

    job: str
    beat: int
    t: int
    o: int
    field: str
    got: int
    want: int

    def __str__(self) -> str:
        return (f"job {self.job}: y beat {self.beat} (t={self.t}, o={self.o}): {self.field} = "
                f"{self.got}, expected {self.want}")


class Scoreboard:
    """Expected results per job and in-order comparison of received ``y`` payload words."""

    def __init__(self, config: ArrayConfig, layout: TbLayout):
        self.config = config
        self.layout = layout
        self.checked = 0
        self.mismatches: list[Mismatch] = []

    def expect(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> Expected:
        """Beats of the job and its golden ``y`` beats (padded lanes are 0, flags clear)."""
        bt = beats(x, w, bias, self.config)
        y, pe, acc = expected_lanes(gemm(x, w, self.config, bias), bt.y_order, self.config)
        return Expected(bt, y, pe, acc, bt.x_addr[bt.x_emit])

    def check(self, job: str, exp: Expected, payloads: list[int], complete: bool) -> int:
        """Compare received payload words with the expectation; returns the beats checked.

        ``complete`` False (a job cut by reset) checks the received beats as a prefix.
        Records the first mismatch (or a count mismatch) in :attr:`mismatches`.
        """
        cfg, lay = self.config, self.layout
        n_exp = len(exp.y)
        n = len(payloads)
        if n > n_exp or (complete and n != n_exp):
            self.mismatches.append(Mismatch(job, min(n, n_exp), -1, -1, "y beat count", n, n_exp))
            n = min(n, n_exp)
        if n == 0:
            return 0
        fields = [lay.payload(p) for p in payloads[:n]]
        got_y = unpack_lanes([f["y_data"] for f in fields], cfg.cols, cfg.out_bits)
        got_pe = unpack_lanes([f["y_pe_ovf"] for f in fields], cfg.cols, 1, signed=False) == 1
        got_acc = unpack_lanes([f["y_acc_ovf"] for f in fields], cfg.cols, 1, signed=False) == 1
        got_addr = np.array([f["y_addr"] for f in fields], dtype=np.int64)
        first = None
        for name, got, want in (("y_data", got_y, exp.y[:n]), ("y_pe_ovf", got_pe, exp.pe_ovf[:n]),
                                ("y_acc_ovf", got_acc, exp.acc_ovf[:n])):
            bad = np.argwhere(got != want)
            if bad.size:
                i, c = (int(v) for v in bad[0])
                t, g = (int(v) for v in exp.beats.y_order[i])
                cand = Mismatch(job, i, t, g * cfg.cols + c, f"{name}[lane {c}]",
                                int(got[i, c]), int(want[i, c]))
                if first is None or cand.beat < first.beat:
                    first = cand
        bad = np.flatnonzero(got_addr != exp.y_addr[:n])
        if bad.size and (first is None or int(bad[0]) < first.beat):
            i = int(bad[0])
            t, g = (int(v) for v in exp.beats.y_order[i])
            first = Mismatch(job, i, t, g * cfg.cols, "y_addr", int(got_addr[i]),
                             int(exp.y_addr[i]))
        if first is not None:
            self.mismatches.append(first)
        self.checked += n
        return n
