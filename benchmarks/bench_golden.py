"""Golden-model throughput (MAC/s) next to a float64 numpy matmul of the same shapes.

Shapes of issue 3: T=4096, K=1152, O=256, 8-bit operands, P=Q=20, both overflow modes, on a
32x32 array, with two operand sets:

* ``cleared`` — ternary weights (small l1 norm per channel): the screen proves every partial
  sum in range, so the model is one matmul. Target: within 3x of the float64 matmul.
* ``scanned`` — codes near the rails: every output of every fold is at risk and is scanned step
  by step. Target: within 50x of the matmul.

Peak memory (max RSS of this process) target: under 4 GB.  Run: ``python benchmarks/bench_golden.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from accel.config import ArrayConfig
from accel.golden import gemm


def operands(kind: str, t: int, k: int, o: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "cleared":
        return rng.integers(0, 256, (t, k)), rng.integers(-1, 2, (k, o))
    sign = rng.choice([-1, 1], size=(k, o))
    return rng.integers(192, 256, (t, k)), sign * rng.integers(96, 129, (k, o)).clip(max=127 + (sign < 0))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-T", type=int, default=4096)
    ap.add_argument("-K", type=int, default=1152)
    ap.add_argument("-O", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write results as JSON")
    args = ap.parse_args()
    t, k, o = args.T, args.K, args.O
    macs = t * k * o
    rows = []
    for kind in ("cleared", "scanned"):
        x, w = operands(kind, t, k, o)
        xf, wf = x.astype(np.float64), w.astype(np.float64)
        mm = best_of(lambda: xf @ wf, args.repeat)
        for mode in ("wrap", "saturate"):
            cfg = ArrayConfig(rows=32, cols=32, pe_acc_bits=20, overflow=mode)
            res = gemm(x, w, cfg)
            sec = best_of(lambda: gemm(x, w, cfg), args.repeat)
            rows.append({"operands": kind, "mode": mode, "golden_s": sec, "matmul_s": mm,
                         "ratio": sec / mm, "golden_MMAC_s": macs / sec / 1e6,
                         "matmul_MMAC_s": macs / mm / 1e6, "pe_events": res.pe_events,
                         "acc_events": res.acc_events})
            print(f"{kind:8s} {mode:9s} golden {sec:7.3f} s ({macs / sec / 1e9:6.2f} GMAC/s)  "
                  f"float64 matmul {mm:6.3f} s  ratio {sec / mm:5.1f}x  "
                  f"events PE {res.pe_events} acc {res.acc_events}", flush=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak_gb:.2f} GB (T={t}, K={k}, O={o}, 32x32 array, P=Q=20)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"T": t, "K": k, "O": o, "rows": rows, "peak_rss_gb": peak_gb}, f, indent=2)


if __name__ == "__main__":
    main()
