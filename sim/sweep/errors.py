"""The error of a sweep definition or a results store (a ``ValueError``: the CLI exits with 2)."""

from typing import Any

__all__ = ["SweepError", "check_table"]


class SweepError(ValueError):
    """A malformed sweep, an unknown model or quantizer, a missing checkpoint, or a bad store.

    Raised before any point runs; the message names the file or flag, the entry and what is
    valid.
    """


def check_table(d: Any, valid: Any, where: str, what: str, kind: str = "key") -> dict[str, Any]:
    """``d`` itself when it is a table (dict) whose keys are all in ``valid``; else a
    :class:`SweepError` naming ``where``, the unknown ``kind`` entries and the valid ones."""
    if not isinstance(d, dict):
        raise SweepError(f"{where} must be {what}, not {d!r}")
    bad = sorted(set(d) - set(valid))
    if bad:
        raise SweepError(f"{where}: unknown {kind}(s) {', '.join(bad)}; valid "
                         f"{kind.split()[-1]}s are {', '.join(valid)}")
    return d
