"""The digits-CNN accuracy sweep of issue 6 and its table.

Per seed: float training; baseline QAT per bit width (P-unaware, evaluated at every P with its bias
clamped to Q = P); A2Q, A2Q+ and OAQ fine-tuned for every target P. Every quantized model is
evaluated as integers on the array (every conv/linear layer lowered and computed by
``accel.golden`` at that P, Q = P, R = 8, wrap mode; the image quantized to unsigned N-bit codes).

Run (about 5 minutes per seed on an idle core; about 20 on a loaded one)::

    nice python -m models.sweep --seeds 0 1 2 --out out/quant_sweep --checkpoints models/checkpoints
    python -m models.sweep --table out/quant_sweep          # markdown table from the JSON files
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.quant import OAQError, export_graph, model_report, set_array_config
from models.digits import load_split
from models.recipes import (Recipe, int_accuracy, provenance, save_float,
                            train_float, train_quant)

#: Target P per bit width (N = M), from the issue.
P_GRID = {8: (20, 18, 17, 16), 4: (14, 12, 11, 10)}
QUANTIZERS = ("a2q", "a2q+", "oaq")
#: (bits, P) whose seed-0 checkpoints are committed.
CHECKPOINT_P = {8: (20, 16), 4: (12, 10)}
ROWS = 8


def _config(bits: int, p: int, mode: str = "wrap") -> ArrayConfig:
    return ArrayConfig(rows=ROWS, act_bits=bits, weight_bits=bits, pe_acc_bits=p, overflow=mode)


def _evaluate(graph, xte, yte, bits: int, p: int) -> dict[str, Any]:
    acc, layers = int_accuracy(graph, xte, yte, _config(bits, p))
    acc_sat, _ = int_accuracy(graph, xte, yte, _config(bits, p, "saturate"))
    rep = model_report(graph.layers, _config(bits, p))
    return {"accuracy": acc, "accuracy_saturate": acc_sat, "layers": layers,
            "min_safe_p": rep["min_safe_p"], "min_safe_q": rep["min_safe_q"]}


#: A checkpoint is written only above this test accuracy at its own P: one that collapsed
#: (A2Q at N = 4, P = 10 does for 2 of 3 seeds) would only mislead a sweep.
MIN_SHIPPED_ACCURACY = 0.5


def _save(ckpt_dir: Path | None, name: str, result, meta: dict[str, Any], log=print) -> None:
    if ckpt_dir is not None:
        if meta["accuracy"] < MIN_SHIPPED_ACCURACY:
            log(f"{name}: not written, accuracy {meta['accuracy']:.3f} at its own P is below "
                f"{MIN_SHIPPED_ACCURACY} (collapsed)")
            return
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        result.graph.meta.update(meta)
        result.graph.save(ckpt_dir / f"{name.replace('+', 'plus')}.pt")


def run_seed(seed: int, recipe: Recipe, ckpt_dir: Path | None, log) -> dict[str, Any]:
    """Every row of the table for one seed (JSON-able)."""
    xtr, ytr, xte, yte = load_split()
    t0 = time.time()
    fmodel, facc = train_float("cnn", seed, recipe)
    prov = provenance(seed, recipe)
    out: dict[str, Any] = {"seed": seed, "provenance": prov, "float": facc, "rows": []}
    log(f"seed {seed}: float {facc:.4f} ({time.time() - t0:.0f}s)")
    if ckpt_dir is not None and seed == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_float(ckpt_dir / "cnn_float_s0.pt", "cnn", fmodel,
                   {"provenance": prov, "accuracy": facc, "model": "cnn"})
    for bits, ps in P_GRID.items():
        t0 = time.time()
        base = train_quant(fmodel, "baseline", _config(bits, 32), seed, recipe)
        if bits == 8:
            row = {"quantizer": "baseline", "bits": bits, "p": 32,
                   **_evaluate(base.graph, xte, yte, bits, 32)}
            out["rows"].append(row)
        if ckpt_dir is not None and seed == 0:
            _save(ckpt_dir, f"cnn_baseline_n{bits}_p32_s0", base,
                  _meta("baseline", bits, 32, prov, _evaluate(base.graph, xte, yte, bits, 32)))
        for p in ps:
            set_array_config(base.qmodel, pe_acc_bits=p, out_acc_bits=p)
            out["rows"].append({"quantizer": "baseline", "bits": bits, "p": p,
                                **_evaluate(export_graph(base.qmodel), xte, yte, bits, p)})
        log(f"seed {seed}: baseline {bits}-bit ({time.time() - t0:.0f}s)")
        for p in ps:
            for qn in QUANTIZERS:
                t0 = time.time()
                try:
                    res = train_quant(fmodel, qn, _config(bits, p), seed, recipe)
                except OAQError as e:
                    out["rows"].append({"quantizer": qn, "bits": bits, "p": p, "error": str(e)})
                    log(f"seed {seed}: {qn} {bits}-bit P={p} failed: {e}")
                    continue
                ev = _evaluate(res.graph, xte, yte, bits, p)
                row = {"quantizer": qn, "bits": bits, "p": p, **ev,
                       "fake_quant_accuracy": res.fake_quant_accuracy}
                if res.oaq is not None:
                    row["oaq"] = res.oaq
                out["rows"].append(row)
                log(f"seed {seed}: {qn} {bits}-bit P={p}: {ev['accuracy']:.4f} "
                    f"({time.time() - t0:.0f}s)")
                if ckpt_dir is not None and seed == 0 and p in CHECKPOINT_P[bits]:
                    _save(ckpt_dir, f"cnn_{qn}_n{bits}_p{p}_s0", res,
                          _meta(qn, bits, p, prov, ev, res.oaq))
    return out


def mlp_checkpoints(ckpt_dir: Path, recipe: Recipe, log, bits: int = 8, p: int = 16) -> None:
    """Seed-0 MLP checkpoints: float, baseline (P = 32) and every quantizer at N = M = bits, P."""
    xtr, ytr, xte, yte = load_split()
    fmodel, facc = train_float("mlp", 0, recipe)
    prov = provenance(0, recipe)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_float(ckpt_dir / "mlp_float_s0.pt", "mlp", fmodel,
               {"provenance": prov, "accuracy": facc, "model": "mlp"})
    log(f"mlp float {facc:.4f}")
    for qn, pp in (("baseline", 32),) + tuple((q, p) for q in QUANTIZERS):
        res = train_quant(fmodel, qn, _config(bits, pp), 0, recipe)
        ev = _evaluate(res.graph, xte, yte, bits, pp)
        _save(ckpt_dir, f"mlp_{qn}_n{bits}_p{pp}_s0", res,
              {**_meta(qn, bits, pp, prov, ev, res.oaq), "model": "mlp"})
        log(f"mlp {qn} {bits}-bit P={pp}: {ev['accuracy']:.4f}")


def _meta(qn: str, bits: int, p: int, prov: dict, ev: dict, oaq: dict | None = None) -> dict:
    cfg = _config(bits, p)
    return {"model": "cnn", "quantizer": qn, "tile": False, "config": cfg.to_dict(),
            "provenance": prov, "accuracy": ev["accuracy"],
            "accuracy_saturate": ev["accuracy_saturate"], "min_safe_p": ev["min_safe_p"],
            "min_safe_q": ev["min_safe_q"], "layers": ev["layers"], "oaq": oaq}


def table(rows_by_seed: list[dict[str, Any]]) -> str:
    """Markdown: accuracy mean ± std over seeds, and the baseline's overflow events per layer."""
    floats = [r["float"] for r in rows_by_seed]
    groups: dict[tuple, list] = {}
    for r in rows_by_seed:
        for row in r["rows"]:
            groups.setdefault((row["bits"], row["p"], row["quantizer"]), []).append(row)
    seeds = len(rows_by_seed)
    lines = [f"Digits CNN, {seeds} seeds, test set of 360 images; integer inference with every "
             f"conv/linear layer on the array (R = {ROWS}, Q = P, wrap).", "",
             "| N = M | P | baseline | A2Q | A2Q+ | OAQ | baseline overflow events per layer "
             "(PE / acc, seed mean) |", "|---|---|---|---|---|---|---|",
             f"| float | - | {_ms(floats)} | | | | |"]
    for bits, ps in ((8, (32,) + P_GRID[8]), (4, P_GRID[4])):
        for p in ps:
            cells = []
            for qn in ("baseline",) + QUANTIZERS:
                rows = groups.get((bits, p, qn), [])
                ok = [x["accuracy"] for x in rows if "error" not in x]
                fails = len(rows) - len(ok)
                cells.append((_ms(ok) if ok else "-") + (f" ({fails} failed)" if fails else ""))
            base = groups.get((bits, p, "baseline"), [])
            names = [lay["name"] for lay in base[0]["layers"]] if base else []
            ev = ", ".join(
                f"{n}: {np.mean([b['layers'][i]['pe_events'] for b in base]):.0f} / "
                f"{np.mean([b['layers'][i]['acc_events'] for b in base]):.0f}"
                for i, n in enumerate(names))
            lines.append(f"| {bits} | {p} | " + " | ".join(cells) + f" | {ev} |")
    return "\n".join(lines)


def _ms(v: list[float]) -> str:
    return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    ap.add_argument("--out", type=Path, default=Path("out/quant_sweep"),
                    help="folder for seed<N>.json (default out/quant_sweep)")
    ap.add_argument("--checkpoints", type=Path, default=None,
                    help="write seed-0 checkpoints here (default: none)")
    ap.add_argument("--mlp", action="store_true",
                    help="also write the seed-0 MLP checkpoints (needs --checkpoints)")
    ap.add_argument("--table", type=Path, metavar="DIR",
                    help="only print the markdown table of the seed*.json files in DIR")
    args = ap.parse_args(argv)
    if args.table:
        files = sorted(args.table.glob("seed*.json"))
        if not files:
            print(f"no seed*.json in {args.table}", file=sys.stderr)
            return 2
        print(table([json.loads(f.read_text()) for f in files]))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe()
    if args.mlp:
        if args.checkpoints is None:
            ap.error("--mlp writes checkpoints: give --checkpoints DIR")
        mlp_checkpoints(args.checkpoints, recipe, lambda m: print(m, flush=True))
    for seed in args.seeds:
        res = run_seed(seed, recipe, args.checkpoints, lambda m: print(m, flush=True))
        (args.out / f"seed{seed}.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
