"""``accel cosim``: run a whole model with every GEMM on the generated RTL (Verilator harness)."""

from __future__ import annotations

import argparse
import sys

from accel.cli.base import Verb, add_executor_arguments, add_json_argument, emit, output_path
from accel.cli.inputs import add_data_arguments, add_model_arguments
from accel.config import add_config_arguments, config_from_args

DEFAULT_OUT = "out/cosim"


class Cosim(Verb):
    help = ("co-simulate a whole model on the generated Verilog: every GEMM on a compiled "
            "Verilator harness, checked against the golden model and the cycle model")
    examples = """examples:
  accel cosim models/checkpoints/cnn_a2qplus_n8_p20_s0.pt --pe-acc-bits 20
  accel cosim models/checkpoints/mlp_a2q_n8_p16_s0.pt --pe-acc-bits 16 --overflow saturate \\
      --rows 4 --cols 4 --limit 64 --json out/cosim.json
  accel cosim models/checkpoints/cnn_baseline_n4_p32_s0.pt --act-bits 4 --weight-bits 4 \\
      --overq-mode range --overq-cascade 1 --pe-acc-bits 16 --gaps 0.2 --stalls 0.1
  accel cosim model.pt --executor dask --scheduler tcp://host:8786

Every GEMM (one per layer, batch and group) runs from reset on the RTL; each y beat (values and
both overflow flags) is compared with the golden model, and under the canonical stimulus (no
--gaps/--stalls) each GEMM's cycles with the closed form. Accuracy comes from the RTL's own
outputs. Finished GEMMs are cached by content in OUT/gemms: rerun the same command to resume.
A failing GEMM is saved in OUT/replay with a one-line 'accel verify --replay' command that
reruns it under cocotb with waves. Harness builds are cached by configuration hash."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_model_arguments(parser)
        # small GEMMs: they run in parallel, resume one by one and replay quickly under cocotb
        add_data_arguments(parser, batch=32, batch_help="images per GEMM: one GEMM per layer, "
                           "batch and group, each from reset")
        s = parser.add_argument_group("stimulus (default canonical: no gaps, y_ready = 1)")
        s.add_argument("--gaps", type=float, default=0.0, metavar="P",
                       help="probability of a gap before each w, b and x beat (default 0)")
        s.add_argument("--max-gap", type=int, default=4, metavar="EDGES",
                       help="longest gap in clock edges (default 4)")
        s.add_argument("--stalls", type=float, default=0.0, metavar="P",
                       help="probability per clock edge that y_ready drops (default 0)")
        s.add_argument("--max-stall", type=int, default=8, metavar="EDGES",
                       help="longest y_ready drop in clock edges (default 8)")
        s.add_argument("--stimulus-seed", type=int, default=1, metavar="INT",
                       help="seed of the random stimulus (default 1)")
        r = add_executor_arguments(
            parser, "local worker processes; 1 runs the GEMMs in this process (default 2)")
        output_path(r, "-o", "--out-dir", kind="dir", default=DEFAULT_OUT,
                    help=f"GEMM result cache and replay folders (default {DEFAULT_OUT})")
        r.add_argument("--fresh", action="store_true",
                       help="run every GEMM again, ignoring the cached results")
        output_path(r, "--build-root", kind="dir", default=None, metavar="DIR",
                    help="build cache root (default $ACCEL_SIM_BUILD or ./sim_build)")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.cli.inputs import batches, data_from_args, model_from_args
        from accel.progress import Progress, activity
        from sim.cosim.gemm import StimulusSpec
        from sim.cosim.run import cosim, gemm_count
        from sim.cosim.harness import HarnessError
        from sim.runner import SimulatorMissing, VerifyError, build_harness
        from sim.sweep.executors import make_executor

        config = config_from_args(args)
        for flag, p in (("--gaps", args.gaps), ("--stalls", args.stalls)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{flag} must be a probability in [0, 1), not {p:g}")
        for flag, v in (("--max-gap", args.max_gap), ("--max-stall", args.max_stall)):
            if v < 1:
                raise ValueError(f"{flag} must be at least 1 clock edge, not {v}")
        stimulus = StimulusSpec(args.gaps, args.max_gap if args.gaps else 0,
                                args.stalls, args.max_stall if args.stalls else 0)
        model = model_from_args(args)
        data = data_from_args(args, model)
        executor = make_executor(args.executor, args.workers, args.scheduler)
        if args.executor == "local" and args.workers == 1:
            executor = None                   # one worker: no process to start
        _, n = batches(data, args.batch, args.limit)
        try:
            with activity(f"Verilator build of the {config.name} harness (cached by "
                          "configuration hash)"):
                build_harness(config, args.build_root)
        except SimulatorMissing as e:
            print(f"accel cosim: {e}", file=sys.stderr)
            return 2
        except VerifyError as e:
            print(f"accel cosim: {e}", file=sys.stderr)
            return 1
        total = gemm_count(model.graph, n, args.batch)
        print(f"cosim: {model.source} on {config.name}, {n} samples of {data.name} in batches of "
              f"{args.batch}: {total} GEMMs, "
              + ("in this process" if executor is None else executor.describe()), file=sys.stderr)
        bar = Progress(total, "cosim", unit="GEMMs")

        def step(out: object, job: object) -> None:
            bar.advance(1, note=f"{job.label}" + (" (cached)" if out.cached else "")
                        + ("" if out.ok else " FAILED"))

        try:
            with bar:
                res = cosim(model.graph, lambda block: batches(data, block, args.limit), config,
                            batch=args.batch, executor=executor, stimulus=stimulus,
                            seed=args.stimulus_seed, out_dir=args.out_dir, fresh=args.fresh,
                            reference=model.reference, root=args.build_root, progress=step)
        except HarnessError as e:
            print(f"accel cosim: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as e:
            from accel.cli import EXIT_INTERRUPTED

            which = str(e) or "SIGINT"
            print(f"accel cosim: interrupted ({which}) after {bar.done} of {total} GEMMs; the "
                  f"finished ones are cached in {args.out_dir}/gemms: run the same command "
                  "again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED.get(which, 130)
        data_out = {**res.to_dict(), "model": model.source, "format": model.format,
                    "data": data.name}
        emit(args, f"model: {model.source} ({model.format}); data: {data.name}\n" + res.table(),
             data_out)
        return 0 if res.ok else 1
