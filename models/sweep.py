"""The accuracy-vs-P sweeps of issues 6 and 14 and their tables.

Two studies (:data:`STUDIES`): the digits CNN (``cnn``) and the Fashion-MNIST residual CNN
(``fashion-resnet``, :mod:`models.fashion`). Per seed: float training; baseline QAT per bit width
(P-unaware, evaluated at every P with its bias clamped to Q = P); every quantizer of the study
fine-tuned for every target P. Every quantized model is exported as an integer graph and run by
``accel.executor`` on the array (every conv/linear layer at that P, Q = P, R = 8, wrap and
saturate; the image quantized to unsigned N-bit codes).

Run (digits: about 5 minutes per seed on an idle core; Fashion-MNIST: about an hour per seed
on one thread, OMP_NUM_THREADS=1)::

    nice python -m models.sweep --seeds 0 1 2 --out out/quant_sweep --checkpoints models/checkpoints
    nice python -m models.sweep --study fashion-resnet --seeds 0 1 --out out/fashion_sweep \\
        --checkpoints models/checkpoints
    python -m models.sweep --table out/quant_sweep          # markdown table from the JSON files"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.quant import OAQError, export_graph, model_report, set_array_config
from models.recipes import (DATASETS, Recipe, int_accuracy, provenance, save_float, train_float,
                            train_quant)

ROWS = 8

#: Column titles of the table.
QUANTIZER_TITLES = {"baseline": "baseline", "a2q": "A2Q", "a2q+": "A2Q+", "oaq": "OAQ"}


@dataclass(frozen=True)
class Study:
    """One accuracy-vs-P table: a reference model, its data, the P grid and the quantizers.

    ``p_grid`` is the target P per bit width (N = M); ``checkpoint_p`` the (bits, P) whose seed-0
    checkpoints are written, named ``<prefix>_<quantizer>_n<N>_p<P>_s0.pt``.
    """

    model: str
    data: str
    prefix: str
    title: str
    test_set: str
    p_grid: dict[int, tuple[int, ...]]
    quantizers: tuple[str, ...]
    checkpoint_p: dict[int, tuple[int, ...]]
    recipe: Recipe = Recipe()


#: The studies: the digits CNN of issue 6, the Fashion-MNIST residual CNN of issue 14.
STUDIES = {
    "cnn": Study("cnn", "digits", "cnn", "Digits CNN", "test set of 360 images", {8: (20, 18, 17, 16), 4: (14, 12, 11, 10)},
                 ("a2q", "a2q+", "oaq"), {8: (20, 16), 4: (12, 10)}),
    "fashion-resnet": Study("fashion-resnet", "fashion-mnist", "fashion",
                            "Fashion-MNIST residual CNN", "test set of 10,000 images",
                            {8: (20, 18, 16), 4: (14, 12, 10)}, ("a2q", "a2q+"),
                            {8: (16,), 4: (12,)},
                            Recipe(float_epochs=6, qat_epochs=3, batch=128, qat_lr=3e-3)),
}


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


def run_seed(seed: int, ckpt_dir: Path | None, log, study: Study = STUDIES["cnn"],
             save=None) -> dict[str, Any]:
    """Every row of ``study``'s table for one seed (JSON-able); ``save(result)`` is called after
    every row with the rows so far (``"complete": False`` until the last)."""
    recipe, data, prefix = study.recipe, study.data, study.prefix
    xtr, ytr, xte, yte = DATASETS[data][0]()
    t0 = time.time()
    fmodel, facc = train_float(study.model, seed, recipe, data=data)
    prov = provenance(seed, recipe)
    out: dict[str, Any] = {"seed": seed, "study": study.model, "provenance": prov, "float": facc,
                           "rows": [], "complete": False}

    def add(row: dict[str, Any]) -> None:
        out["rows"].append(row)
        if save is not None:
            save(out)
    log(f"seed {seed}: float {facc:.4f} ({time.time() - t0:.0f}s)")
    if ckpt_dir is not None and seed == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_float(ckpt_dir / f"{prefix}_float_s0.pt", study.model, fmodel,
                   {"provenance": prov, "accuracy": facc, "model": study.model, "dataset": data})
    for bits, ps in study.p_grid.items():
        t0 = time.time()
        base = train_quant(fmodel, "baseline", _config(bits, 32), seed, recipe, data=data)
        if bits == 8:
            row = {"quantizer": "baseline", "bits": bits, "p": 32,
                   **_evaluate(base.graph, xte, yte, bits, 32)}
            add(row)
        if ckpt_dir is not None and seed == 0:
            _save(ckpt_dir, f"{prefix}_baseline_n{bits}_p32_s0", base,
                  _meta("baseline", bits, 32, prov, _evaluate(base.graph, xte, yte, bits, 32),
                        model=study.model))
        for p in ps:
            set_array_config(base.qmodel, pe_acc_bits=p, out_acc_bits=p)
            add({"quantizer": "baseline", "bits": bits, "p": p,
                                **_evaluate(export_graph(base.qmodel, {"dataset": data}), xte, yte,
                                            bits, p)})
        log(f"seed {seed}: baseline {bits}-bit ({time.time() - t0:.0f}s)")
        for p in ps:
            for qn in study.quantizers:
                t0 = time.time()
                try:
                    res = train_quant(fmodel, qn, _config(bits, p), seed, recipe, data=data)
                except OAQError as e:
                    add({"quantizer": qn, "bits": bits, "p": p, "error": str(e)})
                    log(f"seed {seed}: {qn} {bits}-bit P={p} failed: {e}")
                    continue
                ev = _evaluate(res.graph, xte, yte, bits, p)
                row = {"quantizer": qn, "bits": bits, "p": p, **ev,
                       "fake_quant_accuracy": res.fake_quant_accuracy}
                if res.oaq is not None:
                    row["oaq"] = res.oaq
                add(row)
                log(f"seed {seed}: {qn} {bits}-bit P={p}: {ev['accuracy']:.4f} "
                    f"({time.time() - t0:.0f}s)")
                if ckpt_dir is not None and seed == 0 and p in study.checkpoint_p[bits]:
                    _save(ckpt_dir, f"{prefix}_{qn}_n{bits}_p{p}_s0", res,
                          _meta(qn, bits, p, prov, ev, res.oaq, model=study.model))
    out["complete"] = True
    return out


def mlp_checkpoints(ckpt_dir: Path, recipe: Recipe, log, bits: int = 8, p: int = 16) -> None:
    """Seed-0 MLP checkpoints: float, baseline (P = 32) and every quantizer at N = M = bits, P."""
    xtr, ytr, xte, yte = DATASETS["digits"][0]()
    fmodel, facc = train_float("mlp", 0, recipe)
    prov = provenance(0, recipe)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_float(ckpt_dir / "mlp_float_s0.pt", "mlp", fmodel,
               {"provenance": prov, "accuracy": facc, "model": "mlp"})
    log(f"mlp float {facc:.4f}")
    for qn, pp in (("baseline", 32),) + tuple((q, p) for q in STUDIES["cnn"].quantizers):
        res = train_quant(fmodel, qn, _config(bits, pp), 0, recipe)
        ev = _evaluate(res.graph, xte, yte, bits, pp)
        _save(ckpt_dir, f"mlp_{qn}_n{bits}_p{pp}_s0", res,
              _meta(qn, bits, pp, prov, ev, res.oaq, model="mlp"))
        log(f"mlp {qn} {bits}-bit P={pp}: {ev['accuracy']:.4f}")


def _meta(qn: str, bits: int, p: int, prov: dict, ev: dict, oaq: dict | None = None,
          model: str = "cnn") -> dict:
    cfg = _config(bits, p)
    return {"model": model, "quantizer": qn, "tile": False, "config": cfg.to_dict(),
            "provenance": prov, "accuracy": ev["accuracy"],
            "accuracy_saturate": ev["accuracy_saturate"], "min_safe_p": ev["min_safe_p"],
            "min_safe_q": ev["min_safe_q"], "layers": ev["layers"], "oaq": oaq}


def table(rows_by_seed: list[dict[str, Any]]) -> str:
    """Markdown: accuracy mean ± std over seeds, and the baseline's overflow events per layer."""
    study = STUDIES[rows_by_seed[0].get("study", "cnn")]
    floats = [r["float"] for r in rows_by_seed]
    groups: dict[tuple, list] = {}
    for r in rows_by_seed:
        for row in r["rows"]:
            groups.setdefault((row["bits"], row["p"], row["quantizer"]), []).append(row)
    names = ("baseline",) + study.quantizers
    heads = " | ".join(QUANTIZER_TITLES.get(q, q) for q in names)
    lines = [f"{study.title}, {len(rows_by_seed)} seeds, {study.test_set}; integer inference "
             f"with every conv/linear layer on the array (R = {ROWS}, Q = P, wrap).", "",
             f"| N = M | P | {heads} | baseline overflow events per layer (PE / acc, seed mean) |",
             "|---|---|" + "---|" * len(names) + "---|",
             f"| float | - | {_ms(floats)} |" + " |" * len(names)]
    for bits, ps in study.p_grid.items():
        for p in ((32,) if bits == 8 else ()) + ps:
            cells = []
            for qn in names:
                rows = groups.get((bits, p, qn), [])
                ok = [x["accuracy"] for x in rows if "error" not in x]
                fails = len(rows) - len(ok)
                short = f" ({len(rows)} of {len(rows_by_seed)} seeds)" if 0 < len(rows) < len(
                    rows_by_seed) else ""
                cells.append((_ms(ok) if ok else "-") + (f" ({fails} failed)" if fails else "")
                             + short)
            base = groups.get((bits, p, "baseline"), [])
            layers = [lay["name"] for lay in base[0]["layers"]] if base else []
            ev = ", ".join(
                f"{n}: {np.mean([b['layers'][i]['pe_events'] for b in base]):.0f} / "
                f"{np.mean([b['layers'][i]['acc_events'] for b in base]):.0f}"
                for i, n in enumerate(layers))
            lines.append(f"| {bits} | {p} | " + " | ".join(cells) + f" | {ev} |")
    return "\n".join(lines)


def _ms(v: list[float]) -> str:
    return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--study", choices=sorted(STUDIES), default="cnn",
                    help="which table: the digits CNN (default) or the Fashion-MNIST residual CNN")
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
    if args.mlp:
        if args.checkpoints is None:
            ap.error("--mlp writes checkpoints: give --checkpoints DIR")
        mlp_checkpoints(args.checkpoints, Recipe(), lambda m: print(m, flush=True))
    for seed in args.seeds:
        path = args.out / f"seed{seed}.json"

        def save(res: dict[str, Any], path: Path = path) -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(res, indent=1) + "\n")
            tmp.replace(path)

        save(run_seed(seed, args.checkpoints, lambda m: print(m, flush=True),
                      STUDIES[args.study], save))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
