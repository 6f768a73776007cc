"""Scenarios: seeded lists of jobs (GEMMs run from reset) with their stimulus and coverage goals.

A job fixes its operands, how the sources behave (canonical stimulus, or random gaps and ``y``
back-pressure) and whether a reset hits it with beats in flight. Every scenario is a pure
function of the configuration and the seed, so a failure reruns exactly from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accel.config import ArrayConfig
from sim.tb.streams import Stimulus

__all__ = ["Job", "SCENARIOS", "make_jobs", "reachable_bins", "save_replay", "replay_job",
           "REPLAY_FILES"]

#: Files of a replay folder: the GEMM's operands (.npy) and its stimulus.
REPLAY_FILES = {"x": "x.npy", "w": "w.npy", "bias": "bias.npy", "stimulus": "stimulus.npz"}


@dataclass
class Job:
    """One GEMM run from reset.

    Attributes
    ----------
    name : str
        Short label (scenario and index), printed in failures.
    x, w, bias : int arrays
        Operands ``x[T, K]``, ``w[K, O]``, ``bias[O]`` or None.
    canonical : bool
        Canonical stimulus of SPEC section 6 (no gaps, ``y_ready`` = 1): its cycles are measured
        and every ``y`` beat's latency is checked against the manifest.
    gap_prob, max_gap : float, int
        Probability that a source pauses before a beat, and the longest pause (edges).
    stall_prob, max_stall : float, int
        Probability that ``y_ready`` drops at an edge, and the longest drop (edges).
    long_stall : bool
        Every ``y_ready`` drop lasts until the output FIFO is full and the credits stop ``x``
        (at most 24 times its depth ``latency + 1``).
    reset_at : int or None
        Assert reset at this edge with beats in flight; the job is abandoned (its ``y`` beats
        received so far are checked as a prefix of the expected ones).
    targets : set of str
        Coverage bins this job is built to hit (the run fails if one stays empty).
    stimulus : sim.tb.streams.Stimulus or None
        Gaps and ``y_ready`` fixed in advance (a replayed job); overrides the probabilities.
    """

    name: str
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray | None
    canonical: bool = True
    gap_prob: float = 0.0
    max_gap: int = 0
    stall_prob: float = 0.0
    max_stall: int = 0
    long_stall: bool = False
    reset_at: int | None = None
    targets: set[str] = field(default_factory=set)
    stimulus: Stimulus | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, K, O)."""
        return self.x.shape[0], self.x.shape[1], self.w.shape[1]


def _rand_ops(rng: np.random.Generator, cfg: ArrayConfig, t: int, k: int, o: int,
              bias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x = rng.integers(cfg.lane_range[0], cfg.lane_range[1] + 1, size=(t, k))
    w = rng.integers(cfg.weight_range[0], cfg.weight_range[1] + 1, size=(k, o))
    b = None
    if bias:
        lo, hi = cfg.out_range
        span = min(hi, 1 << (cfg.product_bits + 2))   # mostly in-range sums, rails elsewhere
        b = rng.integers(-span - 1, span + 1, size=o).clip(lo, hi)
    return x, w, b


def _multi_shape(rng: np.random.Generator, cfg: ArrayConfig, tmax: int) -> tuple[int, int, int]:
    """A small multi-fold shape: K > R and O > C, not multiples of R or C where possible."""
    k = cfg.rows + 1 + int(rng.integers(0, cfg.rows))
    o = cfg.cols + 1 + int(rng.integers(0, cfg.cols))
    t = int(rng.integers(2, tmax + 1))
    return t, k, o


def _t_max(cfg: ArrayConfig) -> int:
    """Vector count that spans two chunks when acc_depth is small, else a short burst."""
    return min(cfg.acc_depth + 3, 24) if cfg.acc_depth <= 16 else 12


def _row_with_sum(target: int, lanes: int, cfg: ArrayConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Non-negative ``x`` and ``w`` of one sign, ``lanes`` rows, with dot product exactly ``target``.

    Lanes are filled at the largest product while more than one product is left; the last two
    lanes are found by a short search (``x_a * w_max + x_b * w_b``). None when no split is found.
    """
    xmax = cfg.lane_range[1]
    sign = 1 if target >= 0 else -1
    wmag = cfg.weight_range[1] if target >= 0 else -cfg.weight_range[0]
    x, w = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    rem, i = abs(target), 0
    while rem > xmax * wmag and i < lanes - 2:
        x[i], w[i] = xmax, sign * wmag
        rem -= xmax * wmag
        i += 1
    divisors = np.arange(1, xmax + 1)
    top = min(xmax, rem // wmag)
    for xa in range(top, max(-1, top - 512), -1):
        r = rem - xa * wmag
        if r == 0:
            x[i], w[i] = xa, sign * wmag
            return x, w
        if i + 1 < lanes:
            ok = np.flatnonzero((r % divisors == 0) & (r // divisors <= wmag))
            if ok.size:
                xb = int(divisors[ok[0]])
                x[i], w[i] = xa, sign * wmag
                x[i + 1], w[i + 1] = xb, sign * (r // xb)
                return x, w
    return None


def reachable_bins(cfg: ArrayConfig) -> set[str]:
    """Overflow bins that some operands can reach on this configuration (mode and rail)."""
    xlo, xhi = cfg.lane_range
    wlo, whi = cfg.weight_range
    prods = [a * b for a in (xlo, xhi) for b in (wlo, whi)]
    plo, phi = cfg.pe_range
    bins = {f"acc_ovf_high_{cfg.overflow}", f"acc_ovf_low_{cfg.overflow}"}
    if cfg.rows * max(prods) > phi:
        bins.add(f"pe_ovf_high_{cfg.overflow}")
    if cfg.rows * min(prods) < plo:
        bins.add(f"pe_ovf_low_{cfg.overflow}")
    return bins


def _extreme_job(rng: np.random.Generator, cfg: ArrayConfig, name: str) -> Job:
    """Operands at the rails: extreme products, all-ones codes, sums one past each rail."""
    r, c = cfg.rows, cfg.cols
    k, o = 2 * r + (1 if r > 1 else 0), max(3, c + 1)
    xlo, xhi = cfg.lane_range
    wlo, whi = cfg.weight_range
    rows = [np.full(k, xlo), np.full(k, xhi), np.full(k, -1 if cfg.act_signed else xhi),
            rng.choice([xlo, xhi], size=k)]
    cols = [np.full(k, wlo), np.full(k, whi), np.full(k, -1), rng.choice([wlo, whi], size=k)]
    x = np.array(rows + [rng.integers(xlo, xhi + 1, size=k) for _ in range(2)])
    w = np.stack([cols[i % len(cols)] for i in range(o)], axis=1)
    plo, phi = cfg.pe_range
    # just-overflowing fold sums (fold 0): rail + 1 on column 0, rail - 1 on column 1, and the
    # rail itself (no event) on column 2, each driven by its own vector
    extra_x = []
    for col, target in ((0, phi + 1), (1, plo - 1), (2, phi)):
        made = _row_with_sum(target, min(r, k), cfg)
        if made is not None:
            xr = np.zeros(k, np.int64)
            xr[:min(r, k)], w[:min(r, k), col] = made
            extra_x.append(xr)
    x = np.vstack([x] + extra_x) if extra_x else x
    # bias at the rail the column's sums push towards: one more step crosses it
    lo, hi = cfg.out_range
    bias = np.where(w.sum(axis=0) > 0, hi, lo)
    return Job(name, x, w, bias, targets=reachable_bins(cfg))


def _scenario_random(rng: np.random.Generator, cfg: ArrayConfig) -> list[Job]:
    jobs = []
    for i in range(2):
        t, k, o = _multi_shape(rng, cfg, _t_max(cfg))
        jobs.append(Job(f"random{i}", *_rand_ops(rng, cfg, t, k, o, bias=bool(i % 2)),
                        targets={"multi_fold", "multi_group"}))
    t, k, o = 1, 2 * cfg.rows + 1, cfg.cols
    jobs.append(Job("random_t1", *_rand_ops(rng, cfg, t, k, o, bias=True),
                    targets={"same_addr_consecutive"}))
    return jobs


def _scenario_canonical(rng: np.random.Generator, cfg: ArrayConfig) -> list[Job]:
    """Multi-fold GEMMs under the canonical stimulus: measured cycles for the cycle model."""
    jobs = []
    t = cfg.acc_depth + 2 if cfg.acc_depth <= 16 else 10
    shapes = [(t, 2 * cfg.rows + 1, cfg.cols + 1), (3, 3 * cfg.rows, 2 * cfg.cols)]
    for i, (t, k, o) in enumerate(shapes):
        targets = {"multi_fold", "multi_group", "x_first_wait"}
        if k % cfg.rows:
            targets.add("padded_last_fold")
        if t > cfg.acc_depth:
            targets.add("t_gt_acc_depth")
        jobs.append(Job(f"canonical{i}", *_rand_ops(rng, cfg, t, k, o, bias=True),
                        targets=targets))
    return jobs


def _scenario_stall(rng: np.random.Generator, cfg: ArrayConfig) -> list[Job]:
    """Random gaps on every source and long ``y`` back-pressure: the FIFO fills, credits stop x."""
    t, k, o = _multi_shape(rng, cfg, _t_max(cfg))
    t = max(t, 8)
    jobs = [Job("stall_gaps", *_rand_ops(rng, cfg, t, k, o, bias=True), canonical=False,
                gap_prob=0.3, max_gap=4, stall_prob=0.2, max_stall=6,
                targets={"w_wait_complete_shadow"})]
    t = 2 * (cfg.rows + cfg.cols) + 8
    jobs.append(Job("stall_backpressure", *_rand_ops(rng, cfg, t, k, o, bias=True),
                    canonical=False, stall_prob=0.05, long_stall=True,
                    targets={"y_backpressure_fifo_full"}))
    return jobs


def _scenario_extreme(rng: np.random.Generator, cfg: ArrayConfig) -> list[Job]:
    return [_extreme_job(rng, cfg, "extreme")]


def _scenario_reset(rng: np.random.Generator, cfg: ArrayConfig) -> list[Job]:
    """A reset with beats in flight, then a fresh job that must be correct."""
    t, k, o = _multi_shape(rng, cfg, _t_max(cfg))
    first = Job("reset_victim", *_rand_ops(rng, cfg, max(t, 6), k, o, bias=True),
                reset_at=int(rng.integers(cfg.rows + 4, cfg.rows + 12)),
                targets={"reset_in_flight"})
    t, k, o = _multi_shape(rng, cfg, _t_max(cfg))
    return [first, Job("reset_fresh", *_rand_ops(rng, cfg, t, k, o, bias=True), canonical=False,
                       gap_prob=0.2, max_gap=2, stall_prob=0.1, max_stall=3)]


SCENARIOS = {
    "canonical": _scenario_canonical,
    "random": _scenario_random,
    "stall": _scenario_stall,
    "extreme": _scenario_extreme,
    "reset": _scenario_reset,
}


def save_replay(folder: object, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                stimulus: Stimulus | None) -> Path:
    """Write one GEMM job (operands as int64 .npy, the stimulus) for :func:`replay_job`."""
    out = Path(str(folder))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / REPLAY_FILES["x"], np.asarray(x, np.int64))
    np.save(out / REPLAY_FILES["w"], np.asarray(w, np.int64))
    (out / REPLAY_FILES["bias"]).unlink(missing_ok=True)
    if bias is not None:
        np.save(out / REPLAY_FILES["bias"], np.asarray(bias, np.int64))
    (stimulus or Stimulus()).save(out / REPLAY_FILES["stimulus"])
    return out


def replay_job(folder: object) -> Job:
    """The job saved in ``folder`` by :func:`save_replay`, with its stimulus edge for edge."""
    d = Path(str(folder))
    for key in ("x", "w", "stimulus"):
        if not (d / REPLAY_FILES[key]).is_file():
            raise ValueError(f"replay folder {d} has no {REPLAY_FILES[key]}; it must hold "
                             f"{', '.join(REPLAY_FILES.values())} (bias optional), as written by "
                             "accel cosim for a failing GEMM")
    bias = np.load(d / REPLAY_FILES["bias"]) if (d / REPLAY_FILES["bias"]).is_file() else None
    stim = Stimulus.load(d / REPLAY_FILES["stimulus"])
    return Job("replay", np.load(d / REPLAY_FILES["x"]), np.load(d / REPLAY_FILES["w"]), bias,
               canonical=stim.canonical, stimulus=stim)


def make_jobs(cfg: ArrayConfig, scenario: str, seed: int,
              shapes: list[tuple[int, int, int]] | None = None, replay: str | None = None
              ) -> list[Job]:
    """The jobs of ``scenario``: a name of :data:`SCENARIOS`, ``"all"`` for every one,
    ``"cycles"``: one canonical-stimulus job (random operands and bias) per ``(T, K, O)`` shape,
    or ``"replay"``: the one job saved in the folder ``replay`` (:func:`replay_job`)."""
    if scenario == "replay":
        if not replay:
            raise ValueError("scenario 'replay' needs the folder of a saved GEMM job")
        return [replay_job(replay)]
    rng = np.random.default_rng(seed)
    if scenario == "cycles":
        if not shapes:
            raise ValueError("scenario 'cycles' needs GEMM shapes (T, K, O)")
        return [Job(f"cycles{i}", *_rand_ops(rng, cfg, int(t), int(k), int(o), bias=True))
                for i, (t, k, o) in enumerate(shapes)]
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    for n in names:
        if n not in SCENARIOS:
            raise ValueError(f"unknown scenario {n!r}; valid scenarios are "
                             f"{', '.join(['all', 'cycles', 'replay', *SCENARIOS])}")
    return [job for n in names for job in SCENARIOS[n](rng, cfg)]
