"""Synthesis benchmark: PE area over the P grids, and the time to synthesise a whole array.

Run by hand (it takes minutes; each Yosys run is single-threaded)::

    python benchmarks/bench_synth.py                  # PE table, generic + ice40
    python benchmarks/bench_synth.py --array 16       # + a 16x16 array (8-bit, P = 24)
    python benchmarks/bench_synth.py --no-cache       # measure tool times, not cache hits

Prints a markdown table of PE area (NAND2 equivalents on the generic target, LUTs on ice40) for
8-bit operands with P = 16, 20, 24, 32 and 4-bit operands with P = 10, 12, 16, 20, with the Yosys
time of each run, and (with --array) the wall time of the array's synthesis per target.
"""

from __future__ import annotations

import argparse
import sys
import time

from accel.config import ArrayConfig
from rtl_gen.synth import SynthCache, default_cache_dir, synthesize

GRIDS = {8: (16, 20, 24, 32), 4: (10, 12, 16, 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="+", default=["generic", "ice40"],
                    help="targets of the PE table (default generic ice40)")
    ap.add_argument("--array", type=int, metavar="R", help="also synthesise an R x R array")
    ap.add_argument("--array-p", type=int, default=24, help="P of that array (default 24)")
    ap.add_argument("--cache-dir", default=None, help="report cache (default the usual one)")
    ap.add_argument("--no-cache", action="store_true", help="run the tools even when cached")
    args = ap.parse_args()
    options = dict(cache=SynthCache(args.cache_dir or default_cache_dir()),
                   use_cache=not args.no_cache,
                   progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))

    header = "| operands | P | " + " | ".join(
        f"{t} {'NAND2-eq' if t == 'generic' else 'LUTs'} | {t} Yosys s" for t in args.targets) + " |"
    print(header)
    print("|" + "---|" * (2 + 2 * len(args.targets)))
    for bits, grid in GRIDS.items():
        for p in grid:
            config = ArrayConfig(act_bits=bits, weight_bits=bits, pe_acc_bits=p)
            cells = []
            for target in args.targets:
                r = synthesize(config, "pe", target, **options)
                secs = "cached" if r.cached else f"{r.seconds['yosys']:.1f}"
                cells += [f"{r.area:,.1f}" if target == "generic" else f"{r.area:,.0f}", secs]
            print(f"| {bits}x{bits} bit | {p} | " + " | ".join(cells) + " |", flush=True)

    if args.array:
        config = ArrayConfig(rows=args.array, cols=args.array, pe_acc_bits=args.array_p)
        print(f"\n{config.name}: whole-array synthesis")
        for target in args.targets:
            start = time.monotonic()
            r = synthesize(config, "array", target, **options)
            wall = time.monotonic() - start
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items())
            print(f"- {target}: {r.area:,.1f} {r.area_unit}; "
                  + ("cached" if r.cached else f"{wall:.1f} s wall ({steps})"), flush=True)


if __name__ == "__main__":
    main()
