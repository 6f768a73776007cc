"""``accel certify``: the static overflow guarantee of a model's layers on an array (SPEC section 5)."""

from __future__ import annotations

import argparse
from typing import Any

from accel.cli.base import Verb, add_json_argument, emit
from accel.cli.inputs import add_data_arguments, add_model_arguments
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
              "A2Q P: the width an A2Q / A2Q+ weight quantizer targets (weights only, whole K; "
              "'!': the weights miss it)"]
    if data:
        lines.append(f"data P / data Q: smallest P / Q with no event on the {cert['data']['samples']} "
                     f"samples of {cert['data']['dataset']}; events at "
                     "the given P and Q")
    return "\n".join(lines)


class Certify(Verb):
    help = ("certify a model's accumulators: per layer, whether P (per fold of R rows) and Q (whole "
            "K with the bias) can overflow for any input, the smallest safe widths, and with --data "
            "the widths the data needs")
    examples = """examples:
  accel certify models/checkpoints/cnn_a2qplus_n8_p16_s0.pt --rows 8 --pe-acc-bits 16
  accel certify models/checkpoints/cnn_baseline_n8_p32_s0.pt --rows 8 --pe-acc-bits 20 --data digits
  accel certify model.pt2 --data images.npz --scale 0.00392156862745098 --rows 16 --pe-acc-bits 24
  accel certify model.pt2 --rows 16 --pe-acc-bits 24 --out-acc-bits 32 --act-signed --json out/cert.json
  accel certify models/checkpoints/cnn_baseline_n4_p32_s0.pt --act-bits 4 --weight-bits 4 \\
      --rows 4 --pe-acc-bits 16 --overq-mode range

MODEL is any file accel reads (accel.frontends.load_model): an integer-graph checkpoint (.pt, e.g.
models/checkpoints/ or a Brevitas model saved with accel.frontends.brevitas.from_brevitas(...).save),
a torchao pt2e program (.pt2), any other imported format, or a built-in random network. --data
(the data accel simulate reads) adds what the data needs next to the bound. The bound is the exact range test of SPEC section 5 on the raw
code range each layer's input edge carries (a ReLU or clamp narrows it; OverQ lanes widen it to
2N bits); it holds for every input, unlike the data columns."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_model_arguments(parser)
        add_data_arguments(parser)
        add_config_arguments(parser)
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from accel.cli.inputs import model_from_args
        from accel.quant.report import certify

        config = config_from_args(args)
        model = model_from_args(args)
        measured, data = _measure(model, config, args) if args.data else (None, None)
        cert = certify(model.graph, config, measured)
        cert.update(model=model.source, format=model.format, semantics=model.semantics, data=data)
        emit(args, _table(cert), cert)
        return 0


def _measure(model: Any, config: Any, args: argparse.Namespace) -> tuple[dict, dict]:
    """Per-layer statistics of the model on ``--data`` (the data path of ``accel simulate``)."""
    from accel.backends import GoldenBackend
    from accel.cli.inputs import batches, data_from_args
    from accel.executor import simulate
    from accel.progress import Progress

    dataset = data_from_args(args, model)
    stream, n = batches(dataset, args.batch, args.limit)
    with Progress(n, "certify: data", unit="samples") as bar:
        res = simulate(model.graph, stream, GoldenBackend(config, extremes=config.overq is None),
                       progress=bar.advance)
    return ({s.name: s for s in res.layers},
            {"dataset": dataset.name, "split": args.split, "samples": res.samples,
             "accuracy": res.accuracy})
