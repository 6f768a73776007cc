"""Start-up time of the command line: ``accel --help`` and ``accel gemm --help``.

Target: ``accel --help`` within 0.3 s on a quiet machine (a fresh interpreter each run, best of
``--repeat``). Run: ``python benchmarks/bench_cli.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TARGET_HELP_S = 0.3


def best_of(argv: list[str], repeat: int) -> float:
    """Best wall-clock seconds of ``python -m accel ARGV`` over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "accel", *argv], capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    args = ap.parse_args()
    for argv in (["--help"], ["gemm", "--help"], ["simulate", "--help"]):
        t = best_of(argv, args.repeat)
        note = f"  (target < {TARGET_HELP_S} s)" if argv == ["--help"] else ""
        print(f"accel {' '.join(argv):<18} {t:6.3f} s{note}")


if __name__ == "__main__":
    main()
