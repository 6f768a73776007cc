"""The command line stays light: help and ``accel gemm`` never import torch, Amaranth or cocotb."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accel.cli import VERBS, build_parser

HEAVY = ("torch", "amaranth", "cocotb")
PROBE = """
import sys
from accel.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("HEAVY", [m for m in {heavy!r} if m in sys.modules])
"""


def heavy_modules(argv: list[str]) -> list[str]:
    """Heavy packages imported by ``accel ARGV`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("HEAVY"))
    return eval(line[len("HEAVY"):])


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name, _, _ in VERBS],
                         ids=lambda a: " ".join(a))
def test_help_imports_nothing_heavy(argv):
    assert heavy_modules(argv) == []


def test_gemm_runs_without_torch():
    assert heavy_modules(["gemm", "-T", "8", "-K", "9", "-O", "3"]) == []


def test_only_the_chosen_verb_declares_its_arguments():
    parser, verbs = build_parser(["gemm", "-T", "3"])
    assert set(verbs) == {name for name, _, _ in VERBS}
    sub = next(a for a in parser._actions if a.dest == "verb")
    assert any(o.dest == "T" for o in sub.choices["gemm"]._actions)
    assert not any(o.dest == "checkpoint" for o in sub.choices["simulate"]._actions)
