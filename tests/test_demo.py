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
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_full_demo_on_the_shipped_checkpoints(tmp_path, capsys):
    """The README's main-job command, as documented: sweep, synthesis, Verilog, cocotb, report."""
    assert main(["demo", "-o", str(tmp_path / "demo"), "--json", str(tmp_path / "d.json")]) == 0
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["verification"]["status"] in ("passed", "skipped")
    assert all(r["row"] is not None for r in data["recommendations"])
    assert all(r["row"]["area"] for r in data["recommendations"])
