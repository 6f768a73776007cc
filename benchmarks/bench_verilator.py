"""Verilator simulation speed of the cocotb testbench: simulated cycles per second.

Canonical stimulus, waves off, 8-bit operands, P = 24; the time counted is the simulation phase
of the job only (the per-edge loop), not the build, the golden model or the simulator start.
Target: 20,000 cycles/s for 16x16.

    python benchmarks/bench_verilator.py [--sizes 8 16 32] [--vectors 2000] [--json out/bench.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from accel.config import ArrayConfig
from sim.runner import build, run

TARGET_16 = 20_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32],
                    help="square array sizes (default 8 16 32)")
    ap.add_argument("--vectors", type=int, default=2000, help="T of the GEMM (default 2000)")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        cfg = ArrayConfig(rows=n, cols=n, act_bits=8, weight_bits=8, pe_acc_bits=24)
        start = time.perf_counter()
        build(cfg, "verilator")
        build_s = time.perf_counter() - start
        shape = (args.vectors, 2 * n, 2 * n)          # 2 folds x 2 groups
        res = run(cfg, "cycles", seed=0, shapes=[shape], tag="-bench")
        job = res["jobs"][0]
        rows.append({"array": f"{n}x{n}", "build_s": round(build_s, 2), "T": shape[0],
                     "K": shape[1], "O": shape[2], "cycles": job["cycles"],
                     "sim_s": round(job["seconds"], 3),
                     "cycles_per_s": round(job["edges"] / job["seconds"]),
                     "cycles_per_cpu_s": round(job["edges"] / job["cpu_seconds"])})
        print(f"{n:>3}x{n:<3} build {build_s:7.1f} s (cached if ~0)  {job['cycles']:>7} cycles in "
              f"{job['seconds']:6.2f} s  ->  {rows[-1]['cycles_per_s']:>9,} cycles/s wall, "
              f"{rows[-1]['cycles_per_cpu_s']:>9,} per CPU second", flush=True)
    for r in rows:
        if r["array"] == "16x16":
            verdict = "meets" if r["cycles_per_s"] >= TARGET_16 else "MISSES"
            print(f"16x16 {verdict} the target of {TARGET_16:,} cycles/s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
