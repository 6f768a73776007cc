"""``accel quantize``: train or fine-tune a model with an accumulator-aware quantizer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accel.cli.base import Verb, add_json_argument, emit, output_path
from accel.config import add_config_arguments, config_from_args


class Quantize(Verb):
    help = ("quantize a digits model (QAT) for an array's N, M, P, Q; write the checkpoint and a "
            "report of accuracy, l1 norms, sparsity and minimum safe P/Q per layer")
    examples = """examples:
  accel quantize --model cnn --quantizer a2q+ --act-bits 8 --weight-bits 8 --pe-acc-bits 16
  accel quantize --model mlp --quantizer oaq --pe-acc-bits 18 --out out/mlp_oaq.pt --json out/mlp_oaq.json
  accel quantize --from models/checkpoints/cnn_float_s0.pt --quantizer a2q --pe-acc-bits 17 \\
      --out-acc-bits 20 --tile
  accel quantize --model mypkg.nets:small_cnn --quantizer baseline --epochs 5

The model is trained on scikit-learn's 8x8 digits (fixed stratified split). --model takes a
reference network (cnn, mlp) or package.module:factory, a zero-argument callable returning an
nn.Module from [B, 1, 8, 8] images to 10 logits. Reference networks are evaluated as integers on
the array (every conv/linear layer computed by accel.golden with the given R, P, Q and overflow
mode); other models report the fake-quantized accuracy. Input activations of the first layer are
the image quantized to N-bit codes with the fixed scale 16 / (2^N - 1); later layers use max
calibration over the training set (--act-scale learned trains the scale from there)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from accel.quant.names import QUANTIZERS, SCALE_MODES

        g = parser.add_argument_group("model and training")
        src = g.add_mutually_exclusive_group()
        src.add_argument("--model", default="cnn",
                         help="reference model (cnn, mlp) or package.module:factory (default cnn)")
        src.add_argument("--from", dest="from_ckpt", metavar="CKPT",
                         help="fine-tune from a float checkpoint (models/checkpoints/*_float_*.pt) "
                              "instead of training from scratch")
        g.add_argument("--quantizer", choices=QUANTIZERS, default="a2q+",
                       help="weight quantizer (default a2q+)")
        g.add_argument("--tile", action="store_true",
                       help="a2q/a2q+: bound each R-row fold at P and the whole row at Q")
        g.add_argument("--act-scale", choices=[m for m in SCALE_MODES if m != "fixed"],
                       default="calibrated", help="input scale of layers after the first "
                                                  "(default calibrated: max over the training set)")
        g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        g.add_argument("--epochs", type=int, default=None, metavar="INT",
                       help="QAT epochs (default: the recipe's, 15)")
        g.add_argument("--float-epochs", type=int, default=None, metavar="INT",
                       help="float training epochs when not --from (default: the recipe's, 30)")
        output_path(g, "--out", metavar="PATH", default=None,
                       help="checkpoint to write (default out/quantize/<model>_<quantizer>_n<N>"
                            "_p<P>_s<seed>.pt)")
        add_json_argument(parser)
        add_config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        import dataclasses

        from accel.quant import model_report
        from models.digits import load_split
        from models.recipes import (Recipe, int_accuracy, load_float, provenance, train_float,
                                    train_quant)

        config = config_from_args(args)
        if config.overq is not None:
            raise ValueError("accel quantize does not train for OverQ; drop --overq-mode/"
                             "--overq-cascade (bounds with OverQ use the 2N-bit lane range)")
        for name in ("epochs", "float_epochs"):
            v = getattr(args, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {v}")
        recipe = Recipe()
        recipe = dataclasses.replace(
            recipe, qat_epochs=args.epochs or recipe.qat_epochs,
            float_epochs=args.float_epochs or recipe.float_epochs)

        def progress(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

        if args.from_ckpt:
            fmodel, fmeta = load_float(args.from_ckpt)
            spec, facc = fmeta.get("model", "?"), fmeta.get("accuracy")
        else:
            spec = args.model
            fmodel, facc = train_float(spec, args.seed, recipe, progress)
        res = train_quant(fmodel, args.quantizer, config, args.seed, recipe, tile=args.tile,
                          act_mode=args.act_scale, progress=progress)
        out = Path(args.out or f"out/quantize/{Path(spec).name.replace(':', '_')}_"
                               f"{args.quantizer.replace('+', 'plus')}_n{config.act_bits}_"
                               f"p{config.pe_acc_bits}_s{args.seed}.pt")
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"model": spec, "quantizer": args.quantizer, "tile": args.tile,
                "config": config.to_dict(), "provenance": provenance(args.seed, recipe),
                "float_accuracy": facc, "fake_quant_accuracy": res.fake_quant_accuracy,
                "oaq": res.oaq}
        graph = res.graph
        _, _, xte, yte = load_split()
        acc, layer_stats = int_accuracy(graph, xte, yte, config)
        meta["accuracy"], meta["accuracy_kind"] = acc, "integer, on the array"
        report = model_report(graph.layers, config)
        for rep, st in zip(report["layers"], layer_stats):
            rep["test_pe_events"], rep["test_acc_events"] = st["pe_events"], st["acc_events"]
        graph.meta.update(_plain({**meta, "min_safe_p": report["min_safe_p"],
                                  "min_safe_q": report["min_safe_q"], "layers": layer_stats}))
        graph.save(out)
        data = {**meta, "checkpoint": str(out), **report}
        emit(args, _summary(data), data)
        return 0


def _plain(meta: dict) -> dict:
    import json

    return json.loads(json.dumps(meta))


def _summary(d: dict) -> str:
    cfg = d["config"]
    lines = [f"{d['model']} {d['quantizer']}{' (tile)' if d['tile'] else ''}: N={cfg['act_bits']} "
             f"M={cfg['weight_bits']} R={cfg['rows']} P={cfg['pe_acc_bits']} "
             f"Q={cfg['out_acc_bits']} {cfg['overflow']}",
             f"accuracy {100 * d['accuracy']:.2f}% ({d['accuracy_kind']}); float "
             + (f"{100 * d['float_accuracy']:.2f}%" if d["float_accuracy"] is not None else "?"),
             f"{'layer':<8} {'K':>5} {'O':>4} {'l1 max':>7} {'sparsity':>8} {'min P':>6} {'min Q':>6}"
             f" {'events PE/acc':>14}"]
    for r in d["layers"]:
        ev = (f"{r['test_pe_events']}/{r['test_acc_events']}" if "test_pe_events" in r else "-")
        lines.append(f"{r['name']:<8} {r['K']:>5} {r['O']:>4} {r['l1_max']:>7} "
                     f"{r['sparsity']:>8.3f} {r['min_safe_p']:>6} {r['min_safe_q']:>6} {ev:>14}")
    lines.append(f"minimum safe P = {d['min_safe_p']}, Q = {d['min_safe_q']} (exact range test, "
                 f"bias included); checkpoint {d['checkpoint']}")
    if d.get("oaq"):
        lines.append(f"OAQ clamps {d['oaq']['clamps']}; residual mismatches train "
                     f"{d['oaq']['residual_train']}, test {d['oaq']['residual_test']}")
    return "\n".join(lines)
