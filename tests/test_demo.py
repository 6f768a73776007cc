"""``accel demo``: sweep, recommendation, Verilog, report; clear errors; the full run (slow)."""

import json

import pytest

from accel.cli import main
from accel.config import ArrayConfig
from test_sweep_grid import make_checkpoints


def test_demo_recommends_generates_and_reports(tmp_path, capsys):
    ck = make_checkpoints(tmp_path / "ck", ps=(20, 24), quantizers=("a2q",), float_accuracy="exact")
    out = tmp_path / "demo"
    args = ["demo", "--checkpoints", str(ck), "-o", str(out), "--p", "16", "20", "24",
            "--no-synth", "--no-verify", "--workers", "1", "--json", str(tmp_path / "d.json")]
    assert main(args) == 0
    cap = capsys.readouterr()
    data = json.loads((tmp_path / "d.json").read_text())
    (rec,) = data["recommendations"]
    # random weights: P = 20 overflows on adversarial inputs (64 * 255 * 127 > 2^19), P = 24 cannot
    assert rec["row"]["pe_acc_bits"] == 24 and rec["row"]["adv_pe_events"] == 0
    assert rec["considered"] == 6 and rec["qualifying"] == 2
    assert data["build"]["row"]["config_hash"] == rec["row"]["config_hash"]     # one model
    cfg = ArrayConfig.from_dict(rec["row"]["config"])
    assert data["verification"]["verilog"].endswith(f"{cfg.name}.v")
    assert (out / "rtl" / f"{cfg.name}.v").read_text().lstrip().startswith(("//", "/*", "module", "`"))
    assert (out / "report" / "index.html").stat().st_size > 10000
    assert data["ok"] is True and data["sweep"]["finished"] == 6
    assert "[1/4] sweep: 6 points" in cap.err and "recommended: P = 24" in cap.out
    # a second run reuses every point
    assert main(args) == 0
    assert json.loads((tmp_path / "d.json").read_text())["sweep"]["skipped"] == 6


def test_demo_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["demo", "--checkpoints", str(empty), "-o", str(tmp_path / "d")]) == 2
    assert "no integer-model checkpoints in" in capsys.readouterr().err
    assert main(["demo", "--tolerance", "-2", "-o", str(tmp_path / "d")]) == 2
    assert "--tolerance must be >= 0 accuracy points, not -2.0" in capsys.readouterr().err
    assert main(["demo", "--cosim-images", "-1", "-o", str(tmp_path / "d")]) == 2
    assert "--cosim-images must be >= 0 test images, not -1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_step_4_runs_the_recommended_checkpoints_on_the_rtl(tmp_path):
    """Step 4's model check: the recommended checkpoint on real test images through the RTL, its
    accuracy the golden model's (the whole split: the sweep's own number)."""
    from pathlib import Path

    from accel.backends import GoldenBackend
    from accel.cli.demo import _cosim_lines, cosim_models
    from accel.data import load_data
    from accel.executor import simulate
    from accel.graph import load_graph
    from sim.runner import simulator_missing

    if simulator_missing("verilator"):
        pytest.skip(simulator_missing("verilator"))
    ckpt = str(Path(__file__).parent.parent / "models" / "checkpoints" / "mlp_a2q_n8_p16_s0.pt")
    cfg = ArrayConfig(rows=4, cols=4, pe_acc_bits=16, overflow="saturate", acc_depth=8)
    data = load_data("digits", split="test")
    golden = simulate(load_graph(ckpt), [(data.x, data.y)], GoldenBackend(cfg)).accuracy
    row = {"checkpoint": ckpt, "quantizer": "a2q", "accuracy": golden}
    res = cosim_models(cfg, {"mlp": row}, tmp_path / "cosim", 360, workers=1)
    (m,) = res["models"]
    assert res["status"] == "passed" and m["samples"] == 360 and m["mismatches"] == 0
    assert m["accuracy"] == m["sweep_accuracy"] == golden and m["cycles"] == m["closed_form"] > 0
    (line,) = _cosim_lines(res)
    assert line.startswith("mlp (a2q) on the RTL: 360 test images, accuracy ")
    assert "0 mismatching" in line and "= closed form" in line


@pytest.mark.slow
def test_full_demo_on_the_shipped_checkpoints(tmp_path, capsys):
    """The README's main-job command, as documented: sweep, synthesis, Verilog, cocotb, report."""
    assert main(["demo", "-o", str(tmp_path / "demo"), "--json", str(tmp_path / "d.json")]) == 0
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["verification"]["status"] in ("passed", "skipped")
    if data["verification"]["status"] == "passed":
        rtl = data["verification"]["models_on_rtl"]
        assert rtl["status"] == "passed" and {m["model"] for m in rtl["models"]} == {"cnn", "mlp"}
        assert all(m["accuracy"] == m["sweep_accuracy"] for m in rtl["models"])
    assert all(r["row"] is not None for r in data["recommendations"])
    assert all(r["row"]["area"] for r in data["recommendations"])
