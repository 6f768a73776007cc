"""Compiled co-simulation speed: the Verilator harness against the cocotb testbench, and a whole
model on the RTL.

1. One canonical-stimulus GEMM (T x 2R x 2C: 2 folds x 2 groups, 8-bit operands, P = 24) per
   square array size on the compiled harness (:mod:`sim.cosim`), on the same generated top
   driven by a bare C++ loop (the same beats held in memory, valid/ready handshakes, no checks,
   no y recording, no I/O: the raw speed of the Verilated model) and, unless ``--no-cocotb``, on
   the cocotb testbench (``scenario="cycles"``): simulated cycles per second of wall time and of
   CPU time, counting the simulation loop only (no build, no golden model, no process start).
2. ``accel cosim``'s engine on a shipped digits checkpoint and the whole test split: wall time,
   GEMMs, simulated cycles and cycles/s, in one process and on two local worker processes.
3. End to end, the ``accel cosim`` command itself (two local workers) on a fresh build folder:
   the digits CNN's 360 test images on a 4x4 and an 8x8 array (target: under 2 minutes each on 2
   cores, the harness build included) and one ResNet-18-shaped image (``resnet18-random``,
   3x32x32) on 16x16 (``--no-resnet`` skips it): the harness build and the run, timed apart.

Targets: 1,000,000 simulated cycles per CPU second for 8x8 on the harness, and at least 30 % of
the raw loop's speed (whole models: the digits CNN's 0.5 M cycles in well under a second of
harness time).

    python benchmarks/bench_cosim.py [--sizes 8 16] [--vectors 20000] [--no-cocotb] [--no-e2e]
        [--no-resnet] [--json out/bench_cosim.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from accel.config import ArrayConfig

TARGET_8 = 1_000_000
TARGET_RAW = 0.30
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


#: A main() for the generated driver's source (its own main renamed): reads the same job file, then
#: drives the beats with the handshakes only, y_ready = 1, until every y beat has transferred.
RAW_MAIN = r"""
int main(int argc, char** argv) {
    if (argc != 4) return 2;
    FILE* f = std::fopen(argv[1], "rb");
    uint64_t h[@NHEADER@];
    if (!f || std::fread(h, sizeof(uint64_t), @NHEADER@, f) != @NHEADER@ || h[7]) return 2;
    const uint64_t n_w = h[2], n_b = h[3], n_x = h[4], n_y = h[5], edge_limit = h[9];
    std::vector<uint32_t> wr(n_w * WW + 2), br(n_b * WB + 2), xr(n_x * WX + 2);
    if (std::fread(wr.data(), 4, n_w * WW, f) != n_w * WW || std::fread(br.data(), 4, n_b * WB, f) != n_b * WB
        || std::fread(xr.data(), 4, n_x * WX, f) != n_x * WX) return 2;
    std::fclose(f);
    Source w{wr.data(), nullptr, n_w, 0, 0, WW};
    Source b{br.data(), nullptr, n_b, 0, 0, WB};
    Source x{xr.data(), nullptr, n_x, 0, 0, WX};
    VerilatedContext ctx;
    Vdut top{&ctx};
    top.clk = 0; top.rst = 1; top.w_valid = 0; top.b_valid = 0; top.x_valid = 0; top.y_ready = 1;
    top.eval();
    for (int i = 0; i < @RESET_EDGES@; ++i) { top.clk = 1; top.eval(); top.clk = 0; top.eval(); }
    top.rst = 0;
    w.start(); b.start(); x.start();
    uint64_t e = 0, got = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();
    for (; got < n_y && e <= edge_limit; ++e) {
        top.w_valid = w.valid; if (w.valid) drive_w(&top, w.rec());
        top.b_valid = b.valid; if (b.valid) drive_b(&top, b.rec());
        top.x_valid = x.valid; if (x.valid) drive_x(&top, x.rec());
        top.eval();
        const bool wf = w.valid && top.w_ready, bf = b.valid && top.b_ready, xf = x.valid && top.x_ready;
        got += top.y_valid;
        top.clk = 1; top.eval(); top.clk = 0;
        w.advance(wf); b.advance(bf); x.advance(xf);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    top.final();
    std::fclose(std::fopen(argv[2], "wb"));
    std::fclose(std::fopen(argv[3], "wb"));
    std::printf("{\"status\": \"%s\", \"message\": \"\", \"edges\": %llu, \"w_sent\": %llu, "
                "\"b_sent\": %llu, \"x_sent\": %llu, \"seconds\": %.6f, \"cpu_seconds\": %.6f}\n",
                got == n_y ? "ok" : "incomplete", (unsigned long long)e, (unsigned long long)w.index,
                (unsigned long long)b.index, (unsigned long long)x.index, secs, cpu);
    return 0;
}
"""


def raw_build(build) -> object:
    """The harness build with its executable replaced by the bare loop (compiled once, next to
    the harness, from its generated driver and the Verilated objects of its build)."""
    from sim.cosim.driver import HEADER, RESET_EDGES
    from sim.runner import _verilator_root

    binary = build.dir / "raw_loop"
    source = build.dir / "raw_loop.cpp"
    text = (build.dir / "driver.cpp").read_text().replace("int main(int argc", "int harness_main(int argc")
    text += RAW_MAIN.replace("@NHEADER@", str(len(HEADER))).replace("@RESET_EDGES@", str(RESET_EDGES))
    if not binary.exists() or source.read_text() != text:
        source.write_text(text)
        inc = _verilator_root() / "include"
        obj = build.dir / "obj"
        defines = [f"-DVM_{k}=0" for k in ("COVERAGE", "SC", "TIMING", "TRACE", "TRACE_FST",
                                            "TRACE_VCD", "TRACE_SAIF")]
        subprocess.run(["c++", "-O2", "-DVERILATOR=1", *defines, f"-I{obj}", f"-I{inc}",
                        f"-I{inc / 'vltstd'}", str(source), str(obj / "Vdut__ALL.o"),
                        str(obj / "verilated.o"), str(obj / "verilated_threads.o"), "-pthread",
                        "-o", str(binary)], check=True)
    return dataclasses.replace(build, binary=binary)


def raw_speed(cfg: ArrayConfig, shape: tuple[int, int, int]) -> dict:
    from sim.cosim.harness import Harness
    from sim.runner import build_harness
    from sim.schedule import beats

    h = Harness(raw_build(build_harness(cfg)))
    t, k, o = shape
    rng = np.random.default_rng(0)
    bt = beats(rng.integers(0, 256, size=(t, k)), rng.integers(-128, 128, size=(k, o)), None, cfg)
    run = h.run(bt)
    assert run.complete, run.message
    return {"edges": run.edges, "sim_s": run.seconds,
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


#: End-to-end runs: (label, accel cosim arguments).
E2E = [("digits CNN 360 images, 4x4", [str(CHECKPOINT), "--rows", "4", "--cols", "4", "--pe-acc-bits", "20"]),
       ("digits CNN 360 images, 8x8", [str(CHECKPOINT), "--rows", "8", "--cols", "8", "--pe-acc-bits", "20"]),
       ("resnet18-random 1 image, 16x16", ["resnet18-random", "--limit", "1", "--rows", "16",
                                            "--cols", "16"])]
TARGET_E2E_S = 120


def end_to_end(label: str, argv: list[str]) -> dict:
    """``accel cosim argv`` in a subprocess on a fresh build root, timed whole; the harness build's
    share is the time the command itself reports for it."""
    import re
    import sys

    with tempfile.TemporaryDirectory(prefix="bench-cosim-") as tmp:
        res_path = Path(tmp) / "res.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "accel", "cosim", *argv, "--build-root", tmp,
                               "-o", str(Path(tmp) / "out"), "--json", str(res_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        total_s = time.perf_counter() - t0
        assert proc.returncode == 0, proc.stdout[-2000:]
        res = json.loads(res_path.read_text())
    build = re.search(r"harness \(cached by configuration hash\): done in ([0-9.]+) s", proc.stdout)
    total = res["total"]
    return {"label": label, "config": res["config_name"], "samples": res["samples"],
            "accuracy": res["accuracy"], "gemms": total["gemms"], "cycles": total["cycles"],
            "mismatches": total["mismatches"], "build_s": float(build.group(1)) if build else None,
            "total_s": round(total_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16],
                    help="square array sizes (default 8 16)")
    ap.add_argument("--vectors", type=int, default=20000, help="T of the GEMM (default 20000)")
    ap.add_argument("--no-cocotb", action="store_true", help="skip the cocotb comparison")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end commands")
    ap.add_argument("--no-resnet", action="store_true", help="skip the ResNet-18-shaped image")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = ap.parse_args()
    out: dict = {"gemm": [], "model": [], "e2e": []}
    for n in args.sizes:
        cfg = ArrayConfig(rows=n, cols=n, act_bits=8, weight_bits=8, pe_acc_bits=24)
        shape = (args.vectors, 2 * n, 2 * n)
        row = {"array": f"{n}x{n}", "T": shape[0], "K": shape[1], "O": shape[2],
               "harness": harness_speed(cfg, shape)}
        h = row["harness"]
        line = (f"{n:>3}x{n:<3} harness {h['cycles']:>8} cycles: {h['cycles_per_s']:>11,} cycles/s "
                f"wall, {h['cycles_per_cpu_s']:>11,} per CPU s (job {h['job_s']} s)")
        row["raw"] = r = raw_speed(cfg, shape)
        row["harness_of_raw"] = round(h["cycles_per_cpu_s"] / r["cycles_per_cpu_s"], 3)
        line += (f"; raw C++ loop {r['cycles_per_cpu_s']:,} per CPU s (harness "
                 f"{100 * row['harness_of_raw']:.0f} % of it)")
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
    for label, argv in [] if args.no_e2e else E2E[:2] if args.no_resnet else E2E:
        e = end_to_end(label, argv)
        out["e2e"].append(e)
        print(f"accel cosim, {label} on {e['config']}: {e['total_s']} s end to end, of which the "
              f"harness build {e['build_s']} s ({e['gemms']} GEMMs, {e['cycles']:,} cycles, "
              f"{e['mismatches']} mismatches, accuracy {100 * e['accuracy']:.2f} %)", flush=True)
    for e in out["e2e"][:2]:
        verdict = "meets" if e["total_s"] < TARGET_E2E_S else "MISSES"
        print(f"{e['label']} {verdict} the target of {TARGET_E2E_S} s end to end")
    for r in out["gemm"]:
        if r["array"] == "8x8":
            verdict = "meets" if r["harness"]["cycles_per_cpu_s"] >= TARGET_8 else "MISSES"
            print(f"8x8 {verdict} the target of {TARGET_8:,} cycles per CPU second")
    for r in out["gemm"]:
        verdict = "meets" if r["harness_of_raw"] >= TARGET_RAW else "MISSES"
        print(f"{r['array']} {verdict} the target of {100 * TARGET_RAW:.0f} % of the raw loop's speed")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
