"""A text progress bar for long loops (points of a sweep), on stderr.

On a terminal it redraws one line; otherwise (logs, CI) it prints one line per step, so that a
log shows how far a killed run got.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``[#####-----] 12/40  30%  0:12 elapsed, ETA 0:28  <note>``.

    Parameters
    ----------
    total : int
        Steps expected.
    label : str
        Prefix of every line.
    stream : file, optional
        Default ``sys.stderr``.
    width : int
        Characters of the bar.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 24
                 ) -> None:
        self.total, self.label, self.width = total, label, width
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, note: str = "") -> str:
        """The current progress line (without a newline)."""
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        text = (f"{self.label}[{'#' * fill}{'-' * (self.width - fill)}] {self.done}/{self.total} "
                f"{100 * frac:3.0f}%  {_clock(elapsed)} elapsed"
                + (f", ETA {_clock(eta)}" if eta is not None and self.done < self.total else ""))
        return f"{text}  {note}" if note else text

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n`` steps and show the line (``note``: what just finished)."""
        self.done += n
        if self.tty:
            self.stream.write("\r\033[K" + self.line(note))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(self.line(note) + "\n")
        self.stream.flush()
