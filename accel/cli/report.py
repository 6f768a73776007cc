"""``accel report``: plots, an HTML page and a recommendation from a sweep's results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.cli.sweep import add_store_arguments, export

DEFAULT_OUT = "out/report"


class Report(Verb):
    help = "render a sweep's results: PNG plots, one HTML page, the recommended configuration"
    examples = """examples:
  accel report                                   # results.db -> out/report/index.html
  accel report --db sweep.db -o site/ --tolerance 0.5
  accel report --csv results.csv --export-json results.json --json summary.json
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        output_path(parser, "-o", "--out-dir", kind="dir", default=DEFAULT_OUT,
                            help=f"folder for the plots and index.html (default {DEFAULT_OUT})")
        parser.add_argument("--tolerance", type=float, default=1.0,
                            help="accuracy tolerance of the recommendation, in points below the "
                                 "float model (default 1.0)")
        add_store_arguments(parser, writes=False)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from sim.sweep.errors import SweepError
        from sim.sweep.recommend import recommend
        from sim.sweep.report import write_report
        from sim.sweep.store import ResultStore

        if args.tolerance < 0:
            raise SweepError(f"--tolerance must be >= 0 accuracy points, not {args.tolerance}")
        if not Path(args.db).is_file():
            raise SweepError(f"results store {args.db} does not exist; run accel sweep first "
                             "(or give --db PATH)")
        store = ResultStore(args.db)
        rows = store.rows()
        paths = write_report(rows, args.out_dir, store.failures(), args.tolerance)
        recs = recommend(rows, args.tolerance)
        exported = export(store, args)
        store.close()
        lines = [r.summary() for r in recs]
        lines += [f"wrote {paths.html} and {len(paths.plots)} plots"] + [f"wrote {p}" for p in exported]
        emit(args, "\n".join(lines), {"html": str(paths.html),
                                      "plots": {k: str(v) for k, v in paths.plots.items()},
                                      "recommendations": [r.to_dict() for r in recs],
                                      "exported": exported})
        return 0
