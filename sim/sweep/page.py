"""The interactive sweep report: one self-contained, offline HTML file (Plotly, its JavaScript
inlined; no request leaves the page).

Why Plotly: its whole library is one JavaScript file that ships inside the ``plotly`` wheel
(:func:`plotly.offline.get_plotlyjs`), so the page needs no network and no headless renderer to
build; Vega-Altair's default HTML loads its libraries from a CDN and inlining them needs
``vl-convert`` (a bundled JavaScript runtime). The figures are written here as plain Plotly JSON
(``data``/``layout`` dicts), so building a page imports nothing heavy.

What the page shows, readable for real sweeps (hundreds of points, several arrays, both modes,
every quantizer and checkpoint):

* **small multiples** instead of one crowded plot: a facet per value of every swept field that is
  not a series (model, array size, overflow mode, OverQ, N/M, Q and depth when they vary); inside a
  facet one series per quantizer and checkpoint P (at most :data:`MAX_SERIES`; beyond that the
  quantizer becomes a facet field too), colours fixed per series across facets, the legend below
  the plot area;
* **filters** (one drop-down per swept field) that hide facets, series and table rows at once;
* **accuracy** (%) on a zoomable axis that starts on the decision band (the float model minus a
  few tolerances), the float accuracy and the tolerance band drawn, the recommended point starred,
  points that overflowed drawn open; hover gives every point's full configuration;
* **trade-offs**: accuracy against every numeric area or energy column present in the rows
  (:func:`metric_columns`, with units), the Pareto front and the recommendation;
* **overflow events per layer**, named by the rows' ``layers[].name``, on a log axis (0 drawn at
  the bottom);
* **tables** sortable (click a header) and filterable (text box and the drop-downs), the
  recommended rows highlighted, checkpoint P and mode as columns, inside a scrolling box so the
  page never gets wider than the window.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

from sim.sweep.recommend import Choice, Recommendation, pareto_front, passes, workload

__all__ = ["render_page", "metric_columns", "facet_figures", "MAX_SERIES", "FIELDS",
           "TABLE_COLUMNS", "PAGE_WIDTH_PX"]

#: Most series one facet draws (points of the sweep; the recommendation star is one more).
MAX_SERIES = 8
#: Widest the page is laid out, in CSS pixels.
PAGE_WIDTH_PX = 1360
#: Colours of series (fixed per series over the whole page).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
#: Swept fields: (key, label, value of a row). Series fields come last.
FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("model", "model", lambda r: r["model"]),
    ("array", "array (R x C)", lambda r: f"{r['rows']}x{r['cols']}"),
    ("overflow", "overflow mode", lambda r: r["overflow"]),
    ("overq", "OverQ", lambda r: _overq(r.get("overq"))),
    ("bits", "N / M", lambda r: f"N={r['act_bits']} M={r['weight_bits']}"),
    ("q", "Q", lambda r: "Q = P" if r["out_acc_bits"] == r["pe_acc_bits"] else f"Q = {r['out_acc_bits']}"),
    ("depth", "acc depth", lambda r: f"depth {r.get('acc_depth')}"),
    ("quantizer", "quantizer", lambda r: r["quantizer"]),
    ("target_p", "checkpoint P", lambda r: "-" if not r["target_p"] else f"ckpt P={r['target_p']}"),
)
_SERIES = ("quantizer", "target_p")
#: Columns of the points table: (key, header); ``metric columns`` are added after ``cycles``.
TABLE_COLUMNS = (("model", "model"), ("quantizer", "quantizer"), ("target_p", "checkpoint P"),
                 ("array", "R x C"), ("pe_acc_bits", "P"), ("out_acc_bits", "Q"),
                 ("overflow", "mode"), ("overq", "OverQ"), ("accuracy", "accuracy (%)"),
                 ("float_accuracy", "float (%)"), ("pe_events", "PE events"),
                 ("acc_events", "acc events"), ("adv_pe_events", "adv PE events"),
                 ("adv_acc_events", "adv acc events"), ("cycles", "cycles"),
                 ("utilisation", "utilisation (%)"), ("config_hash", "config"), ("note", "note"))
#: Units of metric columns named with a unit suffix (``area_um2``), when no ``<col>_unit`` column.
_SUFFIX_UNITS = {"um2": "µm²", "mm2": "mm²", "nand2": "NAND2-eq", "pj": "pJ", "nj": "nJ",
                 "uj": "µJ", "fj": "fJ", "mw": "mW", "uw": "µW", "w": "W", "j": "J"}


def _overq(v: Any) -> str:
    if not v:
        return "off"
    if isinstance(v, str):
        v = json.loads(v)
    return f"{v['mode']} c={v['cascade']}"


def _value(key: str, row: dict[str, Any]) -> str:
    return next(f for k, _, f in FIELDS if k == key)(row)


def metric_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Numeric area and energy columns present in ``rows``: ``(column, label, unit)``.

    A column counts when its name is ``area``/``energy`` or starts with ``area_``/``energy_``
    (not the ``_unit`` columns), and some row holds a number in it. The unit is the row's
    ``<column>_unit`` value when present (e.g. ``area_unit`` = ``NAND2-eq`` or ``µm²``), else the
    name's suffix (``energy_pj`` -> pJ), else empty. Columns whose rows disagree on the unit are
    listed once per unit.
    """
    names = sorted({k for r in rows for k in r
                    if re.fullmatch(r"(area|energy)(_\w+)?", k) and not k.endswith("_unit")},
                   key=lambda k: (not k.startswith("area"), k))
    out = []
    for col in names:
        units = []
        for r in rows:
            v = r.get(col)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                unit = r.get(f"{col}_unit") or _SUFFIX_UNITS.get(col.rsplit("_", 1)[-1].lower(), "")
                if unit not in units:
                    units.append(unit)
        kind = "energy" if col.startswith("energy") else "area"
        out += [(col, kind if col in ("area", "energy") else col, u) for u in units]
    return out


def _metric_value(row: dict[str, Any], col: str, unit: str) -> float | None:
    v = row.get(col)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    have = row.get(f"{col}_unit") or _SUFFIX_UNITS.get(col.rsplit("_", 1)[-1].lower(), "")
    return float(v) if have == unit else None


def _hover(row: dict[str, Any]) -> str:
    """Every field of a point, for the hover box."""
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f} %"
    lines = [f"<b>{html.escape(row['model'])}</b> · {html.escape(workload(row))}",
             f"array {row['rows']}x{row['cols']}, P = {row['pe_acc_bits']}, "
             f"Q = {row['out_acc_bits']}, {row['overflow']}, depth {row.get('acc_depth')}, "
             f"OverQ {_overq(row.get('overq'))}, N = {row['act_bits']}, M = {row['weight_bits']}",
             f"accuracy {pct(row.get('accuracy'))} (float {pct(row.get('float_accuracy'))})",
             f"overflow events: test PE {row.get('pe_events')} / acc {row.get('acc_events')}, "
             f"adversarial PE {row.get('adv_pe_events')} / acc {row.get('adv_acc_events')}",
             f"cycles {row.get('cycles')}, utilisation {pct(row.get('utilisation'))}"]
    for col, label, unit in metric_columns([row]):
        lines.append(f"{label} {row[col]:,.1f} {unit}".rstrip())
    if row.get("note"):
        lines.append(f"note: {html.escape(str(row['note']))}")
    lines.append(f"config {row['config_hash']}")
    return "<br>".join(lines)


# --- facets -----------------------------------------------------------------------------------

def _varying(rows: list[dict[str, Any]]) -> list[str]:
    return [k for k, _, _ in FIELDS if len({_value(k, r) for r in rows}) > 1]


def _facet_fields(rows: list[dict[str, Any]], always: tuple[str, ...] = ("model",)
                  ) -> tuple[list[str], list[str]]:
    """``(facet fields, series fields)`` so that no facet has more than MAX_SERIES series."""
    varying = _varying(rows)
    facet = [k for k, _, _ in FIELDS if (k in varying or k in always) and k not in _SERIES]
    series = list(_SERIES)
    for move in _SERIES[:-1]:           # too many series: facet by quantizer as well
        groups: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for r in rows:
            groups.setdefault(tuple(_value(k, r) for k in facet), set()).add(
                tuple(_value(k, r) for k in series))
        if max((len(s) for s in groups.values()), default=0) <= MAX_SERIES:
            break
        facet.append(move)
        series.remove(move)
    return facet, series


def _series_name(key: tuple[str, ...], series: list[str]) -> str:
    parts = [v for v in key if v != "-"]
    return " ".join(parts) or "points"


def _layout(title: str, xtitle: str, ytitle: str, legend_rows: int) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
        "height": 330 + 22 * legend_rows,
        "margin": {"l": 60, "r": 15, "t": 40, "b": 52 + 22 * legend_rows},
        "xaxis": {"title": {"text": xtitle}, "zeroline": False},
        "yaxis": {"title": {"text": ytitle}, "zeroline": False},
        # below the plot area, never over the data
        # at the bottom of the figure, in the margin below the x-axis title: never over the data
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                   "yanchor": "bottom", "font": {"size": 11}},
        "hovermode": "closest", "hoverlabel": {"align": "left", "font": {"size": 11}},
        "template": None, "plot_bgcolor": "#fafafa",
    }


def _legend_rows(names: list[str]) -> int:
    # about 430 px of legend per line, ~7 px per character plus the swatch
    width = sum(40 + 7 * len(n) for n in names)
    return max(1, math.ceil(width / 400))


def facet_figures(rows: list[dict[str, Any]], recs: list[Recommendation], choice: Choice,
                  tolerance: float) -> dict[str, list[dict[str, Any]]]:
    """The page's figures: ``{"accuracy": [...], "tradeoff": [...], "overflow": [...]}``, each
    a list of ``{"id", "title", "attrs", "data", "layout"}`` (``attrs``: the facet's field values,
    for the filters)."""
    facet, series = _facet_fields(rows)
    colours: dict[tuple[str, ...], str] = {}
    for r in rows:
        key = tuple(_value(k, r) for k in series)
        colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])
    recommended = {id(r.row) for r in recs if r.row is not None}
    rec_keys = {r.row["config_hash"] + r.row["model"] + r.row["checkpoint_hash"]
                for r in recs if r.row is not None}
    out: dict[str, list[dict[str, Any]]] = {"accuracy": [], "tradeoff": [], "overflow": []}
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(_value(k, r) for k in facet), []).append(r)
    labels = {k: lab for k, lab, _ in FIELDS}

    def is_rec(r: dict[str, Any]) -> bool:
        return id(r) in recommended or r["config_hash"] + r["model"] + r["checkpoint_hash"] in rec_keys

    for n, (fkey, mine) in enumerate(sorted(groups.items())):
        attrs = dict(zip(facet, fkey))
        title = " · ".join(fkey)
        ref = max((r["float_accuracy"] for r in mine if r.get("float_accuracy") is not None),
                  default=None)
        # --- accuracy vs P
        traces, names = [], []
        for skey in sorted({tuple(_value(k, r) for k in series) for r in mine}):
            pts = sorted((r for r in mine if tuple(_value(k, r) for k in series) == skey
                          and r.get("accuracy") is not None), key=lambda r: r["pe_acc_bits"])
            if not pts:
                continue
            name = _series_name(skey, series)
            names.append(name)
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": name,
                "x": [r["pe_acc_bits"] for r in pts], "y": [100 * r["accuracy"] for r in pts],
                "text": [_hover(r) for r in pts], "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": colours[skey], "width": 1.5},
                "marker": {"color": colours[skey], "size": 8,
                           "symbol": ["circle" if passes(r, tolerance)[0] else "circle-open"
                                      for r in pts]},
                "meta": dict(zip(series, skey))})
        stars = [r for r in mine if is_rec(r) and r.get("accuracy") is not None]
        if stars:
            traces.append({"type": "scatter", "mode": "markers", "name": "recommended",
                           "x": [r["pe_acc_bits"] for r in stars],
                           "y": [100 * r["accuracy"] for r in stars],
                           "text": [_hover(r) for r in stars],
                           "hovertemplate": "<b>recommended</b><br>%{text}<extra></extra>",
                           "marker": {"symbol": "star", "size": 18, "color": "gold",
                                      "line": {"color": "black", "width": 1}},
                           "meta": {k: _value(k, stars[0]) for k in series}})
            names.append("recommended")
        if traces:
            lay = _layout(title, "P, PE accumulator width (bits)", "accuracy (%)",
                          _legend_rows(names))
            accs = [y for t in traces for y in t["y"]]
            shapes, notes = [], []
            if ref is not None:
                top = max(100 * ref, max(accs)) + 0.6
                lo = min(100 * ref - max(4 * tolerance, 3.0), 100 * ref - tolerance - 0.5)
                lo = max(lo, min(accs) - 0.6)
                hidden = sum(1 for y in accs if y < lo)
                lay["yaxis"]["range"] = [lo, top]
                shapes = [{"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                           "y0": 100 * ref - tolerance, "y1": 100 * ref, "layer": "below",
                           "fillcolor": "rgba(44,160,44,0.13)", "line": {"width": 0}},
                          {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                           "y0": 100 * ref, "y1": 100 * ref,
                           "line": {"color": "black", "dash": "dash", "width": 1}}]
                lay["title"]["text"] += (f"<br><span style='font-size:11px'>float "
                                         f"{100 * ref:.2f} %, band: within {tolerance:g} pt"
                                         + (f"; {hidden} points below {lo:.1f} %: zoom out "
                                            "(double-click)" if hidden else "") + "</span>")
                lay["margin"]["t"] = 55
            lay["shapes"] = shapes
            lay["xaxis"]["dtick"] = 1 if len({x for t in traces for x in t["x"]}) <= 16 else None
            out["accuracy"].append({"id": f"acc{n}", "title": title, "attrs": attrs,
                                    "data": traces, "layout": lay, "notes": notes})
        # --- overflow events per layer
        layer_names: list[str] = []
        for r in mine:
            for lay_ in r.get("layers") or []:
                if lay_["name"] not in layer_names:
                    layer_names.append(lay_["name"])
        for li, lname in enumerate(layer_names):
            traces, names = [], []
            for skey in sorted({tuple(_value(k, r) for k in series) for r in mine}):
                pts = []
                for r in sorted(mine, key=lambda r: r["pe_acc_bits"]):
                    if tuple(_value(k, r) for k in series) != skey:
                        continue
                    for lay_ in r.get("layers") or []:
                        if lay_["name"] == lname:
                            ev = (lay_.get("pe_events") or 0) + (lay_.get("acc_events") or 0)
                            pts.append((r, lay_, ev))
                if not pts:
                    continue
                name = _series_name(skey, series)
                names.append(name)
                traces.append({
                    "type": "scatter", "mode": "lines+markers", "name": name,
                    "x": [r["pe_acc_bits"] for r, _, _ in pts],
                    "y": [max(ev, 0.5) for _, _, ev in pts],
                    "text": [f"layer <b>{html.escape(lname)}</b>: {lay_.get('pe_events')} PE + "
                             f"{lay_.get('acc_events')} accumulator events (test set), "
                             f"adversarial {lay_.get('adv_pe_events')} + "
                             f"{lay_.get('adv_acc_events')}<br>" + _hover(r)
                             for r, lay_, _ in pts],
                    "hovertemplate": "%{text}<extra></extra>",
                    "line": {"color": colours[skey], "width": 1.5},
                    "marker": {"color": colours[skey], "size": 7},
                    "meta": dict(zip(series, skey))})
            if not traces:
                continue
            lay = _layout(f"{title} · layer {lname}", "P, PE accumulator width (bits)",
                          "overflow events (PE + acc, test set)", _legend_rows(names))
            top = max(y for t in traces for y in t["y"])
            decades = list(range(0, max(1, math.ceil(math.log10(max(top, 1)))) + 1))
            lay["yaxis"].update(type="log", tickvals=[0.5] + [10 ** d for d in decades],
                                ticktext=["0"] + [f"{10 ** d:,}" for d in decades])
            out["overflow"].append({"id": f"ovf{n}_{li}", "title": f"{title} · {lname}",
                                    "attrs": {**attrs, "layer": lname}, "data": traces,
                                    "layout": lay})
    out["tradeoff"] = _tradeoffs(rows, recs, choice, colours, is_rec)
    return out


def _tradeoffs(rows: list[dict[str, Any]], recs: list[Recommendation], choice: Choice,
               colours: dict[tuple[str, ...], str], is_rec: Any) -> list[dict[str, Any]]:
    """Accuracy against each metric column, per model: points by quantizer, the Pareto front."""
    figs = []
    for mi, (col, label, unit) in enumerate(metric_columns(rows)):
        for model in sorted({r["model"] for r in rows}):
            mine = [r for r in rows if r["model"] == model and r.get("accuracy") is not None
                    and _metric_value(r, col, unit) is not None]
            if not mine:
                continue
            traces, names = [], []
            qs = sorted({r["quantizer"] for r in mine})
            for qi, q in enumerate(qs):
                pts = [r for r in mine if r["quantizer"] == q]
                traces.append({"type": "scatter", "mode": "markers", "name": q,
                               "x": [_metric_value(r, col, unit) for r in pts],
                               "y": [100 * r["accuracy"] for r in pts],
                               "text": [_hover(r) for r in pts],
                               "hovertemplate": "%{text}<extra></extra>",
                               "marker": {"size": 8, "opacity": 0.75,
                                          "color": PALETTE[qi % len(PALETTE)]},
                               "meta": {"quantizer": q}})
                names.append(q)
            pts = [(_metric_value(r, col, unit), 100 * r["accuracy"]) for r in mine]
            front = pareto_front(pts)
            traces.append({"type": "scatter", "mode": "lines", "name": "Pareto front",
                           "x": [pts[i][0] for i in front], "y": [pts[i][1] for i in front],
                           "line": {"shape": "hv", "color": "black", "width": 1.5},
                           "hoverinfo": "skip", "meta": {}})
            names.append("Pareto front")
            stars = [r for r in mine if is_rec(r)]
            if stars:
                traces.append({"type": "scatter", "mode": "markers", "name": "recommended",
                               "x": [_metric_value(r, col, unit) for r in stars],
                               "y": [100 * r["accuracy"] for r in stars],
                               "text": [_hover(r) for r in stars],
                               "hovertemplate": "<b>recommended</b><br>%{text}<extra></extra>",
                               "marker": {"symbol": "star", "size": 18, "color": "gold",
                                          "line": {"color": "black", "width": 1}}, "meta": {}})
                names.append("recommended")
            xt = f"{label} ({unit})" if unit else label
            lay = _layout(f"{model} · accuracy vs {xt}", xt, "accuracy (%)", _legend_rows(names))
            ref = max((r["float_accuracy"] for r in mine if r.get("float_accuracy") is not None),
                      default=None)
            accs = [p[1] for p in pts]
            if ref is not None:
                lo = max(min(accs) - 0.6, 100 * ref - 10)
                lay["yaxis"]["range"] = [lo, max(100 * ref, max(accs)) + 0.6]
                lay["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                                  "y0": 100 * ref, "y1": 100 * ref,
                                  "line": {"color": "black", "dash": "dash", "width": 1}}]
            figs.append({"id": f"trade{mi}_{model}", "title": f"{model} {xt}",
                         "attrs": {"model": model}, "data": traces, "layout": lay})
    return figs


# --- tables -----------------------------------------------------------------------------------

def _cell(key: str, row: dict[str, Any]) -> tuple[str, str]:
    """``(sort value, shown text)`` of one table cell."""
    if key == "array":
        return str(row["rows"] * row["cols"]), f"{row['rows']}x{row['cols']}"
    if key == "overq":
        v = _overq(row.get("overq"))
        return v, v
    if key == "target_p":
        v = row.get("target_p")
        return str(v or 0), "-" if not v else str(v)
    v = row.get(key)
    if v is None:
        return "", ""
    if key in ("accuracy", "float_accuracy", "utilisation"):
        return repr(float(v)), f"{100 * v:.2f}"
    if isinstance(v, float):
        return repr(v), f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v), f"{v:,}" if key not in ("pe_acc_bits", "out_acc_bits") else str(v)
    return str(v), str(v)


def _attrs(row: dict[str, Any]) -> str:
    return " ".join(f"data-f-{k}='{html.escape(_value(k, row), quote=True)}'" for k, _, _ in FIELDS)


def _table(table_id: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]],
           highlight: Any = lambda r: False, attrs: Any = _attrs) -> str:
    head = "".join(f"<th title='click to sort'>{html.escape(h)}</th>" for _, h in columns)
    body = []
    for r in rows:
        cells = []
        for key, _ in columns:
            sort, text = _cell(key, r)
            cells.append(f"<td data-v='{html.escape(sort, quote=True)}'>{html.escape(text)}</td>")
        cls = " class='rec'" if highlight(r) else ""
        body.append(f"<tr{cls} {attrs(r)}>{''.join(cells)}</tr>")
    return (f"<div class='tablewrap'><table id='{table_id}' class='sortable'><thead><tr>{head}"
            f"</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


# --- the page ---------------------------------------------------------------------------------

_CSS = f"""*{{box-sizing:border-box}}
body{{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 1.2em;max-width:{PAGE_WIDTH_PX}px;
color:#222}}
h1{{font-size:1.5em}}h2{{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:10px}}
.facet{{border:1px solid #e3e3e3;border-radius:4px;min-width:0;overflow:hidden}}
.hidden{{display:none!important}}
.filters{{position:sticky;top:0;background:#fff;z-index:10;padding:.5em 0;
border-bottom:1px solid #ddd;display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center}}
.filters label{{font-size:13px}}select,input{{font-size:13px}}
.tablewrap{{max-width:100%;overflow:auto;max-height:34em;border:1px solid #ddd}}
table{{border-collapse:collapse;font-size:12px;white-space:nowrap}}
td,th{{border-bottom:1px solid #eee;padding:2px 7px;text-align:right}}
th{{background:#f0f0f0;position:sticky;top:0;cursor:pointer;user-select:none}}
th.asc::after{{content:" ▲"}}th.desc::after{{content:" ▼"}}
tr.rec td{{background:#fff4c2;font-weight:600}}
.rec-box{{background:#eef8ee;padding:.5em 1em;border-left:4px solid #393;margin:.4em 0}}
.none{{background:#fbeeee;border-left-color:#933}}
.muted{{color:#666;font-size:13px}}"""

_JS = """
const FIGS = JSON.parse(document.getElementById('figures').textContent);
const CONFIG = {responsive: true, displaylogo: false,
                modeBarButtonsToRemove: ['select2d', 'lasso2d']};
for (const group of Object.values(FIGS)) for (const f of group) {
  Plotly.newPlot(f.id, f.data, f.layout, CONFIG);
}
function selected() {
  const s = {};
  document.querySelectorAll('.filters select').forEach(e => { if (e.value) s[e.name] = e.value; });
  return s;
}
function matches(get, sel) {
  for (const [k, v] of Object.entries(sel)) { const have = get(k); if (have != null && have !== v) return false; }
  return true;
}
function applyFilters() {
  const sel = selected();
  const text = (document.getElementById('textfilter').value || '').toLowerCase();
  for (const group of Object.values(FIGS)) for (const f of group) {
    const div = document.getElementById(f.id);
    const show = matches(k => (k in f.attrs ? f.attrs[k] : null), sel);
    div.parentElement.classList.toggle('hidden', !show);
    if (!show) continue;
    const vis = f.data.map(t => matches(k => (t.meta && k in t.meta ? t.meta[k] : null), sel));
    const any = vis.some(v => v);
    div.parentElement.classList.toggle('hidden', !any);
    Plotly.restyle(div, {visible: vis.map(v => v ? true : false)});
  }
  document.querySelectorAll('table.sortable tbody tr').forEach(tr => {
    const ok = matches(k => tr.getAttribute('data-f-' + k), sel) &&
               (!text || tr.textContent.toLowerCase().includes(text));
    tr.classList.toggle('hidden', !ok);
  });
  document.querySelectorAll('.grid').forEach(g => {
    const n = g.querySelectorAll('.facet:not(.hidden)').length;
    const c = document.getElementById(g.id + '-count'); if (c) c.textContent = n + ' of ' + g.children.length + ' facets shown';
  });
}
document.querySelectorAll('.filters select, #textfilter').forEach(e => e.addEventListener('input', applyFilters));
document.querySelectorAll('table.sortable').forEach(table => {
  table.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => {
    const asc = !th.classList.contains('asc');
    table.querySelectorAll('th').forEach(h => h.classList.remove('asc', 'desc'));
    th.classList.add(asc ? 'asc' : 'desc');
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const key = r => r.cells[i].getAttribute('data-v');
    const num = rows.every(r => key(r) === '' || !isNaN(parseFloat(key(r))));
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      const c = num ? (parseFloat(x || 'NaN') || 0) - (parseFloat(y || 'NaN') || 0) : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(r => body.appendChild(r));
  }));
});
applyFilters();
"""


def _filters(rows: list[dict[str, Any]]) -> str:
    parts = []
    for key, label, f in FIELDS:
        values = sorted({f(r) for r in rows}, key=lambda v: (len(v), v))
        if len(values) < 2:
            continue
        opts = "".join(f"<option value='{html.escape(v, quote=True)}'>{html.escape(v)}</option>"
                       for v in values)
        parts.append(f"<label>{html.escape(label)} <select name='{key}'><option value=''>all"
                     f"</option>{opts}</select></label>")
    parts.append("<label>rows containing <input id='textfilter' type='search' "
                 "placeholder='text'></label>")
    return "<div class='filters'>" + "".join(parts) + "</div>"


def _grid(name: str, figs: list[dict[str, Any]]) -> str:
    cells = "".join(f"<div class='facet'><div id='{f['id']}'></div></div>" for f in figs)
    return (f"<p class='muted' id='grid-{name}-count'></p>"
            f"<div class='grid' id='grid-{name}'>{cells}</div>")


def render_page(rows: list[dict[str, Any]], choice: Choice, recs: list[Recommendation],
                failures: list[dict[str, Any]], title: str, notes: list[str], tolerance: float,
                png_names: dict[str, str]) -> str:
    """The whole HTML page (a string, Plotly's JavaScript inlined)."""
    from plotly.offline import get_plotlyjs

    figs = facet_figures(rows, recs, choice, tolerance)
    rec_ids = {id(r.row) for r in recs if r.row is not None}
    rec_keys = {(r.row["config_hash"], r.row["model"], r.row["checkpoint_hash"])
                for r in recs if r.row is not None}

    def highlight(r: dict[str, Any]) -> bool:
        return id(r) in rec_ids or (r["config_hash"], r["model"], r["checkpoint_hash"]) in rec_keys

    metrics = metric_columns(rows)
    cols = list(TABLE_COLUMNS)
    at = [k for k, _ in cols].index("utilisation") + 1
    cols[at:at] = [(c, f"{lab} ({u})" if u else lab) for c, lab, u in metrics
                   if all(_metric_value(r, c, u) is None or r.get(c) is not None for r in rows)]
    # a column shown once even when its rows carry several units (values read per row)
    seen, uniq = set(), []
    for c in cols:
        if c[0] not in seen:
            seen.add(c[0])
            uniq.append(c)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
             f"<script>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} design points, {len(failures)} failed. Accuracy in % of the test "
             f"split; tolerance {tolerance:g} percentage points below the float model.</p>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Recommendation</h2>")
    cls = "rec-box" if choice.row is not None else "rec-box none"
    parts.append(f"<p class='{cls}'><b>{html.escape(choice.summary())}</b></p>")
    for rec in recs:
        cls = "rec-box" if rec.row is not None else "rec-box none"
        parts.append(f"<p class='{cls}'>{html.escape(rec.summary()).replace(chr(10), '<br>')}</p>")
    parts.append(_filters(rows))
    parts.append("<h2>Accuracy vs P</h2><p class='muted'>One facet per swept configuration, "
                 "one line per quantizer and checkpoint; open markers had overflow events (test "
                 "set or adversarial); the green band is within the tolerance of the float model "
                 "(dashed); the star is the recommendation. Drag to zoom, double-click to reset, "
                 "click a legend entry to hide a line; hover a point for its configuration.</p>")
    parts.append(_grid("accuracy", figs["accuracy"]))
    if figs["tradeoff"]:
        parts.append("<h2>Accuracy vs " + ", ".join(
            f"{lab} ({u})" if u else lab for _, lab, u in metrics) + "</h2><p class='muted'>"
            "Every point with the metric; the black step line is the Pareto front.</p>")
        parts.append(_grid("tradeoff", figs["tradeoff"]))
    else:
        parts.append("<h2>Accuracy vs area</h2><p class='muted'>No area or energy columns in "
                     "these rows: run accel sweep with --synth generic (or another target).</p>")
    parts.append("<h2>Overflow events per layer</h2><p class='muted'>PE plus accumulator events "
                 "on the test set, per layer (names as stored), log axis; 0 is drawn at the "
                 "bottom.</p>")
    parts.append(_grid("overflow", figs["overflow"]))
    parts.append("<h2>All points</h2><p class='muted'>Click a header to sort; the drop-downs and "
                 "the text box filter; recommended rows are highlighted.</p>")
    parts.append(_table("points", uniq, rows, highlight))
    layer_rows = [{**r, "_layer": lay} for r in rows for lay in (r.get("layers") or [])]
    if layer_rows:
        lcols = [("model", "model"), ("quantizer", "quantizer"), ("target_p", "checkpoint P"),
                 ("array", "R x C"), ("pe_acc_bits", "P"), ("overflow", "mode"),
                 ("l:name", "layer"), ("l:outputs", "outputs"), ("l:pe_events", "PE events"),
                 ("l:acc_events", "acc events"), ("l:affected", "outputs affected"),
                 ("l:adv_pe_events", "adv PE events"), ("l:adv_acc_events", "adv acc events")]
        flat = [{**r, **{f"l:{k}": v for k, v in r["_layer"].items()}} for r in layer_rows]
        parts.append("<h2>Per-layer overflow events</h2>" + _table("layers", lcols, flat))
    if failures:
        fcols = [("label", "point"), ("error", "error"), ("finished_at", "when")]
        parts.append("<h2>Failed points</h2>" + _table("failures", fcols, failures,
                                                        attrs=lambda r: ""))
    if png_names:
        parts.append("<h2>Static plots (PNG, for papers)</h2><p>" + " · ".join(
            f"<a href='{html.escape(n)}'>{html.escape(c)}</a>" for n, c in png_names.items())
            + "</p>")
    data = json.dumps(figs, separators=(",", ":")).replace("</", "<\\/")
    parts.append(f"<script type='application/json' id='figures'>{data}</script>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"
