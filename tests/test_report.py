"""The recommendation rule, the Pareto front, the plots and the HTML page."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.sweep.recommend import choose_config, pareto_front, passes, recommend
from sim.sweep.report import PLOTS, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def row(p, acc, area=None, events=0, adv=0, model="cnn", quantizer="a2q", rows=4, cols=4, q=None,
        float_acc=0.95, target_p=None):
    return {"config_hash": f"c{p}-{rows}x{cols}-{q}-{area}", "model": model, "quantizer": quantizer,
            "act_bits": 8, "weight_bits": 8, "target_p": p if target_p is None else target_p,
            "checkpoint_hash": "h", "rows": rows, "cols": cols, "pe_acc_bits": p,
            "out_acc_bits": q or p, "overflow": "wrap", "accuracy": acc, "float_accuracy": float_acc,
            "pe_events": events, "acc_events": 0, "adv_pe_events": adv, "adv_acc_events": 0,
            "cycles": 100, "utilisation": 0.5, "area": area, "area_unit": "NAND2-eq" if area else None,
            "synth_target": "generic" if area else None, "seconds": 0.1,
            "layers": [{"name": "conv1", "pe_events": events, "acc_events": 0},
                       {"name": "fc", "pe_events": events // 2, "acc_events": 1}]}


def test_rule_smallest_p_then_smallest_area():
    rows = [row(16, 0.80), row(17, 0.945, area=900), row(17, 0.95, area=800, rows=8, cols=8),
            row(18, 0.95, area=500), row(17, 0.96, area=700, events=3), row(17, 0.96, area=600, adv=1)]
    (rec,) = recommend(rows, tolerance=1.0)
    assert rec.row["pe_acc_bits"] == 17 and rec.row["area"] == 800
    assert rec.considered == 6 and rec.qualifying == 3
    assert rec.rejected == {"accuracy": 1, "overflow on the test set": 1,
                            "overflow on adversarial inputs": 1}
    assert "recommended: P = 17, Q = 17, 8x8 array" in rec.summary()
    # a tighter tolerance moves the choice
    (tight,) = recommend(rows, tolerance=0.2)
    assert tight.row["area"] == 800
    (tighter,) = recommend(rows, tolerance=0.0)
    assert tighter.row["pe_acc_bits"] == 17 and tighter.row["accuracy"] == 0.95


def test_rule_per_model_and_no_answer():
    recs = recommend([row(16, 0.2, model="mlp"), row(20, 0.95, model="cnn")])
    assert [r.model for r in recs] == ["cnn", "mlp"]
    assert recs[1].row is None and "no configuration qualifies (1 x accuracy)" in recs[1].summary()
    ok, cat, msg = passes({**row(20, 0.95), "adv_pe_events": None}, 1.0)
    assert not ok and cat == "not measured" and msg == "overflow events on adversarial inputs not measured"
    ok, cat, msg = passes({**row(20, None), "note": "layer fc: bias 9 does not fit"}, 1.0)
    assert (ok, cat, msg) == (False, "infeasible", "layer fc: bias 9 does not fit")
    ok, cat, msg = passes(row(20, 0.90), 1.0)
    assert msg == "accuracy 90.00 % is more than 1 points below the float model's 95.00 %"
    with pytest.raises(ValueError, match="tolerance must be a number of accuracy points >= 0, not -1"):
        recommend([], -1)


def test_one_configuration_for_all_models():
    rows = [row(16, 0.95, area=100, model="cnn"), row(16, 0.5, area=100, model="mlp"),
            row(18, 0.95, area=200, model="cnn", quantizer="a2q+"),
            row(18, 0.95, area=200, model="mlp", quantizer="oaq", target_p=16),
            row(18, 0.953, area=200, model="mlp", quantizer="a2q"),
            row(20, 0.95, area=300, model="cnn"), row(20, 0.95, area=300, model="mlp")]
    choice = choose_config(rows, 1.0)
    assert choice.row["pe_acc_bits"] == 18 and choice.models == ["cnn", "mlp"]
    assert {m: r["quantizer"] for m, r in choice.per_model.items()} == {"cnn": "a2q+", "mlp": "a2q"}
    assert choice.summary().startswith("build: P = 18, Q = 18, 4x4 array, wrap, area 200 NAND2-eq")
    # per model, cnn alone would take P = 16
    assert [r.row["pe_acc_bits"] for r in recommend(rows, 1.0)] == [16, 18]
    none = choose_config([row(16, 0.95, model="cnn"), row(18, 0.2, model="mlp")], 1.0)
    assert none.row is None and none.summary() == ("build: no single configuration serves cnn, mlp "
                                                   "within 1 percentage points with zero overflow events")


def test_pareto_front():
    pts = [(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (25, 0.9), (10, 0.6)]
    assert pareto_front(pts) == [5, 1, 4]
    assert pareto_front([]) == []


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=12))
def test_pareto_front_against_brute_force(pts):
    def dominated(i):
        ai, ci = pts[i]
        return any((aj <= ai and cj >= ci and (aj < ai or cj > ci)) or ((aj, cj) == (ai, ci) and j < i)
                   for j, (aj, cj) in enumerate(pts) if j != i)
    front = pareto_front(pts)
    assert sorted(front) == [i for i in range(len(pts)) if not dominated(i)]
    assert [pts[i][0] for i in front] == sorted(pts[i][0] for i in front)


def test_plots_and_html(tmp_path):
    rows = [row(p, 0.95 - 0.02 * max(0, 20 - p), area=100 * p, quantizer=q, events=max(0, 20 - p) * 10)
            for p in (16, 18, 20, 22) for q in ("a2q", "a2q+")]
    rows += [row(p, 0.9, model="mlp", target_p=22) for p in (16, 20)]
    failures = [{"label": "cnn oaq P=16", "error": "ValueError: boom", "finished_at": "now"}]
    paths = write_report(rows, tmp_path / "rep", failures, tolerance=1.0, notes=["demo note"])
    assert set(paths.plots) == set(PLOTS)
    for p in paths.plots.values():
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    page = paths.html.read_text()
    assert all(f"<a href='{name}'>" in page for name in PLOTS)         # the PNGs are linked
    assert page.count("<tr ") >= len(rows) + 2 * len(rows)            # points and per-layer tables
    assert "ValueError: boom" in page and "demo note" in page
    assert "recommended: P = 20, Q = 20, 4x4 array, wrap, quantizer a2q" in page
    assert "build: no single configuration serves cnn, mlp" in page          # mlp never qualifies
    with pytest.raises(ValueError, match="the results store has no rows to report"):
        write_report([], tmp_path / "x")
