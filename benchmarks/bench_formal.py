"""Formal proof times: every proof of the CI covering set and of the 8-bit (``-m slow``) set.

The configurations are those of tests/test_formal.py (read from it, so the two never drift).
Every proof is rerun (``force``), one at a time, in a fresh work folder::

    python benchmarks/bench_formal.py                  # the CI set
    python benchmarks/bench_formal.py --set slow       # the 8-bit set (P = 16, 20, 24, 32)
    python benchmarks/bench_formal.py --set all --json out/formal.json

Prints a markdown table: configuration, proof, mode (unbounded / bounded with its depth),
status and seconds (wall clock of SymbiYosys, the proof and cover tasks running in parallel).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

from rtl_gen import formal
from rtl_gen.formal.runner import prove, tools_missing


def _test_sets():
    path = Path(__file__).resolve().parents[1] / "tests" / "test_formal.py"
    spec = importlib.util.spec_from_file_location("test_formal_sets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("ci", "slow", "all"), default="ci",
                    help="the CI set, the 8-bit set of -m slow, or both (default ci)")
    ap.add_argument("--solver", default="yices", help="SMT solver (default yices)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args()
    why = tools_missing(args.solver)
    if why:
        sys.exit(f"bench_formal: {why}")
    sets = _test_sets()
    runs = []
    if args.set in ("ci", "all"):
        runs += [("ci", c, b) for c, b in zip(sets.CI_SET, sets.CI_BLOCKS)]
    if args.set in ("slow", "all"):
        runs += [("slow", c, b) for c, b in zip(sets.SLOW_SET + sets.SLOW_OVERQ,
                                                 sets.SLOW_BLOCKS)]
        runs += [("slow", c, b) for c, b in sets.SLOW_EXTRA]
    rows = []
    print("| set | configuration | proof | mode | status | s |")
    print("|---|---|---|---|---|---|")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for which, config, blocks in runs:
            for name, build in formal.plan(config, blocks):
                res = prove(build(), root=work, solver=args.solver, force=True)
                rows.append({"set": which, "config": config.name, "proof": name,
                             "mode": res.proven, "status": res.status, "seconds": res.seconds})
                print(f"| {which} | {config.name} | {name} | {res.proven} | {res.status} | "
                      f"{res.seconds:.1f} |", flush=True)
    total = time.perf_counter() - start
    for which in dict.fromkeys(r["set"] for r in rows):
        secs = sum(r["seconds"] for r in rows if r["set"] == which)
        print(f"{which}: {sum(r['set'] == which for r in rows)} proofs, {secs:.0f} s")
    print(f"total wall time {total:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
