"""``accel sweep`` and ``accel report`` on the command line: results, resume, exports, errors."""

import json

import pytest

from accel.cli import main

FLAGS = ["--model", "gemm", "--rows", "4", "--cols", "4", "--grid", "pe_acc_bits=16,20",
         "--gemm", "t=16", "--gemm", "k=24", "--gemm", "o=5", "--gemm", "dist=extreme",
         "--workers", "1"]


def test_sweep_report_and_exports(tmp_path, capsys):
    db = tmp_path / "r.db"
    assert main(["sweep", *FLAGS, "--db", str(db), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr()
    assert "2 points: 2 run now, 0 already in" in out.out and "sweep 2/2 points 100 %" in out.err
    assert json.loads((tmp_path / "s.json").read_text())["complete"] is True
    assert main(["sweep", *FLAGS, "--db", str(db), "--csv", str(tmp_path / "r.csv")]) == 0
    assert "0 run now, 2 already in" in capsys.readouterr().out
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 3
    rep = tmp_path / "rep"
    assert main(["report", "--db", str(db), "-o", str(rep), "--export-json", str(tmp_path / "r.json"),
                 "--json", str(tmp_path / "rep.json")]) == 0
    text = capsys.readouterr().out
    assert "gemm: " in text and f"wrote {rep / 'index.html'} and 5 plots" in text
    data = json.loads((tmp_path / "rep.json").read_text())
    assert data["recommendations"][0]["model"] == "gemm"
    assert [r["pe_acc_bits"] for r in json.loads((tmp_path / "r.json").read_text())] == [16, 20]
    assert all((rep / n).stat().st_size > 0 for n in ("index.html", "pareto.png"))


def test_toml_with_flag_override_and_dry_run(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('models = ["gemm"]\n[array]\nrows = 2\ncols = 2\n[grid]\npe_acc_bits = [16, 17, 18]\n')
    assert main(["sweep", str(f), "--grid", "overflow=wrap,saturate", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 points:") and "gemm none P=18 2x2 saturate" in out
    assert main(["sweep", str(f), "--rows", "8", "--dry-run", "--json", "-"]) == 0
    assert all(" 8x2 " in p for p in json.loads(capsys.readouterr().out)["points"])


def test_config_file_under_a_p_grid(tmp_path, capsys):
    cfg = tmp_path / "a.toml"
    cfg.write_text("rows = 2\ncols = 3\npe_acc_bits = 20\n")
    assert main(["sweep", "--model", "gemm", "--config", str(cfg), "--grid", "pe_acc_bits=16,24",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "gemm none P=16 2x3 wrap" in out and "gemm none P=24 2x3 wrap" in out


@pytest.mark.parametrize("args, message", [
    (["--model", "digits-rnn"], "unknown model 'digits-rnn'; known models are gemm"),
    (["--model", "gemm", "--grid", "pe_acc_bits"], "--grid takes NAME=V1,V2,..., not 'pe_acc_bits'"),
    (["--model", "gemm", "--grid", "pe_acc_bits=12"], "pe_acc_bits must be between 16 and 64"),
    (["--model", "gemm", "--gemm", "t=-1"], "[gemm]: t must be a positive integer, not -1"),
    (["--model", "gemm", "--executor", "dask"], "--executor dask needs --scheduler ADDRESS"),
    (["--model", "gemm", "--checkpoint-p", "newest"], 'checkpoint_p must be "match", "all"'),
    (["--model", "gemm", "--checkpoints", "/nonexistent"], "checkpoint folder /nonexistent does not exist"),
    ([], "flags: models is required"),
])
def test_errors_come_before_any_work(args, message, tmp_path, capsys):
    db = tmp_path / "r.db"
    code = main(["sweep", *args, "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.startswith("accel sweep: error:")
    assert not db.exists()


def test_malformed_toml_exits_2_before_work(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text('models = ["gemm"\n')
    db = tmp_path / "r.db"
    assert main(["sweep", str(f), "--db", str(db)]) == 2
    assert "bad.toml is not valid TOML" in capsys.readouterr().err and not db.exists()


def test_report_errors(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "none.db")]) == 2
    assert "results store" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path / "none.db"), "--tolerance", "-1"]) == 2
    assert "--tolerance must be >= 0 accuracy points, not -1.0" in capsys.readouterr().err


@pytest.mark.parametrize("verb, expect", [("sweep", "--grid FIELD=V1,V2"), ("report", "--tolerance")])
def test_help_has_examples_and_defaults(verb, expect, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and expect in text and "default" in text
