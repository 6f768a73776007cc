"""``accel sweep``: evaluate a grid of configurations x models x quantizers into a results store."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from accel.cli.base import Verb, add_executor_arguments, add_json_argument, emit, output_path
from accel.config import ArrayConfig, OverQConfig, add_config_arguments

DEFAULT_DB = "results.db"


def parse_value(text: str) -> Any:
    """A flag value: an integer, ``true``/``false``, or the text itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        return text.strip()


def parse_assignment(text: str, flag: str, lists: bool) -> tuple[str, Any]:
    """``NAME=V`` (or ``NAME=V1,V2,...`` when ``lists``) from a flag, with a clear error."""
    from sim.sweep.errors import SweepError

    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        form = "NAME=V1,V2,..." if lists else "NAME=VALUE"
        raise SweepError(f"{flag} takes {form}, not {text!r}")
    name = name.strip().replace("-", "_")
    if lists:
        return name, [parse_value(v) for v in value.split(",")]
    return name, parse_value(value)


def add_store_arguments(parser: argparse.ArgumentParser, writes: bool = True) -> None:
    """``--db`` and the CSV / JSON exports, shared by ``accel sweep`` (``writes``: the store is
    an output, created if missing) and ``accel report`` (it reads the store)."""
    g = parser.add_argument_group("results store")
    if writes:
        output_path(g, "--db", metavar="PATH", default=DEFAULT_DB,
                    help=f"SQLite results store (default {DEFAULT_DB}; created if missing)")
    else:
        g.add_argument("--db", metavar="PATH", default=DEFAULT_DB,
                       help=f"SQLite results store to read (default {DEFAULT_DB})")
    output_path(g, "--csv", metavar="PATH", help="export every row as CSV")
    output_path(g, "--export-json", metavar="PATH", help="export every row as a JSON list")


def export(store: Any, args: argparse.Namespace) -> list[str]:
    """Write the exports asked for; returns the paths written."""
    out = []
    if args.csv:
        out.append(str(store.export_csv(args.csv)))
    if args.export_json:
        out.append(str(store.export_json(args.export_json)))
    return out


def sweep_table(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The sweep table from ``SWEEP.toml`` (if given) overridden by flags, and its source name."""
    from sim.sweep.grid import load_sweep

    table: dict[str, Any] = load_sweep(args.sweep) if args.sweep else {}
    source = args.sweep or "flags"
    if args.model:
        table["models"] = args.model
    if args.quantizer:
        table["quantizers"] = args.quantizer
    if args.checkpoint_p:
        vals = [parse_value(v) for v in args.checkpoint_p]
        table["checkpoint_p"] = vals[0] if len(vals) == 1 and isinstance(vals[0], str) else vals
    if args.synth:
        table["synth"] = args.synth
    if args.energy is not None:
        table["energy"] = True if args.energy == "default" else args.energy
    if args.no_adversarial:
        table["adversarial"] = False
    if args.checkpoints:
        table["checkpoints"] = args.checkpoints
    if args.data or args.labels or args.limit is not None:
        data = table.get("data", {})
        data = dict({"path": data} if isinstance(data, str) else data)
        data.update({k: v for k, v in (("path", args.data), ("labels", args.labels),
                                        ("limit", args.limit)) if v is not None})
        table["data"] = data
    array = dict(table.get("array", {}))
    if args.config:           # the file's own fields (an unset Q stays unset: Q = P per point)
        loaded = dataclasses.asdict(ArrayConfig.load(args.config))
        array.update({k: v for k, v in loaded.items() if v is not None})
    for f in dataclasses.fields(ArrayConfig):
        if f.name != "overq" and getattr(args, f.name, None) is not None:
            array[f.name] = getattr(args, f.name)
    if args.overq_mode is not None or args.overq_cascade is not None:
        old = array.get("overq") or dataclasses.asdict(OverQConfig())
        array["overq"] = {"mode": args.overq_mode or old["mode"],
                          "cascade": old["cascade"] if args.overq_cascade is None else args.overq_cascade}
    if array:
        table["array"] = array
    if args.grid:
        grid = dict(table.get("grid", {}))
        grid.update(parse_assignment(g, "--grid", True) for g in args.grid)
        table["grid"] = grid
    if args.gemm:
        gemm = dict(table.get("gemm", {}))
        gemm.update(parse_assignment(g, "--gemm", False) for g in args.gemm)
        table["gemm"] = gemm
    return table, source


class Sweep(Verb):
    help = "evaluate a grid of array configurations x models x quantizers (resumable)"
    examples = """examples:
  accel sweep --model gemm --grid pe_acc_bits=16,18,20,24 --rows 4 --cols 4
  accel sweep --model cnn --quantizer a2q --quantizer a2q+ --checkpoint-p all --grid pe_acc_bits=16,17,18,20
  accel sweep --model cnn --quantizer a2q --checkpoint-p 20 --grid pe_acc_bits=16,17,18,19,20
      # ^ one checkpoint on narrower accumulators
  accel sweep --model mynet.onnx --data test.npz --grid pe_acc_bits=14,16,18,20
      # ^ your own quantized model file on your data
  accel sweep sweep.toml --synth sky130 --energy --csv results.csv
  accel sweep sweep.toml --executor dask --scheduler tcp://head-node:8786
  accel sweep sweep.toml --dry-run        # list the points, run nothing
  accel sweep --list                      # which checkpoints exist (model, quantizer, N, M, P)

A killed sweep resumes: run the same command again; finished points are skipped.
Sweep file format: see sim/sweep/grid.py (models, quantizers, checkpoint_p, data, [array],
[grid], [[points]], [gemm]); flags override the file.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sweep", nargs="?", metavar="SWEEP.toml",
                            help="sweep definition file (optional; flags override it)")
        g = parser.add_argument_group("what to sweep")
        g.add_argument("--model", action="append", metavar="NAME|FILE",
                       help="model to run (repeatable): gemm, a checkpointed model such as "
                            "cnn or mlp (the shipped digits checkpoints), or a model file any "
                            "front end reads (integer-graph .pt, quantized ONNX, ...)")
        g.add_argument("--data", metavar="DATA",
                       help="data the models run on: a built-in dataset (digits, fashion-mnist, "
                            "random-cifar) or a file (.npz, .npy, IDX, folder of class folders); "
                            "default: each model's own dataset")
        g.add_argument("--labels", metavar="FILE", help="labels of a .npy or IDX --data")
        g.add_argument("--limit", type=int, metavar="N", help="first N samples of the data only")
        g.add_argument("--quantizer", action="append", metavar="NAME",
                       help="quantizer (repeatable; default: every one with checkpoints)")
        g.add_argument("--checkpoint-p", action="append", metavar="match|all|P",
                       help="which checkpoints: 'match' (trained for the array's P; default), "
                            "'all', or a target P (repeatable)")
        g.add_argument("--grid", action="append", metavar="FIELD=V1,V2",
                       help="configuration field to cross (repeatable), e.g. pe_acc_bits=16,18,20")
        g.add_argument("--gemm", action="append", metavar="KEY=VALUE",
                       help="gemm workload parameter (t, k, o, dist, seed, bias; defaults "
                            "t=64 k=128 o=32 dist=uniform seed=0 bias=true)")
        g.add_argument("--no-adversarial", action="store_true",
                       help="skip adversarial inputs (then no point can be recommended)")
        g.add_argument("--synth", metavar="TARGET",
                       help="also synthesise each configuration for its area (generic, sky130 µm², ice40, ecp5, "
                            "xilinx; cached)")
        g.add_argument("--energy", nargs="?", const="default", metavar="TABLE",
                       help="also price one inference's dynamic energy (pJ) from exact action "
                            "counts: the 45 nm table, or TABLE (TOML of your technology; see "
                            "accel energy --help)")
        g.add_argument("--checkpoints", metavar="DIR",
                       help="checkpoint folder (default: the shipped models/checkpoints)")
        r = add_executor_arguments(parser, "local worker processes (default 2)")
        r.add_argument("--dry-run", action="store_true", help="list the points and stop")
        r.add_argument("--list", action="store_true",
                       help="list the models, quantizers and checkpoints a sweep can use (of "
                            "--checkpoints or the shipped ones) and stop")
        add_store_arguments(parser)
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.progress import Progress
        from sim.sweep.executors import make_executor
        from sim.sweep.grid import expand
        from sim.sweep.run import run_sweep
        from sim.sweep.store import ResultStore

        if args.list:
            return list_checkpoints(args)
        table, source = sweep_table(args)
        notes: list[str] = []
        points = expand(table, source=source, notes=notes)   # every check happens here
        executor = make_executor(args.executor, args.workers, args.scheduler)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.dry_run:
            lines = [f"{len(points)} points:"] + [f"  {p.label}" for p in points]
            emit(args, "\n".join(lines), {"points": [p.label for p in points], "notes": notes})
            return 0
        store = ResultStore(args.db)
        print(f"sweep: {len(points)} points, store {args.db}, {executor.describe()}",
              file=sys.stderr)
        summary = run_sweep(points, store, executor,
                            progress=Progress(len(points), "sweep", unit="points"))
        exported = export(store, args) if not summary.interrupted else []
        lines = [f"{summary.points} points: {summary.finished} run now, {summary.skipped} already "
                 f"in {args.db}"
                 + (f", {summary.by_others} by another sweep" if summary.by_others else "")
                 + f", {len(summary.failed)} failed, {summary.lost} lost ({summary.seconds:.1f} s)"]
        lines += [f"  FAILED {f['point']}: {f['error']}" for f in summary.failed]
        if summary.interrupted:
            lines.append(f"interrupted ({summary.interrupted}): {store.count()} finished points "
                         f"are kept in {args.db}; run the same command again to resume")
        elif not summary.complete:
            lines.append("incomplete: run the same command again to resume (finished points are kept)")
        lines += [f"wrote {p}" for p in exported]
        emit(args, "\n".join(lines), {**summary.to_dict(), "db": str(Path(args.db)),
                                      "exported": exported, "notes": notes})
        store.close()
        if summary.interrupted:
            from accel.cli import EXIT_INTERRUPTED

            return EXIT_INTERRUPTED.get(summary.interrupted, 130)
        return 0 if summary.complete else 1


def list_checkpoints(args: argparse.Namespace) -> int:
    """``accel sweep --list``: the models, quantizers and checkpoints a sweep can use."""
    from accel.progress import render_table
    from sim.sweep.catalog import GEMM_MODEL, Catalog

    catalog = Catalog(args.checkpoints)
    cks = catalog.checkpoints
    groups: dict[tuple[str, str, int, int], list[Any]] = {}
    for c in cks:
        groups.setdefault((c.model, c.quantizer, c.act_bits, c.weight_bits), []).append(c)
    rows = [[m, q, n, w, ", ".join(str(c.target_p) for c in g),
             "" if catalog.float_accuracy(m) is None else f"{100 * catalog.float_accuracy(m):.2f}"]
            for (m, q, n, w), g in groups.items()]
    text = render_table(["model", "quantizer", "N", "M", "trained for P", "float accuracy (%)"],
                        rows, title=f"checkpoints in {catalog.directory}")
    text += (f"\n\n{GEMM_MODEL!r} is a random GEMM workload (no checkpoint; --gemm t=.. k=.. o=..)."
             "\ncheckpoint_p = \"match\" runs each quantizer at the Ps it was trained for; "
             "\"all\" every checkpoint on every array; a number, that checkpoint everywhere.")
    emit(args, text, {"directory": str(catalog.directory), "checkpoints": [
        {"model": c.model, "quantizer": c.quantizer, "act_bits": c.act_bits,
         "weight_bits": c.weight_bits, "target_p": c.target_p, "path": str(c.path),
         "hash": c.hash} for c in cks]})
    return 0
