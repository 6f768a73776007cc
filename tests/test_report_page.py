"""The interactive report page: self-contained, faceted (at most 8 series a facet), metric columns
picked up with their units, layer names as stored; and in a real browser (headless Chromium)."""

import itertools
import re
import time

import pytest

import browser
from sim.sweep.page import MAX_SERIES, facet_figures, metric_columns
from sim.sweep.recommend import choose_config, recommend
from sim.sweep.report import write_report

QUANTIZERS = {"a2q": (16, 20), "a2q+": (16, 20), "oaq": (16, 20), "baseline": (32,)}


def sweep_rows(models=("cnn", "mlp"), arrays=((2, 8), (4, 8), (8, 8)), ps=(16, 18, 20, 24),
               modes=("wrap", "saturate"), metrics=None):
    """Rows shaped like a real >= 200-point sweep: every checkpoint on every array, P and mode."""
    metrics = metrics or (lambda r, c: {"area": 1000.0 * r * c + 40 * p, "area_unit": "NAND2-eq",
                                        "synth_target": "generic"})
    out = []
    for model, (r, c), p, mode, (q, tps) in itertools.product(models, arrays, ps, modes,
                                                               QUANTIZERS.items()):
        for tp in tps:
            short = p < tp
            acc = 0.99 - (0.5 if short and q == "baseline" else 0.03 * max(0, tp - p) / 4)
            events = 0 if not short else 100 * (tp - p)
            layers = ["conv1", "conv2", "fc"] if model == "cnn" else ["fc1", "fc2"]
            out.append({
                "config_hash": f"{r}x{c}-{p}-{mode}", "model": model, "quantizer": q,
                "act_bits": 8, "weight_bits": 8, "target_p": tp, "checkpoint_hash": f"{q}{tp}",
                "rows": r, "cols": c, "pe_acc_bits": p, "out_acc_bits": p, "overflow": mode,
                "acc_depth": 64, "overq": None, "accuracy": acc, "float_accuracy": 0.99,
                "pe_events": events, "acc_events": events // 2, "adv_pe_events": events,
                "adv_acc_events": 0, "cycles": 1000 + p, "utilisation": 0.5, "seconds": 0.2,
                **metrics(r, c),
                "layers": [{"name": n, "outputs": 100, "pe_events": events, "acc_events": i,
                            "affected": 1, "adv_pe_events": 0, "adv_acc_events": 0}
                           for i, n in enumerate(layers)]})
    return out


def test_sweep_shape_is_realistic():
    rows = sweep_rows()
    assert len(rows) == 2 * 3 * 4 * 2 * 7 == 336


def test_every_facet_draws_at_most_8_series():
    rows = sweep_rows()
    recs, choice = recommend(rows), choose_config(rows)
    figs = facet_figures(rows, recs, choice, 1.0)
    assert figs["accuracy"] and figs["overflow"] and figs["tradeoff"]
    for group in figs.values():
        for f in group:
            series = [t for t in f["data"] if t["name"] not in ("recommended", "Pareto front")]
            assert 1 <= len(series) <= MAX_SERIES, f["title"]
            legend = f["layout"]["legend"]                   # in the bottom margin
            assert (legend["yref"], legend["y"], legend["yanchor"]) == ("container", 0, "bottom")
    # the facets are the swept configurations: model x array x mode
    assert len(figs["accuracy"]) == 2 * 3 * 2
    assert {f["attrs"]["overflow"] for f in figs["accuracy"]} == {"wrap", "saturate"}
    # 4 quantizers x 4 checkpoint Ps would be more than 8 series: the quantizer becomes a facet
    many = [dict(r, target_p=tp, checkpoint_hash=f"{r['quantizer']}{tp}")
            for r in sweep_rows(models=("cnn",), arrays=((4, 4),), modes=("wrap",))
            for tp in (16, 18, 20, 24)]
    figs = facet_figures(many, recommend(many), choose_config(many), 1.0)
    assert {f["attrs"].get("quantizer") for f in figs["accuracy"]} == set(QUANTIZERS)
    assert max(len(f["data"]) for f in figs["accuracy"]) <= MAX_SERIES + 1


def test_recommendation_band_and_zoomed_accuracy_axis():
    rows = sweep_rows(models=("cnn",), arrays=((4, 8),), modes=("wrap",))
    recs = recommend(rows)
    (fig,) = facet_figures(rows, recs, choose_config(rows), 1.0)["accuracy"]
    star = next(t for t in fig["data"] if t["name"] == "recommended")
    assert star["x"] == [recs[0].row["pe_acc_bits"]]
    band = fig["layout"]["shapes"][0]
    assert (band["y0"], band["y1"]) == pytest.approx((98.0, 99.0))
    lo, hi = fig["layout"]["yaxis"]["range"]
    assert 94 <= lo < 98 and 99 < hi <= 100.5        # the decision band, not 10-100 %
    assert "points below" in fig["layout"]["title"]["text"]   # the collapsed ones are announced
    hover = star["text"][0]
    for part in ("array 4x8", "P = 16", "Q = 16", "wrap", "checkpoint trained for P = 16",
                 "accuracy 99.00 %", "area 32,640.0 NAND2-eq", "config 4x8-16-wrap"):
        assert part in hover


def test_metric_columns_are_found_with_units():
    assert metric_columns(sweep_rows()[:3]) == [("area", "area", "NAND2-eq")]
    sky = lambda r, c: {"area": 55.5 * r * c, "area_unit": "µm²", "synth_target": "sky130",  # noqa: E731
                        "energy_pj": 0.25 * r, "luts": 5}
    assert metric_columns(sweep_rows(metrics=sky)[:2]) == [("area", "area", "µm²"),
                                                          ("energy_pj", "energy_pj", "pJ")]
    none = [dict(r, area=None) for r in sweep_rows()[:2]]
    assert metric_columns(none) == []
    mixed = sweep_rows(arrays=((4, 8),))[:2] + sweep_rows(arrays=((8, 8),), metrics=sky)[:2]
    assert [u for _, _, u in metric_columns(mixed)][:2] == ["NAND2-eq", "µm²"]
    figs = facet_figures(mixed, recommend(mixed), choose_config(mixed), 1.0)["tradeoff"]
    titles = [f["layout"]["xaxis"]["title"]["text"] for f in figs]
    assert "area (NAND2-eq)" in titles and "area (µm²)" in titles and "energy_pj (pJ)" in titles


def test_layers_are_named_as_stored():
    rows = sweep_rows(models=("cnn",), arrays=((4, 8),), modes=("wrap",))
    figs = facet_figures(rows, recommend(rows), choose_config(rows), 1.0)["overflow"]
    assert [f["attrs"]["layer"] for f in figs] == ["conv1", "conv2", "fc"]
    assert all(f["layout"]["yaxis"]["type"] == "log" and f["layout"]["yaxis"]["ticktext"][0] == "0"
               for f in figs)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rows = sweep_rows()
    failures = [{"label": "cnn a2q P=17", "error": "KeyError: 'x'", "finished_at": "now"}]
    return write_report(rows, out, failures, 1.0).html


def test_page_is_one_offline_file(page):
    text = page.read_text()
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=", text)
    assert "@import" not in text and "Plotly.newPlot" in text
    assert "<th title='click to sort'>checkpoint P</th>" in text and ">mode</th>" in text
    assert text.count("<tr class='rec'") == 2                # one recommended row per model
    assert "area (NAND2-eq)" in text and "Failed points" in text
    assert page.stat().st_size < 8e6


@pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
def test_page_in_a_browser(page, tmp_path):
    start = time.perf_counter()
    with browser.chromium(width=1400) as driver:
        rep = browser.page_report(driver, page)
        assert rep["errors"] == [] and rep["resources"] == []
        assert [u for u in rep["requests"] if not u.startswith("chrome://")] == []
        assert rep["scrollWidth"] <= 1400 and rep["innerWidth"] == 1400
        assert len(rep["plots"]) == 12 + 2 + 6 * 3 + 6 * 2      # accuracy, trade-off, layers
        for p in rep["plots"]:
            assert p["points"] > 0 and p["series"] <= MAX_SERIES, p
            assert not browser.overlaps(p["plotArea"], p["legend"]), p
            assert p["width"] >= 400
        # a filter hides facets and table rows, with no error
        driver.execute_script("const s = document.querySelector(\"select[name='overflow']\");"
                              "s.value = 'wrap'; s.dispatchEvent(new Event('input'));")
        shown = driver.execute_script(
            "return [document.querySelectorAll('#grid-accuracy .facet:not(.hidden)').length,"
            " document.querySelectorAll('#points tbody tr:not(.hidden)').length]")
        assert shown == [6, 168]
        driver.execute_script("document.querySelectorAll('#points th')[8].click()")  # accuracy
        first = driver.execute_script(
            "return document.querySelector('#points tbody tr:not(.hidden) td:nth-child(9)')"
            ".textContent")
        assert float(first) == min(100 * r["accuracy"] for r in sweep_rows() if r["overflow"] == "wrap")
        logs = driver.get_log("browser")
        assert [e for e in logs if e.get("level") == "SEVERE"] == []
    assert time.perf_counter() - start < 120
