"""OverQ on the digits CNN at 4-bit activations: outliers per layer and accuracy (SPEC section 4).

Runs a shipped 4-bit integer checkpoint on the array with real ReLU outputs, once clamping every
activation to N bits (no OverQ), once per OverQ range-mode cascade c = 0..4, and with the precision
and both modes at c = 2, and reports per layer the outliers seen and handled and the precision
slots used. Calibrated 4-bit activations rarely leave their range, so it
also runs *tightened* calibrations: every hidden requantization multiplies its codes by s (finer
activation steps, more outliers) and the next layer compensates exactly (bias × s, its output
scale / s), so without clamping the network computes the same function.

    python -m models.overq_study [--checkpoint PATH] [--tighten 1 2 4] [--json out/overq_study.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from accel.backends import GoldenBackend
from accel.config import ArrayConfig, OverQConfig
from accel.executor import simulate
from accel.graph import Graph, load_graph
from accel.nodes import Dequantize, Requantize
from models.digits import load_split

CHECKPOINT = Path(__file__).parent / "checkpoints" / "cnn_baseline_n4_p32_s0.pt"


def tighten(graph: Graph, s: float) -> Graph:
    """The same network with every hidden activation step divided by ``s`` (codes × s).

    Every requantization that feeds an array layer multiplies its multiplier by ``s`` (its codes
    step by ``s_y / s``); that layer compensates: its input scale / s, its integer bias × s (exact
    for integer s), so its accumulator is ``s`` times the old one, and its own requantization
    multiplier / s, or its dequantisation scale / s. Clamping to the code range is then the only
    difference.
    """
    new: dict[str, object] = {}

    def cur(node):                      # the node as changed so far (changes compose)
        return new.get(node.name, node)

    arrays = graph.array_nodes
    for i, node in enumerate(arrays[1:], 1):
        rq = cur(next(n for n in graph.consumers(arrays[i - 1].name) if isinstance(n, Requantize)))
        new[rq.name] = dataclasses.replace(
            rq, multiplier=(rq.multiplier * s).astype(np.float32), scale=rq.scale / s)
        lay = node.layer
        new[node.name] = dataclasses.replace(node, layer=dataclasses.replace(
            lay, input_scale=lay.input_scale / s,
            bias=None if lay.bias is None else (lay.bias * int(s)).astype(np.int64)))
        for out in map(cur, graph.consumers(node.name)):
            if isinstance(out, Requantize):
                new[out.name] = dataclasses.replace(
                    out, multiplier=(out.multiplier / s).astype(np.float32))
            elif isinstance(out, Dequantize):
                new[out.name] = dataclasses.replace(out, scale=out.scale / s)
    return graph.replace(*new.values())


def study(model: Graph, x: np.ndarray, y: np.ndarray, base: ArrayConfig,
          cascades: range = range(5), tightenings: tuple[float, ...] = (1, 2, 4)) -> list[dict]:
    """One row per (tightening, OverQ setting): accuracy and per-layer outliers seen / handled."""
    rows = []
    for s in tightenings:
        m = tighten(model, s) if s != 1 else model
        settings = ([None] + [OverQConfig(mode="range", cascade=c) for c in cascades]
                    + [OverQConfig(mode=m, cascade=2) for m in ("precision", "both")])
        for oq in settings:
            cfg = dataclasses.replace(base, overq=oq)
            res = simulate(m, [(x, y)], GoldenBackend(cfg))
            rows.append({
                "tighten": s, "overq": "clamp" if oq is None else f"{oq.mode} c={oq.cascade}",
                "accuracy": float(res.accuracy),
                "layers": {st.name: None if st.overq is None else st.overq.to_dict()
                           for st in res.layers}})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: accuracy and, per layer, outliers handled / seen (and precision slots used)."""
    names = list(rows[0]["layers"])
    out = ["| activation step | OverQ | accuracy % | " + " | ".join(f"layer {n} handled / seen"
                                                                    for n in names) + " |",
           "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = []
        for n in names:
            st = r["layers"][n]
            slots = f", {st['precision_slots']} slots" if st and st["precision_slots"] else ""
            cells.append("-" if st is None else f"{st['handled_total']} / {st['outliers']}{slots}")
        out.append(f"| calibrated / {r['tighten']:g} | {r['overq']} | {100 * r['accuracy']:.2f} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(CHECKPOINT), help="4-bit integer CNN checkpoint")
    ap.add_argument("--tighten", type=float, nargs="+", default=[1, 2, 4],
                    help="activation-step divisors (integers; default 1 2 4)")
    ap.add_argument("--rows", type=int, default=8, help="array rows R (default 8)")
    ap.add_argument("--json", help="write the rows as JSON")
    args = ap.parse_args(argv)
    model = load_graph(args.checkpoint)
    _, _, xte, yte = load_split()
    n = model.layers[0].act_bits
    base = ArrayConfig(rows=args.rows, act_bits=n, weight_bits=model.layers[0].weight_bits,
                       pe_acc_bits=32)
    rows = study(model, xte.numpy(), yte.numpy(), base, tightenings=tuple(args.tighten))
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
