"""RTL generation time: elaborate the top level and write Verilog, per array size.

Arrays of issue 4: 8x8, 16x16 and 32x32 PEs, 8-bit operands, P = Q = 24, acc_depth 64. Each size
is timed in two parts, best of ``--repeat`` runs: ``elaborate`` (Python: building the Amaranth
components, :meth:`Fragment.get`) and ``verilog`` (the whole
:func:`rtl_gen.export.to_verilog`, i.e. elaboration again plus Yosys' RTLIL -> Verilog).
Target: 16x16 under 10 s for ``verilog``. CPU seconds (this process + the Yosys child) are
printed next to wall-clock seconds: on a shared machine they are the stabler number.
Run: ``python benchmarks/bench_generate.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from amaranth.hdl import Fragment

from accel.config import ArrayConfig
from rtl_gen.export import to_verilog
from rtl_gen.top import Top

TARGET_16X16_S = 10.0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (Yosys runs as a child)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def best_of(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds of ``repeat`` calls, and the last result."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        out = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, cpu_seconds() - start_cpu)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32],
                    help="square array sizes (default 8 16 32)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per size, best kept (default 2)")
    ap.add_argument("--json", help="write results as JSON")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        config = ArrayConfig(rows=n, cols=n, act_bits=8, weight_bits=8, pe_acc_bits=24)
        elab, elab_cpu, _ = best_of(lambda: Fragment.get(Top(config), None), args.repeat)
        full, full_cpu, text = best_of(lambda: to_verilog(Top(config), config.name), args.repeat)
        row = {"size": f"{n}x{n}", "pes": n * n, "elaborate_s": round(elab, 3),
               "elaborate_cpu_s": round(elab_cpu, 3), "verilog_s": round(full, 3),
               "verilog_cpu_s": round(full_cpu, 3), "verilog_mb": round(len(text) / 1e6, 2)}
        rows.append(row)
        print(f"{row['size']:>6}  elaborate {elab:7.2f} s ({elab_cpu:6.2f} s CPU)   "
              f"elaborate+verilog {full:7.2f} s ({full_cpu:6.2f} s CPU)   "
              f"{row['verilog_mb']:6.2f} MB Verilog", flush=True)
        if n == 16:
            verdict = "meets" if full < TARGET_16X16_S else "MISSES"
            print(f"        16x16 {verdict} the {TARGET_16X16_S:.0f} s target")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
