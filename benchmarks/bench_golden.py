"""Golden-model throughput (MAC/s) next to a float64 numpy matmul of the same shapes.

Shapes of issue 3: T=4096, K=1152, O=256, 8-bit operands, P=Q=20, both overflow modes, on a
32x32 array, with two operand sets:

* ``cleared`` — ternary weights (small l1 norm per channel): the screen proves every partial
  sum in range, so the model is one matmul. Target: within 3x of the float64 matmul.
* ``same-sign`` — codes and |weights| near the rails, one sign per channel: every output
  overflows P in every fold (the worst case for the number of outputs scanned).
* ``alternating`` — as ``same-sign`` but every 8th row has the other sign: still every output
  overflows in every fold, and no block of steps is monotone (the block scan's closed form for
  monotone blocks never applies: the worst case of the scan itself).
* ``mixed`` — codes near the rails, random signs: some outputs overflow (the former
  ``scanned`` set).

Target for the three scanned sets: within 50x of the matmul. The ``overflowing`` column is the
share of (output, fold) pairs with at least one PE event (1.00: every output in every fold).
Peak memory (max RSS of this process) target: under 4 GB.  Run: ``python benchmarks/bench_golden.py``.
"""

from __future__ import annotations

import argparse
import json
import resource

import numpy as np

from accel.config import ArrayConfig
from accel.golden import gemm

from walltime import best_of


#: Operand sets, in the order they run.
SETS = ("cleared", "same-sign", "alternating", "mixed")


def operands(kind: str, t: int, k: int, o: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Operands of one set (see the module docstring); codes 8-bit unsigned, weights int8."""
    rng = np.random.default_rng(seed)
    if kind == "cleared":
        return rng.integers(0, 256, (t, k)), rng.integers(-1, 2, (k, o))
    if kind == "mixed":                  # random signs near the rails: some outputs overflow
        sign = rng.choice([-1, 1], size=(k, o))
        return rng.integers(192, 256, (t, k)), sign * rng.integers(96, 129, (k, o)).clip(max=127 + (sign < 0))
    x = rng.integers(224, 256, (t, k))                            # codes near the top rail
    mag = rng.integers(96, 128, (k, o))                           # |w| near the rail
    if kind == "same-sign":                                     # one sign per channel
        sign = np.broadcast_to(rng.choice([-1, 1], size=o), (k, o))
    else:  # "alternating": per channel, every 8th row against the channel's sign
        sign = np.where(np.arange(k)[:, None] % 8 == 3, -1, 1) * rng.choice([-1, 1], size=o)
    return x, sign * mag


def overflowing_share(x: np.ndarray, w: np.ndarray, rows: int, bits: int, sample: int = 64) -> float:
    """Share of (output, fold) pairs, over the first ``sample`` vectors, with a PE event.

    A fold has an event iff its exact (unwrapped, unclamped) prefix sum leaves P bits: the first
    such step starts from the exact value in both modes.
    """
    xs = x[:sample]
    folds = -(-x.shape[1] // rows)
    hit = np.zeros((xs.shape[0], w.shape[1], folds), dtype=bool)
    for f in range(folds):
        pre = np.cumsum(xs[:, f * rows:(f + 1) * rows, None] * w[None, f * rows:(f + 1) * rows], axis=1)
        hit[:, :, f] = ((pre < -(1 << (bits - 1))) | (pre >= 1 << (bits - 1))).any(axis=1)
    return float(hit.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-T", type=int, default=4096)
    ap.add_argument("-K", type=int, default=1152)
    ap.add_argument("-O", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="operand sets")
    ap.add_argument("--json", help="write results as JSON")
    args = ap.parse_args()
    t, k, o = args.T, args.K, args.O
    macs = t * k * o
    rows = []
    for kind in args.sets:
        x, w = operands(kind, t, k, o)
        share = overflowing_share(x, w, 32, 20)
        xf, wf = x.astype(np.float64), w.astype(np.float64)
        mm = best_of(lambda: xf @ wf, args.repeat)
        for mode in ("wrap", "saturate"):
            cfg = ArrayConfig(rows=32, cols=32, pe_acc_bits=20, overflow=mode)
            res = gemm(x, w, cfg)
            sec = best_of(lambda: gemm(x, w, cfg), args.repeat)
            rows.append({"operands": kind, "mode": mode, "golden_s": sec, "matmul_s": mm,
                         "ratio": sec / mm, "golden_MMAC_s": macs / sec / 1e6,
                         "matmul_MMAC_s": macs / mm / 1e6, "pe_events": res.pe_events,
                         "acc_events": res.acc_events, "overflowing": share})
            print(f"{kind:11s} {mode:9s} golden {sec:7.3f} s ({macs / sec / 1e9:6.2f} GMAC/s)  "
                  f"float64 matmul {mm:6.3f} s  ratio {sec / mm:5.1f}x  overflowing {share:4.2f}  "
                  f"events PE {res.pe_events} acc {res.acc_events}", flush=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak_gb:.2f} GB (T={t}, K={k}, O={o}, 32x32 array, P=Q=20)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"T": t, "K": k, "O": o, "rows": rows, "peak_rss_gb": peak_gb}, f, indent=2)


if __name__ == "__main__":
    main()
