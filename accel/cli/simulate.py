"""``accel simulate``: run a whole model on the transaction-level model of the array."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Iterator

from accel.cli.base import Verb, add_json_argument, emit
from accel.config import add_config_arguments, config_from_args

DATASETS = ("digits", "random-cifar")


def _progress(total: int) -> Any:
    """A one-line progress bar on stderr: call with the number of samples just done."""
    done = [0]
    start = time.perf_counter()

    def step(n: int) -> None:
        done[0] += n
        frac = done[0] / max(1, total)
        bar = "#" * int(30 * frac)
        rate = done[0] / max(1e-9, time.perf_counter() - start)
        print(f"\r  [{bar:<30}] {done[0]}/{total} samples, {rate:.1f}/s", end="",
              file=sys.stderr, flush=True)
        if done[0] >= total:
            print(file=sys.stderr)

    return step


def _batches(x: Any, y: Any, batch: int, limit: int | None) -> tuple[Iterator, int]:
    n = x.shape[0] if limit is None else min(limit, x.shape[0])
    return (((x[i:min(i + batch, n)], None if y is None else y[i:min(i + batch, n)])
             for i in range(0, n, batch)), n)


def _dataset(name: str, split: str, seed: int) -> tuple[Any, Any]:
    import torch

    if name == "digits":
        from models.digits import load_split

        xtr, ytr, xte, yte = load_split()
        return (xtr, ytr) if split == "train" else (xte, yte)
    gen = torch.Generator().manual_seed(seed + (split == "test"))
    return torch.rand(256, 3, 32, 32, generator=gen), torch.randint(0, 10, (256,), generator=gen)


def _load_model(args: argparse.Namespace) -> tuple[Any, bool]:
    """``(model, reference)``: the network and whether its own float forward is a fair reference."""
    from sim.tlm.reference import REFERENCE_MODELS, from_int_model

    if args.checkpoint:
        from accel.quant.intmodel import load_int_model

        return from_int_model(load_int_model(args.checkpoint)), False
    return REFERENCE_MODELS[args.model](seed=args.seed), True


def _table(res: Any) -> str:
    head = (f"{'layer':<22} {'kind':<6} {'T':>7} {'K':>5} {'O':>5} {'F':>3} {'cycles':>11} "
            f"{'util':>5} {'scalesim':>11} {'PE ev':>8} {'acc ev':>8} {'affected':>8} "
            f"{'|psum|max':>10} {'minP':>4} {'minQ':>4} {'torch=':>7}")
    lines = [head, "-" * len(head)]
    for s in res.layers:
        eq = f"{s.torch['equal_share']:.4f}" if s.torch else "-"
        lines.append(f"{s.name[:22]:<22} {s.kind[:6]:<6} {s.t:>7} {s.k:>5} {s.o:>5} {s.folds:>3} "
                     f"{s.cycles:>11,} {s.utilisation:>5.2f} {s.scalesim_cycles:>11,} "
                     f"{s.pe_events:>8} {s.acc_events:>8} {s.affected_share:>8.4f} "
                     f"{s.largest_psum if s.extremes_measured else '-':>10} "
                     f"{s.min_pe_bits if s.extremes_measured else '-':>4} "
                     f"{s.min_out_bits if s.extremes_measured else '-':>4} {eq:>7}")
    d = res.to_dict()
    acc = "n/a" if d["accuracy"] is None else f"{d['accuracy']:.4f}"
    ref = "n/a" if d["reference_accuracy"] is None else f"{d['reference_accuracy']:.4f}"
    lines += ["", f"semantics: {res.semantics}",
              f"samples {res.samples}, accuracy {acc} (model's own: {ref}), "
              f"total cycles {res.total_cycles:,}, wall {res.wall_s:.1f} s"]
    return "\n".join(lines)


class Simulate(Verb):
    help = "run a model on the transaction-level model: per-layer cycles, overflow and accuracy"
    examples = """examples:
  accel simulate --model resnet18-random --dataset random-cifar --limit 32 --rows 32 --cols 32 --pe-acc-bits 20
  accel simulate --checkpoint models/checkpoints/cnn_a2q_p16.pt --dataset digits --split test --pe-acc-bits 16
  accel simulate --model digits-cnn-random --pe-acc-bits 18 --overflow saturate --json out/sim.json
"""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        src = parser.add_argument_group("model (one of)")
        ex = src.add_mutually_exclusive_group()
        ex.add_argument("--model", choices=["resnet18-random", "digits-cnn-random"],
                        default="digits-cnn-random",
                        help="built-in reference model with random int8 weights "
                             "(default digits-cnn-random)")
        ex.add_argument("--checkpoint", metavar="PATH",
                        help="integer-model checkpoint written by accel quantize")
        data = parser.add_argument_group("data")
        data.add_argument("--dataset", choices=DATASETS, default=None,
                          help="digits (scikit-learn 8x8) or random-cifar (random 3x32x32 "
                               "images, random labels) (default: random-cifar for the built-in "
                               "model, digits otherwise)")
        data.add_argument("--split", choices=("train", "test"), default="test",
                          help="dataset split (default test)")
        data.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
        data.add_argument("--limit", type=int, default=None, help="first N samples only")
        data.add_argument("--seed", type=int, default=0, help="seed of built-in models/data (default 0)")
        parser.add_argument("--no-extremes", action="store_true",
                            help="skip the exact partial-sum extremes (largest psum, minimum "
                                 "P and Q): values and events then come from the block screen, "
                                 "about 4x faster")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from sim.tlm.model import simulate_model

        if args.batch < 1:
            raise ValueError(f"--batch must be at least 1, not {args.batch}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, not {args.limit}")
        config = config_from_args(args)
        model, reference = _load_model(args)
        from sim.tlm.reference import MODEL_DATASETS

        dataset = args.dataset or ("digits" if args.checkpoint else MODEL_DATASETS[args.model])
        x, y = _dataset(dataset, args.split, args.seed)
        batches, n = _batches(x, y, args.batch, args.limit)
        res = simulate_model(model, batches, config, reference=reference,
                             extremes=not args.no_extremes,
                             progress=_progress(n))
        emit(args, _table(res), res.to_dict())
        return 0
