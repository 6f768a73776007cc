"""``accel verify``: run the cocotb suite on one array configuration and summarise the results."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import add_config_arguments, config_from_args

SCENARIO_NAMES = ("all", "canonical", "random", "stall", "extreme", "reset")


class Verify(Verb):
    help = "verify the generated RTL of one configuration against the golden model (cocotb)"
    examples = """examples:
  accel verify --rows 4 --cols 4 --pe-acc-bits 16 --overflow saturate
  accel verify --config array.toml --sim icarus --seed 7 --scenario stall --waves fst
  accel verify --rows 8 --cols 8 --xcheck --json out/verify.json
  accel verify --config out/cosim/replay/conv2-b3-g0/config.json \
      --replay out/cosim/replay/conv2-b3-g0 --waves fst

Scenarios: canonical (multi-fold GEMMs, canonical stimulus: cycles and latency measured),
random (random shapes, bias, T = 1), stall (random gaps, long y back-pressure), extreme
(operands at the rails, overflow on purpose), reset (reset with beats in flight, then a fresh
job); 'all' runs every one. --replay DIR runs one saved GEMM job instead (its operands and its
stimulus edge for edge, as accel cosim saves a failing GEMM). Builds are cached under sim_build/
by configuration hash.
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        run = parser.add_argument_group("simulation")
        run.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                         help="simulator (default verilator)")
        run.add_argument("--seed", type=int, default=1, help="seed of every random choice "
                         "(default 1)")
        run.add_argument("--scenario", choices=SCENARIO_NAMES, default="all",
                         help="which jobs to run (default all)")
        run.add_argument("--replay", metavar="DIR", default=None,
                         help="run the one GEMM job saved in DIR (x.npy, w.npy, bias.npy, "
                              "stimulus.npz; written by accel cosim for a failing GEMM) "
                              "instead of a scenario")
        run.add_argument("--waves", nargs="?", const="fst", choices=("fst", "vcd"), default=None,
                         help="dump waves (FST unless 'vcd'; Icarus always writes FST)")
        run.add_argument("--jobs", type=int, default=None, metavar="N",
                         help="run only the first N jobs (GEMMs from reset) of the scenario "
                              "(default: all of them)")
        run.add_argument("--xcheck", action="store_true",
                         help="Verilator with X randomised, run with two +verilator+seed values "
                              "that must give identical y")
        output_path(run, "--build-root", kind="dir", default=None, metavar="DIR",
                         help="build cache root (default $ACCEL_SIM_BUILD or ./sim_build)")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        config = config_from_args(args)
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
        if args.replay is not None:
            from pathlib import Path

            if not Path(args.replay).is_dir():
                raise ValueError(f"--replay {args.replay}: no such folder; give the folder of a "
                                 "saved GEMM job (x.npy, w.npy, stimulus.npz)")
            if args.scenario != "all" or args.xcheck:
                raise ValueError("--replay runs one saved job: it cannot be combined with "
                                 "--scenario or --xcheck")
            args.scenario = "replay"
        if args.xcheck and args.sim != "verilator":
            raise ValueError("--xcheck needs --sim verilator (X randomisation is a Verilator "
                             "feature)")
        from accel.progress import activity
        from sim.runner import SimulatorMissing, VerifyError, build, run, xcheck

        print(f"verifying {config.name} on {args.sim} (scenario {args.scenario}, seed "
              f"{args.seed})", file=sys.stderr)
        try:
            with activity(f"{args.sim} build of {config.name} (cached by configuration hash)"):
                build(config, args.sim, args.waves, args.xcheck, args.build_root)
            with activity(f"simulating scenario {args.scenario}"):
                if args.xcheck:
                    runs = xcheck(config, args.scenario, args.seed, root=args.build_root)
                    results = {**runs[0], "xcheck_runs": len(runs)}
                else:
                    results = run(config, args.scenario, args.seed, args.sim, waves=args.waves,
                                  max_jobs=args.jobs, root=args.build_root, replay=args.replay)
        except SimulatorMissing as e:
            print(f"accel verify: {e}", file=sys.stderr)
            return 2
        except VerifyError as e:
            print(f"accel verify: FAILED\n{e}", file=sys.stderr)
            if e.results:
                emit(args, summarise(e.results) + "\nFAILED", e.results)
            return 1
        emit(args, summarise(results) + "\n" + verdict(results), results)
        return 0


def verdict(res: dict[str, Any]) -> str:
    """The last line of a passing run: ``PASSED on verilator: ...``."""
    return (f"PASSED on {res.get('simulator')}: {res.get('y_checked', 0)} y beats checked in "
            f"{len(res.get('jobs', []))} jobs, {len(res.get('mismatches', []))} mismatches, "
            f"{sum(1 for v in res.get('coverage', {}).get('bins', {}).values() if v)} coverage "
            "bins hit")


def summarise(res: dict[str, Any]) -> str:
    """Human summary of a results dict written by the testbench."""
    cov = res.get("coverage", {})
    bins = cov.get("bins", {})
    lines = [
        f"config {res.get('config_hash')}  scenario {res.get('scenario')}  seed {res.get('seed')}"
        f"  simulator {res.get('simulator')}",
        "transfers: " + ", ".join(f"{k} {v}" for k, v in res.get("transfers", {}).items()),
        f"y beats checked: {res.get('y_checked', 0)}   mismatches: {len(res.get('mismatches', []))}",
        f"coverage: {sum(1 for v in bins.values() if v)} bins hit"
        + (f", MISSING {', '.join(cov['missing'])}" if cov.get("missing") else ""),
    ]
    lines += [f"  {k:<26} {v}" for k, v in bins.items()]
    lines.append("jobs (T, K, O; cycles under canonical stimulus):")
    for j in res.get("jobs", []):
        cyc = j.get("cycles", "-" if j["complete"] else "reset")
        lines.append(f"  {j['name']:<20} T={j['T']:<4} K={j['K']:<4} O={j['O']:<4} folds "
                     f"{j['folds']} groups {j['groups']}  cycles {cyc}")
    lines.append(f"simulated: {res.get('edges', 0)} edges at "
                 f"{res.get('cycles_per_second', 0.0):,.0f} cycles/s")
    if res.get("error"):
        lines.append(f"error: {res['error']}")
    return "\n".join(lines)
