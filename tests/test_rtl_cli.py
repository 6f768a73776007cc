"""``accel generate``: files, summary, JSON output and errors."""

import json

from accel.cli import main
from accel.config import ArrayConfig
from accel.timing import timing


def test_generate_writes_files_and_json(tmp_path, capsys):
    out = tmp_path / "rtl"
    js = tmp_path / "gen.json"
    assert main(["generate", "--rows", "3", "--cols", "2", "--pe-acc-bits", "20",
                 "--acc-depth", "8", "-o", str(out), "--name", "arr", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "module arr" in text and "latency 7" in text and "x_data" in text
    assert sorted(p.name for p in out.iterdir()) == ["arr.json", "arr.v", "arr.vlt"]
    data = json.loads(js.read_text())
    config = ArrayConfig(rows=3, cols=2, pe_acc_bits=20, acc_depth=8)
    assert data["config_hash"] == config.hash
    assert data["timing"] == timing(config).to_dict()
    assert data["files"]["verilog"] == str(out / "arr.v")
    assert json.loads((out / "arr.json").read_text())["module"] == "arr"
    assert "module arr(" in (out / "arr.v").read_text()


def test_generate_json_to_stdout_default_name(tmp_path, capsys):
    assert main(["generate", "--rows", "2", "--cols", "2", "-o", str(tmp_path),
                 "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    name = ArrayConfig(rows=2, cols=2).name
    assert data["module"] == name and (tmp_path / f"{name}.v").exists()


def test_generate_errors(tmp_path, capsys):
    assert main(["generate", "--overq-mode", "range", "--pe-acc-bits", "20", "-o",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "accel generate: error: pe_acc_bits must be between 24 and 64 (OverQ range lanes" in err
    assert main(["generate", "--name", "bad-name", "-o", str(tmp_path)]) == 2
    assert "module name must be a Verilog identifier" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
