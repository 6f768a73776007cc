"""The scoreboard: every job goes to ``accel.golden.gemm``; ``y`` beats are compared bit for bit.

``y`` beats arrive in the order of the ``x_emit`` beats (SPEC section 3), so checking is in-order:
beat i is compared with expected beat i (``y_data`` per lane, ``y_pe_ovf``, ``y_acc_ovf``,
``y_addr``). The first mismatch is reported with its ``(t, o)``, both values, the seed and a
one-line rerun command.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.arith import GemmResult
from accel.config import ArrayConfig
from accel.golden import gemm
from sim.schedule import Beats, beats, expected_lanes, unpack_lanes
from sim.tb.harness import TbLayout

__all__ = ["Expected", "Mismatch", "Scoreboard", "expect", "compare"]


@dataclass(frozen=True)
class Expected:
    """What one job must produce: its beats, the expected ``y`` beats as lanes, and the golden
    model's whole result (events, OverQ statistics)."""

    beats: Beats
    y: np.ndarray        # int64 [n_y, C]
    pe_ovf: np.ndarray   # bool [n_y, C]
    acc_ovf: np.ndarray  # bool [n_y, C]
    y_addr: np.ndarray   # int64 [n_y]
    result: GemmResult | None = None


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


def expect(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, config: ArrayConfig
           ) -> Expected:
    """Beats of the job and its golden ``y`` beats (padded lanes are 0, flags clear)."""
    bt = beats(x, w, bias, config)
    res = gemm(x, w, config, bias)
    y, pe, acc = expected_lanes(res, bt.y_order, config)
    return Expected(bt, y, pe, acc, bt.x_addr[bt.x_emit], res)


def compare(job: str, exp: Expected, got: dict[str, np.ndarray], cols: int, complete: bool
            ) -> tuple[int, list[Mismatch], int]:
    """Compare received ``y`` beats with the expectation, in order.

    Parameters
    ----------
    got : dict
        Per ``y`` field, the received beats: ``y_data`` int ``[n, C]``, ``y_pe_ovf`` and
        ``y_acc_ovf`` ``[n, C]`` (0/1), ``y_addr`` ``[n]`` or ``[n, 1]``.
    cols : int
        C, for output coordinates ``o = g * C + c``.
    complete : bool
        False (a job cut short) checks the received beats as a prefix.

    Returns
    -------
    (checked, mismatches, bad)
        Beats compared; a count mismatch (if any) and the first value mismatch (if any), in
        that order; how many beats differ in any field.
    """
    n_exp = len(exp.y)
    n = len(got["y_data"])
    found: list[Mismatch] = []
    if n > n_exp or (complete and n != n_exp):
        found.append(Mismatch(job, min(n, n_exp), -1, -1, "y beat count", n, n_exp))
        n = min(n, n_exp)
    if n == 0:
        return 0, found, 0
    got_addr = np.asarray(got["y_addr"], np.int64).reshape(-1)[:n]
    bad_beat = got_addr != exp.y_addr[:n]
    first = None
    for name, want in (("y_data", exp.y), ("y_pe_ovf", exp.pe_ovf), ("y_acc_ovf", exp.acc_ovf)):
        g = np.asarray(got[name])[:n]
        g = g == 1 if want.dtype == bool else g
        diff = g != want[:n]
        bad_beat |= diff.any(axis=1)
        bad = np.argwhere(diff)
        if bad.size:
            i, c = (int(v) for v in bad[0])
            t, gr = (int(v) for v in exp.beats.y_order[i])
            cand = Mismatch(job, i, t, gr * cols + c, f"{name}[lane {c}]", int(g[i, c]),
                            int(want[i, c]))
            if first is None or cand.beat < first.beat:
                first = cand
    bad = np.flatnonzero(got_addr != exp.y_addr[:n])
    if bad.size and (first is None or int(bad[0]) < first.beat):
        i = int(bad[0])
        t, gr = (int(v) for v in exp.beats.y_order[i])
        first = Mismatch(job, i, t, gr * cols, "y_addr", int(got_addr[i]), int(exp.y_addr[i]))
    return n, found + ([first] if first is not None else []), int(bad_beat.sum())


class Scoreboard:
    """Expected results per job and in-order comparison of received ``y`` payload words."""

    def __init__(self, config: ArrayConfig, layout: TbLayout):
        self.config = config
        self.layout = layout
        self.checked = 0
        self.mismatches: list[Mismatch] = []

    def expect(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> Expected:
        """Beats of the job and its golden ``y`` beats (:func:`expect`)."""
        return expect(x, w, bias, self.config)

    def check(self, job: str, exp: Expected, payloads: list[int], complete: bool) -> int:
        """Compare received payload words with the expectation; returns the beats checked.

        ``complete`` False (a job cut by reset) checks the received beats as a prefix.
        Records the first mismatch (or a count mismatch) in :attr:`mismatches`.
        """
        cfg = self.config
        fields = [self.layout.payload(p) for p in payloads]
        got = {"y_data": unpack_lanes([f["y_data"] for f in fields], cfg.cols, cfg.out_bits),
               "y_addr": np.array([f["y_addr"] for f in fields], dtype=np.int64)}
        for name in ("y_pe_ovf", "y_acc_ovf"):
            got[name] = unpack_lanes([f[name] for f in fields], cfg.cols, 1, signed=False)
        n, found, _ = compare(job, exp, got, cfg.cols, complete)
        self.mismatches += found
        self.checked += n
        return n
