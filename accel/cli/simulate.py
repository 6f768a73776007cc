"""``accel simulate``: run a whole model on the simulated array (the executor, golden back end)."""

from __future__ import annotations

import argparse
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit
from accel.cli.inputs import add_data_arguments, add_model_arguments
from accel.config import add_config_arguments, config_from_args


def _table(res: Any) -> str:
    head = (f"{'layer':<22} {'kind':<6} {'T':>7} {'K':>5} {'O':>5} {'F':>3} {'cycles':>11} "
            f"{'util':>5} {'scalesim':>11} {'PE ev':>8} {'acc ev':>8} {'affected':>8} "
            f"{'|psum|max':>10} {'minP':>4} {'minQ':>4} {'ref=':>7}")
    lines = [head, "-" * len(head)]
    for s in res.layers:
        ext = s.extremes_measured
        eq = f"{s.agreement['equal_share']:.4f}" if s.agreement else "-"
        lines.append(f"{s.name[:22]:<22} {s.kind[:6]:<6} {s.t:>7} {s.k:>5} {s.o:>5} {s.folds:>3} "
                     f"{s.cycles:>11,} {s.utilisation:>5.2f} {s.scalesim_cycles:>11,} "
                     f"{s.pe_events:>8} {s.acc_events:>8} {s.affected_share:>8.4f} "
                     f"{s.largest_psum if ext else '-':>10} {s.min_pe_bits if ext else '-':>4} "
                     f"{s.min_out_bits if ext else '-':>4} {eq:>7}")
    acc, ref = res.accuracy, res.reference_accuracy
    acc_s = "n/a" if acc is None else f"{100 * acc:.2f} %"
    ref_s = "" if ref is None else f" (the source runtime's own: {100 * ref:.2f} %)"
    lines += ["", f"model: {res.extra['model']} ({res.extra['format']}); data: {res.extra['data']}",
              f"semantics: {res.semantics}",
              f"samples {res.samples}, accuracy {acc_s}{ref_s}, "
              f"total cycles {res.total_cycles:,}, wall {res.wall_s:.1f} s"]
    return "\n".join(lines)


class Simulate(Verb):
    help = "run a model on the simulated array: per-layer cycles, overflow and accuracy"
    examples = """examples:
  accel simulate models/checkpoints/cnn_a2q_n8_p16_s0.pt --pe-acc-bits 16
  accel simulate models/checkpoints/cnn_baseline_n4_p32_s0.pt --act-bits 4 --weight-bits 4 \\
      --overq-mode range --overq-cascade 2 --pe-acc-bits 20 --json out/sim.json
  accel simulate resnet18-random --limit 32 --rows 32 --cols 32 --pe-acc-bits 20 --no-extremes
  accel simulate model.onnx --data images.npz --scale 0.00392156862745098 --rows 16 --cols 16

The ref= column is the share of the layer's output codes equal to the source runtime's own
(imported models whose runtime runs here)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_model_arguments(parser)
        add_data_arguments(parser)
        parser.add_argument("--no-extremes", action="store_true",
                            help="skip the exact partial-sum extremes (largest psum, minimum "
                                 "P and Q); values and events are the same, several times faster")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.backends import GoldenBackend
        from accel.cli.inputs import batches, data_from_args, model_from_args
        from accel.executor import simulate
        from accel.progress import Progress
        from sim.cycles import CycleMeter

        config = config_from_args(args)
        model = model_from_args(args)
        data = data_from_args(args, model)
        stream, n = batches(data, args.batch, args.limit)
        meter = CycleMeter(config)
        backend = GoldenBackend(config, extremes=not args.no_extremes)
        with Progress(n, "simulate", unit="samples") as bar:
            res = simulate(model.graph, stream, backend, [meter], reference=model.reference,
                           progress=bar.advance)
        res.timing = meter.tm.to_dict()
        res.extra.update(model=model.source, format=model.format, data=data.name,
                         frontend_semantics=model.semantics)
        emit(args, _table(res), res.to_dict())
        return 0
