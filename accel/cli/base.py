"""Base class of a CLI verb and the output helpers every verb shares."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


class Verb:
    """One ``accel`` subcommand: a name's help line, examples, its arguments and ``run``."""

    help: str = ""
    examples: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int | None:
        raise NotImplementedError


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: machine-readable output next to the human summary ('-' for stdout)."""
    parser.add_argument("--json", metavar="PATH",
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
