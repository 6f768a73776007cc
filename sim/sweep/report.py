"""The sweep report: one interactive, self-contained HTML page (:mod:`sim.sweep.page`) and five
static PNG plots for papers (matplotlib, Agg, no display).

Plots, one panel per model:

* ``accuracy_vs_p.png``: accuracy vs P, a line per quantizer and checkpoint (one checkpoint on
  narrower arrays; array size and overflow mode too where the sweep varies them), a grey dashed
  line through each checkpoint at its own target P (a model retrained for each P), the float
  model dashed black;
* ``overflow_vs_p.png``: overflow events (PE + accumulator, test set) vs P, a panel per layer, a
  line per quantizer and checkpoint, symmetric-log axis;
* ``area_vs_p.png``: area vs P per array size and overflow mode (synthesised points only);
* ``pareto.png``: accuracy vs area of every synthesised point, each model's Pareto front drawn;
* ``energy_vs_p.png``: dynamic energy of one inference vs P, a panel per model, a line per array
  size and overflow mode (points swept with ``--energy`` only).

``index.html`` (:func:`sim.sweep.page.render_page`) shows the recommendation, faceted
interactive plots, filters and sortable tables; it links the PNGs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.sweep.page import render_page
from sim.sweep.recommend import DEFAULT_TOLERANCE, choose_config, pareto_front, recommend

__all__ = ["ReportPaths", "write_report", "PLOTS"]

#: Plot file names in page order, with their captions.
PLOTS = {
    "accuracy_vs_p.png": "Accuracy vs P per quantizer",
    "overflow_vs_p.png": "Overflow events vs P per layer (test set)",
    "area_vs_p.png": "Area vs P",
    "pareto.png": "Accuracy-area Pareto front",
    "energy_vs_p.png": "Energy per inference vs P",
}
@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`write_report`."""

    html: Path
    plots: dict[str, Path]


def _figure(n_panels: int, title: str) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    cols = min(n_panels, 4)
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


def _series_key(row: dict[str, Any]) -> str:
    """Legend label of the line a row belongs to: quantizer and checkpoint."""
    return row["quantizer"] + (f" ckpt P={row['target_p']}" if row["target_p"] else "")


def _panels(rows: list[dict[str, Any]], models: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """One panel per model and, where the sweep varies them, array size and overflow mode (the
    same facets as the HTML page, so no panel holds more lines than quantizers x checkpoints)."""
    arrays = len({(r["rows"], r["cols"]) for r in rows}) > 1
    modes = len({r["overflow"] for r in rows}) > 1
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = (models.index(r["model"]), r["rows"] * r["cols"] if arrays else 0,
               r["overflow"] if modes else "")
        groups.setdefault(key, []).append(r)
    out = []
    for _, mine in sorted(groups.items()):
        r = mine[0]
        title = " ".join([r["model"]] + ([f"{r['rows']}x{r['cols']}"] if arrays else [])
                         + ([r["overflow"]] if modes else []))
        out.append((title, mine))
    return out


def _lines(rows: list[dict[str, Any]], key: Any, y: Any) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        v = y(r)
        if v is not None:
            out.setdefault(key(r), {}).setdefault(r["pe_acc_bits"], []).append(v)
    # several points at one P on one line (e.g. Q or depth varied): plot their mean
    return {k: (sorted(d), [sum(d[p]) / len(d[p]) for p in sorted(d)]) for k, d in sorted(out.items())}


def _plot_accuracy(rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    panels = _panels(rows, models)
    fig, axes = _figure(len(panels), "Accuracy vs P (PE accumulator width)")
    for ax, (title, mine) in zip(axes, panels):
        acc = lambda r: None if r["accuracy"] is None else 100 * r["accuracy"]  # noqa: E731
        for label, (xs, ys) in _lines(mine, _series_key, acc).items():
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
        ax.set(title=title, xlabel="P (bits)", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=110)


def _plot_overflow(rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    panels = []                                # (title, layer, rows) in model and layer order
    for title, mine in _panels(rows, models):
        layers: list[str] = []
        for r in mine:
            layers += [lay["name"] for lay in r.get("layers") or [] if lay["name"] not in layers]
        panels += [(f"{title}: layer {name}", name, mine) for name in layers]
    fig, axes = _figure(max(1, len(panels)),
                        "Overflow events vs P, per layer (test set, PE + accumulator)")
    if not panels:
        _empty(axes[0], "no per-layer results")
    for ax, (title, layer, mine) in zip(axes, panels):
        per_layer = [{**r, "_events": (lay.get("pe_events") or 0) + (lay.get("acc_events") or 0)}
                     for r in mine for lay in r.get("layers") or [] if lay["name"] == layer]
        for label, (xs, ys) in _lines(per_layer, _series_key, lambda r: r["_events"]).items():
            ax.plot(xs, ys, marker=".", label=label)
        ax.set_yscale("symlog", linthresh=1)
        ax.set(title=title, xlabel="P (bits)", ylabel="overflow events")
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


def _plot_energy(rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    priced = [r for r in rows if r.get("energy_pj") is not None]
    mine = [m for m in models if any(r["model"] == m for r in priced)]
    fig, axes = _figure(max(1, len(mine)), "Dynamic energy of one inference vs P")
    if not priced:
        _empty(axes[0], "no energy results: run accel sweep with --energy")
    for ax, model in zip(axes, mine):
        pts = [r for r in priced if r["model"] == model]
        for label, (xs, ys) in _lines(pts, lambda r: f"{r['rows']}x{r['cols']} {r['overflow']}",
                                      lambda r: r["energy_pj"] / 1e3).items():
            ax.plot(xs, ys, marker="o", label=label)
        ax.set(title=model, xlabel="P (bits)", ylabel="energy per inference (nJ)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def write_report(rows: list[dict[str, Any]], out_dir: str | Path, failures: list[dict[str, Any]] = (),
                 tolerance: float = DEFAULT_TOLERANCE, title: str = "accel-hw design-space sweep",
                 notes: list[str] = ()) -> ReportPaths:
    """Write the plots (:data:`PLOTS`) and ``index.html`` into ``out_dir`` (created).

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
    _plot_energy(rows, models, plots["energy_vs_p.png"])
    page = out / "index.html"
    page.write_text(render_page(rows, choose_config(rows, tolerance), recommend(rows, tolerance),
                                list(failures), title, list(notes), tolerance, dict(PLOTS)))
    return ReportPaths(html=page, plots=plots)
