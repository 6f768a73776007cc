"""The error of a sweep definition or a results store (a ``ValueError``: the CLI exits with 2)."""

__all__ = ["SweepError"]


class SweepError(ValueError):
    """A malformed sweep, an unknown model or quantizer, a missing checkpoint, or a bad store.

    Raised before any point runs; the message names the file or flag, the entry and what is
    valid.
    """
