"""Base class of a CLI verb and the helpers every verb shares: output paths and JSON output.

Output paths are declared with :func:`output_path` (a normal ``add_argument`` that also marks
the argument as a file or a folder to be written); :func:`accel.cli.main` checks every declared
output of the chosen verb with :func:`check_output` before the verb's ``run`` starts, so a bad
path is a one-line error (exit 2) before any work, never a traceback after it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["Verb", "OutputPathError", "check_output", "output_path", "check_outputs",
           "add_json_argument", "emit", "MIN_FREE_BYTES"]

#: Free bytes an output's file system must have before work starts.
MIN_FREE_BYTES = 1 << 20


class Verb:
    """One ``accel`` subcommand: a name's help line, examples, its arguments and ``run``."""

    help: str = ""
    examples: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int | None:
        raise NotImplementedError


class OutputPathError(ValueError):
    """An output path that cannot be written (the CLI exits with status 2)."""


def _reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on its device"
    if e.errno == errno.EROFS:
        return "it is on a read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or str(e)


def check_output(path: str | os.PathLike[str], flag: str, kind: str = "file",
                 min_free: int = MIN_FREE_BYTES) -> Path:
    """Check, before any work, that ``path`` can be written; return it as an absolute path.

    Parameters
    ----------
    path : path
        Relative paths are taken from the current folder.
    flag : str
        The option that gave it (``--json``), named in the error.
    kind : {"file", "dir"}
        A file to write or a folder to write into; missing folders are not created here (the
        verb creates them when it writes), their nearest existing ancestor is probed.
    min_free : int
        Bytes the file system must have free.

    Raises
    ------
    OutputPathError
        One sentence: which flag, which path, what is wrong (a file where a folder is needed or
        the reverse, permission denied, a read-only file system, no space left).
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    p = Path(path).expanduser().absolute()
    folder = p if kind == "dir" else p.parent
    if kind == "file" and p.is_dir():
        raise OutputPathError(f"{flag} {path}: is a folder; give a file path")
    # the nearest existing ancestor must be a folder (a file there blocks every path below it)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        what = "the path" if probe == p else f"{probe} in the path"
        raise OutputPathError(f"{flag} {path}: {what} is a file, not a folder")
    try:                  # nothing is created: a probe file in the nearest existing folder
        if kind == "file" and p.exists():
            with open(p, "ab"):              # opening to append writes nothing
                pass
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".accel-probe-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        free = shutil.disk_usage(probe).free
    except OSError as e:
        raise OutputPathError(f"{flag} {path}: cannot write there: {_reason(e)}") from None
    if free < min_free:
        raise OutputPathError(f"{flag} {path}: no space left on its device ({free:,} bytes free, "
                              f"at least {min_free:,} needed)")
    return p


def output_path(parser: argparse.ArgumentParser | Any, *flags: str, kind: str = "file",
                stdout: bool = False, **kwargs: Any) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` for an output path, checked before work.

    ``kind`` is ``"file"`` or ``"dir"``; ``stdout`` allows ``-`` (standard output).
    """
    action = parser.add_argument(*flags, **kwargs)
    action.output_kind = kind             # read by check_outputs
    action.output_stdout = stdout
    return action


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check every argument of ``parser`` declared with :func:`output_path` that has a value."""
    for action in parser._actions:
        kind = getattr(action, "output_kind", None)
        value = getattr(args, action.dest, None)
        if kind is None or value is None or (value == "-" and action.output_stdout):
            continue
        check_output(value, "/".join(action.option_strings) or action.dest, kind)


def add_executor_arguments(parser: argparse.ArgumentParser,
                           workers_help: str) -> argparse._ArgumentGroup:
    """``--executor``, ``--workers``, ``--scheduler`` in a "how to run" group (the work runs on
    ``sim.sweep.executors.make_executor`` of them)."""
    r = parser.add_argument_group("how to run")
    r.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local worker processes or a Dask cluster (default local)")
    r.add_argument("--workers", type=int, default=2, help=workers_help)
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address for --executor dask (tcp://host:8786)")
    return r


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: machine-readable output next to the human summary ('-' for stdout)."""
    output_path(parser, "--json", metavar="PATH", stdout=True,
                help="also write the result as JSON to PATH ('-' prints JSON only)")


def emit(args: argparse.Namespace, summary: str, data: dict[str, Any]) -> None:
    """Print the human summary and write ``data`` as JSON where ``--json`` asks for it."""
    target = getattr(args, "json", None)
    text = json.dumps(data, indent=2, sort_keys=False, default=_jsonable)
    if target == "-":
        print(text)
        return
    print(summary)
    if target:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        print(f"wrote {path}", file=sys.stderr)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"cannot serialise {type(o).__name__}")
