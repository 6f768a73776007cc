"""``accel demo``: the main job end to end on the shipped digits checkpoints.

1. sweep P for every shipped 8-bit checkpoint on a small array (accuracy, overflow events on the
   test set and on adversarial inputs, cycles, and the array's area from Yosys);
2. recommend a configuration per model, and the one configuration to build for all of them
   (:mod:`sim.sweep.recommend`);
3. generate its Verilog (``rtl_gen.export``);
4. verify it: the cocotb suite on random GEMMs (``sim.runner``), then every shipped model the
   build serves, with the checkpoint recommended for it, on the digits test images through the
   RTL (``sim.cosim``: every GEMM on the compiled Verilator harness, checked beat for beat against
   the golden model, cycles against the closed form; accuracy from the RTL's outputs);
5. write the report (plots and one HTML page).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit, output_path

#: P grid of the demo (bits): the shipped checkpoints were trained for 16, 20 and 32.
DEMO_P = (16, 17, 18, 20, 24, 32)
DEFAULT_OUT = "out/demo"
#: Test images each model runs through the RTL in step 4 (the whole digits test split).
COSIM_IMAGES = 360


def _step(i: int, n: int, text: str) -> None:
    print(f"[{i}/{n}] {text}", file=sys.stderr, flush=True)


def demo_table(args: argparse.Namespace, models: list[str]) -> dict[str, Any]:
    """The demo's sweep: every checkpoint of the shipped models ("all") on every P of the grid."""
    table: dict[str, Any] = {
        "models": models, "checkpoint_p": "all",
        "array": {"rows": args.rows, "cols": args.cols, "act_bits": 8, "weight_bits": 8},
        "grid": {"pe_acc_bits": list(args.p)},
    }
    if not args.no_synth:
        table["synth"] = args.synth
    if args.checkpoints:
        table["checkpoints"] = args.checkpoints
    return table


def verify(config: Any, out_dir: Path, sim: str, seed: int) -> dict[str, Any]:
    """Generate the Verilog of ``config`` into ``out_dir`` and run the cocotb suite on it.

    Returns a summary dict: ``status`` is ``passed``, ``failed`` or ``skipped`` (with ``reason``).
    """
    from rtl_gen.export import export

    paths = export(config, out_dir)
    out: dict[str, Any] = {"verilog": str(paths.verilog), "manifest": str(paths.manifest),
                           "simulator": sim, "seed": seed}
    try:
        from sim.runner import SimulatorMissing, VerifyError, run
    except ImportError as e:
        return {**out, "status": "skipped", "reason": f"the cocotb suite is not available ({e})"}
    try:
        res = run(config, scenario="all", seed=seed, sim=sim)
    except SimulatorMissing as e:
        return {**out, "status": "skipped", "reason": str(e)}
    except VerifyError as e:
        return {**out, "status": "failed", "reason": str(e)}
    cov = res.get("coverage", {})
    return {**out, "status": "passed" if not res.get("mismatches") else "failed",
            "y_checked": res.get("y_checked"), "mismatches": len(res.get("mismatches", [])),
            "jobs": len(res.get("jobs", [])), "edges": res.get("edges"),
            "coverage_bins": len(cov.get("bins", {})), "coverage_missing": cov.get("missing", []),
            "cycles_per_second": res.get("cycles_per_second")}


def cosim_models(config: Any, per_model: dict[str, dict[str, Any]], out_dir: Path, images: int,
                 workers: int) -> dict[str, Any]:
    """Run each model's recommended checkpoint on the first ``images`` test images of its
    dataset (:func:`accel.data.model_data`) with every GEMM on the RTL of ``config``
    (:func:`sim.cosim.run.cosim`); a summary dict whose ``status`` is ``passed``, ``failed`` or
    ``skipped`` (with ``reason``)."""
    from accel.cli.inputs import batches
    from accel.data import model_data
    from accel.graph import load_graph
    from sim.cosim.run import cosim
    from sim.runner import SimulatorMissing, VerifyError
    from sim.sweep.executors import LocalExecutor

    out: dict[str, Any] = {"status": "passed", "images": images, "models": []}
    start = time.perf_counter()
    try:
        for model, row in per_model.items():
            graph = load_graph(row["checkpoint"])
            data = model_data(graph.meta, split="test")
            n = min(images, len(data))
            res = cosim(graph, lambda block: batches(data, block, n), config, batch=32,
                        executor=LocalExecutor(workers) if workers > 1 else None,
                        out_dir=out_dir / model)
            total = res.to_dict()["total"]
            out["models"].append({
                "model": model, "checkpoint": row["checkpoint"], "workload": row["quantizer"],
                "samples": res.model.samples, "accuracy": res.model.accuracy,
                "sweep_accuracy": row["accuracy"] if n == len(data) else None,
                "gemms": res.gemms, "y_beats": total["y_beats"], "mismatches": total["mismatches"],
                "cycles": total["cycles"], "closed_form": total["closed_form"],
                "failures": [f.text for f in res.failures], "seconds": res.wall_s})
            if not res.ok:
                out["status"] = "failed"
    except SimulatorMissing as e:
        return {**out, "status": "skipped", "reason": str(e)}
    except VerifyError as e:
        return {**out, "status": "failed", "reason": str(e)}
    out["seconds"] = time.perf_counter() - start
    return out


class Demo(Verb):
    help = ("the main job: sweep P for the shipped digits checkpoints, recommend a configuration, "
            "generate and verify its Verilog, write the report")
    examples = """examples:
  accel demo                                  # ~minutes on 2 cores; writes out/demo/
  accel demo --tolerance 0.5 --rows 8 --cols 8
  accel demo --no-synth --no-verify           # accuracy and overflow only
  accel demo --sim icarus --json demo.json

Re-running reuses finished points (out/demo/results.db) and cached synthesis reports.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        output_path(parser, "-o", "--out-dir", kind="dir", default=DEFAULT_OUT,
                            help=f"output folder (default {DEFAULT_OUT})")
        parser.add_argument("--rows", type=int, default=4, help="array rows R (default 4)")
        parser.add_argument("--cols", type=int, default=4, help="array columns C (default 4)")
        parser.add_argument("--p", type=int, nargs="+", default=list(DEMO_P), metavar="P",
                            help=f"P values to sweep (default {' '.join(map(str, DEMO_P))})")
        parser.add_argument("--tolerance", type=float, default=1.0,
                            help="accuracy tolerance in points below float (default 1.0)")
        parser.add_argument("--synth", default="generic",
                            help="synthesis target for the area (default generic)")
        parser.add_argument("--no-synth", action="store_true", help="skip synthesis (no area)")
        parser.add_argument("--no-verify", action="store_true",
                            help="skip the verification of the recommended design (cocotb suite "
                                 "and the models on the RTL)")
        parser.add_argument("--cosim-images", type=int, default=COSIM_IMAGES, metavar="N",
                            help="digits test images each model runs through the RTL in step 4 "
                                 f"(default {COSIM_IMAGES}, the whole test split; 0 skips)")
        parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"),
                            help="simulator for verification (default verilator)")
        parser.add_argument("--seed", type=int, default=1, help="verification seed (default 1)")
        parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
        parser.add_argument("--checkpoints", metavar="DIR",
                            help="checkpoint folder (default: the shipped models/checkpoints)")
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.config import ArrayConfig
        from accel.progress import Progress, activity
        from sim.sweep.catalog import GEMM_MODEL, Catalog
        from sim.sweep.errors import SweepError
        from sim.sweep.executors import LocalExecutor
        from sim.sweep.grid import expand
        from sim.sweep.recommend import choose_config, recommend
        from sim.sweep.report import write_report
        from sim.sweep.run import run_sweep
        from sim.sweep.store import ResultStore

        start = time.perf_counter()
        if args.cosim_images < 0:
            raise ValueError(f"--cosim-images must be >= 0 test images, not {args.cosim_images}")
        if args.tolerance < 0:
            raise SweepError(f"--tolerance must be >= 0 accuracy points, not {args.tolerance}")
        steps = 4 if args.no_verify else 5
        out = Path(args.out_dir)
        catalog = Catalog(args.checkpoints)
        models = [m for m in catalog.models() if m != GEMM_MODEL]
        if not models:
            raise SweepError(f"no integer-model checkpoints in {catalog.directory}; the demo needs "
                             "the shipped digits checkpoints (models/checkpoints)")
        points = expand(demo_table(args, models), catalog=catalog, source="demo")
        executor = LocalExecutor(args.workers)

        _step(1, steps, f"sweep: {len(points)} points ({', '.join(models)}; "
                        f"{len({p.checkpoint_hash for p in points})} checkpoints x P in "
                        f"{' '.join(map(str, args.p))}) on a {args.rows}x{args.cols} array, "
                        f"{executor.describe()}"
                        + ("" if args.no_synth else f", area from {args.synth} synthesis"))
        store = ResultStore(out / "results.db")
        summary = run_sweep(points, store, executor,
                            progress=Progress(len(points), "sweep", unit="points"))
        if summary.interrupted:
            from accel.cli import EXIT_INTERRUPTED

            print(f"accel demo: interrupted ({summary.interrupted}) after {summary.finished} new "
                  f"points; {store.count()} finished points are kept in {out / 'results.db'}: "
                  "run the same command again to resume", file=sys.stderr)
            store.close()
            return EXIT_INTERRUPTED.get(summary.interrupted, 130)
        step_seconds = {"sweep": summary.seconds}
        keys = {p.key for p in points}
        rows = [r for r in store.rows() if tuple(r[k] for k in
                                                 ("config_hash", "model", "quantizer", "act_bits",
                                                  "weight_bits", "target_p", "checkpoint_hash")) in keys]

        _step(2, steps, f"recommend: smallest P, then smallest area, within {args.tolerance:g} "
                        "points of float with zero overflow events (test set and adversarial), "
                        "per model and for all models")
        recs = recommend(rows, args.tolerance)
        choice = choose_config(rows, args.tolerance)
        for r in recs:
            print("  " + r.summary().replace("\n", "\n  "), file=sys.stderr)
        print(f"  {choice.summary()}", file=sys.stderr)

        verification: dict[str, Any] = {"status": "skipped", "reason": "no configuration qualifies"}
        if choice.row is not None:
            config = ArrayConfig.from_dict(choice.row["config"])
            if args.no_verify:
                from rtl_gen.export import export

                _step(3, steps, f"generate: Verilog of {config.name}")
                paths = export(config, out / "rtl")
                verification = {"status": "skipped", "reason": "--no-verify",
                                "verilog": str(paths.verilog), "manifest": str(paths.manifest)}
            else:
                _step(3, steps, f"generate: Verilog of {config.name} -> {out / 'rtl'}")
                _step(4, steps, f"verify: cocotb suite on {args.sim} (all scenarios, seed {args.seed})"
                      + (f", then {', '.join(choice.per_model)} on {args.cosim_images} digits test "
                         "images through the RTL" if args.cosim_images else ""))
                t0 = time.perf_counter()
                with activity(f"  building and simulating {config.name} on {args.sim}"):
                    verification = verify(config, out / "rtl", args.sim, args.seed)
                step_seconds["generate_and_verify"] = time.perf_counter() - t0
                print(f"  {_verify_line(verification)}", file=sys.stderr)
                if args.cosim_images:
                    t0 = time.perf_counter()
                    with activity(f"  co-simulating the models on {config.name} (Verilator "
                                  "harness)"):
                        models_rtl = cosim_models(config, choice.per_model, out / "cosim",
                                                  args.cosim_images, args.workers)
                    step_seconds["models_on_rtl"] = time.perf_counter() - t0
                    verification["models_on_rtl"] = models_rtl
                    for line in _cosim_lines(models_rtl):
                        print(f"  {line}", file=sys.stderr)
        else:
            _step(3, steps, "generate: skipped, no configuration qualifies")

        _step(steps, steps, f"report -> {out / 'report' / 'index.html'}")
        notes = [f"Demo sweep on a {args.rows}x{args.cols} array, P in {', '.join(map(str, args.p))}.",
                 f"Verification of the recommended design: {_verify_line(verification)}"]
        notes += _cosim_lines(verification.get("models_on_rtl"))
        paths = write_report(rows, out / "report", store.failures(), args.tolerance,
                             title="accel demo: digits checkpoints", notes=notes)
        store.close()
        seconds = time.perf_counter() - start
        lines = ["", "accel demo", "=" * 60]
        lines += [r.summary() for r in recs] + [choice.summary()]
        lines += [f"verification: {_verify_line(verification)}"]
        lines += [f"  {line}" for line in _cosim_lines(verification.get("models_on_rtl"))]
        lines += [f"points: {summary.points} ({summary.finished} run now, {summary.skipped} reused, "
                  f"{len(summary.failed)} failed, {summary.lost} lost)",
                  f"report: {paths.html}",
                  f"wall time: {seconds:.1f} s (" + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s"
                                                          for k, v in step_seconds.items()) + ")"]
        ok = choice.row is not None and summary.complete and verification["status"] != "failed" \
            and verification.get("models_on_rtl", {}).get("status") != "failed"
        emit(args, "\n".join(lines), {
            "recommendations": [r.to_dict() for r in recs], "build": choice.to_dict(),
            "verification": verification,
            "sweep": summary.to_dict(), "report": str(paths.html), "seconds": seconds,
            "step_seconds": step_seconds, "ok": ok})
        return 0 if ok else 1


def _cosim_lines(c: dict[str, Any] | None) -> list[str]:
    """One line per model run through the RTL (step 4), or why it did not run."""
    if c is None:
        return []
    if c["status"] == "skipped" or (c["status"] == "failed" and "reason" in c):
        return [f"models on the RTL: {c['status'].upper()}: {c.get('reason', '')}"]
    lines = []
    for m in c["models"]:
        sweep = "" if m["sweep_accuracy"] is None else \
            f" (the sweep's golden model: {100 * m['sweep_accuracy']:.2f} %)"
        same = "= closed form" if m["cycles"] == m["closed_form"] else \
            f"!= closed form {m['closed_form']:,}"
        lines.append(f"{m['model']} ({m['workload']}) on the RTL: {m['samples']} test images, "
                     f"accuracy {100 * m['accuracy']:.2f} %{sweep}; {m['gemms']} GEMMs, "
                     f"{m['y_beats']:,} y beats, {m['mismatches']} mismatching, {m['cycles']:,} "
                     f"cycles {same} ({m['seconds']:.0f} s)")
        lines += m["failures"][:3]
    return lines


def _verify_line(v: dict[str, Any]) -> str:
    if v["status"] == "passed":
        return (f"PASSED on {v['simulator']}: {v['y_checked']} y beats checked in {v['jobs']} jobs, "
                f"0 mismatches, {v['coverage_bins']} coverage bins hit ({v['verilog']})")
    return f"{v['status'].upper()}: {v.get('reason', '')}"
