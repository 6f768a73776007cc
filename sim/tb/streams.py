"""Stream roles: a source per input stream, the ``y`` sink, and the valid/ready protocol checker.

All three work edge by edge on plain ints: the testbench's single per-edge coroutine asks each
source for its word (payload and ``valid`` already placed at their ``tb_in`` bits), then tells
it whether that beat transferred. Nothing here awaits a trigger.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Source", "Sink", "ProtocolChecker", "ProtocolError"]


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
    """Drives ``y_ready``: always 1, or random drops of ``min_len .. max_len`` edges."""

    def __init__(self, rng: np.random.Generator | None = None, prob: float = 0.0,
                 min_len: int = 1, max_len: int = 1):
        self.rng = rng
        self.prob = prob
        self.min_len, self.max_len = min_len, max(min_len, max_len)
        self.left = 0
        self.ready = True

    def release(self, after: int) -> None:
        """End the current drop at most ``after`` edges from now."""
        self.left = min(self.left, after)

    def advance(self) -> None:
        """Choose ``y_ready`` for the next edge."""
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
