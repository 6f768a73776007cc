"""Progress of long work, one look for every verb: a bar over N steps, or a timed activity.

The only progress implementation of accel-hw (sweep, demo, verify, synth, simulate use it). It is
light: `rich <https://rich.readthedocs.io>`_ is imported only when a bar is first drawn on a
terminal, so ``accel --help`` stays fast.

* On a terminal, :class:`Progress` is a live rich bar on stderr: ``label ━━━━╸━━ 12/40 30 %
  0:00:12 elapsed, ETA 0:00:28, 1.20 points/s  note``; :func:`activity` a spinner with the
  elapsed time.
* Elsewhere (logs, CI, a pipe) the same fields are printed as plain lines: one per step that has a
  note (e.g. every sweep point), otherwise at most one every :data:`LOG_EVERY_S` seconds, and a
  last line at the end, so a log shows how far a killed run got.

The rate and the ETA count only the steps done in this run: ``Progress(total, done=k)`` starts a
resumed run at k of total without crediting those k steps to this run's speed.

Example::

    with Progress(n, "simulate", unit="samples") as bar:
        for batch in batches:
            ...
            bar.advance(len(batch))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Progress", "Activity", "activity", "clock", "render_table", "LOG_EVERY_S"]

#: Seconds between two plain progress lines of steps without a note.
LOG_EVERY_S = 5.0


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss`` of a duration in seconds."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(r: float) -> str:
    return f"{r:.0f}" if r >= 100 else f"{r:.1f}" if r >= 1 else f"{r:.2f}"


def _is_tty(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """A bar over ``total`` steps (points, samples, jobs) with elapsed time, ETA and rate.

    Parameters
    ----------
    total : int
        Steps of the whole job (a resumed run included).
    label : str
        What runs (``"sweep"``, ``"simulate"``), first on every line.
    unit : str
        Name of one step, plural (``"points"``, ``"samples"``), shown with the rate.
    done : int
        Steps already done before this run (e.g. points found in the results store); they count
        towards the total but not towards this run's rate or ETA.
    stream : file, optional
        Default ``sys.stderr``.
    live : bool, optional
        Force the live bar (True) or plain lines (False); default: live on a terminal.
    """

    def __init__(self, total: int, label: str = "", unit: str = "steps", done: int = 0,
                 stream: TextIO | None = None, live: bool | None = None) -> None:
        if total < 0 or done < 0 or done > total:
            raise ValueError(f"progress needs 0 <= done <= total, not done {done} of {total}")
        self.total, self.label, self.unit = total, label.strip(), unit
        self.done = self.start_done = done
        self.stream = sys.stderr if stream is None else stream
        self.live = _is_tty(self.stream) if live is None else live
        self.start = time.monotonic()
        self._last_line = -float("inf")
        self._bar: Any = None
        self._task: Any = None
        self._closed = False

    # --- numbers -----------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the bar started."""
        return time.monotonic() - self.start

    @property
    def rate(self) -> float | None:
        """Steps per second of this run (None before the first step)."""
        ran = self.done - self.start_done
        return ran / self.elapsed if ran and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at this run's rate (None before the first step or when done)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate and self.done < self.total else None

    def line(self, note: str = "") -> str:
        """The plain progress line (without a newline)."""
        pct = 100 * self.done / self.total if self.total else 100.0
        parts = [f"{self.label} {self.done}/{self.total} {self.unit} {pct:3.0f} %".strip(),
                 f"{clock(self.elapsed)} elapsed"]
        if self.eta is not None:
            parts.append(f"ETA {clock(self.eta)}")
        if self.rate is not None:
            parts.append(f"{_rate(self.rate)} {self.unit}/s")
        text = ", ".join(parts)
        return f"{text}  {note}" if note else text

    def skip(self, n: int) -> None:
        """Count ``n`` steps as done before this run (resumed work): in the total, not the rate."""
        self.done = min(self.total, self.done + n)
        self.start_done = self.done
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    # --- drawing -----------------------------------------------------------------------------
    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream, force_terminal=True)
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[note]}", markup=False),
            console=console, transient=False, speed_estimate_period=600)
        self._task = self._bar.add_task(self.label, total=self.total, completed=self.done,
                                        rate="", note="")
        self._bar.start()

    def advance(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more steps done; ``note`` says what just finished (shown on the line)."""
        self.done = min(self.total, self.done + n)
        if self.live:
            if self._bar is None:
                self._start_live()
            rate = self.rate
            self._bar.update(self._task, completed=self.done, note=note[:60],
                             rate="" if rate is None else f"{_rate(rate)} {self.unit}/s")
            if self.done >= self.total:
                self.close()
            return
        now = time.monotonic()
        if note or self.done >= self.total or now - self._last_line >= LOG_EVERY_S:
            self._last_line = now
            self.stream.write(self.line(note) + "\n")
            self.stream.flush()

    def print(self, text: str) -> None:
        """A line above the bar (a failure, a warning), without breaking it."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Stop drawing (idempotent); the last state stays on screen."""
        if self._bar is not None and not self._closed:
            self._bar.stop()
        self._closed = True

    def __enter__(self) -> "Progress":
        if self.live and self._bar is None:
            self._start_live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Activity:
    """The handle :func:`activity` yields: :meth:`update` says which step of the work runs now."""

    def __init__(self, text: str, stream: TextIO, bar: Any = None, task: Any = None) -> None:
        self.text, self.stream, self._bar, self._task = text, stream, bar, task

    def update(self, step: str) -> None:
        """Show ``step`` (e.g. ``"array: yosys synth"``) as the current step."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.text}: {step}")
        else:
            self.stream.write(f"{self.text}: {step}\n")
            self.stream.flush()


@contextmanager
def activity(text: str, stream: TextIO | None = None, live: bool | None = None
             ) -> Iterator[Activity]:
    """Work of unknown length (a simulator build, a synthesis run): a spinner with the elapsed
    time on a terminal; a start line and a ``done in N s`` line elsewhere. The yielded
    :class:`Activity` shows the current step.

    Example::

        with activity("verilator build of sa4x4"):
            build(...)
        with activity("synth") as act:
            synthesize_blocks(..., progress=act.update)
    """
    stream = sys.stderr if stream is None else stream
    live = _is_tty(stream) if live is None else live
    start = time.monotonic()
    if live:
        from rich.console import Console
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=stream, force_terminal=True)
        with RichProgress(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
            yield Activity(text, stream, bar, bar.add_task(text, total=None))
        console.print(f"{text}: done in {time.monotonic() - start:.1f} s", markup=False,
                      highlight=False)
        return
    stream.write(f"{text} ...\n")
    stream.flush()
    yield Activity(text, stream)
    stream.write(f"{text}: done in {time.monotonic() - start:.1f} s\n")
    stream.flush()


def render_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> str:
    """A text table (rich, plain ASCII-free box lines, right-aligned numbers) as a string, for
    human summaries; JSON output never goes through it."""
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=None, pad_edge=False, header_style="bold")
    numeric = [all(isinstance(r[i], (int, float)) or r[i] in (None, "") for r in rows)
               for i in range(len(headers))]
    for h, num in zip(headers, numeric):
        table.add_column(h, justify="right" if num else "left")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None, force_terminal=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())
