"""The ``accel`` command line: one small module per verb, listed once in :data:`VERBS`.

Each verb module defines a :class:`accel.cli.base.Verb` subclass. Modules are imported lazily so
that ``accel gemm`` never pays for importing Amaranth or cocotb.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from accel.cli.base import Verb

#: (verb name, module path, class name) — the one list of commands.
VERBS: list[tuple[str, str, str]] = [
    ("demo", "accel.cli.demo", "Demo"),
    ("gemm", "accel.cli.gemm", "Gemm"),
    ("generate", "accel.cli.generate", "Generate"),
    ("verify", "accel.cli.verify", "Verify"),
    ("simulate", "accel.cli.simulate", "Simulate"),
    ("quantize", "accel.cli.quantize", "Quantize"),
    ("synth", "accel.cli.synth", "Synth"),
    ("energy", "accel.cli.energy", "Energy"),
    ("sweep", "accel.cli.sweep", "Sweep"),
    ("report", "accel.cli.report", "Report"),
]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Verb]]:
    parser = argparse.ArgumentParser(
        prog="accel",
        description="accel-hw: design, simulate, verify and measure systolic arrays with narrow "
                    "accumulators.",
        epilog="Run 'accel VERB --help' for a verb's options and examples.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs: dict[str, Verb] = {}
    for name, module, cls in VERBS:
        verb: Verb = getattr(importlib.import_module(module), cls)()
        p = sub.add_parser(name, help=verb.help, description=verb.help, epilog=verb.examples,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        verb.add_arguments(p)
        verbs[name] = verb
    return parser, verbs


def main(argv: list[str] | None = None) -> int:
    parser, verbs = build_parser()
    args = parser.parse_args(argv)
    from accel.config import ConfigError
    try:
        return verbs[args.verb].run(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"accel {args.verb}: error: {e}", file=sys.stderr)
        return 2
