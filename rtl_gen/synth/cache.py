"""On-disk cache of synthesis reports, keyed by configuration hash, design, flow and tool versions.

Layout: ``<root>/<group>/<entry>/`` where ``group`` is the configuration hash (or ``verilog`` for
designs given as text) and ``entry`` is ``<block>-<target>-<key>``; an entry holds ``report.json``
and the raw ``stat.json`` of Yosys. An entry is written in a temporary folder next to its final
place and renamed into place in one step, so a reader sees a complete entry or none, even when a
run is interrupted or two runs race.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "DEFAULT_CACHE_DIR", "default_cache_dir", "cache_key", "SynthCache"]

#: Environment variable that overrides the default cache folder.
CACHE_ENV = "ACCEL_SYNTH_CACHE"
#: Default cache folder.
DEFAULT_CACHE_DIR = "~/.cache/accel-hw/synth"

REPORT = "report.json"


def default_cache_dir() -> Path:
    """``$ACCEL_SYNTH_CACHE`` if set, else ``~/.cache/accel-hw/synth``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cache_key(fields: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over the JSON of ``fields`` (keys sorted)."""
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SynthCache:
    """A folder of cached synthesis results.

    Parameters
    ----------
    root : str or Path
        The cache folder; created on the first store.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, group: str, entry: str) -> Path:
        """Folder of one entry (which may not exist)."""
        return self.root / group / entry

    def load(self, group: str, entry: str) -> dict[str, Any] | None:
        """The stored report of an entry, or None when there is none (or it is unreadable)."""
        try:
            return json.loads((self.path(group, entry) / REPORT).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def store(self, group: str, entry: str, report: dict[str, Any],
              files: dict[str, str] | None = None) -> Path:
        """Write an entry atomically: ``report.json`` plus ``files`` (name -> text).

        The entry is assembled in a temporary folder and renamed into place (:meth:`staging`),
        so the cache never holds a partial entry. If another run stored the same entry
        meanwhile, that one is kept.
        """
        with self.staging(group, entry) as tmp:
            for name, text in (files or {}).items():
                (tmp / name).write_text(text)
            (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        return self.path(group, entry)

    @contextmanager
    def staging(self, group: str, entry: str) -> Iterator[Path]:
        """A temporary folder next to the entry's place, renamed into place when the block
        finishes without error and removed otherwise (also for built tools, not only reports).

        The entry must end up holding ``report.json``: a folder without one counts as absent.
        """
        final = self.path(group, entry)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry}-", dir=final.parent))
        try:
            yield tmp
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / REPORT).is_file():
                    raise
                shutil.rmtree(tmp)  # another run stored the same entry first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
