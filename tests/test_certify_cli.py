"""accel certify on shipped checkpoints: the static bound per layer, with --data the widths the data
needs next to it, OverQ lanes, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accel.cli import main
from accel.config import ArrayConfig
from accel.graph import load_graph
from accel.quant.report import certify, model_report

CKPT = Path(__file__).resolve().parents[1] / "models" / "checkpoints"


def _run(capsys, *argv):
    rc = main(["certify", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a2qplus_checkpoint_is_safe_at_its_p(capsys, tmp_path):
    path = CKPT / "cnn_a2qplus_n8_p16_s0.pt"
    rc, out, _ = _run(capsys, path, "--rows", 8, "--pe-acc-bits", 16, "--json", tmp_path / "c.json")
    assert rc == 0 and "SAFE" in out and "NOT SAFE" not in out
    cert = json.loads((tmp_path / "c.json").read_text())
    assert cert["safe"] and [r["accumulator_bit_width"] for r in cert["layers"]] == [16, 16, 16]
    assert all(r["meets_accumulator_bit_width"] and r["input_range"] == [0, 255]
               for r in cert["layers"])


def test_same_bound_as_the_quantizer_report():
    g = load_graph(CKPT / "cnn_baseline_n8_p32_s0.pt")
    config = ArrayConfig(rows=8, pe_acc_bits=20)
    cert, rep = certify(g, config), model_report(g.layers, config)
    assert [(r["min_safe_p"], r["min_safe_q"]) for r in cert["layers"]] == \
        [(r["min_safe_p"], r["min_safe_q"]) for r in rep["layers"]]


def test_baseline_with_data_bound_next_to_reality(capsys, tmp_path):
    rc, out, _ = _run(capsys, CKPT / "cnn_baseline_n8_p32_s0.pt", "--rows", 8, "--pe-acc-bits", 17,
                      "--data", "digits", "--limit", 96, "--json", tmp_path / "c.json")
    assert rc == 0 and "NOT SAFE" in out and "data P" in out
    cert = json.loads((tmp_path / "c.json").read_text())
    assert cert["data"]["samples"] == 96
    for r in cert["layers"]:
        assert r["data_min_p"] <= max(r["min_safe_p"], 16)      # the bound covers the data
        assert (r["data_pe_events"] > 0) <= (not r["safe_p"])     # events only where unsafe
    assert sum(r["data_pe_events"] + r["data_acc_events"] for r in cert["layers"]) > 0


def test_overq_bounds_use_the_lane_range(capsys, tmp_path):
    path = CKPT / "cnn_baseline_n4_p32_s0.pt"
    rc, _, _ = _run(capsys, path, "--act-bits", 4, "--weight-bits", 4, "--rows", 4,
                    "--pe-acc-bits", 16, "--overq-mode", "range", "--json", tmp_path / "o.json")
    rc2, _, _ = _run(capsys, path, "--act-bits", 4, "--weight-bits", 4, "--rows", 4,
                     "--pe-acc-bits", 16, "--json", tmp_path / "p.json")
    oq, plain = (json.loads((tmp_path / f).read_text()) for f in ("o.json", "p.json"))
    assert rc == rc2 == 0
    assert [r["input_range"] for r in oq["layers"]] == [[0, 255]] * 3
    assert [r["input_range"] for r in plain["layers"]] == [[0, 15]] * 3
    assert all(o["min_safe_p"] > p["min_safe_p"] for o, p in zip(oq["layers"], plain["layers"]))


@pytest.mark.parametrize("content, match", [(None, "does not exist"),
                                            ("text", "cannot be read")])
def test_bad_model_file_is_one_line(capsys, tmp_path, content, match):
    path = tmp_path / "m.pt"
    if content is not None:
        path.write_text(content)
    rc, out, err = _run(capsys, path, "--pe-acc-bits", 16)
    assert rc == 2 and match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
