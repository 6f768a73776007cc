"""Compiled co-simulation speed: the Verilator harness against the cocotb testbench, and a whole
model on the RTL.

1. One canonical-stimulus GEMM (T x 2R x 2C: 2 folds x 2 groups, 8-bit operands, P = 24) per
   square array size on the compiled harness (:mod:`sim.cosim`) and, unless ``--no-cocotb``, on
   the cocotb testbench (``scenario="cycles"``): simulated cycles per second of wall time and of
   CPU time, counting the simulation loop only (no build, no golden model, no process start).
2. ``accel cosim``'s engine on a shipped digits checkpoint and the whole test split: wall time,
   GEMMs, simulated cycles and cycles/s, in one process and on two local worker processes.

Target: 1,000,000 simulated cycles per CPU second for 8x8 on the harness (whole models: the
digits CNN's 0.5 M cycles in well under a second of harness time).

    python benchmarks/bench_cosim.py [--sizes 8 16] [--vectors 20000] [--json out/bench_cosim.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from accel.config import ArrayConfig

TARGET_8 = 1_000_000
CHECKPOINT = Path(__file__).parent.parent / "models" / "checkpoints" / "cnn_a2qplus_n8_p20_s0.pt"


def harness_speed(cfg: ArrayConfig, shape: tuple[int, int, int]) -> dict:
    from sim.cosim.harness import Harness
    from sim.runner import build_harness
    from sim.schedule import beats

    t0 = time.perf_counter()
    h = Harness(build_harness(cfg))
    build_s = time.perf_counter() - t0
    t, k, o = shape
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(t, k))
    w = rng.integers(-128, 128, size=(k, o))
    bt = beats(x, w, None, cfg)
    t0 = time.perf_counter()
    run = h.run(bt)
    job_s = time.perf_counter() - t0
    assert run.complete, run.message
    return {"build_s": round(build_s, 2), "cycles": run.cycles, "sim_s": run.seconds,
            "job_s": round(job_s, 3),
            "cycles_per_s": round(run.edges / run.seconds),
            "cycles_per_cpu_s": round(run.edges / max(run.cpu_seconds, 1e-9))}


def cocotb_speed(cfg: ArrayConfig, shape: tuple[int, int, int]) -> dict:
    from sim.runner import run

    res = run(cfg, "cycles", seed=0, shapes=[shape], tag="-bench")
    job = res["jobs"][0]
    return {"cycles": job["cycles"], "sim_s": round(job["seconds"], 3),
            "cycles_per_s": round(job["edges"] / job["seconds"]),
            "cycles_per_cpu_s": round(job["edges"] / job["cpu_seconds"])}


def model_speed(workers: int) -> dict:
    from accel.cli.inputs import batches
    from accel.data import model_data
    from accel.graph import load_graph
    from sim.cosim.run import cosim
    from sim.sweep.executors import LocalExecutor

    graph = load_graph(CHECKPOINT)
    cfg = ArrayConfig.from_dict(graph.meta["config"])
    data = model_data(graph.meta, split="test")
    with tempfile.TemporaryDirectory() as tmp:
        res = cosim(graph, lambda block: batches(data, block, None), cfg, batch=32,
                    executor=LocalExecutor(workers) if workers > 1 else None, out_dir=tmp)
    assert res.ok
    return {"workers": workers, "config": cfg.name, "samples": res.model.samples,
            "accuracy": res.model.accuracy, "gemms": res.gemms, "cycles": res.edges,
            "harness_s": round(res.harness_seconds, 2), "wall_s": round(res.wall_s, 2),
            "harness_cycles_per_s": round(res.edges / res.harness_seconds),
            "model_cycles_per_wall_s": round(res.edges / res.wall_s),
            "layers": [{"name": s.name, "gemms": s.gemms, "cycles": s.cycles,
                        "closed_form": s.closed_form, "cycles_per_s": round(s.cycles_per_second)}
                       for s in res.layers]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16],
                    help="square array sizes (default 8 16)")
    ap.add_argument("--vectors", type=int, default=20000, help="T of the GEMM (default 20000)")
    ap.add_argument("--no-cocotb", action="store_true", help="skip the cocotb comparison")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = ap.parse_args()
    out: dict = {"gemm": [], "model": []}
    for n in args.sizes:
        cfg = ArrayConfig(rows=n, cols=n, act_bits=8, weight_bits=8, pe_acc_bits=24)
        shape = (args.vectors, 2 * n, 2 * n)
        row = {"array": f"{n}x{n}", "T": shape[0], "K": shape[1], "O": shape[2],
               "harness": harness_speed(cfg, shape)}
        h = row["harness"]
        line = (f"{n:>3}x{n:<3} harness {h['cycles']:>8} cycles: {h['cycles_per_s']:>11,} cycles/s "
                f"wall, {h['cycles_per_cpu_s']:>11,} per CPU s (job {h['job_s']} s)")
        if not args.no_cocotb:
            # cocotb is ~50k cycles/s: a shorter GEMM of the same shape family
            c_shape = (max(1, args.vectors // 20), *shape[1:])
            row["cocotb"] = c = cocotb_speed(cfg, c_shape)
            row["ratio_cpu"] = round(h["cycles_per_cpu_s"] / c["cycles_per_cpu_s"], 1)
            line += (f"; cocotb {c['cycles_per_s']:,} cycles/s wall, {c['cycles_per_cpu_s']:,} "
                     f"per CPU s -> {row['ratio_cpu']}x")
        out["gemm"].append(row)
        print(line, flush=True)
    for workers in (1, 2):
        m = model_speed(workers)
        out["model"].append(m)
        print(f"{CHECKPOINT.name} on {m['config']}, {m['samples']} images, {workers} "
              f"worker{'s' if workers > 1 else ''}: {m['gemms']} GEMMs, {m['cycles']:,} cycles, "
              f"harness {m['harness_s']} s ({m['harness_cycles_per_s']:,} cycles/s), wall "
              f"{m['wall_s']} s, accuracy {100 * m['accuracy']:.2f} %", flush=True)
    for r in out["gemm"]:
        if r["array"] == "8x8":
            verdict = "meets" if r["harness"]["cycles_per_cpu_s"] >= TARGET_8 else "MISSES"
            print(f"8x8 {verdict} the target of {TARGET_8:,} cycles per CPU second")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
