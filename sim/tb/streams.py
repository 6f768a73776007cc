"""Stream roles: a source per input stream, the ``y`` sink, and the valid/ready protocol checker.

All three work edge by edge on plain ints: the testbench's single per-edge coroutine asks each
source for its word (payload and ``valid`` already placed at their ``tb_in`` bits), then tells
it whether that beat transferred. Nothing here awaits a trigger.

A :class:`Stimulus` fixes a whole job's source and sink behaviour in advance (the gaps before
every beat, ``y_ready`` on every edge), drawn from a seed by :func:`random_stimulus`; the
compiled co-simulation harness (:mod:`sim.cosim`) follows the same arrays, so a job replays
edge for edge under cocotb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Source", "Sink", "ProtocolChecker", "ProtocolError", "Stimulus", "random_stimulus",
           "STREAMS"]

#: The input streams, in the order a stimulus lists their gaps.
STREAMS = ("w", "b", "x")


class ProtocolError(AssertionError):
    """A valid/ready rule of SPEC section 3 was broken (by the design or by a source)."""


class Source:
    """Presents beats in order; after each transfer, an optional random gap (valid low).

    Parameters
    ----------
    name : str
        Stream name (``w``, ``b``, ``x``).
    words : list of int
        One ``tb_in`` contribution per beat, ``valid`` bit included.
    gaps : int array or None
        ``gaps[i]``: edges with valid low before beat i is presented (None: canonical, no gaps;
        the first beat is presented on the first edge).
    """

    def __init__(self, name: str, words: list[int], gaps: np.ndarray | None = None):
        self.name = name
        self.words = words
        self.gaps = gaps
        self.index = 0
        self.wait = int(gaps[0]) if gaps is not None and len(words) else 0
        self.valid = bool(words) and self.wait == 0

    @property
    def word(self) -> int:
        """This edge's contribution to ``tb_in`` (0 while idle)."""
        return self.words[self.index] if self.valid else 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.words)

    def advance(self, fire: bool) -> None:
        """Move to the next edge, given whether the presented beat transferred on this one."""
        if fire:
            self.index += 1
            self.wait = int(self.gaps[self.index]) if self.gaps is not None and not self.done else 0
        elif self.wait:
            self.wait -= 1
        self.valid = not self.done and self.wait == 0


class Sink:
    """Drives ``y_ready``: always 1, random drops of ``min_len .. max_len`` edges, or a fixed
    ``pattern`` (``y_ready`` on edge e is ``pattern[e]``, 1 once the pattern ends)."""

    def __init__(self, rng: np.random.Generator | None = None, prob: float = 0.0,
                 min_len: int = 1, max_len: int = 1, pattern: np.ndarray | None = None):
        self.rng = rng
        self.prob = prob
        self.min_len, self.max_len = min_len, max(min_len, max_len)
        self.left = 0
        self.pattern = None if pattern is None else np.asarray(pattern, dtype=bool)
        self.edge = 0
        self.ready = True if self.pattern is None or not self.pattern.size else bool(self.pattern[0])

    def release(self, after: int) -> None:
        """End the current drop at most ``after`` edges from now."""
        self.left = min(self.left, after)

    def advance(self) -> None:
        """Choose ``y_ready`` for the next edge."""
        if self.pattern is not None:
            self.edge += 1
            self.ready = self.edge >= self.pattern.size or bool(self.pattern[self.edge])
            return
        if self.rng is None or self.prob == 0.0:
            return
        if self.left:
            self.left -= 1
            self.ready = False
        elif self.rng.random() < self.prob:
            self.left = int(self.rng.integers(self.min_len, self.max_len + 1)) - 1
            self.ready = False
        else:
            self.ready = True


class ProtocolChecker:
    """AXI-Stream rules on one stream, checked at every edge.

    Once valid is high it stays high with a stable payload until the transfer; no transfer
    while reset is sampled high nor on the first edge after it.
    """

    def __init__(self, name: str):
        self.name = name
        self.pending: int | None = None   # payload of a beat presented and not yet transferred

    def edge(self, e: int, valid: bool, ready: bool, payload: int, reset: bool, after_reset: bool
             ) -> bool:
        """Check edge ``e``; returns whether a beat transferred."""
        if reset or after_reset:
            if valid and ready:
                when = "during reset" if reset else "on the first edge after reset"
                raise ProtocolError(f"{self.name}: a beat transferred {when} (edge {e})")
            self.pending = payload if (valid and not reset) else None
            return False
        if self.pending is not None:
            if not valid:
                raise ProtocolError(f"{self.name}_valid dropped at edge {e} before the transfer")
            if payload != self.pending:
                raise ProtocolError(f"{self.name} payload changed at edge {e} while valid and "
                                    f"waiting for ready ({self.pending:#x} -> {payload:#x})")
        fire = valid and ready
        self.pending = payload if (valid and not fire) else None
        return fire


@dataclass(frozen=True)
class Stimulus:
    """The source gaps and ``y`` back-pressure of one job, fixed in advance.

    Attributes
    ----------
    gaps : dict of str to uint32 array, or None
        ``gaps[s][i]``: edges with ``s_valid`` low before beat i of stream s (``w``, ``b``,
        ``x``); None: no gaps.
    y_ready : bool array or None
        ``y_ready`` on edge e (edge 0 the first after reset); 1 after the pattern ends. None:
        always 1.
    seed : int
        The seed it was drawn from (:func:`random_stimulus`).
    """

    gaps: dict[str, np.ndarray] | None = None
    y_ready: np.ndarray | None = None
    seed: int = 0

    @property
    def canonical(self) -> bool:
        """No gaps and ``y_ready`` = 1: the canonical stimulus of SPEC section 6."""
        return (self.gaps is None or not any(g.any() for g in self.gaps.values())) and \
            (self.y_ready is None or bool(self.y_ready.all()))

    @property
    def max_gap(self) -> int:
        """The longest gap (edges)."""
        return max((int(g.max(initial=0)) for g in (self.gaps or {}).values()), default=0)

    @property
    def max_stall(self) -> int:
        """The longest run of ``y_ready`` = 0 (edges)."""
        if self.y_ready is None or self.y_ready.all():
            return 0
        low = np.concatenate([[0], (~self.y_ready).astype(np.int8), [0]])
        d = np.flatnonzero(np.diff(low))
        return int((d[1::2] - d[::2]).max())

    def save(self, path: object) -> None:
        """Write to an ``.npz`` file (:meth:`load` reads it)."""
        arrays = {f"gaps_{s}": g for s, g in (self.gaps or {}).items()}
        if self.y_ready is not None:
            arrays["y_ready"] = self.y_ready
        np.savez(path, seed=np.int64(self.seed), **arrays)

    @classmethod
    def load(cls, path: object) -> "Stimulus":
        with np.load(path) as f:
            gaps = {s: f[f"gaps_{s}"] for s in STREAMS if f"gaps_{s}" in f} or None
            return cls(gaps, f["y_ready"] if "y_ready" in f else None, int(f["seed"]))


def random_stimulus(counts: dict[str, int], edges: int, seed: int, gap_prob: float = 0.0,
                    max_gap: int = 0, stall_prob: float = 0.0, max_stall: int = 0) -> Stimulus:
    """Random gaps and ``y`` drops for a job with ``counts[s]`` beats on each input stream.

    Before each beat, with probability ``gap_prob``, a gap of 1 .. ``max_gap`` edges; on each of
    the first ``edges`` edges, with probability ``stall_prob``, ``y_ready`` drops for
    1 .. ``max_stall`` edges (drops that overlap merge). Zero probabilities give the canonical
    stimulus. Deterministic in ``seed``.
    """
    for name, p in (("gap_prob", gap_prob), ("stall_prob", stall_prob)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1), not {p}")
    for name, v, p in (("max_gap", max_gap, gap_prob), ("max_stall", max_stall, stall_prob)):
        if p > 0 and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name} must be a positive number of edges when its probability "
                             f"is above 0, not {v!r}")
    rng = np.random.default_rng(seed)
    gaps = None
    if gap_prob > 0:
        gaps = {}
        for s in STREAMS:
            n = int(counts[s])
            g = rng.integers(1, max_gap + 1, size=n)
            gaps[s] = np.where(rng.random(n) < gap_prob, g, 0).astype(np.uint32)
    y_ready = None
    if stall_prob > 0:
        e = np.arange(edges)
        ends = np.where(rng.random(edges) < stall_prob, e + rng.integers(1, max_stall + 1, edges), 0)
        y_ready = np.maximum.accumulate(ends) <= e if edges else np.ones(0, dtype=bool)
    return Stimulus(gaps, y_ready, seed)
