"""The ``accel`` command line: one small module per verb, listed once in :data:`VERBS`.

Each verb module defines a :class:`accel.cli.base.Verb` subclass and imports nothing heavy at
module level. Only the chosen verb's arguments are declared, so ``accel --help`` and ``accel gemm``
never pay for importing torch, Amaranth or cocotb (``tests/test_cli_light.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from accel.cli.base import Verb, check_outputs

#: (verb name, module path, class name) — the one list of commands.
VERBS: list[tuple[str, str, str]] = [
    ("demo", "accel.cli.demo", "Demo"),
    ("gemm", "accel.cli.gemm", "Gemm"),
    ("generate", "accel.cli.generate", "Generate"),
    ("verify", "accel.cli.verify", "Verify"),
    ("prove", "accel.cli.prove", "Prove"),
    ("simulate", "accel.cli.simulate", "Simulate"),
    ("cosim", "accel.cli.cosim", "Cosim"),
    ("certify", "accel.cli.certify", "Certify"),
    ("quantize", "accel.cli.quantize", "Quantize"),
    ("synth", "accel.cli.synth", "Synth"),
    ("energy", "accel.cli.energy", "Energy"),
    ("sweep", "accel.cli.sweep", "Sweep"),
    ("report", "accel.cli.report", "Report"),
]


def _chosen(argv: list[str]) -> str | None:
    """The verb named on the command line (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict[str, Verb]]:
    """The parser for ``argv``: every verb with its help line, the chosen one with its arguments."""
    parser = argparse.ArgumentParser(
        prog="accel",
        description="accel-hw: design, simulate, verify and measure systolic arrays with narrow "
                    "accumulators.",
        epilog="Run 'accel VERB --help' for a verb's options and examples.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    chosen = _chosen(argv)
    verbs: dict[str, Verb] = {}
    for name, module, cls in VERBS:
        verb: Verb = getattr(importlib.import_module(module), cls)()
        p = sub.add_parser(name, help=verb.help, description=verb.help, epilog=verb.examples,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == chosen:
            verb.add_arguments(p)
        verbs[name] = verb
    return parser, verbs


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same clean-up runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Interrupted("SIGTERM")


#: Exit status of a run stopped by Ctrl-C (SIGINT) or SIGTERM: 128 + the signal number.
EXIT_INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}


def _subparser(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[verb]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, verbs = build_parser(argv)
    args = parser.parse_args(argv)
    from accel.config import ConfigError
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:                 # not the main thread: leave SIGTERM alone
        previous = None
    try:
        check_outputs(_subparser(parser, args.verb), args)   # before any work
        return verbs[args.verb].run(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"accel {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:            # `accel ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as e:     # Ctrl-C or SIGTERM outside a verb's own handling
        which = str(e) or "SIGINT"
        print(f"accel {args.verb}: interrupted ({which})", file=sys.stderr)
        return EXIT_INTERRUPTED.get(which, 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
