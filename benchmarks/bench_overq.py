"""OverQ coverage table and encoder throughput (run by hand; not a test).

Measures, on a fixed seed, the conditional handled share against 1 - (1 - z)^(c+1) and the
all-lane share against the edge-corrected formula of SPEC section 4 for every (z, c), prints a
markdown table and the encoder / OverQ GEMM throughput, and exits 1 if a share lies outside
``--sigma`` binomial standard errors.

Examples
--------
    python benchmarks/bench_overq.py                       # 100k vectors, R = 16, z = 0.3, 0.5
    python benchmarks/bench_overq.py --rows 8 --vectors 20000 --json out/overq.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from accel.config import ArrayConfig, OverQConfig
from accel.golden import gemm
from accel.overq import encode
from accel.overq_coverage import coverage_sweep, coverage_table, random_lanes

from walltime import best_of


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="examples:\n" + __doc__.split("Examples\n--------\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=int, default=100_000,
                   help="vectors (folds of R lanes) per z (default %(default)s)")
    p.add_argument("--rows", type=int, default=16, help="R, lanes per fold (default %(default)s)")
    p.add_argument("--act-bits", type=int, default=8, help="N (default %(default)s)")
    p.add_argument("--mode", choices=("range", "both"), default="range",
                   help="OverQ mode (default %(default)s)")
    p.add_argument("--zero-rates", type=float, nargs="+", default=[0.3, 0.5],
                   help="z values (default %(default)s)")
    p.add_argument("--cascades", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="c values (default %(default)s)")
    p.add_argument("--outlier-rate", type=float, default=0.001,
                   help="outlier probability per lane (default %(default)s)")
    p.add_argument("--seed", type=int, default=2024, help="random seed (default %(default)s)")
    p.add_argument("--sigma", type=float, default=4.0,
                   help="pass band in binomial standard errors (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing repeats, best kept (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the table and timings as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # P wide enough for any mode and N, so that the GEMM timing is that of the event-free path
    base = ArrayConfig(rows=args.rows, act_bits=args.act_bits, pe_acc_bits=32 + args.act_bits,
                       overq=OverQConfig(mode=args.mode))

    def progress(p) -> None:
        print(f"  z = {p.zero_rate:g}, c = {p.cascade}: {p.all_outliers} outliers, "
              f"conditional {p.cond_share:.4f} (law {p.cond_expected:.4f})", file=sys.stderr)

    print(f"coverage: R = {args.rows}, N = {args.act_bits}, {args.mode}, {args.vectors} vectors per z, "
          f"outlier rate {args.outlier_rate:g}, seed {args.seed}", file=sys.stderr)
    points = coverage_sweep(base, args.zero_rates, args.cascades, args.vectors, args.outlier_rate,
                            args.seed, progress)

    print("timing the encoder and the OverQ GEMM", file=sys.stderr)
    deep = dataclasses.replace(base, overq=OverQConfig(mode=args.mode, cascade=max(args.cascades)))
    rng = np.random.default_rng(args.seed)
    x = random_lanes(rng, args.vectors, deep, 0.5, args.outlier_rate)
    enc_s = best_of(lambda: encode(x, deep), args.repeats)
    t, k, o = 4096, 4 * args.rows, 64
    xg = random_lanes(rng, t * k // args.rows, deep, 0.5, args.outlier_rate).reshape(t, k)
    wg = rng.integers(*deep.weight_range, size=(k, o), endpoint=True)
    gemm_s = best_of(lambda: gemm(xg, wg, deep), args.repeats)
    timing = {"encoder_vectors_per_s": args.vectors / enc_s, "encoder_lanes": args.rows,
              "encoder_cascade": deep.overq.cascade, "gemm_shape_tko": [t, k, o],
              "gemm_macs_per_s": t * k * o / gemm_s}

    print(f"\n### OverQ coverage (R = {args.rows}, N = {args.act_bits}, mode {args.mode}, "
          f"{args.vectors} vectors per z, outlier rate {args.outlier_rate:g}, seed {args.seed})\n")
    print(coverage_table(points, args.sigma))
    print(f"\nencoder: {timing['encoder_vectors_per_s']:,.0f} vectors/s "
          f"({args.rows} lanes, c = {deep.overq.cascade}); OverQ GEMM {t}x{k}x{o}: "
          f"{timing['gemm_macs_per_s'] / 1e6:,.1f} M MAC/s")
    ok = all(p.passes(args.sigma) for p in points)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"config": base.to_dict(), "points": [p.to_dict() for p in points],
                                    "timing": timing, "all_within_sigma": ok}, indent=2) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
