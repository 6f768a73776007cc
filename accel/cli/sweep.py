"""``accel sweep``: evaluate a grid of configurations x models x quantizers into a results store."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit
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


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db`` and the CSV / JSON exports, shared by ``accel sweep`` and ``accel report``."""
    g = parser.add_argument_group("results store")
    g.add_argument("--db", metavar="PATH", default=DEFAULT_DB,
                   help=f"SQLite results store (default {DEFAULT_DB}; created if missing)")
    g.add_argument("--csv", metavar="PATH", help="export every row as CSV")
    g.add_argument("--export-json", metavar="PATH", help="export every row as a JSON list")


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
    if args.no_adversarial:
        table["adversarial"] = False
    if args.checkpoints:
        table["checkpoints"] = args.checkpoints
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
  accel sweep sweep.toml --synth generic --csv results.csv
  accel sweep sweep.toml --executor dask --scheduler tcp://head-node:8786
  accel sweep sweep.toml --dry-run        # list the points, run nothing

A killed sweep resumes: run the same command again; finished points are skipped.
Sweep file format: see sim/sweep/grid.py (models, quantizers, checkpoint_p, [array], [grid],
[[points]], [gemm]); flags override the file.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sweep", nargs="?", metavar="SWEEP.toml",
                            help="sweep definition file (optional; flags override it)")
        g = parser.add_argument_group("what to sweep")
        g.add_argument("--model", action="append", metavar="NAME",
                       help="model to run (repeatable): gemm, or a checkpointed model such as "
                            "cnn or mlp (the shipped digits checkpoints)")
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
        g.add_argument("--checkpoints", metavar="DIR",
                       help="checkpoint folder (default: the shipped models/checkpoints)")
        r = parser.add_argument_group("how to run")
        r.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local worker processes or a Dask cluster (default local)")
        r.add_argument("--workers", type=int, default=2,
                       help="local worker processes (default 2)")
        r.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler address for --executor dask (tcp://host:8786)")
        r.add_argument("--dry-run", action="store_true", help="list the points and stop")
        add_store_arguments(parser)
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from sim.sweep.executors import make_executor
        from sim.sweep.grid import expand
        from sim.sweep.progress import Progress
        from sim.sweep.run import run_sweep
        from sim.sweep.store import ResultStore

        table, source = sweep_table(args)
        points = expand(table, source=source)            # every check happens here, before work
        executor = make_executor(args.executor, args.workers, args.scheduler)
        if args.dry_run:
            lines = [f"{len(points)} points:"] + [f"  {p.label}" for p in points]
            emit(args, "\n".join(lines), {"points": [p.label for p in points]})
            return 0
        store = ResultStore(args.db)
        print(f"sweep: {len(points)} points, store {args.db}, {executor.describe()}",
              file=sys.stderr)
        summary = run_sweep(points, store, executor, progress=Progress(len(points), "sweep "))
        exported = export(store, args)
        lines = [f"{summary.points} points: {summary.finished} run now, {summary.skipped} already "
                 f"in {args.db}, {len(summary.failed)} failed, {summary.lost} lost "
                 f"({summary.seconds:.1f} s)"]
        lines += [f"  FAILED {f['point']}: {f['error']}" for f in summary.failed]
        if not summary.complete:
            lines.append("incomplete: run the same command again to resume (finished points are kept)")
        lines += [f"wrote {p}" for p in exported]
        emit(args, "\n".join(lines), {**summary.to_dict(), "db": str(Path(args.db)),
                                      "exported": exported})
        store.close()
        return 0 if summary.complete else 1
