"""``accel certify``: the static overflow guarantee of a model's layers on an array (SPEC section 5)."""

from __future__ import annotations

import argparse
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit
from accel.cli.simulate import DATASETS
from accel.config import add_config_arguments, config_from_args


def _table(cert: dict[str, Any]) -> str:
    data = any("data_min_p" in r for r in cert["layers"])
    cfg = cert["config"]
    head = (f"{'layer':<18} {'K':>6} {'F':>3} {'input codes':>13} {'minP':>4} {'P ok':>4} "
            f"{'Q(w)':>4} {'Q(+b)':>5} {'bias':>4} {'Q ok':>4} {'A2Q P':>5}")
    if data:
        head += f" {'data P':>6} {'data Q':>6} {'PE ev':>8} {'acc ev':>8}"
    lines = [head, "-" * len(head)]
    for r in cert["layers"]:
        rng = f"[{r['input_range'][0]}, {r['input_range'][1]}]"
        a2q = r["accumulator_bit_width"]
        a2q_s = "-" if a2q is None else f"{a2q}{'' if r['meets_accumulator_bit_width'] else '!'}"
        line = (f"{r['name'][:18]:<18} {r['K']:>6} {r['folds']:>3} {rng:>13} {r['min_safe_p']:>4} "
                f"{'yes' if r['safe_p'] else 'NO':>4} {r['min_safe_q_weights']:>4} "
                f"{r['min_safe_q']:>5} {r['bias_bits']:>4} {'yes' if r['safe_q'] else 'NO':>4} "
                f"{a2q_s:>5}")
        if data:
            line += (f" {r.get('data_min_p', '-'):>6} {r.get('data_min_q', '-'):>6} "
                     f"{r.get('data_pe_events', '-'):>8} {r.get('data_acc_events', '-'):>8}")
        lines.append(line)
    verdict = "SAFE" if cert["safe"] else "NOT SAFE"
    lines += ["", f"R = {cfg['rows']}, P = {cfg['pe_acc_bits']}, Q = {cfg['out_acc_bits']}"
                  f"{', OverQ ' + cfg['overq']['mode'] if cfg.get('overq') else ''}: {verdict} "
                  f"for every input in the layers' code ranges; smallest safe P = "
                  f"{cert['min_safe_p']}, Q = {cert['min_safe_q']}",
              "minP: per fold of R rows (exact range test, no bias); Q(w): whole K, weights only; "
              "Q(+b): with the preloaded bias (zero-point correction folded); bias: its own bits; "
              "A2Q P: the width the weight quantizer targets ('!': the weights miss it)"]
    if data:
        lines.append(f"data P / data Q: smallest P / Q with no event on the {cert['data']['samples']} "
                     f"samples of {cert['data']['dataset']} ({cert['data']['split']}); events at "
                     "the given P and Q")
    return "\n".join(lines)


class Certify(Verb):
    help = ("certify a model's accumulators: per layer, whether P (per fold of R rows) and Q (whole "
            "K with the bias) can overflow for any input, the smallest safe widths, and with --data "
            "the widths the data needs")
    examples = """examples:
  accel certify models/checkpoints/cnn_a2qplus_n8_p16_s0.pt --rows 8 --pe-acc-bits 16
  accel certify models/checkpoints/cnn_baseline_n8_p32_s0.pt --rows 8 --pe-acc-bits 20 --data digits
  accel certify model.pt2 --rows 16 --pe-acc-bits 24 --out-acc-bits 32 --act-signed --json out/cert.json
  accel certify models/checkpoints/cnn_baseline_n4_p32_s0.pt --act-bits 4 --weight-bits 4 \\
      --rows 4 --pe-acc-bits 16 --overq-mode range

MODEL is any file accel reads (accel.frontends.load_model): an integer-graph checkpoint (.pt, e.g.
models/checkpoints/ or a Brevitas model saved with accel.frontends.brevitas.from_brevitas(...).save),
or a torchao pt2e program (.pt2). The bound is the exact range test of SPEC section 5 on the raw
code range each layer's input edge carries (a ReLU or clamp narrows it; OverQ lanes widen it to
2N bits); it holds for every input, unlike the data columns."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", help="model file (.pt graph checkpoint, .pt2)")
        parser.add_argument("--format", default=None,
                            help="the model's format when its suffix does not say it")
        data = parser.add_argument_group("data (optional: the bound next to what the data needs)")
        data.add_argument("--data", choices=DATASETS, default=None,
                          help="run the model on this dataset with exact partial-sum extremes")
        data.add_argument("--split", choices=("train", "test"), default="test",
                          help="dataset split (default test)")
        data.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
        data.add_argument("--limit", type=int, default=None, help="first N samples only")
        data.add_argument("--seed", type=int, default=0, help="seed of random data (default 0)")
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.frontends import load_model
        from accel.quant.report import certify

        if args.batch < 1:
            raise ValueError(f"--batch must be at least 1, not {args.batch}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, not {args.limit}")
        config = config_from_args(args)
        model = load_model(args.model, args.format)
        measured, data = None, None
        if args.data:
            measured, data = _measure(model.graph, config, args)
        cert = certify(model.graph, config, measured)
        cert.update(model=str(args.model), format=model.format, semantics=model.semantics,
                    data=data)
        emit(args, _table(cert), cert)
        return 0


def _measure(graph: Any, config: Any, args: argparse.Namespace) -> tuple[dict, dict]:
    """Per-layer statistics of the model on ``--data`` (the data path of ``accel simulate``)."""
    from accel.backends import GoldenBackend
    from accel.cli.simulate import _batches, _dataset
    from accel.executor import simulate
    from accel.progress import Progress

    x, y = _dataset(args.data, args.split, args.seed)
    batches, n = _batches(x, y, args.batch, args.limit)
    with Progress(n, "certify: data", unit="samples") as bar:
        res = simulate(graph, batches, GoldenBackend(config, extremes=config.overq is None),
                       progress=bar.advance)
    return ({s.name: s for s in res.layers},
            {"dataset": args.data, "split": args.split, "samples": res.samples,
             "accuracy": res.accuracy})
