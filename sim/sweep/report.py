"""The sweep report: four PNG plots (matplotlib, Agg, no display) and one static HTML page.

Plots, one panel per model:

* ``accuracy_vs_p.png``: accuracy vs P, a line per quantizer and checkpoint (one checkpoint on
  narrower arrays; array size and overflow mode too where the sweep varies them), a grey dashed
  line through each checkpoint at its own target P (a model retrained for each P), the float
  model dashed black;
* ``overflow_vs_p.png``: overflow events (PE + accumulator, test set) vs P, a panel per layer, a
  line per quantizer and checkpoint, symmetric-log axis;
* ``area_vs_p.png``: area vs P per array size and overflow mode (synthesised points only);
* ``pareto.png``: accuracy vs area of every synthesised point, each model's Pareto front drawn.

``index.html`` shows the recommendation, the plots (embedded, so the page stands alone) and the
tables of points and failures.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.sweep.recommend import (DEFAULT_TOLERANCE, Choice, Recommendation, choose_config,
                                   pareto_front, recommend)

__all__ = ["ReportPaths", "write_report", "PLOTS", "TABLE_COLUMNS"]

#: Plot file names in page order, with their captions.
PLOTS = {
    "accuracy_vs_p.png": "Accuracy vs P per quantizer",
    "overflow_vs_p.png": "Overflow events vs P per layer (test set)",
    "area_vs_p.png": "Area vs P",
    "pareto.png": "Accuracy-area Pareto front",
}
#: Columns of the HTML table of points.
TABLE_COLUMNS = ("model", "quantizer", "target_p", "rows", "cols", "pe_acc_bits", "out_acc_bits",
                 "overflow", "accuracy", "float_accuracy", "pe_events", "acc_events",
                 "adv_pe_events", "adv_acc_events", "cycles", "utilisation", "area", "area_unit",
                 "seconds", "note")


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`write_report`."""

    html: Path
    plots: dict[str, Path]


def _figure(n_panels: int, title: str) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    cols = min(n_panels, 3)
    rows = math.ceil(max(n_panels, 1) / cols) if n_panels else 1
    fig = Figure(figsize=(6.4 * max(cols, 1), 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, max(cols, 1), squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes


def _empty(ax: Any, text: str) -> None:
    ax.set_visible(True)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _series_key(row: dict[str, Any], varying: dict[str, bool]) -> str:
    """Legend label of the line a row belongs to: quantizer, plus what else the sweep varies."""
    parts = [row["quantizer"]]
    if row["target_p"]:
        parts.append(f"ckpt P={row['target_p']}")
    if varying["array"]:
        parts.append(f"{row['rows']}x{row['cols']}")
    if varying["overflow"]:
        parts.append(row["overflow"])
    return " ".join(parts)


def _varying(rows: list[dict[str, Any]]) -> dict[str, bool]:
    return {"array": len({(r["rows"], r["cols"]) for r in rows}) > 1,
            "overflow": len({r["overflow"] for r in rows}) > 1}


def _lines(rows: list[dict[str, Any]], key: Any, y: Any) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        v = y(r)
        if v is not None:
            out.setdefault(key(r), {}).setdefault(r["pe_acc_bits"], []).append(v)
    # several points at one P on one line (e.g. Q or depth varied): plot their mean
    return {k: (sorted(d), [sum(d[p]) / len(d[p]) for p in sorted(d)]) for k, d in sorted(out.items())}


def _plot_accuracy(rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    fig, axes = _figure(len(models), "Accuracy vs P (PE accumulator width)")
    for ax, model in zip(axes, models):
        mine = [r for r in rows if r["model"] == model]
        var = _varying(mine)
        acc = lambda r: None if r["accuracy"] is None else 100 * r["accuracy"]  # noqa: E731
        for label, (xs, ys) in _lines(mine, lambda r: _series_key(r, var), acc).items():
            ax.plot(xs, ys, marker="o", label=label)
        # "a model retrained for each P": each checkpoint at its own target P
        matched = [r for r in mine if r["target_p"] == r["pe_acc_bits"]]
        for label, (xs, ys) in _lines(matched, lambda r: f"{r['quantizer']} retrained per P",
                                      acc).items():
            if len(xs) > 1:
                ax.plot(xs, ys, ls="--", lw=2.5, alpha=0.5, color="grey", marker="*", ms=12,
                        label=label)
        refs = [r["float_accuracy"] for r in mine if r.get("float_accuracy") is not None]
        if refs:
            ax.axhline(100 * max(refs), color="k", ls="--", lw=1, label="float")
        ax.set(title=model, xlabel="P (bits)", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_overflow(rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    panels = []                                       # (model, layer) in model and layer order
    for model in models:
        for r in rows:
            if r["model"] == model:
                for lay in r.get("layers") or []:
                    if (model, lay["name"]) not in panels:
                        panels.append((model, lay["name"]))
    fig, axes = _figure(max(1, len(panels)),
                        "Overflow events vs P, per layer (test set, PE + accumulator)")
    if not panels:
        _empty(axes[0], "no per-layer results")
    for ax, (model, layer) in zip(axes, panels):
        mine = [r for r in rows if r["model"] == model]
        var = _varying(mine)
        per_layer = [{**r, "_events": (lay.get("pe_events") or 0) + (lay.get("acc_events") or 0)}
                     for r in mine for lay in r.get("layers") or [] if lay["name"] == layer]
        for label, (xs, ys) in _lines(per_layer, lambda r: _series_key(r, var),
                                      lambda r: r["_events"]).items():
            ax.plot(xs, ys, marker=".", label=label)
        ax.set_yscale("symlog", linthresh=1)
        ax.set(title=f"{model}: layer {layer}", xlabel="P (bits)", ylabel="overflow events")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=110)


def _plot_area(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = _figure(1, "Area vs P (whole array)")
    ax = axes[0]
    synth = [r for r in rows if r.get("area") is not None]
    if not synth:
        _empty(ax, "no synthesis results: run accel sweep with --synth generic (or another target)")
    else:
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in synth:                                  # area depends on the configuration only
            seen.setdefault((r["config_hash"], r["synth_target"]), r)
        uniq = list(seen.values())
        for label, (xs, ys) in _lines(uniq, lambda r: f"{r['rows']}x{r['cols']} {r['overflow']} "
                                      f"({r['synth_target']})", lambda r: r["area"]).items():
            ax.plot(xs, ys, marker="s", label=label)
        units = sorted({r["area_unit"] for r in uniq})
        ax.set(xlabel="P (bits)", ylabel=f"area ({', '.join(units)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_pareto(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = _figure(1, "Accuracy vs area: the Pareto front")
    ax = axes[0]
    synth = [r for r in rows if r.get("area") is not None and r.get("accuracy") is not None]
    if not synth:
        _empty(ax, "no synthesis results: run accel sweep with --synth generic (or another target)")
    else:
        for model in sorted({r["model"] for r in synth}):     # one front per model
            mine = [r for r in synth if r["model"] == model]
            pts = [(r["area"], 100 * r["accuracy"]) for r in mine]
            dots = ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, alpha=0.5, label=model)
            front = pareto_front(pts)
            ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="post",
                    color=dots.get_facecolor()[0], alpha=1.0, lw=1.5, label=f"{model} Pareto front")
            for i in front:
                r = mine[i]
                ax.annotate(f"P={r['pe_acc_bits']} {r['quantizer']}", pts[i], fontsize="x-small",
                            xytext=(4, -10), textcoords="offset points")
        ax.set(xlabel=f"area ({', '.join(sorted({r['area_unit'] for r in synth}))})",
               ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _cell(col: str, v: Any) -> str:
    if v is None:
        return ""
    if col in ("accuracy", "float_accuracy", "utilisation"):
        return f"{100 * v:.2f} %"
    if isinstance(v, float):
        return f"{v:,.2f}" if col != "area" else f"{v:,.0f}"
    return html.escape(str(v))


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...] | list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(c, r.get(c))}</td>" for c in cols) + "</tr>"
                     for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#eee}img{max-width:100%;border:1px solid #ddd}
.rec{background:#eef8ee;padding:0.6em 1em;border-left:4px solid #393}
.none{background:#fbeeee;border-left-color:#933}"""


def _html(rows: list[dict[str, Any]], choice: Choice, recs: list[Recommendation],
          plots: dict[str, Path], failures: list[dict[str, Any]], title: str, notes: list[str]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} design points, {len(failures)} failed.</p>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Recommendation</h2>")
    cls = "rec" if choice.row is not None else "rec none"
    parts.append(f"<p class='{cls}'><b>{html.escape(choice.summary())}</b></p><p>Per model:</p>")
    for rec in recs:
        cls = "rec" if rec.row is not None else "rec none"
        text = html.escape(rec.summary()).replace("\n", "<br>")
        parts.append(f"<p class='{cls}'>{text}</p>")
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(PLOTS[name])}</h2>"
                     f"<a href='{name}'><img alt='{name}' src='data:image/png;base64,{data}'></a>")
    parts.append("<h2>All points</h2>" + _table(rows, TABLE_COLUMNS))
    layer_rows = [{"model": r["model"], "quantizer": r["quantizer"], "pe_acc_bits": r["pe_acc_bits"],
                   "rows": r["rows"], "cols": r["cols"], **lay}
                  for r in rows for lay in (r.get("layers") or [])]
    if layer_rows:
        cols = ["model", "quantizer", "pe_acc_bits", "rows", "cols", "name", "outputs",
                "pe_events", "acc_events", "affected", "adv_pe_events", "adv_acc_events"]
        parts.append("<h2>Per-layer overflow events</h2>" + _table(layer_rows, cols))
    if failures:
        parts.append("<h2>Failed points</h2>" + _table(failures, ["label", "error", "finished_at"]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(rows: list[dict[str, Any]], out_dir: str | Path, failures: list[dict[str, Any]] = (),
                 tolerance: float = DEFAULT_TOLERANCE, title: str = "accel-hw design-space sweep",
                 notes: list[str] = ()) -> ReportPaths:
    """Write the four plots and ``index.html`` into ``out_dir`` (created).

    Parameters
    ----------
    rows : list of dict
        Store rows (:meth:`sim.sweep.store.ResultStore.rows`).
    out_dir : path
    failures : list of dict
        :meth:`ResultStore.failures`, listed on the page.
    tolerance : float
        Accuracy tolerance of the recommendation, in points.
    notes : list of str
        Extra paragraphs for the page (e.g. what the demo verified).
    """
    if not rows:
        raise ValueError("the results store has no rows to report; run accel sweep first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = sorted({r["model"] for r in rows})
    plots = {name: out / name for name in PLOTS}
    _plot_accuracy(rows, models, plots["accuracy_vs_p.png"])
    _plot_overflow(rows, models, plots["overflow_vs_p.png"])
    _plot_area(rows, plots["area_vs_p.png"])
    _plot_pareto(rows, plots["pareto.png"])
    page = out / "index.html"
    page.write_text(_html(rows, choose_config(rows, tolerance), recommend(rows, tolerance), plots,
                          list(failures), title, list(notes)))
    return ReportPaths(html=page, plots=plots)
