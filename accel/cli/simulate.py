"""``accel simulate``: run a whole model on the simulated array (the executor, golden back end)."""

from __future__ import annotations

import argparse
from typing import Any, Iterator

from accel.cli.base import Verb, add_json_argument, emit
from accel.config import add_config_arguments, config_from_args

DATASETS = ("digits", "random-cifar")
BUILTIN = ("resnet18-random", "digits-cnn-random")


def _batches(x: Any, y: Any, batch: int, limit: int | None) -> tuple[Iterator, int]:
    n = x.shape[0] if limit is None else min(limit, x.shape[0])
    return (((x[i:min(i + batch, n)], None if y is None else y[i:min(i + batch, n)])
             for i in range(0, n, batch)), n)


def _dataset(name: str, split: str, seed: int) -> tuple[Any, Any]:
    import numpy as np

    if name == "digits":
        from models.digits import load_split

        xtr, ytr, xte, yte = load_split()
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        return x.numpy(), y.numpy()
    rng = np.random.default_rng(seed + (split == "test"))
    return rng.random((256, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 256)


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(graph, reference)``: the integer graph and, for a built-in model, its float module's
    forward as the reference (a checkpoint has none)."""
    if args.checkpoint:
        from accel.graph import load_graph

        return load_graph(args.checkpoint), None
    import torch

    from models.random_nets import reference_graph

    graph, module = reference_graph(args.model, seed=args.seed)

    def reference(x: Any) -> dict[str, Any]:
        with torch.no_grad():
            return {"logits": module(torch.from_numpy(x)).numpy()}

    return graph, reference


def _table(res: Any) -> str:
    head = (f"{'layer':<22} {'kind':<6} {'T':>7} {'K':>5} {'O':>5} {'F':>3} {'cycles':>11} "
            f"{'util':>5} {'scalesim':>11} {'PE ev':>8} {'acc ev':>8} {'affected':>8} "
            f"{'|psum|max':>10} {'minP':>4} {'minQ':>4}")
    lines = [head, "-" * len(head)]
    for s in res.layers:
        ext = s.extremes_measured
        lines.append(f"{s.name[:22]:<22} {s.kind[:6]:<6} {s.t:>7} {s.k:>5} {s.o:>5} {s.folds:>3} "
                     f"{s.cycles:>11,} {s.utilisation:>5.2f} {s.scalesim_cycles:>11,} "
                     f"{s.pe_events:>8} {s.acc_events:>8} {s.affected_share:>8.4f} "
                     f"{s.largest_psum if ext else '-':>10} {s.min_pe_bits if ext else '-':>4} "
                     f"{s.min_out_bits if ext else '-':>4}")
    acc, ref = res.accuracy, res.reference_accuracy
    acc_s = "n/a" if acc is None else f"{100 * acc:.2f} %"
    ref_s = "" if ref is None else f" (the model's own: {100 * ref:.2f} %)"
    lines += ["", f"semantics: {res.semantics}",
              f"samples {res.samples}, accuracy {acc_s}{ref_s}, "
              f"total cycles {res.total_cycles:,}, wall {res.wall_s:.1f} s"]
    return "\n".join(lines)


class Simulate(Verb):
    help = "run a model on the simulated array: per-layer cycles, overflow and accuracy"
    examples = """examples:
  accel simulate --model resnet18-random --dataset random-cifar --limit 32 --rows 32 --cols 32 --pe-acc-bits 20
  accel simulate --checkpoint models/checkpoints/cnn_a2q_n8_p16_s0.pt --dataset digits --pe-acc-bits 16
  accel simulate --model digits-cnn-random --pe-acc-bits 18 --overflow saturate --json out/sim.json
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        src = parser.add_argument_group("model (one of)")
        ex = src.add_mutually_exclusive_group()
        ex.add_argument("--model", choices=BUILTIN, default="digits-cnn-random",
                        help="built-in reference model with random int8 weights, quantized "
                             "after training on random inputs (default digits-cnn-random)")
        ex.add_argument("--checkpoint", metavar="PATH",
                        help="integer-model checkpoint written by accel quantize")
        data = parser.add_argument_group("data")
        data.add_argument("--dataset", choices=DATASETS, default=None,
                          help="digits (scikit-learn 8x8) or random-cifar (random 3x32x32 "
                               "images, random labels) (default: random-cifar for "
                               "resnet18-random, digits otherwise)")
        data.add_argument("--split", choices=("train", "test"), default="test",
                          help="dataset split (default test)")
        data.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
        data.add_argument("--limit", type=int, default=None, help="first N samples only")
        data.add_argument("--seed", type=int, default=0, help="seed of built-in models/data (default 0)")
        parser.add_argument("--no-extremes", action="store_true",
                            help="skip the exact partial-sum extremes (largest psum, minimum "
                                 "P and Q); values and events are the same, several times faster")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.backends import GoldenBackend
        from accel.executor import simulate
        from accel.progress import Progress
        from sim.cycles import CycleMeter
        from models.random_nets import MODEL_DATASETS

        if args.batch < 1:
            raise ValueError(f"--batch must be at least 1, not {args.batch}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, not {args.limit}")
        config = config_from_args(args)
        graph, reference = load_model(args)
        dataset = args.dataset or ("digits" if args.checkpoint else MODEL_DATASETS[args.model])
        x, y = _dataset(dataset, args.split, args.seed)
        batches, n = _batches(x, y, args.batch, args.limit)
        meter = CycleMeter(config)
        with Progress(n, "simulate", unit="samples") as bar:
            res = simulate(graph, batches, GoldenBackend(config, extremes=not args.no_extremes),
                           [meter], reference=reference, progress=bar.advance)
        res.timing = meter.tm.to_dict()
        emit(args, _table(res), res.to_dict())
        return 0
